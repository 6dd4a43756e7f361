"""Duplicate suggestions within one node: pairs of households a person should look at.

Two registrations of one family are the commonest data error in aid lists: a second
visit, a second staff member, a CSV imported twice under slightly different names. A
shared national ID is refused outright (``DUPLICATE_NATIONAL_ID``); everything weaker
is only *suggested*, for staff to merge or dismiss, because each rule below also
matches different families sometimes.

The rules (checked in the transaction that writes a household, against the other
*active* households; each match gives the pair a reason):

- ``phone``: the same phone number (blind index). Families share phones, so do
  neighbours who borrow one; hence a suggestion.
- ``weak_pseudonym``: the same weak pseudonym cache key, i.e. the same four name parts,
  mother's name, birth year and governorate after normalization (no national ID).
- ``name``: the same mother's name *and* birth year of the head, and at least two of
  the head's four name parts (any order): three or more name tokens in common, the
  mother's among them. The mother's name and the year are what tell apart the many
  "Ahmed Ali Hussein"s; two shared parts tolerate one part typed differently
  (a grandfather's name left out, a laqab spelled another way). Without a birth year
  this rule does not apply.

A pair is stored once (``a < b``) with its reasons, comma-separated. A pair already
decided (merged or dismissed) is never suggested again. Merging marks the dropped
household ``merged`` with ``merged_into``; no household row is ever deleted
(distributions and scores refer to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, and_, func, select, update

from node.audit import AuditLog
from node.clock import Clock
from node.storage import Database
from node.storage._schema import ataa_duplicates, ataa_households, ataa_name_index

from ._errors import HouseholdError, HouseholdErrorCode

__all__ = [
    "MAX_SUGGESTIONS",
    "REASONS",
    "Duplicates",
    "MatchKeys",
    "Suggestion",
    "suggest_txn",
]

#: The reasons a pair is suggested, in the order shown.
REASONS: Final = ("phone", "weak_pseudonym", "name")
#: Most new pairs one household write suggests per reason. A phone shared by dozens of
#: households (a mukhtar's, an NGO volunteer's) would otherwise flood the review list;
#: the first ones are enough for staff to notice the pattern.
MAX_SUGGESTIONS: Final = 20
#: Fewest head name parts shared, besides the mother's name and birth year.
_NAME_PARTS_SHARED: Final = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchKeys:
    """The blind values a household is compared on (from ``BlindIndex``)."""

    phone: bytes | None
    weak_mac: bytes | None
    parts: frozenset[bytes]
    mother_year: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    """A pair to review (``a < b``) and why it was suggested."""

    a: int
    b: int
    reasons: tuple[str, ...]
    state: str
    created_ms: int


def _suggestion(row: Any) -> Suggestion:
    return Suggestion(
        a=row.a,
        b=row.b,
        reasons=tuple(r for r in REASONS if r in row.reason.split(",")),
        state=row.state,
        created_ms=row.created_ms,
    )


def _others(conn: Connection, household_id: int, *where: Any) -> list[int]:
    query = (
        select(ataa_households.c.id)
        .where(ataa_households.c.id != household_id, ataa_households.c.status == "active", *where)
        .order_by(ataa_households.c.id)
        .limit(MAX_SUGGESTIONS)
    )
    return [int(row.id) for row in conn.execute(query)]


def _same_names(conn: Connection, household_id: int, keys: MatchKeys) -> list[int]:
    if keys.mother_year is None or len(keys.parts) < _NAME_PARTS_SHARED:
        return []
    names = ataa_name_index
    same_mother = select(names.c.household_id).where(names.c.token == keys.mother_year)
    query = (
        select(names.c.household_id)
        .join(ataa_households, ataa_households.c.id == names.c.household_id)
        .where(
            names.c.token.in_(sorted(keys.parts)),
            names.c.household_id.in_(same_mother),
            names.c.household_id != household_id,
            ataa_households.c.status == "active",
        )
        .group_by(names.c.household_id)
        .having(func.count() >= _NAME_PARTS_SHARED)
        .order_by(names.c.household_id)
        .limit(MAX_SUGGESTIONS)
    )
    return [int(row.household_id) for row in conn.execute(query)]


def suggest_txn(conn: Connection, household_id: int, keys: MatchKeys, now_ms: int) -> int:
    """Suggest pairs for one household just written (within that write's transaction).

    Returns:
        How many pairs were added or given a new reason.
    """
    found: dict[int, set[str]] = {}
    if keys.phone is not None:
        for other in _others(conn, household_id, ataa_households.c.phone_index == keys.phone):
            found.setdefault(other, set()).add("phone")
    if keys.weak_mac is not None:
        where = (ataa_households.c.pseudonym_mac == keys.weak_mac, ataa_households.c.weak)
        for other in _others(conn, household_id, *where):
            found.setdefault(other, set()).add("weak_pseudonym")
    for other in _same_names(conn, household_id, keys):
        found.setdefault(other, set()).add("name")
    changed = 0
    for other, reasons in sorted(found.items()):
        a, b = min(household_id, other), max(household_id, other)
        pair = and_(ataa_duplicates.c.a == a, ataa_duplicates.c.b == b)
        row = conn.execute(
            select(ataa_duplicates.c.reason, ataa_duplicates.c.state).where(pair)
        ).one_or_none()
        if row is None:
            conn.execute(
                ataa_duplicates.insert().values(
                    a=a,
                    b=b,
                    reason=_reason(reasons),
                    state="open",
                    decided_by=None,
                    decided_ms=None,
                    created_ms=now_ms,
                )
            )
            changed += 1
        elif row.state == "open":
            merged = _reason(reasons | set(row.reason.split(",")))
            if merged != row.reason:
                conn.execute(update(ataa_duplicates).where(pair).values(reason=merged))
                changed += 1
    return changed


def _reason(reasons: set[str]) -> str:
    return ",".join(r for r in REASONS if r in reasons)


class Duplicates:
    """Reviewing duplicate suggestions: list, dismiss, merge (one instance per node).

    Args:
        db: the node's database, upgraded.
        audit: where decisions are recorded.
        clock: for ``decided_ms``.
    """

    def __init__(self, db: Database, audit: AuditLog, clock: Clock) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    async def open_suggestions(
        self, *, household_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> list[Suggestion]:
        """Open pairs whose two households are both still active, oldest first.

        Args:
            household_id: only the pairs this household is in.
        """
        return await self._db.read(_open_txn, household_id, limit, offset)

    async def count_open(self) -> int:
        """How many open pairs :meth:`open_suggestions` would list in all."""
        return await self._db.read(_count_open_txn)

    async def dismiss(self, a: int, b: int, *, actor: int | None) -> None:
        """Decide that ``a`` and ``b`` are different households: the pair is never
        suggested again. Audited as ``ataa.duplicate.dismiss``; dismissing a pair
        already dismissed changes nothing.

        Raises:
            HouseholdError: NOT_FOUND if the pair was never suggested; NOT_ACTIVE if it
                was merged.
        """
        await self._db.write(self._dismiss_txn, min(a, b), max(a, b), actor, self._clock.now_ms())

    async def merge(self, keep: int, drop: int, *, actor: int | None) -> None:
        """Decide that ``drop`` is the same household as ``keep``: ``drop`` becomes
        ``merged`` (``merged_into = keep``) and leaves lists, search and the queue;
        its rows elsewhere (deliveries, scores) stay as they are. Works whether or not
        the pair was suggested. Audited as ``ataa.household.merge``.

        Raises:
            HouseholdError: BAD_REQUEST if ``keep == drop``; NOT_FOUND; NOT_ACTIVE if
                either household is not active.
        """
        if keep == drop:
            raise HouseholdError(
                "a household cannot be merged into itself", code=HouseholdErrorCode.BAD_REQUEST
            )
        await self._db.write(self._merge_txn, keep, drop, actor, self._clock.now_ms())

    def _dismiss_txn(self, conn: Connection, a: int, b: int, actor: int | None, now: int) -> None:
        pair = and_(ataa_duplicates.c.a == a, ataa_duplicates.c.b == b)
        state = conn.execute(
            select(ataa_duplicates.c.state).where(pair).with_for_update()
        ).scalar_one_or_none()
        if state is None:
            raise HouseholdError(
                f"households {a} and {b} were not suggested as duplicates",
                code=HouseholdErrorCode.NOT_FOUND,
            )
        if state == "dismissed":
            return
        if state == "merged":
            raise HouseholdError(
                f"households {a} and {b} were merged", code=HouseholdErrorCode.NOT_ACTIVE
            )
        conn.execute(
            update(ataa_duplicates)
            .where(pair)
            .values(state="dismissed", decided_by=actor, decided_ms=now)
        )
        self._audit.record_txn(
            conn,
            actor,
            "ataa.duplicate.dismiss",
            f"household:{a}",
            {"a": a, "b": b},
            now_ms=now,
        )

    def _merge_txn(
        self, conn: Connection, keep: int, drop: int, actor: int | None, now: int
    ) -> None:
        rows = {
            row.id: row.status
            for row in conn.execute(
                select(ataa_households.c.id, ataa_households.c.status)
                .where(ataa_households.c.id.in_((keep, drop)))
                .order_by(ataa_households.c.id)
                .with_for_update()
            )
        }
        for household in (keep, drop):
            if household not in rows:
                raise HouseholdError(
                    f"no household {household}",
                    code=HouseholdErrorCode.NOT_FOUND,
                    household_id=household,
                )
            if rows[household] != "active":
                raise HouseholdError(
                    f"household {household} is {rows[household]}, not active",
                    code=HouseholdErrorCode.NOT_ACTIVE,
                    household_id=household,
                )
        conn.execute(
            update(ataa_households)
            .where(ataa_households.c.id == drop)
            .values(status="merged", merged_into=keep, updated_ms=now)
        )
        a, b = min(keep, drop), max(keep, drop)
        pair = and_(ataa_duplicates.c.a == a, ataa_duplicates.c.b == b)
        decided = {"state": "merged", "decided_by": actor, "decided_ms": now}
        if conn.execute(select(ataa_duplicates.c.state).where(pair)).one_or_none() is None:
            conn.execute(
                ataa_duplicates.insert().values(a=a, b=b, reason="", created_ms=now, **decided)
            )
        else:
            conn.execute(update(ataa_duplicates).where(pair).values(**decided))
        self._audit.record_txn(
            conn,
            actor,
            "ataa.household.merge",
            f"household:{drop}",
            {"keep": keep, "drop": drop},
            now_ms=now,
        )


def _open_query() -> Any:
    ha, hb = ataa_households.alias("ha"), ataa_households.alias("hb")
    return (
        select(ataa_duplicates)
        .join(ha, ha.c.id == ataa_duplicates.c.a)
        .join(hb, hb.c.id == ataa_duplicates.c.b)
        .where(
            ataa_duplicates.c.state == "open",
            ha.c.status == "active",
            hb.c.status == "active",
        )
    )


def _open_txn(
    conn: Connection, household_id: int | None, limit: int, offset: int
) -> list[Suggestion]:
    query = _open_query()
    if household_id is not None:
        query = query.where(
            (ataa_duplicates.c.a == household_id) | (ataa_duplicates.c.b == household_id)
        )
    query = (
        query.order_by(ataa_duplicates.c.created_ms, ataa_duplicates.c.a, ataa_duplicates.c.b)
        .limit(max(1, min(limit, 500)))
        .offset(max(0, offset))
    )
    return [_suggestion(row) for row in conn.execute(query)]


def _count_open_txn(conn: Connection) -> int:
    subquery = _open_query().subquery()
    return int(conn.execute(select(func.count()).select_from(subquery)).scalar_one())
