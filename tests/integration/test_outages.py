"""Outages under a running node (``watan up`` in a subprocess, driven over its JSON API).

* PostgreSQL restarted under the node, on a private cluster (:class:`PrivatePostgres`;
  the machine's shared server stays up for the other tests), once with a fast and
  once with an immediate stop: ``/healthz`` says 503 DB_UNREACHABLE, writes fail with
  503 UNAVAILABLE, the process stays up and a background loop's failure is one line,
  no traceback; when the server is back, health and writes work again without a
  restart, and every acknowledged write is still there.
* The disk full, with SQLite on a small tmpfs (:class:`SmallDisk`): writes and sign-ins
  fail with 507 STORAGE_FULL, ``/healthz`` says 503 STORAGE_FULL; once the filler is
  deleted they work again without a restart. After the node stops, the SQLite file
  passes ``PRAGMA integrity_check``, the audit chain and the node's own feed chain
  verify, and they hold exactly the acknowledged writes: no failed write left a trace.

Both need root (runuser, mount); they skip with the reason elsewhere, and fail under
CI=true, where they must run. The last test checks :class:`OutageLogFilter` alone.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest
import requests

import protocol
from node.ataa._service import PUBLISH_INTERVAL_S
from node.logs import OUTAGE_LOG_EVERY_S, OutageLogFilter
from node.storage import StorageError, StorageErrorCode
from tools.outage import OutageUnavailable, PrivatePostgres, SmallDisk

from ..conftest import restartable_port

REPO = Path(__file__).resolve().parents[2]
WATAN = (sys.executable, "-m", "node.cli")
NEW_PASSWORD = "an outage-proof admin password 9"
#: Hang guards, not timing checks: generous for a busy 2-core CI machine.
START_DEADLINE_S = 60.0
RECOVER_DEADLINE_S = 30.0
REQUEST_TIMEOUT_S = 20.0
STOP_DEADLINE_S = 20.0
#: The tmpfs a node's data directory lives on: a new SQLite node takes under 1 MiB.
DISK_MIB = 16


def _unavailable(reason: str) -> NoReturn:
    """Skip for a machine that cannot inject the fault; under CI it must."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the outage tests: {reason}")
    pytest.skip(reason)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WATAN_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _watan_json(*args: str) -> Any:
    done = subprocess.run(
        [*WATAN, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
        env=_env(),
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, f"watan {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def _free_port() -> int:
    """A free loopback port from the kernel (the node never restarts on it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _poll(what: str, deadline_s: float, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_s} s: {what}")
        time.sleep(0.1)


class Node:
    """``watan up`` in a subprocess, its output in files outside its data directory
    (a full disk must not silence the log, and a pipe nobody reads would stall it)."""

    def __init__(self, data: Path, logs: Path, *extra: str) -> None:
        self.data = data
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.stderr_path = logs / "node.stderr"
        self._out: IO[str] = (logs / "node.stdout").open("w")
        self._err: IO[str] = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [*WATAN, "up", "--data", str(data), "--port", str(port), "--no-discovery", *extra],
            stdout=self._out,
            stderr=self._err,
            env=_env(),
            cwd=REPO,
        )
        self.http = requests.Session()
        self.csrf = ""

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def health(self) -> tuple[int, dict[str, Any]]:
        answer = requests.get(f"{self.base}/healthz", timeout=REQUEST_TIMEOUT_S)
        return answer.status_code, answer.json()

    def wait_healthy(self, deadline_s: float = START_DEADLINE_S) -> None:
        def healthy() -> bool:
            assert self.alive(), f"watan up exited {self.proc.returncode}: {self.stderr}"
            try:
                return self.health()[0] == 200
            except requests.ConnectionError:
                return False

        _poll("the node answers /healthz with 200", deadline_s, healthy)

    def sign_in(self) -> None:
        """Sign in as the first admin and replace its one-time password."""
        one_time = (self.data / "first-admin-password.txt").read_text().split()[1]
        status, body = self.call("POST", "/api/v1/session", admin_login(one_time))
        assert status == 200, body
        self.csrf = body["csrf_token"]
        change = {"current_password": one_time, "new_password": NEW_PASSWORD}
        status, body = self.call("POST", "/api/v1/session/password", change)
        assert status == 200, body

    def call(
        self, method: str, path: str, body: Any = None, *, http: requests.Session | None = None
    ) -> tuple[int, dict[str, Any]]:
        """An API call; its status and JSON body (every answer here must be JSON, the
        errors included, with the code in the X-Watan-Error header too)."""
        answer = (http or self.http).request(
            method,
            self.base + path,
            json=body,
            headers={"X-CSRF-Token": self.csrf} if self.csrf else {},
            timeout=REQUEST_TIMEOUT_S,
        )
        assert answer.headers["Content-Type"].startswith("application/json"), answer.text
        value: dict[str, Any] = answer.json()
        if answer.status_code >= 400:
            assert answer.headers["X-Watan-Error"] == value["error"]["code"]
        return answer.status_code, value

    def put_profile(self, name: str) -> tuple[int, dict[str, Any]]:
        body = {
            "name_ar": "منظمة الاختبار",
            "name_en": name,
            "registration": "REG-OUT",
            "governorate": "IQG01",
            "sectors": [],
        }
        return self.call("PUT", "/api/v1/profile", body)

    def stop(self) -> None:
        """SIGTERM; it must exit cleanly (status 0)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"watan up did not stop within {STOP_DEADLINE_S} s of SIGTERM")
        assert code == 0, self.stderr

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()
        self.http.close()


def admin_login(password: str) -> dict[str, str]:
    return {"username": "admin", "password": password}


class Writes:
    """Profile edits sent to a node: each is one feed entry and one audit row in one
    transaction, so an acknowledged edit must leave both and a refused one neither."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.acked: dict[int, str] = {}  # seq -> name_en, for every 200

    def ok(self, name: str) -> None:
        status, body = self.node.put_profile(name)
        assert status == 200, body
        self.acked[body["seq"]] = name

    def refused(self, name: str, status: int, code: str) -> None:
        got, body = self.node.put_profile(name)
        assert (got, body["error"]["code"]) == (status, code), body

    def audited(self) -> dict[int, str]:
        """seq -> audit target of every profile edit in the audit log (via the API)."""
        status, body = self.node.call("GET", "/api/v1/audit?action=settings.profile&limit=200")
        assert status == 200, body
        return {int(r["target"].split(":")[1]): r["target"] for r in body["records"]}


def _no_tracebacks(node: Node) -> None:
    assert "Traceback" not in node.stderr, node.stderr[-4000:]


# -- PostgreSQL restarted under a running node --------------------------------------------


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as cleanup:
        yield cleanup


@pytest.fixture
def postgres(stack: ExitStack) -> PrivatePostgres:
    try:
        cluster = PrivatePostgres.create(restartable_port())
    except OutageUnavailable as why:
        _unavailable(str(why))
    stack.callback(cluster.close)
    cluster.start()
    return cluster


def _pg_outage(node: Node, pg: PrivatePostgres, writes: Writes, mode: str) -> None:
    pg.stop(mode)
    status, body = node.health()
    assert (status, body["status"], body["code"]) == (503, "unhealthy", "DB_UNREACHABLE"), body
    writes.refused(f"during the {mode} outage", 503, "UNAVAILABLE")
    assert node.call("GET", "/api/v1/audit")[0] == 503
    assert node.alive()


def test_postgres_restart_under_a_running_node(
    postgres: PrivatePostgres, stack: ExitStack, tmp_path: Path
) -> None:
    node = Node(tmp_path / "node", tmp_path, "--database-url", postgres.url)
    stack.callback(node.close)
    node.wait_healthy()
    node.sign_in()
    writes = Writes(node)
    writes.ok("before the outages")

    _pg_outage(node, postgres, writes, "fast")
    # A background loop (Ata'a's delivery publisher, every PUBLISH_INTERVAL_S) fails
    # too: its failure is one line naming the code, never a traceback.
    _poll(
        "the publisher's failure is logged",
        PUBLISH_INTERVAL_S * 2 + 10,
        lambda: "publishing deliveries failed: database UNREACHABLE" in node.stderr,
    )
    _no_tracebacks(node)
    postgres.start()
    node.wait_healthy(RECOVER_DEADLINE_S)
    writes.ok("after a fast restart")

    _pg_outage(node, postgres, writes, "immediate")  # as if the server lost power
    postgres.start()
    node.wait_healthy(RECOVER_DEADLINE_S)
    writes.ok("after an immediate restart")

    # Nothing acknowledged was lost, nothing refused was kept.
    assert sorted(writes.acked) == [2, 3, 4]  # seq 1 is the node's first profile
    assert writes.audited() == {seq: f"entry:{seq}" for seq in writes.acked}
    status = _watan_json("status", "--data", str(node.data))
    assert status["feed"]["seq"] == 4
    audit = _watan_json("audit", "verify", "--data", str(node.data))
    assert audit["ok"], audit
    assert node.alive()
    _no_tracebacks(node)
    node.stop()


# -- the disk full ------------------------------------------------------------------------


@pytest.fixture
def disk(stack: ExitStack, tmp_path: Path) -> SmallDisk:
    try:
        small = SmallDisk(tmp_path / "disk", DISK_MIB)
    except OutageUnavailable as why:
        _unavailable(str(why))
    stack.callback(small.close)
    return small


def _own_feed(db: Path, node_id: bytes, net: bytes) -> list[protocol.Entry]:
    """The node's own feed as stored, verified as one chain from seq 1."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT seq, wire FROM entries WHERE author = ? ORDER BY seq", (node_id,)
        ).fetchall()
    assert [seq for seq, _wire in rows] == list(range(1, len(rows) + 1))
    chain, _head = protocol.verify_chain([wire for _seq, wire in rows], net=net, now_ms=None)
    return chain


def test_disk_full_then_space_returns(disk: SmallDisk, stack: ExitStack, tmp_path: Path) -> None:
    node = Node(disk.path / "node", tmp_path)
    stack.callback(node.close)  # runs before the unmount: the node holds files there
    node.wait_healthy()
    node.sign_in()
    writes = Writes(node)
    writes.ok("before the disk filled")

    # Empty the WAL into the database file first (as SQLite's own checkpoints do), so
    # that the next write must grow it: on a full disk, it cannot.
    with sqlite3.connect(node.data / "watan.db", timeout=REQUEST_TIMEOUT_S) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
    disk.fill()
    assert disk.free_bytes() == 0
    status, body = node.health()
    assert (status, body["status"], body["code"]) == (503, "unhealthy", "STORAGE_FULL"), body
    metrics = requests.get(f"{node.base}/metrics", timeout=REQUEST_TIMEOUT_S).text
    assert "\nwatan_db_free_bytes 0.0\n" in metrics, metrics
    for attempt in range(3):
        writes.refused(f"on a full disk {attempt}", 507, "STORAGE_FULL")
    # A sign-in writes a session and an audit row: refused the same way, not a 500.
    status, body = node.call(
        "POST", "/api/v1/session", admin_login(NEW_PASSWORD), http=requests.Session()
    )
    assert (status, body["error"]["code"]) == (507, "STORAGE_FULL"), body
    assert node.alive()
    _no_tracebacks(node)

    disk.free()
    node.wait_healthy(RECOVER_DEADLINE_S)
    writes.ok("after space returned")
    writes.ok("and once more")
    assert writes.audited() == {seq: f"entry:{seq}" for seq in writes.acked}
    node.stop()
    _no_tracebacks(node)

    # The store after the outage, read by other processes than the node.
    status = _watan_json("status", "--data", str(node.data))
    node_id, net = bytes.fromhex(status["node_id"]), bytes.fromhex(status["net"])
    chain = _own_feed(node.data / "watan.db", node_id, net)
    assert [entry.seq for entry in chain[1:]] == sorted(writes.acked)
    assert {e.seq: e.content["name_en"] for e in chain[1:]} == writes.acked
    audit = _watan_json("audit", "verify", "--data", str(node.data))
    assert audit["ok"], audit


# -- the log filter alone -----------------------------------------------------------------


def test_outage_log_filter_drops_tracebacks_and_repeats() -> None:
    now = [1000.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(OutageLogFilter(lambda: now[0]))
    log = logging.getLogger("tests.outage_filter")
    log.addHandler(handler)
    log.propagate = False
    try:

        def fail(error: Exception) -> str:
            start = out.tell()
            try:
                raise error
            except Exception:
                log.exception("round failed")
            return out.getvalue()[start:]

        down = StorageError("connection refused", code=StorageErrorCode.UNREACHABLE)
        first = fail(down)
        assert first == "round failed: database UNREACHABLE: connection refused " + (
            f"(again within {OUTAGE_LOG_EVERY_S:.0f} s: not logged)\n"
        )
        assert fail(down) == ""  # the same failure, next round: not logged
        assert "database FULL" in fail(StorageError("full", code=StorageErrorCode.FULL))
        now[0] += OUTAGE_LOG_EVERY_S
        assert fail(down) == first  # a reminder while the outage lasts
        # A bug keeps its traceback, every time: so does a storage error that is not
        # an outage.
        for error in (ValueError("bug"), StorageError("x", code=StorageErrorCode.CORRUPT)):
            assert "Traceback" in fail(error) and "Traceback" in fail(error)
    finally:
        log.removeHandler(handler)
