"""The feed store: every entry this node holds, per-feed heads, and fork proofs.

Rules enforced here, each within one transaction (SPEC §4):

- Entries are stored as the exact bytes received or created; nothing is re-serialized.
- A feed grows only by its next entry, verified against the stored head
  (``protocol.verify_next``); the head row is updated in the same transaction, so a
  crash leaves the whole entry and its head, or neither.
- Writers of one feed serialize on its head row: ``SELECT ... FOR UPDATE`` on
  PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite (see ``_db``). For a feed we hold nothing
  of, a placeholder head row (``seq`` NULL) is inserted first so there is a row to
  lock; it is removed, or filled in, before the transaction ends.
- Two valid entries at one ``(author, seq)`` are a fork: the proof is kept and the
  author's later entries are refused (SPEC §4.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Row, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

import protocol
from node._verifier import VerifiedRun, Verifier
from protocol import Entry, ErrorCode, FeedHead, LocalProtocolError, RemoteProtocolError

from ._bulk import insert_rows
from ._db import Database, StorageError, StorageErrorCode
from ._schema import entries, feeds, forks, node_state

__all__ = [
    "HEAD_UNCONFIRMED_KEY",
    "MAX_RANGE",
    "MAX_RANGE_BYTES",
    "FeedStore",
    "ForkRecord",
    "Indexer",
    "IngestResult",
    "IngestStatus",
    "PreparedBatch",
    "entry_row",
    "stored_content",
]

#: ``node_state`` key set by a restore: the node may have appended entries after the
#: backup was taken, which peers hold and we do not. Appending before we have learned
#: our own head from peers would fork our own feed (SPEC §4.2, DESIGN §4).
HEAD_UNCONFIRMED_KEY: Final = "own_head_unconfirmed"

#: Most entries :meth:`FeedStore.range` returns at once. A range answers a peer's pull
#: (DESIGN §4 "pull missing ranges"): 2,048 typical entries are ~800 KB. Each request
#: costs both nodes a signed round trip, a few reads and, on the puller, a commit; at
#: 256 entries a range those fixed costs were a third of a catch-up's time
#: (``tools/bench_ingest.py``). Callers page with ``after_seq``.
MAX_RANGE: Final = 2048
#: A range also stops before its wires would exceed this many bytes: what one request
#: can pin in memory, however large its entries (at least one entry is returned,
#: ``protocol.MAX_ENTRY_BYTES`` < this), and it fits a federation body
#: (``protocol.MAX_DOCUMENT_BYTES``).
MAX_RANGE_BYTES: Final = 1_000_000

_ROTATE_KIND: Final = protocol.KeyRotate.KIND

IngestStatus = Literal["stored", "duplicate", "fork", "gap"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestResult:
    """What :meth:`FeedStore.ingest` did with an entry.

    Attributes:
        status: ``stored`` (it was the feed's next entry), ``duplicate`` (we hold it
            already; nothing changed), ``fork`` (it conflicts with an entry we hold,
            whose proof is now stored, or its author is forked and we refuse it),
            ``gap`` (entries before it are missing: nothing stored; pull them first).
        entry: the verified entry for ``stored``, and for ``fork`` when this entry
            conflicts with one we hold; None otherwise.
    """

    status: IngestStatus
    entry: Entry | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkRecord:
    """A stored fork proof (SPEC §4.2); ``proof`` is ``ForkProof.to_bytes()``."""

    author: bytes
    seq: int
    proof: bytes
    found_ms: int


#: Called with the write transaction and entries being stored, in feed order (see
#: add_indexer).
Indexer = Callable[[Connection, Sequence[Entry]], None]


class FeedStore:
    """Every feed this node holds, its own included. One instance per node.

    Args:
        db: the node's database, upgraded.
        own: our feed's author id (the node id): the feed :meth:`append_own` extends.
        verifier: where a peer's ranges are verified (default: worker threads; a
            running node passes a :class:`Verifier` with worker processes, and closes
            it with :meth:`close`).

    Attributes:
        verifier: that verifier.
    """

    def __init__(self, db: Database, *, own: bytes, verifier: Verifier | None = None) -> None:
        if type(own) is not bytes or len(own) != 32:
            raise ValueError("own must be a 32-byte author id")
        self._db = db
        self._own = own
        self._indexers: dict[str, list[Indexer]] = {}
        self.verifier = verifier if verifier is not None else Verifier(workers=0)

    async def close(self) -> None:
        """Stop the verifier's worker processes, if they run (the database is the
        caller's to close)."""
        await self.verifier.close()

    def add_indexer(self, kinds: Iterable[str], indexer: Indexer) -> None:
        """Call ``indexer(conn, entries)`` for the entries of ``kinds`` stored from now
        on (ours and peers'), inside the transaction that stores them: an index built
        from entries (allocations for the queue) commits or rolls back with them. A
        catch-up hands an indexer all the entries of its kinds stored by one batch, in
        feed order; an append, the one. An indexer must not raise for a valid entry;
        if it does, nothing of the batch is stored."""
        for kind in kinds:
            self._indexers.setdefault(kind, []).append(indexer)

    def _stored(self, conn: Connection, stored: Sequence[Entry], now_ms: int) -> None:
        """Insert verified entries (one statement) and hand them to the indexers."""
        _insert_entries(conn, stored, now_ms)
        by_indexer: dict[int, tuple[Indexer, list[Entry]]] = {}
        for entry in stored:
            for indexer in self._indexers.get(entry.kind, ()):
                by_indexer.setdefault(id(indexer), (indexer, []))[1].append(entry)
        for indexer, its_entries in by_indexer.values():
            indexer(conn, its_entries)

    # -- writes -------------------------------------------------------------------

    async def append_own(self, make: Callable[[FeedHead | None], Entry], *, now_ms: int) -> Entry:
        """Append the next entry of our own feed, atomically.

        In one write transaction: lock and read our head, call ``make(head)`` (pure,
        typically ``lambda head: protocol.append(head, body, key=..., net=...,
        now_ms=...)``), check the entry really is the next one, insert it, move the
        head. Concurrent callers serialize on the head row, so each sees the previous
        one's entry: no seq is used twice and none is skipped. ``make`` may be called
        while the write lock is held: it must not await or block.

        Args:
            make: builds the entry from our current head (None for an empty feed).
            now_ms: our clock, recorded as the entry's ``received_ms``.

        Returns:
            The stored entry.

        Raises:
            LocalProtocolError: ``make`` built an entry that is not our feed's next
                one (wrong author, seq, prev, key or ts); nothing was stored.
            StorageError: CONFLICT if another writer held the database past the busy
                timeout (SQLite) or, should locking ever be bypassed, won the same seq
                (the primary key refuses a second row); nothing was stored. We do not
                retry: ``make`` signs, and a caller that wants a retry should decide
                to sign again.
            Any exception ``make`` raises, after rolling back.
        """
        return await self._db.write(self.append_own_txn, make, now_ms)

    def append_own_txn(
        self, conn: Connection, make: Callable[[FeedHead | None], Entry], now_ms: int
    ) -> Entry:
        """:meth:`append_own` inside a caller's write transaction (so that the entry
        and, say, its audit row commit together)."""
        if _state(conn, HEAD_UNCONFIRMED_KEY) is not None:
            raise StorageError(
                "this node was restored from a backup and has not yet learned its own "
                "feed's head from a peer; appending now could fork its feed",
                code=StorageErrorCode.HEAD_UNCONFIRMED,
            )
        head = _lock_head(conn, self._own)
        made = make(head)
        if made.author != self._own:
            raise LocalProtocolError("entry is not of our own feed", code=ErrorCode.WRONG_AUTHOR)
        try:
            entry, new_head = protocol.verify_next(head, made.wire, net=made.net, now_ms=None)
        except RemoteProtocolError as error:
            raise LocalProtocolError(error.message, code=error.code) from None
        self._stored(conn, [entry], now_ms)
        _set_head(conn, new_head)
        return entry

    async def ingest(self, wire: bytes, *, net: bytes, now_ms: int) -> IngestResult:
        """Verify and store an entry received from a peer; idempotent (STYLE §10).

        Args:
            wire: the exact bytes received; stored as they are.
            net: our federation id.
            now_ms: our clock, for the future-timestamp check and ``received_ms``.

        Returns:
            An :class:`IngestResult`; see its ``status`` values.

        Raises:
            RemoteProtocolError: the entry is invalid (including TS_IN_FUTURE, which
                means "retry later", SPEC §4.3); nothing was stored.
            StorageError: a database failure, or CORRUPT if what we hold no longer
                verifies.
        """
        wire = bytes(wire)
        # pure, before taking the lock: which feed, hence which head to lock
        author, seq = protocol.entry_position(wire, net=net, now_ms=now_ms)
        return await self._db.write(self._ingest_txn, wire, author, seq, net, now_ms)

    def _ingest_txn(
        self, conn: Connection, wire: bytes, author: bytes, seq: int, net: bytes, now_ms: int
    ) -> IngestResult:
        head = _lock_head(conn, author)
        held = head.seq if head is not None else 0
        if seq <= held:
            return _ingest_held_seq(conn, wire, author=author, seq=seq, net=net, now_ms=now_ms)
        if _has_fork(conn, author):
            return IngestResult(status="fork")  # SPEC §4.2: stop accepting this author
        if seq > held + 1:
            if head is None:
                _drop_placeholder(conn, author)
            return IngestResult(status="gap")
        entry, new_head = protocol.verify_next(head, wire, net=net, now_ms=now_ms)
        self._stored(conn, [entry], now_ms)
        _set_head(conn, new_head)
        return IngestResult(status="stored", entry=entry)

    async def ingest_batch(
        self, wires: list[bytes], *, net: bytes, now_ms: int
    ) -> tuple[list[IngestResult], protocol.ProtocolError | None]:
        """:meth:`ingest` for consecutive entries, in one transaction (a catch-up of
        thousands of entries commits per batch rather than per entry).

        Stops at the first invalid entry: what came before it is kept (each stored
        entry was verified against its predecessor), and the error is returned with
        the results so far, so that the caller can count it against the peer.

        A catch-up's batch is the next entries of one feed: those are verified before
        the write transaction, by :attr:`verifier` (off the event loop: in a worker
        thread, or shared between worker processes), against the head read just
        before; the transaction then stores them with one insert, if that head has not
        moved meanwhile. Anything else (a feed we hold
        further, a fork, a head that moved) takes the entry-by-entry path.
        """
        return await self.store_batch(await self.prepare_batch(wires, net=net, now_ms=now_ms))

    async def prepare_batch(
        self,
        wires: list[bytes],
        *,
        net: bytes,
        now_ms: int,
        after: FeedHead | Literal["stored"] | None = "stored",
    ) -> PreparedBatch:
        """The first half of :meth:`ingest_batch`: verify the batch's run of one feed's
        next entries (by :attr:`verifier`), against ``after``, or against the head we
        hold (``"stored"``). A replicator that prepares a batch while the one before
        it is being stored passes that one's :attr:`PreparedBatch.end`; if the head
        then differs when it is stored, the batch takes the entry-by-entry path."""
        wires = [bytes(w) for w in wires]
        run = await self._verified_run(wires, net, now_ms, after)
        return PreparedBatch(wires=wires, net=net, now_ms=now_ms, run=run)

    async def store_batch(
        self, batch: PreparedBatch
    ) -> tuple[list[IngestResult], protocol.ProtocolError | None]:
        """The second half of :meth:`ingest_batch`: one write transaction."""
        return await self._db.write(
            self._ingest_batch_txn, batch.wires, batch.net, batch.now_ms, batch.run
        )

    async def _verified_run(
        self,
        wires: list[bytes],
        net: bytes,
        now_ms: int,
        after: FeedHead | Literal["stored"] | None = "stored",
    ) -> VerifiedRun | None:
        """The longest prefix of ``wires`` that verifies as the next entries of one feed
        after ``after`` (its stored head by default), or None when the first entry is
        not that feed's next."""
        if not wires:
            return None
        try:
            author, seq = protocol.entry_position(wires[0], net=net, now_ms=now_ms)
        except protocol.ProtocolError:
            return None  # the entry-by-entry path reports it
        head = await self.head(author) if after == "stored" else after
        if head is not None and head.author != author:
            return None
        if seq != (head.seq if head is not None else 0) + 1:
            return None
        return await self.verifier.run(head, author, wires, net, now_ms)

    def _ingest_batch_txn(
        self, conn: Connection, wires: list[bytes], net: bytes, now_ms: int, run: VerifiedRun | None
    ) -> tuple[list[IngestResult], protocol.ProtocolError | None]:
        results: list[IngestResult] = []
        start = 0
        if run is not None and run.entries:
            head = _lock_head(conn, run.author)
            if head == run.head and run.end is not None and not _has_fork(conn, run.author):
                self._stored(conn, run.entries, now_ms)
                _set_head(conn, run.end)
                results = [IngestResult(status="stored", entry=e) for e in run.entries]
                if run.error is not None:
                    return results, run.error
                start = len(run.entries)
            elif head is None:
                _drop_placeholder(conn, run.author)
        for wire in wires[start:]:
            try:
                author, seq = protocol.entry_position(wire, net=net, now_ms=now_ms)
                results.append(self._ingest_txn(conn, wire, author, seq, net, now_ms))
            except protocol.ProtocolError as error:
                return results, error
        return results, None

    async def add_fork_proof(self, data: bytes, *, net: bytes, now_ms: int) -> ForkRecord | None:
        """Take a fork proof a peer offers (SPEC §4.2), after verifying it.

        It is kept when we hold the author's entry at that seq (the proof then stops
        us accepting the author), or hold the entry just before it (one side of the
        proof is then appended first). Otherwise it is not kept yet (returns None):
        the peer offers it again once we have caught up.

        Raises:
            RemoteProtocolError: the proof does not verify.
        """
        data = bytes(data)
        fields = protocol.decode(data, max_size=2 * protocol.MAX_ENTRY_BYTES + 128)
        first = fields.get("a") if type(fields) is dict else None
        if type(first) is not bytes:
            raise RemoteProtocolError(
                "a fork proof is a map with a and b", code=ErrorCode.MALFORMED
            )
        author, seq = protocol.entry_position(first, net=net, now_ms=None)
        key = await self._db.read(_key_at, author, seq)
        proof = protocol.verify_fork_proof(data, net=net, key=key)
        return await self._db.write(self._fork_proof_txn, proof, net, now_ms)

    def _fork_proof_txn(
        self, conn: Connection, proof: protocol.ForkProof, net: bytes, now_ms: int
    ) -> ForkRecord | None:
        author, seq = proof.first.author, proof.first.seq
        existing = conn.execute(
            select(forks).where(forks.c.author == author, forks.c.seq == seq)
        ).one_or_none()
        if existing is not None:
            return None
        head = _lock_head(conn, author)
        held = head.seq if head is not None else 0
        if held == seq - 1 and not _has_fork(conn, author):
            try:
                entry, new_head = protocol.verify_next(head, proof.first.wire, net=net, now_ms=None)
            except protocol.ProtocolError:
                entry = None
            if entry is not None:
                self._stored(conn, [entry], now_ms)
                _set_head(conn, new_head)
                held = seq
        if held < seq:
            if head is None:
                _drop_placeholder(conn, author)
            return None
        data = proof.to_bytes()
        row_values = {"author": author, "seq": seq, "proof": data, "found_ms": now_ms}
        conn.execute(_insert(conn, forks).values(row_values).on_conflict_do_nothing())
        return ForkRecord(author=author, seq=seq, proof=data, found_ms=now_ms)

    # -- the restore guard ------------------------------------------------------------

    async def head_unconfirmed(self) -> str | None:
        """Why appending is refused after a restore (the flag's value), or None."""
        return await self._db.read(_state, HEAD_UNCONFIRMED_KEY)

    async def set_head_unconfirmed(self, reason: str | None) -> None:
        """Set (``reason``) or clear (None) the restore guard on our own feed."""
        await self._db.write(_set_state, HEAD_UNCONFIRMED_KEY, reason)

    # -- reads --------------------------------------------------------------------

    async def head(self, author: bytes) -> FeedHead | None:
        """The newest entry we hold of ``author``'s feed, or None."""
        return await self._db.read(_head_txn, author)

    async def current_key(self, author: bytes) -> bytes:
        """The key ``author`` signs with now: its feed's current key (after any
        rotation we hold), else the author id itself (SPEC §4.4)."""
        head = await self.head(author)
        return head.key if head is not None else author

    async def heads(self) -> dict[bytes, tuple[int, bytes]]:
        """Every feed we hold: ``author -> (seq, id)`` (what peers exchange, DESIGN §4)."""
        return await self._db.read(_heads_txn)

    async def get(self, author: bytes, seq: int) -> bytes | None:
        """The wire of entry ``seq`` of ``author``'s feed, or None if we lack it."""
        if not 1 <= seq <= protocol.MAX_SEQ:  # peers choose seq: keep it in BIGINT range
            return None
        return await self._db.read(_get_txn, author, seq)

    async def range(
        self, author: bytes, after_seq: int, limit: int, *, max_bytes: int = MAX_RANGE_BYTES
    ) -> list[bytes]:
        """Wires of ``author``'s entries with ``seq > after_seq``, in seq order.

        Returns at most ``min(limit, MAX_RANGE)`` wires, whose sizes add up to at most
        ``max_bytes`` (the first is returned whatever its size); fewer than ``limit``
        is not the end of what we hold when the bytes ran out first.

        Raises:
            ValueError: ``limit`` or ``max_bytes`` < 1.
        """
        if limit < 1 or max_bytes < 1:
            raise ValueError("limit and max_bytes must be at least 1")
        if after_seq >= protocol.MAX_SEQ:  # peers choose after_seq: keep it in BIGINT range
            return []
        after_seq = max(after_seq, 0)
        return await self._db.read(_range_txn, author, after_seq, min(limit, MAX_RANGE), max_bytes)

    async def latest_of_kind(self, author: bytes, kind: str) -> bytes | None:
        """The wire bytes of ``author``'s newest entry of ``kind``, or None."""
        return await self._db.read(_latest_of_kind_txn, author, kind)

    async def all_of_kind(self, kind: str) -> list[tuple[bytes, int, bytes]]:
        """``(author, seq, wire)`` of every entry of ``kind`` we hold, by author and seq
        (for kinds that are few by nature, such as ``oracle.config/1``)."""
        return await self._db.read(_all_of_kind_txn, kind)

    async def forks(self) -> list[ForkRecord]:
        """Every stored fork proof, oldest first."""
        return await self._db.read(_forks_txn)

    async def has_fork(self, author: bytes) -> bool:
        """Whether ``author``'s feed is forked (we refuse its new entries)."""
        return await self._db.read(_has_fork, author)

    async def count(self) -> int:
        """How many entries we hold, over all feeds."""
        return await self._db.read(_count_txn)


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedBatch:
    """A batch :meth:`FeedStore.prepare_batch` verified, for :meth:`FeedStore.store_batch`."""

    wires: list[bytes]
    net: bytes
    now_ms: int
    run: VerifiedRun | None

    @property
    def end(self) -> FeedHead | Literal["stored"] | None:
        """The feed's head once this batch is stored whole, for preparing the next one
        (``"stored"``: not known before it is stored)."""
        run = self.run
        if run is None or run.error is not None or len(run.entries) != len(self.wires):
            return "stored"
        return run.end

    def then(self, after: PreparedBatch) -> PreparedBatch | None:
        """This batch and ``after``, prepared against this one's :attr:`end`, as one
        (stored in one transaction: a catch-up's commits are fewer and larger), or None
        when ``after`` does not follow this whole batch."""
        run, next_run = self.run, after.run
        end = self.end
        if run is None or next_run is None or end == "stored" or next_run.head != end:
            return None
        if next_run.author != run.author or after.net != self.net:
            return None
        joined = VerifiedRun(
            author=run.author,
            head=run.head,
            entries=run.entries + next_run.entries,
            end=next_run.end,
            error=next_run.error,
        )
        return PreparedBatch(
            wires=self.wires + after.wires, net=self.net, now_ms=after.now_ms, run=joined
        )


# -- transaction bodies and their helpers (sync: they run inside run_sync) --------


def _insert(conn: Connection, table: Table) -> Any:
    """INSERT with ``ON CONFLICT`` support: the same SQL on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _to_head(row: Row[Any]) -> FeedHead | None:
    if row.seq is None:
        return None
    return FeedHead(
        author=bytes(row.author), seq=row.seq, id=bytes(row.id), ts=row.ts, key=bytes(row.key)
    )


def _lock_head(conn: Connection, author: bytes) -> FeedHead | None:
    """Read ``author``'s head, holding its row lock until the transaction ends.

    A feed we hold nothing of gets a placeholder row first: ``INSERT ... ON CONFLICT
    DO NOTHING`` waits for a concurrent inserter of the same author to finish, and
    the ``SELECT ... FOR UPDATE`` after it then sees (and locks) that writer's head.
    SQLite ignores FOR UPDATE; there ``BEGIN IMMEDIATE`` already holds the write lock.
    """
    query = select(feeds).where(feeds.c.author == author).with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        placeholder = _insert(conn, feeds).values(author=author)
        conn.execute(placeholder.on_conflict_do_nothing(index_elements=["author"]))
        row = conn.execute(query).one()
    return _to_head(row)


def _drop_placeholder(conn: Connection, author: bytes) -> None:
    conn.execute(feeds.delete().where(feeds.c.author == author, feeds.c.seq.is_(None)))


def _set_head(conn: Connection, head: FeedHead) -> None:
    conn.execute(
        update(feeds)
        .where(feeds.c.author == head.author)
        .values(seq=head.seq, id=head.id, ts=head.ts, key=head.key)
    )


def entry_row(entry: Entry, received_ms: int) -> dict[str, Any]:
    """The ``entries`` row of a verified entry (the stored bytes are its wire)."""
    return {
        "author": entry.author,
        "seq": entry.seq,
        "id": entry.id,
        "prev": entry.prev,
        "ts": entry.ts,
        "kind": entry.kind,
        "wire": entry.wire,
        "received_ms": received_ms,
    }


def _insert_entries(conn: Connection, stored: Sequence[Entry], now_ms: int) -> None:
    insert_rows(conn, entries, [entry_row(entry, now_ms) for entry in stored])


def _corrupt(author: bytes, seq: int, what: str) -> StorageError:
    return StorageError(
        f"feed {author.hex()[:16]}… entry {seq}: {what}", code=StorageErrorCode.CORRUPT
    )


def _ingest_held_seq(
    conn: Connection, wire: bytes, *, author: bytes, seq: int, net: bytes, now_ms: int
) -> IngestResult:
    """An entry at a seq we hold: a duplicate, or a fork (SPEC §4.2)."""
    row = conn.execute(
        select(entries.c.id, entries.c.wire).where(entries.c.author == author, entries.c.seq == seq)
    ).one_or_none()
    if row is None:
        raise _corrupt(author, seq, "below the feed's head but missing")
    if bytes(row.id) == hashlib.sha256(wire).digest():
        return IngestResult(status="duplicate")
    key = _key_at(conn, author, seq)
    # Judged as evidence: on its own, under the key valid at that seq, with no
    # future-timestamp check. An invalid one raises like any invalid entry.
    received = protocol.verify_entry(wire, net=net, now_ms=None, key=key, author=author)
    try:
        stored = protocol.verify_entry(bytes(row.wire), net=net, now_ms=None, key=key)
    except protocol.ProtocolError as error:
        raise _corrupt(author, seq, f"stored entry does not verify: {error}") from None
    proof = protocol.make_fork_proof(stored, received, key=key)
    row_values = {"author": author, "seq": seq, "proof": proof.to_bytes(), "found_ms": now_ms}
    # The first proof found for a seq is kept; another third entry proves nothing more.
    conn.execute(_insert(conn, forks).values(row_values).on_conflict_do_nothing())
    return IngestResult(status="fork", entry=received)


def stored_content(wire: bytes) -> dict[str, Any]:
    """The content map of an entry this node stored.

    Stored entries were verified on the way in, so decoding them suffices (no second
    signature check on every read).

    Raises:
        RemoteProtocolError: the bytes are not an entry (a damaged row).
    """
    try:
        payload, _sig = protocol.decode(bytes(wire), max_size=protocol.MAX_ENTRY_BYTES)
        content = protocol.decode(payload, max_size=protocol.MAX_ENTRY_BYTES)["content"]
    except (TypeError, ValueError, KeyError):
        content = None
    if type(content) is not dict:
        raise RemoteProtocolError("not a stored entry", code=ErrorCode.MALFORMED)
    return content


def _key_at(conn: Connection, author: bytes, seq: int) -> bytes:
    """The key that signs entry ``seq`` of a feed: the ``new_key`` of the latest
    ``node.key_rotate/1`` below ``seq``, else the author itself (SPEC §4.4)."""
    rotation = conn.execute(
        select(entries.c.seq, entries.c.wire)
        .where(entries.c.author == author, entries.c.seq < seq, entries.c.kind == _ROTATE_KIND)
        .order_by(entries.c.seq.desc())
        .limit(1)
    ).one_or_none()
    if rotation is None:
        return author
    # Stored entries were verified on the way in, so reading the field suffices; the
    # stored entry at ``seq`` is then verified under the result, which checks it too.
    try:
        new_key = stored_content(rotation.wire).get("new_key")
    except protocol.ProtocolError:
        raise _corrupt(author, rotation.seq, "unreadable key rotation") from None
    if type(new_key) is not bytes or len(new_key) != 32:
        raise _corrupt(author, rotation.seq, "key rotation without a 32-byte new_key")
    return new_key


def _has_fork(conn: Connection, author: bytes) -> bool:
    query = select(forks.c.seq).where(forks.c.author == author).limit(1)
    return conn.execute(query).first() is not None


def _head_txn(conn: Connection, author: bytes) -> FeedHead | None:
    row = conn.execute(select(feeds).where(feeds.c.author == author)).one_or_none()
    return None if row is None else _to_head(row)


def _heads_txn(conn: Connection) -> dict[bytes, tuple[int, bytes]]:
    query = select(feeds.c.author, feeds.c.seq, feeds.c.id).where(feeds.c.seq.is_not(None))
    return {bytes(row.author): (row.seq, bytes(row.id)) for row in conn.execute(query)}


def _get_txn(conn: Connection, author: bytes, seq: int) -> bytes | None:
    query = select(entries.c.wire).where(entries.c.author == author, entries.c.seq == seq)
    wire = conn.execute(query).scalar_one_or_none()
    return None if wire is None else bytes(wire)


def _range_txn(
    conn: Connection, author: bytes, after_seq: int, limit: int, max_bytes: int
) -> list[bytes]:
    # The sizes first (SQLite and PostgreSQL read a blob's length from its header), so
    # that no more wires are read than are returned.
    in_feed = (entries.c.author == author, entries.c.seq > after_seq)
    sizes = conn.execute(
        select(entries.c.seq, func.length(entries.c.wire))
        .where(*in_feed)
        .order_by(entries.c.seq)
        .limit(limit)
    ).all()
    last, total = after_seq, 0
    for seq, size in sizes:
        total += size
        if total > max_bytes and last > after_seq:
            break
        last = seq
    if last == after_seq:
        return []
    query = select(entries.c.wire).where(*in_feed, entries.c.seq <= last).order_by(entries.c.seq)
    return [bytes(wire) for wire in conn.execute(query).scalars()]


def _latest_of_kind_txn(conn: Connection, author: bytes, kind: str) -> bytes | None:
    query = (
        select(entries.c.wire)
        .where(entries.c.author == author, entries.c.kind == kind)
        .order_by(entries.c.seq.desc())
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def _all_of_kind_txn(conn: Connection, kind: str) -> list[tuple[bytes, int, bytes]]:
    query = (
        select(entries.c.author, entries.c.seq, entries.c.wire)
        .where(entries.c.kind == kind)
        .order_by(entries.c.author, entries.c.seq)
    )
    return [(bytes(r.author), r.seq, bytes(r.wire)) for r in conn.execute(query)]


def _forks_txn(conn: Connection) -> list[ForkRecord]:
    query = select(forks).order_by(forks.c.found_ms, forks.c.author, forks.c.seq)
    return [
        ForkRecord(
            author=bytes(row.author), seq=row.seq, proof=bytes(row.proof), found_ms=row.found_ms
        )
        for row in conn.execute(query)
    ]


def _state(conn: Connection, key: str) -> str | None:
    query = select(node_state.c.value).where(node_state.c.key == key)
    value: str | None = conn.execute(query).scalar_one_or_none()
    return value


def _set_state(conn: Connection, key: str, value: str | None) -> None:
    conn.execute(node_state.delete().where(node_state.c.key == key))
    if value is not None:
        conn.execute(node_state.insert().values(key=key, value=value))


def _count_txn(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(entries)).scalar_one()
