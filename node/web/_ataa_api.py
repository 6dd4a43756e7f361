"""The Ata'a JSON API under ``/api/v1/ataa``: the priority queue, for integrations and
tests. Declared like :mod:`._api`'s routes (access rule and schemas in one place, so
``/api/v1/openapi.json`` documents exactly what is served).

Rows name households by id only: no name or other PII leaves through the API; the
allocations explaining a row carry what allocation records already carry (SPEC §5.6).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Final

from aiohttp import web

from node.accounts import Permission
from node.ataa import MAX_QUEUE_PAGE, AllocationError, Ataa, QueueRow, Received
from node.oracle import OracleError

from ._api import PREFIX
from ._errors import ApiError
from ._pipeline import json_dumps
from ._routes import RouteTable
from ._schema import BOOL, HEX32, INT, STR, obj
from ._services import services

__all__ = ["add_ataa_api_routes"]

#: Query filters of the queue, each at most this long (P-codes are 5 or 8 characters,
#: categories and bands a few words).
_MAX_FILTER: Final = 32

_RECEIVED: Final = obj(
    (
        "author",
        "category",
        "value_iqd",
        "quantity",
        "unit",
        "date",
        "program",
        "weak_match",
        "points",
    ),
    author={**HEX32, "description": "the issuing node's id"},
    category=STR,
    value_iqd=INT,
    quantity=INT,
    unit=STR,
    date={**STR, "description": "YYYY-MM-DD"},
    program=STR,
    weak_match={**BOOL, "description": "matched by a name-based pseudonym: not counted"},
    points={**INT, "description": "what it added to the penalty (before the cap)"},
)
_ROW: Final = obj(
    (
        "rank",
        "household_id",
        "score",
        "band",
        "priority",
        "penalty",
        "pseudonym_state",
        "weak",
        "received",
    ),
    rank={**INT, "description": "1-based place in the queue"},
    household_id=INT,
    score=INT,
    band={"type": ["string", "null"]},
    priority={**INT, "description": "score - penalty"},
    penalty=INT,
    pseudonym_state={"type": "string", "enum": ["ready", "pending", "none"]},
    weak={**BOOL, "description": "the household's pseudonym is name-based"},
    received={"type": "array", "items": _RECEIVED},
)
_SETTINGS: Final = obj(
    ("window_days", "same_category_penalty", "other_category_penalty", "cap_pct"),
    window_days=INT,
    same_category_penalty=INT,
    other_category_penalty=INT,
    cap_pct=INT,
)
_QUEUE: Final = obj(
    ("epoch", "total", "offset", "settings", "rows"),
    epoch={
        "type": ["integer", "null"],
        "description": "the pseudonym epoch in force; null: no oracle configuration, "
        "only this node's own deliveries count",
    },
    total={**INT, "description": "households matching the filters"},
    offset=INT,
    settings=_SETTINGS,
    rows={"type": "array", "items": _ROW},
)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _ataa(request: web.Request) -> Ataa:
    ataa = services(request).ataa
    if ataa is None:
        raise ApiError(503, "UNAVAILABLE", "Ata'a is not available on this node")
    return ataa


def _filter(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "")
    if len(value) > _MAX_FILTER:
        raise ApiError(422, "INVALID", f"{name} is at most {_MAX_FILTER} characters")
    return value or None


def _whole(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not low <= int(text) <= high:
        raise ApiError(422, "INVALID", f"{name} must be an integer in {low}..{high}")
    return int(text)


async def _epoch(request: web.Request) -> int | None:
    fed = services(request).federation
    if fed is None or fed.pseudonyms is None:
        return None
    try:
        return (await fed.pseudonyms.config()).epoch
    except OracleError:
        return None


def _received_json(item: Received) -> dict[str, Any]:
    value = asdict(item)
    value["author"] = item.author.hex()
    return value


def _row_json(rank: int, row: QueueRow) -> dict[str, Any]:
    return {
        "rank": rank,
        "household_id": row.household_id,
        "score": row.score,
        "band": row.band,
        "priority": row.priority,
        "penalty": row.penalty,
        "pseudonym_state": row.pseudonym_state,
        "weak": row.weak,
        "received": [_received_json(item) for item in row.received],
    }


async def _queue(request: web.Request) -> web.Response:
    ataa = _ataa(request)
    limit = _whole(request, "limit", 50, 1, MAX_QUEUE_PAGE)
    offset = _whole(request, "offset", 0, 0, 100_000_000)
    epoch = await _epoch(request)
    try:
        page = await ataa.queue.rank(
            epoch=epoch,
            category=_filter(request, "category"),
            governorate=_filter(request, "governorate"),
            district=_filter(request, "district"),
            band=_filter(request, "band"),
            limit=limit,
            offset=offset,
        )
    except AllocationError as error:
        raise ApiError(422, error.code.value, error.message) from None
    body = {
        "epoch": epoch,
        "total": page.total,
        "offset": offset,
        "settings": asdict(await ataa.queue.settings()),
        "rows": [_row_json(offset + i, row) for i, row in enumerate(page.rows, start=1)],
    }
    return web.json_response(body, dumps=json_dumps)


def add_ataa_api_routes(table: RouteTable) -> None:
    """Declare the ``/api/v1/ataa`` routes."""
    table.add(
        "GET",
        f"{PREFIX}/ataa/queue",
        _queue,
        access=Permission.VIEW_HOUSEHOLDS,
        api=True,
        summary="A page of the priority queue, each row with why it stands there",
        parameters=(
            _query("category", STR, "the aid about to be given (an allocation category)"),
            _query("governorate", STR, "governorate P-code"),
            _query("district", STR, "district P-code"),
            _query("band", STR, "need band of the score"),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_QUEUE_PAGE},
                f"rows per page (at most {MAX_QUEUE_PAGE}; default 50)",
            ),
            _query("offset", {"type": "integer", "minimum": 0}, "rows skipped"),
        ),
        response=_QUEUE,
        tags=("ataa",),
    )
