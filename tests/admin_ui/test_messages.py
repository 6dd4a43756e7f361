"""The messages pages in process (aiohttp test client, real node services): a web node
whose ``Services.messages`` talks to a peer :class:`MessageService` through the
in-process transport of ``tests/node/test_messages.py``. Both languages, CSRF, roles
(only coordinators), composing with attachments and its errors, a conversation with
its delivery states, downloads, and the server-sent event stream."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.accounts import Role
from node.storage import Database
from protocol._kinds import MAX_ATTACHMENTS, MAX_ATTACHMENTS_BYTES
from tests.node.test_messages import Network, Node, join, make_node, pair
from tests.node.web_helpers import WebNode, csrf_field, web_node

A, C, W, R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR
PAGES = ("/messages", "/messages/new")


@asynccontextmanager
async def messaging(tmp_path: Path) -> AsyncIterator[tuple[WebNode, Node, Node]]:
    """A web node (A) with messaging, and a peer (B) it is approved with."""
    async with web_node(tmp_path / "a") as web:
        node = web.node
        network = Network(web.clock, net=node.config.net)
        profile = await node.feeds.latest_of_kind(node.identity.node_id, "node.profile/1")
        assert profile is not None
        a = join(
            network,
            "A",
            node.identity,
            node.db,
            node.feeds,
            node.audit,
            profile,
            secrets.token_bytes,
        )
        db = Database.from_url(f"sqlite:///{tmp_path / 'b.db'}")
        try:
            b = await make_node(network, "B", 2, db)
            await pair(network, a, b)
            web.services.messages = a.service
            yield web, a, b
        finally:
            web.services.messages = None
            await db.close()


@pytest.fixture
async def msg(tmp_path: Path) -> AsyncIterator[tuple[WebNode, Node, Node]]:
    async with messaging(tmp_path) as found:
        yield found


async def _get(web: WebNode, path: str, role: Role = C, lang: str = "ar") -> tuple[int, str]:
    response = await web.request("GET", path, web.staff[role], cookies={"watan_lang": lang})
    return response.status, await response.text()


def _form(fields: dict[str, Any], files: list[tuple[str, bytes, str]] = ()) -> aiohttp.FormData:  # type: ignore[assignment]
    data = aiohttp.FormData()
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            data.add_field(name, item)
    for filename, content, media_type in files:
        data.add_field("attachments", content, filename=filename, content_type=media_type)
    return data


async def _post(
    web: WebNode,
    fields: dict[str, Any],
    files: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
    lang: str = "ar",
    csrf: bool = True,
) -> Any:
    staff = web.staff[C]
    headers = {} if csrf else {"X-CSRF-Token": "x" * 43}
    return await web.request(
        "POST",
        "/messages",
        staff,
        data=_form(fields, files),
        headers=headers,
        cookies={"watan_lang": lang},
    )


def _main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def _english_words(html: str) -> list[str]:
    text = re.sub(r"<code[^>]*>.*?</code>|<[^>]+>|&[a-z#0-9]+;", " ", _main(html), flags=re.S)
    allowed = {"JPEG", "Excel", "Word"}
    return [w for w in re.findall(r"\b[A-Za-z]{4,}\b", text) if w not in allowed]


# -- without messaging, and who may enter ----------------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_a_node_without_messaging_explains_and_hides_the_link(
    tmp_path: Path, lang: str
) -> None:
    async with web_node(tmp_path / "n") as web:
        web.services.messages = None  # a build without messaging
        for path in (*PAGES, "/messages/events", "/messages/" + "0" * 64):
            response = await web.request("GET", path, web.staff[C], cookies={"watan_lang": lang})
            assert response.status == 503, path
            assert response.headers["X-Watan-Error"] == "MESSAGING_UNAVAILABLE"
            html = await response.text()
            assert ("اتحاد" if lang == "ar" else "federation") in html
        posted = await _post(web, {"to": "0" * 64, "text": "x"}, lang=lang)
        assert posted.status == 503
        _status, html = await _get(web, "/dashboard", lang=lang)
        assert 'href="/messages"' not in html and "messages.js" not in html


async def test_only_coordinators_reach_the_messages_pages(
    msg: tuple[WebNode, Node, Node],
) -> None:
    web, _a, b = msg
    thread = (await _send_from(b, web, "hello"))[1]
    paths = [*PAGES, f"/messages/{thread}", f"/messages/{thread}/attachments/{'0' * 64}/0"]
    for role in (A, W, R):
        for path in paths:
            response = await web.request("GET", path, web.staff[role])
            assert (response.status, response.headers.get("X-Watan-Error")) == (
                403,
                "FORBIDDEN",
            ), (role, path)
        _status, html = await _get(web, "/dashboard", role)
        assert 'href="/messages"' not in html and "messages.js" not in html
        refused = await web.request("POST", "/messages", web.staff[role], data={"text": "x"})
        assert refused.status == 403
    anonymous = await web.request("GET", "/messages")
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/login")
    _status, html = await _get(web, "/dashboard", C)
    assert re.findall(r'<li><a href="([^"]+)"', html) == [
        "/dashboard",
        "/messages",
        "/queue",
        "/households",
        "/distributions",
        "/reports",
        "/password",
    ]
    assert '<script src="/static/messages.js" defer></script>' in html


async def _send_from(b: Node, web: WebNode, text: str, **kwargs: Any) -> tuple[bytes, str]:
    """B sends to A; A stores it. Returns (message id, thread hex)."""
    a_id = web.node.identity.node_id
    [message] = await b.service.send(account_id=None, to=[a_id], text=text, **kwargs)
    await b.service.deliver_due()
    threads = await web.services.messages.threads()  # type: ignore[union-attr]
    found = [t for t in threads if b.identity.node_id in t.peers]
    return message, found[0].thread.hex()


# -- pages in both languages ---------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_inbox_thread_and_compose_render_in_both_languages(
    msg: tuple[WebNode, Node, Node], lang: str
) -> None:
    web, a, b = msg
    _status, html = await _get(web, "/messages", lang=lang)
    assert ("لا توجد رسائل بعد" if lang == "ar" else "No messages yet") in html
    _first, thread = await _send_from(b, web, "الأولى", subject="خطة التوزيع")
    web.clock.advance(60_000)
    message, _same = await _send_from(
        b,
        web,
        "الثانية\nسطر ثانٍ",
        attachments=[("بيانات.csv", "text/csv", b"a,b\n1,2\n")],
        thread=bytes.fromhex(thread),
    )
    # The inbox: the thread, its subject, peer name, dates in both calendars, unread.
    status, html = await _get(web, "/messages", lang=lang)
    assert status == 200
    assert f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">' in html
    main = _main(html)
    assert f'href="/messages/{thread}"' in main and "خطة التوزيع" in main
    assert ("منظمة B" if lang == "ar" else "Organisation B") in main
    assert ("رسالتان غير مقروءتين" if lang == "ar" else "2 unread messages") in html
    assert ("هـ" if lang == "ar" else " AH") in main  # the Hijri date
    badge = re.search(r"data-unread-count>([^<]+)<", html)
    assert badge is not None and badge.group(1) == ("٢" if lang == "ar" else "2")
    if lang == "ar":
        assert not _english_words(html), _english_words(html)
    # The conversation: opening it reads it (and queues "read" receipts to B).
    status, html = await _get(web, f"/messages/{thread}", lang=lang)
    assert status == 200 and "الثانية\nسطر ثانٍ" in html
    assert f"/messages/{thread}/attachments/{message.hex()}/0" in html
    assert ("جدول CSV" if lang == "ar" else "CSV table") in html
    assert 'name="thread" value="' + thread + '"' in html and csrf_field(html)
    assert await a.service.unread_count() == 0
    if lang == "ar":
        assert not _english_words(html), _english_words(html)
    await a.service.deliver_due()
    # Compose: the peer is offered, fields are labelled.
    status, html = await _get(web, "/messages/new", lang=lang)
    assert status == 200 and csrf_field(html)
    assert f'value="{b.identity.node_id.hex()}"' in html
    for field in ("f-subject", "f-text", "f-attachments"):
        assert f'<label for="{field}">' in html, field
    assert 'enctype="multipart/form-data"' in html
    if lang == "ar":
        assert not _english_words(html), _english_words(html)


# -- composing and sending ------------------------------------------------------------------


async def test_compose_send_deliver_and_see_the_states(msg: tuple[WebNode, Node, Node]) -> None:
    web, a, b = msg
    peer = b.identity.node_id.hex()
    fields = {"to": peer, "subject": "خطة", "text": "سطر أول\r\nسطر ثانٍ"}
    refused = await _post(web, fields, csrf=False)
    assert refused.status == 403 and await a.service.threads() == []
    sent = await _post(web, fields, [("plan.pdf", b"%PDF-1.7 tiny", "application/octet-stream")])
    assert (sent.status, sent.headers["Location"]) == (303, "/messages?done=sent")
    [summary] = await a.service.threads()
    thread = summary.thread.hex()
    status, html = await _get(web, f"/messages/{thread}", lang="en")
    assert status == 200 and "Waiting to be sent" in html and "سطر أول\nسطر ثانٍ" in html
    await a.service.deliver_due()
    _status, html = await _get(web, f"/messages/{thread}", lang="en")
    assert "Delivered" in html
    [b_thread] = await b.service.threads()
    [view] = await b.service.thread(b_thread.thread)
    assert (view.subject, view.text) == ("خطة", "سطر أول\nسطر ثانٍ")
    assert [(x.name, x.type) for x in view.attachments] == [("plan.pdf", "application/pdf")]
    await b.service.mark_thread_read(b_thread.thread, account_id=None)
    await b.service.deliver_due()
    _status, html = await _get(web, f"/messages/{thread}", lang="ar")
    assert "قُرئت" in html
    # A reply in the thread goes to the thread's peer.
    web.clock.advance(60_000)
    reply = await _post(web, {"thread": thread, "text": "رد"})
    assert (reply.status, reply.headers["Location"]) == (303, f"/messages/{thread}?done=sent")
    await a.service.deliver_due()
    texts = [v.text for v in await b.service.thread(b_thread.thread)]
    assert texts == ["سطر أول\nسطر ثانٍ", "رد"]
    rows = await web.node.audit.query(action="message.sent")
    assert len(rows) == 2 and all(r.actor == web.staff[C].account.id for r in rows)


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_compose_errors_are_translated_and_keep_what_was_typed(
    msg: tuple[WebNode, Node, Node], lang: str
) -> None:
    web, a, b = msg
    peer = b.identity.node_id.hex()
    typed = {"to": peer, "subject": "موضوع مكتوب", "text": "نص طويل كتبه المنسق"}
    _status, html = await _get(web, "/messages/new", lang=lang)
    found = re.search(r'data-max-bytes="([0-9]+)"', html)
    assert found is not None
    most = int(found.group(1))  # 768 KiB, or less if the node's body limit is lower
    assert 0 < most <= MAX_ATTACHMENTS_BYTES
    cases = [
        ([("big.csv", bytes(most + 1), "text/csv")], None),
        ([("page.html", b"<html>", "text/html")], "page.html"),
        ([("empty.txt", b"", "text/plain")], "empty.txt"),
        ([("x.exe", b"MZ", "application/octet-stream")], "x.exe"),
        ([(f"{i}.txt", b"x", "text/plain") for i in range(MAX_ATTACHMENTS + 1)], None),
    ]
    for files, name in cases:
        response = await _post(web, typed, files, lang=lang)
        assert response.status == 422, files[0][0]
        html = await response.text()
        assert "موضوع مكتوب" in html and "نص طويل كتبه المنسق" in html
        assert f'value="{peer}" checked' in html
        assert 'aria-invalid="true"' in html
        assert ("لم تُرسَل الرسالة" if lang == "ar" else "The message was not sent.") in html
        if name is not None:
            assert f"«{name}»" in html if lang == "ar" else f"“{name}”" in html
    nobody = await _post(web, {"subject": "s", "text": "t"}, lang=lang)
    assert nobody.status == 422
    assert ("اختر منظمة واحدة" if lang == "ar" else "Choose at least one") in await nobody.text()
    empty = await _post(web, {"to": peer, "text": "  "}, lang=lang)
    assert empty.status == 422
    assert ("اكتب رسالة" if lang == "ar" else "Write a message") in await empty.text()
    stranger = await _post(web, {"to": "ab" * 32, "text": "x"}, lang=lang)
    assert stranger.status == 422 and 'id="to-error"' in await stranger.text()
    bidi = await _post(web, {"to": peer, "text": "x", "subject": "a\u202eb"}, lang=lang)
    assert bidi.status == 422 and 'id="f-subject-error"' in await bidi.text()
    assert await a.service.threads() == []  # nothing was stored


async def test_downloads_are_attachments_of_their_thread_only(
    msg: tuple[WebNode, Node, Node],
) -> None:
    web, _a, b = msg
    message, thread = await _send_from(
        b, web, "file", attachments=[("تقرير «أيار».pdf", "application/pdf", b"%PDF-1")]
    )
    _other, other_thread = await _send_from(b, web, "other")
    ok = await web.request("GET", f"/messages/{thread}/attachments/{message.hex()}/0", web.staff[C])
    assert ok.status == 200 and await ok.read() == b"%PDF-1"
    assert ok.headers["Content-Type"] == "application/pdf"
    assert ok.headers["X-Content-Type-Options"] == "nosniff"
    disposition = ok.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''" in disposition and "%D8%AA" in disposition
    for path in (
        f"/messages/{other_thread}/attachments/{message.hex()}/0",  # another thread
        f"/messages/{thread}/attachments/{message.hex()}/1",  # no such index
        f"/messages/{thread}/attachments/{message.hex()}/x",
        f"/messages/{thread}/attachments/{'0' * 64}/0",
        f"/messages/{thread.upper()}",
        f"/messages/{'0' * 64}",
        "/messages/nothex",
    ):
        response = await web.request("GET", path, web.staff[C])
        assert response.status == 404, path


# -- live updates ------------------------------------------------------------------------------


async def _event(response: Any) -> tuple[str, str]:
    """The next ``event:``/``data:`` pair of a text/event-stream response."""
    name = data = ""
    async with asyncio.timeout(5):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and name:
                return name, data


async def test_the_event_stream_tells_of_new_messages_and_the_unread_count(
    msg: tuple[WebNode, Node, Node],
) -> None:
    web, a, b = msg
    left = asyncio.Event()
    a.service._subscribers = _Watched(left)
    response = await web.request(
        "GET", "/messages/events", web.staff[C], cookies={"watan_lang": "ar"}
    )
    try:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        assert (await response.content.readline()) == b"retry: 5000\n"
        assert await _event(response) == (
            "unread",
            '{"count": 0, "badge": "٠", "label": "لا توجد رسائل غير مقروءة"}',
        )
        _message, thread = await _send_from(b, web, "live")
        assert await _event(response) == ("message", '{"thread": "' + thread + '"}')
        assert await _event(response) == (
            "unread",
            '{"count": 1, "badge": "١", "label": "رسالة واحدة غير مقروءة"}',
        )
        await a.service.send(
            account_id=None, to=[b.identity.node_id], text="x", thread=bytes.fromhex(thread)
        )
        assert await _event(response) == ("state", '{"thread": "' + thread + '"}')
        assert len(a.service._subscribers) == 1
    finally:
        response.close()
    # The stream ends with the browser: the subscription goes away.
    async with asyncio.timeout(5):
        await left.wait()
    assert not a.service._subscribers


class _Watched(set[Any]):
    """The service's subscriber set, telling when a subscription leaves."""

    def __init__(self, left: asyncio.Event) -> None:
        super().__init__()
        self.left = left

    def discard(self, item: Any) -> None:
        super().discard(item)
        self.left.set()


async def test_shutdown_ends_open_event_streams(tmp_path: Path) -> None:
    async with messaging(tmp_path) as (web, a, _b):
        response = await web.request("GET", "/messages/events", web.staff[C])
        await _event(response)
        a.service.close()  # what the app's on_shutdown hook does
        async with asyncio.timeout(5):
            rest = await response.content.read()
        assert rest == b""
        response.close()
