"""Distributions: a coordinator plans one (what, how much, where, for how many), picks
households from the queue, includes or excludes some by hand with a reason, and case
workers record deliveries. Each delivery becomes a signed ``ataa.allocation/1`` in our
own feed, with only the fields DESIGN §5 allows.

Rules each method keeps, each in one write transaction with its audit row:

- A delivery appends at most one entry: delivering twice returns the first result.
- Another NGO's allocation of the same category to the same household (strong
  pseudonym, within the queue's window) blocks the delivery with DUPLICATE_ASSISTANCE
  until someone overrides it with a reason (the web layer lets coordinators only).
- A household whose pseudonym is not ready in the epoch in force (oracles offline, no
  configuration yet) is still marked delivered; its entry is published later by
  :meth:`DistributionService.publish_pending`, which a background job calls. The
  duplicate check cannot run without a pseudonym, so it is skipped for such
  deliveries (the queue already counted our own deliveries by household id).
- Reasons typed by staff stay in the distribution's rows on this node: they are free
  text and may name people, so audit rows record ids and codes only.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog, DetailValue
from node.clock import Clock
from node.identity import Identity
from node.oracle import OracleError
from node.storage import Database, FeedStore, StorageError, StorageErrorCode
from node.storage._schema import ataa_dist_households, ataa_distributions, entries

from ._allocations import AllocationErrorCode, _insert
from ._dist_rows import (
    DeliveryState,
    DistHousehold,
    Distribution,
    DistributionPlan,
    EpochSource,
    audit_target,
    check_open,
    check_reason,
    checked_row,
    distribution_txn,
    households_txn,
    list_txn,
    members_txn,
    not_found,
    pending_txn,
    pseudonym_txn,
    refusal,
    require_household,
    row_key,
    row_txn,
    touch,
)
from ._queue import MAX_QUEUE_PAGE, PriorityQueue, Received, iraq_today, received_txn

__all__ = ["DistributionService"]

#: Deliveries :meth:`DistributionService.publish_pending` publishes per call.
_PUBLISH_BATCH: Final = 200


class DistributionService:
    """Distributions and deliveries (one per node).

    Args:
        db, feeds, audit, clock: the node's database, feed store, audit log, clock.
        identity: our keys (allocations are signed with them).
        net: the federation id our entries carry (read at each append: a node may
            join a federation after starting).
        queue: the priority queue picks come from.
        pseudonyms: gives the epoch in force (``config().epoch``).
        on_appended: called after a commit that appended to our feed (the daemon
            notifies peers, so replication is immediate).
    """

    def __init__(
        self,
        db: Database,
        *,
        feeds: FeedStore,
        identity: Identity,
        net: Callable[[], bytes],
        queue: PriorityQueue,
        audit: AuditLog,
        clock: Clock,
        pseudonyms: EpochSource,
        on_appended: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._identity = identity
        self._net = net
        self._queue = queue
        self._audit = audit
        self._clock = clock
        self._pseudonyms = pseudonyms
        self._on_appended = on_appended

    # -- planning -------------------------------------------------------------------

    async def create(self, plan: DistributionPlan, *, actor: int | None) -> Distribution:
        """Plan a distribution (state ``draft`` until its first delivery), audited.

        Raises:
            AllocationError: INVALID naming the field.
        """
        plan.check()
        distribution_id = await self._db.write(self._create_txn, plan, actor, self._now())
        return await self.get(distribution_id)

    async def pick(self, distribution_id: int, *, actor: int | None) -> int:
        """Add the queue's top households (with the distribution's category and area)
        until ``target_count`` are planned or delivered; households already in it (an
        excluded one included) are skipped. Idempotent: once full, adds nothing.

        Returns:
            How many households were added.
        """
        distribution = await self.get(distribution_id)
        check_open(distribution)
        epoch = await self._epoch()
        held, active = await self._db.read(members_txn, distribution_id)
        need = distribution.plan.target_count - active
        picked: list[tuple[int, int, int]] = []  # household, rank, priority
        offset = 0
        while need > len(picked):
            page = await self._queue.rank(
                epoch=epoch,
                category=distribution.plan.category,
                governorate=distribution.plan.governorate,
                district=distribution.plan.district,
                limit=MAX_QUEUE_PAGE,
                offset=offset,
            )
            for place, row in enumerate(page.rows, start=offset + 1):
                if row.household_id not in held and need > len(picked):
                    picked.append((row.household_id, place, row.priority))
            offset += len(page.rows)
            if offset >= page.total or not page.rows:
                break
        if not picked:
            return 0
        return await self._db.write(self._pick_txn, distribution_id, picked, actor, self._now())

    async def include(
        self, distribution_id: int, household_id: int, reason: str, *, actor: int | None
    ) -> DistHousehold:
        """Add a household by hand (or take back an exclusion), with a reason; audited.

        Raises:
            AllocationError: INVALID reason; NOT_FOUND; BAD_STATE if the household is
                not active, already delivered, or the distribution is closed.
        """
        reason = check_reason(reason)
        distribution = await self.get(distribution_id)
        check_open(distribution)
        row = await self._queue.row(
            household_id, epoch=await self._epoch(), category=distribution.plan.category
        )
        priority = row.priority if row is not None else 0
        return await self._db.write(
            self._mark_txn, distribution_id, household_id, "planned", reason, priority, actor
        )

    async def exclude(
        self, distribution_id: int, household_id: int, reason: str, *, actor: int | None
    ) -> DistHousehold:
        """Leave a household out (picks skip it from then on), with a reason; audited.

        Raises:
            AllocationError: INVALID reason; NOT_FOUND; BAD_STATE if already
                delivered (void the delivery instead) or the distribution is closed.
        """
        reason = check_reason(reason)
        check_open(await self.get(distribution_id))
        return await self._db.write(
            self._mark_txn, distribution_id, household_id, "excluded", reason, 0, actor
        )

    async def close(self, distribution_id: int, *, actor: int | None) -> Distribution:
        """No more picks or deliveries (voids stay possible); audited."""
        await self._db.write(self._close_txn, distribution_id, actor, self._now())
        return await self.get(distribution_id)

    # -- the duplicate warning ---------------------------------------------------------

    async def duplicate_warning(self, distribution_id: int, household_id: int) -> list[Received]:
        """Other NGOs' allocations of this distribution's category to this household
        within the queue's window, matched by its strong pseudonym of the epoch in
        force (weak matches never block). Empty: nothing to warn about."""
        distribution = await self.get(distribution_id)
        epoch = await self._epoch()
        return await self._db.read(
            self._warning_txn, distribution.plan.category, household_id, epoch
        )

    def _warning_txn(
        self, conn: Connection, category: str, household_id: int, epoch: int | None
    ) -> list[Received]:
        query = self._queue.query_txn(conn, epoch, category, iraq_today(self._clock))
        return received_txn(conn, query, [household_id], duplicates_only=True)[household_id]

    async def override(
        self, distribution_id: int, household_id: int, reason: str, *, actor: int | None
    ) -> DistHousehold:
        """Allow delivery despite the duplicate warning, with a reason; audited (the
        web layer requires OVERRIDE_DUPLICATE).

        Raises:
            AllocationError: INVALID reason; NOT_FOUND; BAD_STATE unless planned.
        """
        reason = check_reason(reason)
        distribution = await self.get(distribution_id)
        epoch = await self._epoch()
        return await self._db.write(
            self._override_txn, distribution.plan.category, distribution_id, household_id,
            reason, actor, epoch,
        )  # fmt: skip

    # -- deliveries -----------------------------------------------------------------

    async def deliver(
        self,
        distribution_id: int,
        household_id: int,
        *,
        actor: int | None,
        date: str | None = None,
    ) -> DistHousehold:
        """Record a delivery and append its allocation entry (module docstring).

        Args:
            date: the delivery day ``YYYY-MM-DD`` (default today in Iraq); not in the
                future.

        Raises:
            AllocationError: DUPLICATE_ASSISTANCE (override first); BAD_STATE if the
                household is excluded or voided here, or not active, or the
                distribution is closed; NOT_FOUND; INVALID date.
        """
        day = self._day(date)
        epoch = await self._epoch()
        row, appended = await self._db.write(
            self._deliver_txn, distribution_id, household_id, day, epoch, actor, self._now()
        )
        if appended:
            self._notify()
        return row

    async def publish_pending(self, *, limit: int = _PUBLISH_BATCH) -> int:
        """Append the entries of deliveries recorded while their household's
        pseudonym was not ready, for those whose pseudonym now is (in the epoch in
        force). Each in its own transaction, with an audit row by the node.

        Returns:
            How many entries were appended.
        """
        epoch = await self._epoch()
        if epoch is None or await self._feeds.head_unconfirmed() is not None:
            return 0
        due = await self._db.read(pending_txn, epoch, limit)
        published = 0
        for distribution_id, household_id in due:
            published += await self._db.write(
                self._publish_txn, distribution_id, household_id, epoch, self._now()
            )
        if published:
            self._notify()
        return published

    async def void(
        self, distribution_id: int, household_id: int, reason: str, *, actor: int | None
    ) -> DistHousehold:
        """Void a delivery: append ``ataa.allocation_void/1`` naming its entry (if it
        was published) and mark it voided; audited. Voiding twice changes nothing.

        Raises:
            AllocationError: INVALID unless ``reason`` is one of VOID_REASONS;
                NOT_FOUND; BAD_STATE unless delivered; HEAD_UNCONFIRMED after a
                restore, until our feed's head is learned from a peer.
        """
        if reason not in protocol.VOID_REASONS:
            raise refusal(AllocationErrorCode.INVALID, "reason: not a void reason code")
        row, appended = await self._db.write(
            self._void_txn, distribution_id, household_id, reason, actor, self._now()
        )
        if appended:
            self._notify()
        return row

    # -- views ----------------------------------------------------------------------

    async def list_all(self) -> list[Distribution]:
        """Every distribution, newest first, with counts per state."""
        return await self._db.read(list_txn, None)

    async def get(self, distribution_id: int) -> Distribution:
        """One distribution (raises AllocationError NOT_FOUND)."""
        found = await self._db.read(list_txn, distribution_id)
        if not found:
            raise not_found(distribution_id)
        return found[0]

    async def households(
        self, distribution_id: int, *, state: DeliveryState | None = None
    ) -> list[DistHousehold]:
        """A distribution's households in pick order (hand-included last)."""
        return await self._db.read(households_txn, distribution_id, state)

    # -- helpers ----------------------------------------------------------------------

    def _now(self) -> int:
        return self._clock.now_ms()

    def _notify(self) -> None:
        if self._on_appended is not None:
            self._on_appended()

    async def _epoch(self) -> int | None:
        try:
            return (await self._pseudonyms.config()).epoch
        except OracleError:
            return None  # no (usable) configuration: every pseudonym is pending

    def _day(self, date: str | None) -> str:
        today = iraq_today(self._clock)
        if date is None:
            return today.isoformat()
        try:
            protocol.Allocation.CHECKS["date"]("date", date)
        except protocol.ProtocolError as error:
            raise refusal(AllocationErrorCode.INVALID, error.message) from None
        if datetime.date.fromisoformat(date) > today:
            raise refusal(AllocationErrorCode.INVALID, "date: a delivery cannot be in the future")
        return date

    def _append_txn(self, conn: Connection, body: protocol.Body, now_ms: int) -> protocol.Entry:
        key, net = self._identity.signing_key, self._net()
        return self._feeds.append_own_txn(
            conn, lambda head: protocol.append(head, body, key=key, net=net, now_ms=now_ms), now_ms
        )

    # -- transaction bodies -------------------------------------------------------------

    def _create_txn(
        self, conn: Connection, plan: DistributionPlan, actor: int | None, now_ms: int
    ) -> int:
        self._audit.lock_txn(conn)
        result = conn.execute(
            ataa_distributions.insert().values(
                title=plan.title,
                program=plan.program,
                category=plan.category,
                unit=plan.unit,
                quantity=plan.quantity,
                value_iqd=plan.value_iqd,
                governorate=plan.governorate,
                district=plan.district,
                target_count=plan.target_count,
                state="draft",
                created_by=actor,
                created_ms=now_ms,
                updated_ms=now_ms,
            )
        )
        distribution_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        details: dict[str, DetailValue] = {
            "program": plan.program,
            "category": plan.category,
            "target": plan.target_count,
        }
        self._audit.record_txn(
            conn, actor, "ataa.distribution.create", audit_target(distribution_id), details,
            now_ms=now_ms,
        )  # fmt: skip
        return distribution_id

    def _pick_txn(
        self,
        conn: Connection,
        distribution_id: int,
        picked: list[tuple[int, int, int]],
        actor: int | None,
        now_ms: int,
    ) -> int:
        self._audit.lock_txn(conn)
        added = 0
        for household_id, rank, priority in picked:
            result = conn.execute(
                _insert(conn, ataa_dist_households)
                .values(
                    distribution_id=distribution_id,
                    household_id=household_id,
                    rank=rank,
                    priority=priority,
                    state="planned",
                    updated_ms=now_ms,
                )
                .on_conflict_do_nothing()
            )
            added += int(result.rowcount or 0)
        if added:
            touch(conn, distribution_id, now_ms)
            self._audit.record_txn(
                conn, actor, "ataa.distribution.pick", audit_target(distribution_id),
                {"added": added}, now_ms=now_ms,
            )  # fmt: skip
        return added

    def _mark_txn(
        self,
        conn: Connection,
        distribution_id: int,
        household_id: int,
        state: DeliveryState,
        reason: str,
        priority: int,
        actor: int | None,
    ) -> DistHousehold:
        """Include (``planned``) or exclude one household."""
        now_ms = self._now()
        self._audit.lock_txn(conn)
        require_household(conn, household_id, active=state == "planned")
        row = row_txn(conn, distribution_id, household_id, lock=True)
        if row is not None and row.state == state:
            return row  # nothing changes: idempotent, no audit row
        if row is not None and row.state == "delivered":
            raise refusal(AllocationErrorCode.BAD_STATE, "delivered: void the delivery first")
        values = {
            "state": state,
            "reason": reason,
            "override_by": None,
            "override_reason": None,
            "delivered_by": None,
            "delivered_ms": None,
            "delivered_date": None,
            "entry_seq": None,
            "updated_ms": now_ms,
        }
        if row is None:
            conn.execute(
                ataa_dist_households.insert().values(
                    distribution_id=distribution_id,
                    household_id=household_id,
                    rank=0,
                    priority=priority,
                    **values,
                )
            )
        else:
            conn.execute(update(ataa_dist_households).where(*row_key(row)).values(**values))
        touch(conn, distribution_id, now_ms)
        action = "ataa.distribution.include" if state == "planned" else "ataa.distribution.exclude"
        self._audit.record_txn(
            conn, actor, action, audit_target(distribution_id), {"household": household_id},
            now_ms=now_ms,
        )  # fmt: skip
        return checked_row(conn, distribution_id, household_id)

    def _close_txn(
        self, conn: Connection, distribution_id: int, actor: int | None, now_ms: int
    ) -> None:
        self._audit.lock_txn(conn)
        changed = conn.execute(
            update(ataa_distributions)
            .where(ataa_distributions.c.id == distribution_id)
            .values(state="closed", updated_ms=now_ms)
        ).rowcount
        if not changed:
            raise not_found(distribution_id)
        self._audit.record_txn(
            conn, actor, "ataa.distribution.close", audit_target(distribution_id), {}, now_ms=now_ms
        )

    def _override_txn(
        self,
        conn: Connection,
        category: str,
        distribution_id: int,
        household_id: int,
        reason: str,
        actor: int | None,
        epoch: int | None,
    ) -> DistHousehold:
        now_ms = self._now()
        self._audit.lock_txn(conn)
        row = checked_row(conn, distribution_id, household_id, lock=True)
        if row.state != "planned":
            raise refusal(AllocationErrorCode.BAD_STATE, f"{row.state}: only a planned one")
        warnings = self._warning_txn(conn, category, household_id, epoch)
        conn.execute(
            update(ataa_dist_households)
            .where(*row_key(row))
            .values(override_by=actor, override_reason=reason, updated_ms=now_ms)
        )
        self._audit.record_txn(
            conn, actor, "ataa.delivery.override", audit_target(distribution_id),
            {"household": household_id, "warnings": len(warnings)}, now_ms=now_ms,
        )  # fmt: skip
        return checked_row(conn, distribution_id, household_id)

    def _deliver_txn(
        self,
        conn: Connection,
        distribution_id: int,
        household_id: int,
        day: str,
        epoch: int | None,
        actor: int | None,
        now_ms: int,
    ) -> tuple[DistHousehold, bool]:
        self._audit.lock_txn(conn)  # first, as every audited writer: one lock order
        distribution = distribution_txn(conn, distribution_id)
        row = checked_row(conn, distribution_id, household_id, lock=True)
        if row.state == "delivered":
            return row, False  # delivered already: the first result, nothing appended
        check_open(distribution)
        if row.state != "planned":
            raise refusal(AllocationErrorCode.BAD_STATE, f"{row.state}: include it first")
        household = require_household(conn, household_id, active=True)
        ready = pseudonym_txn(conn, household.pseudonym_mac, epoch)
        if ready is not None and not ready.weak and row.override_by is None:
            warnings = self._warning_txn(conn, distribution.plan.category, household_id, epoch)
            if warnings:
                raise refusal(
                    AllocationErrorCode.DUPLICATE_ASSISTANCE,
                    f"household {household_id}: {len(warnings)} allocation(s) of this category "
                    "by another NGO within the window; a coordinator may override",
                )
        entry = None
        if ready is not None and epoch is not None:
            entry = self._allocation_txn(
                conn, distribution.plan, household.district, ready.value, epoch, day, now_ms
            )
        conn.execute(
            update(ataa_dist_households)
            .where(*row_key(row))
            .values(
                state="delivered",
                delivered_by=actor,
                delivered_ms=now_ms,
                delivered_date=day,
                entry_seq=None if entry is None else entry.seq,
                updated_ms=now_ms,
            )
        )
        conn.execute(
            update(ataa_distributions)
            .where(
                ataa_distributions.c.id == distribution_id, ataa_distributions.c.state == "draft"
            )
            .values(state="open")
        )
        touch(conn, distribution_id, now_ms)
        details: dict[str, DetailValue] = {
            "household": household_id,
            "entry_seq": None if entry is None else entry.seq,
        }
        self._audit.record_txn(
            conn, actor, "ataa.delivery", audit_target(distribution_id), details, now_ms=now_ms
        )
        return checked_row(conn, distribution_id, household_id), entry is not None

    def _allocation_txn(
        self,
        conn: Connection,
        plan: DistributionPlan,
        district: str,
        pseudonym: bytes,
        epoch: int,
        day: str,
        now_ms: int,
    ) -> protocol.Entry | None:
        """Append our allocation entry: exactly the fields SPEC §5.6 allows. None when
        our feed cannot grow yet (restored, head unconfirmed): publication is then
        pending, like a pending pseudonym's."""
        try:
            body = protocol.Allocation(
                category=plan.category,
                date=day,
                district=district,
                epoch=epoch,
                program=plan.program,
                pseudonym=pseudonym,
                quantity=plan.quantity,
                unit=plan.unit,
                value_iqd=plan.value_iqd,
            )
        except protocol.ProtocolError as error:
            raise refusal(AllocationErrorCode.INVALID, error.message) from None
        try:
            return self._append_txn(conn, body, now_ms)
        except StorageError as error:
            if error.code is StorageErrorCode.HEAD_UNCONFIRMED:
                return None  # checked before anything is written: the transaction is intact
            raise

    def _publish_txn(
        self, conn: Connection, distribution_id: int, household_id: int, epoch: int, now_ms: int
    ) -> int:
        self._audit.lock_txn(conn)
        row = row_txn(conn, distribution_id, household_id, lock=True)
        if row is None or row.state != "delivered" or row.entry_seq is not None:
            return 0  # voided or published meanwhile
        household = require_household(conn, household_id, active=False)
        ready = pseudonym_txn(conn, household.pseudonym_mac, epoch)
        if ready is None or row.delivered_date is None:
            return 0
        plan = distribution_txn(conn, distribution_id).plan
        entry = self._allocation_txn(
            conn, plan, household.district, ready.value, epoch, row.delivered_date, now_ms
        )
        if entry is None:
            return 0
        conn.execute(
            update(ataa_dist_households)
            .where(*row_key(row))
            .values(entry_seq=entry.seq, updated_ms=now_ms)
        )
        self._audit.record_txn(
            conn, None, "ataa.delivery.publish", audit_target(distribution_id),
            {"household": household_id, "entry_seq": entry.seq}, now_ms=now_ms,
        )  # fmt: skip
        return 1

    def _void_txn(
        self,
        conn: Connection,
        distribution_id: int,
        household_id: int,
        reason: str,
        actor: int | None,
        now_ms: int,
    ) -> tuple[DistHousehold, bool]:
        self._audit.lock_txn(conn)
        row = checked_row(conn, distribution_id, household_id, lock=True)
        if row.state == "voided":
            return row, False
        if row.state != "delivered":
            raise refusal(AllocationErrorCode.BAD_STATE, f"{row.state}: only a delivery is voided")
        entry = None
        if row.entry_seq is not None:
            entry_id = conn.execute(
                select(entries.c.id).where(
                    entries.c.author == self._identity.node_id, entries.c.seq == row.entry_seq
                )
            ).scalar_one()
            body = protocol.AllocationVoid(allocation=bytes(entry_id), reason=reason)
            try:
                entry = self._append_txn(conn, body, now_ms)
            except StorageError as error:
                if error.code is StorageErrorCode.HEAD_UNCONFIRMED:
                    raise refusal(AllocationErrorCode.HEAD_UNCONFIRMED, error.message) from None
                raise
        conn.execute(
            update(ataa_dist_households)
            .where(*row_key(row))
            .values(state="voided", reason=reason, updated_ms=now_ms)
        )
        touch(conn, distribution_id, now_ms)
        details: dict[str, DetailValue] = {
            "household": household_id,
            "reason": reason,
            "void_seq": None if entry is None else entry.seq,
        }
        self._audit.record_txn(
            conn, actor, "ataa.delivery.void", audit_target(distribution_id), details, now_ms=now_ms
        )
        return checked_row(conn, distribution_id, household_id), entry is not None
