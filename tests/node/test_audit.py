"""The audit log: chain, head, tampering, queries and concurrent writers, on both
backends."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection

from node.audit import GENESIS, MAX_QUERY, AuditLog, canonical_details, chain_hash
from node.storage import Database
from node.storage._schema import audit_head, audit_log

from .conftest import NOW


@pytest.fixture
async def log(db: Database) -> AuditLog:
    await db.upgrade()
    return AuditLog(db)


async def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        await log.record(
            i % 3 or None, f"test.action{i % 2}", f"account:{i}", {"n": i}, now_ms=NOW + i * 1000
        )


async def test_an_empty_log_verifies(log: AuditLog) -> None:
    report = await log.verify()
    assert (report.ok, report.rows, report.first_bad_seq) == (True, 0, None)
    assert await log.head() == (0, GENESIS)


async def test_rows_chain_and_the_head_follows(log: AuditLog) -> None:
    first = await log.record(None, "node.start", None, {}, now_ms=NOW)
    second = await log.record(3, "account.disable", "account:4", {"x": "عربي"}, now_ms=NOW + 1)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert second.seq == 2 and second.prev_hash == first.hash
    assert second.details == '{"x":"عربي"}'
    assert second.hash == chain_hash(
        first.hash,
        seq=2,
        ts_ms=NOW + 1,
        actor=3,
        action="account.disable",
        target="account:4",
        details='{"x":"عربي"}',
    )
    assert await log.head() == (2, second.hash)


async def test_many_rows_verify(log: AuditLog) -> None:
    await fill(log, 40)
    report = await log.verify()
    assert (report.ok, report.rows) == (True, 40)


def test_details_are_canonical_and_flat() -> None:
    assert canonical_details({"b": 1, "a": True, "c": None}) == '{"a":true,"b":1,"c":null}'
    for bad in ({"a": 1.5}, {"a": {"nested": 1}}, {"a": [1]}, {1: "x"}):
        with pytest.raises(ValueError):
            canonical_details(bad)  # type: ignore[arg-type]


async def test_record_refuses_a_bad_action(log: AuditLog) -> None:
    for action in ("", "x" * 65):
        with pytest.raises(ValueError):
            await log.record(None, action, None, {}, now_ms=NOW)
    assert await log.head() == (0, GENESIS)


async def test_a_rolled_back_transaction_leaves_no_row(db: Database, log: AuditLog) -> None:
    def failing(conn: Connection) -> None:
        log.record_txn(conn, None, "x.y", None, {}, now_ms=NOW)
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await db.write(failing)
    assert await log.head() == (0, GENESIS)
    assert (await log.verify()).ok


async def tamper(db: Database, sql: str) -> None:
    def run(conn: Connection) -> None:
        conn.execute(text(sql))

    await db.write(run)


async def test_a_changed_field_is_detected(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    await tamper(db, "UPDATE audit_log SET target = 'account:99' WHERE seq = 5")
    report = await log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert report.reason == "row 5 was changed"


async def test_a_changed_timestamp_is_detected(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    await tamper(db, "UPDATE audit_log SET ts_ms = ts_ms + 1 WHERE seq = 1")
    assert (await log.verify()).first_bad_seq == 1


async def test_a_deleted_middle_row_is_detected(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    await tamper(db, "DELETE FROM audit_log WHERE seq = 6")
    report = await log.verify()
    assert (report.ok, report.first_bad_seq, report.reason) == (False, 6, "row 6 is missing")


async def test_swapped_rows_are_detected(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    await tamper(db, "UPDATE audit_log SET seq = 100 WHERE seq = 3")
    await tamper(db, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    await tamper(db, "UPDATE audit_log SET seq = 4 WHERE seq = 100")
    report = await log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 3)


async def test_a_truncated_tail_is_detected_by_the_head(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    await tamper(db, "DELETE FROM audit_log WHERE seq >= 9")
    report = await log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 10)


async def rehash_from(db: Database, k: int, *, with_head: bool) -> None:
    """An attacker rewrites row k and recomputes every later hash."""

    def run(conn: Connection) -> None:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
        prev = bytes(rows[k - 2].hash) if k > 1 else GENESIS
        for row in rows[k - 1 :]:
            details = '{"n":-1}' if row.seq == k else row.details
            new = chain_hash(
                prev,
                seq=row.seq,
                ts_ms=row.ts_ms,
                actor=row.actor,
                action=row.action,
                target=row.target,
                details=details,
            )
            conn.execute(
                update(audit_log)
                .where(audit_log.c.seq == row.seq)
                .values(details=details, prev_hash=prev, hash=new)
            )
            prev = new
        if with_head:
            conn.execute(update(audit_head).values(hash=prev))

    await db.write(run)


async def test_a_rehashed_tail_is_detected_by_the_head(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    await rehash_from(db, 4, with_head=False)
    report = await log.verify()
    # The chain is self-consistent: only the head shows it, and it cannot say where.
    assert (report.ok, report.first_bad_seq) == (False, 10)
    assert report.reason is not None and "re-hashed" in report.reason


async def test_rewriting_the_head_too_needs_an_external_anchor(db: Database, log: AuditLog) -> None:
    await fill(log, 10)
    anchor = await log.head()
    seven = (await log.query(before_seq=8, limit=1))[0]
    await rehash_from(db, 4, with_head=True)
    # The documented limit: the database alone cannot catch a full rewrite...
    assert (await log.verify()).ok
    # ...but an anchor kept elsewhere does, at or after the first rewritten row.
    report = await log.verify(anchors=[(7, seven.hash)])
    assert (report.ok, report.first_bad_seq) == (False, 7)
    assert not (await log.verify(anchors=[anchor])).ok
    # An anchor past the end of the chain means rows were removed.
    report = await log.verify(anchors=[(11, b"\x01" * 32)])
    assert (report.ok, report.first_bad_seq) == (False, 11)


async def test_anchors_that_match_pass(log: AuditLog) -> None:
    await fill(log, 5)
    assert (await log.verify(anchors=[await log.head()])).ok


async def test_concurrent_writers_get_consecutive_seqs(log: AuditLog) -> None:
    records = await asyncio.gather(
        *(log.record(i, "test.concurrent", None, {"i": i}, now_ms=NOW) for i in range(10))
    )
    assert sorted(r.seq for r in records) == list(range(1, 11))
    report = await log.verify()
    assert (report.ok, report.rows) == (True, 10)


async def test_query_filters_and_pages(log: AuditLog) -> None:
    await fill(log, 12)
    rows = await log.query()
    assert [r.seq for r in rows] == list(range(12, 0, -1))
    assert {r.action for r in await log.query(action="test.action1")} == {"test.action1"}
    assert [r.seq for r in await log.query(action="test.action1", limit=2)] == [12, 10]
    assert {r.actor for r in await log.query(actor=1)} == {1}
    assert [r.seq for r in await log.query(since_ms=NOW + 3000, until_ms=NOW + 6000)] == [6, 5, 4]
    assert [r.seq for r in await log.query(before_seq=3)] == [2, 1]
    assert json.loads((await log.query(limit=1))[0].details) == {"n": 11}
    with pytest.raises(ValueError):
        await log.query(limit=0)


async def test_query_caps_the_page(log: AuditLog) -> None:
    await fill(log, MAX_QUERY + 1)
    assert len(await log.query(limit=10_000)) == MAX_QUERY
