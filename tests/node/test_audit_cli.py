"""``watan audit verify``: intact, tampered, operator errors, and while the node writes.

``main`` runs its own event loop (``asyncio.run``), so the async tests call it in a
worker thread."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from node.cli import main
from node.clock import FakeClock
from node.config import load_config, write_config
from node.daemon import Node, init_node

from .conftest import NOW, _drop_postgres_database, _postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    """A node with ten audit rows, on each backend (left open: it keeps running)."""
    name = f"watan_test_{secrets.token_hex(6)}"
    url = None if request.param == "sqlite" else await _postgres_database(name)
    opened, _ = await init_node(tmp_path / "node", clock=FakeClock(NOW), database_url=url)
    try:
        for i in range(10):
            await opened.audit.record(None, "test.row", f"n:{i}", {"i": i}, now_ms=NOW + i)
        yield opened
    finally:
        await opened.close()
        if url is not None:
            await _drop_postgres_database(name)


async def verify(*argv: str) -> int:
    return await asyncio.to_thread(main, ["audit", "verify", *argv])


async def test_an_intact_log(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    seq, head = await node.audit.head()
    assert await verify("--data", str(node.data_dir)) == 0
    assert capsys.readouterr().out == f"intact: {seq} rows, head {seq} {head.hex()}\n"
    assert await verify("--data", str(node.data_dir), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "ok": True,
        "rows": seq,
        "head": {"seq": seq, "hash": head.hex()},
        "first_bad_seq": None,
        "reason": None,
    }


async def test_a_changed_row_is_named(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    def tamper(conn: Connection) -> None:
        conn.execute(text("UPDATE audit_log SET target = 'account:99' WHERE seq = 4"))

    await node.db.write(tamper)
    assert await verify("--data", str(node.data_dir)) == 1
    assert capsys.readouterr().out == "BROKEN at row 4: row 4 was changed\n"
    assert await verify("--data", str(node.data_dir), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["first_bad_seq"], report["reason"]) == (
        False,
        4,
        "row 4 was changed",
    )


async def test_it_works_while_the_node_writes(node: Node) -> None:
    """One snapshot for the walk and the head: rows appended meanwhile (on PostgreSQL
    too, whose default isolation takes a new snapshot per statement) never make an
    intact chain look broken."""
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            await node.audit.record(None, "test.busy", None, {}, now_ms=NOW)
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        results = [await verify("--data", str(node.data_dir)) for _ in range(3)]
    finally:
        stop.set()
        await task
    assert results == [0, 0, 0] and written > 0


async def test_operator_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await verify("--data", str(tmp_path / "nowhere")) == 2
    assert "not a Watan node directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert await verify("--data", str(tmp_path / "empty")) == 2
    assert "node.json is missing" in capsys.readouterr().err
    data = tmp_path / "node"
    opened, _ = await init_node(data, clock=FakeClock(NOW))
    await opened.close()
    config = load_config(data)
    unreachable = "postgresql://watan:hunter2@127.0.0.1:1/watan"
    write_config(data, dataclasses.replace(config, database_url=unreachable))
    assert await verify("--data", str(data)) == 2
    err = capsys.readouterr().err
    assert err.startswith("watan: error: ") and "hunter2" not in err
    assert len(err.strip().splitlines()) == 1


async def test_accounts_recover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opened, _ = await init_node(tmp_path / "n", clock=FakeClock(NOW))
    await opened.close()
    data = str(tmp_path / "n")
    assert await asyncio.to_thread(main, ["accounts", "recover", "--data", data]) == 0
    out = capsys.readouterr().out
    password = out.split("'admin': ", 1)[1].split()[0]
    reopened, _ = await init_node(tmp_path / "n", clock=FakeClock(NOW + 1))
    try:
        account = await reopened.accounts.authenticate(
            "admin", password, now_ms=NOW + 2, source="cli"
        )
        assert account.must_change_password
        (row,) = await reopened.audit.query(action="password.recover")
        assert row.actor is None
    finally:
        await reopened.close()
    assert (
        await asyncio.to_thread(
            main, ["accounts", "recover", "--data", data, "--username", "ghost"]
        )
        == 2
    )
    assert "cannot recover 'ghost'" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["accounts", "recover", "--data", str(tmp_path)]) == 2
