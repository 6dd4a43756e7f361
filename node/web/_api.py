"""The JSON API under ``/api/v1``: the node, sessions, staff accounts, the audit log,
the organisation profile, peers, the blocklist and invites, pseudonym oracles, and
org-to-org messages.
Every route is declared with its access rule and its schemas in :func:`add_api_routes`;
``/api/v1/openapi.json`` is built from the same declarations (:mod:`._openapi`)."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from typing import Any, Final

from aiohttp import web

import protocol
from node.accounts import Account, Permission, Role
from node.audit import AuditRecord
from node.config import NodeConfig
from node.federation import (
    FED_PREFIX,
    FederationService,
    MessageService,
    MessageView,
    Peer,
    ThreadSummary,
    hex_id,
    make_invite,
)
from node.oracle import OracleError, OracleServer, PseudonymService, utc_day

from ._errors import ApiError
from ._pipeline import clear_session_cookie, json_dumps, set_session_cookie
from ._routes import PUBLIC, SIGNED_IN, RouteTable
from ._schema import ACCOUNT, BOOL, HEX32, INT, PROFILE, ROLES, STR, SchemaError, check, obj
from ._services import current_account, current_session, services

__all__ = [
    "PREFIX",
    "account_json",
    "add_api_routes",
    "federation_name",
    "node_summary",
    "path_id",
]

PREFIX: Final = "/api/v1"
#: Largest JSON body the API reads (the biggest legitimate one, a profile, is ~2 KiB).
_MAX_BODY: Final = 64 * 1024


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=json_dumps)


async def _body(
    request: web.Request, schema: dict[str, Any], *, max_bytes: int = _MAX_BODY
) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError(413, "TOO_LARGE", f"the body exceeds {max_bytes} bytes")
    try:
        value = json.loads(raw)
        # A lone surrogate escape ("\ud800") decodes but is no text: refuse it here
        # rather than fail in the database driver.
        json_dumps(value).encode("utf-8")
    except (UnicodeError, RecursionError, json.JSONDecodeError):
        raise ApiError(400, "BAD_REQUEST", "the body is not JSON") from None
    try:
        check(schema, value)
    except SchemaError as error:
        raise ApiError(422, "INVALID", str(error)) from None
    return value  # type: ignore[no-any-return]


def account_json(account: Account) -> dict[str, Any]:
    """An account as the API shows it (never its password hash or failure count)."""
    return {
        "id": account.id,
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role.value,
        "must_change_password": account.must_change_password,
        "disabled": account.disabled,
        "created_ms": account.created_ms,
        "updated_ms": account.updated_ms,
        "locked_until_ms": account.locked_until_ms,
    }


def _audit_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "ts_ms": record.ts_ms,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "details": json.loads(record.details),
        "hash": record.hash.hex(),
    }


@functools.lru_cache(maxsize=4)
def _genesis_name(genesis_hex: str, net: bytes) -> str | None:
    try:
        return protocol.parse_genesis(bytes.fromhex(genesis_hex), net=net).name
    except (ValueError, protocol.ProtocolError):
        return None


def federation_name(config: NodeConfig) -> str | None:
    """The name of the node's federation from its (verified) genesis; None when the
    node is standalone or its config holds no valid genesis."""
    if config.standalone or config.genesis is None:
        return None
    return _genesis_name(config.genesis, config.net)


async def node_summary(request: web.Request) -> dict[str, Any]:
    """What the dashboard and ``GET /api/v1/node`` show.

    ``restore_guard`` is true while appending to our own feed waits, after a restore
    from a backup, until a peer confirms our feed's head (``FeedStore.head_unconfirmed``).
    """
    svc = services(request)
    healthy, guard = True, False
    try:
        await svc.db.ping()
        head = await svc.feeds.head(svc.identity.node_id)
        count = await svc.feeds.count()
        guard = await svc.feeds.head_unconfirmed() is not None
    except Exception:  # the database is down: say so rather than fail the page
        healthy, head, count = False, None, 0
    return {
        "node_id": svc.identity.node_id.hex(),
        "fingerprint": svc.identity.fingerprint,
        "net": svc.config.net.hex(),
        "standalone": svc.config.standalone,
        "federation_name": federation_name(svc.config),
        "restore_guard": guard,
        "feed": None if head is None else {"seq": head.seq, "id": head.id.hex()},
        "entries": count,
        "peers": svc.peer_count(),
        "health": "ok" if healthy else "database unreachable",
        "started_ms": svc.started_ms,
    }


async def _get_node(request: web.Request) -> web.Response:
    return _json(await node_summary(request))


_LOGIN = obj(
    ("username", "password"),
    username={"type": "string", "maxLength": 64},
    password={"type": "string", "maxLength": 1024},
)


async def _login(request: web.Request) -> web.Response:
    svc = services(request)
    body = await _body(request, _LOGIN)
    now = svc.now_ms()
    account = await svc.accounts.authenticate(
        body["username"], body["password"], now_ms=now, source="api"
    )
    token, csrf = await svc.accounts.start_session(
        account, now_ms=now, random_bytes=svc.random_bytes
    )
    response = _json({"account": account_json(account), "csrf_token": csrf})
    set_session_cookie(response, request, token)
    return response


async def _whoami(request: web.Request) -> web.Response:
    session = current_session(request)
    assert session is not None
    return _json(
        {
            "account": account_json(session.account),
            "csrf_token": session.csrf_token,
            "expires_ms": session.expires_ms,
        }
    )


async def _logout(request: web.Request) -> web.Response:
    svc = services(request)
    session = current_session(request)
    assert session is not None
    await svc.accounts.end_session(session, now_ms=svc.now_ms())
    response = web.Response(status=204)
    clear_session_cookie(response, request)
    return response


_PASSWORD = obj(
    ("current_password", "new_password"),
    current_password={"type": "string", "maxLength": 1024},
    new_password={"type": "string", "maxLength": 1024},
)


async def _change_password(request: web.Request) -> web.Response:
    svc = services(request)
    session = current_session(request)
    assert session is not None
    body = await _body(request, _PASSWORD)
    account = await svc.accounts.change_password(
        session.account,
        body["current_password"],
        body["new_password"],
        now_ms=svc.now_ms(),
        keep=session,
    )
    svc.on_password_changed(account.username)
    return _json({"account": account_json(account)})


async def _list_accounts(request: web.Request) -> web.Response:
    accounts = await services(request).accounts.store.all()
    return _json({"accounts": [account_json(a) for a in accounts]})


_NEW_ACCOUNT = obj(
    ("username", "display_name", "role"),
    username={"type": "string", "minLength": 3, "maxLength": 32, "pattern": "^[A-Za-z0-9._-]+$"},
    display_name={"type": "string", "minLength": 1, "maxLength": 100},
    role={"type": "string", "enum": list(ROLES)},
)


async def _create_account(request: web.Request) -> web.Response:
    svc = services(request)
    body = await _body(request, _NEW_ACCOUNT)
    account, one_time = await svc.accounts.create_account(
        current_account(request),
        username=body["username"],
        display_name=body["display_name"],
        role=body["role"],
        random_bytes=svc.random_bytes,
        now_ms=svc.now_ms(),
    )
    return _json({"account": account_json(account), "one_time_password": one_time}, 201)


def path_id(request: web.Request) -> int:
    """The ``{id}`` of the request's path: 1-18 ASCII digits (a signed 64-bit column
    holds them), else 404 Not Found, as for an id that does not exist.

    Raises:
        ApiError: NOT_FOUND.
    """
    text = request.match_info["id"]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ApiError(404, "NOT_FOUND", "no such object")
    return int(text)


async def _get_account(request: web.Request) -> web.Response:
    account = await services(request).accounts.store.get(path_id(request))
    if account is None:
        raise ApiError(404, "NOT_FOUND", "no such account")
    return _json({"account": account_json(account)})


#: ``minProperties`` documents what the handler checks (``check`` ignores it).
_PATCH_ACCOUNT = {
    **obj(role={"type": "string", "enum": list(ROLES)}, disabled=BOOL),
    "minProperties": 1,
}


async def _patch_account(request: web.Request) -> web.Response:
    svc = services(request)
    body = await _body(request, _PATCH_ACCOUNT)
    if not body:
        raise ApiError(422, "INVALID", "give role or disabled")
    by, target, now = current_account(request), path_id(request), svc.now_ms()
    account = await svc.accounts.store.get(target)
    if account is None:
        raise ApiError(404, "NOT_FOUND", "no such account")
    if "role" in body and Role(body["role"]) is not account.role:
        account = await svc.accounts.set_role(by, target, body["role"], now_ms=now)
    if "disabled" in body and body["disabled"] is not account.disabled:
        change = svc.accounts.disable if body["disabled"] else svc.accounts.enable
        account = await change(by, target, now_ms=now)
    return _json({"account": account_json(account)})


async def _reset_password(request: web.Request) -> web.Response:
    svc = services(request)
    one_time = await svc.accounts.reset_password(
        current_account(request),
        path_id(request),
        random_bytes=svc.random_bytes,
        now_ms=svc.now_ms(),
    )
    return _json({"one_time_password": one_time})


def _int_param(request: web.Request, name: str, low: int = 0) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 18:
        raise ApiError(422, "INVALID", f"{name} must be an integer")
    value = int(text)
    if value < low:
        raise ApiError(422, "INVALID", f"{name} must be at least {low}")
    return value


async def _audit(request: web.Request) -> web.Response:
    action = request.query.get("action") or None
    if action is not None and len(action) > 64:
        raise ApiError(422, "INVALID", "action is at most 64 characters")
    records = await services(request).audit.query(
        action=action,
        actor=_int_param(request, "actor"),
        since_ms=_int_param(request, "since_ms"),
        until_ms=_int_param(request, "until_ms"),
        before_seq=_int_param(request, "before_seq", 1),
        limit=_int_param(request, "limit", 1) or 50,
    )
    return _json({"records": [_audit_json(r) for r in records]})


async def _audit_verify(request: web.Request) -> web.Response:
    report = await services(request).audit.verify()
    return _json(asdict(report))


def _profile_json(profile: Any) -> dict[str, Any]:
    value = asdict(profile)
    value["sectors"] = list(profile.sectors)
    value["endpoints"] = list(profile.endpoints)
    return value


async def _get_profile(request: web.Request) -> web.Response:
    profile = await services(request).profiles.current()
    if profile is None:
        raise ApiError(404, "NOT_FOUND", "the node has no profile yet")
    return _json(_profile_json(profile))


_PUT_PROFILE = obj(
    ("name_ar", "name_en", "registration", "governorate", "sectors"),
    name_ar={"type": "string", "minLength": 1, "maxLength": 200},
    name_en={"type": "string", "minLength": 1, "maxLength": 200},
    registration={"type": "string", "minLength": 2, "maxLength": 32},
    governorate={"type": "string", "enum": [f"IQG{i:02d}" for i in range(1, 20)]},
    sectors={"type": "array", "items": {"type": "string", "enum": list(protocol.SECTORS)}},
)


async def _put_profile(request: web.Request) -> web.Response:
    body = await _body(request, _PUT_PROFILE)
    profile = await services(request).profiles.update(current_account(request), **body)
    return _json(_profile_json(profile))


# -- peers, the blocklist and invites ----------------------------------------------------

#: An invite's validity: 1 hour to 30 days (as ``watan invite create --ttl-hours``).
MAX_INVITE_HOURS: Final = 24 * 30


def _federation(request: web.Request) -> FederationService:
    """The node's federation service.

    Raises:
        ApiError: UNAVAILABLE when the node runs without one.
    """
    fed = services(request).federation
    if fed is None:
        raise ApiError(503, "UNAVAILABLE", "federation is not running on this node")
    return fed


def _peer_json(peer: Peer, lag: dict[bytes, int]) -> dict[str, Any]:
    value = peer.to_json()
    value["lag"] = {author.hex(): behind for author, behind in sorted(lag.items())}
    return value


async def _list_peers(request: web.Request) -> web.Response:
    fed = _federation(request)
    lags = await fed.lags()
    peers = await fed.peers.all()
    return _json({"peers": [_peer_json(peer, lags.get(peer.node_id, {})) for peer in peers]})


_PEER_ACTION = obj(
    reason={"type": ["string", "null"], "maxLength": 500},
    fingerprint_confirmed=BOOL,
)


def _peer_action(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        fed = _federation(request)
        node_id = hex_id(request.match_info["id"])
        body = await _body(request, _PEER_ACTION)
        reason, actor = body.get("reason"), current_account(request).id
        peer = await fed.peers.get(node_id)
        if action == "approve":
            if body.get("fingerprint_confirmed") is not True:
                raise ApiError(
                    422,
                    "FINGERPRINT_NOT_CONFIRMED",
                    "compare the fingerprint with the other admin, then send "
                    "fingerprint_confirmed: true",
                )
            if peer is not None and peer.state == "blocked":
                raise ApiError(409, "CONFLICT", "the node is blocked; unblock it first")
            if peer is None or peer.state != "approved":
                peer = await fed.peers.set_state(node_id, "approved", actor=actor, reason=reason)
        elif action == "block":
            peer = await fed.peers.set_state(node_id, "blocked", actor=actor, reason=reason)
        elif peer is not None and peer.state == "blocked":
            peer = await fed.peers.set_state(node_id, "proposed", actor=actor, reason=reason)
        elif node_id in await fed.peers.blocked_ids():
            await fed.peers.unblock_author(node_id, actor=actor)  # not a peer: peer is null
        else:
            raise ApiError(409, "CONFLICT", "the node is not blocked")
        lag = (await fed.lags()).get(node_id, {})
        return _json({"peer": None if peer is None else _peer_json(peer, lag)})

    handler.__name__ = f"_{action}_peer"
    return handler


async def _blocklist(request: web.Request) -> web.Response:
    blocks = await _federation(request).peers.blocks()
    return _json(
        {
            "blocks": [
                {"author": b.author.hex(), "reason": b.reason, "created_ms": b.created_ms}
                for b in blocks
            ]
        }
    )


def invite_url(text: str) -> str:
    """This node's address as another node reaches it, as an invite carries it: with
    the federation prefix (``http://10.0.0.5:8470`` -> ``http://10.0.0.5:8470/fed/v1``)."""
    url = text.strip().rstrip("/")
    return url if url.endswith(FED_PREFIX) else url + FED_PREFIX


_NEW_INVITE = obj(
    ("url",),
    url={"type": "string", "minLength": 1, "maxLength": 232},
    ttl_hours={"type": "integer", "minimum": 1, "maximum": MAX_INVITE_HOURS},
)


async def _create_invite(request: web.Request) -> web.Response:
    svc = services(request)
    fed = _federation(request)
    body = await _body(request, _NEW_INVITE)
    invite = await make_invite(
        svc.config,
        fed.peers,
        identity=svc.identity,
        url=invite_url(body["url"]),
        clock=svc.clock,
        random_bytes=svc.random_bytes,
        ttl_ms=body.get("ttl_hours", 72) * 3600 * 1000,
        actor=current_account(request).id,
    )
    return _json(
        {
            "token": invite.to_token(),
            "fingerprint": protocol.fingerprint(invite.node),
            "expires_ms": invite.expires,
        },
        201,
    )


# -- pseudonym oracles ---------------------------------------------------------------------

#: The daily quota per requesting node (``OracleServer.set_quota``'s own range).
MAX_ORACLE_QUOTA: Final = 10_000_000


def _oracles(request: web.Request) -> tuple[FederationService, OracleServer, PseudonymService]:
    """The node's federation with its oracle server and pseudonym client.

    Raises:
        ApiError: UNAVAILABLE when the node runs without them.
    """
    fed = _federation(request)
    if fed.oracle is None or fed.pseudonyms is None:
        raise ApiError(503, "UNAVAILABLE", "pseudonym oracles are not running on this node")
    return fed, fed.oracle, fed.pseudonyms


async def _get_oracle(request: web.Request) -> web.Response:
    svc = services(request)
    fed, server, pseudonyms = _oracles(request)
    own = svc.identity.node_id
    try:
        config, error = await pseudonyms.config(), None
    except OracleError as refused:  # NO_CONFIG or CONFIG_CONFLICT
        config, error = None, refused.code.value
    oracles = []
    if config is not None:
        for index, node_id in sorted(config.oracles().items()):
            peer = None if node_id == own else await fed.peers.get(node_id)
            answer = pseudonyms.answers.get(index)
            if answer is not None and answer.node_id != node_id:
                answer = None  # noted for an older configuration
            oracles.append(
                {
                    "index": index,
                    "node_id": node_id.hex(),
                    "fingerprint": protocol.fingerprint(node_id),
                    "self": node_id == own,
                    "peer_state": None if peer is None else peer.state,
                    "answer": None
                    if answer is None
                    else {"ok": answer.ok, "code": answer.code, "at_ms": answer.at_ms},
                }
            )
    epochs = await server.shares.epochs()
    held = None
    if epochs:  # the share of the epoch in force, else the newest one held
        in_force = config is not None and config.epoch in epochs
        held = await server.shares.get(config.epoch if config and in_force else max(epochs))
    today = utc_day(svc.now_ms())
    return _json(
        {
            "config": None
            if config is None
            else {
                "epoch": config.epoch,
                "threshold": config.threshold,
                "oracle_count": len(config.oracles()),
                "dealer": config.dealer.hex(),
            },
            "error": error,
            "pseudonyms": await pseudonyms.counts(),
            "oracles": oracles,
            "share": None
            if held is None
            else {
                "epoch": held.epoch,
                "index": held.share.index,
                "threshold": held.threshold,
                "dealer": held.dealer.hex(),
                "imported_ms": held.imported_ms,
            },
            "quota": await server.quota(),
            "today": today,
            "usage_today": [
                {"requester": row.requester.hex(), "epoch": row.epoch, "count": row.count}
                for row in await server.usage(since_day=today)
                if row.day == today
            ],
        }
    )


_PUT_QUOTA = obj(
    ("quota",),
    quota={
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_ORACLE_QUOTA,
        "description": "pseudonyms this node computes per UTC day for any one requesting node",
    },
)


async def _put_oracle_quota(request: web.Request) -> web.Response:
    _fed, server, _pseudonyms = _oracles(request)
    body = await _body(request, _PUT_QUOTA)
    try:
        await server.set_quota(body["quota"], actor=current_account(request).id)
    except OracleError as error:  # its own range check, the same as the schema's
        raise ApiError(422, "INVALID", error.message) from None
    return _json({"quota": await server.quota()})


# -- org-to-org messages -------------------------------------------------------------------

#: Outgoing states from least to most advanced (``failed`` first: it needs attention).
_OUT_STATES: Final = ("failed", "queued", "relayed", "delivered", "read")
#: Recipients of one message through the API (the page offers every approved peer).
MAX_RECIPIENTS: Final = 64
#: A message's body may hold a text of 32 KiB (UTF-8) even when the client escapes
#: every character as ``\uXXXX`` (6 bytes each; Python's ``json.dumps`` does so by
#: default for Arabic), with room for 64 recipients.
_MAX_MESSAGE_BODY: Final = 256 * 1024


def _messages(request: web.Request) -> MessageService:
    """The node's message service.

    Raises:
        ApiError: UNAVAILABLE when the node runs without messaging.
    """
    messages = services(request).messages
    if messages is None:
        raise ApiError(503, "UNAVAILABLE", "messaging is not running on this node")
    return messages


def _hex32(text: str, what: str) -> bytes:
    """32 bytes from 64 lowercase hexadecimal characters, else 422 INVALID."""
    if len(text) != 64 or not all(c in "0123456789abcdef" for c in text):
        raise ApiError(422, "INVALID", f"{what} must be 64 lowercase hexadecimal characters")
    return bytes.fromhex(text)


def _thread_json(summary: ThreadSummary) -> dict[str, Any]:
    return {
        "thread": summary.thread.hex(),
        "peers": [peer.hex() for peer in summary.peers],
        "subject": summary.subject,
        "last_ts": summary.last_ms,
        "unread": summary.unread,
        "state": summary.last_state,
    }


def _message_json(view: MessageView) -> dict[str, Any]:
    recipients = [
        {"peer": r.peer.hex(), "id": r.message.hex(), "state": r.state, "error": r.error}
        for r in view.recipients
    ]
    if view.direction == "in":
        peer, state = view.sender, "received" if view.read_ms is None else "read"
    else:  # one view per send(): its peer is the first recipient, its state the least
        peer = view.recipients[0].peer
        state = min((r.state for r in view.recipients), key=_OUT_STATES.index)
    return {
        "id": view.id.hex(),
        "direction": view.direction,
        "peer": peer.hex(),
        "text": view.text,
        "subject": view.subject,
        "ts": view.ts,
        "state": state,
        "recipients": recipients,
        "attachments": [
            {"index": a.index, "name": a.name, "type": a.type, "size": a.size}
            for a in view.attachments
        ],
    }


async def _list_threads(request: web.Request) -> web.Response:
    messages = _messages(request)
    limit = _int_param(request, "limit", 1) or 50
    if limit > 200:
        raise ApiError(422, "INVALID", "limit must be at most 200")
    threads = await messages.threads(limit=limit, before_ms=_int_param(request, "before_ts"))
    return _json(
        {
            "unread": await messages.unread_count(),
            "threads": [_thread_json(summary) for summary in threads],
        }
    )


async def _get_thread(request: web.Request) -> web.Response:
    messages = _messages(request)
    text = request.match_info["thread"]
    try:
        thread = _hex32(text, "thread")
    except ApiError:
        raise ApiError(404, "NOT_FOUND", "no such conversation") from None
    # Reading a conversation marks its incoming messages read, as the page does
    # (and sends "read" receipts).
    await messages.mark_thread_read(thread, account_id=current_account(request).id)
    views = await messages.thread(thread)
    if not views:
        raise ApiError(404, "NOT_FOUND", "no such conversation")
    return _json({"messages": [_message_json(view) for view in views]})


_NEW_MESSAGE = obj(
    ("to", "text"),
    to={
        "type": "array",
        "items": HEX32,
        "maxItems": MAX_RECIPIENTS,
        "description": "recipients' node ids (approved peers, or reachable through one)",
    },
    text={"type": "string", "minLength": 1, "maxLength": 32_768},
    subject={"type": ["string", "null"], "maxLength": 300},
    thread={**HEX32, "type": ["string", "null"], "description": "the conversation to reply in"},
)


async def _send_message(request: web.Request) -> web.Response:
    messages = _messages(request)
    body = await _body(request, _NEW_MESSAGE, max_bytes=_MAX_MESSAGE_BODY)
    to = [_hex32(peer, "to[]") for peer in body["to"]]
    thread = body.get("thread")
    if not body["text"].strip():
        raise ApiError(422, "INVALID", "the text is blank")
    ids = await messages.send(
        account_id=current_account(request).id,
        to=to,
        text=body["text"],
        subject=body.get("subject"),
        thread=None if thread is None else _hex32(thread, "thread"),
    )
    return _json({"ids": [message_id.hex() for message_id in ids]}, 201)


#: Query integers: at most 18 digits (they must fit a signed 64-bit column).
_QUERY_INT: Final = {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
_ID_PARAM: Final = {"name": "id", "in": "path", "required": True, "schema": INT}
_NODE_PARAM: Final = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": HEX32,
    "description": "the node id (64 hexadecimal characters)",
}
_NULLABLE_STR: Final = {"type": ["string", "null"]}
_NULLABLE_INT: Final = {"type": ["integer", "null"]}
PEER: Final = obj(
    (
        "node_id",
        "fingerprint",
        "state",
        "source",
        "url",
        "reason",
        "created_ms",
        "updated_ms",
        "last_seen_ms",
        "last_sync_ms",
        "last_error",
        "failures",
        "rejected",
        "lag",
    ),
    node_id=HEX32,
    fingerprint=STR,
    state={"type": "string", "enum": ["proposed", "approved", "blocked"]},
    source={"type": "string", "enum": ["lan", "invite", "manual"]},
    url=_NULLABLE_STR,
    reason=_NULLABLE_STR,
    created_ms=INT,
    updated_ms=INT,
    last_seen_ms=_NULLABLE_INT,
    last_sync_ms=_NULLABLE_INT,
    last_error=_NULLABLE_STR,
    failures=INT,
    rejected=INT,
    lag={
        "type": "object",
        "description": "author id (hex) -> how many entries we are behind this peer",
        "additionalProperties": INT,
    },
)

_ORACLE_CODES: Final = "NO_CONFIG: none dealt yet; CONFIG_CONFLICT: two claim the newest epoch"
ORACLE: Final = obj(
    ("config", "error", "pseudonyms", "oracles", "share", "quota", "today", "usage_today"),
    config={
        **obj(
            ("epoch", "threshold", "oracle_count", "dealer"),
            epoch=INT,
            threshold={**INT, "description": "how many oracles must answer"},
            oracle_count=INT,
            dealer=HEX32,
        ),
        "type": ["object", "null"],
        "description": "the oracle.config/1 in force; null with error set when there is none",
    },
    error={"type": ["string", "null"], "description": _ORACLE_CODES},
    pseudonyms={
        **obj(("ready", "pending"), ready=INT, pending=INT),
        "description": "pending: retried automatically until enough oracles answer",
    },
    oracles={
        "type": "array",
        "description": "the oracles of the configuration in force, by share index",
        "items": obj(
            ("index", "node_id", "fingerprint", "self", "peer_state", "answer"),
            index=INT,
            node_id=HEX32,
            fingerprint=STR,
            self=BOOL,
            peer_state={
                "type": ["string", "null"],
                "enum": ["proposed", "approved", "blocked", None],
                "description": "null for this node, or a node that is not a peer",
            },
            answer={
                **obj(("ok", "code", "at_ms"), ok=BOOL, code=_NULLABLE_STR, at_ms=INT),
                "type": ["object", "null"],
                "description": "its answer to this node's latest evaluation (null: not asked "
                "since the node started); code: TIMEOUT, NOT_A_PEER, UNREACHABLE, BAD_PROOF...",
            },
        ),
    },
    share={
        **obj(
            ("epoch", "index", "threshold", "dealer", "imported_ms"),
            epoch=INT,
            index=INT,
            threshold=INT,
            dealer=HEX32,
            imported_ms=INT,
        ),
        "type": ["object", "null"],
        "description": "the key share this node holds as an oracle (of the epoch in force, "
        "else its newest); null if it is not an oracle",
    },
    quota={**INT, "description": "pseudonyms computed per UTC day for one requesting node"},
    today={**STR, "description": "the UTC day usage_today counts (YYYY-MM-DD)"},
    usage_today={
        "type": "array",
        "items": obj(("requester", "epoch", "count"), requester=HEX32, epoch=INT, count=INT),
    },
)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def add_api_routes(table: RouteTable) -> None:
    """Declare the ``/api/v1`` routes."""
    p = PREFIX
    account_body = obj(("account",), account=ACCOUNT)
    table.add(
        "GET",
        f"{p}/node",
        _get_node,
        access=Permission.VIEW_DASHBOARD,
        api=True,
        summary="The node: ids, fingerprint, feed head, peers, health",
        response=obj(
            (
                "node_id",
                "fingerprint",
                "net",
                "standalone",
                "federation_name",
                "restore_guard",
                "feed",
                "entries",
                "peers",
                "health",
                "started_ms",
            ),
            node_id=HEX32,
            fingerprint=STR,
            net=HEX32,
            standalone=BOOL,
            federation_name={"type": ["string", "null"]},
            restore_guard=BOOL,
            feed={"type": ["object", "null"]},
            entries=INT,
            peers=INT,
            health=STR,
            started_ms=INT,
        ),
        tags=("node",),
    )
    table.add(
        "POST",
        f"{p}/session",
        _login,
        access=PUBLIC,
        api=True,
        summary="Sign in; sets the session cookie and returns the CSRF token",
        request=_LOGIN,
        response=obj(("account", "csrf_token"), account=ACCOUNT, csrf_token=STR),
        tags=("session",),
    )
    table.add(
        "GET",
        f"{p}/session",
        _whoami,
        access=SIGNED_IN,
        api=True,
        summary="The signed-in account and its CSRF token",
        response=obj(
            ("account", "csrf_token", "expires_ms"), account=ACCOUNT, csrf_token=STR, expires_ms=INT
        ),
        tags=("session",),
    )
    table.add(
        "DELETE",
        f"{p}/session",
        _logout,
        access=SIGNED_IN,
        api=True,
        summary="Sign out",
        status=204,
        tags=("session",),
    )
    table.add(
        "POST",
        f"{p}/session/password",
        _change_password,
        access=SIGNED_IN,
        api=True,
        summary="Change one's own password (ends one's other sessions)",
        request=_PASSWORD,
        response=account_body,
        tags=("session",),
    )
    table.add(
        "GET",
        f"{p}/accounts",
        _list_accounts,
        access=Permission.MANAGE_ACCOUNTS,
        api=True,
        summary="Staff accounts",
        response=obj(("accounts",), accounts={"type": "array", "items": ACCOUNT}),
        tags=("accounts",),
    )
    table.add(
        "POST",
        f"{p}/accounts",
        _create_account,
        access=Permission.MANAGE_ACCOUNTS,
        api=True,
        summary="Create a staff account with a one-time password",
        request=_NEW_ACCOUNT,
        status=201,
        response=obj(("account", "one_time_password"), account=ACCOUNT, one_time_password=STR),
        tags=("accounts",),
    )
    table.add(
        "GET",
        f"{p}/accounts/{{id}}",
        _get_account,
        access=Permission.MANAGE_ACCOUNTS,
        api=True,
        summary="One staff account",
        parameters=(_ID_PARAM,),
        response=account_body,
        tags=("accounts",),
    )
    table.add(
        "PATCH",
        f"{p}/accounts/{{id}}",
        _patch_account,
        access=Permission.MANAGE_ACCOUNTS,
        api=True,
        summary="Change an account's role, or disable or enable it",
        parameters=(_ID_PARAM,),
        request=_PATCH_ACCOUNT,
        response=account_body,
        tags=("accounts",),
    )
    table.add(
        "POST",
        f"{p}/accounts/{{id}}/password-reset",
        _reset_password,
        access=Permission.MANAGE_ACCOUNTS,
        api=True,
        summary="Reset an account's password to a new one-time password",
        parameters=(_ID_PARAM,),
        response=obj(("one_time_password",), one_time_password=STR),
        tags=("accounts",),
    )
    table.add(
        "GET",
        f"{p}/audit",
        _audit,
        access=Permission.VIEW_AUDIT_LOG,
        api=True,
        summary="Audit log rows, newest first (page with before_seq)",
        parameters=(
            _query("action", STR, "exact action name, e.g. login.success"),
            _query("actor", _QUERY_INT, "account id"),
            _query("since_ms", _QUERY_INT, "rows at or after this time (Unix ms)"),
            _query("until_ms", _QUERY_INT, "rows before this time (Unix ms)"),
            _query(
                "before_seq", {**_QUERY_INT, "minimum": 1}, "rows before this seq (the next page)"
            ),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 200},
                "rows per page (at most 200)",
            ),
        ),
        response=obj(
            ("records",),
            records={
                "type": "array",
                "items": obj(
                    ("seq", "ts_ms", "actor", "action", "target", "details", "hash"),
                    seq=INT,
                    ts_ms=INT,
                    actor={"type": ["integer", "null"]},
                    action=STR,
                    target={"type": ["string", "null"]},
                    details={"type": "object"},
                    hash=HEX32,
                ),
            },
        ),
        tags=("audit",),
    )
    table.add(
        "GET",
        f"{p}/audit/verify",
        _audit_verify,
        access=Permission.VIEW_AUDIT_LOG,
        api=True,
        summary="Check the audit log's hash chain",
        response=obj(
            ("ok", "rows", "first_bad_seq", "reason"),
            ok=BOOL,
            rows=INT,
            first_bad_seq={"type": ["integer", "null"]},
            reason={"type": ["string", "null"]},
        ),
        tags=("audit",),
    )
    table.add(
        "GET",
        f"{p}/profile",
        _get_profile,
        access=Permission.VIEW_DASHBOARD,
        api=True,
        summary="The organisation profile (the newest node.profile/1)",
        response=PROFILE,
        tags=("profile",),
    )
    table.add(
        "PUT",
        f"{p}/profile",
        _put_profile,
        access=Permission.EDIT_SETTINGS,
        api=True,
        summary="Edit the organisation profile (appends a new node.profile/1)",
        request=_PUT_PROFILE,
        response=PROFILE,
        tags=("profile",),
    )
    table.add(
        "GET",
        f"{p}/peers",
        _list_peers,
        access=Permission.MANAGE_PEERS,
        api=True,
        summary="Known nodes: state, contact, failures and how far behind them we are",
        response=obj(("peers",), peers={"type": "array", "items": PEER}),
        tags=("peers",),
    )
    for action, summary in (
        ("approve", "Approve a node after comparing its fingerprint (appends a vouch)"),
        ("block", "Block a node: never talk to it, never keep its feed (reason required)"),
        ("unblock", "Lift a block; the node is proposed again (peer is null for a non-peer)"),
    ):
        table.add(
            "POST",
            f"{p}/peers/{{id}}/{action}",
            _peer_action(action),
            access=Permission.MANAGE_PEERS,
            api=True,
            summary=summary,
            parameters=(_NODE_PARAM,),
            request=_PEER_ACTION,
            response=obj(("peer",), peer={**PEER, "type": ["object", "null"]}),
            tags=("peers",),
        )
    table.add(
        "GET",
        f"{p}/blocklist",
        _blocklist,
        access=Permission.MANAGE_PEERS,
        api=True,
        summary="Blocked authors (peers or not), oldest first",
        response=obj(
            ("blocks",),
            blocks={
                "type": "array",
                "items": obj(
                    ("author", "reason", "created_ms"), author=HEX32, reason=STR, created_ms=INT
                ),
            },
        ),
        tags=("peers",),
    )
    table.add(
        "POST",
        f"{p}/invites",
        _create_invite,
        access=Permission.MANAGE_PEERS,
        api=True,
        summary="Create a one-time invite token for another node (federated nodes only)",
        request=_NEW_INVITE,
        status=201,
        response=obj(
            ("token", "fingerprint", "expires_ms"), token=STR, fingerprint=STR, expires_ms=INT
        ),
        tags=("peers",),
    )
    table.add(
        "GET",
        f"{p}/oracle",
        _get_oracle,
        access=Permission.MANAGE_PEERS,
        api=True,
        summary="Pseudonym oracles: the configuration in force, how each oracle answered "
        "the latest evaluation, this node's pseudonym counts, its share, quota and use today",
        response=ORACLE,
        tags=("oracle",),
    )
    table.add(
        "PUT",
        f"{p}/oracle/quota",
        _put_oracle_quota,
        access=Permission.MANAGE_PEERS,
        api=True,
        summary="Set this node's daily quota per requesting node, as an oracle (audited)",
        request=_PUT_QUOTA,
        response=obj(("quota",), quota=INT),
        tags=("oracle",),
    )
    _add_message_routes(table)


_STATE: Final = {"type": "string", "enum": [*_OUT_STATES, "received"]}
_THREAD_PARAM: Final = {
    "name": "thread",
    "in": "path",
    "required": True,
    "schema": HEX32,
    "description": "the conversation id (64 hexadecimal characters)",
}
THREAD: Final = obj(
    ("thread", "peers", "subject", "last_ts", "unread", "state"),
    thread=HEX32,
    peers={"type": "array", "items": HEX32},
    subject=_NULLABLE_STR,
    last_ts={**INT, "description": "when its newest message was stored here (Unix ms)"},
    unread=INT,
    state={
        "type": ["string", "null"],
        "enum": [*_OUT_STATES, None],
        "description": "our newest message's least advanced state; null if we never wrote",
    },
)
MESSAGE: Final = obj(
    ("id", "direction", "peer", "text", "subject", "ts", "state", "recipients", "attachments"),
    id=HEX32,
    direction={"type": "string", "enum": ["in", "out"]},
    peer={**HEX32, "description": "the sender (in), or the first recipient (out)"},
    text=STR,
    subject=_NULLABLE_STR,
    ts={**INT, "description": "the sender's time stamp (Unix ms)"},
    state={
        **_STATE,
        "description": "in: received or read; out: the least advanced recipient's state",
    },
    recipients={
        "type": "array",
        "description": "out: one per recipient; in: empty",
        "items": obj(
            ("peer", "id", "state", "error"),
            peer=HEX32,
            id=HEX32,
            state=_STATE,
            error=_NULLABLE_STR,
        ),
    },
    attachments={
        "type": "array",
        "items": obj(("index", "name", "type", "size"), index=INT, name=STR, type=STR, size=INT),
    },
)


def _add_message_routes(table: RouteTable) -> None:
    p = PREFIX
    table.add(
        "GET",
        f"{p}/messages",
        _list_threads,
        access=Permission.MESSAGE,
        api=True,
        summary="Conversations with other organisations, newest first, and the unread count",
        parameters=(
            _query(
                "before_ts",
                _QUERY_INT,
                "conversations whose newest message is older (the last_ts of the page's last)",
            ),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 200},
                "conversations per page (at most 200, default 50)",
            ),
        ),
        response=obj(("unread", "threads"), unread=INT, threads={"type": "array", "items": THREAD}),
        tags=("messages",),
    )
    table.add(
        "GET",
        f"{p}/messages/{{thread}}",
        _get_thread,
        access=Permission.MESSAGE,
        api=True,
        summary="One conversation, oldest first; marks its incoming messages read",
        parameters=(_THREAD_PARAM,),
        response=obj(("messages",), messages={"type": "array", "items": MESSAGE}),
        tags=("messages",),
    )
    table.add(
        "POST",
        f"{p}/messages",
        _send_message,
        access=Permission.MESSAGE,
        api=True,
        summary="Send a text to peers (a new conversation, or a reply with thread); queued",
        request=_NEW_MESSAGE,
        status=201,
        response=obj(
            ("ids",),
            ids={
                "type": "array",
                "items": HEX32,
                "description": "the message ids, one per recipient in the order of to "
                "(a repeated recipient is sent to once)",
            },
        ),
        tags=("messages",),
    )
