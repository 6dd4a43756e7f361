"""``watan demo``: three real nodes seeded once, serving the UI, surviving a restart,
stopping cleanly on a signal; and the newcomer story, timed: a delivery at one NGO
re-ranks a neighbour's queue within seconds (a push, not the 15 s sync round)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Connection, func, select

from node.ataa import DistributionPlan
from node.clock import SystemClock
from node.federation import SYNC_INTERVAL_S
from node.storage import Database
from node.storage._schema import ataa_dist_households, ataa_households
from tools import _synthetic, demo

from ..conftest import _handed_out, worker_port_block

pytestmark = pytest.mark.asyncio

COUNT = demo.MIN_HOUSEHOLDS
#: Hang guards, generous: a CI worker gets about one core (the measured figures are
#: asserted separately, against far smaller bounds).
START_DEADLINE_S = 120.0
STOP_DEADLINE_S = 30.0
#: How fast the newcomer story must be: well inside one periodic sync round, so only
#: the push notify of the delivering node can have carried it.
RERANK_WITHIN_S = 5.0


def _port_base(size: int = 3) -> int:
    """``size`` consecutive free ports from this worker's block (the second run of the
    demo takes the same ports again, conftest.restartable_port)."""
    block = worker_port_block()
    bases = list(range(block.start, block.stop - size, size))
    for base in random.sample(bases, len(bases)):
        ports = range(base, base + size)
        if any(port in _handed_out for port in ports):
            continue
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed_out.update(ports)
        return base
    raise RuntimeError("no free block of ports")


@asynccontextmanager
async def _demo_process(
    data: Path, port: int, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """``watan demo`` as a real process, up to its ready line; SIGINT on exit."""
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli", "demo",
            "--dir", str(data), "--base-port", str(port), "--households", str(COUNT),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=data.parent,
        )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(START_DEADLINE_S):
            while not (lines and lines[-1].startswith(demo.READY)):
                line = await proc.stdout.readline()
                assert line, f"the demo ended before it was ready: {log.read_text()[-2000:]}"
                lines.append(line.decode().rstrip("\n"))
        yield proc, lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(STOP_DEADLINE_S):
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def _status(data: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "status", "--data", str(data), "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    status: dict[str, Any] = json.loads(out)
    return status


async def _counts(data: Path) -> tuple[int, int]:
    """Households and deliveries in a stopped node's database."""
    db = Database.from_url(f"sqlite:///{data / 'watan.db'}")

    def count(conn: Connection) -> tuple[int, int]:
        households = conn.execute(select(func.count()).select_from(ataa_households))
        delivered = conn.execute(
            select(func.count())
            .select_from(ataa_dist_households)
            .where(ataa_dist_households.c.state == "delivered")
        )
        return households.scalar_one(), delivered.scalar_one()

    try:
        return await db.read(count)
    finally:
        await db.close()


async def _sign_in(session: aiohttp.ClientSession, base: str, username: str) -> dict[str, Any]:
    [staff] = [s for s in demo.STAFF if s.username == username]
    session.cookie_jar.clear()  # signed out first (a signed-in POST needs its CSRF token)
    async with session.post(
        f"{base}/api/v1/session", json={"username": username, "password": staff.password}
    ) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    return body


async def test_watan_demo_serves_seeded_nodes_and_restarts_without_seeding(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "demo", tmp_path / "demo.log"
    port = _port_base()
    urls = [f"http://127.0.0.1:{port + i}" for i in range(3)]
    async with _demo_process(data, port, log) as (proc, lines):
        output = "\n".join(lines)
        assert "DEMO ONLY" in output and "seeded now" in output
        for ngo, url in zip(demo.NGOS, urls, strict=True):
            assert f"{ngo.label}" in output and url in output
        for staff in demo.STAFF:
            assert staff.username in output and staff.password in output

        # watan status reads a running demo node (one call: each takes seconds to start)
        a = await _status(data / "ngo-a")
        assert not a["standalone"] and a["feed"]["seq"] > 1
        assert [p["state"] for p in a["peers"]] == ["approved", "approved"]
        ids = [a["node_id"], *(p["node_id"] for p in a["peers"])]
        assert set(a["heads"]) == set(ids)  # it holds all three feeds

        jar = aiohttp.CookieJar(unsafe=True)  # cookies of an IP address (127.0.0.1)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            # every account signs in with its printed password, no change forced
            for staff in demo.STAFF:
                body = await _sign_in(http, urls[0], staff.username)
                assert body["account"]["role"] == staff.role.value
                assert body["account"]["must_change_password"] is False
            await _sign_in(http, urls[1], "coordinator")
            async with http.get(f"{urls[1]}/dashboard") as response:
                assert response.status == 200
                assert demo.NGOS[1].org.name_ar in await response.text()
            # B's food queue already explains what A and C gave its households
            async with http.get(
                f"{urls[1]}/api/v1/ataa/queue", params={"category": "food", "limit": "200"}
            ) as response:
                assert response.status == 200, await response.text()
                queue = await response.json()
            assert queue["total"] == COUNT
            givers = {item["author"] for row in queue["rows"] for item in row["received"]}
            assert givers == set(ids)  # A's food, B's own cash, C's winter kits
            from_a = [
                row
                for row in queue["rows"]
                if any(i["author"] == ids[0] and i["category"] == "food" for i in row["received"])
            ]
            assert from_a and all(row["penalty"] > 0 for row in from_a)
            async with http.get(f"{urls[1]}/queue") as response:
                assert response.status == 200
        households = json.loads((data / demo.MARKER).read_text())["households"]
        assert households == COUNT
    assert proc.returncode == 0, log.read_text()[-2000:]

    # the same directory again: reused, nothing seeded twice
    seeded = [await _counts(data / ngo.dir) for ngo in demo.NGOS]
    assert [households for households, _delivered in seeded] == [COUNT] * 3
    assert all(delivered > 0 for _households, delivered in seeded)
    marker = (data / demo.MARKER).read_text()
    async with _demo_process(data, port, log) as (proc, lines):
        assert "already seeded" in lines[-1]
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert [await _counts(data / ngo.dir) for ngo in demo.NGOS] == seeded
    assert (data / demo.MARKER).read_text() == marker


async def _neither_served(d: demo.Demo, epoch: int) -> tuple[int, int, int]:
    """A household registered at A and B that neither has served: (serial, id at A,
    id at B)."""
    a, b = d.nodes[0], d.nodes[1]
    shared = sorted(set(d.serials(0)) & set(d.serials(1)), reverse=True)
    for serial in shared:
        a_id, b_id = await demo.household_id(a, serial), await demo.household_id(b, serial)
        row_a = await a.node.ataa.queue.row(a_id, epoch=epoch, category="food")
        row_b = await b.node.ataa.queue.row(b_id, epoch=epoch, category="food")
        if row_a and row_b and not row_a.received and not row_b.received and row_b.score:
            return serial, a_id, b_id
    raise AssertionError("every shared household was served already")


async def test_a_delivery_re_ranks_the_neighbours_queue_within_seconds(tmp_path: Path) -> None:
    clock = SystemClock()
    async with demo.demo_federation(tmp_path, clock=clock, count=COUNT, ports=[0, 0, 0]) as running:
        a, b = running.nodes[0], running.nodes[1]
        assert a.node.federation.pseudonyms is not None
        epoch = (await a.node.federation.pseudonyms.config()).epoch
        serial, a_id, b_id = await _neither_served(running, epoch)
        before = await b.node.ataa.queue.row(b_id, epoch=epoch, category="food")
        assert before is not None and before.pseudonym_state == "ready"
        assert _synthetic.national_id(serial).startswith("9")

        distributions = a.node.ataa.distributions
        plan = DistributionPlan(
            title="Newcomer", program="amal.test", category="food", unit="basket",
            quantity=1, value_iqd=50_000, target_count=1,
        )  # fmt: skip
        distribution = await distributions.create(plan, actor=None)
        await distributions.include(distribution.id, a_id, "newcomer story", actor=None)
        started = time.monotonic()
        delivered = await distributions.deliver(distribution.id, a_id, actor=None)
        assert delivered.published  # its allocation entry is in A's feed now
        # polled: nothing in the node announces "stored"; the guard only stops a hang
        while not (row := await b.node.ataa.queue.row(b_id, epoch=epoch, category="food")) or (
            not row.received
        ):
            assert time.monotonic() - started < SYNC_INTERVAL_S * 4, "never reached B"
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        [received] = row.received
        assert received.author == a.node.identity.node_id
        assert (received.category, received.value_iqd, received.program) == (
            "food",
            50_000,
            "amal.test",
        )
        assert row.penalty > 0 and row.priority == before.priority - row.penalty
        assert elapsed < RERANK_WITHIN_S < SYNC_INTERVAL_S, f"took {elapsed:.2f} s"


async def test_a_command_package_that_is_not_installed_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The container installs node/ without tools/: its `watan` must still run, without
    the demo, rather than fail on the registered entry point."""
    from importlib import metadata

    from node import cli

    missing = metadata.EntryPoint(
        "demo", "tools_not_here.demo:add_parser", cli.COMMAND_ENTRY_POINTS
    )
    real = metadata.EntryPoint("demo", "tools.demo:add_parser", cli.COMMAND_ENTRY_POINTS)
    monkeypatch.setattr(metadata, "entry_points", lambda group: [missing])
    parser = cli._parser()
    assert parser.parse_args(["status", "--data", "x"]).command == "status"
    with pytest.raises(SystemExit):
        parser.parse_args(["demo"])
    monkeypatch.setattr(metadata, "entry_points", lambda group: [real])
    assert cli._parser().parse_args(["demo", "--base-port", "9000"]).command == "demo"
