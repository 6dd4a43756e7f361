"""Messages between peer organisations: the inbox, composing (with attachments), a
conversation with its delivery states, attachment downloads, and a server-sent event
stream that keeps the unread badge and open pages current (``static/messages.js``).

Every route requires ``Permission.MESSAGE`` (coordinators). On a node built without
messaging (``Services.messages`` is None) the pages answer 503 with an explanation
and the navigation hides the link.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import unicodedata
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

import protocol
from node.accounts import Account, Permission, allowed
from node.federation import (
    MessageError,
    MessageErrorCode,
    MessageService,
    MessageView,
    PeerName,
    ThreadSummary,
)
from node.storage import StorageError
from node.web import SERVICES, current_account, services

from ._i18n import LOCALES, N_, Locale, get_locale
from ._page import RENDERER, locale_of, render

__all__ = [
    "HEARTBEAT_S",
    "attachment",
    "compose",
    "events",
    "inbox",
    "install",
    "send",
    "thread_page",
]

#: A comment line this often keeps proxies and phones' networks from closing an idle
#: event stream (many drop idle connections after 30-60 s), and finds a browser that
#: went away (the write fails).
HEARTBEAT_S: Final = 15.0
#: Tell EventSource to reconnect after 5 s when the stream breaks (its default is
#: about 3 s; a node restarting takes longer).
_RETRY_MS: Final = 5_000
_INBOX_PAGE: Final = 30
#: What a message form needs besides its files: the text (at most 32 KiB), subject,
#: CSRF token and multipart framing.
_FORM_MARGIN: Final = 40 * 1024
#: File types by extension. The browser's declared type is ignored: it varies by
#: system (a CSV is ``application/vnd.ms-excel`` on Windows); the recipient gets the
#: type named here, from the list the protocol allows (SPEC §5.8).
_EXTENSIONS: Final = {
    ".pdf": "application/pdf",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".csv": "text/csv",
    ".txt": "text/plain",
}
_TYPE_LABELS: Final = {
    "application/pdf": N_("PDF document"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": N_("Excel sheet"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": N_("Word document"),
    "image/jpeg": N_("JPEG picture"),
    "image/png": N_("PNG picture"),
    "text/csv": N_("CSV table"),
    "text/plain": N_("Text file"),
}
_STATE_LABELS: Final = {
    "queued": N_("Waiting to be sent"),
    "relayed": N_("Passed to a relay node"),
    "delivered": N_("Delivered"),
    "read": N_("Read"),
    "failed": N_("Not delivered"),
}
_ERRORS: Final = {
    MessageErrorCode.NO_RECIPIENT: N_("Choose at least one organisation."),
    MessageErrorCode.UNKNOWN_RECIPIENT: N_(
        "This node does not yet hold the profile of one of the organisations chosen. "
        "Try again after the next synchronisation."
    ),
    MessageErrorCode.NOT_A_PEER: N_(
        "One of the organisations chosen cannot be reached from this node."
    ),
    MessageErrorCode.TOO_LARGE: N_("The message is too long (at most 32 KB of text)."),
    MessageErrorCode.INVALID: N_(
        "The subject or the text contains characters that are not allowed, or the "
        "subject is longer than 200 bytes."
    ),
}
_DONE: Final = {"sent": N_("The message was queued; it is sent as soon as the peer answers.")}
_HEX32: Final = re.compile(r"[0-9a-f]{64}")
_DIGITS: Final = re.compile(r"[0-9]{1,2}")


# -- helpers ---------------------------------------------------------------------------


def _service(request: web.Request) -> MessageService | None:
    return services(request).messages


def _unavailable(request: web.Request) -> web.Response:
    locale = locale_of(request)
    response = render(
        request,
        "messages_unavailable.html",
        locale.gettext(N_("Messages")),
        status=503,
    )
    response.headers["X-Watan-Error"] = "MESSAGING_UNAVAILABLE"
    return response


def _hex32(text: str) -> bytes:
    """A 32-byte id from its lowercase hex in the path, else 404."""
    if not _HEX32.fullmatch(text):
        raise web.HTTPNotFound()
    return bytes.fromhex(text)


def _name(names: dict[bytes, PeerName], peer: bytes, locale: Locale) -> str:
    found = names.get(peer)
    if found is None:
        return locale.gettext(N_("Unknown organisation")) + f" ({peer.hex()[:8]})"
    first, second = (
        (found.name_ar, found.name_en)
        if locale.code == "ar"
        else (
            found.name_en,
            found.name_ar,
        )
    )
    return first or second


def _list(locale: Locale, items: list[str]) -> str:
    return ("، " if locale.code == "ar" else ", ").join(items)


def _unread_label(locale: Locale, n: int) -> str:
    if n == 0:
        return locale.gettext(N_("No unread messages"))
    text = locale.ngettext("%(n)s unread message", "%(n)s unread messages", n)
    return text % {"n": locale.number(n)}


def _size(locale: Locale, size: int) -> str:
    if size < 1024:
        return locale.ngettext("%(n)s byte", "%(n)s bytes", size) % {"n": locale.number(size)}
    return locale.gettext(N_("%(n)s KB")) % {"n": locale.number(-(-size // 1024))}


def _state(locale: Locale, state: str) -> dict[str, str]:
    return {"state": state, "label": locale.gettext(_STATE_LABELS.get(state, state))}


def _limits(request: web.Request, locale: Locale) -> dict[str, Any]:
    """The attachment rules as the forms state and ``messages.js`` checks them.

    The size is the protocol's (768 KiB, SPEC §5.8), or less if the node's request
    body limit is lower: an upload the node would refuse before reading it (413)
    is stopped in the browser, with the user's text still in the form.
    """
    most = max(0, min(protocol.MAX_ATTACHMENTS_BYTES, request.client_max_size - _FORM_MARGIN))
    kib = most // 1024
    hint = locale.gettext(
        N_("PDF, Word, Excel, CSV, text, JPEG or PNG; at most %(count)s files, %(size)s KB in all.")
    ) % {"count": locale.number(protocol.MAX_ATTACHMENTS), "size": locale.number(kib)}
    too_large = locale.gettext(
        N_("The attachments are larger than %(size)s KB in all. Choose fewer or smaller files.")
    ) % {"size": locale.number(kib)}
    return {
        "attachments_hint": hint,
        "attachments_too_large": too_large,
        "max_bytes": most,
        "accept": ",".join(sorted(_EXTENSIONS)),
    }


# -- the inbox ---------------------------------------------------------------------------


async def inbox(request: web.Request) -> web.Response:
    """GET /messages: conversations, newest first."""
    messages = _service(request)
    if messages is None:
        return _unavailable(request)
    locale = locale_of(request)
    before = request.query.get("before", "")
    before_ms = int(before) if before.isascii() and before.isdigit() and len(before) < 16 else None
    threads = await messages.threads(limit=_INBOX_PAGE, before_ms=before_ms)
    names = await messages.names(peer for t in threads for peer in t.peers)
    unread = await messages.unread_count()
    next_href = None
    if len(threads) == _INBOX_PAGE:
        next_href = f"/messages?before={threads[-1].last_ms}"
    return render(
        request,
        "messages.html",
        locale.gettext(N_("Messages")),
        flash=_done(request, locale),
        threads=[_thread_row(t, names, locale) for t in threads],
        unread_label=_unread_label(locale, unread),
        next_href=next_href,
    )


def _thread_row(t: ThreadSummary, names: dict[bytes, PeerName], locale: Locale) -> dict[str, Any]:
    return {
        "href": f"/messages/{t.thread.hex()}",
        "subject": t.subject or locale.gettext(N_("(no subject)")),
        "peers": _list(locale, [_name(names, peer, locale) for peer in t.peers]),
        "last_ms": t.last_ms,
        "unread": t.unread,
        "unread_label": _unread_label(locale, t.unread) if t.unread else "",
        "state": _state(locale, t.last_state) if t.last_state else None,
    }


def _done(request: web.Request, locale: Locale) -> list[tuple[str, str]]:
    key = request.query.get("done")
    return [("success", locale.gettext(_DONE[key]))] if key in _DONE else []


# -- composing and sending ----------------------------------------------------------------


async def compose(
    request: web.Request,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    """GET /messages/new (``?to=HEX`` preselects a peer)."""
    messages = _service(request)
    if messages is None:
        return _unavailable(request)
    locale = locale_of(request)
    recipients = [
        {"id": peer.hex(), "name": name_ar if locale.code == "ar" else name_en}
        for peer, name_ar, name_en in await messages.recipients()
    ]
    if values is None:
        values = {"to": request.query.getall("to", []), "subject": "", "text": ""}
    return render(
        request,
        "messages_new.html",
        locale.gettext(N_("New message")),
        status=status,
        flash=[("error", locale.gettext(N_("The message was not sent.")))] if errors else [],
        recipients=recipients,
        values=values,
        errors=errors or {},
        **_limits(request, locale),
    )


async def send(request: web.Request) -> web.Response:
    """POST /messages: a new message (fields ``to``) or a reply (field ``thread``)."""
    messages = _service(request)
    if messages is None:
        return _unavailable(request)
    locale = locale_of(request)
    form = await request.post()
    text = str(form.get("text", "")).replace("\r\n", "\n")
    subject = str(form.get("subject", ""))[:300]
    thread_hex = str(form.get("thread", ""))
    thread = bytes.fromhex(thread_hex) if _HEX32.fullmatch(thread_hex) else None
    if thread is not None:
        views = await messages.thread(thread)
        if not views:
            raise web.HTTPNotFound()
        to = _thread_peers(views)
        values: dict[str, Any] = {"to": [peer.hex() for peer in to], "subject": "", "text": text}
    else:
        chosen = [str(v) for v in form.getall("to", []) if _HEX32.fullmatch(str(v))]
        to = [bytes.fromhex(v) for v in dict.fromkeys(chosen)]
        values = {"to": chosen, "subject": subject, "text": text}
    limits = _limits(request, locale)
    attachments, errors = _attachments(form, locale, limits)
    if not to:
        errors["to"] = locale.gettext(_ERRORS[MessageErrorCode.NO_RECIPIENT])
    if thread is None and not _subject_ok(subject):
        errors["subject"] = locale.gettext(_ERRORS[MessageErrorCode.INVALID])
    if not text.strip() and not attachments and "attachments" not in errors:
        errors["text"] = locale.gettext(N_("Write a message or attach a file."))
    if not errors:
        try:
            await messages.send(
                account_id=current_account(request).id,
                to=to,
                text=text,
                subject=subject if thread is None else None,
                attachments=attachments,
                thread=thread,
            )
        except MessageError as error:
            errors[_field_of(error.code)] = _error_text(limits, locale, error.code)
        else:
            target = thread.hex() if thread else None
            raise web.HTTPSeeOther(
                f"/messages/{target}?done=sent" if target else "/messages?done=sent"
            )
    if "attachments" not in errors and attachments:
        errors["attachments"] = locale.gettext(
            N_("Browsers do not keep chosen files after an error: choose them again.")
        )
    if thread is not None:
        return await thread_page(request, status=422, values=values, errors=errors)
    return await compose(request, status=422, values=values, errors=errors)


def _subject_ok(subject: str) -> bool:
    """Whether the protocol takes this subject (single-line text of 200 bytes)."""
    try:
        protocol.TextMessage(text="", subject=subject.strip() or None)
    except protocol.ProtocolError:
        return False
    return True


def _field_of(code: MessageErrorCode) -> str:
    if code is MessageErrorCode.BAD_ATTACHMENT:
        return "attachments"
    if code in (MessageErrorCode.TOO_LARGE, MessageErrorCode.INVALID):
        return "text"
    return "to"


def _error_text(limits: dict[str, Any], locale: Locale, code: MessageErrorCode) -> str:
    if code is MessageErrorCode.BAD_ATTACHMENT:
        return str(limits["attachments_hint"])
    return locale.gettext(_ERRORS[code])


def _attachments(
    form: Any, locale: Locale, limits: dict[str, Any]
) -> tuple[list[tuple[str, str, bytes]], dict[str, str]]:
    """The uploaded files as ``(name, type, data)``, and a field error if any breaks
    the rules (type by extension, not empty, count, total size)."""
    found: list[tuple[str, str, bytes]] = []
    for item in form.getall("attachments", []):
        if not isinstance(item, web.FileField):
            continue
        data = item.file.read(protocol.MAX_ATTACHMENTS_BYTES + 1)
        if not item.filename and not data:
            continue  # the empty part a browser sends when no file was chosen
        name = _file_name(item.filename or "")
        media_type = _EXTENSIONS.get(_extension(name))
        if media_type is None or not data:
            return [], {
                "attachments": locale.gettext(
                    N_("“%(name)s” cannot be sent: it is empty or not an allowed type.")
                )
                % {"name": name}
                + " "
                + str(limits["attachments_hint"])
            }
        found.append((name, media_type, data))
    total = sum(len(data) for _n, _t, data in found)
    too_large = total > limits["max_bytes"]
    if len(found) > protocol.MAX_ATTACHMENTS or too_large:
        text = limits["attachments_too_large"] if too_large else limits["attachments_hint"]
        return [], {"attachments": str(text)}
    return found, {}


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _file_name(raw: str) -> str:
    """A file name the protocol accepts (SPEC §5.1.5, text 128): the last path part,
    without control or bidirectional formatting characters, trimmed, at most 128
    bytes (the extension kept)."""
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    name = " ".join(name.split())
    extension = _extension(name)
    stem = name[: len(name) - len(extension)] if extension else name
    while len((stem + extension).encode("utf-8")) > 128:
        stem = stem[:-1]
    name = (stem.strip() + extension).strip()
    return name if name and not name.startswith(".") else "attachment" + extension


# -- a conversation ----------------------------------------------------------------------


def _thread_peers(views: list[MessageView]) -> list[bytes]:
    peers: list[bytes] = []
    for view in views:
        for peer in [view.sender] if view.direction == "in" else [r.peer for r in view.recipients]:
            if peer not in peers:
                peers.append(peer)
    return peers


async def thread_page(
    request: web.Request,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    """GET /messages/{thread}: the conversation, oldest first; opening it marks its
    incoming messages read (and sends "read" receipts)."""
    messages = _service(request)
    if messages is None:
        return _unavailable(request)
    locale = locale_of(request)
    thread = _hex32(request.match_info["thread"])
    if status == 200:
        await messages.mark_thread_read(thread, account_id=current_account(request).id)
    views = await messages.thread(thread)
    if not views:
        raise web.HTTPNotFound()
    peers = _thread_peers(views)
    names = await messages.names(peers)
    profile = services(request).profiles.latest
    us = (profile.name_ar if locale.code == "ar" else profile.name_en) if profile else None
    rows = [_view_row(v, names, locale, us or locale.gettext(N_("This node"))) for v in views]
    subject = next((v.subject for v in views if v.subject), None)
    return render(
        request,
        "messages_thread.html",
        subject or locale.gettext(N_("Conversation")),
        status=status,
        flash=_done(request, locale)
        if errors is None
        else [("error", locale.gettext(N_("The reply was not sent.")))],
        thread_hex=thread.hex(),
        views=rows,
        peers_label=_list(locale, [_name(names, peer, locale) for peer in peers]),
        values=values or {"text": ""},
        errors=errors or {},
        **_limits(request, locale),
    )


def _view_row(
    view: MessageView, names: dict[bytes, PeerName], locale: Locale, us: str
) -> dict[str, Any]:
    base = f"/messages/{view.thread.hex()}/attachments/{view.id.hex()}"
    return {
        "direction": view.direction,
        "from": _name(names, view.sender, locale) if view.direction == "in" else us,
        "ts": view.ts,
        "subject": view.subject,
        "text": view.text,
        "attachments": [
            {
                "href": f"{base}/{a.index}",
                "name": a.name,
                "type": locale.gettext(_TYPE_LABELS.get(a.type, a.type)),
                "size": _size(locale, a.size),
            }
            for a in view.attachments
        ],
        "recipients": [
            {"name": _name(names, r.peer, locale), **_state(locale, r.state)}
            for r in view.recipients
        ],
    }


async def attachment(request: web.Request) -> web.StreamResponse:
    """GET /messages/{thread}/attachments/{message}/{index}: a download."""
    messages = _service(request)
    if messages is None:
        return _unavailable(request)
    thread = _hex32(request.match_info["thread"])
    message = _hex32(request.match_info["message"])
    index_text = request.match_info["index"]
    if not _DIGITS.fullmatch(index_text):
        raise web.HTTPNotFound()
    views = await messages.thread(thread)
    if not any(v.id == message or message in {r.message for r in v.recipients} for v in views):
        raise web.HTTPNotFound()
    found = await messages.attachment(message, int(index_text))
    if found is None:
        raise web.HTTPNotFound()
    # RFC 6266 §4.3: an ASCII ``filename`` for old clients, the UTF-8 name in ``filename*``.
    fallback = "".join(_ascii(c) for c in found.name)
    encoded = quote(found.name, safe="")
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    return web.Response(
        body=found.data,
        headers={"Content-Type": found.type, "Content-Disposition": disposition},
    )


def _ascii(c: str) -> str:
    return c if c.isascii() and c.isprintable() and c not in '"\\;' else "_"


# -- live updates --------------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _unread_data(locale: Locale, n: int) -> dict[str, Any]:
    return {"count": n, "badge": locale.number(n), "label": _unread_label(locale, n)}


async def events(request: web.Request) -> web.StreamResponse:
    """GET /messages/events: ``text/event-stream`` of ``unread`` (the count, its
    badge text and label) and ``message``/``state`` (a thread changed), with a
    heartbeat comment every :data:`HEARTBEAT_S`; it ends when the browser leaves."""
    messages = _service(request)
    if messages is None:
        return _unavailable(request)
    locale = locale_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",  # nginx: do not hold the stream back
        }
    )
    async with messages.subscribe() as subscription:
        await response.prepare(request)
        try:
            await response.write(f"retry: {_RETRY_MS}\n\n".encode())
            count = await messages.unread_count()
            await response.write(_sse("unread", _unread_data(locale, count)))
            while request.transport is not None and not request.transport.is_closing():
                try:
                    event = await asyncio.wait_for(anext(subscription), HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                except StopAsyncIteration:
                    break
                if event.kind == "unread" and event.unread is not None:
                    await response.write(_sse("unread", _unread_data(locale, event.unread)))
                elif event.thread is not None:
                    await response.write(_sse(event.kind, {"thread": event.thread.hex()}))
        except ConnectionResetError:  # the browser went away mid-write
            pass
    return response


# -- wiring ---------------------------------------------------------------------------------


def _nav_link(app: web.Application, locale: Locale, user: Account | None) -> dict[str, Any] | None:
    """What ``base.html`` shows for the Messages link: None to hide it."""
    svc = app[SERVICES]
    if (
        svc.messages is None
        or user is None
        or user.must_change_password
        or not allowed(user.role, Permission.MESSAGE)
    ):
        return None
    n = svc.messages.last_unread_count or 0
    return {"unread": n, "badge": locale.number(n), "label": _unread_label(locale, n)}


def install(app: web.Application) -> None:
    """Template global for the navigation badge; unread count at start-up; event
    streams end at shutdown (so that stopping the node does not wait for them)."""
    for code in LOCALES:
        environment = app[RENDERER].environment(code)
        environment.globals["messages_link"] = functools.partial(_nav_link, app, get_locale(code))

    async def startup(app: web.Application) -> None:
        messages = app[SERVICES].messages
        if messages is not None:
            try:
                await messages.unread_count()
            except StorageError:  # the database is down at start: the badge shows later
                pass

    async def shutdown(app: web.Application) -> None:
        messages = app[SERVICES].messages
        if messages is not None:
            messages.close()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
