"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 document built from the route table,
so it lists exactly the API routes the node serves, with the schemas it enforces."""

from __future__ import annotations

from typing import Any, Final

from node.accounts import Permission

from ._errors import error_body
from ._routes import PUBLIC, SIGNED_IN, Route, RouteTable

__all__ = ["openapi_document"]

_ERROR: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "locked_until_ms": {"type": "integer"},
                "problem": {"type": "string"},
            },
        }
    },
}


def _access_text(route: Route) -> str:
    if route.access is PUBLIC:
        return "Public."
    if route.access is SIGNED_IN:
        return "Any signed-in account."
    assert isinstance(route.access, Permission)
    from node.accounts import PERMISSIONS

    roles = ", ".join(sorted(role.value for role in PERMISSIONS[route.access]))
    return f"Requires permission `{route.access.value}` (roles: {roles})."


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": dict(route.response)}}
    responses: dict[str, Any] = {str(route.status): ok}
    if route.request is not None or route.parameters:
        responses["422"] = _error_response("Invalid input")
    if route.request is not None:
        responses["400"] = _error_response("The body is not JSON")
        responses["413"] = _error_response("The body is too large")
        responses["415"] = _error_response("The body is not application/json")
    if route.access is not PUBLIC:
        responses["401"] = _error_response("Not signed in, or the session expired")
        responses["403"] = _error_response(
            "Forbidden for this role, CSRF token missing or wrong, or a one-time password "
            "must be changed first"
        )
    if "{" in route.path:
        responses["404"] = _error_response("No such object")
    if route.unsafe:
        responses.setdefault("403", _error_response("Cross-site request or bad CSRF token"))
        responses.setdefault("409", _error_response("Conflicts with the current state"))
        responses.setdefault("401", _error_response("Wrong username or password"))
        responses["429"] = _error_response("Too many failed sign-ins: locked for a while")
    responses["503"] = _error_response("The node's database is unavailable")
    responses["507"] = _error_response("The node's storage (disk) is full")
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "description": _access_text(route),
        "tags": list(route.tags),
        "responses": responses,
    }
    if route.parameters:
        operation["parameters"] = [dict(p) for p in route.parameters]
    if route.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(route.request)}},
        }
    if route.access is not PUBLIC:
        operation["security"] = [{"session": []}]
    return operation


def openapi_document(table: RouteTable, *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every API route in ``table``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        if route.api:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Watan node API",
            "version": version,
            "description": (
                "A Watan node's JSON API. Sign in with POST /api/v1/session; the "
                "session cookie authenticates later calls, and every POST, PUT, PATCH "
                "and DELETE carries the returned CSRF token in the X-CSRF-Token header. "
                "Errors are " + str(error_body("CODE", "message"))
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "watan_session"}
            },
        },
    }
