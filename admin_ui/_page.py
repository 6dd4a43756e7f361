"""Rendering a page: the locale of the request, the context every page gets (see
``templates/base.html``), the navigation by permission, and safe redirects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote, urlsplit

from aiohttp import web

from node.accounts import Account, Permission, allowed
from node.web import current_session, pre_session_token, services

from ._i18n import DEFAULT_LOCALE, LOCALES, N_, Locale, get_locale, negotiate
from ._templating import Renderer

__all__ = ["LANG_COOKIE", "RENDERER", "locale_of", "render", "safe_next", "unavailable"]

LANG_COOKIE: Final = "watan_lang"
RENDERER: Final = web.AppKey("watan_renderer", Renderer)

#: (href, label, permission needed or None for everyone signed in)
_NAV: Final = (
    ("/dashboard", N_("Dashboard"), Permission.VIEW_DASHBOARD),
    ("/queue", N_("Priority queue"), Permission.VIEW_HOUSEHOLDS),
    ("/households", N_("Households"), Permission.VIEW_HOUSEHOLDS),
    ("/distributions", N_("Distributions"), Permission.VIEW_HOUSEHOLDS),
    ("/reports", N_("Reports"), Permission.VIEW_REPORTS),
    ("/accounts", N_("Staff accounts"), Permission.MANAGE_ACCOUNTS),
    ("/audit", N_("Audit log"), Permission.VIEW_AUDIT_LOG),
    ("/settings", N_("Organisation"), Permission.EDIT_SETTINGS),
    ("/password", N_("Change password"), None),
)
_LANG_LABEL: Final = {"ar": "العربية", "en": "English"}


def locale_of(request: web.Request) -> Locale:
    """The request's UI language: ``?lang=``, then the cookie, then the browser's."""
    code = negotiate(
        request.query.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("Accept-Language"),
    )
    return get_locale(code)


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """``target`` if it is a path on this node, else ``default`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _nav(account: Account, path: str, locale: Locale) -> list[tuple[str, str, bool]]:
    if account.must_change_password:
        return []
    return [
        (href, locale.gettext(label), path == href or path.startswith(href + "/"))
        for href, label, permission in _NAV
        if permission is None or allowed(account.role, permission)
    ]


def _lang_switch(request: web.Request, locale: Locale) -> dict[str, str]:
    other = next(code for code in LOCALES if code != locale.code)
    return {
        "href": f"/lang/{other}?next={quote(request.path_qs, safe='')}",
        "label": _LANG_LABEL[other],
        "lang": other,
    }


def render(
    request: web.Request,
    template: str,
    title: str,
    *,
    status: int = 200,
    flash: Sequence[tuple[str, str]] = (),
    **context: Any,
) -> web.Response:
    """Render ``template`` (which extends ``base.html``) for this request.

    Args:
        title: the page title, already translated.
        flash: ``(kind, text)`` notices, already translated.
    """
    locale = locale_of(request)
    session = current_session(request)
    account = session.account if session is not None else None
    profile = services(request).profiles.latest
    org = {} if profile is None else {"ar": profile.name_ar, "en": profile.name_en}
    csrf = session.csrf_token if session is not None else pre_session_token(request)
    html = request.app[RENDERER].render(
        template,
        locale.code,
        title=title,
        user=account,
        nav=_nav(account, request.path, locale) if account is not None else [],
        csrf_token=csrf,
        org_name=org.get(locale.code)
        or org.get(DEFAULT_LOCALE)
        or locale.gettext(N_("Watan node")),
        lang_switch=_lang_switch(request, locale),
        flash=list(flash),
        request_path=request.path,
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def unavailable(request: web.Request, message: str) -> web.Response:
    """The 503 page of a feature this node does not run (``message`` untranslated)."""
    locale = locale_of(request)
    response = render(
        request,
        "error.html",
        locale.gettext(N_("Temporarily unavailable")),
        status=503,
        message=locale.gettext(message),
        code="UNAVAILABLE",
    )
    response.headers["X-Watan-Error"] = "UNAVAILABLE"
    return response
