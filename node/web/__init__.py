"""The node's HTTP surface (aiohttp): the route table with per-route access rules, the
one middleware (sessions, CSRF, errors, metrics, logs), the JSON API with its OpenAPI
document, health and metrics. The admin UI plugs in through :data:`UiSetup`.

>>> app = make_app(services, ui=load_ui())
"""

from ._api import PREFIX, account_json, node_summary, path_id
from ._app import UI_ENTRY_POINTS, UiSetup, load_ui, make_app, version
from ._errors import ApiError, error_body, error_of
from ._openapi import openapi_document
from ._pipeline import (
    CSRF_HEADER,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    clear_session_cookie,
    is_tls,
    pre_session_token,
    set_session_cookie,
)
from ._routes import PUBLIC, SIGNED_IN, Access, Handler, Route, RouteTable
from ._services import SERVICES, Services, current_account, current_session, services

__all__ = [
    "CSRF_HEADER",
    "PREFIX",
    "PRE_SESSION_COOKIE",
    "PUBLIC",
    "SERVICES",
    "SESSION_COOKIE",
    "SIGNED_IN",
    "UI_ENTRY_POINTS",
    "Access",
    "ApiError",
    "Handler",
    "Route",
    "RouteTable",
    "Services",
    "UiSetup",
    "account_json",
    "clear_session_cookie",
    "current_account",
    "current_session",
    "error_body",
    "error_of",
    "is_tls",
    "load_ui",
    "make_app",
    "node_summary",
    "openapi_document",
    "path_id",
    "pre_session_token",
    "services",
    "set_session_cookie",
    "version",
]
