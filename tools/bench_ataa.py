"""How fast is the Ata'a priority queue over a federation's worth of aid records, and
how soon does a delivery at one NGO re-rank the queue of another?

    python -m tools.bench_ataa [--json] [--quick] [--households N] [--allocations M]
                               [--postgres URL | --no-postgres]

**Ranking** (``rank_ms``, per backend): :meth:`PriorityQueue.rank` over ``N``
households (default 100,000) and ``M`` federation allocation records (default
1,000,000), on SQLite and on PostgreSQL (a throw-away database with a random name,
created on the server of ``--postgres`` and dropped after). Six queries, the median and
p95 of ``runs`` calls each after two warm-up rounds: ``top`` (first page, no filter,
no category: ``rank_ms``), ``category`` (food), ``district`` (food in the most
populous district), ``small_district`` (food in a district of ~0.1% of households:
fewer than the first round's candidates, so every household of it is ranked),
``band`` (food, band ``critical``) and ``deep_page`` (food, offset 5,000; 500 with
``--quick``).

Baseline (``baseline_scan_ms``): ``SELECT count(*), sum(value_iqd) FROM
ataa_allocations``, a full scan of the same rows on the same backend and connection
pool, measured in the same rounds (interleaved with the queries, so machine noise hits
both alike). Every ``*_ratio`` divides a query's median by it.

**Propagation** (``propagation_p50_ms``/``_p95_ms``): three real nodes on loopback
(:mod:`tools._localfed`, a 2-of-3 oracle key, each node's federation and Ata'a started
as ``watan serve`` starts them, SQLite). The same households are registered at A and
B (same national IDs, so the same pseudonym) and their pseudonyms resolved first. Each
delivery: ``deliver`` at A (signs and appends an ``ataa.allocation/1``, notifies
peers) until B's ``queue.row`` for that household shows the penalty (B waits on its
replicator's "synced" event, re-checking at least every 20 ms). Baseline
(``rtt_p50_ms``): one signed federation call ``GET /heads`` from A to B through A's
FedClient, measured just before each delivery.

The rows (:mod:`tools._ataa_rows`) are loaded straight into the tables, the index
as the allocation indexer would fill it; verifying a million signatures is the ingest
benchmark's job. PostgreSQL gets ``VACUUM ANALYZE`` after loading (what autovacuum
would do); SQLite gets nothing (the node never runs ANALYZE).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import gc
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

import protocol
from node.ataa import (
    DistributionPlan,
    HouseholdRecord,
    PriorityQueue,
    default_model,
    iraq_today,
    score,
)
from node.audit import AuditLog
from node.clock import SystemClock
from node.daemon import Node
from node.storage import Database
from node.storage._schema import ataa_allocations, ataa_households

from . import _ataa_rows as rows
from . import _synthetic
from ._args import add_backend_options, positive
from ._localfed import LocalNode, local_federation
from ._postgres import DEFAULT_POSTGRES, drop_database
from ._postgres import create_database as _create_database

__all__ = [
    "DEFAULT_POSTGRES",
    "Sizes",
    "create_database",
    "drop_database",
    "main",
    "percentile",
    "run",
    "sizes_for",
]

CATEGORY: Final = "food"
_BASELINES: Final = {
    "rank_ratio": "rank_ms / baseline_scan_ms: the first queue page against a full scan "
    "(count, sum) of the same ataa_allocations rows, same backend, same rounds",
    "queries.*.ratio": "each query's p50_ms / baseline_scan_ms (the same baseline)",
    "propagation_ratio": "propagation_p50_ms / rtt_p50_ms: deliver at A until B's queue "
    "shows the penalty, against one signed GET /heads from A to B",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much a run measures (:func:`sizes_for`)."""

    households: int
    allocations: int
    runs: int
    deliveries: int
    deep_offset: int


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 20 runs is the 19th fastest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _summary(values: Sequence[float], prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}p50_ms": round(statistics.median(values), 3),
        f"{prefix}p95_ms": round(percentile(values, 0.95), 3),
    }


# -- ranking --------------------------------------------------------------------------------


def _scan_txn(conn: Connection) -> tuple[int, int]:
    a = ataa_allocations.c
    count, total = conn.execute(select(func.count(), func.sum(a.value_iqd))).one()
    return int(count), int(total)


def _busiest_txn(conn: Connection) -> str:
    h = ataa_households.c
    return str(
        conn.execute(
            select(h.district).group_by(h.district).order_by(func.count().desc()).limit(1)
        ).scalar_one()
    )


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await call()
    return (time.perf_counter() - start) * 1000, result


async def _rank_figures(url: str, data: rows.Dataset, sizes: Sizes) -> dict[str, Any]:
    load_s = await rows.load(url, data)
    db = Database.from_url(url)
    try:
        return {"load_s": round(load_s, 1), **await _measure(db, data, sizes)}
    finally:
        await db.close()


async def _measure(db: Database, data: rows.Dataset, sizes: Sizes) -> dict[str, Any]:
    clock = SystemClock()
    queue = PriorityQueue(db, own=b"\x00" * 32, clock=clock, audit=AuditLog(db))
    busiest = await db.read(_busiest_txn)
    queries: dict[str, dict[str, Any]] = {
        "top": {"category": None},
        "category": {"category": CATEGORY},
        "district": {"category": CATEGORY, "district": busiest},
        "small_district": {"category": CATEGORY, "district": data.small_district},
        "band": {"category": CATEGORY, "band": "critical"},
        "deep_page": {"category": CATEGORY, "offset": sizes.deep_offset},
    }
    times: dict[str, list[float]] = {name: [] for name in [*queries, "baseline"]}
    pages: dict[str, Any] = {}
    scanned = (0, 0)
    for round_ in range(2 + sizes.runs):  # two warm-up rounds, not kept
        elapsed, scanned = await _timed(functools.partial(db.read, _scan_txn))
        if round_ >= 2:
            times["baseline"].append(elapsed)
        for name, params in queries.items():
            rank = functools.partial(queue.rank, epoch=rows.EPOCH, limit=50, **params)
            elapsed, pages[name] = await _timed(rank)
            if round_ >= 2:
                times[name].append(elapsed)
    baseline = statistics.median(times["baseline"])
    figures: dict[str, Any] = {}
    for name, params in queries.items():
        median = statistics.median(times[name])
        figures[name] = {
            **_summary(times[name]),
            "ratio": round(median / baseline, 4),
            "rows": len(pages[name].rows),
            "total": pages[name].total,
            "penalized_rows": sum(1 for row in pages[name].rows if row.penalty > 0),
            "params": {k: v for k, v in params.items() if v is not None},
        }
    return {
        "backend": db.backend,
        "version": (
            sqlite3.sqlite_version if db.backend == "sqlite" else await db.read(_version_txn)
        ),
        "rows_scanned": scanned[0],
        "baseline_scan_ms": round(baseline, 3),
        "baseline_scan_p95_ms": round(percentile(times["baseline"], 0.95), 3),
        "rank_ms": figures["top"]["p50_ms"],
        "rank_p95_ms": figures["top"]["p95_ms"],
        "rank_ratio": figures["top"]["ratio"],
        "queries": figures,
    }


async def _sqlite(data: rows.Dataset, sizes: Sizes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="watan-bench-ataa-") as tmp:
        return await _rank_figures(f"sqlite:///{Path(tmp) / 'bench.db'}", data, sizes)


async def create_database(admin_url: str) -> tuple[str | None, str | None]:
    """A new database ``watan_bench_<random>`` on ``admin_url``'s server: its name and
    URL, or (None, why) when the server cannot be reached."""
    try:
        return await _create_database(admin_url, "watan_bench")
    except (OSError, SQLAlchemyError) as error:
        return None, f"PostgreSQL unreachable: {type(error).__name__}"


def _version_txn(conn: Connection) -> str:
    return str(conn.execute(text("SHOW server_version")).scalar_one())


async def _postgres(data: rows.Dataset, sizes: Sizes, admin_url: str) -> dict[str, Any]:
    name, url = await create_database(admin_url)
    if name is None:
        return {"skipped": url}
    assert url is not None
    try:
        return await _rank_figures(url, data, sizes)
    finally:
        await drop_database(admin_url, name)


# -- propagation ------------------------------------------------------------------------------


def _deliverable(count: int, today: datetime.date) -> list[HouseholdRecord]:
    """Synthetic households that score above 0 (a penalty can then show)."""
    model = default_model()
    out: list[HouseholdRecord] = []
    for record in _synthetic.households(11, 4 * count + 20, first_serial=500_000):
        if score(model, record.facts(today)).total > 0 and len(out) < count:
            out.append(record)
    return out


async def _until_penalized(node: Any, household_id: int, epoch: int, deadline: float) -> int:
    synced: asyncio.Event = node.federation.replicator.synced
    while True:
        synced.clear()
        row = await node.ataa.queue.row(household_id, epoch=epoch, category=CATEGORY)
        if row is not None and row.penalty > 0:
            return int(row.penalty)
        if time.perf_counter() > deadline:
            raise TimeoutError("the delivery never reached the other node's queue")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(synced.wait(), 0.02)


async def _propagation(count: int) -> dict[str, Any]:
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="watan-bench-ataa-") as tmp:
        async with local_federation(Path(tmp), ["a", "b", "c"], clock=clock) as nodes:
            try:
                return await _deliveries(nodes, count)
            finally:  # background work stops before the servers and databases close
                for local in nodes:
                    await local.node.ataa.close()
                    await local.node.federation.close()


async def _register(node: Node, records: list[HouseholdRecord]) -> list[int]:
    """Register ``records`` at ``node`` and resolve their pseudonyms, before the node's
    federation starts: with no pseudonym worker running, ``resolve`` evaluates every
    pending input in one oracle round, not one round per household.

    Each round cancels the evaluation of the oracle that answers last; when that is the
    node's own (in-process: a database write), the cancelled write can keep SQLite's
    write lock until its connection is garbage-collected (the next write then fails
    with "database is locked"). Hence one round, and a collection after it.
    """
    service = node.federation.pseudonyms
    assert service is not None
    ids = [await node.ataa.households.create(record, actor=None) for record in records]
    for record in records:
        item = record.pseudonym_input()  # from the national ID: never None here
        assert item is not None
        found = await service.resolve(item, timeout_s=60)
        assert found.state == "ready", found.error
    gc.collect()
    return ids


async def _deliveries(nodes: list[LocalNode], count: int) -> dict[str, Any]:
    """Register the same households at A and B, start every node as ``watan serve``
    does, then time ``count`` deliveries."""
    clock = SystemClock()
    a, b = nodes[0].node, nodes[1].node
    records = _deliverable(count, iraq_today(clock))
    for local in nodes:
        assert local.node.federation.oracle is not None
        await local.node.federation.oracle.set_quota(10_000_000, actor=None)
        await local.node.ataa.start()
    ids = {"a": await _register(a, records), "b": await _register(b, records)}
    for local in nodes:
        await local.node.federation.start()
    assert a.federation.pseudonyms is not None
    epoch = (await a.federation.pseudonyms.config()).epoch
    plan = DistributionPlan(
        title="Bench", program="bench-2026", category=CATEGORY, unit="basket",
        quantity=1, value_iqd=50_000, target_count=len(records),
    )  # fmt: skip
    distribution = await a.ataa.distributions.create(plan, actor=None)
    assert await a.ataa.distributions.pick(distribution.id, actor=None) == len(records)
    await asyncio.sleep(0.5)  # the first sync rounds of start() settle
    rtt, spread, deliver = [], [], []
    for a_id, b_id in zip(ids["a"], ids["b"], strict=True):
        elapsed, _ = await _timed(
            lambda: a.federation.client.call(b.identity.node_id, nodes[1].url, "GET", "/heads")
        )
        rtt.append(elapsed)
        start = time.perf_counter()
        await a.ataa.distributions.deliver(distribution.id, a_id, actor=None)
        deliver.append((time.perf_counter() - start) * 1000)
        await _until_penalized(b, b_id, epoch, start + 60)
        spread.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0.1)  # deliveries are seconds apart in the field
    p50 = statistics.median(spread)
    return {
        "backend": "sqlite",
        "nodes": 3,
        "deliveries": len(spread),
        **_summary(spread, "propagation_"),
        **_summary(deliver, "deliver_"),
        **_summary(rtt, "rtt_"),
        "propagation_ratio": round(p50 / statistics.median(rtt), 2),
    }


# -- the run ------------------------------------------------------------------------------------


def sizes_for(
    *, quick: bool, households: int | None = None, allocations: int | None = None
) -> Sizes:
    n = households or (10_000 if quick else 100_000)
    return Sizes(
        households=n,
        allocations=allocations or (100_000 if quick else 1_000_000),
        runs=7 if quick else 21,
        deliveries=10 if quick else 30,
        deep_offset=min(5_000, n // 20),  # bounded: 4x (offset + 50) candidates < n
    )


def _machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def _dataset(sizes: Sizes) -> rows.Dataset:
    clock = SystemClock()
    return rows.Dataset.make(
        households=sizes.households,
        allocations=sizes.allocations,
        today=iraq_today(clock),
        now_ms=clock.now_ms(),
    )


async def _run(sizes: Sizes, postgres: str | None, propagation: bool) -> dict[str, Any]:
    data = _dataset(sizes)
    result: dict[str, Any] = {"sqlite": await _sqlite(data, sizes)}
    if postgres is not None:
        data = _dataset(sizes)  # the same rows (a fixed seed), generated afresh
        result["postgresql"] = await _postgres(data, sizes, postgres)
    if propagation:
        result["propagation"] = await _propagation(sizes.deliveries)
    result["rows"] = {
        "households": sizes.households,
        "allocations": sizes.allocations,
        "pseudonyms_ready": sizes.households,
        "matched_households": len(data.matched),
        "allocations_matched": data.matched_allocations,
        "unknown_pseudonyms": len(data.unknown),
        "allocations_in_window": data.in_window,
        "small_district_households": data.districts.count(data.small_district),
        "authors": rows.AUTHORS,
        "categories": len(protocol.ALLOCATION_CATEGORIES),
        "days": rows.DAYS,
        "window_days": rows.WINDOW_DAYS,
    }
    return result


def run(
    *,
    quick: bool = False,
    households: int | None = None,
    allocations: int | None = None,
    postgres: str | None = DEFAULT_POSTGRES,
    propagation: bool = True,
) -> dict[str, Any]:
    """Every figure as one JSON-ready object (module docstring); without
    ``propagation``, the ranking figures only (``tools.bench`` measures propagation
    with :mod:`tools.bench_node`)."""
    sizes = sizes_for(quick=quick, households=households, allocations=allocations)
    result = asyncio.run(_run(sizes, postgres, propagation))
    postgres_version = result.get("postgresql", {}).get("version")
    return {
        **result,
        "runs": sizes.runs,
        "quick": quick,
        "baselines": _BASELINES,
        "machine": {**_machine(), "postgresql": postgres_version},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_ataa",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="10k/100k rows, 10 deliveries")
    parser.add_argument("--households", type=positive, help="default 100,000 (quick 10,000)")
    parser.add_argument("--allocations", type=positive, help="default 1M (quick 100,000)")
    add_backend_options(parser)
    args = parser.parse_args(argv)
    result = run(
        quick=args.quick,
        households=args.households,
        allocations=args.allocations,
        postgres=None if args.no_postgres else args.postgres,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
