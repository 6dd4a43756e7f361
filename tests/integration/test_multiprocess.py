"""Real nodes as separate ``watan up`` processes on loopback: founded and joined with the
CLI (invites, fingerprints), appending through the JSON API, replicating by signed HTTP
on their own schedule. Nothing is driven from inside: the test only waits for what
``watan status --json`` reports."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

import protocol

from ..conftest import restartable_port

pytestmark = pytest.mark.asyncio

WATAN = [sys.executable, "-m", "node.cli"]
ENV = {**os.environ, "WATAN_SYNC_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}


def _run(*args: str) -> str:
    done = subprocess.run(
        [*WATAN, *args], env=ENV, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"watan {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class Proc:
    name: str
    data: Path
    port: int
    process: subprocess.Popen[str] | None = None
    password: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # Output goes to a file: a pipe nobody reads would fill up and block the node.
        log_path = self.data.parent / f"{self.name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    *WATAN,
                    "up",
                    "--data",
                    str(self.data),
                    "--port",
                    str(self.port),
                    "--no-discovery",
                    "--registration",
                    f"REG-{self.name}",
                ],
                env=ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log_path.read_text()[offset:]
            if "listening on" in text:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {log_path.read_text()[offset:]}")

    def password_pending(self) -> bool:
        return not (self.data / "node.json").exists() and not self.password

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def status(self) -> dict[str, object]:
        value: dict[str, object] = json.loads(_run("status", "--data", str(self.data), "--json"))
        return value

    def seq_of(self, other: Proc) -> int:
        heads = self.status()["heads"]
        assert isinstance(heads, dict)
        node_id = other.status()["node_id"]
        seq = heads.get(node_id, 0)
        assert isinstance(seq, int)
        return seq


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    nodes: list[Proc] = []
    yield nodes
    for node in nodes:
        node.stop()


def _new(nodes: list[Proc], tmp: Path, name: str) -> Proc:
    # each node stops and starts again on its port: one no other xdist worker can take
    node = Proc(name, tmp / name, restartable_port())
    nodes.append(node)
    node.start()  # first run: creates the node and its first admin
    node.stop()
    return node


def _invite(inviter: Proc, joiner: Proc) -> None:
    token = json.loads(
        _run("invite", "create", "--data", str(inviter.data), "--url", inviter.url, "--json")
    )
    _run(
        "invite",
        "accept",
        "--data",
        str(joiner.data),
        token["token"],
        "--fingerprint",
        token["fingerprint"],
        "--url",
        joiner.url,
    )
    # the inviting admin approves the joiner after comparing its fingerprint
    joiner_id = json.loads(_run("status", "--data", str(joiner.data), "--json"))["node_id"]
    peers = json.loads(_run("peers", "--data", str(inviter.data), "--json"))
    assert [p["state"] for p in peers if p["node_id"] == joiner_id] == ["proposed"]
    _run("peers", "approve", joiner_id, "--data", str(inviter.data))


NEW_PASSWORD = "a long new admin password 1"


async def _admin(session: aiohttp.ClientSession, node: Proc) -> str:
    """Sign in as the first admin (changing the one-time password the first time);
    returns the session's CSRF token."""
    first = not node.password
    password = (
        (node.data / "first-admin-password.txt").read_text().split("\n")[1]
        if first
        else node.password
    )
    async with session.post(
        f"{node.url}/api/v1/session", json={"username": "admin", "password": password}
    ) as response:
        assert response.status == 200, await response.text()
        csrf: str = (await response.json())["csrf_token"]
    if first:
        async with session.post(
            f"{node.url}/api/v1/session/password",
            json={"current_password": password, "new_password": NEW_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        ) as response:
            assert response.status in (200, 204), await response.text()
        node.password = NEW_PASSWORD
    return csrf


async def _append_profiles(node: Proc, count: int) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        csrf = await _admin(session, node)
        for index in range(count):
            body = {
                "name_ar": f"منظمة {node.name} {index}",
                "name_en": f"Org {node.name} {index}",
                "registration": f"REG-{node.name}",
                "governorate": "IQG01",
                "sectors": [],
            }
            async with session.put(
                f"{node.url}/api/v1/profile", json=body, headers={"X-CSRF-Token": csrf}
            ) as response:
                assert response.status == 200, await response.text()


async def _wait(predicate: object, what: str, timeout: float = 90.0) -> None:
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        if predicate():  # type: ignore[operator]
            print(f"{what}: {time.monotonic() - started:.1f} s", file=sys.stderr)
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_five_processes_in_a_chain_converge_catch_up_and_heal(
    tmp_path: Path, procs: list[Proc]
) -> None:
    nodes = [_new(procs, tmp_path, f"n{i}") for i in range(1, 6)]
    out = _run("federation", "create", "--data", str(nodes[0].data), "Test hub")
    assert "founded" in out
    nodes[0].start()
    for left, right in itertools.pairwise(nodes):
        _invite(left, right)  # left runs; right is stopped while it joins
        right.start()
    first, middle, last = nodes[0], nodes[2], nodes[4]
    # a chain: n1 - n2 - n3 - n4 - n5; n1's entries reach n5 through three nodes
    await _append_profiles(first, 3)
    target = first.status()["feed"]["seq"]  # type: ignore[index]
    await _wait(lambda: last.seq_of(first) == target, "n1 -> n5 through three nodes")
    # n3 goes offline while n1 appends 1000 entries; then n1 goes offline too, and
    # n3 catches up through n2
    middle.stop()
    started = time.monotonic()
    await _append_profiles(first, 1000)
    print(f"1000 appends: {time.monotonic() - started:.1f} s", file=sys.stderr)
    target = first.status()["feed"]["seq"]  # type: ignore[index]
    await _wait(lambda: nodes[1].seq_of(first) == target, "1000 entries n1 -> n2")
    first.stop()
    middle.start()
    await _wait(lambda: middle.seq_of(first) == target, "n3 catches up through n2", 120)
    await _wait(lambda: last.seq_of(first) == target, "and on to n5", 120)
    # partition: n3 (the middle) stops; both halves append; heal: every node converges
    middle.stop()
    await _append_profiles(nodes[1], 2)
    await _append_profiles(nodes[3], 2)
    middle.start()
    first.start()
    expected = {node.status()["node_id"]: node.status()["feed"]["seq"] for node in nodes}  # type: ignore[index]
    await _wait(
        lambda: all(
            {k: v for k, v in node.status()["heads"].items() if k in expected} == expected  # type: ignore[attr-defined]
            for node in nodes
        ),
        "partition healed",
        120,
    )
    assert protocol.fingerprint(bytes.fromhex(str(first.status()["node_id"])))
