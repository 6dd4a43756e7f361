"""The Peers page: this node's federation, invites, the nodes it knows (approve, block,
unblock), the blocklist (CSV export and import) and fork reports.

Trust is never automatic (DESIGN §4): approving needs the admin's word that they
compared the other node's fingerprint with its admin, and the server checks the box
was ticked. Invite tokens are shown once, in the response to the POST that made them,
and never stored or logged (the node keeps only a hash of the invite's secret).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

import segno
from aiohttp import web
from markupsafe import Markup, escape

import protocol
from node.federation import (
    FED_PREFIX,
    FederationError,
    FederationErrorCode,
    FederationService,
    Peer,
    make_invite,
)
from node.web import Services, current_account, node_summary, services

from ._choices import ERRORS
from ._i18n import N_, TIMEZONE, Locale
from ._names import Names
from ._page import locale_of, render, unavailable

__all__ = [
    "MAX_BLOCKLIST_BYTES",
    "block_by_id",
    "create_invite",
    "export_blocklist",
    "import_blocklist",
    "peer_action",
    "peers_page",
]

#: Largest blocklist CSV accepted. A row is a 64-character id and a reason of at most
#: 500 characters; a federation of hundreds of nodes fits in a few tens of KiB, so
#: 1 MiB is generous while keeping a mistaken upload (a photo) cheap to refuse.
#: (The web application's own body limit applies first; see the report of #peers.)
MAX_BLOCKLIST_BYTES: Final = 1024 * 1024
#: How many lagging feeds a peer's card lists before "and N more".
_LAG_SHOWN: Final = 5
#: Invite validity in hours: 1 to 30 days, as ``watan invite create --ttl-hours``.
_TTL_HOURS: Final = (1, 720)
_DEFAULT_TTL_HOURS: Final = 72
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
#: What an invite may carry as this node's address (SPEC §12: printable ASCII URL).
_URL: Final = re.compile(r"https?://[!-~]{1,224}")

STATES: Final = {
    "proposed": N_("Waiting for approval"),
    "approved": N_("Approved"),
    "blocked": N_("Blocked"),
}
SOURCES: Final = {
    "lan": N_("Found on the local network"),
    "invite": N_("Joined through an invite"),
    "manual": N_("Added by an administrator"),
}
_DONE: Final = {
    "approve": N_("The node was approved: this node now replicates its feed."),
    "block": N_("The node was blocked: this node no longer talks to it or keeps its feed."),
    "unblock": N_("The block was lifted; the node waits for approval again."),
    "import": N_("The blocklist was imported. Newly blocked: %(n)s."),
}
#: The blocklist parser's reasons (``node.federation.parse_blocklist``), translated;
#: a reason not listed here is shown in English inside a translated sentence.
_CSV_REASONS: Final = {
    "the first line must be the header author,reason[,blocked_at_ms]": N_(
        "the first line must be the header author,reason[,blocked_at_ms]"
    ),
    "expected author,reason[,blocked_at_ms]": N_(
        "expected the columns author,reason[,blocked_at_ms]"
    ),
    "author is not a 64-character hex node id": N_(
        "the author is not a node id of 64 hexadecimal characters"
    ),
    "give a reason": N_("the reason is missing"),
    "a reason is one line of at most 500 characters": N_(
        "a reason is one line of at most 500 characters"
    ),
    "blocked_at_ms is not a number": N_("blocked_at_ms is not a number"),
}
_CSV_LINE: Final = re.compile(r"line (\d+): (.*)", re.S)
_CSV_TOO_MANY: Final = re.compile(r"more than (\d+) rows")
_FED_ERRORS: Final = {
    FederationErrorCode.BAD_REASON: N_("Give a reason: one line of at most 500 characters."),
    FederationErrorCode.SELF: N_("That is this node's own id."),
    FederationErrorCode.UNKNOWN_PEER: N_("This node is not known here."),
    FederationErrorCode.STANDALONE: N_("This node has not joined a federation yet."),
}
_UNAVAILABLE: Final = N_("Federation is not available on this node.")


# -- reading ---------------------------------------------------------------------------


async def _peer_view(
    peer: Peer, fed: FederationService, names: Names, lag: dict[bytes, int]
) -> dict[str, Any]:
    state = fed.replicator.snapshot().get(peer.node_id)
    behind = sorted(lag.items(), key=lambda item: (-item[1], item[0]))
    progress = None
    if state is not None and state.progress is not None:
        progress = {
            "author": await names.label(state.progress.author),
            "done": state.progress.done,
            "target": state.progress.target,
        }
    return {
        "peer": peer,
        "hex": peer.node_id.hex(),
        "name": await names.of(peer.node_id),
        "lag": [(await names.label(author), n) for author, n in behind[:_LAG_SHOWN]],
        "lag_more": max(0, len(behind) - _LAG_SHOWN),
        "progress": progress,
        "breaker_open": state is not None and state.breaker_open,
    }


def _url_default(fed: FederationService) -> str:
    """The address field's default: the node's public URL without the federation
    prefix (what an admin would type; the prefix is added back)."""
    return (fed.public_url or "").removesuffix(FED_PREFIX)


def _federation(request: web.Request) -> FederationService | None:
    return services(request).federation


def _unavailable(request: web.Request) -> web.Response:
    return unavailable(request, _UNAVAILABLE)


def _done(request: web.Request, locale: Locale) -> list[tuple[str, str]]:
    key = request.query.get("done")
    if key not in _DONE:
        return []
    text = locale.gettext(_DONE[key])
    if key == "import":
        raw = request.query.get("n", "")
        count = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
        text = text % {"n": locale.number(count)}
    return [("success", text)]


async def peers_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    forms: dict[str, Any] | None = None,
    invite: dict[str, Any] | None = None,
) -> web.Response:
    """GET /peers, and every form's re-render with its errors and typed values.

    Args:
        forms: per form (``invite``, ``block``, ``import``, or a peer's hex id):
            ``{"values": {field: text}, "errors": {field: translated message}}``.
        invite: a just-created invite to show once (token, QR code, fingerprint).
    """
    fed = _federation(request)
    if fed is None:
        return _unavailable(request)
    locale = locale_of(request)
    names = Names(fed, locale)
    lags = await fed.lags()
    peers = [
        await _peer_view(peer, fed, names, lags.get(peer.node_id, {}))
        for peer in await fed.peers.all()
    ]
    blocks = [
        {
            "hex": block.author.hex(),
            "fingerprint": protocol.fingerprint(block.author),
            "name": await names.of(block.author),
            "reason": block.reason,
            "created_ms": block.created_ms,
        }
        for block in await fed.peers.blocks()
    ]
    forks = [
        {
            "hex": fork.author.hex(),
            "fingerprint": protocol.fingerprint(fork.author),
            "name": await names.of(fork.author),
            "seq": fork.seq,
            "found_ms": fork.found_ms,
        }
        for fork in await fed.feeds.forks()
    ]
    forms = dict(forms or {})
    forms.setdefault(
        "invite",
        {"values": {"url": _url_default(fed), "ttl_hours": str(_DEFAULT_TTL_HOURS)}, "errors": {}},
    )
    forms.setdefault("block", {"values": {"node_id": "", "reason": ""}, "errors": {}})
    forms.setdefault("import", {"values": {}, "errors": {}})
    return render(
        request,
        "peers.html",
        locale.gettext(N_("Peers")),
        status=status,
        flash=flash if flash is not None else _done(request, locale),
        node=await node_summary(request),
        peers=peers,
        blocks=blocks,
        forks=forks,
        forms=forms,
        invite=invite,
        states={key: locale.gettext(label) for key, label in STATES.items()},
        sources={key: locale.gettext(label) for key, label in SOURCES.items()},
        ttl_hours=_TTL_HOURS,
        max_upload_kib=MAX_BLOCKLIST_BYTES // 1024,
    )


# -- invites ---------------------------------------------------------------------------


def _qr_svg(token: str, label: str) -> Markup:
    """The token as an inline SVG QR code (low error correction: the densest code that
    a phone camera still reads off a screen), labelled for screen readers."""
    code = segno.make(token, error="l")
    width, height = code.symbol_size(scale=3)
    svg = code.svg_inline(scale=3, dark="#000", light="#fff", omitsize=True)
    # A viewBox and a size: it shrinks with a narrow screen instead of overflowing.
    attributes = f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}"'
    svg = svg.replace("<svg ", f"<svg {attributes} ", 1)
    return Markup(svg)  # segno's own markup; the label is escaped above


async def create_invite(request: web.Request) -> web.Response:
    """POST /peers/invites: a one-time invite, shown once (never stored or logged)."""
    svc = services(request)
    fed = _federation(request)
    if fed is None:
        return _unavailable(request)
    locale = locale_of(request)
    form = await request.post()
    values = {
        "url": str(form.get("url", "")).strip()[:300],
        "ttl_hours": str(form.get("ttl_hours", "")).strip()[:10],
    }
    errors: dict[str, str] = {}
    url = values["url"].rstrip("/")
    if not _URL.fullmatch(url):
        errors["url"] = locale.gettext(
            N_("An address such as http://10.0.0.5:8470, without spaces.")
        )
    ttl = values["ttl_hours"]
    low, high = _TTL_HOURS
    if not (ttl.isascii() and ttl.isdigit() and low <= int(ttl) <= high):
        errors["ttl_hours"] = locale.gettext(N_("A whole number of hours from 1 to 720."))
    if fed.standalone:
        standalone = _FED_ERRORS[FederationErrorCode.STANDALONE]
        return await _invite_refused(request, locale, values, errors, 409, standalone)
    if errors:
        return await _invite_refused(request, locale, values, errors, 422, ERRORS["INVALID"])
    if not url.endswith(FED_PREFIX):
        url += FED_PREFIX
    try:
        made = await _make_invite(svc, fed, url, int(ttl), current_account(request).id)
    except protocol.ProtocolError:  # the protocol's own URL rule, stricter than ours
        errors["url"] = locale.gettext(
            N_("An address such as http://10.0.0.5:8470, without spaces.")
        )
        return await _invite_refused(request, locale, values, errors, 422, ERRORS["INVALID"])
    except FederationError as error:
        text = _FED_ERRORS.get(error.code, ERRORS["CONFLICT"])
        return await _invite_refused(request, locale, values, errors, 409, text)
    token = made.to_token()
    shown = {
        "token": token,
        "qr": _qr_svg(token, locale.gettext(N_("QR code of the invite token"))),
        "fingerprint": protocol.fingerprint(made.node),
        "expires_ms": made.expires,
    }
    return await peers_page(request, status=201, flash=[], invite=shown)


async def _make_invite(
    svc: Services, fed: FederationService, url: str, ttl_hours: int, actor: int
) -> Any:
    return await make_invite(
        svc.config,
        fed.peers,
        identity=svc.identity,
        url=url,
        clock=svc.clock,
        random_bytes=svc.random_bytes,
        ttl_ms=ttl_hours * 3600 * 1000,
        actor=actor,
    )


async def _invite_refused(
    request: web.Request,
    locale: Locale,
    values: dict[str, str],
    errors: dict[str, str],
    status: int,
    message: str,
) -> web.Response:
    return await peers_page(
        request,
        status=status,
        flash=[("error", locale.gettext(message))],
        forms={"invite": {"values": values, "errors": errors}},
    )


# -- approve, block, unblock -------------------------------------------------------------


def _fed_error_text(locale: Locale, error: FederationError) -> str:
    return locale.gettext(_FED_ERRORS.get(error.code, ERRORS["CONFLICT"]))


def _status_of(error: FederationError) -> int:
    return {
        FederationErrorCode.BAD_REASON: 422,
        FederationErrorCode.SELF: 422,
        FederationErrorCode.UNKNOWN_PEER: 404,
    }.get(error.code, 409)


async def peer_action(request: web.Request) -> web.Response:
    """POST /peers/{id}/{action}: approve (fingerprint compared), block (a reason),
    unblock (a peer back to proposed, or a non-peer off the blocklist)."""
    fed = _federation(request)
    if fed is None:
        return _unavailable(request)
    locale = locale_of(request)
    action = request.match_info["action"]
    node_hex = request.match_info["id"]
    if action not in ("approve", "block", "unblock") or not _HEX64.fullmatch(node_hex):
        raise web.HTTPNotFound()
    node_id = bytes.fromhex(node_hex)
    form = await request.post()
    actor = current_account(request).id
    peer = await fed.peers.get(node_id)
    reason = str(form.get("reason", ""))[:2000]
    values = {"reason": reason}

    async def refuse(status: int, message: str, field: str | None = None) -> web.Response:
        text = locale.gettext(message)
        errors = {field: text} if field is not None else {}
        return await peers_page(
            request,
            status=status,
            flash=[("error", text)],
            forms={node_hex: {"values": values, "errors": errors}},
        )

    try:
        if action == "approve":
            if peer is None:
                raise web.HTTPNotFound()
            if peer.state != "proposed":
                return await refuse(409, N_("Only a node waiting for approval can be approved."))
            if form.get("confirm") != "yes":
                return await refuse(
                    422,
                    N_(
                        "Compare the fingerprint with the other organisation's administrator "
                        "and tick the box before approving."
                    ),
                    "confirm",
                )
            await fed.peers.set_state(node_id, "approved", actor=actor)
        elif action == "block":
            if peer is None:
                raise web.HTTPNotFound()
            if peer.state == "blocked":
                return await refuse(409, N_("This node is blocked already."))
            await fed.peers.set_state(node_id, "blocked", actor=actor, reason=reason)
        elif peer is not None and peer.state == "blocked":
            await fed.peers.set_state(node_id, "proposed", actor=actor)
        elif node_id in await fed.peers.blocked_ids():
            await fed.peers.unblock_author(node_id, actor=actor)
        else:
            return await refuse(409, N_("This node is not blocked."))
    except FederationError as error:
        field = "reason" if error.code is FederationErrorCode.BAD_REASON else None
        message = _FED_ERRORS.get(error.code, ERRORS["CONFLICT"])
        return await refuse(_status_of(error), message, field)
    raise web.HTTPSeeOther(f"/peers?done={action}")


# -- the blocklist ------------------------------------------------------------------------


async def block_by_id(request: web.Request) -> web.Response:
    """POST /peers/block: block an author by node id (a peer or not)."""
    fed = _federation(request)
    if fed is None:
        return _unavailable(request)
    locale = locale_of(request)
    form = await request.post()
    values = {
        "node_id": str(form.get("node_id", "")).strip()[:200],
        "reason": str(form.get("reason", ""))[:2000],
    }
    errors: dict[str, str] = {}
    node_hex = values["node_id"].lower()
    if not _HEX64.fullmatch(node_hex):
        errors["node_id"] = locale.gettext(
            N_("A node id is 64 hexadecimal characters (0-9 and a-f).")
        )
    if not values["reason"].strip():
        errors["reason"] = locale.gettext(_FED_ERRORS[FederationErrorCode.BAD_REASON])
    status, message = 422, locale.gettext(ERRORS["INVALID"])
    if not errors:
        try:
            await fed.peers.block_author(
                bytes.fromhex(node_hex), reason=values["reason"], actor=current_account(request).id
            )
        except FederationError as error:
            status, message = _status_of(error), _fed_error_text(locale, error)
            field = "reason" if error.code is FederationErrorCode.BAD_REASON else "node_id"
            errors[field] = message
        else:
            raise web.HTTPSeeOther("/peers?done=block")
    return await peers_page(
        request,
        status=status,
        flash=[("error", message)],
        forms={"block": {"values": values, "errors": errors}},
    )


async def export_blocklist(request: web.Request) -> web.Response:
    """GET /peers/blocklist.csv: the blocklist as CSV (``watan blocklist import`` and
    the import form on other nodes read it)."""
    fed = _federation(request)
    if fed is None:
        return _unavailable(request)
    text = await fed.peers.export_blocklist()
    now = dt.datetime.fromtimestamp(services(request).now_ms() / 1000, tz=TIMEZONE)
    name = f"watan-blocklist-{now.date().isoformat()}.csv"
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def csv_error_text(locale: Locale, message: str) -> str:
    """A blocklist parse error, ``line N: reason``, as a translated sentence; a reason
    we have no translation for is kept in English inside it."""
    match = _CSV_LINE.fullmatch(message)
    line, why = (int(match.group(1)), match.group(2)) if match else (0, message)
    if why in _CSV_REASONS:
        reason = locale.gettext(_CSV_REASONS[why])
    elif too_many := _CSV_TOO_MANY.fullmatch(why):
        reason = locale.gettext(N_("more than %(n)s rows")) % {
            "n": locale.number(int(too_many.group(1)))
        }
    else:
        reason = why
    if line == 0:
        return locale.gettext(N_("Nothing was imported: %(reason)s")) % {"reason": reason}
    return locale.gettext(N_("Nothing was imported. Line %(line)s: %(reason)s")) % {
        "line": locale.number(line),
        "reason": reason,
    }


async def import_blocklist(request: web.Request) -> web.Response:
    """POST /peers/blocklist: add a CSV file's rows to the blocklist, all or nothing."""
    fed = _federation(request)
    if fed is None:
        return _unavailable(request)
    locale = locale_of(request)
    form = await request.post()
    upload = form.get("file")
    problem: str | None = None
    text = ""
    if not isinstance(upload, web.FileField):
        problem = locale.gettext(N_("Choose a CSV file to import."))
    else:
        data = upload.file.read(MAX_BLOCKLIST_BYTES + 1)
        if len(data) > MAX_BLOCKLIST_BYTES:
            problem = locale.gettext(N_("The file is larger than %(kib)s KiB.")) % {
                "kib": locale.number(MAX_BLOCKLIST_BYTES // 1024)
            }
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                problem = locale.gettext(N_("The file is not UTF-8 text. Save it as CSV (UTF-8)."))
    if problem is None:
        try:
            added = await fed.peers.import_blocklist(text, actor=current_account(request).id)
        except FederationError as error:
            if error.code is FederationErrorCode.BAD_CSV:
                problem = csv_error_text(locale, error.message)
            else:
                problem = _fed_error_text(locale, error)
        else:
            raise web.HTTPSeeOther(f"/peers?done=import&n={added}")
    return await peers_page(
        request,
        status=422,
        flash=[("error", problem)],
        forms={"import": {"values": {}, "errors": {"file": problem}}},
    )
