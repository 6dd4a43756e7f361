"""The node's HTTP application (aiohttp): for now only the health endpoint.

``GET /healthz`` answers 200 ``{"status": "ok", "node_id": HEX}`` when the database
answers, else 503 ``{"status": "unhealthy", "node_id": HEX, "reason": "database
unreachable"}``. The reason is fixed text: the storage error may name the database
host, and a health endpoint is often exposed to monitoring outside the node.
"""

from __future__ import annotations

import logging

from aiohttp import web

from node.storage import Database, StorageError

__all__ = ["make_app"]

_log = logging.getLogger(__name__)

_DB = web.AppKey("db", Database)
_NODE_ID = web.AppKey("node_id", str)


async def _healthz(request: web.Request) -> web.Response:
    node_id = request.app[_NODE_ID]
    try:
        await request.app[_DB].ping()
    except StorageError as error:
        _log.warning("health check failed: %s", error.message)  # message has no password
        return web.json_response(
            {"status": "unhealthy", "node_id": node_id, "reason": "database unreachable"},
            status=503,
        )
    return web.json_response({"status": "ok", "node_id": node_id})


def make_app(*, db: Database, node_id: bytes) -> web.Application:
    """The node's web application.

    Args:
        db: the node's database (the caller opens and closes it).
        node_id: the node's id, reported by ``/healthz``.
    """
    app = web.Application()
    app[_DB] = db
    app[_NODE_ID] = node_id.hex()
    app.router.add_get("/healthz", _healthz)
    return app
