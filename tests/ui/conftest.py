"""Fixtures for the browser tests: a real node in a subprocess, Debian's Chromium
driven by Playwright, and helpers to sign in, scan with axe-core and take screenshots.

One node and one browser serve this package's tests; every test gets a fresh browser
context (its own cookies) with its locale set. Both end after the package's last test,
not the session's: Playwright's sync API keeps an event loop running in the main
thread, and a parallel run's worker goes on to other packages' asyncio tests, which
could not start a loop of their own while it runs (tests/conftest.py's ``ui`` group keeps
this package's tests together on one worker). The node is seeded through the JSON API:
its first admin's one-time password is replaced, and a coordinator, a case worker and
an auditor are created (their one-time passwords replaced too).

Without Chromium (``WATAN_CHROMIUM``, default ``/usr/bin/chromium``) every test here is
skipped with the reason, except under ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Response,
    expect,
    sync_playwright,
)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("WATAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
#: Phone and desktop viewports (CSS px).
WIDTHS = {360: 740, 1280: 900}
LANGS = ("ar", "en")
#: The browser locale of each UI language (sent as Accept-Language).
BROWSER_LOCALE = {"ar": "ar-IQ", "en": "en-GB"}
ORG_NAME = {"ar": "منظمة الاختبار", "en": "Test Organisation"}
#: The password every seeded account ends up with.
PASSWORD = "correct horse battery staple"
ROLES = ("coordinator", "case_worker", "auditor")
STARTUP_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0
#: How long ``expect(...)`` waits for a page to reach the state asserted (Playwright's
#: default is 5 s): a hang guard, generous because under ``pytest -n 2`` the node, the
#: browser and the other worker's tests share two cores.
EXPECT_TIMEOUT_MS = 15_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def _require_chromium() -> None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set WATAN_CHROMIUM)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="package", autouse=True)
def _chromium_present() -> None:
    """Skip (or, under CI, fail) every test here before any node is started."""
    _require_chromium()


# -- the node ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    """A node running in a subprocess."""

    data: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""
    fingerprint: str = ""
    first_password: str = ""
    #: username -> account id, for the accounts the fixture created
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_node(data: Path, *extra: str) -> Node:
    """Run ``python -m node.cli up`` on a free port and wait until /healthz answers 200."""
    port = _free_port()
    log = data.parent / f"{data.name}.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.pop("WATAN_DATABASE_URL", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "node.cli", "up"),
                *("--data", str(data), "--port", str(port)),
                *extra,
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    node = Node(data=data, port=port, process=process, log=log)
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the node exited with {process.returncode}:\n{node.output()}")
        try:
            with urllib.request.urlopen(node.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    node.node_id = json.load(response)["node_id"]
                    break
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            node.stop()
            raise AssertionError(f"/healthz did not answer within the deadline:\n{node.output()}")
        time.sleep(0.05)  # polling interval, bounded by the deadline above
    match = re.search(r"fingerprint ([0-9 ]+)\)", node.output())
    assert match, node.output()
    node.fingerprint = match.group(1)
    lines = (data / "first-admin-password.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "admin", lines
    node.first_password = lines[1]
    return node


def stop_node(node: Node) -> None:
    status = node.stop()
    assert status == 0, f"the node exited with {status} after SIGTERM:\n{node.output()}"


class Api:
    """A JSON API client with its own session cookie (urllib, no browser)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.csrf = ""
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        request = urllib.request.Request(
            self.node.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from None
        return json.loads(text) if text else None

    def sign_in(self, username: str, password: str) -> dict[str, Any]:
        answer = self.call("POST", "/api/v1/session", {"username": username, "password": password})
        self.csrf = answer["csrf_token"]
        account: dict[str, Any] = answer["account"]
        return account

    def first_sign_in(self, username: str, one_time: str) -> None:
        self.sign_in(username, one_time)
        self.call(
            "POST",
            "/api/v1/session/password",
            {"current_password": one_time, "new_password": PASSWORD},
        )


@pytest.fixture(scope="package")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The shared, seeded node: admin and one account of every other role, all with
    :data:`PASSWORD`; audit rows from all of that."""
    data = tmp_path_factory.mktemp("ui") / "node"
    running = start_node(data, "--org-name-ar", ORG_NAME["ar"], "--org-name-en", ORG_NAME["en"])
    try:
        admin = Api(running)
        admin.first_sign_in("admin", running.first_password)
        assert not (data / "first-admin-password.txt").exists()
        running.ids["admin"] = admin.call("GET", "/api/v1/session")["account"]["id"]
        for role in ROLES:
            created = admin.call(
                "POST",
                "/api/v1/accounts",
                {"username": role.replace("_", "-"), "display_name": f"Test {role}", "role": role},
            )
            running.ids[role] = created["account"]["id"]
            Api(running).first_sign_in(role.replace("_", "-"), created["one_time_password"])
        yield running
    finally:
        stop_node(running)


# -- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="package")
def axe() -> Axe:
    return Axe()


ContextFactory = Callable[..., BrowserContext]


def role_username(role: str) -> str:
    return "admin" if role == "admin" else role.replace("_", "-")


@pytest.fixture(scope="package")
def signed_in(browser: Browser, node: Node) -> Callable[[str], Any]:
    """``signed_in(role)``: the cookies of one session of that role, signed in once
    per run of this package (each sign-in costs an Argon2 hash on the node)."""
    states: dict[str, Any] = {}

    def state(role: str) -> Any:
        if role not in states:
            context = browser.new_context(base_url=node.url)
            try:
                response = context.request.post(
                    "/api/v1/session",
                    data={"username": role_username(role), "password": PASSWORD},
                )
                assert response.ok, response.text()
                states[role] = context.storage_state()
            finally:
                context.close()
        return states[role]

    return state


@pytest.fixture
def new_context(
    browser: Browser, node: Node, signed_in: Callable[[str], Any]
) -> Iterator[ContextFactory]:
    """``new_context(lang, role=None, cookie=True, width=360)``: a fresh browser context
    for this test, its locale set (Accept-Language), signed in as ``role`` if given,
    with the ``watan_lang`` cookie set to ``lang`` if ``cookie``."""
    contexts: list[BrowserContext] = []

    def make(
        lang: str, role: str | None = None, *, cookie: bool = True, width: int = 360
    ) -> BrowserContext:
        context = browser.new_context(
            base_url=node.url,
            locale=BROWSER_LOCALE[lang],
            viewport={"width": width, "height": WIDTHS.get(width, 900)},
            storage_state=None if role is None else signed_in(role),
        )
        context.set_default_timeout(10_000)
        if cookie:
            context.add_cookies([{"name": "watan_lang", "value": lang, "url": node.url}])
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def submit(page: Page, button: Locator | Callable[[], object]) -> Response:
    """Click a form's submit button (or do ``button()``, e.g. press Enter) and return
    the response to the POST it sends. (Chromium sends ``Origin: null`` on form posts
    from pages served with ``Referrer-Policy: no-referrer``, which the node's CSRF
    check refuses; the node sends ``same-origin``, and these posts prove it works.)
    """
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        if isinstance(button, Locator):
            button.click()
        else:
            button()
    response = posted.value
    assert response.request.headers.get("origin") != "null"
    page.wait_for_load_state()
    return response


# -- checks -----------------------------------------------------------------------------

BLOCKING_IMPACTS = ("serious", "critical")


def assert_accessible(axe: Axe, page: Page, label: str) -> None:
    """No axe-core violation of impact serious or critical on the page as it is."""
    if page.evaluate("typeof window.axe") == "undefined":  # once per document
        page.evaluate(axe.axe_script)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    blocking = [v for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS]
    lines = []
    for violation in blocking:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:10]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['html'][:160]}")
    assert not blocking, f"axe-core on {label} ({page.url}):\n" + "\n".join(lines)


def assert_no_horizontal_scroll(page: Page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        """(width) => [...document.querySelectorAll('body *')]
            .filter(e => { const r = e.getBoundingClientRect();
                           return r.width > 0 && (r.right > width + 1 || r.left < -1); })
            .filter(e => !e.closest('.table-wrap, .skip-link, .visually-hidden'))
            .slice(0, 5).map(e => e.outerHTML.slice(0, 120))""",
        width,
    )
    assert scroll <= width, f"{page.url}: scrollWidth {scroll} > {width}; too wide: {wide}"


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
