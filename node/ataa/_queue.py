"""The priority queue: the neediest households first, re-ranked by what they have
already received, from any NGO of the federation (DESIGN §1).

The rule (docs/ataa-queue.md says the same for staff)::

    priority = max(0, score - penalty)
    penalty  = min(sum of points, score * cap_pct / 100)

Points come from each non-voided allocation dated within the window
(``date >= today - window_days``, today in Iraq's time zone) that reached the
household: ``same_category_penalty`` when its category is the queue's category (a
queue without a category counts every allocation as same-category), else
``other_category_penalty``. An allocation reached the household when

- it is another NGO's, and its pseudonym equals the household's **strong** (national
  ID) pseudonym of the epoch in force (``pseudonyms.mac = households.pseudonym_mac``,
  same epoch on both sides: pseudonyms of different epochs never match); or
- it is one of this node's own deliveries to this household (``ataa_dist_households``
  state ``delivered``, dated by ``delivered_date``): a household we served is served,
  known exactly by its id, whether or not its pseudonym is ready yet.

Weak pseudonyms (from names, for households without a national ID) never change the
rank: two people can share a weak input (SPEC §14.1), so their matches appear in the
row's ``received`` list flagged ``weak_match`` (0 points), a suggestion for staff.

Ties: priority desc, score desc, registration time asc, household id asc: the same
order on every call and both backends. Households that are not active, or not
scored yet, are not in the queue.

Ranking is done in SQL, ordered and limited in the database, over a bounded set of
candidates (the households with the highest scores: priority never exceeds score, so
a page computed among them is exact once its last priority reaches the bound;
``_rank_page_txn``). What each row received is fetched for the page only.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    select,
)
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.storage import Database
from node.storage._schema import (
    ataa_allocations,
    ataa_dist_households,
    ataa_distributions,
    ataa_households,
    node_state,
    pseudonyms,
)

from ._allocations import AllocationError, AllocationErrorCode
from ._model import SCALE_MAX

__all__ = [
    "IRAQ_TZ",
    "MAX_QUEUE_PAGE",
    "SETTINGS_KEY",
    "PriorityQueue",
    "PseudonymState",
    "QueuePage",
    "QueueRow",
    "QueueSettings",
    "RankContext",
    "Received",
    "iraq_today",
    "received_txn",
]

#: Iraq keeps UTC+3 all year (no daylight saving since 2008): "today" for the window
#: and default delivery dates is the date in Baghdad, not in UTC.
IRAQ_TZ: Final = datetime.timezone(datetime.timedelta(hours=3), "AST")
#: ``node_state`` key of the queue settings (JSON).
SETTINGS_KEY: Final = "ataa.queue"
#: Most rows one page holds: what a phone screen can show and a case worker read.
MAX_QUEUE_PAGE: Final = 500
#: Households a ranking first computes priorities for (then 4x, 16x, ...; see
#: ``_rank_page_txn``): a few pages' worth, a few milliseconds of index lookups.
_FIRST_CANDIDATES: Final = 200
#: Up to this many households in scope, per-household lookups beat grouping every
#: allocation of the window (measured at 1M allocations, SQLite and PostgreSQL).
_PER_HOUSEHOLD_MAX: Final = 20_000
#: The longest window: a year. Aid older than that says little about need today.
_MAX_WINDOW_DAYS: Final = 366

_log = logging.getLogger(__name__)

#: ``ready``: the household's pseudonym of the epoch in force is known; ``pending``: not
#: computed in this epoch yet; ``none``: no input to compute one from (the same values
#: as the household views').
PseudonymState = Literal["ready", "pending", "none"]


def iraq_today(clock: Clock) -> datetime.date:
    """Today's date in Iraq by ``clock``."""
    return datetime.datetime.fromtimestamp(clock.now_ms() / 1000, IRAQ_TZ).date()


def _invalid(message: str) -> AllocationError:
    return AllocationError(message, code=AllocationErrorCode.INVALID)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """How aid already received lowers priority (module docstring).

    Attributes:
        window_days: how far back allocations count, 1..366 days.
        same_category_penalty: points per allocation of the queue's category,
            0..1000 (the score scale: 400 moves a household down two of the default
            model's bands).
        other_category_penalty: points per allocation of another category, 0..1000;
            at most ``same_category_penalty`` (other aid says less about this need).
        cap_pct: the penalty is at most this percent of the score, 0..100 (100: a
            household served often enough drops to priority 0, never below).
    """

    window_days: int = 30
    same_category_penalty: int = 400
    other_category_penalty: int = 100
    cap_pct: int = 100

    def __post_init__(self) -> None:
        limits = {
            "window_days": (1, _MAX_WINDOW_DAYS),
            "same_category_penalty": (0, SCALE_MAX),
            "other_category_penalty": (0, SCALE_MAX),
            "cap_pct": (0, 100),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise _invalid(f"{name}: must be an integer in {low}..{high}")
        if self.other_category_penalty > self.same_category_penalty:
            raise _invalid("other_category_penalty: at most same_category_penalty")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> QueueSettings:
        """Parse stored settings (raises AllocationError INVALID)."""
        try:
            data = json.loads(text)
        except ValueError:
            raise _invalid("queue settings: not JSON") from None
        if type(data) is not dict or not set(data) <= set(cls.__dataclass_fields__):
            raise _invalid("queue settings: unknown fields")
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One allocation that reached a household, for "received food worth 50,000 IQD
    from <NGO> on <date>" (the UI maps ``author`` to the NGO's name).

    Attributes:
        points: what it added to the penalty before the cap (0 for a weak match).
        weak_match: matched by a weak (name-based) pseudonym: only a possible match.
    """

    author: bytes
    category: str
    value_iqd: int
    quantity: int
    unit: str
    date: str
    program: str
    weak_match: bool
    points: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRow:
    """One household in the queue, with why it stands where it does.

    ``penalty`` is the one applied (after the cap): ``priority = score - penalty``.
    ``received`` lists what counted (and weak matches), newest first. ``weak``: the
    household's pseudonym is name-based (no national ID): its matches never count.
    """

    household_id: int
    score: int
    band: str | None
    priority: int
    penalty: int
    received: tuple[Received, ...]
    pseudonym_state: PseudonymState
    weak: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePage:
    """A page of the queue and how many households the filters match in all."""

    rows: tuple[QueueRow, ...]
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RankContext:
    """One ranking's parameters, resolved in its transaction (settings read, the
    window's first day computed)."""

    own: bytes
    epoch: int | None
    category: str | None
    since: str
    settings: QueueSettings


class PriorityQueue:
    """The queue (one per node).

    Args:
        db: the node's database.
        own: our node id: our own allocations are counted through our deliveries
            (exact), so they are skipped among the pseudonym matches.
        clock: gives "today" for the window.
        audit: records settings changes.
    """

    def __init__(self, db: Database, *, own: bytes, clock: Clock, audit: AuditLog) -> None:
        self._db = db
        self._own = own
        self._clock = clock
        self._audit = audit

    def today(self) -> datetime.date:
        return iraq_today(self._clock)

    async def settings(self) -> QueueSettings:
        """The settings in force (the defaults until changed)."""
        return await self._db.read(_settings_txn)

    async def update_settings(self, settings: QueueSettings, *, actor: int | None) -> None:
        """Store new settings, audited (the web layer requires EDIT_SCORING)."""
        await self._db.write(self._update_settings_txn, settings, actor, self._clock.now_ms())

    def _update_settings_txn(
        self, conn: Connection, settings: QueueSettings, actor: int | None, now_ms: int
    ) -> None:
        self._audit.lock_txn(conn)
        conn.execute(node_state.delete().where(node_state.c.key == SETTINGS_KEY))
        conn.execute(node_state.insert().values(key=SETTINGS_KEY, value=settings.to_json()))
        self._audit.record_txn(
            conn, actor, "ataa.queue.settings", None, asdict(settings), now_ms=now_ms
        )

    async def rank(
        self,
        *,
        epoch: int | None,
        category: str | None,
        district: str | None = None,
        governorate: str | None = None,
        band: str | None = None,
        limit: int = 50,
        offset: int = 0,
        today: datetime.date | None = None,
    ) -> QueuePage:
        """One page of the queue.

        Args:
            epoch: the pseudonym epoch in force (None when no oracles are configured:
                only our own deliveries then count).
            category: the aid about to be given (an allocation category), or None.
            district, governorate, band: filters (band of the raw score).
            limit: rows, 1..MAX_QUEUE_PAGE; offset: rows skipped.
            today: the window's reference day (default: today in Iraq).

        Raises:
            AllocationError: INVALID for an unknown category or a bad limit/offset.
        """
        _check_category(category)
        if not 1 <= limit <= MAX_QUEUE_PAGE or offset < 0:
            raise _invalid(f"limit: 1..{MAX_QUEUE_PAGE}; offset: 0 or more")
        filters = _filters(district=district, governorate=governorate, band=band)
        return await self._db.read(
            self._rank_txn, epoch, category, filters, limit, offset, today or self.today()
        )

    async def row(
        self,
        household_id: int,
        *,
        epoch: int | None,
        category: str | None,
        today: datetime.date | None = None,
    ) -> QueueRow | None:
        """How one household stands (None if it is not in the queue: inactive or
        not scored)."""
        _check_category(category)
        filters = [ataa_households.c.id == household_id]
        page = await self._db.read(
            self._rank_txn, epoch, category, filters, 1, 0, today or self.today(), single=True
        )
        return page.rows[0] if page.rows else None

    def query_txn(
        self, conn: Connection, epoch: int | None, category: str | None, today: datetime.date
    ) -> RankContext:
        """The resolved parameters of a ranking, read in ``conn``'s transaction."""
        settings = _settings_txn(conn)
        since = (today - datetime.timedelta(days=settings.window_days)).isoformat()
        return RankContext(
            own=self._own, epoch=epoch, category=category, since=since, settings=settings
        )

    def _rank_txn(
        self,
        conn: Connection,
        epoch: int | None,
        category: str | None,
        filters: list[ColumnElement[bool]],
        limit: int,
        offset: int,
        today: datetime.date,
        *,
        single: bool = False,
    ) -> QueuePage:
        query = self.query_txn(conn, epoch, category, today)
        if single:  # one household by id: its own lookups, never a pass over the window
            ranking = _ranking(query, filters, conn.dialect.name, bounded=True)
            ranked = list(conn.execute(ranking.limit(1)))
        else:
            ranked = _rank_page_txn(conn, query, filters, limit, offset)
        total = conn.execute(
            select(func.count()).select_from(ataa_households).where(*_base(filters))
        ).scalar_one()
        ids = [row.id for row in ranked]
        received = received_txn(conn, query, ids)
        states = _states_txn(conn, ids, epoch)
        rows = tuple(
            QueueRow(
                household_id=row.id,
                score=row.score,
                band=row.band,
                priority=row.priority,
                penalty=row.score - row.priority,
                received=tuple(received.get(row.id, ())),
                pseudonym_state=states[row.id][0],
                weak=states[row.id][1],
            )
            for row in ranked
        )
        return QueuePage(rows=rows, total=int(total))


def _check_category(category: str | None) -> None:
    if category is not None and category not in protocol.ALLOCATION_CATEGORIES:
        raise _invalid("category: not an allocation category")


def _filters(
    *, district: str | None, governorate: str | None, band: str | None
) -> list[ColumnElement[bool]]:
    h = ataa_households.c
    out: list[ColumnElement[bool]] = []
    if district is not None:
        out.append(h.district == district)
    if governorate is not None:
        out.append(h.governorate == governorate)
    if band is not None:
        out.append(h.band == band)
    return out


def _base(filters: Sequence[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    h = ataa_households.c
    return [h.status == "active", h.score.is_not(None), *filters]


def _points(category_column: Any, query: RankContext) -> ColumnElement[int]:
    settings = query.settings
    if query.category is None:
        return literal(settings.same_category_penalty)
    return case(
        (category_column == query.category, settings.same_category_penalty),
        else_=settings.other_category_penalty,
    )


def _ranking(
    query: RankContext, filters: Sequence[ColumnElement[bool]], dialect: str, *, bounded: bool
) -> Select[Any]:
    """Active, scored households matching ``filters``, with their priority, in queue
    order (module docstring).

    ``bounded`` (the caller limited the households by score, ``_rank_page_txn``):
    each household's points are summed by correlated subqueries, each an index
    lookup: its pseudonym row (primary key ``(mac, epoch)``), that pseudonym's
    allocations in the window (``(pseudonym, date)``), our deliveries to it
    (``household_id``); the work is proportional to the candidates. Unbounded (every
    household is a candidate): the same sums as two aggregates LEFT JOINed to the
    households, which both databases compute in one pass over the window.
    """
    h, a, p = ataa_households.c, ataa_allocations.c, pseudonyms.c
    dh, d = ataa_dist_households.c, ataa_distributions.c
    own = (
        select(func.sum(_points(d.category, query)).label("points"))
        .select_from(ataa_dist_households.join(ataa_distributions, d.id == dh.distribution_id))
        .where(dh.state == "delivered", dh.delivered_date >= query.since)
    )
    peers = (
        select(func.sum(_points(a.category, query)).label("points"))
        .select_from(
            pseudonyms.join(ataa_allocations, and_(a.pseudonym == p.value, a.epoch == p.epoch))
        )
        .where(
            p.epoch == query.epoch,
            p.weak == false(),
            a.author != query.own,
            a.void_reason.is_(None),
            a.date >= query.since,
        )
    )
    source: Any = ataa_households
    if bounded:
        own_points: Any = own.where(dh.household_id == h.id).scalar_subquery()
        peer_points: Any = peers.where(p.mac == h.pseudonym_mac).scalar_subquery()
    else:
        own_sums = own.add_columns(dh.household_id).group_by(dh.household_id).subquery("own")
        peer_sums = peers.add_columns(p.mac).group_by(p.mac).subquery("peers")
        source = source.outerjoin(own_sums, own_sums.c.household_id == h.id)
        own_points = own_sums.c.points
        if query.epoch is not None:
            source = source.outerjoin(peer_sums, peer_sums.c.mac == h.pseudonym_mac)
        peer_points = peer_sums.c.points
    penalty: ColumnElement[int] = func.coalesce(own_points, 0)
    if query.epoch is not None:
        penalty = penalty + func.coalesce(peer_points, 0)
    # score - min(penalty, cap), written so that the penalty's subqueries appear (and
    # run) once per row: GREATEST on PostgreSQL, SQLite's two-argument MAX. Both are
    # >= 0, as cap <= score.
    cap = (h.score * query.settings.cap_pct) // 100
    greatest = func.max if dialect == "sqlite" else func.greatest
    priority = greatest(h.score - penalty, h.score - cap).label("priority")
    return (
        select(h.id, h.score, h.band, priority)
        .select_from(source)
        .where(*_base(filters))
        .order_by(priority.desc(), h.score.desc(), h.registered_ms, h.id)
    )


def _threshold(
    conn: Connection, filters: Sequence[ColumnElement[bool]], candidates: int
) -> int | None:
    """The score of the ``candidates``-th household by score (None if there are
    fewer): the households scoring at least this many are the candidates."""
    h = ataa_households.c
    return conn.execute(
        select(h.score)
        .where(*_base(filters))
        .order_by(h.score.desc())
        .limit(1)
        .offset(candidates - 1)
    ).scalar_one_or_none()


def _rank_page_txn(
    conn: Connection,
    query: RankContext,
    filters: Sequence[ColumnElement[bool]],
    limit: int,
    offset: int,
) -> list[Any]:
    """Rows ``offset .. offset + limit`` of the queue, exactly.

    Priority never exceeds score. So if, among the households scoring at least T,
    the last row of the page has priority >= T, no household scoring below T can
    rank above it (its priority is < T), and the page is exact; otherwise T is
    lowered (four times the candidates) and the page computed again. Typically the
    first round decides; a queue whose top is heavily served needs more, and in the
    worst case every household is a candidate.
    """
    candidates = max(_FIRST_CANDIDATES, 2 * (offset + limit))
    while True:
        bound = _threshold(conn, filters, candidates)
        within = list(filters) if bound is None else [*filters, ataa_households.c.score >= bound]
        # Fewer households in scope than candidates (a small district): look each one
        # up, unless they are so many that grouping the window's allocations is cheaper
        # (tools/bench_ataa: a 100-household district over 1M allocations took 1 s
        # grouped, 14 ms looked up).
        bounded = bound is not None or candidates <= _PER_HOUSEHOLD_MAX
        ranking = _ranking(query, within, conn.dialect.name, bounded=bounded)
        rows = list(conn.execute(ranking.limit(limit).offset(offset)))
        if bound is None or (len(rows) == limit and rows[-1].priority >= bound):
            return rows
        candidates *= 4


def received_txn(
    conn: Connection,
    query: RankContext,
    household_ids: Sequence[int],
    *,
    duplicates_only: bool = False,
) -> dict[int, list[Received]]:
    """What reached each of ``household_ids`` within the window, newest first: for a
    queue row, everything (weak matches flagged); with ``duplicates_only``, what the
    duplicate warning is about: other NGOs' allocations of the query's category
    matched by a strong pseudonym."""
    out: dict[int, list[Received]] = {household_id: [] for household_id in household_ids}
    if not household_ids:
        return out
    same, other = query.settings.same_category_penalty, query.settings.other_category_penalty

    def points(category: str, weak: bool) -> int:
        if weak:
            return 0
        return same if query.category in (None, category) else other

    if query.epoch is not None:
        matches = _peer_matches(query, household_ids, duplicates_only=duplicates_only)
        for row in conn.execute(matches):
            out[row.household_id].append(
                Received(
                    author=bytes(row.author),
                    category=row.category,
                    value_iqd=row.value_iqd,
                    quantity=row.quantity,
                    unit=row.unit,
                    date=row.date,
                    program=row.program,
                    weak_match=bool(row.weak),
                    points=points(row.category, bool(row.weak)),
                )
            )
    if not duplicates_only:
        for row in conn.execute(_own_deliveries(query, household_ids)):
            out[row.household_id].append(
                Received(
                    author=query.own,
                    category=row.category,
                    value_iqd=row.value_iqd,
                    quantity=row.quantity,
                    unit=row.unit,
                    date=row.delivered_date,
                    program=row.program,
                    weak_match=False,
                    points=points(row.category, False),
                )
            )
    for items in out.values():
        items.sort(key=lambda item: (item.date, item.author, item.category), reverse=True)
    return out


def _peer_matches(
    query: RankContext, household_ids: Sequence[int], *, duplicates_only: bool
) -> Select[Any]:
    h, a, p = ataa_households.c, ataa_allocations.c, pseudonyms.c
    matched = and_(p.mac == h.pseudonym_mac, p.epoch == query.epoch)
    allocated = and_(a.pseudonym == p.value, a.epoch == p.epoch)
    statement = (
        select(
            h.id.label("household_id"),
            p.weak,
            a.author,
            a.category,
            a.value_iqd,
            a.quantity,
            a.unit,
            a.date,
            a.program,
        )
        .select_from(ataa_households.join(pseudonyms, matched).join(ataa_allocations, allocated))
        .where(
            h.id.in_(household_ids),
            a.author != query.own,
            a.void_reason.is_(None),
            a.date >= query.since,
        )
    )
    if duplicates_only:
        statement = statement.where(p.weak == false())
        if query.category is not None:
            statement = statement.where(a.category == query.category)
    return statement


def _own_deliveries(query: RankContext, household_ids: Sequence[int]) -> Select[Any]:
    dh, d = ataa_dist_households.c, ataa_distributions.c
    return (
        select(
            dh.household_id,
            dh.delivered_date,
            d.category,
            d.value_iqd,
            d.quantity,
            d.unit,
            d.program,
        )
        .select_from(ataa_dist_households.join(ataa_distributions, d.id == dh.distribution_id))
        .where(
            dh.household_id.in_(household_ids),
            dh.state == "delivered",
            dh.delivered_date >= query.since,
        )
    )


def _states_txn(
    conn: Connection, household_ids: Sequence[int], epoch: int | None
) -> dict[int, tuple[PseudonymState, bool]]:
    """Each household's pseudonym state in ``epoch``, and whether it is weak."""
    if not household_ids:
        return {}
    h, p = ataa_households.c, pseudonyms.c
    ready = and_(p.mac == h.pseudonym_mac, p.epoch == (epoch if epoch is not None else -1))
    rows = conn.execute(
        select(h.id, h.weak, h.pseudonym_mac, p.epoch.label("ready_epoch"))
        .select_from(ataa_households.outerjoin(pseudonyms, ready))
        .where(h.id.in_(household_ids))
    )
    states: dict[int, tuple[PseudonymState, bool]] = {}
    for row in rows:
        state: PseudonymState = "ready" if row.ready_epoch is not None else "pending"
        states[row.id] = ("none" if row.pseudonym_mac is None else state), bool(row.weak)
    return states


def _settings_txn(conn: Connection) -> QueueSettings:
    text = conn.execute(
        select(node_state.c.value).where(node_state.c.key == SETTINGS_KEY)
    ).scalar_one_or_none()
    if text is None:
        return QueueSettings()
    try:
        return QueueSettings.from_json(text)
    except AllocationError as error:
        _log.warning(
            "stored queue settings unreadable (%s); using the defaults",
            error.message,
            extra={"event": "ataa.queue.bad_settings"},
        )
        return QueueSettings()
