"""``python -m tools.bench`` reports what it claims: one JSON object in which every
figure has a value, a baseline measured in the same run and their ratio; the ingest
really stored every entry in the second node's database (entries and index rows);
replicating an allocation costs more bytes than the entry itself; memory and sizes as
stated. Run at tiny sizes: the shape and the counts are what is checked, never a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import bench, bench_ingest, bench_node

ROOT = Path(bench.__file__).resolve().parent.parent
ENTRIES = 9_000  # commits of 4,096, 4,096 and 808 (two ranges each): the first is not timed


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    # Its own process: the benchmarks run event loops of their own (asyncio.run), which
    # a test worker that already has one running (pytest-asyncio fixtures) cannot host.
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tools.bench", "--json", "--quick"),
            *("--entries", str(ENTRIES), "--households", "400", "--allocations", "4000"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    value: dict[str, Any] = json.loads(done.stdout)
    return value


def _postgres_skipped(result: dict[str, Any]) -> bool:
    skipped = "skipped" in result["details"]["ingest"]["postgresql"]
    assert not (skipped and os.environ.get("CI") == "true"), "CI has PostgreSQL"
    return skipped


def test_every_figure_has_a_value_a_baseline_and_their_ratio(result: dict[str, Any]) -> None:
    assert result["quick"] is True
    assert list(result["figures"]) == list(bench.FIGURES)
    skipped = _postgres_skipped(result)
    for name, figure in result["figures"].items():
        assert figure["baseline"] and figure["unit"], name
        if figure["value"] is None:
            assert skipped and name.endswith("_postgres"), name
            assert figure["skipped"].startswith("PostgreSQL unreachable")
            assert figure["ratio"] is None
            continue
        assert figure["value"] > 0 and figure["baseline_value"] > 0, name
        expected = figure["value"] / figure["baseline_value"]
        assert figure["ratio"] == pytest.approx(expected, rel=0.01), name
    machine = result["machine"]
    assert machine["cpu_count"] >= 1 and len(machine["load_average_start"]) == 3
    assert machine["sqlite"].count(".") == 2
    assert set(result["durations_s"]) == {"protocol", "ingest", "node", "ataa", "oprf", "total"}


def test_the_sizes_asked_for_are_the_sizes_measured(result: dict[str, Any]) -> None:
    sizes, details = result["sizes"], result["details"]
    assert sizes["ingest_entries"] == details["ingest"]["entries"] == ENTRIES
    assert (sizes["households"], sizes["allocations"]) == (400, 4_000)
    assert details["ataa"]["rows"]["households"] == 400
    assert details["ataa"]["sqlite"]["rows_scanned"] == 4_000  # the baseline scanned all
    assert details["protocol"]["entries"] == sizes["verify_entries"]
    assert sizes["node"] == {"appends": 8, "catchup": 300, "live": 8}
    assert details["node"]["propagation"]["appends"] == 8
    assert "client_pseudonym_per_s" not in details["oprf"]  # quick: the oracle's side only


def test_the_second_node_stored_and_indexed_every_entry(result: dict[str, Any]) -> None:
    ingest = result["details"]["ingest"]
    backends = ["sqlite"] if _postgres_skipped(result) else ["sqlite", "postgresql"]
    for backend in backends:
        pulled = ingest[backend]
        assert pulled["backend"] == backend
        # counted in B's own database after the pull: A's allocations, and their rows
        # in B's allocation index (filled in the transaction that stored each)
        assert pulled["stored_allocations"] == pulled["indexed_allocations"] == ENTRIES
        assert pulled["complete"] is True
        assert pulled["pulls_per_s"] == [pulled["ingest_per_s"]]  # quick: one pull
        # a catch-up of 9,000 entries starts B's two verifier workers
        assert pulled["b_worker_processes"] == (2 if (os.cpu_count() or 1) >= 2 else 0)
        # timed from the first batch seen stored to the last
        assert 0 < pulled["measured_entries"] < ENTRIES
        assert pulled["ingest_ratio"] == pytest.approx(
            pulled["ingest_per_s"] / ingest["raw_verify_per_s"], rel=0.01
        )
    figure = result["figures"]["ingest_per_s_sqlite"]
    assert figure["target_ratio"] == bench_ingest.TARGET_RATIO
    assert (figure["entries"], figure["complete"]) == (ENTRIES, True)


def test_replicating_costs_more_bytes_than_the_entry(result: dict[str, Any]) -> None:
    wire = result["details"]["node"]["wire"]
    # a signed allocation entry: ~400 bytes (well above its 64-byte signature)
    assert 300 < wire["entry_bytes"] < 1_000
    assert wire["catchup_allocations"] == 300 and wire["live_allocations"] == 8
    # every byte both ways is counted: the entries themselves are only part of it
    assert wire["catchup_bytes"] > 300 * wire["entry_bytes"]
    assert wire["live_bytes"] > 8 * wire["entry_bytes"]
    # one at a time, each allocation also costs a notify, a heads exchange and a pull
    assert wire["wire_bytes_per_allocation"] > wire["wire_bytes_per_allocation_catchup"]


def test_propagation_and_memory(result: dict[str, Any]) -> None:
    spread = result["details"]["node"]["propagation"]
    for prefix in ("propagation_", "append_", "rtt_"):
        assert 0 < spread[f"{prefix}p50_ms"] <= spread[f"{prefix}p95_ms"], prefix
    # stored at B only after A's append returned
    assert spread["propagation_p50_ms"] >= spread["append_p50_ms"]
    rss = result["details"]["ingest"]["rss"]
    # a node process holds at least what importing its code takes, which is more than
    # a bare interpreter; its peak is at least its current size
    assert rss["baseline_interpreter_mb"] < rss["baseline_imported_mb"] <= rss["rss_idle_mb"]
    assert rss["rss_after_entries_mb"] <= rss["hwm_after_entries_mb"]
    assert rss["entries_held"] == ENTRIES
    assert result["figures"]["rss_after_1m_entries_mb"]["entries"] == ENTRIES


def test_a_skipped_backend_is_null_with_its_reason(result: dict[str, Any]) -> None:
    details = json.loads(json.dumps(result["details"]))
    details["ingest"]["postgresql"] = {"skipped": "PostgreSQL unreachable: OSError"}
    details["ataa"].pop("postgresql", None)
    figures = bench.figures_of(details)
    for name in ("ingest_per_s_postgres", "rank_ms_postgres"):
        assert figures[name]["value"] is None and figures[name]["ratio"] is None
        assert figures[name]["skipped"]
    assert figures["ingest_per_s_sqlite"]["value"] == details["ingest"]["sqlite"]["ingest_per_s"]


def test_help_names_every_figure_and_the_sizes_follow_the_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for name in bench.FIGURES:
        stem = name.removesuffix("_sqlite").removesuffix("_postgres").removesuffix("_p95_ms")
        assert stem in text, name
    full = bench.sizes_for(quick=False)
    assert (full.ingest_entries, full.households, full.allocations) == (
        100_000,
        100_000,
        1_000_000,
    )
    assert full.oprf_client and full.node == bench_node.sizes_for(quick=False)
    quick = bench.sizes_for(quick=True, entries=5)
    assert (quick.ingest_entries, quick.households, quick.oprf_client) == (5, 5_000, False)
    with pytest.raises(SystemExit):
        bench.main(["--entries", "0"])


def test_rss_is_read_from_proc() -> None:
    own = bench_node.rss_of(os.getpid())
    assert 0 < own["rss_mb"] <= own["hwm_mb"]
    ports = bench_ingest.free_ports(3)
    assert len(set(ports)) == 3 and all(p in bench_ingest.PORT_RANGE for p in ports)
