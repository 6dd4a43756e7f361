"""Distributions as stored: the plan, its households and their states, and the reads
and row helpers :mod:`._distributions` runs inside its transactions."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection

import protocol
from node import geo
from node.storage._schema import (
    ataa_dist_households,
    ataa_distributions,
    ataa_households,
    pseudonyms,
)

from ._allocations import AllocationError, AllocationErrorCode

__all__ = [
    "MAX_REASON",
    "MAX_TARGET",
    "DeliveryState",
    "DistHousehold",
    "Distribution",
    "DistributionPlan",
    "DistributionState",
    "EpochSource",
    "audit_target",
    "check_open",
    "check_reason",
    "checked_row",
    "distribution_txn",
    "households_txn",
    "list_txn",
    "members_txn",
    "not_found",
    "pending_txn",
    "pseudonym_txn",
    "refusal",
    "require_household",
    "row_key",
    "row_txn",
    "touch",
]

#: A reason is a sentence or two; a longer text is a case note, which belongs elsewhere.
MAX_REASON: Final = 500
#: The most households one distribution targets; a larger one is several rounds.
MAX_TARGET: Final = 100_000
_MAX_TITLE: Final = 200

DistributionState = Literal["draft", "open", "closed"]
DeliveryState = Literal["planned", "excluded", "delivered", "voided"]
_DELIVERY_STATES: Final = ("planned", "excluded", "delivered", "voided")


def refusal(code: AllocationErrorCode, message: str) -> AllocationError:
    return AllocationError(message, code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributionPlan:
    """What a distribution gives each household, and to whom (``governorate`` /
    ``district`` narrow the queue it picks from)."""

    title: str
    program: str
    category: str
    unit: str
    quantity: int
    value_iqd: int
    governorate: str | None = None
    district: str | None = None
    target_count: int

    def check(self) -> None:
        """Raises AllocationError INVALID naming the first field that is wrong."""
        title = self.title
        if type(title) is not str or not 1 <= len(title) <= _MAX_TITLE:
            raise refusal(AllocationErrorCode.INVALID, f"title: 1..{_MAX_TITLE} characters")
        if title.strip() != title or _controls(title):
            raise refusal(AllocationErrorCode.INVALID, "title: one line, no surrounding spaces")
        checks = protocol.Allocation.CHECKS  # the very rules the entry will be held to
        try:
            for name in ("program", "category", "unit", "quantity", "value_iqd"):
                checks[name](name, getattr(self, name))
        except protocol.ProtocolError as error:
            raise refusal(AllocationErrorCode.INVALID, error.message) from None
        if self.governorate is not None and not any(
            area.pcode == self.governorate for area in geo.governorates()
        ):
            raise refusal(AllocationErrorCode.INVALID, "governorate: not a governorate P-code")
        if self.district is not None and not (
            geo.is_district(self.district) and self.district == geo.normalize_pcode(self.district)
        ):
            raise refusal(AllocationErrorCode.INVALID, "district: not a district P-code")
        if (
            self.governorate is not None
            and self.district is not None
            and not geo.district_in(self.district, self.governorate)
        ):
            raise refusal(AllocationErrorCode.INVALID, "district: not in the governorate")
        if type(self.target_count) is not int or not 1 <= self.target_count <= MAX_TARGET:
            raise refusal(AllocationErrorCode.INVALID, f"target_count: 1..{MAX_TARGET}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """A distribution and how many of its households are in each state."""

    id: int
    plan: DistributionPlan
    state: DistributionState
    created_by: int | None
    created_ms: int
    updated_ms: int
    counts: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class DistHousehold:
    """One household of a distribution.

    Attributes:
        rank: its place in the queue when picked; 0 when included by hand.
        priority: its queue priority then.
        reason: why it was included or excluded (staff's words), or the void code.
        entry_seq: our allocation entry; None while publication is pending.
    """

    distribution_id: int
    household_id: int
    rank: int
    priority: int
    state: DeliveryState
    reason: str | None
    override_by: int | None
    override_reason: str | None
    delivered_by: int | None
    delivered_ms: int | None
    delivered_date: str | None
    entry_seq: int | None
    updated_ms: int

    @property
    def published(self) -> bool:
        return self.entry_seq is not None


class _Epoch(Protocol):
    @property
    def epoch(self) -> int: ...


class EpochSource(Protocol):
    """What the service needs of :class:`node.oracle.PseudonymService`."""

    async def config(self) -> _Epoch: ...


# -- helpers and reads (sync: they run inside run_sync) -----------------------------------


def audit_target(distribution_id: int) -> str:
    return f"distribution:{distribution_id}"


def not_found(distribution_id: int) -> AllocationError:
    return refusal(AllocationErrorCode.NOT_FOUND, f"no distribution {distribution_id}")


def check_open(distribution: Distribution) -> None:
    if distribution.state == "closed":
        raise refusal(AllocationErrorCode.BAD_STATE, f"distribution {distribution.id} is closed")


def check_reason(reason: str) -> str:
    if type(reason) is not str:
        raise refusal(AllocationErrorCode.INVALID, "reason: required")
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_REASON:
        raise refusal(AllocationErrorCode.INVALID, f"reason: required, 1..{MAX_REASON} characters")
    if _controls(reason, allowed="\n\t"):
        raise refusal(AllocationErrorCode.INVALID, "reason: no control characters")
    return reason


def _controls(text: str, *, allowed: str = "") -> bool:
    """Whether ``text`` holds a control character (Unicode Cc) or a bidi override
    (which can make text display differently from what it says, CVE-2021-42574).
    Zero-width joiners stay allowed: Kurdish and Persian spelling needs them."""
    return any(
        (unicodedata.category(ch) == "Cc" and ch not in allowed) or ch in _BIDI for ch in text
    )


_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def touch(conn: Connection, distribution_id: int, now_ms: int) -> None:
    conn.execute(
        update(ataa_distributions)
        .where(ataa_distributions.c.id == distribution_id)
        .values(updated_ms=now_ms)
    )


def row_key(row: DistHousehold) -> tuple[Any, Any]:
    c = ataa_dist_households.c
    return c.distribution_id == row.distribution_id, c.household_id == row.household_id


def require_household(conn: Connection, household_id: int, *, active: bool) -> Any:
    h = ataa_households.c
    row = conn.execute(
        select(h.id, h.status, h.pseudonym_mac, h.district).where(h.id == household_id)
    ).one_or_none()
    if row is None:
        raise refusal(AllocationErrorCode.NOT_FOUND, f"no household {household_id}")
    if active and row.status != "active":
        raise refusal(AllocationErrorCode.BAD_STATE, f"household {household_id} is {row.status}")
    return row


def pseudonym_txn(conn: Connection, mac: bytes | None, epoch: int | None) -> Any:
    """The ready pseudonym row (``value``, ``weak``) of ``mac`` in ``epoch``, or None."""
    if mac is None or epoch is None:
        return None
    row = conn.execute(
        select(pseudonyms.c.value, pseudonyms.c.weak).where(
            pseudonyms.c.mac == mac, pseudonyms.c.epoch == epoch
        )
    ).one_or_none()
    if row is None or row.value is None:
        return None
    return row


def _to_row(row: Any) -> DistHousehold:
    return DistHousehold(
        distribution_id=row.distribution_id,
        household_id=row.household_id,
        rank=row.rank,
        priority=row.priority,
        state=row.state,
        reason=row.reason,
        override_by=row.override_by,
        override_reason=row.override_reason,
        delivered_by=row.delivered_by,
        delivered_ms=row.delivered_ms,
        delivered_date=row.delivered_date,
        entry_seq=row.entry_seq,
        updated_ms=row.updated_ms,
    )


def row_txn(
    conn: Connection, distribution_id: int, household_id: int, *, lock: bool = False
) -> DistHousehold | None:
    c = ataa_dist_households.c
    query = select(ataa_dist_households).where(
        c.distribution_id == distribution_id, c.household_id == household_id
    )
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
    return None if row is None else _to_row(row)


def checked_row(
    conn: Connection, distribution_id: int, household_id: int, *, lock: bool = False
) -> DistHousehold:
    row = row_txn(conn, distribution_id, household_id, lock=lock)
    if row is None:
        raise refusal(
            AllocationErrorCode.NOT_FOUND,
            f"household {household_id} is not in distribution {distribution_id}",
        )
    return row


def members_txn(conn: Connection, distribution_id: int) -> tuple[set[int], int]:
    """Households already in a distribution, and how many take a place in it
    (planned or delivered: an excluded or voided one leaves its place to the next)."""
    c = ataa_dist_households.c
    rows = conn.execute(
        select(c.household_id, c.state).where(c.distribution_id == distribution_id)
    ).all()
    return {row.household_id for row in rows}, sum(
        row.state in ("planned", "delivered") for row in rows
    )


def pending_txn(conn: Connection, epoch: int, limit: int) -> list[tuple[int, int]]:
    dh, h, p = ataa_dist_households.c, ataa_households.c, pseudonyms.c
    query = (
        select(dh.distribution_id, dh.household_id)
        .select_from(
            ataa_dist_households.join(ataa_households, h.id == dh.household_id).join(
                pseudonyms, and_(p.mac == h.pseudonym_mac, p.epoch == epoch)
            )
        )
        .where(dh.state == "delivered", dh.entry_seq.is_(None))
        .order_by(dh.delivered_ms, dh.distribution_id, dh.household_id)
        .limit(limit)
    )
    return [(row.distribution_id, row.household_id) for row in conn.execute(query)]


def _distribution(row: Any, counts: dict[str, int]) -> Distribution:
    plan = DistributionPlan(
        title=row.title,
        program=row.program,
        category=row.category,
        unit=row.unit,
        quantity=row.quantity,
        value_iqd=row.value_iqd,
        governorate=row.governorate,
        district=row.district,
        target_count=row.target_count,
    )
    return Distribution(
        id=row.id,
        plan=plan,
        state=row.state,
        created_by=row.created_by,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        counts={state: counts.get(state, 0) for state in _DELIVERY_STATES},
    )


def distribution_txn(conn: Connection, distribution_id: int) -> Distribution:
    found = list_txn(conn, distribution_id)
    if not found:
        raise not_found(distribution_id)
    return found[0]


def list_txn(conn: Connection, distribution_id: int | None) -> list[Distribution]:
    d, dh = ataa_distributions.c, ataa_dist_households.c
    query = select(ataa_distributions).order_by(d.created_ms.desc(), d.id.desc())
    counting = select(dh.distribution_id, dh.state, func.count().label("n")).group_by(
        dh.distribution_id, dh.state
    )
    if distribution_id is not None:
        query = query.where(d.id == distribution_id)
        counting = counting.where(dh.distribution_id == distribution_id)
    counts: dict[int, dict[str, int]] = {}
    for row in conn.execute(counting):
        counts.setdefault(row.distribution_id, {})[row.state] = int(row.n)
    return [_distribution(row, counts.get(row.id, {})) for row in conn.execute(query)]


def households_txn(
    conn: Connection, distribution_id: int, state: DeliveryState | None
) -> list[DistHousehold]:
    c = ataa_dist_households.c
    query = (
        select(ataa_dist_households)
        .where(c.distribution_id == distribution_id)
        .order_by((c.rank == 0), c.rank, c.household_id)
    )
    if state is not None:
        query = query.where(c.state == state)
    return [_to_row(row) for row in conn.execute(query)]
