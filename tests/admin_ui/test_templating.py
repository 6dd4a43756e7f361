"""The page layout and macros, rendered in both locales."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pytest

from admin_ui._templating import TEMPLATE_DIR, Renderer

NOON_UTC = 1795435200000  # 2026-11-23T12:00Z


@dataclass
class User:
    display_name: str
    username: str
    role: str


CHILD = """{% extends "base.html" %}
{% import "_macros.html" as m with context %}
{% block content %}
<form method="post" action="/x">
{{ m.csrf() }}
{{ m.field("username", label, required=True, autocomplete="username", hint=hint, error=error) }}
{{ m.field("password", "Password", type="password", value="secret") }}
{{ m.select("role", "Role", [("admin", "A"), ("auditor", "B")], "auditor") }}
{{ m.submit("Save") }}
</form>
{{ m.data_table(["Seq", "When"], [[7 | num, when | date]], caption="Entries") }}
{{ m.pagination(None, "/next?page=2") }}
<p id="dates">{{ when | datetime }} / {{ when | hijri }} / {{ "seq 42" | digits }}</p>
<p id="said">{{ said }}</p>
<p id="greeting">{{ _("Hello %(name)s", name=said) }}</p>
{% endblock %}
"""


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    directory = tmp_path_factory.mktemp("templates")
    (directory / "child.html").write_text(CHILD, encoding="utf-8")
    return Renderer(directory)


def context(locale: str, **overrides: Any) -> dict[str, Any]:
    other = "en" if locale == "ar" else "ar"
    values: dict[str, Any] = {
        "title": "Test page",
        "user": User("Zaid <Admin>", "zaid", "admin"),
        "nav": [("/dashboard", "Dashboard", True), ("/audit", "Audit", False)],
        "csrf_token": "tok-123",
        "org_name": "Org & Co",
        "lang_switch": {
            "href": f"/dashboard?lang={other}",
            "label": "English" if other == "en" else "العربية",
            "lang": other,
        },
        "flash": [("success", "Saved."), ("error", "Broken <b>")],
        "request_path": "/dashboard",
        "label": "Username",
        "hint": "Letters only",
        "error": None,
        "when": NOON_UTC,
        "said": "<script>alert(1)</script>",
    }
    values.update(overrides)
    return values


def test_arabic_page(renderer: Renderer) -> None:
    html = renderer.render("child.html", "ar", **context("ar"))
    assert '<html lang="ar" dir="rtl">' in html
    assert (
        '<a class="lang-switch" href="/dashboard?lang=en" lang="en" hreflang="en">English</a>'
        in html
    )
    assert "انتقل إلى المحتوى الرئيسي" in html  # skip link, translated
    assert "تسجيل الخروج" in html
    assert "مدير النظام" in html  # the role, translated
    assert "٢٣ تشرين الثاني ٢٠٢٦، ١٥:٠٠ / ١٣ جمادى الآخرة ١٤٤٨ هـ / seq ٤٢" in html
    assert "<td>٧</td>" in html


def test_english_page(renderer: Renderer) -> None:
    html = renderer.render("child.html", "en", **context("en"))
    assert '<html lang="en" dir="ltr">' in html
    assert 'lang="ar" hreflang="ar">العربية</a>' in html
    assert "Skip to main content" in html
    assert "Administrator" in html
    assert "23 November 2026, 15:00 / 13 Jumada al-Akhirah 1448 AH / seq 42" in html


@pytest.mark.parametrize("locale", ["ar", "en"])
def test_layout_landmarks(renderer: Renderer, locale: str) -> None:
    html = renderer.render("child.html", locale, **context(locale))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<link rel="stylesheet" href="/static/watan.css">' in html
    assert 'href="/static/favicon.svg"' in html
    assert html.index('class="skip-link" href="#main"') < html.index("<header")
    assert '<main id="main"' in html
    assert "<footer" in html
    assert "<h1>Test page</h1>" in html
    assert "<title>Test page · Org &amp; Co</title>" in html
    assert 'role="status">Saved.</p>' in html
    assert 'role="alert">Broken &lt;b&gt;</p>' in html
    assert "style=" not in html and "<script" not in html  # CSP: no inline style or script


def test_signed_in_page_has_nav_and_logout_form(renderer: Renderer) -> None:
    html = renderer.render("child.html", "en", **context("en"))
    assert '<nav class="site-nav"' in html
    assert '<a href="/dashboard" aria-current="page">Dashboard</a>' in html
    assert '<a href="/audit">Audit</a>' in html
    logout = html[html.index('<form class="logout"') :]
    logout = logout[: logout.index("</form>")]
    assert 'method="post" action="/logout"' in logout
    assert '<input type="hidden" name="csrf_token" value="tok-123">' in logout


def test_signed_out_page_has_no_nav_but_keeps_the_toggle(renderer: Renderer) -> None:
    html = renderer.render("child.html", "ar", **context("ar", user=None, csrf_token=None))
    assert "site-nav" not in html
    assert 'action="/logout"' not in html
    assert 'class="lang-switch"' in html


def test_autoescape(renderer: Renderer) -> None:
    html = renderer.render("child.html", "en", **context("en"))
    assert "<script>alert(1)</script>" not in html
    assert '<p id="said">&lt;script&gt;alert(1)&lt;/script&gt;</p>' in html
    assert '<p id="greeting">Hello &lt;script&gt;alert(1)&lt;/script&gt;</p>' in html
    assert "Zaid &lt;Admin&gt;" in html


def test_field_macro_labels_and_describes(renderer: Renderer) -> None:
    html = renderer.render("child.html", "en", **context("en", error="Too short"))
    assert '<label for="f-username">Username' in html
    assert (
        '<input id="f-username" name="username" type="text" value="" required'
        ' autocomplete="username" aria-describedby="f-username-hint f-username-error"'
        ' aria-invalid="true">'
    ) in html
    assert '<p class="hint" id="f-username-hint">Letters only</p>' in html
    assert '<p class="error" id="f-username-error">Too short</p>' in html
    # A password is never echoed back into the page.
    assert "secret" not in html
    assert '<option value="auditor" selected>B</option>' in html
    assert '<option value="admin">A</option>' in html
    assert 'rel="next" href="/next?page=2"' in html
    assert 'rel="prev"' not in html


def test_field_without_hint_or_error_has_no_describedby(renderer: Renderer) -> None:
    html = renderer.render("child.html", "en", **context("en", hint=None))
    assert 'autocomplete="username">' in html
    assert "aria-describedby" not in html and "aria-invalid" not in html


def test_missing_context_is_an_error(renderer: Renderer) -> None:
    values = context("en")
    del values["org_name"]
    with pytest.raises(jinja2.UndefinedError):
        renderer.render("child.html", "en", **values)


def test_unknown_locale_renders_arabic(renderer: Renderer) -> None:
    html = renderer.render("child.html", "fr", **context("ar"))
    assert '<html lang="ar" dir="rtl">' in html


def test_package_templates_are_the_default() -> None:
    renderer = Renderer()
    assert renderer.environment("en").get_template("base.html").filename == str(
        TEMPLATE_DIR / "base.html"
    )


def test_filters_and_globals_are_bound_per_locale() -> None:
    renderer = Renderer()
    ar, en = renderer.environment("ar"), renderer.environment("en")
    assert ar.from_string("{{ 1234 | num }} {{ locale.code }}").render() == "١٬٢٣٤ ar"
    assert en.from_string("{{ 1234 | num }} {{ locale.code }}").render() == "1,234 en"
    assert en.from_string("{{ t | time }}").render(t=NOON_UTC) == "15:00"


def test_css_has_no_remote_resources() -> None:
    css = (Path(TEMPLATE_DIR).parent / "static" / "watan.css").read_text(encoding="utf-8")
    assert "http" not in css and "@import" not in css
    physical_properties = ("margin-left", "margin-right", "padding-left", "padding-right")
    for physical in (*physical_properties, "text-align: left", "float: left"):
        assert physical not in css


def test_base_does_not_shadow_child_context(tmp_path: Path) -> None:
    (tmp_path / "shadow.html").write_text(
        '{% extends "base.html" %}{% block content %}<p id="x">{{ labels }}</p>{% endblock %}',
        encoding="utf-8",
    )
    html = Renderer(tmp_path).render("shadow.html", "en", **context("en", labels="mine"))
    assert '<p id="x">mine</p>' in html
