"""The admin UI's pages in process (aiohttp test client, real node services): sign-in
and the first-login flow, forms and their errors in both languages, the audit log's
filters, settings, and redirects that stay on the node."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from admin_ui._page import safe_next
from node.accounts import LOCKOUT_THRESHOLD, Role
from node.web import PRE_SESSION_COOKIE, SESSION_COOKIE
from tests.node.web_helpers import PASSWORD, WebNode, csrf_field, web_node

A, W, R = Role.ADMIN, Role.CASE_WORKER, Role.AUDITOR


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "node") as node:
        yield node


async def _page(
    web: WebNode, path: str, role: Role | None = A, lang: str | None = None
) -> tuple[int, str]:
    cookies = {"watan_lang": lang} if lang else {}
    response = await web.request("GET", path, web.staff[role] if role else None, cookies=cookies)
    return response.status, await response.text()


async def _post(
    web: WebNode, path: str, data: dict[str, Any], role: Role = A, lang: str | None = None
) -> Any:
    staff = web.staff[role]
    cookies = {"watan_lang": lang} if lang else {}
    return await web.request(
        "POST", path, staff, data={**data, "csrf_token": staff.csrf}, cookies=cookies
    )


def _main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


async def test_first_sign_in_in_the_browser_flow(tmp_path: Path) -> None:
    async with web_node(tmp_path / "n") as web:
        admin = web.staff[A].account
        _account, one_time = await web.node.accounts.create_account(
            admin,
            username="first",
            display_name="First",
            role=Role.COORDINATOR,
            random_bytes=lambda n: b"\x01" * n,
            now_ms=web.clock.now_ms(),
        )
        web.client.session.cookie_jar.clear()
        page = await web.client.get("/")  # -> /login?next=/dashboard
        html = await page.text()
        assert page.url.path == "/login" and '<html lang="ar" dir="rtl">' in html
        token = csrf_field(html)
        login = await web.client.post(
            "/login",
            data={
                "username": "first",
                "password": one_time,
                "csrf_token": token,
                "next": "/dashboard",
            },
        )
        assert login.url.path == "/password"
        html = await login.text()
        assert "كلمة مرور مؤقتة" in html  # the one-time password notice, in Arabic
        weak = await web.client.post(
            "/password",
            data={
                "current_password": one_time,
                "new_password": "short",
                "confirm_password": "short",
                "csrf_token": csrf_field(html),
            },
        )
        assert weak.status == 422 and "قصيرة جداً" in await weak.text()
        mismatch = await web.client.post(
            "/password",
            data={
                "current_password": one_time,
                "new_password": PASSWORD,
                "confirm_password": PASSWORD + "x",
                "csrf_token": csrf_field(html),
            },
        )
        assert mismatch.status == 422
        done = await web.client.post(
            "/password",
            data={
                "current_password": one_time,
                "new_password": PASSWORD,
                "confirm_password": PASSWORD,
                "csrf_token": csrf_field(html),
            },
        )
        assert done.url.path == "/dashboard"
        html = await done.text()
        assert "تم تغيير كلمة المرور" in html
        fingerprint = web.node.identity.fingerprint
        arabic = fingerprint.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        assert arabic in html and web.node.identity.node_id.hex() in html
        # Coordinators see Ata'a, messages and their password; not accounts, audit,
        # organisation settings or peers.
        nav = re.findall(r'<li><a href="([^"]+)"', html)
        assert nav == [
            "/dashboard",
            "/messages",
            "/queue",
            "/households",
            "/distributions",
            "/reports",
            "/password",
        ]
        out = await web.client.post("/logout", data={"csrf_token": csrf_field(html)})
        assert out.url.path == "/login"
        assert (await web.client.get("/dashboard", allow_redirects=False)).status == 303


async def test_login_errors_are_translated_and_keep_the_username(web: WebNode) -> None:
    web.client.session.cookie_jar.clear()
    token = csrf_field(await (await web.client.get("/login?lang=en")).text())
    for i in range(LOCKOUT_THRESHOLD):
        response = await web.client.post(
            "/login?lang=en",
            data={"username": "Coord", "password": f"nope {i}", "csrf_token": token},
        )
        assert response.status == 401
        html = await response.text()
        assert "Wrong username or password." in html and 'value="Coord"' in html
        assert "nope" not in html  # the password is never echoed
    locked = await web.client.post(
        "/login", data={"username": "coord", "password": PASSWORD, "csrf_token": token}
    )
    assert locked.status == 429
    assert "محاولات فاشلة كثيرة" in await locked.text() and "١" in await locked.text()


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_every_page_renders_in_both_languages(web: WebNode, lang: str) -> None:
    target = web.staff[W].account.id
    direction = "rtl" if lang == "ar" else "ltr"
    for path in (
        "/login",
        "/password",
        "/dashboard",
        "/accounts",
        f"/accounts/{target}",
        "/audit",
        "/audit?verify=1",
        "/settings",
    ):
        role = None if path == "/login" else A
        status, html = await _page(web, path, role, lang)
        assert status == 200, path
        assert f'<html lang="{lang}" dir="{direction}">' in html, path
        assert "csrf_token" in html, path
        # No English left in Arabic pages' main content (ids and codes aside).
        if lang == "ar":
            text = re.sub(
                r"<code[^>]*>.*?</code>|<[^>]+>|&[a-z#0-9]+;", " ", _main(html), flags=re.S
            )
            words = re.findall(r"\b[A-Za-z]{4,}\b", text)
            assert not [
                w
                for w in words
                if w
                not in {
                    "Staff",
                    "coord",
                    "worker",
                    "auditor",
                    "admin",
                    "Administrator",
                    "PENDING",
                    "organisation",
                }
            ], (path, words)


async def test_the_language_toggle_keeps_the_page(web: WebNode) -> None:
    _status, html = await _page(web, "/audit?action=login.success", A)
    href = re.search(r'class="lang-switch" href="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert href == "/lang/en?next=%2Faudit%3Faction%3Dlogin.success"
    response = await web.request("GET", href.replace("&amp;", "&"), web.staff[A])
    assert (response.status, response.headers["Location"]) == (303, "/audit?action=login.success")
    assert response.cookies["watan_lang"].value == "en"
    for evil in (
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ):
        response = await web.request("GET", f"/lang/en?next={evil}")
        assert response.headers["Location"] == "/"
    assert (await web.request("GET", "/lang/fr")).status == 404


def test_safe_next() -> None:
    assert safe_next("/accounts?x=1") == "/accounts?x=1"
    for bad in (None, "", "http://x/", "//x", "/\\x", "x", "https:/x"):
        assert safe_next(bad) == "/dashboard"


async def test_admin_manages_an_account_through_forms(web: WebNode) -> None:
    bad = await _post(
        web, "/accounts", {"username": "x", "display_name": "", "role": "auditor"}, lang="en"
    )
    assert bad.status == 422 and "Some values are not valid." in await bad.text()
    taken = await _post(
        web, "/accounts", {"username": "coord", "display_name": "Again", "role": "auditor"}
    )
    assert taken.status == 409 and 'value="Again"' in await taken.text()
    created = await _post(
        web, "/accounts", {"username": "Salma.K", "display_name": "سلمى", "role": "case_worker"}
    )
    assert created.status == 201
    html = await created.text()
    one_time = re.search(r'<p class="secret" dir="ltr">([^<]+)</p>', html).group(1)  # type: ignore[union-attr]
    account = await web.node.accounts.store.by_username("salma.k")
    assert account is not None and account.must_change_password
    assert (
        await web.node.accounts.authenticate(
            "salma.k", one_time, now_ms=web.clock.now_ms(), source="web"
        )
    ).id == account.id
    # The one-time password is shown once: the list page does not have it.
    assert one_time not in (await _page(web, "/accounts"))[1]
    role = await _post(web, f"/accounts/{account.id}/role", {"role": "auditor"})
    assert (role.status, role.headers["Location"]) == (303, f"/accounts/{account.id}?done=role")
    assert (await web.node.accounts.store.get(account.id)).role is Role.AUDITOR  # type: ignore[union-attr]
    assert (await _post(web, f"/accounts/{account.id}/disable", {})).status == 303
    assert (await web.node.accounts.store.get(account.id)).disabled  # type: ignore[union-attr]
    reset = await _post(web, f"/accounts/{account.id}/reset", {})
    assert reset.status == 200 and 'class="secret"' in await reset.text()
    assert (await _post(web, f"/accounts/{account.id}/enable", {})).status == 303
    assert (await _post(web, f"/accounts/{account.id}/explode", {})).status == 404
    assert (await _page(web, "/accounts/999"))[0] == 404
    # The last admin cannot disable itself away (the page says why).
    own = web.staff[A].account.id
    refused = await _post(web, f"/accounts/{own}/role", {"role": "auditor"}, lang="en")
    assert refused.status == 409 and "last administrator" in await refused.text()
    actions = [r.action for r in await web.node.audit.query(actor=own)]
    assert {
        "account.create",
        "account.role",
        "account.disable",
        "account.enable",
        "password.reset",
    } <= set(actions)


async def test_settings_form(web: WebNode) -> None:
    bad = await _post(
        web,
        "/settings",
        {"name_ar": "", "name_en": "Hope", "registration": "x y", "governorate": "IQG99"},
        lang="en",
    )
    assert bad.status == 422
    html = await bad.text()
    assert "Required, at most 200 characters." in html and "Choose a governorate." in html
    assert 'aria-invalid="true"' in html and 'value="Hope"' in html
    assert (await web.node.feeds.head(web.node.identity.node_id)).seq == 1  # type: ignore[union-attr]
    good = await _post(
        web,
        "/settings",
        {
            "name_ar": "جمعية الأمل",
            "name_en": "Hope",
            "registration": "1Z12345",
            "governorate": "IQG08",
            "sectors": "health",
        },
    )
    assert (good.status, good.headers["Location"]) == (303, "/settings?done=settings")
    _status, html = await _page(web, "/dashboard")
    assert "جمعية الأمل" in html and "بغداد" in html
    assert "placeholder" not in html and "بيانات مؤقتة" not in html
    _, english = await _page(web, "/dashboard", lang="en")
    assert '<a href="/">Hope</a>' in english


async def test_audit_log_filters_and_pages(web: WebNode) -> None:
    admin = web.staff[A].account
    for i in range(60):
        await web.node.audit.record(
            admin.id,
            "login.success",
            f"account:{admin.id}",
            {"source": "web"},
            now_ms=web.clock.now_ms() + i,
        )
    status, html = await _page(web, "/audit?action=login.success", lang="en")
    rows = re.findall(r"<tr>\s*<td>", html)
    assert status == 200 and len(rows) == 50
    older = re.search(r'<a href="(/audit\?[^"]+)">Older rows</a>', html).group(1)  # type: ignore[union-attr]
    _, html2 = await _page(web, older.replace("&amp;", "&"), lang="en")
    assert 0 < len(re.findall(r"<tr>\s*<td>", html2)) <= 50
    _, none = await _page(web, "/audit?from=2020-01-01&to=2020-01-02", lang="en")
    assert "No rows match." in none
    _, by_actor = await _page(
        web, f"/audit?actor={web.staff[R].account.id}&action=account.create", lang="en"
    )
    assert "No rows match." in by_actor  # auditors created nobody
    _, checked = await _page(web, "/audit?verify=1", lang="en")
    assert "The audit log is intact" in checked
    # Garbage filters are ignored, not errors.
    assert (await _page(web, "/audit?action=<script>&actor=x&from=yesterday&before=-1"))[0] == 200


async def test_pages_need_the_form_token(web: WebNode) -> None:
    staff = web.staff[A]
    web.client.session.cookie_jar.clear()
    response = await web.client.post(
        "/settings",
        data={"name_ar": "x"},
        cookies={SESSION_COOKIE: staff.token},
        allow_redirects=False,
    )
    assert response.status == 403
    assert "أعد تحميل الصفحة" in await response.text()
    # The login form with a token from another browser's cookie is refused too.
    response = await web.client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": "a" * 43},
        cookies={PRE_SESSION_COOKIE: "b" * 43},
        allow_redirects=False,
    )
    assert response.status == 403
