"""The allocation index: every ``ataa.allocation/1`` entry this node holds, ours and
peers', copied into ``ataa_allocations`` for the queue and the reports, with voids
(``ataa.allocation_void/1``) applied.

The index is built inside the transaction that stores each entry (an indexer on the
:class:`~node.storage.FeedStore`, :func:`install`), so it never lags behind the feeds
and commits or rolls back with them. :func:`backfill` fills it for entries stored
before the indexer existed (a node upgraded from schema 0004) or loaded without it
(a restored backup); it is idempotent and runs at start.

Voids (SPEC §5.7): the protocol checks only their format; this node applies a void
only to an allocation of the *same* author (a feed can void only its own records).
When one allocation is voided twice, the first void is kept. A void that names an
unknown or foreign entry changes nothing and is logged with the void's position only.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar

from sqlalchemy import Table, and_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

import protocol
from node.storage import Database, FeedStore, insert_rows, stored_content
from node.storage._schema import ataa_allocations, entries

__all__ = [
    "ALLOCATION_KINDS",
    "AllocationError",
    "AllocationErrorCode",
    "backfill",
    "index_entries",
    "index_row",
    "install",
]

#: The kinds the index reads.
ALLOCATION_KINDS: Final = (protocol.Allocation.KIND, protocol.AllocationVoid.KIND)
_ALLOCATION_KIND: Final = protocol.Allocation.KIND
#: What the index keeps of an allocation: these of its fields, under the same names.
_INDEXED_FIELDS: Final = (
    "pseudonym",
    "epoch",
    "category",
    "unit",
    "quantity",
    "value_iqd",
    "program",
    "date",
    "district",
)
#: Entries :func:`backfill` decodes per write transaction: small enough that a backfill
#: of a million entries never holds the write lock for long (others write between
#: batches), large enough that commits are not the cost.
_BACKFILL_BATCH: Final = 2000

_log = logging.getLogger(__name__)
_B = TypeVar("_B", bound=protocol.Body)


class AllocationErrorCode(enum.StrEnum):
    """Stable, machine-readable codes of the queue, distributions and reports."""

    NOT_FOUND = "NOT_FOUND"  # no such distribution, household or delivery
    INVALID = "INVALID"  # an argument the rules refuse (the message names the field)
    BAD_STATE = "BAD_STATE"  # not allowed in the current state (e.g. deliver an excluded one)
    DUPLICATE_ASSISTANCE = "DUPLICATE_ASSISTANCE"  # another NGO recently gave the same
    HEAD_UNCONFIRMED = "HEAD_UNCONFIRMED"  # restored node: cannot append yet


class AllocationError(protocol.CodedError):
    """Every refusal of the queue, distributions and reports. Messages name ids and
    codes, never a household's personal data (they reach logs and the UI)."""

    code: AllocationErrorCode


def install(feeds: FeedStore) -> None:
    """Index allocations and voids as ``feeds`` stores them (ours and peers')."""
    feeds.add_indexer(ALLOCATION_KINDS, index_entries)


def index_entries(conn: Connection, stored: Sequence[protocol.Entry]) -> None:
    """Index verified entries of :data:`ALLOCATION_KINDS`, in order, in ``conn``'s
    transaction (a catch-up stores hundreds at once: their allocations are one
    multi-row insert, each void is applied where it stands among them).

    Never raises for a valid entry (the feed store would then refuse to store it):
    inserting is ``ON CONFLICT DO NOTHING`` (indexing twice changes nothing), and a
    void naming something else than an allocation of its own feed is ignored. The one
    exception caught is a content this version cannot read as its kind; that cannot
    happen for an entry ``protocol.verify_entry`` accepted, and is logged if it does.
    Database errors are not caught: they roll the whole storing back, as they must.
    """
    rows: list[dict[str, Any]] = []
    for entry in stored:
        if entry.kind == _ALLOCATION_KIND:
            # verify_entry checked the content as an allocation's: its keys are the
            # body's fields, read here without building the body (a catch-up indexes
            # thousands a second)
            content = entry.content
            row = {"author": entry.author, "seq": entry.seq, "entry_id": entry.id}
            rows.append(row | {name: content.get(name) for name in _INDEXED_FIELDS})
            continue
        body = entry.body
        if isinstance(body, protocol.AllocationVoid):
            _insert_allocations(conn, rows)  # a void may name one of them
            rows = []
            _apply_void(conn, entry.author, entry.seq, body)
        else:  # pragma: no cover - verify_entry checked the content against the kind
            _log.warning(
                "allocation index: unreadable entry skipped",
                extra={
                    "event": "ataa.index.skipped",
                    "author": entry.author.hex(),
                    "seq": entry.seq,
                },
            )
    _insert_allocations(conn, rows)


async def backfill(db: Database) -> int:
    """Index every allocation and void already stored but missing from the index.

    Idempotent: a second run finds nothing to do. Allocations first, then voids (a
    void always names an earlier entry, so every allocation it may name is indexed
    by then).

    Returns:
        How many entries were newly indexed (allocations inserted, voids applied).
    """
    done = 0
    after: tuple[bytes, int] | None = None
    while True:
        count, after = await db.write(_backfill_allocations_txn, after)
        done += count
        if after is None:
            break
    pending = await db.read(_unapplied_voids_txn)
    for start in range(0, len(pending), _BACKFILL_BATCH):
        done += await db.write(_backfill_voids_txn, pending[start : start + _BACKFILL_BATCH])
    if done:
        _log.info(
            "allocation index: %d entries indexed", done, extra={"event": "ataa.index.backfill"}
        )
    return done


# -- transaction bodies (sync: they run inside run_sync) ----------------------------------


def _insert(conn: Connection, table: Table) -> Any:
    """INSERT with ``ON CONFLICT`` support: the same SQL on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def index_row(
    author: bytes, seq: int, entry_id: bytes, body: protocol.Allocation
) -> dict[str, Any]:
    """The ``ataa_allocations`` row of allocation ``seq`` of ``author``'s feed."""
    row = {"author": author, "seq": seq, "entry_id": entry_id}
    return row | {name: getattr(body, name) for name in _INDEXED_FIELDS}


def _insert_allocations(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert index rows, one statement for all of them; rows held already are kept."""
    insert_rows(conn, ataa_allocations, rows, ignore_conflicts=True)


def _apply_void(conn: Connection, author: bytes, seq: int, body: protocol.AllocationVoid) -> int:
    """Mark ``author``'s allocation ``body.allocation`` voided, unless it already is.
    Returns 1 if a row changed, 0 if the void names nothing of ``author``'s."""
    target = and_(
        ataa_allocations.c.entry_id == body.allocation,
        ataa_allocations.c.author == author,
        ataa_allocations.c.seq < seq,
    )
    result = conn.execute(
        update(ataa_allocations)
        .where(target, ataa_allocations.c.void_seq.is_(None))
        .values(void_reason=body.reason, void_seq=seq)
    )
    if result.rowcount:
        return 1
    held = conn.execute(select(ataa_allocations.c.seq).where(target)).first()
    if held is None:
        _log.info(
            "allocation void names no earlier allocation of its own feed; ignored",
            extra={"event": "ataa.index.void_ignored", "author": author.hex(), "seq": seq},
        )
    return 0


def _backfill_allocations_txn(
    conn: Connection, after: tuple[bytes, int] | None
) -> tuple[int, tuple[bytes, int] | None]:
    """One batch of stored allocations missing from the index, in (author, seq)
    order from ``after``; returns how many were indexed and where to go on (None at
    the end)."""
    missing = ~(
        select(ataa_allocations.c.seq)
        .where(
            ataa_allocations.c.author == entries.c.author, ataa_allocations.c.seq == entries.c.seq
        )
        .exists()
    )
    query = (
        select(entries.c.author, entries.c.seq, entries.c.id, entries.c.wire)
        .where(entries.c.kind == protocol.Allocation.KIND, missing)
        .order_by(entries.c.author, entries.c.seq)
        .limit(_BACKFILL_BATCH)
    )
    if after is not None:
        query = query.where(tuple_(entries.c.author, entries.c.seq) > tuple_(*after))
    rows = conn.execute(query).all()
    found = []
    for row in rows:
        body = _stored_body(row, protocol.Allocation)
        if body is not None:
            found.append(index_row(bytes(row.author), row.seq, bytes(row.id), body))
    _insert_allocations(conn, found)  # missing from the index a moment ago: all new
    count = len(found)
    last = (bytes(rows[-1].author), rows[-1].seq) if len(rows) == _BACKFILL_BATCH else None
    return count, last


def _unapplied_voids_txn(conn: Connection) -> list[tuple[bytes, int]]:
    """Positions of stored voids that no index row records: new ones, and those that
    named nothing (few; re-examined at each start, which is cheap)."""
    applied = {
        (bytes(row.author), row.void_seq)
        for row in conn.execute(
            select(ataa_allocations.c.author, ataa_allocations.c.void_seq).where(
                ataa_allocations.c.void_seq.is_not(None)
            )
        )
    }
    stored = conn.execute(
        select(entries.c.author, entries.c.seq)
        .where(entries.c.kind == protocol.AllocationVoid.KIND)
        .order_by(entries.c.author, entries.c.seq)
    )
    return [(bytes(r.author), r.seq) for r in stored if (bytes(r.author), r.seq) not in applied]


def _backfill_voids_txn(conn: Connection, positions: Iterable[tuple[bytes, int]]) -> int:
    count = 0
    for author, seq in positions:
        row = conn.execute(
            select(entries.c.author, entries.c.seq, entries.c.wire).where(
                entries.c.author == author, entries.c.seq == seq
            )
        ).one_or_none()
        body = None if row is None else _stored_body(row, protocol.AllocationVoid)
        if body is not None:
            count += _apply_void(conn, author, seq, body)
    return count


def _stored_body(row: Any, kind: type[_B]) -> _B | None:
    """The body of a stored entry row, or None (logged) for a damaged row: one bad
    row must not stop the node from starting."""
    try:
        return kind.from_content(stored_content(row.wire))
    except protocol.ProtocolError as error:
        _log.warning(
            "allocation index: stored entry unreadable (%s); skipped",
            error.code,
            extra={"event": "ataa.index.unreadable", "author": bytes(row.author).hex()},
        )
        return None
