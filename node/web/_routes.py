"""The route table: every route declares who may call it, so one middleware enforces
access on all of them and the OpenAPI document and the role tests read the same table.

``access`` is one of:

* :data:`PUBLIC`: anyone (login page, health, metrics, static files).
* :data:`SIGNED_IN`: any signed-in account, even one that must still change its
  one-time password (the password change itself, logout).
* :data:`PEER`: a node-to-node request signed by a peer (checked by the handler).
* a :class:`~node.accounts.Permission`: a signed-in account whose role holds it, with
  its one-time password already changed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from node.accounts import Permission

__all__ = ["PEER", "PUBLIC", "SIGNED_IN", "Access", "Handler", "Route", "RouteTable"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate(enum.Enum):
    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    PEER = "peer"


PUBLIC: Final = Gate.PUBLIC
SIGNED_IN: Final = Gate.SIGNED_IN
#: Node-to-node federation routes: no session or CSRF; the handler verifies the
#: request's HTTP message signature and the signer's peer state (``_federation``).
PEER: Final = Gate.PEER
Access = Gate | Permission

#: Methods that change state: they need a CSRF token (or, before login, a same-origin
#: request) and never run for a GET link someone was tricked into following.
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One route and what the middleware and the OpenAPI document need to know of it.

    Attributes:
        api: a JSON route under ``/api/v1`` (errors are JSON bodies; the OpenAPI
            document lists it) rather than an HTML page.
        summary: one line for the OpenAPI document (API routes must have one).
        request: JSON Schema of the request body (API routes that take one).
        response: JSON Schema of the 2xx response body (API routes).
        parameters: OpenAPI parameter objects (query and path parameters).
        status: the success status code documented for the route.
    """

    method: str
    path: str
    handler: Handler
    access: Access
    name: str
    api: bool = False
    summary: str = ""
    request: Mapping[str, Any] | None = None
    response: Mapping[str, Any] | None = None
    parameters: tuple[Mapping[str, Any], ...] = ()
    status: int = 200
    tags: tuple[str, ...] = field(default=())

    @property
    def unsafe(self) -> bool:
        return self.method in UNSAFE_METHODS


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path) if w and w not in ("api", "v1")]
    return "_".join([method.lower(), *words]) if words else method.lower() + "_root"


class RouteTable:
    """The node's routes, in registration order; ``(method, path)`` is unique."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        self.static: list[tuple[str, str]] = []  # (prefix, directory)
        self.app_hooks: list[Callable[[web.Application], None]] = []

    def add(self, method: str, path: str, handler: Handler, *, access: Access, **info: Any) -> None:
        """Register ``handler`` for ``method path``.

        Raises:
            ValueError: the route exists already, or an API route lacks a summary.
        """
        key = (method.upper(), path)
        if key in self._routes:
            raise ValueError(f"route {method} {path} is registered twice")
        name = info.pop("name", None) or _operation_id(key[0], path)
        route = Route(method=key[0], path=path, handler=handler, access=access, name=name, **info)
        if route.api and not route.summary:
            raise ValueError(f"API route {method} {path} needs a summary")
        self._routes[key] = route

    def add_static(self, prefix: str, directory: str) -> None:
        """Serve the files of ``directory`` under ``prefix`` (public)."""
        self.static.append((prefix, directory))

    def on_app(self, hook: Callable[[web.Application], None]) -> None:
        """Call ``hook(app)`` when the application is built (to set app keys)."""
        self.app_hooks.append(hook)

    def get(self, method: str, path: str) -> Route | None:
        return self._routes.get((method.upper(), path))

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes.values())

    def __len__(self) -> int:
        return len(self._routes)
