"""Property-based fuzzing of the JSON API of a real node: Schemathesis reads the OpenAPI
document the node publishes and sends every ``/api/v1`` operation valid and invalid
input, as a signed-in admin with the CSRF token. Every answer must be a documented
status with a documented content type and body, never a server error; afterwards the
audit chain still verifies, the node is healthy and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REPO = Path(__file__).resolve().parents[2]
FIRST_PASSWORD_FILE = "first-admin-password.txt"
CSRF_HEADER = "X-CSRF-Token"
SESSION_COOKIE = "watan_session"
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 10.0
REQUEST_TIMEOUT_S = 10.0
#: Examples per operation and generation mode: enough to reach every branch of the
#: handlers' input checks, few enough that the whole run stays well under a minute.
MAX_EXAMPLES = 30
NEW_PASSWORD = "fuzzing admin's long password 7"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Input a generator rarely or never produces, each as (method, route, path, raw body):
#: integers past 64 bits, lone UTF-16 surrogates (valid JSON escapes, but no text),
#: NUL, NaN, infinities, duplicate keys and nesting deep enough to exhaust recursion.
HOSTILE: list[tuple[str, str, str, bytes | None]] = [
    ("GET", "/api/v1/audit", "/api/v1/audit?actor=9999999999999999999", None),
    ("GET", "/api/v1/audit", "/api/v1/audit?since_ms=9223372036854775808", None),
    ("GET", "/api/v1/audit", "/api/v1/audit?until_ms=-9223372036854775809", None),
    ("GET", "/api/v1/audit", "/api/v1/audit?before_seq=99999999999999999999999", None),
    ("GET", "/api/v1/audit", "/api/v1/audit?limit=9999999999999999999", None),
    ("GET", "/api/v1/audit", "/api/v1/audit?action=%ED%A0%80%00&actor=%EF%BC%91", None),
    ("GET", "/api/v1/accounts/{id}", "/api/v1/accounts/99999999999999999999999", None),
    ("GET", "/api/v1/accounts/{id}", "/api/v1/accounts/%EF%BC%92", None),
    (
        "POST",
        "/api/v1/accounts",
        "/api/v1/accounts",
        b'{"username": "surrogate", "display_name": "x\\ud800y", "role": "auditor"}',
    ),
    (
        "POST",
        "/api/v1/accounts",
        "/api/v1/accounts",
        b'{"username": "nul", "display_name": "x\\u0000y", "role": "auditor"}',
    ),
    ("POST", "/api/v1/accounts", "/api/v1/accounts", b'{"username": NaN, "x": Infinity}'),
    ("POST", "/api/v1/accounts", "/api/v1/accounts", b"[" * 30_000 + b"]" * 30_000),
    ("PATCH", "/api/v1/accounts/{id}", "/api/v1/accounts/2", b'{"role": "admin", "role": 1}'),
    (
        "PUT",
        "/api/v1/profile",
        "/api/v1/profile",
        b'{"name_ar": "\\udfff", "name_en": "a", "registration": "ab", "governorate": "IQG01",'
        b' "sectors": []}',
    ),
    (
        "POST",
        "/api/v1/session/password",
        "/api/v1/session/password",
        b'{"current_password": "\\ud800", "new_password": "\\udfff and a long tail 7"}',
    ),
]
#: Run last, in this order: they change or end the fuzzer's own session.
LAST = [("POST", "/api/v1/session/password"), ("POST", "/api/v1/session")]
FINAL = ("DELETE", "/api/v1/session")
#: Operations that may never succeed on the fuzzed node: a standalone node refuses
#: invites (409 STANDALONE), and the fuzzer's random node ids rarely name a peer (404).
MAY_NEVER_SUCCEED = {
    "POST /api/v1/invites",
    "POST /api/v1/peers/{id}/approve",
    "POST /api/v1/peers/{id}/block",
    "POST /api/v1/peers/{id}/unblock",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Node:
    """``watan up`` in a subprocess; its output goes to files (a busy access log would
    fill a pipe nobody reads and stall the node)."""

    def __init__(self, data: Path, logs: Path) -> None:
        self.data = data
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path, self.stderr_path = logs / "stdout.log", logs / "stderr.log"
        env = {k: v for k, v in os.environ.items() if k != "WATAN_DATABASE_URL"}
        env["PYTHONPATH"] = str(REPO)
        self._out: IO[str] = self.stdout_path.open("w")
        self._err: IO[str] = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "up", "--data", str(data), "--port", str(self.port)],
            stdout=self._out,
            stderr=self._err,
            text=True,
            env=env,
            cwd=REPO,
        )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"watan up exited {self.proc.returncode}: {self.stderr}")
            try:
                answer = requests.get(f"{self.base}/healthz", timeout=1)
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            assert answer.status_code == 200, answer.text
            return
        pytest.fail(f"watan up not healthy within {START_DEADLINE_S} s: {self.stderr}")

    def stop(self) -> int:
        """SIGTERM; the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"watan up did not stop within {STOP_DEADLINE_S} s after SIGTERM")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


@contextmanager
def running(data: Path, logs: Path) -> Iterator[Node]:
    node = Node(data, logs)
    try:
        yield node
    finally:
        node.close()


def _watan(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WATAN_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
        env=env,
        cwd=REPO,
    )


class Staff:
    """A signed-in API client: the session cookie lives in ``http``'s cookie jar."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.http = requests.Session()
        answer = self.http.post(
            f"{base}/api/v1/session",
            json={"username": username, "password": password},
            timeout=REQUEST_TIMEOUT_S,
        )
        assert answer.status_code == 200, answer.text
        self.account: dict[str, Any] = answer.json()["account"]
        self.csrf: str = answer.json()["csrf_token"]
        token = self.http.cookies.get(SESSION_COOKIE)
        assert token is not None
        self.token: str = token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {CSRF_HEADER: self.csrf} if method != "GET" else {}
        return self.http.request(
            method, self.base + path, headers=headers, timeout=REQUEST_TIMEOUT_S, **kwargs
        )


def _targets(case: schemathesis.Case[Any], account_id: int) -> bool:
    """Whether ``case`` would name account ``account_id`` in its path (as the handler
    reads it: ASCII digits, leading zeros allowed)."""
    text = str((case.path_parameters or {}).get("id", ""))
    return text.isascii() and text.isdigit() and int(text) == account_id


def _strategy(
    operation: Any, staff: Staff, existing: list[int]
) -> st.SearchStrategy[schemathesis.Case[Any]]:
    # The document declares the session cookie as an apiKey security scheme, so left
    # alone Schemathesis would generate that cookie too: fix it to the real session.
    cookies = {SESSION_COOKIE: staff.token}
    strategies = [
        operation.as_strategy(generation_mode=mode, cookies=cookies) for mode in GenerationMode
    ]
    if "{id}" not in operation.path:
        return st.one_of(strategies)
    # Most generated ids name no account: also aim valid input at accounts that exist.
    strategies += [
        operation.as_strategy(cookies=cookies, path_parameters={"id": account_id})
        for account_id in existing
    ]
    strategy = st.one_of(strategies)
    if operation.method.upper() != "GET":
        # Disabling, demoting or resetting the fuzzing admin itself would end its
        # session and make the rest of the run a series of 401s.
        own_id = staff.account["id"]
        strategy = strategy.filter(lambda case: not _targets(case, own_id))
    return strategy


def _fuzz(operation: Any, staff: Staff, existing: list[int], statuses: Counter[int]) -> str | None:
    """Fuzz one operation, counting the statuses it answers; the failure report, or
    None."""

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES * 2,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @hypothesis.given(case=_strategy(operation, staff, existing))
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(
            base_url=staff.base,
            session=staff.http,
            headers={CSRF_HEADER: staff.csrf},
            timeout=REQUEST_TIMEOUT_S,
        )
        statuses[response.status_code] += 1
        case.validate_response(
            response,
            checks=CHECKS,
            headers={CSRF_HEADER: staff.csrf},
            transport_kwargs={"base_url": staff.base, "session": staff.http},
        )

    try:
        run()
    except (Exception, BaseExceptionGroup) as error:  # a check's FailureGroup is the latter
        return f"{operation.method.upper()} {operation.path}:\n{error}"
    return None


def _hostile(staff: Staff, document: dict[str, Any]) -> list[str]:
    """Send :data:`HOSTILE` and the same sign-in without a session; the failures."""
    failures = []
    requests_ = [(m, r, p, b, staff.http, {CSRF_HEADER: staff.csrf}) for m, r, p, b in HOSTILE]
    login = b'{"username": "admin", "password": "\\udfff"}'
    requests_.append(("POST", "/api/v1/session", "/api/v1/session", login, requests.Session(), {}))
    for method, route, path, body, http, headers in requests_:
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        answer = http.request(
            method, staff.base + path, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S
        )
        documented = document["paths"][route][method.lower()]["responses"]
        kind = answer.headers.get("Content-Type", "")
        if (
            answer.status_code >= 500
            or str(answer.status_code) not in documented
            or not kind.startswith("application/json")
        ):
            failures.append(
                f"{method} {path} {body[:80] if body else ''!r}: {answer.status_code} "
                f"{kind} {answer.text[:200]}"
            )
    return failures


def _operations(schema: Any) -> list[Any]:
    """Every operation of the document, those that touch the fuzzer's own session last."""
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[(operation.method.upper(), operation.path)] = operation
    tail = [*LAST, FINAL]
    assert set(tail) <= set(found), sorted(found)
    first = [op for key, op in sorted(found.items()) if key not in tail]
    return first + [found[key] for key in tail]


def test_api_survives_fuzzing(tmp_path: Path) -> None:
    data = tmp_path / "node"
    with running(data, tmp_path) as node:
        node.wait_healthy()
        username, one_time = (data / FIRST_PASSWORD_FILE).read_text().split()
        admin = Staff(node.base, username, one_time)
        changed = admin.call(
            "POST",
            "/api/v1/session/password",
            json={"current_password": one_time, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 200, changed.text
        # A second admin session, which no fuzzed request uses, checks the node after.
        checker = Staff(node.base, username, NEW_PASSWORD)
        # Accounts for the id-taking operations to find (most fuzzed ids do not exist).
        existing = []
        for name, role in [("coord", "coordinator"), ("worker", "case_worker"), ("aud", "auditor")]:
            made = admin.call(
                "POST",
                "/api/v1/accounts",
                json={"username": name, "display_name": name.title(), "role": role},
            )
            assert made.status_code == 201, made.text
            existing.append(made.json()["account"]["id"])

        schema = schemathesis.openapi.from_url(
            f"{node.base}/api/v1/openapi.json", timeout=REQUEST_TIMEOUT_S
        )
        document = requests.get(f"{node.base}/api/v1/openapi.json", timeout=REQUEST_TIMEOUT_S)
        failures = _hostile(admin, document.json())
        admin_refused = {
            f"{method.upper()} {path}"
            for path, item in document.json()["paths"].items()
            for method, operation in item.items()
            if "(roles: " in operation.get("description", "")
            and "admin" not in operation["description"].split("(roles: ")[1]
        }
        statuses: dict[str, Counter[int]] = {}
        for operation in _operations(schema):
            key = f"{operation.method.upper()} {operation.path}"
            statuses[key] = Counter[int]()
            if (report := _fuzz(operation, admin, existing, statuses[key])) is not None:
                failures.append(report)

        # The node survived, and its store is whole.
        assert node.proc.poll() is None, node.stderr
        assert requests.get(f"{node.base}/healthz", timeout=REQUEST_TIMEOUT_S).status_code == 200
        verify = checker.call("GET", "/api/v1/audit/verify")
        assert verify.status_code == 200, verify.text
        assert verify.json()["ok"] is True, verify.json()
        me = checker.call("GET", f"/api/v1/accounts/{checker.account['id']}")
        assert me.status_code == 200, me.text
        assert me.json()["account"]["role"] == "admin"
        assert not me.json()["account"]["disabled"]
        summary = checker.call("GET", "/api/v1/node")
        assert summary.status_code == 200 and summary.json()["health"] == "ok", summary.text
        status = _watan("status", "--data", str(data), "--json")
        assert status.returncode == 0, status.stderr
        if _watan("audit", "verify", "--help").returncode == 0:
            audit = _watan("audit", "verify", "--data", str(data))
            assert audit.returncode == 0, audit.stdout + audit.stderr

        code = node.stop()
        stderr = node.stderr
    assert not failures, "\n\n".join(failures)
    assert code == 0, stderr[-5000:]
    assert "Traceback" not in stderr, stderr[stderr.index("Traceback") - 200 :][:5000]
    # The fuzzer reached the handlers: its session held until the operations that end
    # it, and every other operation succeeded at least once.
    # Operations the admin's role does not hold (e.g. coordinators' messages) are
    # refused every time, with 403 and never a 5xx.
    for key, seen in statuses.items():
        if tuple(key.split(" ")) in [*LAST, FINAL]:
            continue
        if key in admin_refused:
            assert set(seen) == {403}, (key, seen)
        elif key in MAY_NEVER_SUCCEED:
            assert seen and 401 not in seen and max(seen) < 500, (key, seen)
        else:
            assert 401 not in seen and any(200 <= s < 300 for s in seen), (key, seen)
