"""Messages in Chromium: a coordinator composes and sends to a peer organisation,
replies in a conversation and sees delivery states change; the unread badge and the
inbox update live through server-sent events, without a reload; axe-core finds no
serious or critical violation on the messages pages in Arabic and English, nothing
scrolls sideways at 360 px, and screenshots at 360 and 1280 px are saved.

The node here runs in process (in a thread with its own event loop): a web node whose
messages go to a peer :class:`MessageService` through the in-process transport of
``tests/node/test_messages.py``, so the test can deliver, and send from the peer, at
the moments it chooses.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, expect

from node.accounts import Role
from tests.admin_ui.test_messages import messaging
from tests.node.test_messages import Node

from .conftest import (
    BROWSER_LOCALE,
    LANGS,
    WIDTHS,
    assert_accessible,
    assert_no_horizontal_scroll,
    screenshot,
    submit,
)

T = TypeVar("T")
STATE = {
    "ar": {"queued": "بانتظار الإرسال", "delivered": "وصلت", "read": "قُرئت"},
    "en": {"queued": "Waiting to be sent", "delivered": "Delivered", "read": "Read"},
}
ONE = {"ar": "١", "en": "1"}


class Served:
    """A messaging web node and its peer, served from a thread of their own."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ui-node")
        self.thread.start()
        self.stack = AsyncExitStack()
        self.web, self.a, self.b = self.run(self.stack.enter_async_context(messaging(tmp_path)))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    @property
    def url(self) -> str:
        return str(self.web.client.make_url("")).rstrip("/")

    def close(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()

    def peer_sends(
        self, text: str, *, subject: str | None = None, thread: bytes | None = None
    ) -> None:
        """The peer writes to this node and delivers at once."""

        async def send() -> None:
            to = [self.web.node.identity.node_id]
            await self.b.service.send(
                account_id=None, to=to, text=text, subject=subject, thread=thread
            )
            await self.b.service.deliver_due()

        self.run(send())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        yield server
    finally:
        server.close()


def _context(browser: Browser, served: Served, lang: str, width: int = 360) -> BrowserContext:
    context = browser.new_context(
        base_url=served.url,
        locale=BROWSER_LOCALE[lang],
        viewport={"width": width, "height": WIDTHS.get(width, 900)},
    )
    context.set_default_timeout(10_000)
    token = served.web.staff[Role.COORDINATOR].token
    context.add_cookies(
        [
            {"name": "watan_session", "value": token, "url": served.url},
            {"name": "watan_lang", "value": lang, "url": served.url},
        ]
    )
    return context


def _open_live(page: Page, path: str) -> None:
    """Open a page and wait until its event stream is connected."""
    with page.expect_response(lambda r: r.url.endswith("/messages/events")):
        page.goto(path)


@pytest.mark.parametrize("lang", LANGS)
def test_the_badge_and_the_inbox_update_live(
    browser: Browser, served: Served, axe: Axe, lang: str
) -> None:
    context = _context(browser, served, lang)
    try:
        page = context.new_page()
        _open_live(page, "/dashboard")
        badge = page.locator(".site-nav [data-unread-badge]")
        expect(badge).to_be_hidden()
        served.peer_sends("تحديث عن التوزيع", subject="توزيع الشتاء")
        expect(badge).to_be_visible()
        expect(badge.locator("[data-unread-count]")).to_have_text(ONE[lang])
        # The inbox: the new thread arrives without a reload.
        _open_live(page, "/messages")
        page.evaluate("window.stillHere = true")
        served.web.clock.advance(60_000)
        served.peer_sends("رسالة ثانية", subject="تقرير الصحة")
        expect(page.locator("#message-list")).to_contain_text("تقرير الصحة")
        expect(badge.locator("[data-unread-count]")).to_have_text("٢" if lang == "ar" else "2")
        expect(page.locator("[data-unread-total]")).to_contain_text(
            "رسالتان" if lang == "ar" else "2 unread"
        )
        assert page.evaluate("window.stillHere") is True, "the page was reloaded"
        expect(page.locator("[data-live-status]")).not_to_have_text("")
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            assert_accessible(axe, page, f"{lang}-messages-{width}")
            if width == 360:
                assert_no_horizontal_scroll(page, width)
            screenshot(page, f"{lang}-messages-{width}")
    finally:
        context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_compose_reply_and_watch_the_delivery_states(
    browser: Browser, served: Served, axe: Axe, lang: str
) -> None:
    context = _context(browser, served, lang)
    try:
        page = context.new_page()
        page.goto("/messages")
        page.locator(".messages-head a.button").click()
        expect(page).to_have_url(re.compile(r"/messages/new$"))
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            assert_accessible(axe, page, f"{lang}-messages-new-{width}")
            if width == 360:
                assert_no_horizontal_scroll(page, width)
            screenshot(page, f"{lang}-messages-new-{width}")
        page.set_viewport_size({"width": 360, "height": WIDTHS[360]})
        # Too large for a message: refused in the browser, nothing is uploaded.
        files = page.get_by_label("المرفقات" if lang == "ar" else "Attachments")
        files.set_input_files(
            [FilePayload(name="big.pdf", mimeType="application/pdf", buffer=bytes(800 * 1024))]
        )
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.locator("main button[type=submit]").click()
        limit = files.get_attribute("data-max-bytes")
        assert limit is not None and 0 < int(limit) <= 768 * 1024
        expect(page.locator("[data-attachments-error]")).to_have_text(
            files.get_attribute("data-too-large") or "?"
        )
        assert posts == [] and page.url.endswith("/messages/new")
        # Keyboard: choose the peer, write, attach, send.
        peer = page.get_by_label("منظمة B" if lang == "ar" else "Organisation B")
        peer.focus()
        page.keyboard.press("Space")
        expect(peer).to_be_checked()
        page.get_by_label("الموضوع" if lang == "ar" else "Subject").fill("اجتماع التنسيق")
        page.get_by_label("نص الرسالة" if lang == "ar" else "Message", exact=True).fill(
            "موعدنا الأحد\nشكراً"
        )
        files.set_input_files(
            [FilePayload(name="agenda.txt", mimeType="text/plain", buffer="جدول الأعمال".encode())]
        )
        posted = submit(page, page.locator("main button[type=submit]"))
        assert posted.status == 303
        expect(page).to_have_url(re.compile(r"/messages\?done=sent$"))
        expect(page.locator(".flash-success")).to_be_visible()
        page.locator("#message-list a", has_text="اجتماع التنسيق").click()
        expect(page.locator(".message-out .message-state")).to_have_text(STATE[lang]["queued"])
        thread = page.url.rsplit("/", 1)[-1]
        page.evaluate("window.stillHere = true")
        # Delivery and the peer's receipts change the state on the open page.
        with page.expect_response(lambda r: r.url.endswith("/messages/events")):
            page.reload()
        page.evaluate("window.stillHere = true")
        served.run(served.a.service.deliver_due())
        expect(page.locator(".message-out .message-state")).to_have_text(STATE[lang]["delivered"])
        _peer_reads(served)
        expect(page.locator(".message-out .message-state")).to_have_text(STATE[lang]["read"])
        assert page.evaluate("window.stillHere") is True, "the page was reloaded"
        [view] = served.run(_peer_thread(served.b))
        assert view.text == "موعدنا الأحد\nشكراً" and view.attachments[0].name == "agenda.txt"
        # The peer answers in the thread: it appears while the reply form keeps its text.
        reply = page.get_by_label("نص الرسالة" if lang == "ar" else "Message", exact=True)
        reply.fill("مسودة لم تُرسل")
        page.locator("h1").click()  # focus leaves the form; the text stays
        served.web.clock.advance(60_000)  # later than ours: shown after it
        served.peer_sends("نعم، موعدنا الأحد", thread=bytes.fromhex(thread))
        expect(page.locator(".message-in .message-text")).to_have_text("نعم، موعدنا الأحد")
        expect(reply).to_have_value("مسودة لم تُرسل")
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            assert_accessible(axe, page, f"{lang}-messages-thread-{width}")
            if width == 360:
                assert_no_horizontal_scroll(page, width)
            screenshot(page, f"{lang}-messages-thread-{width}")
        served.web.clock.advance(60_000)
        reply.fill("شكراً لكم")
        submit(page, page.locator("main button[type=submit]"))
        expect(page).to_have_url(re.compile(rf"/messages/{thread}\?done=sent$"))
        expect(page.locator(".message-out .message-state").last).to_have_text(STATE[lang]["queued"])
    finally:
        context.close()


def _peer_reads(served: Served) -> None:
    async def read() -> None:
        [thread] = await served.b.service.threads()
        await served.b.service.mark_thread_read(thread.thread, account_id=None)
        await served.b.service.deliver_due()

    served.run(read())


async def _peer_thread(b: Node) -> list[Any]:
    [thread] = await b.service.threads()
    return await b.service.thread(thread.thread)
