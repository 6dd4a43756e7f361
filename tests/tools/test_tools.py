"""The developer tools run and report what they claim (no wall-clock assertions)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import bench_oprf, bench_protocol, gen_vectors


def test_bench_protocol_reports_rates_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_protocol.main(["--json", "--entries", "50", "--rounds", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"raw_verify_per_s", "entry_verify_per_s", "ratio"}
    assert result["raw_verify_per_s"] > 0 and result["entry_verify_per_s"] > 0
    expected = result["entry_verify_per_s"] / result["raw_verify_per_s"]
    assert result["ratio"] == pytest.approx(expected, abs=0.002)
    assert result["entries"] == 50 and result["entry_bytes"] > 300


def test_bench_entries_are_real_allocations() -> None:
    entries = bench_protocol.make_entries(3)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert all(e.kind == "ataa.allocation/1" and e.body is not None for e in entries)


def test_bench_rejects_nonsense_arguments() -> None:
    with pytest.raises(SystemExit):
        bench_protocol.main(["--entries", "0"])


def test_gen_vectors_check_detects_and_repairs_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = gen_vectors.VECTORS / "reject.json"
    copy = tmp_path / "vectors"
    shutil.copytree(gen_vectors.VECTORS, copy)
    monkeypatch.setattr(gen_vectors, "VECTORS", copy)
    assert gen_vectors.main(["--check"]) == 0
    (copy / "reject.json").write_text("[]\n", encoding="utf-8")
    assert gen_vectors.main(["--check"]) == 1
    assert "reject.json" in capsys.readouterr().err
    assert gen_vectors.main([]) == 0
    assert gen_vectors.main(["--check"]) == 0
    assert (copy / "reject.json").read_text(encoding="utf-8") == original.read_text("utf-8")


def test_bench_oprf_reports_rates_against_its_baseline() -> None:
    # its own process: the benchmark runs an event loop of its own (asyncio.run), which
    # a test worker that already has one running (pytest-asyncio fixtures) cannot host
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench_oprf", "--json", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=Path(bench_oprf.__file__).resolve().parent.parent,
    )
    result = json.loads(done.stdout)
    base = result["scalarmult_per_s"]
    assert base > 0
    for name in ("oprf_eval", "oprf_eval_batch", "client_pseudonym", "client_pseudonym_batch"):
        rate = result[f"{name}_per_s"]
        assert rate > 0
        assert result[f"{name}_ratio"] == pytest.approx(rate / base, rel=0.01, abs=1e-5)
    # a batch shares one proof: per element it is cheaper than single requests
    assert result["oprf_eval_batch_per_s"] > result["oprf_eval_per_s"]
