"""The node's life cycle: first-run init (in process, fake clock, both backends), the
health endpoint, and the real ``watan`` command in a subprocess on a free port."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import protocol
from node.clock import FakeClock
from node.config import load_config, standalone_net
from node.daemon import (
    FIRST_PASSWORD_FILE,
    NodeError,
    OrgDetails,
    db_upgrade,
    init_node,
    node_status,
)
from node.storage import Database, FeedStore
from node.web import make_app
from tools._synthetic import households

from .conftest import NOW, _drop_postgres_database, _postgres_database

REPO = Path(__file__).resolve().parents[2]
#: Bounds for the subprocess tests: start-up imports SQLAlchemy, Alembic and aiohttp
#: (about a second); generous so that a loaded CI machine does not flake.
START_DEADLINE_S = 20.0
STOP_DEADLINE_S = 10.0
POLL_S = 0.05
PASSWORD = "s3cret-pw-" + secrets.token_hex(4)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (the node's own SQLite file) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield None
        return
    name = f"watan_test_{secrets.token_hex(6)}"
    url = await _postgres_database(name)
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


# -- first-run init, in process --------------------------------------------------------


async def test_first_run_creates_node(tmp_path: Path, database_url: str | None) -> None:
    data = tmp_path / "node"
    clock = FakeClock(NOW)
    node, created = await init_node(data, clock=clock, database_url=database_url)
    try:
        assert created
        node_id = node.identity.node_id
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        config = load_config(data)
        assert config.node_id == node_id
        assert config.net == standalone_net(node_id)
        assert config.standalone and config.profile_provisional
        assert config.created_ms == NOW
        assert config.database_url == database_url
        assert (data / "watan.db").exists() == (database_url is None)
        head = await node.feeds.head(node_id)
        assert head is not None and head.seq == 1 and head.ts == NOW
        wire = await node.feeds.get(node_id, 1)
        assert wire is not None
        entry = protocol.verify_entry(wire, net=config.net, now_ms=None)
        assert entry.kind == "node.profile/1"
        profile = entry.body
        assert isinstance(profile, protocol.Profile)
        assert profile.enc_key == node.identity.enc_key
        assert (profile.name_en, profile.registration, profile.governorate) == (
            "New organisation",
            "PENDING",
            "IQG01",
        )
        assert (profile.role, profile.sectors, profile.endpoints) == ("ngo", [], [])
        # The first admin, with a one-time password saved 0600 for the operator.
        assert node.first_password is not None
        saved = data / FIRST_PASSWORD_FILE
        assert saved.read_text() == f"admin\n{node.first_password}\n"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        admin = await node.accounts.store.by_username("admin")
        assert admin is not None and admin.must_change_password and admin.role.value == "admin"
    finally:
        await node.close()

    clock.advance(60_000)
    again, created = await init_node(data, clock=clock, database_url=database_url)
    try:
        assert not created
        assert again.first_password is None  # shown once, on the run that made it
        assert (data / FIRST_PASSWORD_FILE).exists()  # until the admin changes it
        assert again.identity.node_id == node_id
        assert load_config(data).created_ms == NOW
        assert await again.feeds.heads() == {node_id: (1, entry.id)}  # no second profile
    finally:
        await again.close()


async def test_first_run_with_organisation_details(tmp_path: Path) -> None:
    org = OrgDetails(
        name_ar="جمعية الأمل", name_en="Al-Amal", registration="1R/2024-77", governorate="IQG10"
    )
    node, _ = await init_node(tmp_path / "n", clock=FakeClock(NOW), org=org, port=9001)
    try:
        wire = await node.feeds.get(node.identity.node_id, 1)
        assert wire is not None
        body = protocol.verify_entry(wire, net=node.config.net, now_ms=None).body
        assert isinstance(body, protocol.Profile)
        assert (body.name_ar, body.registration, body.governorate) == (
            "جمعية الأمل",
            "1R/2024-77",
            "IQG10",
        )
        config = load_config(tmp_path / "n")
        assert not config.profile_provisional
        assert config.port == 9001
    finally:
        await node.close()


async def test_invalid_organisation_details_create_nothing(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="invalid organisation details"):
        await init_node(tmp_path / "n", clock=FakeClock(NOW), org=OrgDetails(governorate="IQG20"))
    assert not (tmp_path / "n" / "node.json").exists()


async def test_unset_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="clock is not set"):
        await init_node(tmp_path / "n", clock=FakeClock(0))
    assert not (tmp_path / "n" / "node.json").exists()


async def test_bad_directories(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("not a node")
    with pytest.raises(NodeError, match="is not a directory"):
        await init_node(file, clock=FakeClock(NOW))
    with pytest.raises(NodeError, match="cannot create"):
        await init_node(file / "below", clock=FakeClock(NOW))


async def test_moving_to_another_database_is_refused(tmp_path: Path) -> None:
    node, _ = await init_node(tmp_path / "n", clock=FakeClock(NOW))
    await node.close()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(NodeError, match="another database"):
        await init_node(tmp_path / "n", clock=FakeClock(NOW), database_url=other)


async def test_status_and_db_upgrade(tmp_path: Path, database_url: str | None) -> None:
    node, _ = await init_node(tmp_path / "n", clock=FakeClock(NOW), database_url=database_url)
    node_id = node.identity.node_id
    await node.ataa.start()
    record = next(households(7, 1))
    await node.ataa.households.create(record, actor=None)
    await node.ataa.close()
    await node.close()
    status = await node_status(tmp_path / "n")
    ataa = status["ataa"]
    assert ataa["households"] == 1 and ataa["households_weak"] == 0
    assert ataa["pseudonyms_pending"] == 1  # standalone: no oracles to ask
    assert ataa["deliveries"] == ataa["allocations_indexed"] == ataa["imports_running"] == 0
    assert record.national_id is not None and record.national_id not in json.dumps(status)
    assert status["node_id"] == node_id.hex()
    assert status["fingerprint"] == protocol.fingerprint(node_id)
    assert status["feed"]["seq"] == 1
    assert status["peers"] == []
    assert status["heads"] == {node_id.hex(): 1}
    assert await db_upgrade(tmp_path / "n") == Database.head_revision()
    with pytest.raises(NodeError, match="not a Watan node directory"):
        await node_status(tmp_path)


# -- the health endpoint ---------------------------------------------------------------


async def _get_healthz(tmp_path: Path, db: Database | None = None) -> tuple[int, dict[str, Any]]:
    clock = FakeClock(NOW)
    node, _ = await init_node(tmp_path / "n", clock=clock)
    try:
        svc = node.services(clock)
        if db is not None:
            svc.db = db
        async with TestClient(TestServer(make_app(svc))) as client:
            response = await client.get("/healthz")
            body = await response.json()
            assert body["node_id"] == node.identity.node_id.hex()
            return response.status, body
    finally:
        await node.close()


async def test_healthz_ok(tmp_path: Path) -> None:
    status, body = await _get_healthz(tmp_path)
    assert status == 200
    assert body["status"] == "ok" and set(body) == {"status", "node_id"}


async def test_healthz_unreachable_database_hides_the_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database.from_url(f"postgresql://watan:{PASSWORD}@127.0.0.1:1/watan")
    try:
        status, body = await _get_healthz(tmp_path, db)
    finally:
        await db.close()
    assert status == 503
    assert body["status"] == "unhealthy" and body["reason"] == "database unreachable"
    assert PASSWORD not in caplog.text


# -- the real command, in a subprocess -------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WATAN_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _watan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
        env=env or _env(),
        cwd=REPO,
    )


def _healthz(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)
    except OSError:
        return None  # not listening yet


class Running:
    def __init__(self, data: Path, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "up", "--data", str(data), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=REPO,
        )
        self.stdout = self.stderr = ""

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop(expect=None)
                pytest.fail(f"watan up exited {self.proc.returncode}: {self.stderr}")
            answer = _healthz(self.port)
            if answer is not None:
                assert answer[0] == 200, answer
                return answer[1]
            time.sleep(POLL_S)
        self.stop(expect=None)
        pytest.fail(f"watan up not healthy within {START_DEADLINE_S} s: {self.stderr}")

    def stop(self, *, expect: int | None = 0, signum: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, self.stderr = self.proc.communicate()
            pytest.fail(f"watan up did not stop within {STOP_DEADLINE_S} s after SIGTERM")
        if expect is not None:
            assert self.proc.returncode == expect, self.stderr


@contextmanager
def running(data: Path) -> Iterator[Running]:
    node = Running(data, _free_port())
    try:
        yield node
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
        node.proc.communicate()


async def _own_entry(data: Path, node_id: bytes) -> protocol.Entry:
    db = Database.from_url(f"sqlite:///{data / 'watan.db'}")
    try:
        wire = await FeedStore(db, own=node_id).get(node_id, 1)
    finally:
        await db.close()
    assert wire is not None
    return protocol.verify_entry(wire, net=standalone_net(node_id), now_ms=None)


async def test_up_status_stop_restart(tmp_path: Path) -> None:
    data = tmp_path / "node"
    with running(data) as node:
        health = node.wait_healthy()
        node_id = health["node_id"]
        shown = _watan("status", "--data", str(data), "--json")
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        assert status["node_id"] == node_id
        assert status["feed"]["seq"] == 1
        assert status["peers"] == []
        assert status["heads"] == {node_id: 1}
        entry = await _own_entry(data, bytes.fromhex(node_id))
        assert entry.kind == "node.profile/1"
        assert entry.id.hex() == status["feed"]["id"]
        decoded = _watan("protocol", "decode", entry.wire.hex())
        assert decoded.returncode == 0 and "node.profile/1" in decoded.stdout
        readable = _watan("status", "--data", str(data))
        assert readable.returncode == 0 and status["fingerprint"] in readable.stdout
        node.proc.send_signal(signal.SIGTERM)  # a second signal during shutdown is harmless
        node.stop()
    assert f"http://127.0.0.1:{node.port}" in node.stdout
    assert status["fingerprint"] in node.stdout
    one_time = (data / FIRST_PASSWORD_FILE).read_text().split()[1]
    assert f"one-time password {one_time}" in node.stdout

    with running(data) as again:
        assert again.wait_healthy()["node_id"] == node_id
        status = json.loads(_watan("status", "--data", str(data), "--json").stdout)
        assert status["feed"]["seq"] == 1 and status["heads"] == {node_id: 1}
        again.stop(signum=signal.SIGINT)
    assert "one-time password" not in again.stdout


def test_taken_port_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _watan("up", "--data", str(tmp_path / "n"), "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use; choose another with --port" in result.stderr


def test_data_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    result = _watan("up", "--data", str(file), "--port", str(_free_port()))
    assert result.returncode == 2
    assert "is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_postgres_exits_2_without_password(tmp_path: Path) -> None:
    env = _env()
    env["WATAN_DATABASE_URL"] = f"postgresql://watan:{PASSWORD}@127.0.0.1:1/watan"
    result = _watan("up", "--data", str(tmp_path / "n"), "--port", str(_free_port()), env=env)
    assert result.returncode == 2
    assert "127.0.0.1" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_status_of_a_non_node_directory_exits_2(tmp_path: Path) -> None:
    for args in (["status"], ["db", "upgrade"]):
        result = _watan(*args, "--data", str(tmp_path))
        assert result.returncode == 2
        assert "not a Watan node directory" in result.stderr
