"""Three nodes in three network namespaces on one bridge (``netns.py``) find each other by
real multicast DNS, are approved, replicate and exchange a message: each a real
``watan up`` process, driven only through the CLI and the JSON API as operators would.

Node 1 founds the federation; nodes 2 and 3 join it through node 1's invites (joining
needs the genesis) and so know node 1 only. Nodes 2 and 3 must then find *each other* on
the LAN: each must list the other as a ``proposed`` peer with its address on the bridge,
learnt from its mDNS advert. Their admins approve each other (``watan peers approve``);
node 1 is then stopped, so that what follows can only travel between 2 and 3 directly:
an entry appended on node 3 (a profile edit) reaches node 2, and a message a coordinator
of node 2 sends through the API shows, unread, in node 3's inbox (and as delivered on 2).

Needs root and ``ip netns``; without them the test is skipped with the reason, except
under ``CI=true`` on a root machine with ``ip``, where failing to make namespaces fails.

This module is also the HTTP client that runs inside a namespace (the test's own
namespace cannot reach the bridge): ``python -m tests.integration.test_netns_federation
--client URL`` reads one JSON request per line (``{"method", "path", "body"}``) and
prints one JSON line per answer (``{"status", "body"}``), keeping the session cookie and
CSRF token of the last sign-in.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tests.integration.netns import Host, Lan, LoggedProcess, NetnsProcess, lan_or_skip

REPO = Path(__file__).resolve().parents[2]
WATAN = [sys.executable, "-m", "node.cli"]
PORT = 8470
ENV = {"WATAN_SYNC_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}
#: For commands in the test's own namespace (``Lan`` adds ``os.environ`` itself).
ROOT_ENV = {**os.environ, **ENV}
#: A guard against hanging, not a benchmark: the test takes 20-30 s on two idle cores
#: (most of it Python start-ups of ``watan`` commands), about twice that on busy ones.
BUDGET_S = 90.0
#: A node is up within this (first run: keys, migrations, the first admin's hash).
START_TIMEOUT_S = 30.0
#: One CLI command or one HTTP call.
COMMAND_TIMEOUT_S = 30.0
ADMIN_PASSWORD = "a long new admin password 1"
COORDINATOR_PASSWORD = "a long coordinator password 2"
TEXT = "اجتماع التنسيق يوم الأحد\nmeeting on Sunday"

T = TypeVar("T")


@dataclass
class NsNode:
    """One node: its directory (in the test's namespace) and its processes (in its own)."""

    net: Lan
    host: Host
    data: Path
    process: LoggedProcess | None = None
    client: NetnsProcess | None = None
    node_id: str = ""

    @property
    def name(self) -> str:
        return f"node {self.host.index}"

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{PORT}"

    @property
    def log(self) -> Path:
        return self.data.parent / f"n{self.host.index}.log"

    def launch(self, *, discovery: bool = True) -> None:
        """``watan up`` inside the node's namespace, on all its addresses."""
        assert self.process is None
        argv = [
            *WATAN, "up", "--data", str(self.data),
            "--host", "0.0.0.0", "--port", str(PORT), "--public-url", self.url,
            "--registration", f"REG-{self.host.index}",
        ]  # fmt: skip
        if not discovery:
            argv.append("--no-discovery")
        self.process = self.net.run_logged(self.host, argv, log=self.log, env=ENV, cwd=REPO)

    def wait_ready(self) -> None:
        assert self.process is not None
        line = self.process.wait_for_text("listening on", START_TIMEOUT_S)
        self.node_id = line.split("watan: node ", 1)[1].split(" ", 1)[0]

    def stop(self) -> None:
        if self.process is not None:
            assert self.process.stop() == 0, f"{self.name} did not stop cleanly"
            self.process = None

    def watan(self, *args: str) -> str:
        """A ``watan`` command on this node's directory, from the test's namespace."""
        done = subprocess.run(
            [*WATAN, *args, "--data", str(self.data)],
            cwd=REPO,
            env=ROOT_ENV,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"watan {' '.join(args)} ({self.name}): {done.stderr}"
        return done.stdout

    def watan_inside(self, *args: str) -> str:
        """A ``watan`` command that reaches the network: inside this node's namespace."""
        argv = [*WATAN, *args, "--data", str(self.data)]
        done = self.net.run_to_end(self.host, argv, timeout=COMMAND_TIMEOUT_S, env=ENV, cwd=REPO)
        assert done.returncode == 0, f"watan {' '.join(args)} ({self.name}): {done.stderr}"
        return done.stdout

    def peers(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = json.loads(self.watan("peers", "--json"))
        return value

    def status(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.watan("status", "--json"))
        return value

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One call to the node's JSON API, from inside its namespace."""
        if self.client is None:
            argv = [sys.executable, "-m", "tests.integration.test_netns_federation"]
            self.client = self.net.run_in(
                self.host,
                [*argv, "--client", self.url],
                env={"PYTHONUNBUFFERED": "1"},
                cwd=REPO,
                stdin=subprocess.PIPE,
            )
        assert self.client.stdin is not None
        self.client.stdin.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")
        self.client.stdin.flush()
        answer = json.loads(self.client.wait_for_line(lambda _line: True, COMMAND_TIMEOUT_S))
        return answer["status"], answer["body"]

    def sign_in(self, username: str, password: str, new_password: str | None = None) -> None:
        """Sign the client in (changing a one-time password to ``new_password``)."""
        status, body = self.api(
            "POST", "/api/v1/session", {"username": username, "password": password}
        )
        assert status == 200, f"{self.name}: sign-in as {username}: {body}"
        if new_password is not None:
            status, body = self.api(
                "POST",
                "/api/v1/session/password",
                {"current_password": password, "new_password": new_password},
            )
            assert status == 200, f"{self.name}: password change of {username}: {body}"

    def sign_in_admin(self) -> None:
        first = (self.data / "first-admin-password.txt").read_text().split("\n")[1]
        self.sign_in("admin", first, ADMIN_PASSWORD)

    def sign_in_new_coordinator(self) -> None:
        """As the (signed-in) admin: create a coordinator, then sign in as it."""
        status, body = self.api(
            "POST",
            "/api/v1/accounts",
            {"username": "coord", "display_name": "Coordinator", "role": "coordinator"},
        )
        assert status == 201, f"{self.name}: account creation: {body}"
        self.sign_in("coord", body["one_time_password"], COORDINATOR_PASSWORD)


def _parallel(*calls: Callable[[], T]) -> list[T]:
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def _wait(what: str, predicate: Callable[[], bool], deadline: float) -> None:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    print(f"{what}: {time.monotonic() - started:.1f} s", file=sys.stderr)


@contextmanager
def _logs_on_failure(nodes: list[NsNode]) -> Iterator[None]:
    """On failure, print the end of every node's log (pytest shows it with the error)."""
    try:
        yield
    except BaseException:
        for node in nodes:
            if node.log.exists():
                tail = "\n".join(node.log.read_text(errors="replace").splitlines()[-60:])
                print(f"--- {node.name} ({node.log}) ---\n{tail}", file=sys.stderr)
        raise


def _discovered(node: NsNode, other: NsNode, network: ipaddress.IPv4Network) -> bool:
    """Whether ``node`` lists ``other`` as proposed, at an address on the bridge."""
    for peer in node.peers():
        if peer["node_id"] == other.node_id:
            assert peer["state"] == "proposed", peer  # found on the LAN, not yet approved
            assert peer["source"] == "lan", peer
            if peer["url"] is None:
                return False  # an advert without a usable address: wait for the next
            host = urlsplit(peer["url"]).hostname
            assert host is not None and ipaddress.ip_address(host) in network, peer
            assert peer["url"] == f"{other.url}/fed/v1", peer
            return True
    return False


def test_three_namespaces_discover_approve_replicate_and_message(tmp_path: Path) -> None:
    started = time.monotonic()
    deadline = started + BUDGET_S
    with lan_or_skip(3) as net:
        nodes = [NsNode(net, host, tmp_path / f"n{host.index}") for host in net.hosts]
        one, two, three = nodes
        with _logs_on_failure(nodes):
            # Each node's first run creates it (keys, database, first admin); then stop.
            for node in nodes:
                node.launch(discovery=False)
            for node in nodes:
                node.wait_ready()
            for node in nodes:
                node.stop()
            print(f"nodes created: {time.monotonic() - started:.1f} s", file=sys.stderr)

            # Node 1 founds the federation; 2 and 3 join through its invites.
            assert "founded" in one.watan("federation", "create", "Netns hub")
            one.launch()
            one.wait_ready()

            def invite() -> dict[str, str]:
                value: dict[str, str] = json.loads(
                    one.watan("invite", "create", "--url", one.url, "--json")
                )
                return value

            def accept(node: NsNode, token: dict[str, str]) -> str:
                fingerprint = token["fingerprint"]
                return node.watan_inside(
                    "invite", "accept", token["token"], "--fingerprint", fingerprint,
                    "--url", node.url,
                )  # fmt: skip

            tokens = _parallel(invite, invite)
            _parallel(lambda: accept(two, tokens[0]), lambda: accept(three, tokens[1]))
            for node in (two, three):
                node.launch()
            for node in (two, three):
                node.wait_ready()
            print(f"federation joined: {time.monotonic() - started:.1f} s", file=sys.stderr)

            # 2 and 3 know only node 1; running, they find each other by mDNS (a peer
            # learnt from an advert has the source "lan", unlike one from an invite).
            _wait(
                "2 and 3 discover each other",
                lambda: all(
                    _parallel(
                        lambda: _discovered(two, three, net.network),
                        lambda: _discovered(three, two, net.network),
                    )
                ),
                deadline,
            )
            _parallel(
                lambda: two.watan("peers", "approve", three.node_id),
                lambda: three.watan("peers", "approve", two.node_id),
            )
            # From now on nothing can go through node 1.
            one.stop()

            # Replication: an entry appended on 3 reaches 2.
            three.sign_in_admin()
            profile = {
                "name_ar": "منظمة الشبكة ٣",
                "name_en": "Netns org 3",
                "registration": "REG-3",
                "governorate": "IQG02",
                "sectors": [],
            }
            status, body = three.api("PUT", "/api/v1/profile", profile)
            assert status == 200, body
            seq = body["seq"]  # of the new node.profile/1 entry in 3's feed
            assert isinstance(seq, int) and seq > 1
            _wait(
                f"2 holds 3's entry {seq}",
                lambda: two.status()["heads"].get(three.node_id, 0) >= seq,
                deadline,
            )

            # A message from a coordinator of 2 to node 3.
            two.sign_in_admin()
            two.sign_in_new_coordinator()
            three.sign_in_new_coordinator()
            status, body = two.api(
                "POST",
                "/api/v1/messages",
                {"to": [three.node_id], "text": TEXT, "subject": "Netns", "thread": None},
            )
            assert status == 201, body
            (message_id,) = body["ids"]

            def inbox_of_three() -> bool:
                status, body = three.api("GET", "/api/v1/messages")
                assert status == 200, body
                return bool(body["unread"] == 1 and body["threads"])

            _wait("3 receives the message", inbox_of_three, deadline)
            status, body = three.api("GET", "/api/v1/messages")
            ((thread,),) = [body["threads"]]
            assert (thread["peers"], thread["subject"], thread["unread"]) == (
                [two.node_id],
                "Netns",
                1,
            )

            def delivered_on_two() -> bool:
                status, body = two.api("GET", "/api/v1/messages")
                assert status == 200, body
                return bool(body["threads"][0]["state"] in ("delivered", "read"))

            _wait("2 sees it delivered", delivered_on_two, deadline)
            status, body = three.api("GET", f"/api/v1/messages/{thread['thread']}")
            assert status == 200, body
            assert [(m["id"], m["direction"], m["peer"], m["text"]) for m in body["messages"]] == [
                (message_id, "in", two.node_id, TEXT)
            ]
            for node in (two, three):
                node.stop()
    elapsed = time.monotonic() - started
    print(f"netns federation: {elapsed:.1f} s", file=sys.stderr)
    assert elapsed < BUDGET_S


# --- the HTTP client that runs inside a namespace ---


def _client(base: str) -> int:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    cookies: dict[str, str] = {}
    csrf = ""
    for line in sys.stdin:
        call = json.loads(line)
        data = None if call["body"] is None else json.dumps(call["body"]).encode()
        request = urllib.request.Request(base + call["path"], data=data, method=call["method"])
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if csrf and call["method"] != "GET":
            request.add_header("X-CSRF-Token", csrf)
        if cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
        try:
            with opener.open(request, timeout=COMMAND_TIMEOUT_S) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        except OSError as error:
            print(json.dumps({"status": 0, "body": str(error)}), flush=True)
            continue
        for header in headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0].strip().strip('"')
            if value:
                cookies[name.strip()] = value
            else:
                cookies.pop(name.strip(), None)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if isinstance(body, dict) and isinstance(body.get("csrf_token"), str):
            csrf = body["csrf_token"]
        print(json.dumps({"status": status, "body": body}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", required=True, metavar="URL", help="the node's base URL")
    return _client(parser.parse_args().client.rstrip("/"))


if __name__ == "__main__":
    sys.exit(main())
