"""How fast does an entry reach a peer, how many bytes does replicating one cost, and
how much memory does a node process take?

    python -m tools.bench_node [--json] [--quick]

Two nodes on loopback (:mod:`tools._localfed`, SQLite), both in this process (so their
work shares one core), founded, joined and peered, then run as ``watan up`` runs them
(periodic sync, push notify).

**Wire bytes**: every byte between the two nodes passes a recording proxy in front of
each (:mod:`tools._capture`): requests and answers, HTTP headers, message signatures;
the TCP payload, not the TCP/IP headers. *Catch-up*
(``wire_bytes_per_allocation_catchup``): A holds a batch of allocations B lacks and B
pulls them in one sync (its heads, then ranges of up to 256). *Live*
(``wire_bytes_per_allocation``): A appends allocations one at a time and notifies its
peers as the daemon does after a delivery (``feed_grew``); each is stored at B before
the next (a notify, B's heads request, B's pull, each answered, and any periodic sync
round in between). Bytes both ways divided by allocations, against ``entry_bytes``, the
mean size of the signed entries themselves.

**Propagation** (``propagation_p50_ms``/``_p95_ms``), on the same nodes, the proxies
bypassed: A appends an ``ataa.allocation/1`` and notifies, and the figure is the time
until B has stored it (B's sync round with A finished; checked at least every 20 ms),
after one warm-up round. Baseline (``rtt_p50_ms``/``_p95_ms``): one signed federation
call ``GET /heads`` from A to B, just before each append.

**Memory** (:func:`rss_baselines`, :class:`NodeProcess`): resident set sizes of real
processes read from ``/proc/PID/status`` (``VmRSS``; ``VmHWM``, its peak).
:mod:`tools.bench_ingest` reads a ``watan up`` process's idle RSS and its RSS after it
has replicated many entries; the baselines, measured in the same run, are a bare
interpreter and an interpreter that has imported ``node.cli`` (all of the node's code
and libraries, nothing running).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import update
from sqlalchemy.engine import Connection

import protocol
from node.ataa import index_row
from node.clock import Clock, SystemClock
from node.daemon import Node
from node.federation import FED_PREFIX
from node.storage import entry_row
from node.storage._schema import ataa_allocations, entries, feeds

from . import bench_protocol
from ._capture import Capture
from ._localfed import LocalNode, local_federation, start_background, stop_background
from .bench_ataa import percentile

__all__ = [
    "NodeProcess",
    "Sizes",
    "append_allocation",
    "load_own_allocations",
    "main",
    "rss_baselines",
    "rss_of",
    "run",
    "sizes_for",
]

#: The repository root: node processes run from it (``python -m node.cli``).
ROOT: Final = Path(__file__).resolve().parent.parent
#: Rows per INSERT batch when loading a feed straight into a node's tables.
_LOAD_CHUNK: Final = 5_000
#: How often a waiting benchmark re-checks what a node has stored, at least.
_POLL_S: Final = 0.02

_BASELINES: Final = {
    "propagation_ratio": "propagation_p50_ms / rtt_p50_ms: append at A until stored at B, "
    "against one signed GET /heads from A to B (same run, same nodes)",
    "wire_ratio": "wire_bytes_per_allocation / entry_bytes: every byte both ways between "
    "the two nodes per allocation replicated live, against the signed entry's own size",
    "wire_ratio_catchup": "wire_bytes_per_allocation_catchup / entry_bytes: the same when "
    "B pulls a batch of allocations in one sync",
}


def _summary(values: Sequence[float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}p50_ms": round(statistics.median(values), 3),
        f"{prefix}p95_ms": round(percentile(values, 0.95), 3),
    }


# -- memory ------------------------------------------------------------------------------------


def rss_of(pid: int) -> dict[str, float]:
    """A process's resident set now (``rss_mb``) and at its peak (``hwm_mb``), in MiB,
    from ``/proc/PID/status`` (Linux).

    Raises:
        OSError: no such process (or not Linux).
    """
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            kib = int(rest.split()[0])
            values["rss_mb" if name == "VmRSS" else "hwm_mb"] = round(kib / 1024, 1)
    return values


async def _idle_python_rss(code: str) -> dict[str, float]:
    """RSS of ``python -c CODE`` once it has run ``code`` and waits on its stdin."""
    script = f"{code}\nimport sys\nprint('ready', flush=True)\nsys.stdin.read()\n"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"python -c {code!r} did not start")
        return rss_of(process.pid)
    finally:
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 30)


async def rss_baselines() -> dict[str, float]:
    """RSS of a bare interpreter (``interpreter_mb``) and of one that has imported
    ``node.cli`` (``imported_mb``), each idle: the floor a node process starts from."""
    bare, imported = await asyncio.gather(
        _idle_python_rss("pass"), _idle_python_rss("import node.cli")
    )
    return {"interpreter_mb": bare["rss_mb"], "imported_mb": imported["rss_mb"]}


@dataclass
class NodeProcess:
    """A node directory served by a real ``watan up`` process (``python -m node.cli``),
    its output in ``<data>.log``.

    Attributes:
        env: extra environment (e.g. ``WATAN_SYNC_INTERVAL_S``).
    """

    data: Path
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> Path:
        return self.data.with_suffix(".log")

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    async def start(self, *, timeout_s: float = 120.0) -> None:
        """Start it and wait until it listens.

        Raises:
            RuntimeError: it exited or did not listen in ``timeout_s``; the message
                holds its output.
        """
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:  # a file: a pipe nobody reads would fill up
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "node.cli", "up", "--data", str(self.data)),
                *("--port", str(self.port), "--no-discovery"),
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "listening on" in text:
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await self.stop()
        output = self.log.read_bytes()[offset:].decode(errors="replace")
        raise RuntimeError(f"watan up --data {self.data} did not start:\n{output[-2000:]}")

    async def stop(self) -> None:
        """SIGTERM (the node closes its database cleanly), SIGKILL after 30 s."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    def rss(self) -> dict[str, float]:
        return rss_of(self.pid)


# -- a node's own feed, grown fast ---------------------------------------------------------


def _load_txn(
    conn: Connection, made: list[protocol.Entry], head: protocol.FeedHead, now_ms: int
) -> None:
    conn.execute(entries.insert(), [entry_row(entry, now_ms) for entry in made])
    index = []
    for entry in made:
        assert isinstance(entry.body, protocol.Allocation)
        index.append(index_row(entry.author, entry.seq, entry.id, entry.body))
    conn.execute(ataa_allocations.insert(), index)
    conn.execute(
        update(feeds)
        .where(feeds.c.author == head.author)
        .values(seq=head.seq, id=head.id, ts=head.ts, key=head.key)
    )


async def load_own_allocations(node: Node, count: int, *, clock: Clock) -> list[int]:
    """Grow ``node``'s own feed by ``count`` signed ``ataa.allocation/1`` entries, written
    straight into its tables (entries, the allocation index, the head) in batches of
    :data:`_LOAD_CHUNK`, each batch one transaction. The node must not be serving.

    The entries are made by ``protocol.append`` with the node's key, each the next of
    the one before, stamped now (so that no peer finds them in its future). Loading
    skips the feed store's per-entry checks, which is what makes it fast (a peer that
    pulls them verifies every one); the allocation index is filled as the node's
    indexer would, so that the node has no backfill to do when it starts.

    Returns:
        The wire size of each entry.
    """
    head = await node.feeds.head(node.identity.node_id)
    now_ms = clock.now_ms()
    sizes: list[int] = []
    while len(sizes) < count:
        made = bench_protocol.make_entries(
            min(_LOAD_CHUNK, count - len(sizes)),
            key=node.identity.signing_key,
            net=node.config.net,
            head=head,
            now_ms=now_ms,
            step_ms=0,
        )
        head = protocol.head_after(head, made[-1])
        await node.db.write(_load_txn, made, head, now_ms)
        sizes += [len(entry.wire) for entry in made]
    return sizes


async def append_allocation(node: Node, index: int, *, clock: Clock) -> protocol.Entry:
    """Append one ``ataa.allocation/1`` to ``node``'s feed, as a delivery does."""
    body = protocol.Allocation(
        category="food",
        date="2026-01-15",
        district="IQG01Q01",
        epoch=1,
        program="bench-2026",
        pseudonym=hashlib.sha256(b"live %d" % index).digest(),
        quantity=1,
        unit="basket",
        value_iqd=50_000,
    )
    key, net, now_ms = node.identity.signing_key, node.config.net, clock.now_ms()
    return await node.feeds.append_own(
        lambda head: protocol.append(head, body, key=key, net=net, now_ms=now_ms),
        now_ms=now_ms,
    )


async def _until_stored(node: Node, author: bytes, seq: int, timeout_s: float = 120.0) -> None:
    """Return once ``node`` holds ``author``'s feed up to ``seq``: checked after each of
    its sync rounds, and at least every :data:`_POLL_S`."""
    synced = node.federation.replicator.synced
    deadline = time.monotonic() + timeout_s
    while True:
        synced.clear()
        head = await node.feeds.head(author)
        if head is not None and head.seq >= seq:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"entry {seq} never reached the other node")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(synced.wait(), _POLL_S)


# -- the two nodes -----------------------------------------------------------------------------


async def _catchup(a: Node, b: Node, capture: Capture, count: int, clock: Clock) -> dict[str, Any]:
    """A holds ``count`` allocations B lacks; B pulls them in one sync (by hand: no
    background work runs yet), every byte through the proxies."""
    own = a.identity.node_id
    sizes = await load_own_allocations(a, count, clock=clock)
    before = capture.total_bytes
    peer = await b.federation.peers.get(own)
    assert peer is not None
    if not await b.federation.replicator.sync_peer(peer):
        raise RuntimeError("B could not pull from A")
    held, target = await b.feeds.head(own), await a.feeds.head(own)
    assert held is not None and target is not None and held.seq == target.seq
    return {"bytes": capture.total_bytes - before, "entry_sizes": sizes}


async def _live(a: Node, b: Node, capture: Capture, count: int, clock: Clock) -> dict[str, Any]:
    """A appends ``count`` allocations one at a time with push notify, each stored at B
    before the next, every byte through the proxies."""
    before = capture.total_bytes
    sizes = []
    for index in range(count):
        entry = await append_allocation(a, index, clock=clock)
        sizes.append(len(entry.wire))
        a.federation.feed_grew()  # what the daemon does after a delivery
        await _until_stored(b, entry.author, entry.seq)
        await asyncio.sleep(0.1)  # appends are seconds apart in the field
    return {"bytes": capture.total_bytes - before, "entry_sizes": sizes}


async def _bypass(nodes: Sequence[LocalNode]) -> None:
    """From now on each node reaches the other directly, not through the proxies."""
    for one in nodes:
        one.node.federation.public_url = one.base_url + FED_PREFIX
        for other in nodes:
            if other is not one:
                direct = other.base_url + FED_PREFIX
                await one.node.federation.peers.set_url(other.node.identity.node_id, direct)


async def _propagation(a: LocalNode, b: LocalNode, count: int, clock: Clock) -> dict[str, Any]:
    """``count`` rounds (after one to warm up): a signed round trip from A to B, then
    an allocation appended at A until stored at B."""
    b_id, b_url = b.node.identity.node_id, b.base_url + FED_PREFIX
    rtt, append, spread = [], [], []
    for index in range(count + 1):
        start = time.perf_counter()
        await a.node.federation.client.call(b_id, b_url, "GET", "/heads")
        rtt.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        entry = await append_allocation(a.node, 10_000 + index, clock=clock)
        append.append((time.perf_counter() - start) * 1000)
        a.node.federation.feed_grew()
        await _until_stored(b.node, entry.author, entry.seq)
        spread.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0.1)
    rtt, append, spread = rtt[1:], append[1:], spread[1:]  # the warm-up round
    return {
        "backend": "sqlite",
        "nodes": 2,
        "appends": count,
        **_summary(spread, "propagation_"),
        **_summary(append, "append_"),
        **_summary(rtt, "rtt_"),
        "propagation_ratio": round(statistics.median(spread) / statistics.median(rtt), 2),
    }


def _wire(catchup: dict[str, Any], live: dict[str, Any], connections: int) -> dict[str, Any]:
    sizes = [*catchup["entry_sizes"], *live["entry_sizes"]]
    entry_bytes = statistics.mean(sizes)
    per_live = live["bytes"] / len(live["entry_sizes"])
    per_catchup = catchup["bytes"] / len(catchup["entry_sizes"])
    return {
        "wire_bytes_per_allocation": round(per_live),
        "wire_bytes_per_allocation_catchup": round(per_catchup, 1),
        "entry_bytes": round(entry_bytes, 1),
        "wire_ratio": round(per_live / entry_bytes, 2),
        "wire_ratio_catchup": round(per_catchup / entry_bytes, 3),
        "live_allocations": len(live["entry_sizes"]),
        "live_bytes": live["bytes"],
        "catchup_allocations": len(catchup["entry_sizes"]),
        "catchup_bytes": catchup["bytes"],
        "connections": connections,
    }


async def _two_nodes(base: Path, sizes: Sizes) -> dict[str, Any]:
    """Wire bytes through the proxies (catch-up, then live), then propagation with
    the proxies bypassed, all on the same two nodes."""
    clock = SystemClock()
    capture = Capture()
    async with local_federation(
        base, ["a", "b"], clock=clock, front=capture.front, threshold=None
    ) as nodes:
        (a, b), (a_node, b_node) = nodes, (nodes[0].node, nodes[1].node)
        catchup = await _catchup(a_node, b_node, capture, sizes.catchup, clock)
        await start_background(nodes)  # as `watan up` runs them
        try:
            await asyncio.sleep(0.5)  # the first sync rounds of the start settle
            live = await _live(a_node, b_node, capture, sizes.live, clock)
            wire = _wire(catchup, live, len(capture.connections))
            await _bypass(nodes)
            propagation = await _propagation(a, b, sizes.appends, clock)
        finally:
            await stop_background(nodes)
    return {"propagation": propagation, "wire": wire}


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much a run measures."""

    appends: int
    catchup: int
    live: int


def sizes_for(*, quick: bool) -> Sizes:
    if quick:
        return Sizes(appends=8, catchup=300, live=8)
    return Sizes(appends=30, catchup=2_560, live=30)


async def _run(sizes: Sizes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="watan-bench-node-") as tmp:
        return await _two_nodes(Path(tmp), sizes)


def run(*, quick: bool = False, sizes: Sizes | None = None) -> dict[str, Any]:
    """Every figure as one JSON-ready object (module docstring)."""
    sizes = sizes or sizes_for(quick=quick)
    result = asyncio.run(_run(sizes))
    return {
        **result,
        "quick": quick,
        "sizes": {"appends": sizes.appends, "catchup": sizes.catchup, "live": sizes.live},
        "baselines": _BASELINES,
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="8 appends, 300 to catch up")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
