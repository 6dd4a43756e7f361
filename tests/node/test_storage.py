"""The feed store on SQLite and PostgreSQL: migrations, appends, ingest, forks, crashes.

Every test taking ``db`` or ``store`` runs once per backend (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.engine import Connection

import protocol
from node.storage import (
    MAX_RANGE,
    SQLITE_BUSY_TIMEOUT_MS,
    Database,
    FeedStore,
    IngestResult,
    StorageError,
    StorageErrorCode,
    _feeds,
    insert_rows,
)
from node.storage._schema import entries, feeds, metadata, node_state
from protocol import Entry, ErrorCode, FeedHead, SigningKey

from .conftest import AUTHOR, KEY, NET, NOW, PEER, PEER_KEY, PEER_NEW_KEY

KIND = "test.note/1"  # an unknown kind: stored and relayed, never interpreted


def note(n: int) -> dict[str, Any]:
    return {"n": n}


def maker(n: int, *, key: SigningKey = KEY, now_ms: int = NOW) -> Any:
    """A pure ``make`` for ``append_own``: the next entry with content ``{"n": n}``."""

    def make(head: FeedHead | None) -> Entry:
        return protocol.append(head, note(n), kind=KIND, key=key, net=NET, now_ms=now_ms)

    return make


def feed(
    key: SigningKey, count: int, *, head: FeedHead | None = None, first: int = 1
) -> Iterator[Entry]:
    """``count`` consecutive entries of ``key``'s feed after ``head``, one ms apart."""
    for n in range(first, first + count):
        entry = protocol.append(head, note(n), kind=KIND, key=key, net=NET, now_ms=NOW + n)
        head = protocol.head_after(head, entry)
        yield entry


def head_of(entry: Entry, key: SigningKey) -> FeedHead:
    return FeedHead(
        author=entry.author,
        seq=entry.seq,
        id=entry.id,
        ts=entry.ts,
        key=protocol.public_key(key),
    )


async def test_upgrade_is_idempotent_and_reaches_head(db: Database) -> None:
    assert await db.current_revision() is None
    await db.upgrade()
    await db.upgrade()
    assert await db.current_revision() == Database.head_revision() == "0005"

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    assert {"entries", "feeds", "forks", "alembic_version"} <= await db.read(tables)


async def test_schema_module_matches_the_migrations(db: Database) -> None:
    await db.upgrade()

    def differences(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert await db.read(differences) == []


async def test_upgrade_refuses_a_schema_newer_than_the_code(db: Database) -> None:
    await db.upgrade()

    def from_the_future(conn: Connection) -> None:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    await db.write(from_the_future)
    with pytest.raises(StorageError) as info:
        await db.upgrade()
    assert info.value.code is StorageErrorCode.SCHEMA


async def test_queries_before_upgrade_report_schema(db: Database) -> None:
    with pytest.raises(StorageError) as info:
        await FeedStore(db, own=AUTHOR).count()
    assert info.value.code is StorageErrorCode.SCHEMA


async def test_ping(db: Database) -> None:
    await db.ping()
    assert db.backend in ("sqlite", "postgresql")


async def test_append_own_chain_then_read_it_back(store: FeedStore) -> None:
    made = [await store.append_own(maker(n), now_ms=NOW) for n in range(1, 51)]

    assert [entry.seq for entry in made] == list(range(1, 51))
    head = await store.head(AUTHOR)
    assert head == FeedHead(
        author=AUTHOR, seq=50, id=made[-1].id, ts=made[-1].ts, key=protocol.public_key(KEY)
    )
    assert await store.heads() == {AUTHOR: (50, made[-1].id)}
    assert await store.count() == 50
    assert await store.get(AUTHOR, 1) == made[0].wire
    assert await store.get(AUTHOR, 50) == made[-1].wire
    assert await store.get(AUTHOR, 51) is None
    assert await store.get(PEER, 1) is None
    assert await store.get(AUTHOR, 2**70) is None
    assert await store.head(PEER) is None

    assert await store.range(AUTHOR, 0, 10) == [entry.wire for entry in made[:10]]
    assert await store.range(AUTHOR, 45, 100) == [entry.wire for entry in made[45:]]
    assert await store.range(AUTHOR, 50, 10) == []
    assert await store.range(AUTHOR, -5, 1) == [made[0].wire]
    assert await store.range(AUTHOR, 2**70, 1) == []
    with pytest.raises(ValueError):
        await store.range(AUTHOR, 0, 0)
    entries_, final = protocol.verify_chain(await store.range(AUTHOR, 0, 50), net=NET, now_ms=NOW)
    assert final == head
    assert [entry.id for entry in entries_] == [entry.id for entry in made]


async def test_range_is_bounded_in_entries_and_bytes(store: FeedStore) -> None:
    wires = [entry.wire for entry in feed(PEER_KEY, MAX_RANGE + 3)]
    for start in range(0, len(wires), MAX_RANGE):
        results, error = await store.ingest_batch(
            wires[start : start + MAX_RANGE], net=NET, now_ms=NOW + 10**6
        )
        assert error is None and {r.status for r in results} == {"stored"}
    page = await store.range(PEER, 0, 10**9)
    assert page == wires[:MAX_RANGE]
    rest = await store.range(PEER, MAX_RANGE, 10**9)
    assert rest == wires[MAX_RANGE:]
    # bytes: as many whole entries as fit, and always the first one
    sizes = [len(w) for w in wires]
    fit = sizes[0] + sizes[1] + sizes[2]
    assert await store.range(PEER, 0, 100, max_bytes=fit) == wires[:3]
    assert await store.range(PEER, 0, 100, max_bytes=fit - 1) == wires[:2]
    assert await store.range(PEER, 5, 100, max_bytes=1) == wires[5:6]
    assert await store.range(PEER, 0, 2, max_bytes=10**9) == wires[:2]
    with pytest.raises(ValueError):
        await store.range(PEER, 0, 1, max_bytes=0)


async def test_concurrent_appends_neither_skip_nor_repeat_a_seq(store: FeedStore) -> None:
    made = await asyncio.gather(*(store.append_own(maker(n), now_ms=NOW) for n in range(10)))

    assert sorted(entry.seq for entry in made) == list(range(1, 11))
    wires = await store.range(AUTHOR, 0, 100)
    chain, head = protocol.verify_chain(wires, net=NET, now_ms=NOW)
    assert len(chain) == 10
    assert head is not None
    assert head.seq == 10
    assert sorted(entry.id for entry in chain) == sorted(entry.id for entry in made)
    assert await store.count() == 10


async def test_append_own_refuses_an_entry_that_is_not_next(store: FeedStore) -> None:
    await store.append_own(maker(1), now_ms=NOW)

    with pytest.raises(protocol.LocalProtocolError) as info:
        await store.append_own(lambda head: next(feed(PEER_KEY, 1)), now_ms=NOW)
    assert info.value.code is ErrorCode.WRONG_AUTHOR

    stale = protocol.append(None, note(9), kind=KIND, key=KEY, net=NET, now_ms=NOW)  # seq 1
    with pytest.raises(protocol.LocalProtocolError) as info:
        await store.append_own(lambda head: stale, now_ms=NOW)
    assert info.value.code is ErrorCode.SEQ_GAP
    assert await store.count() == 1


async def feed_rows(db: Database) -> int:
    """Rows in the head table, placeholders included (``heads()`` skips those)."""

    def count(conn: Connection) -> int:
        return conn.execute(select(func.count()).select_from(feeds)).scalar_one()

    return await db.read(count)


async def test_ingest_out_of_order_gap_then_fill(db: Database, store: FeedStore) -> None:
    peer = list(feed(PEER_KEY, 6))

    assert await store.ingest(peer[2].wire, net=NET, now_ms=NOW) == IngestResult(status="gap")
    assert await store.count() == 0
    assert await feed_rows(db) == 0  # no placeholder head left behind

    for entry in peer[:3]:
        result = await store.ingest(entry.wire, net=NET, now_ms=NOW)
        assert result == IngestResult(status="stored", entry=entry)
    assert (await store.ingest(peer[4].wire, net=NET, now_ms=NOW)).status == "gap"
    for entry in peer[3:]:
        assert (await store.ingest(entry.wire, net=NET, now_ms=NOW)).status == "stored"

    assert await store.heads() == {PEER: (6, peer[-1].id)}
    assert await store.head(PEER) == head_of(peer[-1], PEER_KEY)
    assert await store.range(PEER, 0, 10) == [entry.wire for entry in peer]


async def test_ingest_twice_is_a_no_op(store: FeedStore) -> None:
    peer = list(feed(PEER_KEY, 3))
    for entry in peer:
        await store.ingest(entry.wire, net=NET, now_ms=NOW)

    for entry in peer:  # the head and older entries alike
        again = await store.ingest(entry.wire, net=NET, now_ms=NOW + 5)
        assert again == IngestResult(status="duplicate")
    assert await store.count() == 3
    assert await store.heads() == {PEER: (3, peer[-1].id)}
    assert await store.forks() == []


async def test_concurrent_ingest_of_one_new_feed_stores_it_once(store: FeedStore) -> None:
    first = next(feed(PEER_KEY, 1))
    results = await asyncio.gather(
        *(store.ingest(first.wire, net=NET, now_ms=NOW) for _ in range(8))
    )
    assert sorted(result.status for result in results) == ["duplicate"] * 7 + ["stored"]
    assert await store.count() == 1


async def test_concurrent_ingest_in_any_order_converges(store: FeedStore) -> None:
    peer = list(feed(PEER_KEY, 12))
    shuffled = random.Random(7).sample(peer, len(peer))
    # Like several peers relaying the same feed: retry each gap after the others.
    pending = shuffled
    for _ in range(len(peer)):
        results = await asyncio.gather(
            *(store.ingest(entry.wire, net=NET, now_ms=NOW) for entry in pending)
        )
        pending = [e for e, r in zip(pending, results, strict=True) if r.status == "gap"]
        if not pending:
            break
    assert pending == []
    assert await store.range(PEER, 0, 100) == [entry.wire for entry in peer]


async def test_fork_is_kept_as_proof_and_stops_the_author(store: FeedStore) -> None:
    one, two = feed(PEER_KEY, 2)
    three = next(feed(PEER_KEY, 1, head=head_of(two, PEER_KEY), first=3))
    other_two = next(feed(PEER_KEY, 1, head=head_of(one, PEER_KEY), first=20))
    assert other_two.seq == 2 and other_two.id != two.id
    for entry in (one, two):
        await store.ingest(entry.wire, net=NET, now_ms=NOW)

    result = await store.ingest(other_two.wire, net=NET, now_ms=NOW + 7)

    assert result == IngestResult(status="fork", entry=other_two)
    assert await store.has_fork(PEER)
    assert not await store.has_fork(AUTHOR)
    [record] = await store.forks()
    assert (record.author, record.seq, record.found_ms) == (PEER, 2, NOW + 7)
    proof = protocol.verify_fork_proof(record.proof, net=NET, key=PEER)
    assert {proof.first.wire, proof.second.wire} == {two.wire, other_two.wire}
    assert await store.get(PEER, 2) == two.wire  # the first one stays in the feed

    # SPEC §4.2: further entries of a forked author are refused, and nothing changes.
    assert await store.ingest(three.wire, net=NET, now_ms=NOW) == IngestResult(status="fork")
    again = await store.ingest(other_two.wire, net=NET, now_ms=NOW + 9)
    assert again.status == "fork"
    assert await store.ingest(two.wire, net=NET, now_ms=NOW) == IngestResult(status="duplicate")
    assert [r.found_ms for r in await store.forks()] == [NOW + 7]
    assert await store.count() == 2
    assert await store.heads() == {PEER: (2, two.id)}


async def test_a_conflicting_entry_signed_by_another_key_is_invalid_not_a_fork(
    store: FeedStore,
) -> None:
    one, two = feed(PEER_KEY, 2)
    for entry in (one, two):
        await store.ingest(entry.wire, net=NET, now_ms=NOW)
    # A third party signs an entry that names PEER as its author: it must not frame PEER.
    framed = protocol.create_entry(
        key=PEER_NEW_KEY,
        net=NET,
        seq=2,
        prev=one.id,
        ts=NOW,
        content=note(66),
        kind=KIND,
        author=PEER,
    )
    with pytest.raises(protocol.RemoteProtocolError) as info:
        await store.ingest(framed.wire, net=NET, now_ms=NOW)
    assert info.value.code is ErrorCode.BAD_SIGNATURE
    assert await store.forks() == []
    assert not await store.has_fork(PEER)


def tampered(wire: bytes) -> bytes:
    return wire[:-1] + bytes([wire[-1] ^ 1])  # flip a bit of the signature


async def test_invalid_entries_raise_and_store_nothing(db: Database, store: FeedStore) -> None:
    one, two = feed(PEER_KEY, 2)

    with pytest.raises(protocol.RemoteProtocolError) as info:
        await store.ingest(tampered(one.wire), net=NET, now_ms=NOW)
    assert info.value.code is ErrorCode.BAD_SIGNATURE
    assert await store.count() == 0
    assert await feed_rows(db) == 0

    await store.ingest(one.wire, net=NET, now_ms=NOW)
    with pytest.raises(protocol.RemoteProtocolError) as info:
        await store.ingest(tampered(two.wire), net=NET, now_ms=NOW)
    assert info.value.code is ErrorCode.BAD_SIGNATURE

    with pytest.raises(protocol.RemoteProtocolError) as info:
        await store.ingest(two.wire, net=bytes(32), now_ms=NOW)
    assert info.value.code is ErrorCode.WRONG_NET

    with pytest.raises(protocol.RemoteProtocolError) as info:  # "retry later" (SPEC §4.3)
        await store.ingest(two.wire, net=NET, now_ms=NOW - protocol.MAX_CLOCK_SKEW_MS - 10)
    assert info.value.code is ErrorCode.TS_IN_FUTURE

    with pytest.raises(protocol.RemoteProtocolError) as info:
        await store.ingest(b"\x92\xc4\x00", net=NET, now_ms=NOW)
    assert info.value.code is ErrorCode.MALFORMED

    assert await store.count() == 1
    assert await store.heads() == {PEER: (1, one.id)}


async def test_key_rotation_is_honoured(store: FeedStore) -> None:
    one, two = feed(PEER_KEY, 2)
    rotation = protocol.rotate_key(
        head_of(two, PEER_KEY),
        key=PEER_KEY,
        new_key=PEER_NEW_KEY,
        net=NET,
        now_ms=NOW + 3,
        reason="scheduled",
    )
    after = protocol.head_after(head_of(two, PEER_KEY), rotation)
    four, five = feed(PEER_NEW_KEY, 2, head=after, first=4)
    old_key_four = protocol.create_entry(
        key=PEER_KEY,
        net=NET,
        seq=4,
        prev=rotation.id,
        ts=NOW + 4,
        content=note(4),
        kind=KIND,
        author=PEER,
    )

    for entry in (one, two, rotation):
        assert (await store.ingest(entry.wire, net=NET, now_ms=NOW)).status == "stored"
    with pytest.raises(protocol.RemoteProtocolError) as info:
        await store.ingest(old_key_four.wire, net=NET, now_ms=NOW)
    assert info.value.code is ErrorCode.BAD_SIGNATURE
    for entry in (four, five):
        assert (await store.ingest(entry.wire, net=NET, now_ms=NOW)).status == "stored"
    head = await store.head(PEER)
    assert head is not None
    assert head.key == protocol.public_key(PEER_NEW_KEY)
    assert head.seq == 5

    # A fork after the rotation is judged with the key valid at that seq.
    other_four = next(feed(PEER_NEW_KEY, 1, head=after, first=40))
    result = await store.ingest(other_four.wire, net=NET, now_ms=NOW)
    assert result.status == "fork"
    [record] = await store.forks()
    new_public = protocol.public_key(PEER_NEW_KEY)
    protocol.verify_fork_proof(record.proof, net=NET, key=new_public)
    with pytest.raises(protocol.RemoteProtocolError):
        protocol.verify_fork_proof(record.proof, net=NET, key=PEER)

    # Before the rotation, the old key is the one that counts.
    other_two = next(feed(PEER_KEY, 1, head=head_of(one, PEER_KEY), first=20))
    assert (await store.ingest(other_two.wire, net=NET, now_ms=NOW)).status == "fork"
    proofs = {record.seq: record.proof for record in await store.forks()}
    protocol.verify_fork_proof(proofs[2], net=NET, key=PEER)


async def test_our_own_feed_rotates_too(store: FeedStore) -> None:
    await store.append_own(maker(1), now_ms=NOW)

    def rotate(head: FeedHead | None) -> Entry:
        assert head is not None
        return protocol.rotate_key(
            head, key=KEY, new_key=PEER_NEW_KEY, net=NET, now_ms=NOW, reason="scheduled"
        )

    await store.append_own(rotate, now_ms=NOW)
    with pytest.raises(protocol.LocalProtocolError) as info:
        await store.append_own(maker(3), now_ms=NOW)  # the old key no longer signs
    assert info.value.code is ErrorCode.BAD_KEY
    third = await store.append_own(maker(3, key=PEER_NEW_KEY), now_ms=NOW)
    assert third.seq == 3
    protocol.verify_chain(await store.range(AUTHOR, 0, 10), net=NET, now_ms=NOW)


class PowerCut(Exception):
    """Stands in for a crash: raised where the process would have died."""


async def test_crash_while_making_the_entry_leaves_nothing(store: FeedStore) -> None:
    await store.append_own(maker(1), now_ms=NOW)
    seen: list[FeedHead | None] = []

    def make(head: FeedHead | None) -> Entry:
        seen.append(head)
        raise PowerCut

    with pytest.raises(PowerCut):
        await store.append_own(make, now_ms=NOW)
    assert seen and seen[0] is not None and seen[0].seq == 1
    assert await store.count() == 1
    assert (await store.append_own(maker(2), now_ms=NOW)).seq == 2


async def test_crash_on_an_empty_feed_leaves_no_placeholder(db: Database, store: FeedStore) -> None:
    def make(head: FeedHead | None) -> Entry:
        raise PowerCut

    with pytest.raises(PowerCut):
        await store.append_own(make, now_ms=NOW)
    assert await feed_rows(db) == 0
    assert await store.head(AUTHOR) is None


async def test_crash_between_insert_and_head_update_leaves_nothing(
    store: FeedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.append_own(maker(1), now_ms=NOW)

    def set_head(conn: Connection, head: FeedHead) -> None:
        inserted = entries.c.author == head.author, entries.c.seq == head.seq
        assert conn.execute(select(entries.c.seq).where(*inserted)).first()  # it is in
        raise PowerCut

    monkeypatch.setattr(_feeds, "_set_head", set_head)
    with pytest.raises(PowerCut):
        await store.append_own(maker(2), now_ms=NOW)
    with pytest.raises(PowerCut):
        await store.ingest(next(feed(PEER_KEY, 1)).wire, net=NET, now_ms=NOW)
    monkeypatch.undo()

    assert await store.count() == 1
    assert (await store.head(AUTHOR) or pytest.fail("no head")).seq == 1
    assert await store.get(AUTHOR, 2) is None
    assert await store.head(PEER) is None
    assert (await store.append_own(maker(2), now_ms=NOW)).seq == 2


async def test_crash_just_before_commit_leaves_nothing(db: Database, store: FeedStore) -> None:
    await store.append_own(maker(1), now_ms=NOW)

    def power_cut(conn: Connection) -> None:
        raise PowerCut

    event.listen(db.engine.sync_engine, "commit", power_cut)
    try:
        with pytest.raises(PowerCut):
            await store.append_own(maker(2), now_ms=NOW)
    finally:
        event.remove(db.engine.sync_engine, "commit", power_cut)

    assert await store.count() == 1
    assert await store.get(AUTHOR, 2) is None
    assert await store.heads() == {AUTHOR: (1, (await store.head(AUTHOR) or pytest.fail()).id)}
    assert (await store.append_own(maker(2), now_ms=NOW)).seq == 2


async def test_stored_bytes_are_exactly_the_received_wire(db: Database, store: FeedStore) -> None:
    own = await store.append_own(maker(1), now_ms=NOW)
    peer = next(feed(PEER_KEY, 1))
    await store.ingest(memoryview(peer.wire), net=NET, now_ms=NOW + 1)  # type: ignore[arg-type]

    def rows(conn: Connection) -> list[Any]:
        return list(conn.execute(select(entries).order_by(entries.c.received_ms)))

    stored = await db.read(rows)
    assert [bytes(row.wire) for row in stored] == [own.wire, peer.wire]
    assert [bytes(row.id) for row in stored] == [own.id, peer.id]
    assert [(row.seq, row.kind, row.ts, row.received_ms) for row in stored] == [
        (1, KIND, own.ts, NOW),
        (1, KIND, peer.ts, NOW + 1),
    ]
    assert all(row.prev is None for row in stored)

    def head_rows(conn: Connection) -> list[Any]:
        return list(conn.execute(select(feeds)))

    assert len(await db.read(head_rows)) == 2


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:hunter2pw@localhost/watan",
        "postgres://root:hunter2pw@localhost/watan",
        "postgresql://root:hunter2pw@localhost/watan?sslmode=require",
        "postgresql://root:hunter2pw@localhost",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite://user:hunter2pw@host/watan.db",
        "not a url hunter2pw",
        "",
    ],
)
def test_bad_url(url: str) -> None:
    with pytest.raises(StorageError) as info:
        Database.from_url(url)
    assert info.value.code is StorageErrorCode.BAD_URL
    assert "sqlite:///PATH" in info.value.message
    assert "hunter2pw" not in str(info.value) + repr(info.value)


async def test_unreachable_postgres_names_the_reason_but_not_the_password() -> None:
    db = Database.from_url("postgresql://watan:hunter2pw@127.0.0.1:1/watan")
    assert "hunter2pw" not in repr(db)
    try:
        with pytest.raises(StorageError) as info:
            await db.ping()
        assert info.value.code is StorageErrorCode.UNREACHABLE
        text_ = str(info.value) + repr(info.value)
        assert "hunter2pw" not in text_
        assert "127.0.0.1:1" in text_
        with pytest.raises(StorageError) as info:
            await FeedStore(db, own=AUTHOR).count()
        assert info.value.code is StorageErrorCode.UNREACHABLE
        assert "hunter2pw" not in str(info.value)
    finally:
        await db.close()


async def test_sqlite_connections_are_durable_and_checked(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'watan.db'}")

    def pragmas(conn: Connection) -> list[Any]:
        names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        return [conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names]

    try:
        # synchronous 2 is FULL; see _db._SQLITE_PRAGMAS for why not NORMAL.
        assert await db.read(pragmas) == ["wal", 2, 1, SQLITE_BUSY_TIMEOUT_MS]
        assert await db.write(pragmas) == ["wal", 2, 1, SQLITE_BUSY_TIMEOUT_MS]
    finally:
        await db.close()


async def test_missing_sqlite_directory_is_unreachable(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'missing' / 'watan.db'}")
    try:
        with pytest.raises(StorageError) as info:
            await db.ping()
        assert info.value.code is StorageErrorCode.UNREACHABLE
        assert "does not exist" in info.value.message
    finally:
        await db.close()


async def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "watan.db"
    path.write_bytes(b"this is not a SQLite database, just a stray file " * 100)
    db = Database.from_url(f"sqlite:///{path}")
    try:
        with pytest.raises(StorageError) as info:
            await db.ping()
        assert info.value.code is StorageErrorCode.UNREACHABLE
        assert "not a database" in info.value.message
        with pytest.raises(StorageError) as info:
            await FeedStore(db, own=AUTHOR).count()
        assert info.value.code is StorageErrorCode.CORRUPT
    finally:
        await db.close()


async def test_a_cancelled_writer_still_commits_and_frees_the_lock(db: Database) -> None:
    """A caller cancelled mid-transaction (a peer that hung up) does not leave the
    transaction, or SQLite's write lock, held: it runs to its commit, and the next
    writers, many at a time in one process, all get their turn. (With aiosqlite the
    commit already reached the driver's thread survives even an unshielded cancel, so
    this checks the behaviour, not that ``Database.write`` shields.)"""
    await db.upgrade()
    caller: list[asyncio.Task[None]] = []

    def cancelled_inside(conn: Connection) -> None:
        conn.execute(node_state.insert().values(key="slow", value="done"))
        caller[0].cancel()  # delivered at the caller's next await: the commit's

    caller.append(asyncio.create_task(db.write(cancelled_inside)))
    with pytest.raises(asyncio.CancelledError):
        await caller[0]

    def put(conn: Connection, key: str) -> None:
        conn.execute(node_state.insert().values(key=key, value="x"))

    await asyncio.gather(*(db.write(put, f"k{i}") for i in range(50)))
    count = await db.read(
        lambda conn: conn.execute(select(func.count()).select_from(node_state)).scalar_one()
    )
    value = await db.read(
        lambda conn: conn.execute(
            select(node_state.c.value).where(node_state.c.key == "slow")
        ).scalar_one_or_none()
    )
    assert (value, count) == ("done", 51)


async def test_a_batch_stores_a_run_then_entry_by_entry_and_stops_at_the_invalid(
    db: Database, store: FeedStore
) -> None:
    """ingest_batch verifies a feed's next entries before its transaction and stores
    them at once; what follows another feed's run, and an invalid entry, are handled
    as ingest would, and nothing after the invalid entry is stored."""
    peer = list(feed(PEER_KEY, 6))
    mine = list(feed(KEY, 2))
    forged = protocol.create_entry(
        key=KEY,
        net=NET,
        seq=4,
        prev=peer[2].id,
        ts=NOW + 4,
        content=note(4),
        kind=KIND,
        author=PEER,
    )
    wires = [e.wire for e in peer[:3]] + [mine[0].wire, forged.wire, mine[1].wire]
    results, error = await store.ingest_batch(wires, net=NET, now_ms=NOW)
    assert [r.status for r in results] == ["stored"] * 4
    assert [r.entry for r in results] == [*peer[:3], mine[0]]
    assert error is not None and error.code is ErrorCode.BAD_SIGNATURE
    assert await store.heads() == {PEER: (3, peer[2].id), AUTHOR: (1, mine[0].id)}

    # The rest of the feed, with an invalid entry inside the run: its prefix is kept.
    bad = bytearray(peer[4].wire)
    bad[-1] ^= 1
    results, error = await store.ingest_batch(
        [peer[3].wire, bytes(bad), peer[5].wire], net=NET, now_ms=NOW
    )
    assert [r.status for r in results] == ["stored"]
    assert error is not None
    assert await store.range(PEER, 0, 10) == [e.wire for e in peer[:4]]
    assert await feed_rows(db) == 2


async def test_a_batch_whose_head_moved_after_verifying_is_stored_entry_by_entry(
    store: FeedStore,
) -> None:
    """The run is verified against the head read before the write transaction; if
    another writer stored the first entry meanwhile, the batch is judged again entry
    by entry inside the transaction: a duplicate, then the rest stored once."""
    peer = list(feed(PEER_KEY, 4))
    wires = [e.wire for e in peer]
    run = await store._verified_run(wires, NET, NOW)
    assert run is not None and len(run.entries) == 4
    assert (await store.ingest(wires[0], net=NET, now_ms=NOW)).status == "stored"
    results, error = await store._db.write(store._ingest_batch_txn, wires, NET, NOW, run)
    assert error is None
    assert [r.status for r in results] == ["duplicate", "stored", "stored", "stored"]
    assert await store.count() == 4
    assert await store.range(PEER, 0, 10) == wires


async def test_a_batch_across_a_key_rotation_checks_each_entry_under_its_key(
    store: FeedStore,
) -> None:
    one, two = feed(PEER_KEY, 2)
    rotation = protocol.rotate_key(
        head_of(two, PEER_KEY),
        key=PEER_KEY,
        new_key=PEER_NEW_KEY,
        net=NET,
        now_ms=NOW + 3,
        reason="scheduled",
    )
    after = protocol.head_after(head_of(two, PEER_KEY), rotation)
    four = next(feed(PEER_NEW_KEY, 1, head=after, first=4))
    old_key_five = protocol.create_entry(
        key=PEER_KEY,
        net=NET,
        seq=5,
        prev=four.id,
        ts=NOW + 5,
        content=note(5),
        kind=KIND,
        author=PEER,
    )
    wires = [one.wire, two.wire, rotation.wire, four.wire, old_key_five.wire]
    results, error = await store.ingest_batch(wires, net=NET, now_ms=NOW)
    assert [r.status for r in results] == ["stored"] * 4
    assert error is not None and error.code is ErrorCode.BAD_SIGNATURE
    head = await store.head(PEER)
    assert head is not None and head.seq == 4 and head.key == protocol.public_key(PEER_NEW_KEY)


async def test_prepared_batches_that_follow_each_other_are_stored_as_one(
    store: FeedStore,
) -> None:
    """A replicator joins consecutive verified ranges (PreparedBatch.then) into one
    transaction; a range that does not follow a whole one is not joined."""
    wires = [e.wire for e in feed(PEER_KEY, 9)]
    first = await store.prepare_batch(wires[:4], net=NET, now_ms=NOW + 10**6)
    assert first.end != "stored"
    second = await store.prepare_batch(wires[4:], net=NET, now_ms=NOW + 10**6, after=first.end)
    joined = first.then(second)
    assert joined is not None and joined.wires == wires and joined.end == second.end
    results, error = await store.store_batch(joined)
    assert error is None and [r.status for r in results] == ["stored"] * 9
    assert await store.range(PEER, 0, 100) == wires
    # not joined: a range prepared against another head, or after a partial one
    stale = await store.prepare_batch(wires[4:], net=NET, now_ms=NOW + 10**6)
    assert first.then(stale) is None  # prepared against the stored head, not first's end
    broken = [*wires[:3], wires[3][:-1] + bytes([wires[3][-1] ^ 1])]
    partial = await store.prepare_batch(broken, net=NET, now_ms=NOW + 10**6, after=None)
    assert partial.end == "stored" and partial.then(second) is None
    others = await store.prepare_batch(
        [e.wire for e in feed(KEY, 2)], net=NET, now_ms=NOW + 10**6, after=None
    )
    assert first.then(others) is None  # another feed


async def test_a_joined_batch_with_an_invalid_entry_keeps_what_came_before_it(
    store: FeedStore,
) -> None:
    wires = [e.wire for e in feed(PEER_KEY, 8)]
    wires[6] = wires[6][:-1] + bytes([wires[6][-1] ^ 1])
    first = await store.prepare_batch(wires[:4], net=NET, now_ms=NOW + 10**6)
    second = await store.prepare_batch(wires[4:], net=NET, now_ms=NOW + 10**6, after=first.end)
    joined = first.then(second)
    assert joined is not None
    results, error = await store.store_batch(joined)
    assert [r.status for r in results] == ["stored"] * 6
    assert error is not None and error.code is ErrorCode.BAD_SIGNATURE
    head = await store.head(PEER)
    assert head is not None and head.seq == 6


async def test_insert_rows_on_both_backends(db: Database) -> None:
    """node.storage.insert_rows: the rows as given, conflicts skipped when asked (or
    refused as any insert's), one column or many, unknown columns named."""
    await db.upgrade()
    rows = [{"key": f"k{n}", "value": f"v{n}"} for n in range(3)]

    def write(conn: Connection, table: Any, batch: list[dict[str, Any]], ignore: bool) -> None:
        insert_rows(conn, table, batch, ignore_conflicts=ignore)

    def read(conn: Connection) -> dict[str, str]:
        return {r.key: r.value for r in conn.execute(select(node_state))}

    def placeholders(conn: Connection) -> list[bytes]:
        query = select(feeds.c.author).where(feeds.c.seq.is_(None)).order_by(feeds.c.author)
        return [bytes(author) for author in conn.execute(query).scalars()]

    await db.write(write, node_state, rows, False)
    await db.write(
        write, node_state, [{"key": "k0", "value": "x"}, {"key": "k9", "value": "y"}], True
    )
    await db.write(write, node_state, [], False)
    held = await db.read(read)
    assert {k: held[k] for k in ("k0", "k1", "k2", "k9")} == {
        "k0": "v0",
        "k1": "v1",
        "k2": "v2",
        "k9": "y",
    }
    with pytest.raises(StorageError) as refused:
        await db.write(write, node_state, [{"key": "k1", "value": "again"}], False)
    assert refused.value.code is StorageErrorCode.CONFLICT
    with pytest.raises(KeyError, match="no column 'nope'"):
        await db.write(write, node_state, [{"key": "x", "nope": "1"}], False)
    assert (await db.read(read))["k1"] == "v1"
    # one column: the others take their defaults (here NULL)
    authors = [bytes([n]) * 32 for n in (1, 2)]
    await db.write(write, feeds, [{"author": a} for a in authors], False)
    assert await db.read(placeholders) == authors


async def test_close_waits_for_a_write_whose_caller_was_cancelled(db: Database) -> None:
    """A shielded write outlives its cancelled caller; close() must let it finish
    rather than dispose of the engine under it (its connection would be left open,
    and it would commit after close returned)."""
    await db.upgrade()
    started = asyncio.Event()
    finished: list[bool] = []

    def slow(conn: Connection) -> None:
        started.set()  # run_sync runs this on the event loop's thread
        for index in range(200):  # each statement waits for the driver
            conn.execute(node_state.insert().values(key=f"late{index}", value="kept"))
        finished.append(True)

    caller = asyncio.create_task(db.write(slow))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not finished  # the caller is gone, its transaction is not
    await db.close()
    assert finished  # close waited for it
    count = await db.read(
        lambda conn: conn.execute(select(func.count()).select_from(node_state)).scalar_one()
    )
    assert count >= 200
