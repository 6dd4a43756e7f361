"""The audit log: an append-only, hash-chained record of sensitive actions.

Every row ``n`` stores ``hash_n = SHA-256(hash_{n-1} || canonical(n, ts_ms, actor,
action, target, details))`` with ``hash_0 = GENESIS`` (32 zero bytes), and ``canonical``
is the UTF-8 of the compact JSON array of those six values (``details`` as its stored
canonical JSON text). A one-row table, ``audit_head``, keeps a second copy of the newest
``(seq, hash)`` and is the lock that serializes writers: ``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite (as ``storage.FeedStore`` does with feed
heads), so seqs are 1, 2, 3, ... with no gap and no duplicate.

Other stores write audit rows in their own transactions through :meth:`AuditLog.record_txn`,
so that a change and its audit row are committed together or not at all.

What goes in a row. ``actor`` is an account id (None for the node itself), ``action`` a
dotted name (``login.failure``), ``target`` an object reference (``account:7``),
``details`` a flat JSON object of short facts. None of them may hold a password, a
token, a session id, a name, a phone number, an IP address or any other personal data:
the audit log is kept for years, shown to auditors and may be exported, and it cannot
be edited afterwards to remove what should never have been written.

Threat model (what :meth:`AuditLog.verify` can honestly detect):

- Someone who edits the database by hand (SQL shell, a restored or doctored backup) and
  changes a field of a past row, deletes a row, or reorders rows, without recomputing
  hashes: detected, at the first affected seq.
- Someone who deletes the newest rows, or rewrites a row and recomputes every later
  hash, but does not also rewrite ``audit_head``: detected (the chain no longer ends at
  the head), though the first rewritten seq cannot be named.
- Someone with write access to the whole database who also rewrites ``audit_head``:
  NOT detected by the database alone. Nothing stored next to the data can stop an
  attacker who can rewrite all of it. Protection then needs anchors kept elsewhere: a
  ``(seq, hash)`` from :meth:`AuditLog.head` written down, printed, or published in the
  node's signed feed, passed back to :meth:`AuditLog.verify` as ``anchors``; every rewrite
  at or before an anchored seq is then detected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Connection

from .storage import Database, StorageError, StorageErrorCode
from .storage._schema import audit_head, audit_log

__all__ = [
    "GENESIS",
    "MAX_QUERY",
    "AuditLog",
    "AuditRecord",
    "DetailValue",
    "VerifyReport",
    "canonical_details",
    "chain_hash",
]

#: ``prev_hash`` of the first row.
GENESIS: Final = bytes(32)
#: Most rows :meth:`AuditLog.query` returns at once: a page of the audit screen. Larger
#: pages are slow to render on the phones staff use; callers page with ``before_seq``.
MAX_QUERY: Final = 200
#: Rows :meth:`AuditLog.verify` fetches per round trip (bounds its memory, not its
#: consistency: the whole walk is one read transaction, a single snapshot).
_VERIFY_BATCH: Final = 1000

DetailValue = str | int | bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One row of the audit log; ``details`` is its canonical JSON text."""

    seq: int
    ts_ms: int
    actor: int | None
    action: str
    target: str | None
    details: str
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """The result of :meth:`AuditLog.verify`.

    Attributes:
        ok: every row chains to the previous one, the last one matches the head, and
            every anchor matched.
        rows: rows checked.
        first_bad_seq: the first seq found broken (a changed, missing or moved row),
            or for a chain that ends before or differs from its head, the head's seq;
            None when ``ok``.
        reason: why, in English, for the operator; None when ``ok``.
    """

    ok: bool
    rows: int
    first_bad_seq: int | None = None
    reason: str | None = None


def canonical_details(details: Mapping[str, DetailValue]) -> str:
    """The canonical JSON text of ``details``: sorted keys, no spaces, UTF-8 as is.

    Raises:
        ValueError: a key is not a string or a value not a str, int, bool or None.
    """
    for key, value in details.items():
        if type(key) is not str:
            raise ValueError("audit detail keys must be strings")
        if value is not None and type(value) not in (str, int, bool):
            raise ValueError(f"audit detail {key!r} must be a str, int, bool or None")
    return json.dumps(
        dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def chain_hash(
    prev_hash: bytes,
    *,
    seq: int,
    ts_ms: int,
    actor: int | None,
    action: str,
    target: str | None,
    details: str,
) -> bytes:
    """``SHA-256(prev_hash || canonical(seq, ts_ms, actor, action, target, details))``."""
    body = json.dumps(
        [seq, ts_ms, actor, action, target, details], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(prev_hash + body.encode("utf-8")).digest()


class AuditLog:
    """The node's audit log. One instance per node.

    Args:
        db: the node's database, upgraded.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes -------------------------------------------------------------------

    async def record(
        self,
        actor: int | None,
        action: str,
        target: str | None,
        details: Mapping[str, DetailValue],
        *,
        now_ms: int,
    ) -> AuditRecord:
        """Append one row in its own transaction (see :meth:`record_txn`)."""
        return await self._db.write(self.record_txn, actor, action, target, details, now_ms=now_ms)

    def lock_txn(self, conn: Connection) -> tuple[int, bytes]:
        """Take the audit writers' lock for the rest of ``conn``'s transaction and
        return the head ``(seq, hash)``. Stores whose invariants span rows (the last
        admin, the first account) call this first, to serialize with each other.

        Raises:
            StorageError: SCHEMA if the head row is missing (not upgraded).
        """
        row = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise StorageError("audit head row missing", code=StorageErrorCode.SCHEMA)
        return row.seq, bytes(row.hash)

    def record_txn(
        self,
        conn: Connection,
        actor: int | None,
        action: str,
        target: str | None,
        details: Mapping[str, DetailValue],
        *,
        now_ms: int,
    ) -> AuditRecord:
        """Append one row within the caller's write transaction (``Database.write``).

        Args:
            actor: the account that acted, None for the node itself.
            action: a dotted name such as ``account.disable``; 1-64 characters.
            target: what was acted on, such as ``account:7``; None if nothing.
            details: short facts; never passwords, tokens or PII (module docstring).
            now_ms: our clock.

        Returns:
            The stored row.

        Raises:
            ValueError: an empty or over-long action, or details that are not flat.
        """
        if not 1 <= len(action) <= 64:
            raise ValueError("audit action must be 1-64 characters")
        text = canonical_details(details)
        prev_seq, prev_hash = self.lock_txn(conn)
        record = AuditRecord(
            seq=prev_seq + 1,
            ts_ms=now_ms,
            actor=actor,
            action=action,
            target=target,
            details=text,
            prev_hash=prev_hash,
            hash=chain_hash(
                prev_hash,
                seq=prev_seq + 1,
                ts_ms=now_ms,
                actor=actor,
                action=action,
                target=target,
                details=text,
            ),
        )
        conn.execute(
            insert(audit_log).values(
                seq=record.seq,
                ts_ms=record.ts_ms,
                actor=record.actor,
                action=record.action,
                target=record.target,
                details=record.details,
                prev_hash=record.prev_hash,
                hash=record.hash,
            )
        )
        conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=record.seq, hash=record.hash)
        )
        return record

    # -- reads --------------------------------------------------------------------

    async def head(self) -> tuple[int, bytes]:
        """The newest ``(seq, hash)``: ``(0, GENESIS)`` for an empty log. Keep it
        somewhere else to anchor :meth:`verify`."""
        return await self._db.read(_head_txn)

    async def query(
        self,
        *,
        action: str | None = None,
        actor: int | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """Rows matching every given filter, newest first.

        Args:
            action: exact action name.
            actor: account id.
            since_ms: ``ts_ms >= since_ms``.
            until_ms: ``ts_ms < until_ms``.
            before_seq: ``seq < before_seq`` (the next page: the last seq shown).
            limit: at most ``min(limit, MAX_QUERY)`` rows.

        Raises:
            ValueError: ``limit`` < 1.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(min(limit, MAX_QUERY))
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if since_ms is not None:
            query = query.where(audit_log.c.ts_ms >= since_ms)
        if until_ms is not None:
            query = query.where(audit_log.c.ts_ms < until_ms)
        if before_seq is not None:
            query = query.where(audit_log.c.seq < before_seq)
        return await self._db.read(_query_txn, query)

    async def verify(self, *, anchors: Iterable[tuple[int, bytes]] = ()) -> VerifyReport:
        """Walk the whole chain in one snapshot and report the first break.

        Args:
            anchors: ``(seq, hash)`` pairs kept outside the database (from
                :meth:`head` earlier); each must still match.

        Returns:
            A :class:`VerifyReport` (a broken chain is a finding, not an exception).
        """
        return await self._db.snapshot(_verify_txn, dict(anchors))

    async def verify_with_head(self) -> tuple[VerifyReport, tuple[int, bytes]]:
        """:meth:`verify` and :meth:`head` from the same snapshot (for ``watan audit
        verify``, which prints the head for the operator to keep as an anchor)."""
        return await self._db.snapshot(_verify_and_head_txn)


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        ts_ms=row.ts_ms,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=row.details,
        prev_hash=bytes(row.prev_hash),
        hash=bytes(row.hash),
    )


def _head_txn(conn: Connection) -> tuple[int, bytes]:
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return row.seq, bytes(row.hash)


def _query_txn(conn: Connection, query: Select[Any]) -> list[AuditRecord]:
    return [_record(row) for row in conn.execute(query)]


def _bad(rows: int, seq: int, reason: str) -> VerifyReport:
    return VerifyReport(ok=False, rows=rows, first_bad_seq=seq, reason=reason)


def _verify_and_head_txn(conn: Connection) -> tuple[VerifyReport, tuple[int, bytes]]:
    return _verify_txn(conn, {}), _head_txn(conn)


def _verify_txn(conn: Connection, anchors: dict[int, bytes]) -> VerifyReport:
    head_seq, head_hash = _head_txn(conn)
    expected, prev, rows = 1, GENESIS, 0
    while True:
        batch = conn.execute(
            select(audit_log)
            .where(audit_log.c.seq >= expected)
            .order_by(audit_log.c.seq)
            .limit(_VERIFY_BATCH)
        ).all()
        for raw in batch:
            row = _record(raw)
            rows += 1
            if row.seq != expected:
                return _bad(rows, expected, f"row {expected} is missing")
            if row.prev_hash != prev:
                return _bad(rows, row.seq, f"row {row.seq} does not follow row {row.seq - 1}")
            computed = chain_hash(
                prev,
                seq=row.seq,
                ts_ms=row.ts_ms,
                actor=row.actor,
                action=row.action,
                target=row.target,
                details=row.details,
            )
            if computed != row.hash:
                return _bad(rows, row.seq, f"row {row.seq} was changed")
            if row.seq in anchors and anchors[row.seq] != row.hash:
                reason = (
                    f"row {row.seq} differs from its anchor: it or an earlier row was rewritten"
                )
                return _bad(rows, row.seq, reason)
            prev, expected = row.hash, expected + 1
        if len(batch) < _VERIFY_BATCH:
            break
    last = expected - 1
    missing = [seq for seq in anchors if seq > last]
    if missing:
        return _bad(
            rows, last + 1, f"rows after {last} are missing (anchored up to {max(missing)})"
        )
    if (last, prev) != (head_seq, head_hash):
        return _bad(
            rows,
            head_seq if head_seq >= 1 else last,
            f"the chain ends at row {last}, but the head names row {head_seq} with another"
            " hash: rows were removed from the end or rewritten and re-hashed",
        )
    return VerifyReport(ok=True, rows=rows)
