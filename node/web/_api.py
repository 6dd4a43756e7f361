"""The JSON API under ``/api/v1``: the node, sessions, staff accounts, the audit log
and the organisation profile. Every route is declared with its access rule and its
schemas in :func:`add_api_routes`; ``/api/v1/openapi.json`` is built from the same
declarations (:mod:`._openapi`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Final

from aiohttp import web

import protocol
from node.accounts import Account, Permission, Role
from node.audit import AuditRecord

from ._errors import ApiError
from ._pipeline import clear_session_cookie, json_dumps, set_session_cookie
from ._routes import PUBLIC, SIGNED_IN, RouteTable
from ._schema import ACCOUNT, BOOL, HEX32, INT, PROFILE, ROLES, STR, SchemaError, check, obj
from ._services import current_account, current_session, services

__all__ = ["PREFIX", "account_json", "add_api_routes", "node_summary", "path_id"]

PREFIX: Final = "/api/v1"
#: Largest JSON body the API reads (the biggest legitimate one, a profile, is ~2 KiB).
_MAX_BODY: Final = 64 * 1024


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=json_dumps)


async def _body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
    raw = await request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise ApiError(413, "TOO_LARGE", f"the body exceeds {_MAX_BODY} bytes")
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


async def node_summary(request: web.Request) -> dict[str, Any]:
    """What the dashboard and ``GET /api/v1/node`` show."""
    svc = services(request)
    healthy = True
    try:
        await svc.db.ping()
        head = await svc.feeds.head(svc.identity.node_id)
        count = await svc.feeds.count()
    except Exception:  # the database is down: say so rather than fail the page
        healthy, head, count = False, None, 0
    return {
        "node_id": svc.identity.node_id.hex(),
        "fingerprint": svc.identity.fingerprint,
        "net": svc.config.net.hex(),
        "standalone": svc.config.standalone,
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


#: Query integers: at most 18 digits (they must fit a signed 64-bit column).
_QUERY_INT: Final = {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
_ID_PARAM: Final = {"name": "id", "in": "path", "required": True, "schema": INT}


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
