"""The Peers page in Chromium, in Arabic and English: a federated node's page (with a
node waiting for approval, an approved one and a blocked one) and a standalone node's
explanation pass axe-core with no serious or critical violation at 360 and 1280 px,
nothing scrolls sideways at 360 px, screenshots go to
``artifacts/screenshots/{lang}-peers[-...]-{width}.png``; an admin approves a node with
the keyboard alone, and creates an invite whose QR code is labelled."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .conftest import (
    BROWSER_LOCALE,
    LANGS,
    ORG_NAME,
    PASSWORD,
    REPO,
    WIDTHS,
    Api,
    ContextFactory,
    Node,
    assert_accessible,
    assert_no_horizontal_scroll,
    screenshot,
    start_node,
    stop_node,
    submit,
)

FEDERATION = "Test hub"


@pytest.fixture(scope="module")
def fed_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Api]]:
    """A node that founded a federation (``watan federation create`` between a first
    and a second start), its admin signed in over the API with :data:`PASSWORD`, and
    three other nodes known to it: approved, blocked and waiting for approval."""
    data = tmp_path_factory.mktemp("ui-peers") / "node"
    names = ("--org-name-ar", ORG_NAME["ar"], "--org-name-en", ORG_NAME["en"])
    stop_node(start_node(data, "--no-discovery", *names))
    founded = subprocess.run(
        [sys.executable, "-m", "node.cli", "federation", "create", "--data", str(data), FEDERATION],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert founded.returncode == 0, founded.stderr
    running = start_node(data, "--no-discovery")
    try:
        api = Api(running)
        api.first_sign_in("admin", running.first_password)
        api.sign_in("admin", PASSWORD)
        approved, blocked = secrets.token_hex(32), secrets.token_hex(32)
        api.call("POST", f"/api/v1/peers/{approved}/approve", {"fingerprint_confirmed": True})
        api.call("POST", f"/api/v1/peers/{blocked}/block", {"reason": "sent forged entries"})
        propose(api)
        yield running, api
    finally:
        stop_node(running)


def propose(api: Api) -> str:
    """A node waiting for approval (blocked, then unblocked: it is proposed again)."""
    node_id = secrets.token_hex(32)
    api.call("POST", f"/api/v1/peers/{node_id}/block", {"reason": "to be proposed"})
    api.call("POST", f"/api/v1/peers/{node_id}/unblock", {})
    return node_id


@pytest.fixture(scope="module")
def admin_state(browser: Browser, fed_node: tuple[Node, Api]) -> object:
    """The federated node's admin session (cookies), signed in once."""
    node, _api = fed_node
    context = browser.new_context(base_url=node.url)
    try:
        response = context.request.post(
            "/api/v1/session", data={"username": "admin", "password": PASSWORD}
        )
        assert response.ok, response.text()
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def fed_context(
    browser: Browser, fed_node: tuple[Node, Api], admin_state: object
) -> Iterator[Callable[..., BrowserContext]]:
    """``fed_context(lang, width=360)``: a browser context on the federated node,
    signed in as its admin, its UI language set."""
    node, _api = fed_node
    contexts: list[BrowserContext] = []

    def make(lang: str, width: int = 360) -> BrowserContext:
        context = browser.new_context(
            base_url=node.url,
            locale=BROWSER_LOCALE[lang],
            viewport={"width": width, "height": WIDTHS.get(width, 900)},
            storage_state=admin_state,  # type: ignore[arg-type]
        )
        context.set_default_timeout(10_000)
        context.add_cookies([{"name": "watan_lang", "value": lang, "url": node.url}])
        contexts.append(context)
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
def test_peers_page_is_accessible_at_both_widths(
    fed_context: Callable[..., BrowserContext], axe: Axe, lang: str
) -> None:
    page = fed_context(lang).new_page()
    response = page.goto("/peers")
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    expect(page.locator(".site-nav a[href='/peers']")).to_have_attribute("aria-current", "page")
    main = page.locator("main")
    expect(main).to_contain_text(FEDERATION)
    # one card per known node, its state in words (not colour alone)
    assert page.locator("article.peer").count() >= 3
    for state in ("approved", "blocked", "proposed"):
        expect(page.locator(f"article.peer-{state} .badge").first).not_to_be_empty()
    expect(main.locator("table")).to_contain_text("sent forged entries")
    _check_widths(axe, page, f"{lang}-peers")


@pytest.mark.parametrize("lang", LANGS)
def test_keyboard_approve(
    fed_context: Callable[..., BrowserContext], fed_node: tuple[Node, Api], lang: str
) -> None:
    _node, api = fed_node
    node_id = propose(api)
    page = fed_context(lang).new_page()
    page.goto("/peers")
    box = page.locator(f"#confirm-{node_id}")
    # Tab from the card's node id onwards reaches the box, then the Approve button.
    box.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    page.keyboard.press("Tab")
    button = page.locator(f"form[action='/peers/{node_id}/approve'] button[type=submit]")
    expect(button).to_be_focused()
    response = submit(page, lambda: page.keyboard.press("Enter"))
    assert response.status == 303
    expect(page).to_have_url(re.compile(r"/peers\?done=approve$"))
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page.locator(f"article[aria-labelledby='peer-{node_id}']")).to_have_class(
        re.compile(r"\bpeer-approved\b")
    )
    peers = {p["node_id"]: p["state"] for p in api.call("GET", "/api/v1/peers")["peers"]}
    assert peers[node_id] == "approved"


@pytest.mark.parametrize("lang", LANGS)
def test_an_invite_shows_a_labelled_qr_code(
    fed_context: Callable[..., BrowserContext], axe: Axe, lang: str
) -> None:
    page = fed_context(lang).new_page()
    page.goto("/peers")
    url = page.locator("#f-url")
    expect(url).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+$"))
    page.locator("#f-ttl_hours").fill("2")
    response = submit(page, page.locator("form[action='/peers/invites'] button[type=submit]"))
    assert response.status == 201
    token = page.locator("#invite-token")
    expect(token).to_have_value(re.compile(r"^watan-invite-1\."))
    expect(token).to_have_attribute("readonly", "")
    qr = page.locator(".qr svg[role=img]")
    expect(qr).to_have_attribute("aria-label", re.compile("QR"))
    assert qr.bounding_box() is not None
    _check_widths(axe, page, f"{lang}-peers-invite")


@pytest.mark.parametrize("lang", LANGS)
def test_a_standalone_node_explains_the_commands(
    new_context: ContextFactory, node: Node, axe: Axe, lang: str
) -> None:
    page = new_context(lang, "admin").new_page()
    response = page.goto("/peers")
    assert response is not None and response.status == 200
    commands = page.locator("main .commands code")
    expect(commands.first).to_have_text("watan federation create --data DIR NAME")
    expect(commands.nth(1)).to_have_text("watan invite accept --data DIR TOKEN")
    expect(page.locator("#f-url")).to_have_count(0)
    _check_widths(axe, page, f"{lang}-peers-standalone")
