"""A bounded soak: three real nodes under continuous appends and messages, restarted at
random, their memory sampled all along. Run on demand, not in CI.

    python -m tools.soak --minutes 10 [--json] [--dir DIR] [--keep]
    python -m tools.soak --seconds 20 --json        # a smoke run (tests/tools/test_soak.py)

Three ``watan up`` processes on loopback are founded and joined with the CLI as an
operator would (an invite, the fingerprint compared, the peer approved; the two joiners
approve each other), so every node is an approved peer of the others. Then, until the
time is up:

- each node appends to its own feed (its profile, through the JSON API) and sends texts
  to the other two (as a coordinator), each text unique, one conversation per pair;
- every so often one node, chosen at random, is stopped with SIGTERM or SIGKILL (at
  random) and started again after a short pause. ``n1`` is spared by default
  (``--restart-all`` includes it): memory growth shows only in a process that lives
  through the whole run;
- each node process's resident memory (``VmRSS`` in ``/proc/PID/status``) is sampled
  every second (``--sample-every``).

Then every node is started, the load stops, and the soak waits (``--drain-seconds``)
for the end state: the same heads on every node, and every text the API accepted
(201) at its recipient **exactly once** (a text whose request a SIGKILL cut off may
have been stored or not: at most once). Memory is judged per process lifetime, after a
warm-up: the median of its last quarter of samples against the median of its second
quarter (the least-squares slope is reported beside it). Growth above ``--max-growth``
(default 20 %) in a lifetime of at least ``--min-judged-seconds`` fails the run;
shorter lifetimes are reported, not judged. Last, every node is stopped with SIGTERM;
it must exit cleanly, and the tracebacks the nodes logged over the whole run (counted
in the summary; with ``--json`` one JSON document on stdout) fail it too.

Exit status: 0 when every check held, 1 when one failed, 2 when the federation could
not even be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from node import cli as node_cli
from node.daemon import node_status

__all__ = ["SoakConfig", "main", "run_soak"]

NAMES: Final = ("n1", "n2", "n3")
#: How long a node may take to start (migrations, key files) or to stop after SIGTERM.
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
#: A hang guard for one API call (a node under load answers in milliseconds).
REQUEST_TIMEOUT_S: Final = 30.0
PASSWORD: Final = "soak: a long enough password 7"
_LISTENING = re.compile(r"node ([0-9a-f]{64}) listening on")


class SetupError(Exception):
    """The federation could not be founded, joined or started."""


@dataclass(frozen=True)
class SoakConfig:
    seconds: float
    base: Path
    ports: tuple[int, int, int] | None = None
    append_every_s: float = 0.5
    message_every_s: float = 1.0
    restart_every_s: tuple[float, float] = (8.0, 20.0)
    down_s: tuple[float, float] = (0.5, 3.0)
    restart_all: bool = False
    drain_s: float = 180.0
    max_growth: float = 0.20
    min_judged_s: float = 120.0
    warmup_s: float = 10.0
    sample_every_s: float = 1.0
    seed: int | None = None


@dataclass
class NodeProc:
    """One ``watan up`` process, restarted on the same port and directory."""

    name: str
    data: Path
    port: int
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    incarnation: int = 0
    up: bool = False
    #: (incarnation) -> [(seconds since the soak began, RSS in KiB)]
    rss: dict[int, list[tuple[float, int]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fed_url(self) -> str:
        return f"{self.url}/fed/v1"

    async def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    *_WATAN,
                    "up",
                    "--data",
                    str(self.data),
                    "--port",
                    str(self.port),
                    "--no-discovery",
                    "--registration",
                    f"REG-{self.name}",
                    "--org-name-en",
                    f"Soak {self.name}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode("utf-8", "replace")
            found = _LISTENING.search(text)
            if found:
                self.node_id = found.group(1)
                self.incarnation += 1
                self.up = True
                return
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise SetupError(f"{self.name} did not start: {text[-2000:]}")

    async def stop(self, signum: int = signal.SIGTERM) -> bool:
        """Stop the process; whether it ended by itself (SIGTERM) in time."""
        self.up = False
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return True
        process.send_signal(signum)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            return False
        return signum != signal.SIGTERM or process.returncode == 0

    def sample(self, now: float) -> None:
        if not self.up or self.process is None:
            return
        kib = rss_kib(self.process.pid)
        if kib is not None:
            self.rss.setdefault(self.incarnation, []).append((now, kib))


_WATAN: Final = [sys.executable, "-m", "node.cli"]


def rss_kib(pid: int) -> int | None:
    """The process's resident set size in KiB (``VmRSS``), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


_CLI_LOCK = threading.Lock()


async def watan(*args: str) -> str:
    """Run ``watan ARGS`` (the node's CLI, ``node.cli.main``) and return its stdout.

    In this process, in a thread, one command at a time: the same code as the command
    line without starting Python for each of the dozen commands the setup needs, which
    on a busy two-core machine was most of the setup's time.

    Raises:
        SetupError: it failed.
    """
    return await asyncio.to_thread(_watan_sync, list(args))


def _watan_sync(args: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    # one at a time: sys.stdout and sys.stderr are the process's, not the thread's
    with _CLI_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = node_cli.main(args)
    if status != 0:
        raise SetupError(f"watan {' '.join(args[:2])}: {err.getvalue()[-2000:]}")
    return out.getvalue()


def say(message: str) -> None:
    """Progress, on stderr (stdout holds the summary)."""
    # sys.__stderr__: the CLI's commands borrow sys.stderr while they run
    print(f"soak {time.strftime('%H:%M:%S')} {message}", file=sys.__stderr__, flush=True)


def free_ports() -> tuple[int, int, int]:
    ports = []
    for _ in NAMES:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    return ports[0], ports[1], ports[2]


# --- setting the federation up ------------------------------------------------------------


async def create_federation(nodes: list[NodeProc]) -> list[tuple[Staff, Staff]]:
    """Found, invite, join and approve as an operator would with the CLI (as
    tests/integration/test_multiprocess.py does), every node an approved peer of the
    others; then sign in each node's staff. Returns (admin, coordinator) per node."""
    await asyncio.gather(*(node.start() for node in nodes))  # first run: creates the node
    await asyncio.gather(*(node.stop() for node in nodes))
    say("three nodes created")
    first, others = nodes[0], nodes[1:]
    await watan("federation", "create", "--data", str(first.data), "Soak federation")
    tokens = []
    for other in others:
        made = await watan(
            "invite", "create", "--data", str(first.data), "--url", first.url, "--json"
        )
        tokens.append(json.loads(made))
        # the inviting admin approves the joiner (its fingerprint read out to them)
        await watan(
            "peers", "approve", other.node_id, "--url", other.fed_url, "--data", str(first.data)
        )
    await first.start()
    first_staff = asyncio.create_task(staff_of(first))
    for other, token in zip(others, tokens, strict=True):
        await watan(
            "invite",
            "accept",
            "--data",
            str(other.data),
            token["token"],
            "--fingerprint",
            token["fingerprint"],
            "--url",
            other.url,
        )
    for other in others:  # the two joiners approve each other
        peer = others[1] if other is others[0] else others[0]
        await watan(
            "peers", "approve", peer.node_id, "--url", peer.fed_url, "--data", str(other.data)
        )
    await asyncio.gather(*(other.start() for other in others))
    say("federation founded and joined")
    rest = await asyncio.gather(*(staff_of(other) for other in others))
    return [await first_staff, *rest]


class Staff:
    """A signed-in API session (cookie and CSRF token) on one node."""

    def __init__(self, node: NodeProc) -> None:
        self.node = node
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        async with self.http.request(
            method, self.node.url + path, json=body, headers=headers
        ) as response:
            kind = response.headers.get("Content-Type", "")
            value = await response.json() if kind.startswith("application/json") else None
            return response.status, value

    async def sign_in(self, username: str, password: str, *, new_password: str | None) -> None:
        status, value = await self.call(
            "POST", "/api/v1/session", {"username": username, "password": password}
        )
        if status != 200:
            raise SetupError(f"{self.node.name}: sign-in as {username}: HTTP {status} {value}")
        self.csrf = value["csrf_token"]
        if new_password is not None:
            status, value = await self.call(
                "POST",
                "/api/v1/session/password",
                {"current_password": password, "new_password": new_password},
            )
            if status not in (200, 204):
                raise SetupError(f"{self.node.name}: password change: HTTP {status} {value}")


async def staff_of(node: NodeProc) -> tuple[Staff, Staff]:
    """The first admin (appends) and a coordinator (messages) of ``node``, signed in."""
    username, one_time = (node.data / "first-admin-password.txt").read_text().split()[:2]
    admin = Staff(node)
    await admin.sign_in(username, one_time, new_password=PASSWORD)
    status, value = await admin.call(
        "POST",
        "/api/v1/accounts",
        {"username": "coord", "display_name": "Coordinator", "role": "coordinator"},
    )
    if status != 201:
        raise SetupError(f"{node.name}: coordinator account: HTTP {status} {value}")
    coordinator = Staff(node)
    await coordinator.sign_in("coord", value["one_time_password"], new_password=PASSWORD)
    return admin, coordinator


async def status_of(node: NodeProc) -> dict[str, Any]:
    """What ``watan status --json`` prints (read from the node's database directly)."""
    return await node_status(node.data)


async def wait_for(predicate: Any, what: str, timeout_s: float) -> float:
    """Poll ``await predicate()`` until true; the seconds it took.

    Raises:
        SetupError: not within ``timeout_s``.
    """
    started = time.monotonic()
    while time.monotonic() < started + timeout_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise SetupError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --- the load -----------------------------------------------------------------------------


def thread_id(sender: NodeProc, recipient: NodeProc) -> str:
    """One conversation per ordered pair: the recipient reads it back at the end."""
    return hashlib.sha256(f"soak {sender.node_id} {recipient.node_id}".encode()).hexdigest()


@dataclass
class Ledger:
    """What the load did, as its clients saw it."""

    appends: Counter[str] = field(default_factory=Counter)
    append_failures: Counter[str] = field(default_factory=Counter)
    #: text -> (sender, recipient): accepted (201), or cut off (a connection lost)
    sent: dict[str, tuple[str, str]] = field(default_factory=dict)
    uncertain: dict[str, tuple[str, str]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    restarts: list[dict[str, Any]] = field(default_factory=list)


async def append_loop(
    node: NodeProc, admin: Staff, ledger: Ledger, every_s: float, stop: asyncio.Event
) -> None:
    index = 0
    while not stop.is_set():
        if node.up:
            index += 1
            body = {
                "name_ar": f"منظمة {node.name} {index}",
                "name_en": f"Soak {node.name} {index}",
                "registration": f"REG-{node.name}",
                "governorate": "IQG01",
                "sectors": [],
            }
            try:
                status, _ = await admin.call("PUT", "/api/v1/profile", body)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if status == 200:
                ledger.appends[node.name] += 1
            else:
                ledger.append_failures[f"{node.name}:{status}"] += 1
        await _pause(stop, every_s)


async def message_loop(
    node: NodeProc,
    coordinator: Staff,
    peers: list[NodeProc],
    ledger: Ledger,
    rng: random.Random,
    every_s: float,
    stop: asyncio.Event,
) -> None:
    index = 0
    while not stop.is_set():
        if node.up:
            index += 1
            peer = rng.choice(peers)
            text = f"soak {node.name}->{peer.name} #{index}"
            body = {"to": [peer.node_id], "text": text, "thread": thread_id(node, peer)}
            try:
                status, value = await coordinator.call("POST", "/api/v1/messages", body)
            except (aiohttp.ClientError, TimeoutError):
                ledger.uncertain[text] = (node.name, peer.name)
            else:
                if status == 201:
                    ledger.sent[text] = (node.name, peer.name)
                else:
                    code = (value or {}).get("error", {}).get("code", status)
                    ledger.refused[f"{node.name}:{code}"] += 1
        await _pause(stop, every_s)


async def chaos_loop(
    nodes: list[NodeProc],
    config: SoakConfig,
    ledger: Ledger,
    rng: random.Random,
    began: float,
    stop: asyncio.Event,
) -> None:
    victims = nodes if config.restart_all else nodes[1:]
    while not stop.is_set():
        await _pause(stop, rng.uniform(*config.restart_every_s))
        if stop.is_set():
            return
        node = rng.choice(victims)
        signum = rng.choice([signal.SIGTERM, signal.SIGKILL])
        at = time.monotonic() - began
        clean = await node.stop(signum)
        down = rng.uniform(*config.down_s)
        await asyncio.sleep(down)
        await node.start()
        ledger.restarts.append(
            {
                "at_s": round(at, 1),
                "node": node.name,
                "signal": signal.Signals(signum).name,
                # SIGTERM: did it shut down by itself, with status 0, in time
                "clean_exit": clean if signum == signal.SIGTERM else None,
                "down_s": round(time.monotonic() - began - at, 1),
            }
        )


async def sample_loop(
    nodes: list[NodeProc], began: float, every_s: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        now = time.monotonic() - began
        for node in nodes:
            node.sample(now)
        await _pause(stop, every_s)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# --- the end state ------------------------------------------------------------------------


async def converged(nodes: list[NodeProc]) -> dict[str, Any] | None:
    """The heads every node holds of the three feeds, if they agree; else None."""
    statuses = await asyncio.gather(*(status_of(node) for node in nodes))
    ids = [node.node_id for node in nodes]
    views = [{i: status["heads"].get(i, 0) for i in ids} for status in statuses]
    own = {
        node.node_id: (status["feed"] or {}).get("seq", 0)
        for node, status in zip(nodes, statuses, strict=True)
    }
    if all(view == own for view in views):
        return {node.name: own[node.node_id] for node in nodes}
    return None


async def inbox_texts(coordinators: dict[str, Staff], nodes: list[NodeProc]) -> Counter[str]:
    """Every text each node received, as its coordinator reads the pair conversations."""
    texts: Counter[str] = Counter()
    for recipient in nodes:
        staff = coordinators[recipient.name]
        for sender in nodes:
            if sender is recipient:
                continue
            status, value = await staff.call(
                "GET", f"/api/v1/messages/{thread_id(sender, recipient)}"
            )
            if status == 404:
                continue
            if status != 200:
                raise SetupError(f"{recipient.name}: reading messages: HTTP {status} {value}")
            texts.update(m["text"] for m in value["messages"] if m["direction"] == "in")
    return texts


def message_verdict(ledger: Ledger, texts: Counter[str]) -> dict[str, Any]:
    missing = sorted(t for t in ledger.sent if texts[t] == 0)
    duplicates = sorted(t for t, n in texts.items() if n > 1)
    unexpected = sorted(t for t in texts if t not in ledger.sent and t not in ledger.uncertain)
    return {
        "sent": len(ledger.sent),
        "uncertain": len(ledger.uncertain),
        "uncertain_delivered": sum(1 for t in ledger.uncertain if texts[t]),
        "received": sum(texts.values()),
        "refused": dict(ledger.refused),
        "missing": missing[:20],
        "duplicates": duplicates[:20],
        "unexpected": unexpected[:20],
        "exactly_once": not (missing or duplicates or unexpected),
    }


def memory_verdict(node: NodeProc, config: SoakConfig) -> dict[str, Any]:
    """Each lifetime of the node's process: RSS quartiles after a warm-up, and slope."""
    lifetimes = []
    for incarnation, samples in sorted(node.rss.items()):
        if len(samples) < 2:
            continue
        start, end = samples[0][0], samples[-1][0]
        duration = end - start
        warm = start + max(config.warmup_s, duration / 4)
        steady = [(t, kib) for t, kib in samples if t >= warm]
        item: dict[str, Any] = {
            "incarnation": incarnation,
            "seconds": round(duration, 1),
            "rss_kib_first": samples[0][1],
            "rss_kib_last": samples[-1][1],
            "rss_kib_max": max(kib for _, kib in samples),
        }
        if len(steady) >= 8:
            quarter = len(steady) // 4
            second = statistics.median(kib for _, kib in steady[quarter : 2 * quarter])
            last = statistics.median(kib for _, kib in steady[3 * quarter :])
            item["q4_over_q2"] = round(last / second, 4)
            item["slope_kib_per_min"] = round(_slope(steady) * 60, 1)
            judged = duration >= config.min_judged_s
            item["judged"] = judged
            item["grew"] = judged and last / second > 1 + config.max_growth
        lifetimes.append(item)
    return {"lifetimes": lifetimes}


def _slope(points: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (KiB) over time (s)."""
    mean_t = statistics.fmean(t for t, _ in points)
    mean_k = statistics.fmean(k for _, k in points)
    num = sum((t - mean_t) * (k - mean_k) for t, k in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return num / den if den else 0.0


def log_findings(nodes: list[NodeProc]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in nodes:
        text = node.log.read_text(errors="replace")
        out[node.name] = {
            "tracebacks": text.count("Traceback (most recent call last)"),
            "errors": len(re.findall(r"^\S+ \S+ ERROR ", text, re.MULTILINE)),
        }
    return out


# --- the whole run ------------------------------------------------------------------------


async def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Set up, load, restart, drain and judge; the summary.

    Raises:
        SetupError: the federation could not be set up, or a node not started again.
    """
    rng = random.Random(config.seed)
    env = {**os.environ, "WATAN_SYNC_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WATAN_DATABASE_URL", None)
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    ports = config.ports or free_ports()
    nodes = [
        NodeProc(name, config.base / name, port, config.base / f"{name}.log", env)
        for name, port in zip(NAMES, ports, strict=True)
    ]
    staff: list[Staff] = []
    try:
        setup_started = time.monotonic()
        pairs = await create_federation(nodes)
        staff = [s for pair in pairs for s in pair]
        admins = {node.name: pair[0] for node, pair in zip(nodes, pairs, strict=True)}
        coordinators = {node.name: pair[1] for node, pair in zip(nodes, pairs, strict=True)}

        async def everyone_known() -> bool:  # messages need the peers' profiles
            statuses = await asyncio.gather(*(status_of(node) for node in nodes))
            return all(len(s["heads"]) >= len(nodes) for s in statuses)

        say("staff signed in")
        await wait_for(everyone_known, "the first replication", 120)
        setup_s = time.monotonic() - setup_started
        say(f"set up in {setup_s:.0f} s; loading for {config.seconds:.0f} s")

        ledger = Ledger()
        stop, chaos_stop = asyncio.Event(), asyncio.Event()
        began = time.monotonic()
        sampler = asyncio.create_task(sample_loop(nodes, began, config.sample_every_s, stop))
        load = [
            asyncio.create_task(append_loop(n, admins[n.name], ledger, config.append_every_s, stop))
            for n in nodes
        ] + [
            asyncio.create_task(
                message_loop(
                    n,
                    coordinators[n.name],
                    [p for p in nodes if p is not n],
                    ledger,
                    random.Random(rng.random()),
                    config.message_every_s,
                    stop,
                )
            )
            for n in nodes
        ]
        chaos = asyncio.create_task(chaos_loop(nodes, config, ledger, rng, began, chaos_stop))
        await asyncio.sleep(config.seconds)
        chaos_stop.set()
        await chaos  # a restart under way finishes: every node is up again
        for node in nodes:
            if not node.up:
                await node.start()
        stop.set()
        await asyncio.gather(*load, sampler)
        loaded_s = time.monotonic() - began
        say(f"load stopped after {len(ledger.restarts)} restarts; draining")

        heads: dict[str, Any] = {}

        async def settled() -> bool:
            texts = await inbox_texts(coordinators, nodes)
            if any(texts[t] == 0 for t in ledger.sent):
                return False
            found = await converged(nodes)
            if found is None:
                return False
            heads.update(found)
            return True

        try:
            drain_s: float | None = await wait_for(settled, "the end state", config.drain_s)
        except SetupError:
            drain_s = None
        texts = await inbox_texts(coordinators, nodes)
        messages = message_verdict(ledger, texts)
        memory = {node.name: memory_verdict(node, config) for node in nodes}
        grew = [
            f"{name}#{item['incarnation']}"
            for name, verdict in memory.items()
            for item in verdict["lifetimes"]
            if item.get("grew")
        ]
        judged = any(i.get("judged") for v in memory.values() for i in v["lifetimes"])
        # the last shutdown counts too: SIGTERM each node, then read what they logged
        clean = await asyncio.gather(*(node.stop() for node in nodes))
        logs = log_findings(nodes)
        tracebacks = sum(v["tracebacks"] for v in logs.values())
        summary = {
            "ok": drain_s is not None
            and messages["exactly_once"]
            and not grew
            and not tracebacks
            and all(clean),
            "seconds": {
                "setup": round(setup_s, 1),
                "load": round(loaded_s, 1),
                "drain": None if drain_s is None else round(drain_s, 1),
            },
            "nodes": {
                node.name: {
                    "node_id": node.node_id,
                    "appends": ledger.appends[node.name],
                    "lifetimes": node.incarnation,
                }
                for node in nodes
            },
            "append_failures": dict(ledger.append_failures),
            "restarts": ledger.restarts,
            "final_stop_clean": dict(zip(NAMES, clean, strict=True)),
            "converged": drain_s is not None,
            "heads": heads,
            "messages": messages,
            "memory": {
                "max_growth": config.max_growth,
                "min_judged_seconds": config.min_judged_s,
                "judged": judged,
                "grew": grew,
                "nodes": memory,
            },
            "logs": logs,
        }
        return summary
    finally:
        for member in staff:
            await member.close()
        await asyncio.gather(*(node.stop() for node in nodes))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.soak", description=__doc__.split("\n")[0]
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long to load the nodes (default 10)")
    length.add_argument("--seconds", type=float, help="the same, in seconds (smoke runs)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--dir", type=Path, help="where the nodes live (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the directory afterwards")
    parser.add_argument("--ports", help="three ports, comma-separated (default: free ones)")
    parser.add_argument("--seed", type=int, help="random seed (restarts, recipients)")
    parser.add_argument("--append-every", type=float, default=0.5, metavar="S")
    parser.add_argument("--message-every", type=float, default=1.0, metavar="S")
    parser.add_argument(
        "--restart-every", type=float, nargs=2, default=(8.0, 20.0), metavar=("MIN", "MAX")
    )
    parser.add_argument("--down", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--restart-all", action="store_true", help="n1 is restarted too")
    parser.add_argument("--drain-seconds", type=float, default=180.0, metavar="S")
    parser.add_argument("--max-growth", type=float, default=0.20, metavar="FRACTION")
    parser.add_argument("--min-judged-seconds", type=float, default=120.0, metavar="S")
    parser.add_argument(
        "--warmup-seconds", type=float, default=10.0, metavar="S", help="RSS samples ignored"
    )
    parser.add_argument(
        "--sample-every", type=float, default=1.0, metavar="S", help="RSS sampling interval"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 10)
    if seconds <= 0:
        raise SystemExit("the soak needs a positive duration")
    ports = None
    if args.ports:
        parts = tuple(int(p) for p in args.ports.split(","))
        if len(parts) != 3:
            raise SystemExit("--ports takes three ports")
        ports = (parts[0], parts[1], parts[2])
    base = args.dir or Path(tempfile.mkdtemp(prefix="watan-soak-"))
    base.mkdir(parents=True, exist_ok=True)
    config = SoakConfig(
        seconds=seconds,
        base=base,
        ports=ports,
        append_every_s=args.append_every,
        message_every_s=args.message_every,
        restart_every_s=tuple(args.restart_every),
        down_s=tuple(args.down),
        restart_all=args.restart_all,
        drain_s=args.drain_seconds,
        max_growth=args.max_growth,
        min_judged_s=args.min_judged_seconds,
        warmup_s=args.warmup_seconds,
        sample_every_s=args.sample_every,
        seed=args.seed,
    )
    try:
        summary = asyncio.run(run_soak(config))
    except SetupError as error:
        print(f"soak: {error}", file=sys.stderr)
        return 2
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    summary["dir"] = str(base) if args.keep or args.dir else None
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print(summary)
    return 0 if summary["ok"] else 1


def _print(summary: dict[str, Any]) -> None:
    messages, memory = summary["messages"], summary["memory"]
    print(f"soak {'passed' if summary['ok'] else 'FAILED'}: {summary['seconds']}")
    for name, node in summary["nodes"].items():
        lifetimes = memory["nodes"][name]["lifetimes"]
        growth = [i.get("q4_over_q2") for i in lifetimes]
        lives = node["lifetimes"]
        print(f"  {name}: {node['appends']} appends, {lives} lifetimes, RSS q4/q2 {growth}")
    print(f"  restarts: {len(summary['restarts'])}; converged: {summary['converged']}")
    print(
        f"  messages: {messages['sent']} sent, {messages['received']} received, exactly once: "
        f"{messages['exactly_once']} (missing {messages['missing']}, duplicates "
        f"{messages['duplicates']})"
    )
    print(f"  memory grew: {memory['grew'] or 'no'} (judged: {memory['judged']})")
    print(f"  logs: {summary['logs']}")


if __name__ == "__main__":
    raise SystemExit(main())
