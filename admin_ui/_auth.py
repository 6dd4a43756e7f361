"""Sign-in, sign-out, the (first-login) password change and the language switch."""

from __future__ import annotations

from aiohttp import web

from node.accounts import MIN_PASSWORD, AccountError, AccountErrorCode
from node.web import (
    clear_session_cookie,
    current_session,
    services,
    set_session_cookie,
)

from ._choices import ERRORS, PASSWORD_PROBLEMS
from ._i18n import LOCALES, N_, Locale
from ._page import LANG_COOKIE, locale_of, render, safe_next

__all__ = [
    "account_error_text",
    "change_password",
    "language",
    "login",
    "login_form",
    "logout",
    "password_form",
]

_STATUS = {
    AccountErrorCode.BAD_CREDENTIALS: 401,
    AccountErrorCode.LOCKED: 429,
    AccountErrorCode.DISABLED: 403,
    AccountErrorCode.WEAK_PASSWORD: 422,
}


def account_error_text(locale: Locale, error: AccountError, now_ms: int = 0) -> str:
    """The translated message for an account error (``now_ms`` for LOCKED's wait)."""
    if error.code is AccountErrorCode.LOCKED and error.retry_after_ms is not None:
        wait_ms = max(60_000, error.retry_after_ms - now_ms)
        return locale.gettext(ERRORS["LOCKED"]) % {"minutes": locale.number(-(-wait_ms // 60_000))}
    if error.code is AccountErrorCode.WEAK_PASSWORD and error.problem is not None:
        text = locale.gettext(PASSWORD_PROBLEMS[error.problem.value])
        return text % {"min": locale.number(MIN_PASSWORD)} if "%(min)s" in text else text
    return locale.gettext(ERRORS.get(error.code.value, ERRORS["INVALID"]))


def _login_page(
    request: web.Request, *, status: int = 200, error: str | None = None, username: str = ""
) -> web.Response:
    locale = locale_of(request)
    return render(
        request,
        "login.html",
        locale.gettext(N_("Sign in")),
        status=status,
        flash=[("error", error)] if error else [],
        username=username,
        next=safe_next(request.query.get("next"), ""),
    )


async def login_form(request: web.Request) -> web.Response:
    if current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_page(request)


async def login(request: web.Request) -> web.Response:
    svc = services(request)
    locale = locale_of(request)
    form = await request.post()
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    now = svc.now_ms()
    try:
        account = await svc.accounts.authenticate(username, password, now_ms=now, source="web")
        token, _csrf = await svc.accounts.start_session(
            account, now_ms=now, random_bytes=svc.random_bytes
        )
    except AccountError as error:
        return _login_page(
            request,
            status=_STATUS.get(error.code, 403),
            error=account_error_text(locale, error, now),
            username=username,
        )
    target = "/password" if account.must_change_password else safe_next(str(form.get("next", "")))
    response = web.HTTPSeeOther(target)
    set_session_cookie(response, request, token)
    raise response


async def logout(request: web.Request) -> web.Response:
    svc = services(request)
    session = current_session(request)
    assert session is not None
    await svc.accounts.end_session(session, now_ms=svc.now_ms())
    response = web.HTTPSeeOther("/login")
    clear_session_cookie(response, request)
    raise response


def _password_page(
    request: web.Request, *, status: int = 200, error: str | None = None
) -> web.Response:
    locale = locale_of(request)
    session = current_session(request)
    assert session is not None
    first = session.account.must_change_password
    return render(
        request,
        "password.html",
        locale.gettext(N_("Choose your password") if first else N_("Change password")),
        status=status,
        flash=[("error", error)] if error else [],
        first=first,
        min_length=MIN_PASSWORD,
    )


async def password_form(request: web.Request) -> web.Response:
    return _password_page(request)


async def change_password(request: web.Request) -> web.Response:
    svc = services(request)
    locale = locale_of(request)
    session = current_session(request)
    assert session is not None
    form = await request.post()
    old = str(form.get("current_password", ""))[:1024]
    new = str(form.get("new_password", ""))[:1024]
    if new != str(form.get("confirm_password", ""))[:1024]:
        return _password_page(request, status=422, error=locale.gettext(ERRORS["MISMATCH"]))
    try:
        account = await svc.accounts.change_password(
            session.account, old, new, now_ms=svc.now_ms(), keep=session
        )
    except AccountError as error:
        return _password_page(
            request, status=_STATUS.get(error.code, 422), error=account_error_text(locale, error)
        )
    svc.on_password_changed(account.username)
    raise web.HTTPSeeOther("/dashboard?done=password")


async def language(request: web.Request) -> web.Response:
    """Switch the UI language (a cookie for a year) and go back to the page."""
    code = request.match_info["code"]
    if code not in LOCALES:
        raise web.HTTPNotFound()
    response = web.HTTPSeeOther(safe_next(request.query.get("next"), "/"))
    response.set_cookie(
        LANG_COOKIE, code, max_age=365 * 86400, path="/", samesite="Lax", httponly=True
    )
    raise response
