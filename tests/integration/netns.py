"""A private LAN of Linux network namespaces, for tests that need real multicast,
real addresses and real sockets between several nodes on one machine.

:func:`lan` builds, for one test run::

    namespace watan-test-<run>-br:  bridge br0 (no STP, no multicast snooping)
                                     ├── v1 ── eth0 in namespace watan-test-<run>-1: 10.247.<x>.1/24
                                     ├── v2 ── eth0 in namespace watan-test-<run>-2: 10.247.<x>.2/24
                                     └── ...

The bridge lives in its own namespace, so nothing is added to the machine's own
network (its firewall and routes stay untouched, and its bridged-traffic filters do not
apply). Each host namespace has ``lo`` and ``eth0`` up, multicast on, and a route for
224.0.0.0/4 on ``eth0`` (mDNS, RFC 6762). :meth:`Lan.run_in` starts a process inside a
host (``ip netns exec``); :meth:`NetnsProcess.wait_for_line` waits for its output.
:meth:`Lan.run_logged` starts a long-running one (a node) whose output goes to a log
file instead, and :meth:`Lan.run_to_end` runs a short command inside a host to its end.
:meth:`Lan.set_link` pulls a host's cable out of the bridge and plugs it back in
(partitions and flapping links).

Everything is torn down on exit, even when the test or the set-up fails part way:
processes first (SIGTERM, then SIGKILL), then the namespaces, which takes their veth
pairs and the bridge with them. Names are unique per run (``<run>`` is the creation time
in hex and random digits), so a crashed run cannot collide with a later one; leftovers
of runs older than STALE_AFTER_S are removed when a new LAN is made.

Needs root and iproute2. :func:`lan_or_skip` turns their absence into a skip with the
reason, except that under ``CI=true`` a root machine with ``ip`` that cannot make
namespaces fails the test: CI must run these tests.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pytest

__all__ = [
    "PREFIX",
    "Host",
    "Lan",
    "LoggedProcess",
    "NetnsError",
    "NetnsProcess",
    "NetnsUnavailable",
    "lan",
    "lan_or_skip",
]

PREFIX: Final = "watan-test-"
#: Leftovers of a run are removed once they are this old. Not "older than this run":
#: two CI jobs on one machine may overlap, and each run lasts well under this.
STALE_AFTER_S: Final = 600
#: A process gets this long to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S: Final = 5.0
#: ``ip`` commands are quick; a hung one (a wedged kernel module) must not hang the run.
IP_TIMEOUT_S: Final = 15.0

_NAME: Final = re.compile(rf"{re.escape(PREFIX)}([0-9a-f]{{8}})[0-9a-f]{{6}}-(?:br|[0-9]+)")
Matcher = str | re.Pattern[str] | Callable[[str], bool]


class NetnsUnavailable(Exception):
    """This machine cannot make network namespaces for us.

    ``prerequisite`` is True when we are not root or ``ip`` is missing (always a skip),
    False when the kernel or the sandbox refused a namespace, bridge or veth pair.
    """

    def __init__(self, reason: str, *, prerequisite: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.prerequisite = prerequisite


class NetnsError(Exception):
    """An ``ip`` command failed after namespaces proved possible, or a process did not
    print what was awaited in time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """One machine on the LAN: a namespace with ``eth0`` at ``address``."""

    index: int
    namespace: str
    interface: str
    address: str
    network: ipaddress.IPv4Network


class NetnsProcess(subprocess.Popen[str]):
    """A process in a namespace whose stdout and stderr are read by background threads
    (so a chatty process never blocks on a full pipe). Do not read ``stdout`` or
    ``stderr`` directly: use :attr:`lines`, :meth:`wait_for_line` and :attr:`stderr_text`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        super().__init__(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._changed = threading.Condition()
        self._lines: list[str] = []
        self._stderr: list[str] = []
        self._cursor = 0
        self._eof = False
        assert self.stdout is not None and self.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.stdout, self._lines), daemon=True),
            threading.Thread(target=self._read, args=(self.stderr, self._stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], into: list[str]) -> None:
        try:
            for line in stream:
                with self._changed:
                    into.append(line.rstrip("\n"))
                    self._changed.notify_all()
        except (OSError, ValueError):  # closed under us by stop() after a timeout
            pass
        if into is self._lines:
            with self._changed:
                self._eof = True
                self._changed.notify_all()

    @property
    def lines(self) -> list[str]:
        """Every stdout line so far, without line endings."""
        with self._changed:
            return list(self._lines)

    @property
    def stderr_text(self) -> str:
        """Everything on stderr so far."""
        with self._changed:
            return "\n".join(self._stderr)

    def wait_for_line(self, match: Matcher, timeout: float) -> str:
        """The next stdout line (after the one this last returned) that ``match``
        matches: a substring, a regular expression (``search``) or a predicate.

        Raises:
            NetnsError: no such line within ``timeout`` seconds, or stdout closed first;
                the message holds the process's stderr.
        """
        test = _matcher(match)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._cursor < len(self._lines):
                    line = self._lines[self._cursor]
                    self._cursor += 1
                    if test(line):
                        return line
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "exited" if self._eof else f"printed nothing matching in {timeout} s"
                    raise NetnsError(
                        f"{self.args!r} {why}; stderr:\n" + "\n".join(self._stderr[-40:])
                    )
                self._changed.wait(remaining)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """End the process (SIGTERM, then SIGKILL after ``timeout``), drain its output
        and close its pipes. Idempotent.

        Returns:
            Its exit status (negative: killed by that signal).
        """
        if self.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait()
        for reader in self._readers:
            reader.join(timeout)  # a grandchild may hold the pipe open: do not hang
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        return self.returncode


class LoggedProcess(subprocess.Popen[bytes]):
    """A process in a namespace whose stdout and stderr go to a log file: a process that
    runs for long and talks much (a node) never blocks on a full pipe, and its log is
    still there to read after it exits. :meth:`wait_for_text` polls the file.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.log = log
        self._start = log.stat().st_size if log.exists() else 0  # the log may be shared
        self._cursor = self._start
        with log.open("ab") as out:
            super().__init__(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
            )

    @property
    def output(self) -> str:
        """What this process has written to the log so far."""
        with self.log.open("rb") as log:
            log.seek(self._start)
            return log.read().decode("utf-8", "replace")

    def wait_for_text(self, match: Matcher, timeout: float) -> str:
        """The next complete line of output (after the one this last returned) that
        ``match`` matches: a substring, a regular expression (``search``) or a predicate.

        Raises:
            NetnsError: no such line within ``timeout`` seconds, or the process exited
                first; the message holds the end of its output.
        """
        test = _matcher(match)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.poll() is not None  # before reading: its last lines are in
            with self.log.open("rb") as log:
                log.seek(self._cursor)
                chunk = log.read()
            end = chunk.rfind(b"\n") + 1
            for raw in chunk[:end].splitlines(keepends=True):
                self._cursor += len(raw)
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if test(line):
                    return line
            if exited or time.monotonic() >= deadline:
                why = (
                    f"exited ({self.returncode})"
                    if exited
                    else f"printed nothing matching in {timeout} s"
                )
                tail = "\n".join(self.output.splitlines()[-40:])
                raise NetnsError(f"{self.args!r} {why}; output:\n{tail}")
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """End the process: SIGTERM, then SIGKILL after ``timeout``. Idempotent.

        Returns:
            Its exit status (negative: killed by that signal).
        """
        if self.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait()
        return self.returncode


def _matcher(match: Matcher) -> Callable[[str], bool]:
    if isinstance(match, str):
        return lambda line: match in line
    if isinstance(match, re.Pattern):
        return lambda line: match.search(line) is not None
    return match


class Lan:
    """Hosts on one bridged /24 in their own namespaces. Make one with :func:`lan`."""

    def __init__(self, *, run_id: str, ip: str, network: ipaddress.IPv4Network) -> None:
        self.run_id = run_id
        self.network = network
        self.bridge_namespace = f"{PREFIX}{run_id}-br"
        self.hosts: tuple[Host, ...] = ()
        self._ip = ip
        self._namespaces: list[str] = []
        self._processes: list[NetnsProcess | LoggedProcess] = []

    @classmethod
    def create(cls, hosts: int) -> Lan:
        """Build a LAN of ``hosts`` hosts. Call :meth:`close` when done (or use :func:`lan`).

        Raises:
            NetnsUnavailable: not root, no ``ip``, or namespaces/bridges/veths refused.
            NetnsError: a later ``ip`` command failed. Nothing is left behind either way.
        """
        if not 1 <= hosts <= 250:
            raise ValueError("a LAN has 1 to 250 hosts")
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root", prerequisite=True)
        ip = shutil.which("ip")
        if ip is None:
            raise NetnsUnavailable("the ip command (iproute2) is missing", prerequisite=True)
        _remove_leftovers(ip, now=time.time())
        run_id = f"{int(time.time()):08x}{secrets.token_hex(3)}"
        network = ipaddress.IPv4Network(f"10.247.{1 + secrets.randbelow(254)}.0/24")
        made = cls(run_id=run_id, ip=ip, network=network)
        try:
            made._build(hosts)
        except BaseException:
            made.close()
            raise
        return made

    def _build(self, count: int) -> None:
        bridge = self.bridge_namespace
        self._add_namespace(bridge)
        self._capability(
            "-n", bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"
        )
        self._run("-n", bridge, "link", "set", "br0", "up")
        hosts = []
        for index in range(1, count + 1):
            namespace = f"{PREFIX}{self.run_id}-{index}"
            self._add_namespace(namespace)
            port = f"v{index}"
            self._capability(
                "-n", bridge, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", namespace,
            )  # fmt: skip
            self._run("-n", bridge, "link", "set", port, "master", "br0", "up")
            address = str(self.network.network_address + index)
            self._run("-n", namespace, "link", "set", "lo", "up")
            cidr = f"{address}/{self.network.prefixlen}"
            self._run("-n", namespace, "addr", "add", cidr, "dev", "eth0")
            self._run("-n", namespace, "link", "set", "eth0", "multicast", "on", "up")
            self._run("-n", namespace, "route", "add", "224.0.0.0/4", "dev", "eth0")
            hosts.append(
                Host(
                    index=index,
                    namespace=namespace,
                    interface="eth0",
                    address=address,
                    network=self.network,
                )
            )
        self.hosts = tuple(hosts)

    def set_link(self, host: Host, *, up: bool) -> None:
        """Plug ``host``'s cable into the bridge or pull it out: its bridge port goes
        up or down (so ``eth0`` in the host loses its carrier, as with a cable pulled
        at the switch). Its addresses, routes and sockets stay; packets to it are lost
        until the port is up again.

        Raises:
            NetnsError: ``ip`` failed.
        """
        if host not in self.hosts:
            raise ValueError(f"{host.namespace} is not a host of this LAN")
        port = f"v{host.index}"
        self._run("-n", self.bridge_namespace, "link", "set", port, "up" if up else "down")

    def _add_namespace(self, name: str) -> None:
        self._capability("netns", "add", name)
        self._namespaces.append(name)

    def _capability(self, *args: str) -> None:
        """An ``ip`` command whose failure means the machine cannot do this at all."""
        try:
            self._run(*args)
        except NetnsError as error:
            raise NetnsUnavailable(str(error), prerequisite=False) from None

    def _run(self, *args: str) -> None:
        _ip(self._ip, *args)

    def run_in(
        self,
        host: Host | str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> NetnsProcess:
        """Start ``argv`` inside ``host`` (a :class:`Host` or a namespace name) with
        ``ip netns exec``, which execs it: the process's pid is the program's own.

        Args:
            env: variables set on top of this process's environment. Python children
                should print with ``flush=True`` or get ``PYTHONUNBUFFERED=1``.
            stdin: ``subprocess.PIPE`` to write to the process; DEVNULL by default.

        Returns:
            The process; it is stopped when the LAN closes if not before.
        """
        process = NetnsProcess(self._exec(host, argv), env=_environment(env), cwd=cwd, stdin=stdin)
        self._processes.append(process)
        return process

    def run_logged(
        self,
        host: Host | str,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> LoggedProcess:
        """Start ``argv`` inside ``host`` like :meth:`run_in`, with its stdout and stderr
        appended to the file ``log``.

        Returns:
            The process; it is stopped when the LAN closes if not before.
        """
        process = LoggedProcess(self._exec(host, argv), log=log, env=_environment(env), cwd=cwd)
        self._processes.append(process)
        return process

    def run_to_end(
        self,
        host: Host | str,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` to its end and return its exit status and output
        (stdout and stderr apart); killed after ``timeout`` seconds.

        Raises:
            NetnsError: it did not end within ``timeout``.
        """
        try:
            return subprocess.run(
                self._exec(host, argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=_environment(env),
                cwd=cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NetnsError(f"{list(argv)!r} did not end in {timeout} s") from None

    def _exec(self, host: Host | str, argv: Sequence[str]) -> list[str]:
        namespace = host.namespace if isinstance(host, Host) else host
        if namespace not in self._namespaces:
            raise ValueError(f"{namespace} is not a namespace of this LAN")
        return [self._ip, "netns", "exec", namespace, *argv]

    def close(self) -> None:
        """Stop every process started here, then delete every namespace made here.
        Idempotent. Raises NetnsError if something could not be removed (after trying
        everything)."""
        failures = []
        for process in self._processes:
            try:
                process.stop()
            except OSError as error:
                failures.append(f"stopping {process.args!r}: {error}")
        self._processes.clear()
        # Hosts first: deleting a namespace destroys its end of each veth pair, and so
        # the pair; the bridge namespace then goes with br0.
        for name in reversed(self._namespaces):
            try:
                _ip(self._ip, "netns", "del", name)
            except NetnsError as error:
                failures.append(str(error))
        self._namespaces.clear()
        if failures:
            raise NetnsError("; ".join(failures))


@contextmanager
def lan(hosts: int) -> Iterator[Lan]:
    """A LAN of ``hosts`` namespaces, torn down on exit even if the body raises.

    Raises:
        NetnsUnavailable: see :meth:`Lan.create`.
        NetnsError: set-up or tear-down failed.
    """
    made = Lan.create(hosts)
    try:
        yield made
    finally:
        made.close()


@contextmanager
def lan_or_skip(hosts: int) -> Iterator[Lan]:
    """:func:`lan` for a pytest test: skip with the reason when this machine cannot make
    namespaces, but fail under ``CI=true`` when we are root and have ``ip``."""
    try:
        made = Lan.create(hosts)
    except NetnsUnavailable as error:
        if os.environ.get("CI") == "true" and not error.prerequisite:
            pytest.fail(
                f"cannot create network namespaces (CI=true): {error.reason}", pytrace=False
            )
        pytest.skip(f"network namespaces unavailable: {error.reason}")
    try:
        yield made
    finally:
        made.close()


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return dict(os.environ) | dict(env or {})


def _ip(ip: str, *args: str) -> None:
    try:
        result = subprocess.run(
            [ip, *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise NetnsError(f"ip {' '.join(args)}: no answer in {IP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _remove_leftovers(ip: str, *, now: float) -> None:
    """Delete namespaces of earlier runs older than STALE_AFTER_S (by the time in their
    name). Processes still inside them are not ours to kill: the namespace lives on,
    unnamed, until they exit."""
    listing = subprocess.run(
        [ip, "netns", "list"], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    for line in listing.stdout.splitlines():
        name = line.split(" ", 1)[0]
        found = _NAME.fullmatch(name)
        if found and int(found.group(1), 16) < now - STALE_AFTER_S:
            subprocess.run(
                [ip, "netns", "del", name], capture_output=True, timeout=IP_TIMEOUT_S, check=False
            )
