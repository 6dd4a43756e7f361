"""Crash consistency under kill -9 (``tools.crash``): a victim node in a real process,
killed with SIGKILL at random moments while it ingests a peer's feed, appends its own
entries and delivers messages, on SQLite and PostgreSQL. After every kill its store
must hold everything it acknowledged, nothing twice, every chain intact; at the end
every acknowledged message is in the peer's inbox exactly once. The checker itself is
shown to catch a lost entry, a message shown twice, a damaged chain, a broken audit log
and a message that never arrived, in copies of real stores."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from node.storage import Database
from tools.crash import BACKLOG, Checker, CrashReport, run_crash

from ..conftest import restartable_port
from ..node.conftest import _drop_postgres_database, _postgres_database

pytestmark = pytest.mark.asyncio

KILLS = 50


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_kill_9_loses_nothing_acknowledged_and_delivers_each_message_once(
    tmp_path: Path, backend: str
) -> None:
    name = f"watan_test_{secrets.token_hex(6)}"
    url = await _postgres_database(name) if backend == "postgresql" else None
    try:
        report = await run_crash(
            tmp_path, database_url=url, kills=KILLS, victim_port=restartable_port()
        )
    finally:
        if url is not None:
            await _drop_postgres_database(name)
    detail = "\n".join(report.problems) + f"\n(seed {report.seed}; stores in {tmp_path})"
    assert report.problems == [], detail
    assert (report.kills, report.startup_kills) == (KILLS, KILLS // 10)
    # every kill interrupted real work: all three activities were under way in it, and
    # the work added up across the kills (every fourth kill waited for a batch to
    # commit, so the replica grew under the kills, not only in the final drain)
    assert report.ingested_killed >= KILLS // 4 * 256, report.to_json()
    assert report.ingested > BACKLOG
    assert report.acked_entries >= KILLS and report.acked_messages >= KILLS // 2
    assert report.inbox >= report.acked_messages
    assert report.peer_holds >= report.acked_entries


async def _short_run(tmp_path: Path) -> CrashReport:
    report = await run_crash(
        tmp_path / "run", kills=2, startup_kills=0, victim_port=restartable_port()
    )
    assert report.problems == [], report.problems
    assert report.acked_entries and report.acked_messages
    return report


def _copy(url: str, target: Path) -> Path:
    """A consistent copy of a SQLite store (the backup API)."""
    source = make_url(url).database
    assert source is not None
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


async def _check(
    report: CrashReport,
    tmp_path: Path,
    *,
    victim: Callable[[sqlite3.Connection], None] | None = None,
    peer: Callable[[sqlite3.Connection], None] | None = None,
) -> list[str]:
    """The final check on copies of both stores, one of them tampered with first."""
    where = tmp_path / secrets.token_hex(4)
    where.mkdir()
    copies = {
        "victim": _copy(report.victim_url, where / "victim.db"),
        "peer": _copy(report.peer_url, where / "peer.db"),
    }
    for name, tamper in (("victim", victim), ("peer", peer)):
        if tamper is not None:
            with sqlite3.connect(copies[name]) as conn:
                tamper(conn)
            conn.close()
    victim_db = Database.from_url(f"sqlite:///{copies['victim']}")
    peer_db = Database.from_url(f"sqlite:///{copies['peer']}")
    try:
        checker = Checker(victim=report.victim_id, peer=report.peer_id, net=report.net)
        return await checker.check(victim_db, peer_db, report.acked, final=True)
    finally:
        await victim_db.close()
        await peer_db.close()


async def test_the_checker_finds_lost_duplicated_and_damaged_data_in_copies_of_real_stores(
    tmp_path: Path,
) -> None:
    report = await _short_run(tmp_path)
    assert await _check(report, tmp_path) == []  # the untouched copies pass
    own, peer = report.victim_id, report.peer_id
    newest = max(report.acked.entries)

    def lose_newest_entry(conn: sqlite3.Connection) -> None:
        # the head moved back with it: the chain stays intact, only the ack shows
        conn.execute("DELETE FROM entries WHERE author = ? AND seq >= ?", (own, newest))
        conn.execute(
            "UPDATE feeds SET seq = e.seq, id = e.id, ts = e.ts FROM entries e "
            "WHERE feeds.author = ? AND e.author = ? AND e.seq = ?",
            (own, own, newest - 1),
        )

    problems = await _check(report, tmp_path, victim=lose_newest_entry)
    assert f"victim: acknowledged own entry {newest} lost" in problems

    def show_a_message_twice(conn: sqlite3.Connection) -> None:
        # what a message sealed again after a crash would look like: a new id
        row = conn.execute(
            "SELECT id FROM messages WHERE direction = 'in' AND peer = ? LIMIT 1", (own,)
        ).fetchone()
        conn.execute(
            "INSERT INTO messages (id, direction, peer, thread, kind, content, ts, "
            "created_ms, state, read_ms, author_account) SELECT ?, direction, peer, thread, "
            "kind, content, ts, created_ms, state, read_ms, author_account FROM messages "
            "WHERE id = ?",
            (secrets.token_bytes(32), row[0]),
        )

    problems = await _check(report, tmp_path, peer=show_a_message_twice)
    assert any(p.startswith("peer: text ") and p.endswith("shown 2 times") for p in problems)

    def damage_the_replica(conn: sqlite3.Connection) -> None:
        wire = conn.execute(
            "SELECT wire FROM entries WHERE author = ? AND seq = 5", (peer,)
        ).fetchone()[0]
        damaged = wire[:-1] + bytes([wire[-1] ^ 1])  # a bit of the signature
        conn.execute("UPDATE entries SET wire = ? WHERE author = ? AND seq = 5", (damaged, peer))

    problems = await _check(report, tmp_path, victim=damage_the_replica)
    assert "victim: peer's feed entry 5 does not verify: BAD_SIGNATURE" in problems

    def break_the_audit_chain(conn: sqlite3.Connection) -> None:
        # the row of a sent message, in the middle of the victim's log
        conn.execute(
            "DELETE FROM audit_log WHERE seq = (SELECT min(seq) FROM audit_log "
            "WHERE action = 'message.sent')"
        )

    problems = await _check(report, tmp_path, victim=break_the_audit_chain)
    assert any(p.startswith("victim: audit chain broken at ") for p in problems), problems

    first = next(iter(report.acked.messages))

    def lose_a_message(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM messages WHERE id = ?", (first,))

    problems = await _check(report, tmp_path, peer=lose_a_message)
    assert f"peer: acknowledged message {first.hex()[:12]} received 0 times" in problems
