"""Network faults on one Linux interface: packet loss, and delay with jitter, for tests
of real nodes in network namespaces (``tests/integration/test_netns_faults.py``) and
for operators who rehearse a federation over a bad link on a lab machine.

Run inside the namespace whose interface should misbehave, as root::

    ip netns exec NS python -m tools.netfaults impair --interface eth0 \\
        --loss 20 --delay-ms 300 --jitter-ms 100

puts the faults on and prints one line ``faults: <what> on <interface> via
<mechanism>``. It then reads commands on stdin, one per line, and answers each with one
line: ``set loss=P delay=MS jitter=MS`` changes the faults in place (a missing value is
0; ``set`` alone lifts them but keeps the mechanism in place) and answers with a new
``faults:`` line; ``stats`` answers ``faults-stats: {JSON}`` (packets ``dropped`` so
far; with the relay, its connections and the chunks it ``delayed``); a bad command
answers ``faults-error: ...``. SIGTERM or SIGINT removes the faults and prints the final
``faults-stats:``. ``probe`` builds the faults and removes them at once: a cheap check
that this machine can, before a test starts anything slow. Exit status 3, with a
``faults-unavailable:`` line, means a prerequisite is missing (not root, or neither
netem nor the ``nft`` command); 4 that the kernel refused the rules; 2 other failures.

Each host of a LAN impairs its own interface, so every packet on a link between two
impaired hosts is exposed once per direction. Two mechanisms, chosen by probing:

* **netem** (``tc qdisc replace dev IF root netem loss P% delay D J``), the kernel's
  network emulator, on the interface's egress. It replaces the interface's root qdisc
  (and deletes it at the end): use it on lab interfaces only.
* **nftables and a relay**, where the kernel was built without ``sch_netem`` (some VM
  and cloud kernels: ``tc`` then answers "Specified qdisc kind is unknown").
  *Loss*: a rule drops P% of the packets *arriving* on the interface (``numgen random
  mod 100 < P``). Dropped on input, a packet is lost as on a wire; a drop on output
  would be reported to the local sender (EPERM), which real loss never is.
  *Delay*: a NAT rule redirects every TCP connection leaving through the interface to
  a userspace relay (:class:`DelayRelay`) in the same namespace, which learns the
  original destination (``SO_ORIGINAL_DST``), connects there itself (its sockets carry
  a firewall mark the rule skips) and forwards each chunk, in each direction, D ± J
  after it arrived. The chunks of one direction of one connection leave in order: a
  chunk's release time is the later of its own and the previous chunk's (so jitter
  never reorders a byte stream, as TCP would not). A redirect reaches only connections
  opened after it, so the relay stays in the path from the start, at a delay of 0 until
  one is set: start ``impair`` before the programs whose connections it should delay.
  Differences from netem: only TCP is delayed (UDP, e.g. mDNS, passes at once); a
  connection is accepted before its destination is reached, so a destination that
  cannot be reached shows as a connection reset after :data:`CONNECT_TIMEOUT_S`
  rather than as a connect timeout; and stopping resets the connections the relay
  carries.

``--mechanism netem`` or ``--mechanism relay`` insists on one (the tests of the relay
itself use it on machines that have netem too). Jitter is uniform in [D - J, D + J],
netem's default when no distribution is given (tc-netem(8)).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MARK",
    "TABLE",
    "DelayRelay",
    "FaultError",
    "Faults",
    "FaultsUnavailable",
    "Impairment",
    "Mechanism",
    "NetemFaults",
    "NftFaults",
    "RelayStats",
    "choose",
    "main",
]

#: The nftables table that holds every rule of ours (one per namespace), so that
#: removing it removes exactly what we added.
TABLE: Final = "watan_faults"
#: Firewall mark on the relay's own connections ("WA"), which the redirect skips:
#: without it the relay's connection to the real destination would come back to it.
MARK: Final = 0x5741
#: The relay gives up on reaching a destination after this, and resets the client's
#: connection: a client's own connect timeout never fires (the relay accepted at once),
#: so the relay stands in for it (aiohttp and curl use 10 s and more; Linux retries a
#: SYN for about 2 minutes).
CONNECT_TIMEOUT_S: Final = 10.0
#: Bytes read from a socket at a time (any size works: the stream is forwarded whole).
_CHUNK: Final = 65_536
#: A relayed direction stops reading when this much waits for its release time, so a
#: fast sender cannot make the relay buffer without bound (TCP's flow control then
#: slows the sender, as a full link would).
_QUEUE_LIMIT: Final = 4 * 1024 * 1024
#: ``getsockopt(SOL_IP, SO_ORIGINAL_DST)``: the destination before NAT
#: (linux/netfilter_ipv4.h; Python's socket module does not name it).
_SO_ORIGINAL_DST: Final = 80
_SO_MARK: Final = getattr(socket, "SO_MARK", 36)
#: Interface names: at most 15 characters (IFNAMSIZ - 1), no quotes or spaces, so they
#: can be written into an nftables rule as they are.
_IFNAME: Final = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_COMMAND_TIMEOUT_S: Final = 15.0
#: After cutting its connections, the relay lets its event loop run this long, so that
#: every reset is sent before the NAT rules that translate them are removed.
_CLOSE_GRACE_S: Final = 0.2

#: ``auto``: netem where the kernel has it, else nftables and the relay.
Mechanism = Literal["auto", "netem", "relay"]

#: Exit statuses of the command line (module docstring).
EXIT_ERROR: Final = 2
EXIT_PREREQUISITE: Final = 3
EXIT_REFUSED: Final = 4


class FaultsUnavailable(Exception):
    """This machine cannot put these faults on.

    ``prerequisite`` is True when a prerequisite is missing (not root; netem or the
    ``nft`` command, as the mechanism needs), False when the kernel refused what should
    have worked (e.g. nftables without NAT).
    """

    def __init__(self, reason: str, *, prerequisite: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.prerequisite = prerequisite


class FaultError(Exception):
    """A ``tc`` or ``nft`` command failed after the mechanism proved possible."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Impairment:
    """What to do to every packet (netem) or TCP chunk (relay) leaving an interface:
    lose ``loss_percent`` of them, delay the rest ``delay_ms`` ± ``jitter_ms``."""

    loss_percent: int = 0
    delay_ms: int = 0
    jitter_ms: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.loss_percent <= 100:
            raise ValueError("loss is a percentage, 0 to 100")
        if not 0 <= self.delay_ms <= 60_000:
            raise ValueError("delay is 0 to 60,000 ms")
        if not 0 <= self.jitter_ms <= self.delay_ms:
            raise ValueError("jitter is 0 to the delay (a packet is never sent before it left)")

    @classmethod
    def parse(cls, words: Sequence[str]) -> Impairment:
        """From ``loss=20 delay=300 jitter=100`` (a missing one is 0).

        Raises:
            ValueError: an unknown name, a value that is not a whole number, or out of range.
        """
        names = {"loss": "loss_percent", "delay": "delay_ms", "jitter": "jitter_ms"}
        values: dict[str, int] = {}
        for word in words:
            name, _, value = word.partition("=")
            if name not in names or not value.isdigit():
                raise ValueError(f"not name=number with a name of {sorted(names)}: {word!r}")
            values[names[name]] = int(value)
        return cls(**values)

    def describe(self) -> str:
        """``loss 20%, delay 300 ± 100 ms``."""
        jitter = f" ± {self.jitter_ms}" if self.jitter_ms else ""
        return f"loss {self.loss_percent}%, delay {self.delay_ms}{jitter} ms"


class Faults(Protocol):
    """Faults on one interface: :meth:`start` puts them on, :meth:`update` changes them
    in place (connections already open feel the change), :meth:`stop` removes them."""

    mechanism: str
    impairment: Impairment

    async def start(self) -> None: ...

    async def update(self, impairment: Impairment) -> None: ...

    def stats(self) -> dict[str, int]:
        """Counters since :meth:`start`: ``dropped`` packets, and the relay's."""
        ...

    async def stop(self) -> dict[str, int]:
        """Remove the faults; returns :meth:`stats` as they were at the end."""
        ...


def choose(
    interface: str,
    impairment: Impairment,
    *,
    mechanism: Mechanism = "auto",
    rng: random.Random | None = None,
    log: Callable[[str], None] | None = None,
) -> Faults:
    """The faults for ``interface``: by netem if the kernel has it, else by nftables and
    the relay (``auto``), or by the one ``mechanism`` named. ``log`` receives a line
    per relayed connection (the relay only).

    Raises:
        FaultsUnavailable: not root, or the mechanism's commands or netem missing.
        FaultError: ``tc`` failed for another reason than a missing netem.
    """
    if not _IFNAME.fullmatch(interface):
        raise ValueError(f"not an interface name: {interface!r}")
    if os.geteuid() != 0:
        raise FaultsUnavailable("network faults need root", prerequisite=True)
    tc, nft = shutil.which("tc"), shutil.which("nft")
    missing = []
    if mechanism != "relay":
        if tc is not None and _netem_works(tc, interface):
            return NetemFaults(interface, impairment, tc=tc)
        missing.append("the kernel has no netem" if tc else "tc (iproute2) is missing")
    if mechanism != "netem":
        if nft is not None:
            return NftFaults(interface, impairment, nft=nft, rng=rng or random.Random(), log=log)
        missing.append("the nft command (nftables) is missing")
    raise FaultsUnavailable(", and ".join(missing), prerequisite=True)


def _netem_works(tc: str, interface: str) -> bool:
    """Whether ``tc`` can put a netem qdisc on ``interface`` (tried, then removed)."""
    probe = _command([tc, "qdisc", "replace", "dev", interface, "root", "netem", "delay", "0ms"])
    if probe.returncode == 0:
        _checked([tc, "qdisc", "del", "dev", interface, "root"])
        return True
    if "unknown" in probe.stderr.lower():  # "Specified qdisc kind is unknown."
        return False
    raise FaultError(f"tc qdisc replace dev {interface}: {probe.stderr.strip()}")


class NetemFaults:
    """Loss and delay by the kernel's netem qdisc on the interface's egress."""

    mechanism = "netem"

    def __init__(self, interface: str, impairment: Impairment, *, tc: str) -> None:
        self.interface = interface
        self.impairment = impairment
        self._tc = tc
        self._dropped = 0

    async def start(self) -> None:
        await self.update(self.impairment)

    async def update(self, impairment: Impairment) -> None:
        # "replace" changes a netem qdisc in place (its counters carry on) or adds one.
        argv = [self._tc, "qdisc", "replace", "dev", self.interface, "root", "netem"]
        if impairment.loss_percent:
            argv += ["loss", f"{impairment.loss_percent}%"]
        if impairment.delay_ms:
            argv += ["delay", f"{impairment.delay_ms}ms"]
            if impairment.jitter_ms:
                argv.append(f"{impairment.jitter_ms}ms")
        _checked(argv)
        self.impairment = impairment

    def stats(self) -> dict[str, int]:
        shown = _command([self._tc, "-s", "qdisc", "show", "dev", self.interface])
        found = re.search(r"netem.*?dropped (\d+)", shown.stdout, re.DOTALL)
        if found:
            self._dropped = int(found.group(1))
        return {"dropped": self._dropped}

    async def stop(self) -> dict[str, int]:
        stats = self.stats()
        _command([self._tc, "qdisc", "del", "dev", self.interface, "root"])
        return stats


class NftFaults:
    """Loss by an nftables rule on the interface's input, delay by a :class:`DelayRelay`
    behind an nftables redirect of the TCP connections leaving it (module docstring).

    The relay stands in the path from :meth:`start` on, even while the delay is 0: a
    redirect reaches only connections opened after it, so a delay put on later reaches
    every connection only if the relay already carries them all.
    """

    mechanism = "nftables (loss) and a TCP relay (delay)"

    def __init__(
        self,
        interface: str,
        impairment: Impairment,
        *,
        nft: str,
        rng: random.Random,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.interface = interface
        self.impairment = impairment
        self._nft = nft
        self._relay = DelayRelay(
            delay_ms=impairment.delay_ms, jitter_ms=impairment.jitter_ms, rng=rng, log=log
        )
        self._dropped = 0

    def _loss_rule(self, impairment: Impairment) -> str:
        if not impairment.loss_percent:
            return ""
        return (
            f'iifname "{self.interface}" numgen random mod 100 < {impairment.loss_percent} '
            'counter name "lost" drop'
        )

    def ruleset(self, relay_port: int) -> str:
        """The nftables script that (re)creates our table. The loss rule counts into a
        named counter, which outlives the rule when the loss changes."""
        # "add" then "delete" first: the script replaces a table left by an earlier run
        # in one transaction, and works when there is none.
        return (
            f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n"
            "    counter lost {}\n"
            "    chain loss {\n"
            "        type filter hook input priority filter; policy accept;\n"
            f"        {self._loss_rule(self.impairment)}\n"
            "    }\n"
            "    chain delay {\n"
            "        type nat hook output priority -100; policy accept;\n"
            f'        oifname "{self.interface}" meta l4proto tcp meta mark != {MARK:#x} '
            f"counter redirect to :{relay_port}\n"
            "    }\n"
            "}\n"
        )

    async def start(self) -> None:
        port = await self._relay.start()
        done = _command([self._nft, "-f", "-"], stdin=self.ruleset(port))
        if done.returncode != 0:
            await self._relay.close()
            raise FaultsUnavailable(
                f"nft refused the rules: {done.stderr.strip()}", prerequisite=False
            )

    async def update(self, impairment: Impairment) -> None:
        # Only the loss chain is rewritten (in one transaction); the redirect rule stays
        # (see stop()).
        script = f"flush chain inet {TABLE} loss\n"
        if impairment.loss_percent:
            script += f"add rule inet {TABLE} loss {self._loss_rule(impairment)}\n"
        done = _command([self._nft, "-f", "-"], stdin=script)
        if done.returncode != 0:
            raise FaultError(f"nft: {done.stderr.strip()}")
        self._relay.set_delay(impairment.delay_ms, impairment.jitter_ms)
        self.impairment = impairment

    def stats(self) -> dict[str, int]:
        listed = _command([self._nft, "-j", "list", "counter", "inet", TABLE, "lost"])
        with contextlib.suppress(ValueError, KeyError, TypeError, StopIteration):
            items = json.loads(listed.stdout)["nftables"]
            self._dropped = next(i["counter"]["packets"] for i in items if "counter" in i)
        return {"dropped": self._dropped} | self._relay.stats.as_dict()

    async def stop(self) -> dict[str, int]:
        """Remove the faults in an order that leaves no connection hanging: first no new
        redirects (an ``accept`` put ahead of the redirect rule), then the relay resets
        every connection it holds, then the table goes. The redirect rule must still be
        there while the relay resets: without it the kernel no longer translates the
        packets of the connections it redirected (seen on Linux 6.18 when the chain is
        flushed or the table deleted first), so the resets would reach the clients from
        the wrong address and be ignored, and each client would wait for an answer
        until its own timeout (60 s for a node)."""
        stats = self.stats()
        _checked([self._nft, "insert", "rule", "inet", TABLE, "delay", "accept"])
        await self._relay.close()
        _command([self._nft, "delete", "table", "inet", TABLE])
        return stats | self._relay.stats.as_dict()


# --- the delay relay -----------------------------------------------------------------


@dataclass(slots=True)
class RelayStats:
    """What a :class:`DelayRelay` did."""

    connections: int = 0
    unreachable: int = 0
    chunks: int = 0
    bytes: int = 0
    #: Chunks held for a delay above zero.
    delayed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "unreachable": self.unreachable,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "delayed": self.delayed,
        }


@dataclass(slots=True)
class _Direction:
    """One direction of a relayed connection: chunks waiting for their release time.

    ``opened_at`` is when the sender could first have sent (the end of the emulated
    handshake): a chunk is released ``sample()`` after the later of its arrival and
    that, and never before the chunk ahead of it.
    """

    sample: Callable[[], float]
    opened_at: float = 0.0
    queue: deque[tuple[float, bytes | None]] = field(default_factory=deque)
    queued_bytes: int = 0
    last_release: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    total: int = 0

    def put(self, chunk: bytes | None, now: float) -> float:
        """Queue a chunk (None: the end of the stream); returns its delay in seconds."""
        delay = self.sample()
        release = max(self.last_release, max(now, self.opened_at) + delay)
        self.last_release = release
        self.queue.append((release, chunk))
        self.queued_bytes += len(chunk or b"")
        self.changed.set()
        return delay

    async def read_from(self, reader: asyncio.StreamReader, stats: RelayStats) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.queued_bytes > _QUEUE_LIMIT:
                self.changed.clear()
                await self.changed.wait()
            chunk = await reader.read(_CHUNK)
            delay = self.put(chunk or None, loop.time())
            if not chunk:
                return
            stats.delayed += delay > 0
            stats.chunks += 1
            stats.bytes += len(chunk)
            self.total += len(chunk)

    async def write_to(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.changed.clear()
                await self.changed.wait()
            release, chunk = self.queue[0]
            wait = release - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            if chunk is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            self.queued_bytes -= len(chunk)
            self.changed.set()  # wakes a reader held back by _QUEUE_LIMIT
            writer.write(chunk)
            await writer.drain()


class DelayRelay:
    """A TCP relay that delays every chunk, in each direction, by ``delay_ms`` ±
    ``jitter_ms`` (uniform), keeping each byte stream in order. It serves connections
    redirected to it by NAT and forwards each to its original destination.

    A new connection first costs a round trip, as a TCP handshake over the slow link
    would: the relay waits one delay (the SYN) before connecting onwards, and the
    client's first bytes count as sent one more delay later (the SYN-ACK).
    """

    def __init__(
        self,
        *,
        delay_ms: int,
        jitter_ms: int,
        rng: random.Random,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self._log = log
        self._low = (delay_ms - jitter_ms) / 1000
        self._high = (delay_ms + jitter_ms) / 1000
        self._rng = rng
        self._connect_timeout = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stats = RelayStats()

    def sample(self) -> float:
        """One delay in seconds."""
        if self._high == 0:
            return 0.0
        return self._rng.uniform(self._low, self._high)

    def set_delay(self, delay_ms: int, jitter_ms: int) -> None:
        """Delay chunks from now on by ``delay_ms`` ± ``jitter_ms`` (chunks already held
        keep their release times)."""
        self._low = (delay_ms - jitter_ms) / 1000
        self._high = (delay_ms + jitter_ms) / 1000

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (on a free port by default); returns the port. NAT ``redirect`` sends
        locally made connections to 127.0.0.1."""
        self._server = await asyncio.start_server(self._accepted, host, port)
        self._address = self._server.sockets[0].getsockname()[:2]
        return self._address[1]

    async def close(self) -> None:
        """Stop listening and reset every connection still open (both ends)."""
        self._closed = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Aborted transports close their sockets in callbacks of the next loop
        # iterations, and a connection accepted just before the server closed may
        # start its handler only now (it resets at once): let both happen.
        await asyncio.sleep(_CLOSE_GRACE_S)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closed:
            _reset(writer)
            return
        self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            _reset(writer)  # close(): the relay goes, and its connections with it
        finally:
            self._tasks.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            destination = _original_destination(writer.get_extra_info("socket"))
        except OSError:
            destination = None
        if destination is None or destination == self._address:
            _reset(writer)  # reached directly, not redirected: nowhere to forward
            return
        self.stats.connections += 1
        started = loop.time()
        syn, syn_ack = self.sample(), self.sample()
        to_server = _Direction(self.sample, opened_at=loop.time() + syn + syn_ack)
        to_client = _Direction(self.sample)
        tasks = [asyncio.ensure_future(to_server.read_from(reader, self.stats))]
        try:
            await asyncio.sleep(syn)
            upstream = await asyncio.wait_for(_connect(destination), self._connect_timeout)
        except (OSError, TimeoutError) as error:
            if self._log is not None:
                self._log(f"relay: {destination[0]}:{destination[1]} unreachable: {error!r}")
            self.stats.unreachable += 1
            tasks[0].cancel()
            _reset(writer)
            return
        except asyncio.CancelledError:
            tasks[0].cancel()
            _reset(writer)
            raise
        server_reader, server_writer = upstream
        tasks += [
            asyncio.ensure_future(to_server.write_to(server_writer)),
            asyncio.ensure_future(to_client.read_from(server_reader, self.stats)),
            asyncio.ensure_future(to_client.write_to(writer)),
        ]
        failed = True  # unless every direction ends cleanly (a cancel resets both ends)
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            errors = [t.exception() for t in done if not t.cancelled() and t.exception()]
            failed = bool(errors)
            if self._log is not None:
                how = f"reset ({errors[0]!r})" if errors else "closed"
                self._log(
                    f"relay: {destination[0]}:{destination[1]} {how} after "
                    f"{loop.time() - started:.1f} s, {to_server.total} bytes sent, "
                    f"{to_client.total} received"
                )
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for end in (writer, server_writer):
                if failed:
                    _reset(end)  # a reset on one side is passed on as a reset
                else:
                    end.close()


async def _connect(
    destination: tuple[str, int],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``destination`` with our firewall mark (skipped by the redirect)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_MARK, MARK)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, destination)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


def _original_destination(sock: socket.socket | None) -> tuple[str, int] | None:
    """Where a redirected connection was going (a ``struct sockaddr_in``)."""
    if sock is None or sock.family != socket.AF_INET:
        return None
    raw = sock.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    port, address = struct.unpack_from("!H4s", raw, 2)
    return socket.inet_ntoa(address), port


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a failed connection looks to a client."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --- commands --------------------------------------------------------------------------


def _command(argv: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise FaultError(f"{' '.join(argv)}: no answer in {_COMMAND_TIMEOUT_S} s") from None


def _checked(argv: Sequence[str]) -> None:
    done = _command(argv)
    if done.returncode != 0:
        raise FaultError(f"{' '.join(argv)}: {done.stderr.strip()}")


async def _run(args: argparse.Namespace, *, keep: bool) -> int:
    impairment = Impairment(
        loss_percent=args.loss, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms
    )
    log = _stderr_log if args.verbose else None
    faults = choose(
        args.interface,
        impairment,
        mechanism=args.mechanism,
        rng=random.Random(args.seed),
        log=log,
    )
    await faults.start()
    try:
        _say(faults, args.interface)
        if keep:
            await _serve_commands(faults, args.interface)
    finally:
        stats = await faults.stop()
    print(f"faults-stats: {json.dumps(stats, sort_keys=True)}", flush=True)
    return 0


def _say(faults: Faults, interface: str) -> None:
    print(
        f"faults: {faults.impairment.describe()} on {interface} via {faults.mechanism}",
        flush=True,
    )


async def _serve_commands(faults: Faults, interface: str) -> None:
    """Until SIGTERM or SIGINT: obey the commands read from stdin, one per line."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:  # a thread: stdin may be a terminal, a pipe or /dev/null
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    stopping = asyncio.ensure_future(stop.wait())
    reading = True
    while True:
        waits: set[asyncio.Future[Any]] = {stopping}
        if reading:
            waits.add(asyncio.ensure_future(lines.get()))
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for future in pending - {stopping}:
            future.cancel()
        if stopping in done:
            return
        line = done.pop().result()
        if line is None:
            reading = False  # stdin closed: keep the faults until a signal
            continue
        await _command_line(faults, interface, line)


async def _command_line(faults: Faults, interface: str, line: str) -> None:
    words = line.split()
    try:
        if words[:1] == ["set"]:
            await faults.update(Impairment.parse(words[1:]))
            _say(faults, interface)
        elif words == ["stats"]:
            print(f"faults-stats: {json.dumps(faults.stats(), sort_keys=True)}", flush=True)
        elif words:
            raise ValueError("commands: set [loss=P] [delay=MS] [jitter=MS] | stats")
    except (ValueError, FaultError) as error:
        print(f"faults-error: {error}", flush=True)


def _stderr_log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.netfaults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, what in (
        ("impair", "put the faults on until SIGTERM or SIGINT"),
        ("probe", "put the faults on and remove them at once (can this machine?)"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("--interface", required=True, help="e.g. eth0")
        command.add_argument("--loss", type=int, default=0, metavar="PERCENT")
        command.add_argument("--delay-ms", type=int, default=0, metavar="MS")
        command.add_argument("--jitter-ms", type=int, default=0, metavar="MS")
        command.add_argument(
            "--mechanism",
            choices=("auto", "netem", "relay"),
            default="auto",
            help="netem, nftables and the relay, or netem where the kernel has it (default)",
        )
        command.add_argument("--seed", type=int, help="seed the relay's delays (repeatable)")
        command.add_argument(
            "--verbose", action="store_true", help="a line on stderr per relayed connection"
        )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args, keep=args.command == "impair"))
    except ValueError as error:
        print(f"faults-error: {error}", flush=True)
        return EXIT_ERROR
    except FaultsUnavailable as error:
        print(f"faults-unavailable: {error.reason}", flush=True)
        return EXIT_PREREQUISITE if error.prerequisite else EXIT_REFUSED
    except FaultError as error:
        print(f"faults-error: {error}", flush=True)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
