"""Allocation reports: totals by program, district, category and month, of this node's
own allocations or of every allocation of the federation it holds, and their CSV.

Totals come from the allocation index, so they count what was published: voided
allocations never, deliveries whose entry is still pending (pseudonym not ready) not
yet. ``households`` counts distinct pseudonyms: exact within one epoch; a household
served both before and after a re-dealing (a new epoch) is counted once per epoch.
``quantity`` is summed per unit (adding kilograms to baskets means nothing), so
``unit`` is always one of the grouping columns.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.engine import Connection

from node.storage import Database
from node.storage._schema import ataa_allocations

from ._allocations import AllocationError, AllocationErrorCode

__all__ = ["DIMENSIONS", "Dimension", "ReportRow", "ReportService", "to_csv"]

Dimension = Literal["author", "program", "district", "category", "month"]
#: What totals may be grouped by (``author``: the issuing NGO, for the federation view).
DIMENSIONS: Final[tuple[Dimension, ...]] = ("author", "program", "district", "category", "month")
_OWN_DEFAULT: Final[tuple[Dimension, ...]] = ("program", "district", "category", "month")
#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection"):
#: such a cell gets a leading apostrophe, which Excel and LibreOffice show as text.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRow:
    """One group's totals; a dimension not grouped by is None.

    Attributes:
        count: allocations; households: distinct pseudonyms; quantity: of ``unit``;
        value_iqd: total value in dinars.
    """

    author: bytes | None = None
    program: str | None = None
    district: str | None = None
    category: str | None = None
    month: str | None = None
    unit: str
    count: int
    households: int
    quantity: int
    value_iqd: int


class ReportService:
    """Totals over the allocation index.

    Args:
        db: the node's database.
        own: our node id (the "own" view is our feed's allocations).
    """

    def __init__(self, db: Database, *, own: bytes) -> None:
        self._db = db
        self._own = own

    async def own_totals(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        by: Sequence[Dimension] = _OWN_DEFAULT,
    ) -> list[ReportRow]:
        """Totals of this node's non-voided allocations dated ``since..until``
        (inclusive ``YYYY-MM-DD``, either open), grouped by ``by`` and unit.

        Raises:
            AllocationError: INVALID dates or dimensions.
        """
        return await self._db.read(_totals_txn, self._own, _range(since, until), _dims(by))

    async def federation_totals(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        by: Sequence[Dimension] = DIMENSIONS,
    ) -> list[ReportRow]:
        """:meth:`own_totals` over every allocation this node holds, ours and peers'."""
        return await self._db.read(_totals_txn, None, _range(since, until), _dims(by))


def _invalid(message: str) -> AllocationError:
    return AllocationError(message, code=AllocationErrorCode.INVALID)


def _range(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    for name, value in (("since", since), ("until", until)):
        if value is None:
            continue
        try:
            parsed = datetime.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise _invalid(f"{name}: a date YYYY-MM-DD") from None
        if parsed.isoformat() != value:
            raise _invalid(f"{name}: a date YYYY-MM-DD")
    if since is not None and until is not None and since > until:
        raise _invalid("since: after until")
    return since, until


def _dims(by: Sequence[Dimension]) -> tuple[Dimension, ...]:
    if any(dim not in DIMENSIONS for dim in by) or len(set(by)) != len(by):
        raise _invalid(f"by: distinct values of {', '.join(DIMENSIONS)}")
    return tuple(dim for dim in DIMENSIONS if dim in by)


def _column(dim: Dimension) -> ColumnElement[Any]:
    a = ataa_allocations.c
    if dim == "month":
        return func.substr(a.date, 1, 7).label("month")  # YYYY-MM of YYYY-MM-DD
    return a[dim].label(dim)


def _totals_txn(
    conn: Connection,
    author: bytes | None,
    dates: tuple[str | None, str | None],
    dims: tuple[Dimension, ...],
) -> list[ReportRow]:
    a = ataa_allocations.c
    groups = [_column(dim) for dim in dims] + [a.unit.label("unit")]
    query = (
        select(
            *groups,
            func.count().label("count"),
            func.count(a.pseudonym.distinct()).label("households"),
            func.sum(a.quantity).label("quantity"),
            func.sum(a.value_iqd).label("value_iqd"),
        )
        .where(a.void_reason.is_(None))
        .group_by(*groups)
        .order_by(*groups)
    )
    if author is not None:
        query = query.where(a.author == author)
    since, until = dates
    if since is not None:
        query = query.where(a.date >= since)
    if until is not None:
        query = query.where(a.date <= until)
    rows = []
    for row in conn.execute(query).mappings():
        values: dict[str, Any] = {dim: row[dim] for dim in dims}
        if "author" in values:
            values["author"] = bytes(values["author"])
        rows.append(
            ReportRow(
                **values,
                unit=row["unit"],
                count=int(row["count"]),
                households=int(row["households"]),
                quantity=int(row["quantity"]),
                value_iqd=int(row["value_iqd"]),
            )
        )
    return rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value.hex() if isinstance(value, bytes) else str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def to_csv(rows: Sequence[ReportRow], *, columns: Sequence[str] | None = None) -> str:
    """The rows as CSV text for Excel: a UTF-8 byte order mark first (without it
    Excel reads Arabic as mojibake), CRLF line ends (RFC 4180), and any text cell
    that starts like a formula (= + - @ tab CR) prefixed with an apostrophe, so that
    opening the file never runs a formula (OWASP "CSV Injection"). ``author`` is
    written as hex; the UI writes NGO names itself.

    Args:
        columns: the columns, in order (default: every field of :class:`ReportRow`,
            dropping dimensions that are None in every row).
    """
    names = [f.name for f in fields(ReportRow)]
    if columns is None:
        columns = [
            name
            for name in names
            if name not in DIMENSIONS or any(getattr(row, name) is not None for row in rows)
        ]
    elif any(name not in names for name in columns):
        raise _invalid("columns: fields of ReportRow")
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(getattr(row, name)) for name in columns])
    return out.getvalue()
