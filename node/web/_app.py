"""The node's aiohttp application: health, metrics, the JSON API and, when installed,
the admin UI (found through the ``watan.ui`` entry point, so ``node`` never imports
``admin_ui``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import metadata
from typing import Final

from aiohttp import web

from node.storage import StorageError, StorageErrorCode

from ._api import PREFIX, add_api_routes
from ._ataa_api import add_ataa_api_routes
from ._federation import add_federation_routes
from ._metrics import CONTENT_TYPE, Metrics, NodeGauges
from ._openapi import openapi_document
from ._pipeline import METRICS, ROUTES, json_dumps, pipeline
from ._routes import PUBLIC, RouteTable
from ._services import SERVICES, Services, services

__all__ = ["UI_ENTRY_POINTS", "UiSetup", "load_ui", "make_app"]

UiSetup = Callable[[RouteTable, Services], None]
UI_ENTRY_POINTS: Final = "watan.ui"
#: Largest request body (forms, JSON): the largest legitimate one is a message with
#: attachments (SPEC §5.8: up to 768 KiB) posted as a form, with room for its text
#: fields and multipart framing. Federation routes read their bodies themselves, with
#: their own limit (``node.web._federation``).
_MAX_REQUEST: Final = 1_100_000

_log = logging.getLogger(__name__)


def version() -> str:
    """The installed ``watan`` version."""
    try:
        return metadata.version("watan")
    except metadata.PackageNotFoundError:
        return "0+source"


#: What an unhealthy ``/healthz`` says, by storage error code: a stable ``code`` for
#: monitoring and a fixed ``reason`` for people (never the storage error's own text).
_UNHEALTHY: Final = {
    StorageErrorCode.FULL: ("STORAGE_FULL", "storage full"),
}
_UNREACHABLE: Final = ("DB_UNREACHABLE", "database unreachable")


async def _healthz(request: web.Request) -> web.Response:
    """200 ``{"status": "ok", "node_id": HEX}``, or 503 ``{"status": "unhealthy",
    "code": DB_UNREACHABLE | STORAGE_FULL, "reason": ...}``. The database is asked on
    every call (:meth:`Database.check`: one query, and the free space beside a SQLite
    file), so health follows an outage and its end without a restart. The reason is fixed:
    the storage error may name the database host, and health is often exposed to
    monitoring outside the node."""
    svc = services(request)
    node_id = svc.identity.node_id.hex()
    try:
        await svc.db.check()
    except StorageError as error:
        code, reason = _UNHEALTHY.get(error.code, _UNREACHABLE)
        _log.warning(
            "health check failed: %s", code, extra={"event": "health.failed", "code": code}
        )
        return web.json_response(
            {"status": "unhealthy", "node_id": node_id, "code": code, "reason": reason},
            status=503,
        )
    return web.json_response({"status": "ok", "node_id": node_id})


async def _metrics(request: web.Request) -> web.Response:
    svc = services(request)
    gauges = NodeGauges()
    try:
        await svc.db.ping()
        gauges.entries = await svc.feeds.count()
        gauges.feeds = len(await svc.feeds.heads())
        gauges.db_up = True
    except StorageError:
        gauges.db_up = False
    gauges.uptime_s = max(0.0, (svc.now_ms() - svc.started_ms) / 1000)
    gauges.free_bytes = svc.db.free_bytes()

    def refresh(target: NodeGauges) -> None:
        target.__dict__.update(gauges.__dict__)

    body = request.app[METRICS].render(refresh)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _openapi(request: web.Request) -> web.Response:
    document = openapi_document(request.app[ROUTES], version=version())
    return web.json_response(document, dumps=json_dumps)


def load_ui() -> UiSetup | None:
    """The admin UI's setup function from the ``watan.ui`` entry point, if installed."""
    for entry in metadata.entry_points(group=UI_ENTRY_POINTS):
        setup: UiSetup = entry.load()
        return setup
    return None


def make_app(svc: Services, *, ui: UiSetup | None = None) -> web.Application:
    """The node's web application.

    Args:
        svc: the node's services (the caller opens and closes the database).
        ui: installs the admin UI's routes (``load_ui()`` in production).
    """
    app = web.Application(middlewares=[pipeline], client_max_size=_MAX_REQUEST)
    table = RouteTable()
    table.add("GET", "/healthz", _healthz, access=PUBLIC)
    table.add("GET", "/metrics", _metrics, access=PUBLIC)
    table.add("GET", f"{PREFIX}/openapi.json", _openapi, access=PUBLIC)
    add_api_routes(table)
    add_ataa_api_routes(table)
    add_federation_routes(table)
    if ui is not None:
        ui(table, svc)
    for route in table:
        app.router.add_route(route.method, route.path, route.handler)
    for prefix, directory in table.static:
        app.router.add_static(prefix, directory, append_version=False)
    app[SERVICES] = svc
    app[ROUTES] = table
    app[METRICS] = Metrics()
    for hook in table.app_hooks:
        hook(app)
    return app


def started_ms() -> int:
    """Wall-clock start time, for uptime."""
    return time.time_ns() // 1_000_000
