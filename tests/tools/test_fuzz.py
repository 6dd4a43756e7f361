"""tools/fuzz.py: every atheris harness runs 2,000 inputs without a crash, and a crash is
caught, reported and saved (the ``selftest`` target is a decoder broken on purpose).

Each harness runs in its own process: atheris instruments ``protocol`` as it is
imported there, and libFuzzer ends the process when it is done. atheris is in the test
extras; where it is missing these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import fuzz

REPO = Path(__file__).resolve().parents[2]
RUNS = 2000
#: A hang guard (2,000 inputs take seconds), not a timing check.
TIMEOUT_S = 300
PUBLIC = sorted(name for name in fuzz.TARGETS if name != "selftest")


@pytest.fixture(autouse=True)
def _atheris() -> None:
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is not installed (CI=true: it is in the test extras)")
        pytest.skip("atheris is not installed: pip install atheris (or -e '.[test]')")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tools.fuzz", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_the_list_names_every_public_target(tmp_path: Path) -> None:
    done = run(tmp_path, "--list")
    assert done.returncode == 0, done.stderr
    assert sorted(line.split()[0] for line in done.stdout.splitlines()) == PUBLIC
    # every decoder the brief names has a harness
    assert {"decode", "verify_entry", "unseal", "genesis", "invite", "httpsig"} <= set(PUBLIC)


@pytest.mark.parametrize("target", PUBLIC)
def test_a_harness_runs_2000_inputs_without_a_crash(tmp_path: Path, target: str) -> None:
    done = run(tmp_path, target, f"-atheris_runs={RUNS}", "-seed=1")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert re.search(rf"Done {RUNS} in \d+ second", output), output[-2000:]
    assert "Instrumenting protocol._encoding" in output  # coverage guided, not blind
    assert not list(tmp_path.glob("crash-*")), output[-4000:]


def test_a_crash_is_reported_saved_and_replayed(tmp_path: Path) -> None:
    done = run(tmp_path, "selftest", f"-atheris_runs={RUNS}")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Uncaught Python exception" in output and "KeyError: 'selftest'" in output
    [crash] = tmp_path.glob("crash-*")
    assert crash.read_bytes().startswith(b"\x92")
    again = run(tmp_path, "selftest", crash.name)
    assert again.returncode != 0 and "KeyError: 'selftest'" in again.stdout + again.stderr


def test_no_target_lists_them_and_fails(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 2
    assert "verify_entry" in done.stdout
