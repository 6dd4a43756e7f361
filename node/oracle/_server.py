"""This node as a pseudonym oracle: evaluate blinded elements with its share for
approved peers, within a daily quota per requester; count, audit and publish usage.

Every evaluation request is one audit row (requester, element count, epoch, the day's
total); once a UTC day is over, its counts are appended to our feed as one
``oracle.usage/1`` per epoch, so the federation sees who queries a lot (DESIGN §5).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.identity import Identity
from node.storage import Database, FeedStore
from node.storage._schema import node_state, oracle_usage
from protocol import oprf

from ._errors import OracleError, OracleErrorCode
from ._shares import HeldShare, ShareStore

__all__ = [
    "DEFAULT_DAILY_QUOTA",
    "MAX_BATCH",
    "OracleServer",
    "UsageRow",
    "utc_day",
]

#: Elements one requester may have evaluated per UTC day unless the admin sets another
#: quota (``watan oracle quota``): an NGO registering 1,000 households a day uses 2%.
DEFAULT_DAILY_QUOTA: Final = 50_000
#: Elements per request: the client batches pending pseudonyms up to this.
MAX_BATCH: Final = 256
QUOTA_KEY: Final = "oracle.daily_quota"
PUBLISHED_KEY: Final = "oracle.usage_published"
#: Batches larger than this are evaluated in a worker thread (libsodium releases the
#: GIL), so that a big batch does not stall the node's event loop.
_THREAD_BATCH: Final = 8


def utc_day(now_ms: int) -> str:
    return datetime.datetime.fromtimestamp(now_ms / 1000, datetime.UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    requester: bytes
    epoch: int
    count: int


class OracleServer:
    """Evaluation, quota and usage of this node's shares (one instance per node)."""

    def __init__(
        self,
        db: Database,
        *,
        feeds: FeedStore,
        audit: AuditLog,
        identity: Identity,
        net: Callable[[], bytes],
        clock: Clock,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._audit = audit
        self._identity = identity
        self._net = net
        self._clock = clock
        self._random = random_bytes
        self.shares = ShareStore(db, identity=identity)

    async def share(self, epoch: int) -> HeldShare | None:
        return await self.shares.get(epoch)

    async def quota(self) -> int:
        value = await self._db.read(_state_txn, QUOTA_KEY)
        return DEFAULT_DAILY_QUOTA if value is None else int(value)

    async def set_quota(self, quota: int, *, actor: int | None) -> None:
        if not 1 <= quota <= 10_000_000:
            raise OracleError("a daily quota is 1 .. 10,000,000", code=OracleErrorCode.BAD_REQUEST)
        await self._db.write(self._set_quota_txn, quota, actor, self._clock.now_ms())

    def _set_quota_txn(self, conn: Connection, quota: int, actor: int | None, now_ms: int) -> None:
        _set_state_txn(conn, QUOTA_KEY, str(quota))
        self._audit.record_txn(conn, actor, "oracle.quota", None, {"quota": quota}, now_ms=now_ms)

    async def evaluate(
        self, requester: bytes, *, epoch: int, elements: Sequence[bytes]
    ) -> oprf.ShareEvaluation:
        """Evaluate ``elements`` for ``requester`` with our share of ``epoch``.

        Raises:
            OracleError: NOT_AN_ORACLE, BAD_REQUEST (batch size), QUOTA_EXCEEDED.
            protocol.RemoteProtocolError: BAD_ELEMENT for an element that is not one.
        """
        held = await self.shares.get(epoch)
        if held is None:
            raise OracleError(
                f"this node holds no oracle share of epoch {epoch}",
                code=OracleErrorCode.NOT_AN_ORACLE,
            )
        if not 1 <= len(elements) <= MAX_BATCH:
            raise OracleError(
                f"1 .. {MAX_BATCH} elements per request", code=OracleErrorCode.BAD_REQUEST
            )
        elements = oprf.check_elements(elements)  # before counting: refusals are free
        refused = await self._db.write(
            self._count_txn, requester, epoch, len(elements), self._clock.now_ms()
        )
        if refused is not None:  # the refusal's audit row is committed
            raise _QuotaRefused(spent=refused[0], quota=refused[1])
        proof_random = self._random(64)
        if len(elements) > _THREAD_BATCH:
            return await asyncio.to_thread(
                oprf.evaluate_share, held.share, list(elements), proof_random=proof_random
            )
        return oprf.evaluate_share(held.share, list(elements), proof_random=proof_random)

    def _count_txn(
        self, conn: Connection, requester: bytes, epoch: int, count: int, now_ms: int
    ) -> tuple[int, int] | None:
        """Check the quota and count the request, with its audit row (one transaction:
        concurrent requests from one requester cannot both slip under the quota).
        Returns None if counted, or (spent today, quota) if refused."""
        self._audit.lock_txn(conn)  # serializes counters on every backend
        configured = _state_txn(conn, QUOTA_KEY)
        quota = DEFAULT_DAILY_QUOTA if configured is None else int(configured)
        day = utc_day(now_ms)
        spent = conn.execute(
            select(func.coalesce(func.sum(oracle_usage.c.count), 0)).where(
                oracle_usage.c.day == day, oracle_usage.c.requester == requester
            )
        ).scalar_one()
        target = f"peer:{requester.hex()}"
        if spent + count > quota:
            self._audit.record_txn(
                conn,
                None,
                "oracle.quota_refused",
                target,
                {"count": count, "epoch": epoch, "spent": int(spent), "quota": quota},
                now_ms=now_ms,
            )
            return int(spent), quota
        where = (
            oracle_usage.c.day == day,
            oracle_usage.c.requester == requester,
            oracle_usage.c.epoch == epoch,
        )
        updated = conn.execute(
            update(oracle_usage).where(*where).values(count=oracle_usage.c.count + count)
        ).rowcount
        if not updated:
            conn.execute(
                oracle_usage.insert().values(day=day, requester=requester, epoch=epoch, count=count)
            )
        self._audit.record_txn(
            conn,
            None,
            "oracle.evaluate",
            target,
            {"count": count, "epoch": epoch, "day_total": int(spent) + count},
            now_ms=now_ms,
        )
        return None

    async def usage(self, *, since_day: str | None = None) -> list[UsageRow]:
        return await self._db.read(_usage_txn, since_day)

    async def publish_usage(self) -> list[protocol.Entry]:
        """Append ``oracle.usage/1`` for every finished day not yet published."""
        now_ms = self._clock.now_ms()
        return await self._db.write(self._publish_txn, utc_day(now_ms), now_ms)

    def _publish_txn(self, conn: Connection, today: str, now_ms: int) -> list[protocol.Entry]:
        done = _state_txn(conn, PUBLISHED_KEY) or ""
        rows = conn.execute(
            select(oracle_usage)
            .where(oracle_usage.c.day > done, oracle_usage.c.day < today)
            .order_by(oracle_usage.c.day, oracle_usage.c.epoch, oracle_usage.c.requester)
        ).all()
        by_day: dict[tuple[str, int], list[Any]] = {}
        for row in rows:
            by_day.setdefault((row.day, row.epoch), []).append(row)
        published = []
        key, net = self._identity.signing_key, self._net()
        for (day, epoch), items in sorted(by_day.items()):
            items = sorted(items, key=lambda r: bytes(r.requester))[: protocol.MAX_ITEMS]
            body = protocol.OracleUsage(
                counts=[min(r._mapping["count"], 2**32 - 1) for r in items],
                date=day,
                epoch=epoch,
                requesters=[bytes(r.requester) for r in items],
            )

            def make(head: protocol.FeedHead | None, body: Any = body) -> protocol.Entry:
                return protocol.append(head, body, key=key, net=net, now_ms=now_ms)

            published.append(self._feeds.append_own_txn(conn, make, now_ms))
        last = max((day for day, _epoch in by_day), default=None)
        if last is not None:
            _set_state_txn(conn, PUBLISHED_KEY, last)
        return published


class _QuotaRefused(OracleError):
    def __init__(self, *, spent: int, quota: int) -> None:
        super().__init__(
            f"daily quota spent ({spent} of {quota} elements today); try again tomorrow "
            "or ask this oracle's admin to raise it",
            code=OracleErrorCode.QUOTA_EXCEEDED,
        )


def _state_txn(conn: Connection, key: str) -> str | None:
    query = select(node_state.c.value).where(node_state.c.key == key)
    value: str | None = conn.execute(query).scalar_one_or_none()
    return value


def _set_state_txn(conn: Connection, key: str, value: str) -> None:
    conn.execute(node_state.delete().where(node_state.c.key == key))
    conn.execute(node_state.insert().values(key=key, value=value))


def _usage_txn(conn: Connection, since_day: str | None) -> list[UsageRow]:
    query = select(oracle_usage).order_by(
        oracle_usage.c.day.desc(), oracle_usage.c.count.desc(), oracle_usage.c.requester
    )
    if since_day is not None:
        query = query.where(oracle_usage.c.day >= since_day)
    return [
        UsageRow(r.day, bytes(r.requester), r.epoch, r._mapping["count"])
        for r in conn.execute(query)
    ]
