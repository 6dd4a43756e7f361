"""The Ata'a benchmark reports what it claims: every figure present and positive, p95 at
least p50, ratios that are the quotients of the figures beside them, the row counts
asked for (no wall-clock assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import bench_ataa

QUERIES = ("top", "category", "district", "small_district", "band", "deep_page")


def _check_summary(figures: dict[str, Any], prefix: str = "") -> None:
    p50, p95 = figures[f"{prefix}p50_ms"], figures[f"{prefix}p95_ms"]
    assert 0 < p50 <= p95


def _check_backend(result: dict[str, Any], backend: str) -> None:
    assert result["backend"] == backend
    assert result["rows_scanned"] == 40_000  # the baseline scanned every allocation
    assert result["load_s"] > 0
    base = result["baseline_scan_ms"]
    assert 0 < base <= result["baseline_scan_p95_ms"]
    queries = result["queries"]
    assert set(queries) == set(QUERIES)
    for name, figures in queries.items():
        _check_summary(figures)
        assert figures["ratio"] == pytest.approx(figures["p50_ms"] / base, rel=0.01), name
        assert figures["rows"] == min(50, figures["total"]), name
    top = queries["top"]
    assert (result["rank_ms"], result["rank_p95_ms"]) == (top["p50_ms"], top["p95_ms"])
    assert result["rank_ratio"] == top["ratio"]
    # every active, scored household is in the unfiltered queue; filters narrow it
    assert top["total"] == 4_000 == queries["category"]["total"]
    assert queries["small_district"]["total"] == 4  # 0.1% of the households
    assert 0 < queries["district"]["total"] < 4_000
    assert 0 < queries["band"]["total"] < 4_000
    assert queries["deep_page"]["params"] == {"category": "food", "offset": 200}
    for name, figures in queries.items():
        assert 0 <= figures["penalized_rows"] <= figures["rows"], name


def test_quick_run_reports_every_figure_against_its_baseline() -> None:
    # its own process: the benchmark runs an event loop of its own (asyncio.run), which
    # a test worker that already has one running (pytest-asyncio fixtures) cannot host
    done = subprocess.run(
        # --quick, smaller still: the shape of the output is what is checked here
        [
            sys.executable,
            *("-m", "tools.bench_ataa", "--json", "--quick"),
            *("--households", "4000", "--allocations", "40000"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=Path(bench_ataa.__file__).resolve().parent.parent,
    )
    result = json.loads(done.stdout)
    rows = result["rows"]
    assert rows["households"] == rows["pseudonyms_ready"] == 4_000
    assert rows["allocations"] == 40_000
    assert rows["matched_households"] == 1_200  # 30%
    # each matched household got 1..5 allocations; the rest went to unknown pseudonyms
    assert 1_200 <= rows["allocations_matched"] <= 6_000
    assert rows["unknown_pseudonyms"] == (40_000 - rows["allocations_matched"]) // 3
    # dates are uniform over 90 days: about a third fall in the 30-day window
    assert 10_000 < rows["allocations_in_window"] < 16_800
    assert (rows["authors"], rows["categories"]) == (20, 11)
    assert rows["small_district_households"] == 4
    assert result["quick"] is True and result["runs"] == 7
    _check_backend(result["sqlite"], "sqlite")
    postgres = result["postgresql"]
    if "skipped" in postgres and os.environ.get("CI") != "true":
        assert postgres["skipped"].startswith("PostgreSQL unreachable")
    else:
        _check_backend(postgres, "postgresql")
        assert result["machine"]["postgresql"] == postgres["version"]
    spread = result["propagation"]
    assert spread["deliveries"] == 10 and spread["nodes"] == 3
    for prefix in ("propagation_", "deliver_", "rtt_"):
        _check_summary(spread, prefix)
    # the penalty shows at B only after A's deliver call returned
    assert spread["propagation_p50_ms"] >= spread["deliver_p50_ms"]
    expected = spread["propagation_p50_ms"] / spread["rtt_p50_ms"]
    assert spread["propagation_ratio"] == pytest.approx(expected, rel=0.01)
    machine = result["machine"]
    assert machine["cpu_count"] >= 1 and machine["sqlite"].count(".") == 2
    assert set(result["baselines"]) >= {"rank_ratio", "propagation_ratio"}


def test_sizes_follow_the_arguments() -> None:
    full = bench_ataa.sizes_for(quick=False)
    assert (full.households, full.allocations, full.runs, full.deliveries) == (
        100_000,
        1_000_000,
        21,
        30,
    )
    assert full.deep_offset == 5_000
    small = bench_ataa.sizes_for(quick=True, households=400, allocations=900)
    assert (small.households, small.allocations, small.deliveries) == (400, 900, 10)
    assert small.deep_offset == 20  # 5% of the queue when that is less than 5,000


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(20, 0, -1)]
    assert bench_ataa.percentile(values, 0.95) == 19.0
    assert bench_ataa.percentile(values, 0.5) == 10.0
    assert bench_ataa.percentile([3.0], 0.95) == 3.0


def test_rejects_nonsense_arguments() -> None:
    with pytest.raises(SystemExit):
        bench_ataa.main(["--households", "0"])
    with pytest.raises(SystemExit):
        bench_ataa.main(["--no-postgres", "--postgres", "postgresql://x@h/db"])
