"""Every benchmark of the project, as one JSON object.

    python -m tools.bench [--json] [--quick] [--postgres URL | --no-postgres]
                          [--entries N] [--households N] [--allocations M]

Each figure comes with a baseline measured in the same run on the same machine, and
their ratio (``ratio = value / baseline_value``), so that a figure from a noisy machine
still says something. The figures, in the order they are measured (each benchmark's
module documents its method; ``details`` holds each one's own output):

- ``entry_verify_per_s`` (:mod:`tools.bench_protocol`): ``protocol.verify_entry`` of
  ``ataa.allocation/1`` entries, one core. Baseline ``raw_verify_per_s``: PyNaCl
  ``VerifyKey.verify`` of the same signed bytes. Target ratio >= 0.85.
- ``ingest_per_s_sqlite``, ``ingest_per_s_postgres`` (:mod:`tools.bench_ingest`): a
  second ``watan up`` process pulls a peer's allocations over HTTP on loopback,
  verifies and stores them, on each backend. Baseline ``raw_verify_per_s`` (the
  same). Target ratio >= 0.5.
- ``rss_idle_mb``: that SQLite node process, started and idle. Baseline: an idle
  interpreter that has imported ``node.cli``. ``rss_after_1m_entries_mb``: a SQLite
  node process once it has ingested 1,000,000 entries (a run of its own; ``--quick``:
  the 1,000 of the ingest; the count is beside it). Baseline: its ``rss_idle_mb``.
- ``propagation_p50_ms``, ``propagation_p95_ms`` (:mod:`tools.bench_node`): an
  allocation appended at A until stored at B, push notify, loopback. Baselines
  ``rtt_p50_ms``, ``rtt_p95_ms``: one signed ``GET /heads`` between the two.
- ``wire_bytes_per_allocation`` (replicated live, one at a time) and
  ``wire_bytes_per_allocation_catchup`` (pulled in batches): every byte both ways
  between the two nodes per allocation. Baseline ``entry_bytes``: the signed entry's
  own size.
- ``rank_ms_sqlite``, ``rank_ms_postgres`` (:mod:`tools.bench_ataa`): the first page
  of the priority queue over the households and allocation records. Baseline
  ``baseline_scan_ms``: a full scan of the same allocation rows.
- ``oprf_eval_per_s`` (:mod:`tools.bench_oprf`): an oracle's evaluation of one
  element with its proof. Baseline ``scalarmult_per_s``: one ristretto255 scalar
  multiplication.

Full sizes: 100,000 entries ingested per backend, and 1,000,000 on SQLite for the
memory figure; ranking over 100,000 households and
1,000,000 allocation records; 30 propagations; 2,560 allocations caught up and 30
replicated live; the OPRF client figures too. ``--quick``: 10,000 entries, 5,000
households and 50,000 records, 8 propagations, 300 and 8 allocations, the oracle's
side of the OPRF only (the output's ``sizes`` states them); under a minute on an idle
2-core machine. A full run takes as long as the node needs to replicate 2 x 100,000
entries, plus loading a million rows into each backend: many minutes. If PostgreSQL
cannot be reached, its figures are null with the reason in ``skipped``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Final, TypeVar

from . import bench_ataa, bench_ingest, bench_node, bench_oprf, bench_protocol
from ._args import add_backend_options, positive

__all__ = ["FIGURES", "Sizes", "figures_of", "main", "run", "sizes_for"]

T = TypeVar("T")

#: The figures every run reports, in order.
FIGURES: Final = (
    "entry_verify_per_s",
    "ingest_per_s_sqlite",
    "ingest_per_s_postgres",
    "rss_idle_mb",
    "rss_after_1m_entries_mb",
    "propagation_p50_ms",
    "propagation_p95_ms",
    "wire_bytes_per_allocation",
    "wire_bytes_per_allocation_catchup",
    "rank_ms_sqlite",
    "rank_ms_postgres",
    "oprf_eval_per_s",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much each benchmark measures (:func:`sizes_for`)."""

    verify_entries: int
    verify_rounds: int
    ingest_entries: int
    #: Entries the node holds when ``rss_after_1m_entries_mb`` is read: a SQLite-only
    #: ingest of its own when it differs from ``ingest_entries``.
    memory_entries: int
    households: int
    allocations: int
    node: bench_node.Sizes
    oprf_client: bool


def sizes_for(
    *,
    quick: bool,
    entries: int | None = None,
    households: int | None = None,
    allocations: int | None = None,
    memory_entries: int | None = None,
) -> Sizes:
    """The sizes of a full or ``--quick`` run; ``entries``, ``households`` and
    ``allocations`` override the ingest's and the ranking's."""
    return Sizes(
        verify_entries=1_000 if quick else 2_000,
        verify_rounds=3 if quick else 7,
        ingest_entries=entries or (bench_ingest.QUICK_ENTRIES if quick else 100_000),
        memory_entries=memory_entries
        or (entries or bench_ingest.QUICK_ENTRIES if quick else 1_000_000),
        households=households or (5_000 if quick else 100_000),
        allocations=allocations or (50_000 if quick else 1_000_000),
        node=bench_node.sizes_for(quick=quick),
        oprf_client=not quick,
    )


def _ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return float(f"{value / baseline:.3g}")


def _figure(
    value: float | None,
    unit: str,
    baseline: str,
    baseline_value: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """One figure: its value, its baseline (name and value) and ``value / baseline``."""
    return {
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": _ratio(value, baseline_value),
        **extra,
    }


def _backend(
    result: dict[str, Any], key: str, unit: str, baseline: str, base: float | None, **extra: Any
) -> dict[str, Any]:
    """A per-backend figure; null, with the reason, when the backend was skipped."""
    if "skipped" in result:
        return {**_figure(None, unit, baseline, base), "skipped": result["skipped"]}
    return _figure(result[key], unit, baseline, base, **extra)


def figures_of(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The headline figures (:data:`FIGURES`) from the benchmarks' own outputs."""
    verify, ingest, node, ataa, oprf = (
        details[name] for name in ("protocol", "ingest", "node", "ataa", "oprf")
    )
    raw = verify["raw_verify_per_s"]
    spread, wire = node["propagation"], node["wire"]
    rss = details.get("memory", ingest)["rss"]
    postgres_rank = ataa.get("postgresql", {"skipped": "not asked (--no-postgres)"})

    def rank(result: dict[str, Any]) -> dict[str, Any]:
        extra = {} if "skipped" in result else {"p95_ms": result["rank_p95_ms"]}
        return _backend(result, "rank_ms", "ms", "baseline_scan_ms",
                        result.get("baseline_scan_ms"), **extra)  # fmt: skip

    def ingested(result: dict[str, Any]) -> dict[str, Any]:
        extra = {"target_ratio": bench_ingest.TARGET_RATIO}
        if "skipped" not in result:
            extra |= {"entries": ingest["entries"], "complete": result["complete"]}
        base = ingest["raw_verify_per_s"]  # the best of this and its own (bench_ingest)
        return _backend(result, "ingest_per_s", "entries/s", "raw_verify_per_s", base, **extra)

    return {
        "entry_verify_per_s": _figure(
            verify["entry_verify_per_s"], "entries/s", "raw_verify_per_s", raw,
            target_ratio=verify["target_ratio"],
        ),
        "ingest_per_s_sqlite": ingested(ingest["sqlite"]),
        "ingest_per_s_postgres": ingested(ingest["postgresql"]),
        "rss_idle_mb": _figure(
            rss["rss_idle_mb"], "MiB", "rss_imported_mb", rss["baseline_imported_mb"],
            interpreter_mb=rss["baseline_interpreter_mb"],
        ),
        "rss_after_1m_entries_mb": _figure(
            rss["rss_after_entries_mb"], "MiB", "rss_idle_mb", rss["rss_idle_mb"],
            entries=rss["entries_held"], peak_mb=rss["hwm_after_entries_mb"],
        ),
        "propagation_p50_ms": _figure(
            spread["propagation_p50_ms"], "ms", "rtt_p50_ms", spread["rtt_p50_ms"]
        ),
        "propagation_p95_ms": _figure(
            spread["propagation_p95_ms"], "ms", "rtt_p95_ms", spread["rtt_p95_ms"]
        ),
        "wire_bytes_per_allocation": _figure(
            wire["wire_bytes_per_allocation"], "bytes", "entry_bytes", wire["entry_bytes"],
            allocations=wire["live_allocations"],
        ),
        "wire_bytes_per_allocation_catchup": _figure(
            wire["wire_bytes_per_allocation_catchup"], "bytes", "entry_bytes",
            wire["entry_bytes"], allocations=wire["catchup_allocations"],
        ),
        "rank_ms_sqlite": rank(ataa["sqlite"]),
        "rank_ms_postgres": rank(postgres_rank),
        "oprf_eval_per_s": _figure(
            oprf["oprf_eval_per_s"], "evaluations/s", "scalarmult_per_s", oprf["scalarmult_per_s"]
        ),
    }  # fmt: skip


def _timed(durations: dict[str, float], name: str, work: Callable[[], T]) -> T:
    start = time.perf_counter()
    try:
        return work()
    finally:
        durations[name] = round(time.perf_counter() - start, 1)


def run(
    *,
    quick: bool = False,
    postgres: str | None = bench_ataa.DEFAULT_POSTGRES,
    sizes: Sizes | None = None,
) -> dict[str, Any]:
    """Run every benchmark, one after the other; the JSON-ready result (module
    docstring).

    Args:
        postgres: a PostgreSQL server's admin URL, where throw-away databases are
            created and dropped (None: SQLite only).
        sizes: default :func:`sizes_for` ``quick``.
    """
    sizes = sizes or sizes_for(quick=quick)
    load_start = os.getloadavg()
    took: dict[str, float] = {}
    verify = _timed(took, "protocol", partial(
        bench_protocol.run, sizes.verify_entries, sizes.verify_rounds
    ))  # fmt: skip
    details: dict[str, Any] = {"protocol": verify}
    details["ingest"] = _timed(took, "ingest", partial(
        bench_ingest.run, quick=quick, entries=sizes.ingest_entries, postgres=postgres,
        raw_verify_per_s=float(verify["raw_verify_per_s"]),  # type: ignore[arg-type]
    ))  # fmt: skip
    details["memory"] = details["ingest"]
    if sizes.memory_entries != sizes.ingest_entries:
        details["memory"] = _timed(took, "memory", partial(
            bench_ingest.run, entries=sizes.memory_entries, postgres=None, pulls=1,
            raw_verify_per_s=float(verify["raw_verify_per_s"]),  # type: ignore[arg-type]
        ))  # fmt: skip
    details["node"] = _timed(took, "node", partial(bench_node.run, quick=quick, sizes=sizes.node))
    details["ataa"] = _timed(took, "ataa", partial(
        bench_ataa.run, quick=quick, households=sizes.households,
        allocations=sizes.allocations, postgres=postgres, propagation=False,
    ))  # fmt: skip
    details["oprf"] = _timed(took, "oprf", partial(
        bench_oprf.run, quick=quick, client=sizes.oprf_client
    ))  # fmt: skip
    took["total"] = round(sum(took.values()), 1)
    return {
        "quick": quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "postgresql": details["ataa"]["machine"]["postgresql"],
            "load_average_start": [round(n, 2) for n in load_start],
            "load_average_end": [round(n, 2) for n in os.getloadavg()],
        },
        "sizes": asdict(sizes),
        "figures": figures_of(details),
        "durations_s": took,
        "details": details,
    }


def _table(result: dict[str, Any]) -> str:
    """The figures as a table to read (``--json`` prints everything)."""
    row = "{:34} {:>10} {:14} {:17} {:>10} {:>8}"
    lines = [row.format("figure", "value", "unit", "baseline", "value", "ratio")]
    for name, figure in result["figures"].items():
        value, base = figure["value"], figure["baseline_value"]
        lines.append(
            row.format(
                name,
                "skipped" if value is None else f"{value:,}",
                figure["unit"],
                figure["baseline"],
                "" if base is None else f"{base:,}",
                "" if figure["ratio"] is None else figure["ratio"],
            )
        )
    lines.append(f"quick={result['quick']}  seconds: {result['durations_s']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (see above)")
    add_backend_options(parser)
    parser.add_argument(
        "--entries", type=positive, help="entries ingested per backend (100,000; quick 10,000)"
    )
    parser.add_argument(
        "--memory-entries",
        type=positive,
        help="entries a node holds for rss_after_1m_entries_mb (1,000,000; quick: --entries)",
    )
    parser.add_argument(
        "--households", type=positive, help="households ranked (100,000; quick 5,000)"
    )
    parser.add_argument(
        "--allocations", type=positive, help="records ranked over (1,000,000; quick 50,000)"
    )
    args = parser.parse_args(argv)
    sizes = sizes_for(
        quick=args.quick,
        entries=args.entries,
        households=args.households,
        allocations=args.allocations,
        memory_entries=args.memory_entries,
    )
    result = run(
        quick=args.quick, postgres=None if args.no_postgres else args.postgres, sizes=sizes
    )
    print(json.dumps(result) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
