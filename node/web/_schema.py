"""The JSON Schema subset the API declares (OpenAPI 3.1 uses JSON Schema 2020-12), and
a checker for request bodies, so the schema in the OpenAPI document is the one the
node enforces rather than a description that can drift.

Supported keywords: ``type`` (one or a list), ``properties``, ``required``,
``additionalProperties: false``, ``items``, ``enum``, ``minLength``, ``maxLength``,
``minimum``, ``maximum``, ``maxItems``. Anything else in a schema is documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["ACCOUNT", "PROFILE", "SchemaError", "check", "obj"]

_TYPES: Final = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


class SchemaError(ValueError):
    """A value that does not match its schema; the message names the field."""


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return type(value) is int
    return isinstance(value, _TYPES[name]) and not (name != "boolean" and type(value) is bool)


def check(schema: Mapping[str, Any], value: Any, where: str = "body") -> None:
    """Check ``value`` against ``schema``.

    Raises:
        SchemaError: naming the first field that does not match.
    """
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, name) for name in names):
            raise SchemaError(f"{where} must be {' or '.join(names)}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{where} must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(f"{where} is too short")
        if len(value) > schema.get("maxLength", len(value)):
            raise SchemaError(f"{where} is too long")
    if type(value) is int:
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            raise SchemaError(f"{where} is out of range")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise SchemaError(f"{where} has too many items")
        for i, item in enumerate(value):
            check(schema.get("items", {}), item, f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise SchemaError(f"{where}.{name} is required")
        for name, item in value.items():
            if name in props:
                check(props[name], item, f"{where}.{name}")
            elif schema.get("additionalProperties", True) is False:
                raise SchemaError(f"{where}.{name} is not a known field")


def obj(required: tuple[str, ...] = (), **properties: Mapping[str, Any]) -> dict[str, Any]:
    """An object schema with these properties and no others."""
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
    }


STR: Final = {"type": "string"}
INT: Final = {"type": "integer"}
BOOL: Final = {"type": "boolean"}
HEX32: Final = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
ROLES: Final = ("admin", "coordinator", "case_worker", "auditor")

ACCOUNT: Final = obj(
    ("id", "username", "display_name", "role", "must_change_password", "disabled"),
    id=INT,
    username=STR,
    display_name=STR,
    role={"type": "string", "enum": list(ROLES)},
    must_change_password=BOOL,
    disabled=BOOL,
    created_ms=INT,
    updated_ms=INT,
    locked_until_ms={"type": ["integer", "null"]},
)

PROFILE: Final = obj(
    ("name_ar", "name_en", "registration", "governorate", "sectors"),
    name_ar={"type": "string", "minLength": 1, "maxLength": 200},
    name_en={"type": "string", "minLength": 1, "maxLength": 200},
    registration={"type": "string", "minLength": 2, "maxLength": 32},
    governorate={"type": "string", "pattern": "^IQG(0[1-9]|1[0-9])$"},
    sectors={"type": "array", "items": STR, "maxItems": 16},
    endpoints={"type": "array", "items": STR},
    role=STR,
    seq=INT,
    ts_ms=INT,
)
