"""The allocation index (``node.ataa._allocations``): filled as entries are stored, ours
and peers', voids applied to the same author's allocations only, and a backfill for
entries stored without it; and the reports built on it, with their CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Connection

import protocol
from node.ataa import (
    AllocationError,
    AllocationErrorCode,
    ReportRow,
    ReportService,
    backfill,
    install,
    to_csv,
)
from node.storage import Database, FeedStore
from node.storage._schema import ataa_allocations

from .allocation_helpers import THIRD_KEY, TODAY, Feed, allocation, ingest, value
from .conftest import AUTHOR, KEY, NET, NOW, PEER, PEER_KEY


async def indexed(db: Database) -> dict[tuple[bytes, int], dict[str, Any]]:
    def read(conn: Connection) -> dict[tuple[bytes, int], dict[str, Any]]:
        rows = conn.execute(select(ataa_allocations)).mappings()
        return {(bytes(r["author"]), r["seq"]): dict(r) for r in rows}

    return await db.read(read)


async def own_append(store: FeedStore, body: protocol.Body) -> protocol.Entry:
    return await store.append_own(
        lambda head: protocol.append(head, body, key=KEY, net=NET, now_ms=NOW), now_ms=NOW
    )


@pytest.fixture
async def store(db: Database) -> FeedStore:
    await db.upgrade()
    made = FeedStore(db, own=AUTHOR)
    install(made)
    return made


async def test_own_append_and_peer_ingest_fill_the_index(db: Database, store: FeedStore) -> None:
    ours = await own_append(store, allocation(value("a"), category="cash", unit="transfer"))
    peer = Feed(PEER_KEY)
    profile_like = peer.append(protocol.Vouch(peer=AUTHOR, stance="vouch"))  # not indexed
    theirs = peer.append(allocation(value("a"), value_iqd=75_000, date="2026-05-01"))
    await ingest(store, profile_like, theirs)

    rows = await indexed(db)
    assert set(rows) == {(AUTHOR, 1), (PEER, 2)}
    assert rows[(AUTHOR, 1)] == {
        "author": AUTHOR,
        "seq": 1,
        "entry_id": ours.id,
        "pseudonym": value("a"),
        "epoch": 1,
        "category": "cash",
        "unit": "transfer",
        "quantity": 2,
        "value_iqd": 50_000,
        "program": "winter-2026",
        "date": TODAY,
        "district": "IQG08Q05",
        "void_reason": None,
        "void_seq": None,
    }
    assert rows[(PEER, 2)]["entry_id"] == theirs.id
    assert rows[(PEER, 2)]["value_iqd"] == 75_000
    assert rows[(PEER, 2)]["date"] == "2026-05-01"


def test_the_index_reads_every_field_an_allocation_has() -> None:
    """index_entries reads an allocation's fields from its content by name (no body
    built): the names must stay those of the kind, and a new field needs a decision."""
    from node.ataa._allocations import _INDEXED_FIELDS

    assert set(_INDEXED_FIELDS) == set(protocol.Allocation.CHECKS)
    entry = Feed(PEER_KEY).append(allocation(value("z")))
    body = entry.body
    assert isinstance(body, protocol.Allocation)
    assert {name: entry.content.get(name) for name in _INDEXED_FIELDS} == {
        name: getattr(body, name) for name in _INDEXED_FIELDS
    }


async def test_batch_ingest_indexes_each_entry(db: Database, store: FeedStore) -> None:
    peer = Feed(PEER_KEY)
    made = [peer.append(allocation(value(str(n)), quantity=n)) for n in range(1, 6)]
    results, error = await store.ingest_batch([e.wire for e in made], net=NET, now_ms=NOW)
    assert error is None and [r.status for r in results] == ["stored"] * 5
    rows = await indexed(db)
    assert [rows[(PEER, n)]["quantity"] for n in range(1, 6)] == [1, 2, 3, 4, 5]

    again, _ = await store.ingest_batch([made[0].wire], net=NET, now_ms=NOW)
    assert again[0].status == "duplicate"
    assert len(await indexed(db)) == 5


async def test_a_void_marks_its_own_authors_allocation(db: Database, store: FeedStore) -> None:
    peer = Feed(PEER_KEY)
    first = peer.append(allocation(value("a")))
    second = peer.append(allocation(value("b")))
    void = peer.append(protocol.AllocationVoid(allocation=first.id, reason="returned"))
    again = peer.append(protocol.AllocationVoid(allocation=first.id, reason="duplicate"))
    await ingest(store, first, second, void, again)

    rows = await indexed(db)
    assert (rows[(PEER, 1)]["void_reason"], rows[(PEER, 1)]["void_seq"]) == ("returned", 3)
    assert rows[(PEER, 2)]["void_reason"] is None  # the second void kept the first's reason


async def test_a_void_of_another_feeds_allocation_is_ignored(
    db: Database, store: FeedStore, caplog: pytest.LogCaptureFixture
) -> None:
    peer, third = Feed(PEER_KEY), Feed(THIRD_KEY)
    theirs = peer.append(allocation(value("a")))
    await ingest(store, theirs)
    foreign = third.append(protocol.AllocationVoid(allocation=theirs.id, reason="duplicate"))
    unknown = third.append(protocol.AllocationVoid(allocation=bytes(32), reason="returned"))
    caplog.set_level("INFO", logger="node.ataa._allocations")
    await ingest(store, foreign, unknown)  # stored all the same: the feed is valid

    assert (await indexed(db))[(PEER, 1)]["void_reason"] is None
    ignored = [r for r in caplog.records if getattr(r, "event", "") == "ataa.index.void_ignored"]
    assert [r.seq for r in ignored] == [1, 2]  # type: ignore[attr-defined]
    assert all(value("a").hex() not in r.getMessage() for r in caplog.records)


async def test_backfill_indexes_what_was_stored_without_the_index(db: Database) -> None:
    await db.upgrade()
    plain = FeedStore(db, own=AUTHOR)  # a node before 0005: no indexer
    peer = Feed(PEER_KEY)
    made = [peer.append(allocation(value(str(n)))) for n in range(3)]
    made.append(peer.append(protocol.AllocationVoid(allocation=made[1].id, reason="returned")))
    await ingest(plain, *made)
    await plain.append_own(
        lambda head: protocol.append(head, allocation(value("ours")), key=KEY, net=NET, now_ms=NOW),
        now_ms=NOW,
    )
    assert await indexed(db) == {}

    assert await backfill(db) == 5  # four allocations and one void
    rows = await indexed(db)
    assert set(rows) == {(PEER, 1), (PEER, 2), (PEER, 3), (AUTHOR, 1)}
    assert rows[(PEER, 2)]["void_reason"] == "returned"
    assert rows[(PEER, 2)]["void_seq"] == 4

    assert await backfill(db) == 0  # idempotent
    assert await indexed(db) == rows


async def test_backfill_goes_past_one_batch(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("node.ataa._allocations._BACKFILL_BATCH", 3)
    await db.upgrade()
    plain = FeedStore(db, own=AUTHOR)
    peer, third = Feed(PEER_KEY), Feed(THIRD_KEY)
    await ingest(plain, *[peer.append(allocation(value(f"p{n}"))) for n in range(4)])
    await ingest(plain, *[third.append(allocation(value(f"t{n}"))) for n in range(3)])
    assert await backfill(db) == 7
    assert len(await indexed(db)) == 7
    assert await backfill(db) == 0


# -- reports --------------------------------------------------------------------------


async def test_reports_total_own_and_federation_allocations(db: Database, store: FeedStore) -> None:
    peer = Feed(PEER_KEY)
    await own_append(store, allocation(value("a"), date="2026-04-02"))
    await own_append(store, allocation(value("b"), date="2026-04-20", value_iqd=70_000))
    await own_append(store, allocation(value("a"), date="2026-05-03", quantity=5))
    voided = await own_append(store, allocation(value("c"), date="2026-05-04"))
    await own_append(store, protocol.AllocationVoid(allocation=voided.id, reason="returned"))
    await own_append(store, allocation(value("c"), category="cash", unit="transfer"))
    await ingest(store, peer.append(allocation(value("a"), date="2026-04-09")))
    reports = ReportService(db, own=AUTHOR)

    by_month = await reports.own_totals(by=["category", "month"])
    assert by_month == [
        ReportRow(category="cash", month="2026-05", unit="transfer", count=1, households=1,
                  quantity=2, value_iqd=50_000),
        ReportRow(category="food", month="2026-04", unit="basket", count=2, households=2,
                  quantity=4, value_iqd=120_000),
        ReportRow(category="food", month="2026-05", unit="basket", count=1, households=1,
                  quantity=5, value_iqd=50_000),
    ]  # fmt: skip
    april = await reports.own_totals(since="2026-04-01", until="2026-04-30", by=["program"])
    assert [(r.program, r.count, r.households) for r in april] == [("winter-2026", 2, 2)]

    everyone = await reports.federation_totals(by=["author", "category"], since="2026-04-01")
    assert [(r.author, r.category, r.count, r.households) for r in everyone] == sorted(
        [(AUTHOR, "cash", 1, 1), (AUTHOR, "food", 3, 2), (PEER, "food", 1, 1)]
    )
    full = await reports.own_totals()
    assert {(r.program, r.district, r.category, r.month) for r in full} == {
        ("winter-2026", "IQG08Q05", "cash", "2026-05"),
        ("winter-2026", "IQG08Q05", "food", "2026-04"),
        ("winter-2026", "IQG08Q05", "food", "2026-05"),
    }

    for since, until in (("2026-13-01", None), ("2026-5-01", None), ("2026-05-02", "2026-05-01")):
        with pytest.raises(AllocationError) as info:
            await reports.own_totals(since=since, until=until)
        assert info.value.code is AllocationErrorCode.INVALID
    with pytest.raises(AllocationError):
        await reports.own_totals(by=["name"])  # type: ignore[list-item]


def test_csv_has_a_bom_crlf_and_defuses_formulas() -> None:
    rows = [
        ReportRow(program="=HYPERLINK(\"x\")", district="IQG08Q05", unit="kg", count=1,
                  households=1, quantity=3, value_iqd=0),
        ReportRow(program="برنامج", district="+1", unit="kg", count=2, households=2,
                  quantity=4, value_iqd=10),
        ReportRow(author=b"\x01\x02", program="@SUM", district="-2", unit="kg", count=1,
                  households=1, quantity=1, value_iqd=1),
    ]  # fmt: skip
    text = to_csv(rows)
    assert text.startswith("\ufeffauthor,program,district,unit,count,")
    assert text.encode("utf-8")[:3] == b"\xef\xbb\xbf"
    lines = text[1:].split("\r\n")
    assert lines[1] == ',"\'=HYPERLINK(""x"")",IQG08Q05,kg,1,1,3,0'
    assert lines[2] == ",برنامج,'+1,kg,2,2,4,10"
    assert lines[3] == "0102,'@SUM,'-2,kg,1,1,1,1"
    assert lines[4] == ""
    assert to_csv(rows, columns=["count"]) == "\ufeffcount\r\n1\r\n2\r\n1\r\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=5))
def test_csv_cells_read_back_as_written_or_quoted(programs: list[str]) -> None:
    rows = [
        ReportRow(program=p, unit="kg", count=1, households=1, quantity=1, value_iqd=1)
        for p in programs
    ]
    read = list(csv.reader(io.StringIO(to_csv(rows)[1:], newline="")))
    assert read[0] == ["program", "unit", "count", "households", "quantity", "value_iqd"]
    for program, line in zip(programs, read[1:], strict=True):
        cell = line[0]
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert cell == (
            "'" + program if program.startswith(("=", "+", "-", "@", "\t", "\r")) else program
        )
