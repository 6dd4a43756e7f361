"""The Pseudonym oracles page in Chromium, in Arabic and English, on a node that is
oracle 1 of a dealt 2-of-2 configuration (its partner's server is gone, as an oracle
that is down would be): the page renders right to left or left to right, passes
axe-core with no serious or critical violation at 360 and 1280 px, nothing scrolls
sideways at 360 px, screenshots go to ``artifacts/screenshots/{lang}-oracles-...``; an
admin changes the daily quota with the form, and a refused value is shown accessibly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect

from node.clock import FakeClock
from node.oracle import deal, dealers_of, founder_of, import_share
from protocol import oprf
from tests.integration.fed_helpers import converge, federation, link

from .conftest import (
    BROWSER_LOCALE,
    LANGS,
    PASSWORD,
    REPO,
    WIDTHS,
    Api,
    Node,
    assert_accessible,
    assert_no_horizontal_scroll,
    screenshot,
    start_node,
    stop_node,
    submit,
)


async def prepare(tmp: Path) -> None:
    """Nodes ``tmp/a`` and ``tmp/b`` of one federation, approved to each other; a deals
    epoch 1 to a and b, b imports its share, and each computes one pseudonym (so a has
    one ready and counted one for itself and one for b today)."""
    clock = FakeClock(int(time.time() * 1000))
    async with federation(tmp, ["a", "b"], clock=clock) as nodes:
        a, b = nodes["a"], nodes["b"]
        await link(a, b)
        await converge([a, b])
        server_a, server_b = a.node.federation.oracle, b.node.federation.oracle
        assert server_a is not None and server_b is not None
        dealt = await deal(
            feeds=a.node.feeds,
            audit=a.node.audit,
            identity=a.node.identity,
            net=a.node.config.net,
            clock=clock,
            shares=server_a.shares,
            threshold=2,
            oracles=[a.id, b.id],
            random_bytes=os.urandom,
            founder=founder_of(a.node.config),
        )
        await converge([a, b])
        await import_share(
            dealt.files[b.id],
            feeds=b.node.feeds,
            scope=dealers_of(b.node.config),
            audit=b.node.audit,
            identity=b.node.identity,
            net=b.node.config.net,
            clock=clock,
            shares=server_b.shares,
        )
        item = oprf.PseudonymInput.from_national_id("198501234567")
        for fed in (a, b):
            service = fed.node.federation.pseudonyms
            assert service is not None
            assert (await service.resolve(item, timeout_s=30)).state == "ready"


@pytest.fixture(scope="module")
def oracle_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Api]]:
    """Node a of :func:`prepare` running on its own (b is not), its admin signed in over
    the API with :data:`PASSWORD`. The nodes are prepared in a child process: an event
    loop cannot run beside Playwright's synchronous API."""
    tmp = tmp_path_factory.mktemp("ui-oracles")
    script = "import asyncio, sys, pathlib; from tests.ui.test_oracles import prepare; "
    script += "asyncio.run(prepare(pathlib.Path(sys.argv[1])))"
    prepared = subprocess.run(
        [sys.executable, "-c", script, str(tmp)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert prepared.returncode == 0, prepared.stderr
    running = start_node(tmp / "a", "--no-discovery")
    try:
        api = Api(running)
        api.first_sign_in("admin", running.first_password)
        api.sign_in("admin", PASSWORD)
        yield running, api
    finally:
        stop_node(running)


@pytest.fixture
def admin_context(
    browser: Browser, oracle_node: tuple[Node, Api]
) -> Iterator[Callable[..., BrowserContext]]:
    """``admin_context(lang, width=360)``: a browser context on the oracle node, signed
    in as its admin, its UI language set."""
    node, _api = oracle_node
    contexts: list[BrowserContext] = []

    def make(lang: str, width: int = 360) -> BrowserContext:
        context = browser.new_context(
            base_url=node.url,
            locale=BROWSER_LOCALE[lang],
            viewport={"width": width, "height": WIDTHS.get(width, 900)},
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        response = context.request.post(
            "/api/v1/session", data={"username": "admin", "password": PASSWORD}
        )
        assert response.ok, response.text()
        context.add_cookies([{"name": "watan_lang", "value": lang, "url": node.url}])
        return context

    yield make
    for context in contexts:
        context.close()


def _check_widths(axe: Axe, page: Page, name: str) -> None:
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        assert_accessible(axe, page, f"{name}-{width}")
        if width == 360:
            assert_no_horizontal_scroll(page, width)
        assert screenshot(page, f"{name}-{width}").stat().st_size > 0


@pytest.mark.parametrize("lang", LANGS)
def test_oracles_page_is_accessible_at_both_widths(
    admin_context: Callable[..., BrowserContext], axe: Axe, lang: str
) -> None:
    page = admin_context(lang).new_page()
    response = page.goto("/oracles")
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    expect(page.locator(".site-nav a[href='/oracles']")).to_have_attribute("aria-current", "page")
    expect(page.locator("h1")).to_have_text(
        "عقد الأسماء المستعارة" if lang == "ar" else "Pseudonym oracles"
    )
    # the configuration: oracle 1 is this node, oracle 2 the other organisation
    rows = page.locator("dd.oracle")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("هذه العقدة" if lang == "ar" else "This node")
    expect(rows.nth(1)).to_contain_text("منظمة b" if lang == "ar" else "Org b")
    expect(page.locator("#pseudonyms-ready")).to_have_text("١" if lang == "ar" else "1")
    expect(page.locator("#share-index")).to_have_text("١" if lang == "ar" else "1")
    # today's use: this node and b, one pseudonym each
    usage = page.locator("section[aria-labelledby='usage-heading'] table").first
    expect(usage.locator("tbody tr")).to_have_count(2)
    _check_widths(axe, page, f"{lang}-oracles")


@pytest.mark.parametrize(("lang", "quota"), [("ar", 25_000), ("en", 30_000)])
def test_the_quota_form(
    admin_context: Callable[..., BrowserContext],
    oracle_node: tuple[Node, Api],
    axe: Axe,
    lang: str,
    quota: int,
) -> None:
    _node, api = oracle_node
    page = admin_context(lang).new_page()
    page.goto("/oracles")
    field = page.locator("#f-quota")
    # The browser itself refuses a number out of range: nothing is sent.
    field.fill("0")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    field.press("Enter")
    assert field.evaluate("input => input.validity.rangeUnderflow") is True
    assert posts == [] and page.url.endswith("/oracles")
    # Without the browser's check, the node refuses it too, and says so accessibly.
    page.locator("form[action='/oracles/quota']").evaluate("form => form.noValidate = true")
    response = submit(page, page.locator("form[action='/oracles/quota'] button[type=submit]"))
    assert response.status == 422
    expect(page.locator(".flash-error")).to_be_visible()
    expect(page.locator("#f-quota")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-quota-error")).to_have_text(
        "عدد صحيح من ١ إلى ١٠٬٠٠٠٬٠٠٠." if lang == "ar" else "A whole number from 1 to 10,000,000."
    )
    _check_widths(axe, page, f"{lang}-oracles-quota-refused")
    assert api.call("GET", "/api/v1/oracle")["quota"] != 0
    # A valid quota is saved and shown, in the page's digits.
    page.locator("#f-quota").fill(str(quota))
    response = submit(page, lambda: page.locator("#f-quota").press("Enter"))
    assert response.status == 303
    expect(page).to_have_url(re.compile(r"/oracles\?done=quota$"))
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page.locator("#f-quota")).to_have_value(str(quota))
    shown = f"{quota:,}"
    if lang == "ar":
        shown = shown.replace(",", "٬").translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    expect(page.locator("#quota-value")).to_contain_text(shown)
    assert api.call("GET", "/api/v1/oracle")["quota"] == quota
