"""The one middleware every request passes: sessions, access, CSRF, errors, security
headers, metrics and the access log.

Order, for a matched route:

1. The session cookie is resumed (an expired one is cleared).
2. Access (:mod:`._routes`): nobody signed in → 401 (API) or a redirect to the login
   page; a one-time password still in use → 403 PASSWORD_CHANGE_REQUIRED or a
   redirect to the password page; a role without the permission → 403.
3. CSRF, for POST/PUT/PATCH/DELETE: a cross-site ``Origin`` or ``Sec-Fetch-Site`` is
   refused outright (OWASP CSRF Cheat Sheet, "Verifying Origin"); with a session, the
   synchronizer token must come in the ``X-CSRF-Token`` header or the form's
   ``csrf_token`` field; before a session (the login form), the form must echo the
   pre-session cookie (double-submit); an API call without a session must be JSON,
   which a cross-site form cannot send without a CORS preflight we never grant.
4. The handler; service errors become statuses and bodies in :mod:`._errors`.

Session cookies are HttpOnly, SameSite=Strict, Path=/, and Secure whenever the request
came over TLS (directly, or through a trusted proxy's ``X-Forwarded-Proto``).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web
from aiohttp.web_urldispatcher import StaticResource

from node.accounts import AccountError, AccountErrorCode, authorize, check_csrf

from ._errors import ApiError, error_body, error_of, http_error_code
from ._metrics import Metrics
from ._routes import PEER, PUBLIC, SIGNED_IN, Route, RouteTable
from ._services import SERVICES, SESSION, Services

__all__ = [
    "CSRF_HEADER",
    "ERROR_HEADER",
    "METRICS",
    "PRE_SESSION_COOKIE",
    "ROUTES",
    "SESSION_COOKIE",
    "clear_session_cookie",
    "is_tls",
    "pipeline",
    "pre_session_token",
    "set_session_cookie",
]

SESSION_COOKIE: Final = "watan_session"
PRE_SESSION_COOKIE: Final = "watan_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
#: Every error response names its code here too (HTML error pages included), for
#: monitoring and tests that must tell a refusal's reason without parsing a page.
ERROR_HEADER: Final = "X-Watan-Error"
ROUTES: Final = web.AppKey("watan_routes", RouteTable)
METRICS: Final = web.AppKey("watan_metrics", Metrics)

_log = logging.getLogger("watan.http")

#: No inline script or style anywhere, no framing, forms post only to us.
_CSP: Final = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_PRE_SESSION_NEW: Final = web.RequestKey("watan_pre_session_new", str)
_CLEAR_SESSION: Final = web.RequestKey("watan_clear_session", bool)


def is_tls(request: web.Request) -> bool:
    """Whether the client reached us over TLS (directly or via a trusted proxy)."""
    if request.secure:
        return True
    if request.app[SERVICES].trust_proxy:
        return request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    return False


def _cookie_flags(request: web.Request) -> dict[str, Any]:
    return {"httponly": True, "samesite": "Strict", "path": "/", "secure": is_tls(request)}


def set_session_cookie(response: web.StreamResponse, request: web.Request, token: str) -> None:
    """Give the client its session token (no Max-Age: it dies with the browser; the
    node ends it after 12 h in any case)."""
    response.set_cookie(SESSION_COOKIE, token, **_cookie_flags(request))


def clear_session_cookie(response: web.StreamResponse, request: web.Request) -> None:
    """Remove the session cookie from the client."""
    flags = _cookie_flags(request)
    response.del_cookie(SESSION_COOKIE, path="/", secure=flags["secure"], samesite="Strict")


def pre_session_token(request: web.Request) -> str:
    """The pre-session CSRF token for a form shown to a signed-out user (the login
    form): the cookie's value, or a new one the middleware sets on the response."""
    token = request.cookies.get(PRE_SESSION_COOKIE, "")
    if len(token) == 43:
        return token
    new: str | None = request.get(_PRE_SESSION_NEW)
    if new is None:
        raw = request.app[SERVICES].random_bytes(32)
        new = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        request[_PRE_SESSION_NEW] = new
    return new


def _route_of(request: web.Request) -> tuple[Route | None, str]:
    """The request's route and its metrics label."""
    info = request.match_info
    if info.http_exception is not None:
        return None, "unmatched"
    resource = info.route.resource
    if resource is None:
        return None, "unmatched"
    if isinstance(resource, StaticResource):
        return None, "static"
    method = "GET" if request.method == "HEAD" else request.method
    route = request.app[ROUTES].get(method, resource.canonical)
    return route, resource.canonical


def _is_api(request: web.Request, route: Route | None) -> bool:
    return route.api if route is not None else request.path.startswith("/api/")


def _error_response(
    request: web.Request, route: Route | None, status: int, body: dict[str, Any]
) -> web.Response:
    svc = request.app[SERVICES]
    if _is_api(request, route) or svc.error_page is None:
        response = web.json_response(body, status=status)
    else:
        response = svc.error_page(request, status, body["error"]["code"])
    response.headers[ERROR_HEADER] = body["error"]["code"]
    until = body["error"].get("locked_until_ms")
    if status == 429 and until is not None:
        wait_ms = max(0, until - request.app[SERVICES].now_ms())
        response.headers["Retry-After"] = str(-(-wait_ms // 1000))
    return response


def _login_redirect(request: web.Request) -> web.Response:
    target = "/login"
    if request.method == "GET" and request.path_qs not in ("/", "/login"):
        target += "?next=" + quote(request.path_qs, safe="")
    raise web.HTTPSeeOther(target, headers={ERROR_HEADER: "UNAUTHENTICATED"})


async def _resume(request: web.Request, svc: Services) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return
    try:
        request[SESSION] = await svc.accounts.resume(token, now_ms=svc.now_ms())
    except AccountError as error:
        if error.code is not AccountErrorCode.EXPIRED:
            raise
        request[_CLEAR_SESSION] = True


def _check_access(request: web.Request, route: Route) -> None:
    if route.access is PUBLIC or route.access is PEER:
        return
    session = request.get(SESSION)
    if session is None:
        if route.api:
            raise ApiError(401, "UNAUTHENTICATED", "sign in first")
        _login_redirect(request)
        return
    if route.access is SIGNED_IN:
        return
    try:
        authorize(session.account, route.access)
    except AccountError as error:
        if error.code is AccountErrorCode.PASSWORD_CHANGE_REQUIRED and not route.api:
            raise web.HTTPSeeOther("/password", headers={ERROR_HEADER: error.code.value}) from None
        raise


def _same_origin(request: web.Request) -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    scheme = "https" if is_tls(request) else "http"
    return origin in (f"{scheme}://{request.host}", f"http://{request.host}")


def _csrf_refused(message: str) -> AccountError:
    return AccountError(message, code=AccountErrorCode.CSRF)


_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _read_form(request: web.Request) -> None:
    """Parse a posted form once, here, so that a body that is not UTF-8 (or not a
    form) is a 400 for every route rather than an exception in a handler."""
    if request.content_type in _FORM_TYPES:
        try:
            await request.post()
        except (UnicodeDecodeError, ValueError):
            raise web.HTTPBadRequest(text="the form is not valid UTF-8") from None


async def _check_csrf(request: web.Request, route: Route) -> None:
    if not route.unsafe:
        return
    await _read_form(request)
    if not _same_origin(request):
        raise _csrf_refused("cross-site request refused")
    session = request.get(SESSION)
    if session is not None:
        submitted = request.headers.get(CSRF_HEADER)
        if submitted is None and request.content_type in _FORM_TYPES:
            form = await request.post()
            value = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
        check_csrf(session, submitted)
    elif route.api:
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="send application/json")
    else:
        form = await request.post()
        value = form.get(CSRF_FIELD)
        cookie = request.cookies.get(PRE_SESSION_COOKIE, "")
        if not (
            isinstance(value, str)
            and cookie
            and hmac.compare_digest(value.encode("utf-8", "replace"), cookie.encode("utf-8"))
        ):
            raise _csrf_refused("the form's CSRF token does not match")


async def _run(request: web.Request, handler: Any, route: Route | None) -> web.StreamResponse:
    try:
        if route is not None and route.access is not PEER:
            await _resume(request, request.app[SERVICES])
            _check_access(request, route)
            await _check_csrf(request, route)
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect: the pipeline finishes and re-raises it
        return _error_response(request, route, exc.status, _plain(exc))
    except Exception as exc:
        mapped = error_of(exc)
        if mapped is None:
            _log.exception(
                "unhandled error", extra={"event": "http.error", "route": _label(request)}
            )
            mapped = 500, error_body("INTERNAL", "internal error; see the node's log")
        status, body = mapped
        if status >= 500:
            _log.warning(
                "request failed", extra={"event": "http.unavailable", "code": body["error"]["code"]}
            )
        return _error_response(request, route, status, body)


def _plain(exc: web.HTTPException) -> dict[str, Any]:
    return error_body(http_error_code(exc.status), exc.reason)


def _label(request: web.Request) -> str:
    return _route_of(request)[1]


def _finish(request: web.Request, response: web.StreamResponse, static: bool) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null"
    # on form posts, which the CSRF origin check must refuse. Nothing leaves the node.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not static:
        headers.setdefault("Cache-Control", "no-store")
    if is_tls(request):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    new = request.get(_PRE_SESSION_NEW)
    if new is not None:
        response.set_cookie(PRE_SESSION_COOKIE, new, **_cookie_flags(request))
    if request.get(_CLEAR_SESSION) and SESSION_COOKIE not in response.cookies:
        clear_session_cookie(response, request)


@web.middleware
async def pipeline(request: web.Request, handler: Any) -> web.StreamResponse:
    """The node's only middleware (module docstring)."""
    started = time.perf_counter()
    route, label = _route_of(request)
    redirect: web.HTTPException | None = None
    try:
        response = await _run(request, handler, route)
    except web.HTTPException as exc:  # 3xx only (see _run); aiohttp wants it raised
        response = redirect = exc
    _finish(request, response, static=label == "static")
    elapsed = time.perf_counter() - started
    request.app[METRICS].observe(request.method, label, response.status, elapsed)
    session = request.get(SESSION)
    # No path, query or username: paths hold ids, queries hold search terms, and
    # neither belongs in a log shipped off the box. The route template is enough.
    _log.info(
        "%s %s %d",
        request.method,
        label,
        response.status,
        extra={
            "event": "http.request",
            "method": request.method,
            "route": label,
            "status": response.status,
            "ms": round(elapsed * 1000, 1),
            "account": None if session is None else session.account.id,
        },
    )
    if redirect is not None:
        raise redirect
    return response


def json_dumps(value: Any) -> str:
    """Compact JSON with non-ASCII kept (Arabic text stays readable)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
