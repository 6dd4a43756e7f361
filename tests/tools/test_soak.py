"""tools/soak.py works end to end on a very short bound (the 10-minute soak runs on
demand, not in CI), and its verdicts fail when they should: lost, repeated or unknown
messages, and memory that grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tools import soak

from ..conftest import restartable_port

REPO = Path(__file__).resolve().parents[2]
#: A hang guard: the smoke run takes well under a minute on an idle machine.
TIMEOUT_S = 600


def test_a_short_soak_restarts_nodes_and_ends_converged(tmp_path: Path) -> None:
    ports = ",".join(str(restartable_port()) for _ in range(3))  # nodes restart on them
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.soak",
            "--seconds",
            "10",
            "--json",
            "--seed",
            "7",
            "--restart-every",
            "3",
            "4",
            "--down",
            "0.2",
            "0.5",
            "--warmup-seconds",
            "1",
            "--sample-every",
            "0.25",  # n1's RSS is judged on enough samples even from 10 s
            "--min-judged-seconds",
            "5",
            "--max-growth",
            "5",  # a judgement, not a measurement: 12 s prove nothing about leaks
            "--ports",
            ports,
            "--dir",
            str(tmp_path / "soak"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["converged"]
    # the load ran on every node, and nodes were restarted (on a busy machine a restart
    # takes seconds, so 10 s hold one or two), n1 spared
    assert all(node["appends"] > 0 for node in summary["nodes"].values())
    assert len(summary["restarts"]) >= 1
    assert {r["signal"] for r in summary["restarts"]} <= {"SIGTERM", "SIGKILL"}
    assert all(r["node"] != "n1" for r in summary["restarts"])
    assert all(r["clean_exit"] is not False for r in summary["restarts"])
    restarted = Counter(r["node"] for r in summary["restarts"])
    for name, node in summary["nodes"].items():
        assert node["lifetimes"] == 2 + restarted[name]  # the first run, then the soak
    # every node holds every feed at the head its author reports
    assert set(summary["heads"]) == {"n1", "n2", "n3"}
    assert all(seq >= 1 for seq in summary["heads"].values())
    messages = summary["messages"]
    assert messages["sent"] > 0 and messages["exactly_once"]
    assert messages["received"] == messages["sent"] + messages["uncertain_delivered"]
    # RSS was sampled per process lifetime, and n1's whole run was judged
    [n1] = summary["memory"]["nodes"]["n1"]["lifetimes"]
    assert n1["rss_kib_first"] > 10_000 and n1["judged"] and n1["grew"] is False
    assert summary["memory"]["grew"] == []
    assert all(v["tracebacks"] == 0 for v in summary["logs"].values())
    assert summary["final_stop_clean"] == {"n1": True, "n2": True, "n3": True}
    assert (tmp_path / "soak" / "n1.log").exists()


def config(**changes: float) -> soak.SoakConfig:
    values = {"seconds": 1.0, "base": Path("."), "min_judged_s": 60.0, "warmup_s": 10.0}
    return soak.SoakConfig(**{**values, **changes})  # type: ignore[arg-type]


def node_with(samples: list[tuple[float, int]]) -> soak.NodeProc:
    node = soak.NodeProc("n1", Path("."), 0, Path("n1.log"), {})
    node.rss[1] = samples
    return node


def test_memory_that_grows_is_flagged_and_flat_memory_is_not() -> None:
    flat = [(float(t), 100_000 + (t % 3) * 50) for t in range(300)]
    growing = [(float(t), 100_000 + t * 400) for t in range(300)]  # +120 % in 5 minutes
    [flat_life] = soak.memory_verdict(node_with(flat), config())["lifetimes"]
    [grown_life] = soak.memory_verdict(node_with(growing), config())["lifetimes"]
    assert flat_life["judged"] and not flat_life["grew"]
    assert abs(flat_life["q4_over_q2"] - 1) < 0.01 and abs(flat_life["slope_kib_per_min"]) < 50
    assert grown_life["judged"] and grown_life["grew"] and grown_life["q4_over_q2"] > 1.2
    assert grown_life["slope_kib_per_min"] == 24_000.0
    # a lifetime shorter than min_judged_s is reported, not judged
    [short] = soak.memory_verdict(node_with(growing[:40]), config())["lifetimes"]
    assert short["judged"] is False and short["grew"] is False


def test_messages_lost_repeated_or_unknown_are_not_exactly_once() -> None:
    ledger = soak.Ledger()
    ledger.sent = {"a": ("n1", "n2"), "b": ("n2", "n3")}
    ledger.uncertain = {"c": ("n3", "n1")}
    good = soak.message_verdict(ledger, Counter({"a": 1, "b": 1, "c": 1}))
    assert good["exactly_once"] and good["uncertain_delivered"] == 1
    assert soak.message_verdict(ledger, Counter({"a": 1, "b": 1}))["exactly_once"]
    lost = soak.message_verdict(ledger, Counter({"a": 1}))
    assert lost["missing"] == ["b"] and not lost["exactly_once"]
    twice = soak.message_verdict(ledger, Counter({"a": 2, "b": 1}))
    assert twice["duplicates"] == ["a"] and not twice["exactly_once"]
    unknown = soak.message_verdict(ledger, Counter({"a": 1, "b": 1, "z": 1}))
    assert unknown["unexpected"] == ["z"] and not unknown["exactly_once"]
    cut_twice = soak.message_verdict(ledger, Counter({"a": 1, "b": 1, "c": 2}))
    assert cut_twice["duplicates"] == ["c"] and not cut_twice["exactly_once"]


def test_rss_is_read_from_proc() -> None:
    mine = soak.rss_kib(os.getpid())
    assert mine is not None and mine > 1000
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert soak.rss_kib(gone.pid) is None  # reaped: no /proc entry
