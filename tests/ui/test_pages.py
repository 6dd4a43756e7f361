"""Every page of the admin UI in Chromium, in Arabic and English: axe-core finds no
serious or critical violation, nothing scrolls sideways at 360 px, and a screenshot at
360 px and 1280 px is saved to ``artifacts/screenshots/{lang}-{page}-{width}.png``.
Then the flows: first sign-in, the language toggle, the keyboard, roles, accounts and
settings, and the forms' CSRF tokens and labels."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from .conftest import (
    LANGS,
    PASSWORD,
    WIDTHS,
    ContextFactory,
    Node,
    assert_accessible,
    assert_no_horizontal_scroll,
    screenshot,
    start_node,
    stop_node,
    submit,
)

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
ONE_TIME = re.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){4}$")


@dataclass(frozen=True)
class PageCase:
    name: str
    role: str | None  # None: signed out
    path: Callable[[Node], str]
    status: int = 200


PAGES = (
    PageCase("login", None, lambda n: "/login"),
    PageCase("password", "admin", lambda n: "/password"),
    PageCase("dashboard", "admin", lambda n: "/dashboard"),
    PageCase("accounts", "admin", lambda n: "/accounts"),
    PageCase("account", "admin", lambda n: f"/accounts/{n.ids['case_worker']}"),
    PageCase("audit", "admin", lambda n: "/audit"),
    PageCase("settings", "admin", lambda n: "/settings"),
    PageCase("not-found", "admin", lambda n: "/no-such-page", 404),
    PageCase("dashboard-coordinator", "coordinator", lambda n: "/dashboard"),
    PageCase("dashboard-case-worker", "case_worker", lambda n: "/dashboard"),
    PageCase("dashboard-auditor", "auditor", lambda n: "/dashboard"),
    PageCase("forbidden-auditor", "auditor", lambda n: "/accounts", 403),
)


def _open(new_context: ContextFactory, node: Node, lang: str, case: PageCase) -> Page:
    page = new_context(lang, case.role).new_page()
    response = page.goto(case.path(node))
    assert response is not None
    assert response.status == case.status, f"{case.name}: {response.status} {page.url}"
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    return page


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", PAGES, ids=[c.name for c in PAGES])
def test_page_is_accessible_at_both_widths(
    new_context: ContextFactory, node: Node, axe: Axe, lang: str, case: PageCase
) -> None:
    page = _open(new_context, node, lang, case)
    if case.name == "audit":
        assert page.locator("tbody tr").count() > 1, "the audit log should have rows"
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        assert_accessible(axe, page, f"{lang}-{case.name}-{width}")
        if width == 360:
            assert_no_horizontal_scroll(page, width)
        path = screenshot(page, f"{lang}-{case.name}-{width}")
        assert path.stat().st_size > 0


@pytest.mark.parametrize("lang", LANGS)
def test_first_sign_in(new_context: ContextFactory, tmp_path: Path, lang: str) -> None:
    """A fresh node: its first admin signs in with the one-time password, must choose a
    password, then sees the node id and fingerprint in the language's digits."""
    fresh = start_node(tmp_path / "node")
    try:
        page = new_context("ar", cookie=False).new_page()  # an Arabic browser, no choice yet
        page.goto(fresh.url + "/login")
        expect(page.locator("html")).to_have_attribute("lang", "ar")
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        if lang == "en":
            page.locator(".lang-switch").click()
            expect(page).to_have_url(re.compile(r"/login$"))
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("html")).to_have_attribute("dir", "ltr")
        page.locator("#f-username").fill("admin")
        page.locator("#f-password").fill(fresh.first_password)
        submit(page, page.locator("main button[type=submit]"))
        expect(page).to_have_url(re.compile(r"/password$"))
        expect(page.locator(".site-nav")).to_have_count(0)  # nothing else until it is done
        page.locator("#f-current_password").fill(fresh.first_password)
        page.locator("#f-new_password").fill(PASSWORD)
        page.locator("#f-confirm_password").fill(PASSWORD)
        submit(page, page.locator("main button[type=submit]"))
        expect(page).to_have_url(re.compile(r"/dashboard\?done=password$"))
        expect(page.locator("html")).to_have_attribute("lang", lang)
        main = page.locator("main")
        expect(main.locator("code.id").first).to_have_text(fresh.node_id)
        shown = main.inner_text()
        if lang == "ar":
            assert fresh.fingerprint.translate(ARABIC_INDIC) in shown
            assert fresh.fingerprint not in shown, shown
        else:
            assert fresh.fingerprint in shown
            assert "Your password was changed." in shown
            assert not re.search("[٠-٩]", shown), shown
        assert not (fresh.data / "first-admin-password.txt").exists()
    finally:
        stop_node(fresh)


@pytest.mark.parametrize("lang", LANGS)
def test_language_toggle_keeps_the_page(new_context: ContextFactory, node: Node, lang: str) -> None:
    other = "en" if lang == "ar" else "ar"
    page = new_context(lang, "admin", cookie=lang != "ar").new_page()  # Arabic: the default
    page.goto("/accounts")
    for want in (other, lang):
        page.locator(".lang-switch").click()
        expect(page).to_have_url(re.compile(r"/accounts$"))
        expect(page.locator("html")).to_have_attribute("lang", want)
        expect(page.locator("html")).to_have_attribute("dir", "rtl" if want == "ar" else "ltr")
    # the choice is remembered by the cookie on the next page
    page.goto("/dashboard")
    expect(page.locator("html")).to_have_attribute("lang", lang)


_ACTIVE = """() => {
  const e = document.activeElement;
  return e.id ? '#' + e.id
       : e.className ? e.tagName.toLowerCase() + '.' + e.className.split(' ')[0]
       : e.tagName.toLowerCase() + (e.type ? '[' + e.type + ']' : '');
}"""


@pytest.mark.parametrize("lang", LANGS)
def test_keyboard_sign_in(new_context: ContextFactory, node: Node, lang: str) -> None:
    page = new_context(lang).new_page()
    page.goto("/login")
    order = []
    for _ in range(6):
        page.keyboard.press("Tab")
        order.append(page.evaluate(_ACTIVE))
    # the skip link, the organisation's name (home), the language toggle, then the form
    assert order == [
        "a.skip-link",
        "a",
        "a.lang-switch",
        "#f-username",
        "#f-password",
        "button.button",
    ], order
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no outline"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(_ACTIVE) == "a.lang-switch"
    link_outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert link_outline != "none", "the focused link shows no outline"
    page.keyboard.press("Tab")
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    submit(page, lambda: page.keyboard.press("Enter"))
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator("html")).to_have_attribute("lang", lang)
    # the skip link moves to the main content
    page.keyboard.press("Tab")
    assert page.evaluate(_ACTIVE) == "a.skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


@pytest.mark.parametrize("lang", LANGS)
def test_roles_in_the_browser(new_context: ContextFactory, node: Node, lang: str) -> None:
    auditor = new_context(lang, "auditor").new_page()
    response = auditor.goto("/audit")
    assert response is not None and response.status == 200
    assert auditor.locator("tbody tr").count() > 1
    nav = auditor.locator(".site-nav a")
    assert "/accounts" not in [nav.nth(i).get_attribute("href") for i in range(nav.count())]
    response = auditor.goto("/accounts")
    assert response is not None and response.status == 403
    expect(auditor.locator("html")).to_have_attribute("lang", lang)
    if lang == "en":
        expect(auditor.locator("h1")).to_have_text("Not allowed")

    worker = new_context(lang, "case_worker").new_page()
    worker.goto("/dashboard")
    hrefs = worker.locator(".site-nav a").evaluate_all("links => links.map(a => a.pathname)")
    assert "/dashboard" in hrefs and "/accounts" not in hrefs and "/audit" not in hrefs, hrefs
    response = worker.goto("/accounts")
    assert response is not None and response.status == 403


@pytest.mark.parametrize("lang", LANGS)
def test_admin_creates_an_account_and_edits_settings(
    new_context: ContextFactory, node: Node, lang: str
) -> None:
    page = new_context(lang, "admin").new_page()
    page.goto("/accounts")
    page.locator("#f-display_name").fill(f"New person {lang}")
    page.locator("#f-username").fill(f"new-{lang}")
    page.locator("#f-role").select_option("coordinator")
    posted = submit(page, page.locator("form[action='/accounts'] button[type=submit]"))
    assert posted.status == 201
    secret = page.locator(".secret")
    expect(secret).to_have_count(1)
    assert ONE_TIME.fullmatch(secret.inner_text().strip()), secret.inner_text()
    expect(page.locator("main")).to_contain_text(f"new-{lang}")
    if lang == "en":
        expect(page.locator(".one-time h2")).to_have_text("Account created")
    page.goto("/accounts")  # shown once only
    expect(page.locator(".secret")).to_have_count(0)
    row = page.locator("tbody tr", has_text=f"new-{lang}")
    expect(row).to_have_count(1)
    if lang == "en":
        expect(row).to_contain_text("Waiting for first sign-in")
    new_id = (row.locator("a").get_attribute("href") or "").rsplit("/", 1)[-1]

    name = {"ar": "جمعية النخيل للتنمية", "en": "Palm Development Society"}[lang]
    page.goto("/settings")
    page.locator(f"#f-name_{lang}").fill(name)
    submit(page, page.locator("form[action='/settings'] button[type=submit]"))
    expect(page).to_have_url(re.compile(r"/settings\?done=settings$"))
    expect(page.locator(".site-name a")).to_have_text(name)
    expect(page.locator(f"#f-name_{lang}")).to_have_value(name)

    page.goto("/audit?action=settings.profile")
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    expect(rows.first.locator("td").nth(3)).not_to_have_text("settings.profile")  # translated
    if lang == "en":
        expect(rows.first).to_contain_text("Organisation profile edited")
    page.goto("/audit?action=account.create")
    expect(page.locator("tbody")).to_contain_text(f"account:{new_id}")


_FIELDS = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden')
  .map(e => ({
    id: e.id,
    name: e.name,
    label: e.labels && e.labels.length
      ? e.labels[0].innerText.replace('*', '').trim() : (e.getAttribute('aria-label') || ''),
  }))"""

_FORMS = """() => [...document.forms].map(f => ({
  action: f.getAttribute('action'),
  method: (f.getAttribute('method') || 'get').toLowerCase(),
  csrf: [...f.querySelectorAll('input[type=hidden][name=csrf_token]')].map(i => i.value),
}))"""


@pytest.mark.parametrize("lang", LANGS)
def test_forms_have_csrf_tokens_and_labels(
    new_context: ContextFactory, node: Node, lang: str
) -> None:
    cases = [c for c in PAGES if c.role in (None, "admin") and c.status == 200]
    signed_out = new_context(lang).new_page()
    admin = new_context(lang, "admin").new_page()
    forms_seen = 0
    for case in cases:
        page = signed_out if case.role is None else admin
        page.goto(case.path(node))
        for form in page.evaluate(_FORMS):
            if form["method"] == "post":
                forms_seen += 1
                assert len(form["csrf"]) == 1 and len(form["csrf"][0]) >= 16, (case.name, form)
        for field in page.evaluate(_FIELDS):
            where = f"{lang} {case.name} {field['name']}"
            assert field["id"] and field["label"], f"{where}: no label"
            matches = page.get_by_label(field["label"])
            ids = matches.evaluate_all("els => els.map(e => e.id)")
            assert field["id"] in ids, f"{where}: get_by_label({field['label']!r}) gave {ids}"
    assert forms_seen >= 8
