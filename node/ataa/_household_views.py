"""What the household store returns: summaries for lists (the head's name and
non-personal columns, not audited) and the full view (from the audited ``get``), and
the read queries behind lists and search. Split from ``_households`` to keep each
module readable; see its docstring for who sees what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, func, or_, select

from node.storage._schema import ataa_households, ataa_name_index, pseudonyms

from ._blind import SearchQuery
from ._datakeys import DataKeys
from ._record import HouseholdRecord
from ._scoring_store import StoredScore, decode_record

__all__ = [
    "MAX_PAGE",
    "HouseholdStatus",
    "HouseholdSummary",
    "HouseholdView",
    "PseudonymState",
    "filtered",
    "page",
    "scalar_txn",
    "search_query",
    "states_txn",
    "summaries_txn",
]

HouseholdStatus = Literal["active", "merged", "archived"]
PseudonymState = Literal["ready", "pending", "none"]

#: Most rows a list or search returns at once: a page on a phone (and bounded work:
#: each row is decrypted to show its name).
MAX_PAGE: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdSummary:
    """A household as lists show it: the head's name and non-personal columns.

    ``pseudonym`` is ``ready`` if a pseudonym is cached in some epoch, ``pending`` if
    one is being asked for, ``none`` without an input (or a node without
    federation); :meth:`HouseholdService.get` gives the state in the current epoch.
    """

    id: int
    name: tuple[str, str, str, str] = field(repr=False)
    governorate: str
    district: str
    displacement: str | None
    members: int | None
    score: int | None
    band: str | None
    model_version: int | None
    status: HouseholdStatus
    merged_into: int | None
    pseudonym: PseudonymState
    weak: bool
    registered_ms: int
    updated_ms: int

    @property
    def display_name(self) -> str:
        return " ".join(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdView:
    """A household's full record, decrypted (only from the audited ``get``).

    Attributes:
        score: the current score with its breakdown (under ``model_version``), None
            before the first scoring.
        pseudonym: ``ready``/``pending`` in the epoch in force (``none`` without an
            input or a pseudonym service); ``weak`` if from names, not a national ID;
            ``pseudonym_error`` the code of the last failed attempt, if pending.
    """

    id: int
    record: HouseholdRecord
    status: HouseholdStatus
    merged_into: int | None
    score: StoredScore | None
    pseudonym: PseudonymState
    weak: bool
    pseudonym_error: str | None
    import_id: int | None
    created_by: int | None
    registered_ms: int
    updated_ms: int


def summaries_txn(conn: Connection, keys: DataKeys, query: Any) -> list[HouseholdSummary]:
    """The households ``query`` selects (whole ``ataa_households`` rows), as summaries:
    names decrypted, pseudonym states joined."""
    rows = conn.execute(query).all()
    states = states_txn(conn, rows)
    out = []
    for row in rows:
        record = decode_record(keys.decrypt_txn(conn, row.key_id, bytes(row.pii)))
        out.append(
            HouseholdSummary(
                id=row.id,
                name=record.name,
                governorate=row.governorate,
                district=row.district,
                displacement=row.displacement,
                members=row.members,
                score=row.score,
                band=row.band,
                model_version=row.model_version,
                status=row.status,
                merged_into=row.merged_into,
                pseudonym=states.get(row.id, "none"),
                weak=bool(row.weak),
                registered_ms=row.registered_ms,
                updated_ms=row.updated_ms,
            )
        )
    return out


def search_query(parsed: SearchQuery, *, include_inactive: bool, limit: int) -> Any:
    """The households matching a classified search (``BlindIndex.query``): by
    national ID or phone token, or having every name word token; those whose given +
    father's token is the query's first two words first, then active ones, by score."""
    hh = ataa_households
    where: ColumnElement[bool]
    if parsed.words:
        names = ataa_name_index
        words = sorted(set(parsed.words))
        matching = (
            select(names.c.household_id)
            .where(names.c.token.in_(words))
            .group_by(names.c.household_id)
            .having(func.count() == len(words))
        )
        where = hh.c.id.in_(matching)
    else:
        keys = [(hh.c.nid_index, parsed.nid), (hh.c.phone_index, parsed.phone)]
        where = or_(*(column == token for column, token in keys if token is not None))
    sql = select(hh).where(where)
    if not include_inactive:
        sql = sql.where(hh.c.status == "active")
    order: list[Any] = []
    if parsed.pair is not None:
        pair_hit = select(ataa_name_index.c.household_id).where(
            ataa_name_index.c.token == parsed.pair
        )
        order.append(hh.c.id.not_in(pair_hit))
    order += [hh.c.status != "active", hh.c.score.is_(None), hh.c.score.desc(), hh.c.id]
    return sql.order_by(*order).limit(page(limit))


def page(limit: int) -> int:
    """``limit`` within 1..MAX_PAGE."""
    return max(1, min(limit, MAX_PAGE))


def filtered(
    query: Any, status: str, governorate: str | None, district: str | None, band: str | None
) -> Any:
    """``query`` restricted to households of ``status`` in an area and band."""
    query = query.where(ataa_households.c.status == status)
    if governorate is not None:
        query = query.where(ataa_households.c.governorate == governorate.strip().upper())
    if district is not None:
        query = query.where(ataa_households.c.district == district.strip().upper())
    if band is not None:
        query = query.where(ataa_households.c.band == band)
    return query


def scalar_txn(conn: Connection, query: Any) -> int:
    """The one value ``query`` selects."""
    return int(conn.execute(query).scalar_one())


def states_txn(conn: Connection, rows: Any) -> dict[int, PseudonymState]:
    """Pseudonym state per household id: ``pending`` if a request is queued, else
    ``ready`` if cached in some epoch, else ``none``."""
    by_mac: dict[bytes, list[int]] = {}
    for row in rows:
        if row.pseudonym_mac is not None:
            by_mac.setdefault(bytes(row.pseudonym_mac), []).append(row.id)
    if not by_mac:
        return {}
    states: dict[int, PseudonymState] = {}
    found = conn.execute(
        select(pseudonyms.c.mac, pseudonyms.c.epoch).where(pseudonyms.c.mac.in_(sorted(by_mac)))
    ).all()
    for mac, epoch in sorted(found, key=lambda r: r.epoch != 0):  # pending rows first
        for household_id in by_mac[bytes(mac)]:
            states.setdefault(household_id, "pending" if epoch == 0 else "ready")
    return states
