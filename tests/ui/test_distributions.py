"""Distributions, the queue and reports in Chromium, on a node prepared with three
synthetic households and a distribution that picked two of them: on a 360 px phone in
Arabic a case worker opens the distribution and marks a delivery with its large
button; the queue reads in English; a coordinator's reports and distributions pages
in Arabic. Each page passes axe-core with no serious or critical violation, nothing
scrolls sideways at 360 px, and screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, expect

import protocol
from node.clock import FakeClock

from .conftest import (
    BROWSER_LOCALE,
    PASSWORD,
    REPO,
    Api,
    Node,
    assert_accessible,
    assert_no_horizontal_scroll,
    screenshot,
    start_node,
    stop_node,
    submit,
)

WIDTH, HEIGHT = 360, 740
ROLES = ("coordinator", "case_worker")


async def prepare(data: Path) -> None:
    """A node in ``data`` with three synthetic households (scored by the default
    model) and the distribution "Winter food baskets" for two, picked from the queue."""
    from node.ataa import DistributionPlan
    from node.daemon import init_node
    from tools._synthetic import households

    clock = FakeClock(int(time.time() * 1000))
    node, _ = await init_node(data, clock=clock)
    try:
        await node.ataa.start()
        for record in households(7, 3):
            await node.ataa.households.create(record, actor=None)
        made = await node.ataa.distributions.create(
            DistributionPlan(
                title="سلال غذائية للشتاء",
                program="winter-2026",
                category="food",
                unit="basket",
                quantity=1,
                value_iqd=75_000,
                target_count=2,
            ),
            actor=None,
        )
        assert await node.ataa.distributions.pick(made.id, actor=None) == 2
        # another organisation's allocations, as replication would bring them: the
        # reports' federation view has a chart to check
        key, net, head = protocol.signing_key(bytes(range(32, 64))), node.federation.net, None
        bodies: list[protocol.Body] = [
            protocol.Profile(
                enc_key=bytes(32),
                endpoints=[],
                governorate="IQG08",
                name_ar="منظمة الأمل",
                name_en="Hope Relief",
                registration="NGO-1",
                role="ngo",
                sectors=["food_security"],
            ),
            *(
                protocol.Allocation(
                    category="food",
                    date=date,
                    district="IQG08Q01",
                    epoch=1,
                    program="winter-2026",
                    pseudonym=bytes([n]) * 32,
                    quantity=2,
                    unit="basket",
                    value_iqd=50_000,
                )
                for n, date in enumerate(("2026-04-20", "2026-05-20"), start=1)
            ),
        ]
        for body in bodies:
            entry = protocol.append(head, body, key=key, net=net, now_ms=clock.now_ms())
            head = protocol.head_after(head, entry)
            assert (
                await node.feeds.ingest(entry.wire, net=net, now_ms=clock.now_ms())
            ).status == "stored"
    finally:
        await node.close()


@pytest.fixture(scope="module")
def dist_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The prepared node running, with a coordinator and a case worker whose password
    is :data:`PASSWORD`. Prepared in a child process: an event loop cannot run beside
    Playwright's synchronous API."""
    data = tmp_path_factory.mktemp("ui-distributions") / "node"
    script = "import asyncio, sys, pathlib; from tests.ui.test_distributions import prepare; "
    script += "asyncio.run(prepare(pathlib.Path(sys.argv[1])))"
    prepared = subprocess.run(
        [sys.executable, "-c", script, str(data)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert prepared.returncode == 0, prepared.stderr
    running = start_node(data, "--no-discovery")
    try:
        admin = Api(running)
        admin.first_sign_in("admin", running.first_password)
        for role in ROLES:
            created = admin.call(
                "POST",
                "/api/v1/accounts",
                {"username": role.replace("_", "-"), "display_name": f"Test {role}", "role": role},
            )
            Api(running).first_sign_in(role.replace("_", "-"), created["one_time_password"])
        yield running
    finally:
        stop_node(running)


@pytest.fixture
def context(browser: Browser, dist_node: Node) -> Iterator[Callable[[str, str], BrowserContext]]:
    """``context(lang, role)``: a 360 px browser context on the prepared node, signed
    in as ``role``, its UI language set."""
    contexts: list[BrowserContext] = []

    def make(lang: str, role: str) -> BrowserContext:
        made = browser.new_context(
            base_url=dist_node.url,
            locale=BROWSER_LOCALE[lang],
            viewport={"width": WIDTH, "height": HEIGHT},
        )
        made.set_default_timeout(10_000)
        contexts.append(made)
        response = made.request.post(
            "/api/v1/session",
            data={"username": role.replace("_", "-"), "password": PASSWORD},
        )
        assert response.ok, response.text()
        made.add_cookies([{"name": "watan_lang", "value": lang, "url": dist_node.url}])
        return made

    yield make
    for made in contexts:
        made.close()


def test_case_worker_marks_a_delivery_on_a_phone(
    context: Callable[[str, str], BrowserContext], axe: Axe
) -> None:
    page = context("ar", "case_worker").new_page()
    page.goto("/distributions")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.get_by_role("link", name="سلال غذائية للشتاء").click()
    expect(page.locator("h1")).to_have_text("سلال غذائية للشتاء")
    rows = page.locator("li.dist-row")
    expect(rows).to_have_count(2)
    first = rows.first
    expect(first).to_have_attribute("data-state", "planned")
    hid = first.get_attribute("id")
    assert_accessible(axe, page, "ar-distribution-360")
    assert_no_horizontal_scroll(page, WIDTH)
    screenshot(page, "ar-distribution-360")
    button = first.locator(".deliver-form button")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= WIDTH * 0.7
    response = submit(page, button)
    assert response.status == 303
    row = page.locator(f"li#{hid}")
    expect(row).to_have_attribute("data-state", "delivered")
    expect(row.locator(".deliver-form")).to_have_count(0)
    expect(page.locator(".flash-success")).to_have_count(1)
    expect(page.locator("li.dist-row[data-state=planned]")).to_have_count(1)
    assert_accessible(axe, page, "ar-distribution-delivered-360")
    assert_no_horizontal_scroll(page, WIDTH)
    screenshot(page, "ar-distribution-delivered-360")


def test_queue_in_english(context: Callable[[str, str], BrowserContext], axe: Axe) -> None:
    page = context("en", "coordinator").new_page()
    response = page.goto("/queue")
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    expect(page.locator("h1")).to_have_text("Priority queue")
    expect(page.locator(".site-nav a[href='/queue']")).to_have_attribute("aria-current", "page")
    expect(page.locator("li.queue-item")).to_have_count(3)
    expect(page.locator("li.queue-item").first.locator(".rank")).to_have_text("No. 1")
    expect(page.locator("#f-window_days")).to_have_value("30")
    assert_accessible(axe, page, "en-queue-360")
    assert_no_horizontal_scroll(page, WIDTH)
    screenshot(page, "en-queue-360")


def test_coordinator_pages_in_arabic(
    context: Callable[[str, str], BrowserContext], axe: Axe
) -> None:
    page = context("ar", "coordinator").new_page()
    for path, name in (("/distributions", "distributions"), ("/reports", "reports")):
        response = page.goto(path)
        assert response is not None and response.status == 200
        expect(page.locator("html")).to_have_attribute("lang", "ar")
        if name == "reports":
            chart = page.locator("#federation-author svg[role=img]")
            expect(chart.locator("rect.bar")).to_have_count(1)
            # right to left: the bar starts at the right edge, its label and number
            # are within the chart
            box, frame = chart.locator("rect.bar").bounding_box(), chart.bounding_box()
            assert box is not None and frame is not None
            assert abs(box["x"] + box["width"] - (frame["x"] + frame["width"])) < 1
            for text in chart.locator("text").all():
                inside = text.bounding_box()
                assert inside is not None
                assert frame["x"] - 1 <= inside["x"]
                assert inside["x"] + inside["width"] <= frame["x"] + frame["width"] + 1
            expect(page.locator("#federation-author table tbody tr")).to_have_count(1)
        assert_accessible(axe, page, f"ar-{name}-360")
        assert_no_horizontal_scroll(page, WIDTH)
        screenshot(page, f"ar-{name}-360")
    # the distribution page with the coordinator's forms
    page.goto("/distributions")
    page.locator(".dist-title a").first.click()
    expect(page.locator("form[action$='/include']")).to_have_count(1)
    assert_accessible(axe, page, "ar-distribution-coordinator-360")
    assert_no_horizontal_scroll(page, WIDTH)
