"""Crash consistency: kill -9 a node at random moments while it ingests from a peer,
appends its own entries and delivers messages; after each kill, check what survived.

    python -m tools.crash --db sqlite|postgres --kills 50 [--json] [--seed N] [--dir DIR]

Two real nodes of one federation, approved to each other. The *peer* runs in this
process, serving HTTP on loopback (SQLite: it is the reference, not the subject). The
*victim* runs in a child process, on SQLite or PostgreSQL, and serves HTTP too: the
peer pulls the victim's feed when notified, and delivers its receipts to it.

**Rounds.** Each round starts a victim process that opens its node as ``watan up``
does (``init_node``: keys, config, database migrated), serves, and runs three
activities at once, each through the node's own code:

* *ingest*: the replicator (``Replicator.sync_peer``) pulls the peer's feed in batches
  of 256, one transaction each; before every round the peer's feed grows to
  :data:`BACKLOG` entries beyond what the victim holds, so there is always more to pull;
* *append*: own entries (``FeedStore.append_own``) every :data:`APPEND_PAUSE_S`, with a
  notify to the peer every eighth (as after a delivery);
* *deliver*: a message to the peer (``MessageService.send``, into the outbox) every
  :data:`SEND_PAUSE_S`, while the service's delivery loop (``MessageService.run``)
  hands them over.

The child reports over a pipe when each activity is under way (a pull of the backlog
begun, an append committed, an envelope posted to the peer); once all three are (and,
every fourth round, once a batch of the peer's feed has committed), the parent waits a
delay drawn uniformly from ``[0, window]`` and sends SIGKILL. The moment lands inside
an ingest transaction or request most of the time (a batch takes longer than the
window on a busy machine), inside an append or an outbox update often, and between
appends and between messages (those two idle) the rest. So **every counted kill
interrupts all three activities at once**: each was under way in the process killed.
A few extra rounds (``startup_kills``, counted apart) kill during start-up instead, at
a moment drawn uniformly from the start-up time seen so far (opening the database, the
migration check, binding the port, the first requests).

**A real process, a real SIGKILL.** The victim is an OS process killed with SIGKILL;
nothing is flushed, closed or rolled back by it. Spawning ``watan up`` per round costs
seconds (imports); instead a fork server (:class:`_ForkServer`: a clean process with
the node's code imported once) forks a fresh, single-threaded copy per round, which
opens its own database connections, event loop and sockets: nothing is shared with
this process but the files and the database server.

**Acknowledged** means the victim said so over the pipe after the call returned: an
own append's ``(seq, id)`` after ``append_own`` committed, a message id after ``send``
returned. Whatever was in the pipe when the process died counts.

**After every kill** both stores are checked (:class:`Checker`): no head placeholder
left; no duplicate ``(author, seq)``; every feed contiguous from seq 1, its chain
verified with ``protocol.verify_next`` (prev links, signatures) and its head row naming
its last entry (incrementally: each entry once, the last verified id re-read so that a
rewrite shows); both audit logs' hash chains (``AuditLog.verify``, anchored at the head
the last check saw); every acknowledged append present with the same id; the replica of
the peer's feed equal to the peer's own at its head (one hash chain); no fork proof on
either node; the peer's copy of the victim's feed a prefix of the victim's (the
federation never saw an entry the victim lost); every acknowledged message in the
victim's store, none failed, none "queued" without an outbox row; in the peer's inbox
no message id twice, no text twice (a message sealed again after a crash would arrive
under a new id), nothing the victim has no record of sending, and everything the
victim marked delivered.

**At the end** an un-killed victim drains (ingests up to the peer's head, empties its
outbox) and the peer pulls the victim's whole feed; a fresh checker verifies every
chain from seq 1, and also: every acknowledged message is in the peer's inbox exactly
once and "delivered" at the victim, the outbox is empty, the replica of the peer's
feed is complete and the peer holds the victim's whole feed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import pickle
import random
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import make_url

import protocol
from node.audit import AuditLog
from node.clock import Clock, SystemClock
from node.daemon import Node, OrgDetails, init_node
from node.federation import FED_PREFIX, NodeLock
from node.federation._messages import Ack
from node.storage import Database, entry_row
from node.storage._schema import entries, feeds, forks, messages, outbox
from node.web import make_app
from tools._localfed import CHEAP_HASHER, found_or_join
from tools._postgres import DEFAULT_POSTGRES, create_database, drop_database

__all__ = [
    "BACKLOG",
    "NOTE_KIND",
    "Acked",
    "Checker",
    "CrashReport",
    "main",
    "run_crash",
]

#: The kind of the entries both nodes append (unknown kinds are stored and relayed).
NOTE_KIND: Final = "crash.note/1"
#: Entries of the peer's feed the victim lacks at the start of every round: two of the
#: replicator's batches (``node.storage.MAX_RANGE`` = 256), more than a round pulls
#: before its kill, so that the ingest is under way when it comes (and little is left
#: for the final drain).
BACKLOG: Final = 512
#: Hang guards (generous: a CI worker gets about one core). None of them is a timing
#: assertion: a round that hits one reports it as a problem.
START_TIMEOUT_S: Final = 120.0
JOIN_TIMEOUT_S: Final = 60.0
DRAIN_TIMEOUT_S: Final = 240.0
#: Default kill window after all three activities are under way.
WINDOW_S: Final = 0.4
#: Pauses between own appends and between messages. Back to back, appends would take
#: the victim's one core from the ingest (a batch is ~2,000 statements) and starve it
#: for seconds; at these rates a kill still lands in an append at many moments.
APPEND_PAUSE_S: Final = 0.02
SEND_PAUSE_S: Final = 0.05
#: The activities a counted kill waits for. Every fourth one also waits for a batch of
#: the peer's feed to commit (ingesting a batch takes longer than the kill window on a
#: busy machine, so otherwise every kill would land in the first batch and the replica
#: would grow only in the final drain).
ACTIVITIES: Final = frozenset({"ingest", "append", "deliver"})
BATCH_COMMITTED: Final = "ingest-batch"

_log = logging.getLogger(__name__)

Mode = Literal["crash", "drain"]


# -- what the victim acknowledged, and the report ---------------------------------------


@dataclass
class Acked:
    """What the victim acknowledged over the pipe (module docstring).

    Attributes:
        entries: own appends, ``seq -> id``.
        messages: sent messages, ``id -> text``.
    """

    entries: dict[int, bytes] = field(default_factory=dict)
    messages: dict[bytes, str] = field(default_factory=dict)


@dataclass
class CrashReport:
    """The outcome of :func:`run_crash`; ``problems`` is empty when everything held."""

    backend: str
    kills: int
    startup_kills: int
    seed: int
    acked_entries: int = 0
    acked_messages: int = 0
    #: Entries of the peer's feed the victim held before the drain (pulled by killed
    #: rounds), and after it.
    ingested_killed: int = 0
    ingested: int = 0
    peer_holds: int = 0
    inbox: int = 0
    startup_s: float = 0.0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    #: Paths and URLs of the stores (for a closer look, or :class:`Checker` on a copy).
    victim_url: str = ""
    peer_url: str = ""
    victim_id: bytes = b""
    peer_id: bytes = b""
    net: bytes = b""
    acked: Acked = field(default_factory=Acked)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "kills": self.kills,
            "startup_kills": self.startup_kills,
            "seed": self.seed,
            "acked_entries": self.acked_entries,
            "acked_messages": self.acked_messages,
            "ingested_killed": self.ingested_killed,
            "ingested": self.ingested,
            "peer_holds": self.peer_holds,
            "inbox": self.inbox,
            "median_startup_s": round(self.startup_s, 3),
            "seconds": round(self.seconds, 1),
            "problems": self.problems,
        }


# -- the checker -------------------------------------------------------------------------


@dataclass
class _VictimView:
    """What the peer-side checks need from the victim's store."""

    own: dict[int, bytes] = field(default_factory=dict)
    replica: protocol.FeedHead | None = None  # the victim's replica of the peer's feed
    out_states: dict[bytes, str] = field(default_factory=dict)


class Checker:
    """The invariants of the module docstring, checked on the two stores.

    Chains are verified incrementally: each entry once per checker, the last verified
    entry's id re-read every time (so a rewrite or a truncation below it shows). A new
    checker verifies everything (a copy of a store, :func:`run_crash`'s final check).

    Args:
        victim, peer: the two node ids.
        net: the federation id.
    """

    def __init__(self, *, victim: bytes, peer: bytes, net: bytes) -> None:
        self._victim = victim
        self._peer = peer
        self._net = net
        self._verified: dict[bytes, protocol.FeedHead] = {}
        self._audit_heads: dict[str, tuple[int, bytes]] = {}
        self.view = _VictimView()

    async def check(
        self, victim_db: Database, peer_db: Database, acked: Acked, *, final: bool = False
    ) -> list[str]:
        """Every problem found, as one line each; empty when all invariants hold.

        Args:
            final: after the drain: everything acknowledged must have arrived, and
                nothing may be left in the victim's outbox.
        """
        # One snapshot per store: on PostgreSQL the killed victim's server process may
        # still commit a transaction whose COMMIT it had sent, between two statements.
        problems, view = await victim_db.snapshot(self._victim_txn, acked, final)
        self.view = view
        problems += await peer_db.snapshot(self._peer_txn, view, acked, final)
        for name, db in (("victim", victim_db), ("peer", peer_db)):
            problems += await self._audit(name, db)
        return problems

    async def _audit(self, name: str, db: Database) -> list[str]:
        """The audit log's hash chain (``AuditLog.verify``), anchored at the head the
        last check saw: rows a transaction committed must survive as they were."""
        log = AuditLog(db)
        reports = []
        if name in self._audit_heads:
            reports.append(await log.verify(anchors=[self._audit_heads[name]]))
        report, head = await log.verify_with_head()
        for bad in [*reports, report]:
            if not bad.ok:
                return [f"{name}: audit chain broken at {bad.first_bad_seq}: {bad.reason}"]
        self._audit_heads[name] = head
        return []

    # -- the victim's store --------------------------------------------------------------

    def _victim_txn(
        self, conn: SqlConnection, acked: Acked, final: bool
    ) -> tuple[list[str], _VictimView]:
        problems: list[str] = []
        view = _VictimView()
        placeholders = conn.execute(select(feeds.c.author).where(feeds.c.seq.is_(None))).all()
        if placeholders:
            problems.append(f"victim: {len(placeholders)} head placeholder(s) outlived their txn")
        duplicates = conn.execute(
            select(entries.c.author, entries.c.seq)
            .group_by(entries.c.author, entries.c.seq)
            .having(func.count() > 1)
        ).all()
        for row in duplicates:
            problems.append(f"victim: duplicate entry {self._name(row.author)} seq {row.seq}")
        heads = {
            bytes(row.author): (row.seq, bytes(row.id))
            for row in conn.execute(select(feeds.c.author, feeds.c.seq, feeds.c.id))
            if row.seq is not None
        }
        authors = set(heads) | {
            bytes(a) for a in conn.execute(select(entries.c.author).distinct()).scalars()
        }
        for author in sorted(authors):
            problems += self._verify_feed(conn, author, heads.get(author))
        view.replica = self._verified.get(self._peer)
        view.own = {
            row.seq: bytes(row.id)
            for row in conn.execute(
                select(entries.c.seq, entries.c.id).where(entries.c.author == self._victim)
            )
        }
        for seq, entry_id in sorted(acked.entries.items()):
            held = view.own.get(seq)
            if held != entry_id:
                what = "lost" if held is None else "replaced by another entry"
                problems.append(f"victim: acknowledged own entry {seq} {what}")
        fork_count = conn.execute(select(func.count()).select_from(forks)).scalar_one()
        if fork_count:
            problems.append(f"victim: {fork_count} fork proof(s)")
        problems += self._victim_messages(conn, acked, view, final)
        return problems, view

    def _verify_feed(
        self, conn: SqlConnection, author: bytes, head_row: tuple[int, bytes] | None
    ) -> list[str]:
        name = self._name(author)
        head = self._verified.get(author)
        if head is not None:
            stored = conn.execute(
                select(entries.c.id).where(entries.c.author == author, entries.c.seq == head.seq)
            ).scalar_one_or_none()
            if stored is None or bytes(stored) != head.id:
                return [f"victim: {name} entry {head.seq} changed or vanished after a check"]
        query = (
            select(entries.c.seq, entries.c.wire)
            .where(entries.c.author == author, entries.c.seq > (head.seq if head else 0))
            .order_by(entries.c.seq)
        )
        problem = None
        for seq, wire in conn.execute(query):
            expected = (head.seq if head else 0) + 1
            if seq != expected:
                problem = f"victim: {name} has a gap: entry {expected} missing below {seq}"
                break
            try:
                _entry, head = protocol.verify_next(head, bytes(wire), net=self._net, now_ms=None)
            except protocol.ProtocolError as error:
                problem = f"victim: {name} entry {seq} does not verify: {error.code}"
                break
        if head is not None:
            self._verified[author] = head  # the verified prefix, if not the whole feed
        if problem is not None:
            return [problem]
        held = None if head is None else (head.seq, head.id)
        if head_row != held:
            shown = None if head_row is None else head_row[0]
            return [f"victim: {name} head row at {shown}, its last entry at {held and held[0]}"]
        return []

    def _victim_messages(
        self, conn: SqlConnection, acked: Acked, view: _VictimView, final: bool
    ) -> list[str]:
        problems: list[str] = []
        view.out_states = {
            bytes(row.id): row.state
            for row in conn.execute(
                select(messages.c.id, messages.c.state).where(messages.c.direction == "out")
            )
        }
        pending = {
            bytes(row.id): row
            for row in conn.execute(select(outbox.c.id, outbox.c.state, outbox.c.last_error))
        }
        for message_id in acked.messages:
            if message_id not in view.out_states:
                problems.append(f"victim: acknowledged message {message_id.hex()[:12]} lost")
        for message_id, state in view.out_states.items():
            row = pending.get(message_id)
            short = message_id.hex()[:12]
            if state == "failed":
                error = row.last_error if row is not None else None
                problems.append(f"victim: message {short} failed ({error})")
            elif state in ("queued", "relayed") and (row is None or row.state != state):
                problems.append(f"victim: message {short} {state} without its outbox row")
            elif final and state not in ("delivered", "read"):
                problems.append(f"victim: message {short} still {state} after the drain")
        if final and pending:
            problems.append(f"victim: {len(pending)} outbox row(s) left after the drain")
        return problems

    # -- the peer's store ------------------------------------------------------------------

    def _peer_txn(
        self, conn: SqlConnection, view: _VictimView, acked: Acked, final: bool
    ) -> list[str]:
        problems: list[str] = []
        replica = view.replica
        if replica is not None:
            theirs = conn.execute(
                select(entries.c.id).where(
                    entries.c.author == self._peer, entries.c.seq == replica.seq
                )
            ).scalar_one_or_none()
            if theirs is None or bytes(theirs) != replica.id:
                problems.append(f"victim: replica of the peer's feed differs at {replica.seq}")
        peer_head = conn.execute(
            select(feeds.c.seq).where(feeds.c.author == self._peer)
        ).scalar_one()
        if final and (replica is None or replica.seq != peer_head):
            held = replica.seq if replica else 0
            problems.append(f"victim: holds {held} of the peer's {peer_head} entries after drain")
        copy = conn.execute(
            select(feeds.c.seq, feeds.c.id).where(feeds.c.author == self._victim)
        ).one_or_none()
        if copy is not None and copy.seq is not None:
            if view.own.get(copy.seq) != bytes(copy.id):
                problems.append(
                    f"peer: holds the victim's entry {copy.seq}, which the victim lacks or "
                    "holds with another id"
                )
            if final and copy.seq != max(view.own, default=0):
                problems.append(f"peer: holds {copy.seq} of the victim's {len(view.own)} entries")
        fork_count = conn.execute(select(func.count()).select_from(forks)).scalar_one()
        if fork_count:
            problems.append(f"peer: {fork_count} fork proof(s)")
        problems += self._inbox(conn, view, acked, final)
        return problems

    def _inbox(
        self, conn: SqlConnection, view: _VictimView, acked: Acked, final: bool
    ) -> list[str]:
        problems: list[str] = []
        rows = conn.execute(
            select(messages.c.id, messages.c.content).where(
                messages.c.direction == "in",
                messages.c.peer == self._victim,
                messages.c.kind == protocol.TextMessage.KIND,
            )
        ).all()
        ids = Counter(bytes(row.id) for row in rows)
        texts: Counter[str] = Counter()
        for row in rows:
            try:
                content = protocol.decode(bytes(row.content))
                texts[protocol.TextMessage.from_content(content).text] += 1
            except protocol.ProtocolError:
                problems.append(f"peer: inbox row {bytes(row.id).hex()[:12]} does not parse")
        for message_id, count in ids.items():
            if count > 1:
                problems.append(f"peer: message {message_id.hex()[:12]} stored {count} times")
            if message_id not in view.out_states:
                problems.append(f"peer: message {message_id.hex()[:12]} unknown to the victim")
        for body, count in texts.items():
            if count > 1:
                problems.append(f"peer: text {body!r} shown {count} times")
        for message_id, state in view.out_states.items():
            if state in ("delivered", "read") and message_id not in ids:
                problems.append(
                    f"victim: message {message_id.hex()[:12]} marked {state}, never received"
                )
        if final:
            for message_id in acked.messages:
                if ids.get(message_id, 0) != 1:
                    problems.append(
                        f"peer: acknowledged message {message_id.hex()[:12]} received "
                        f"{ids.get(message_id, 0)} times"
                    )
        return problems

    def _name(self, author: bytes) -> str:
        if author == self._victim:
            return "own feed"
        if author == self._peer:
            return "peer's feed"
        return f"feed {bytes(author).hex()[:12]}"


# -- the victim process ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a victim process is told (pickled to it)."""

    data_dir: str
    port: int
    peer: bytes
    run: int
    mode: Mode
    log_file: str
    peer_head: int = 0


class _Reporter:
    """Events to the parent over the pipe; ``started`` once per activity."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._started: set[str] = set()

    def send(self, *event: Any) -> None:
        self._conn.send(event)

    def started(self, activity: str) -> None:
        if activity not in self._started:
            self._started.add(activity)
            self.send("started", activity)


class _WatchedTransport:
    """The node's real transport; tells the reporter when an envelope goes out."""

    def __init__(self, inner: Any, on_post: Callable[[], None]) -> None:
        self._inner = inner
        self._on_post = on_post

    async def post_envelopes(self, peer: bytes, envelopes: list[bytes]) -> list[Ack]:
        self._on_post()
        acks: list[Ack] = await self._inner.post_envelopes(peer, envelopes)
        return acks


def _victim_main(conn: Connection, spec: _Spec) -> int:
    """A victim process, forked by the fork server; returns its exit code."""
    logging.basicConfig(
        filename=spec.log_file,
        level=logging.INFO,
        format=f"%(asctime)s run {spec.run} %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        asyncio.run(_victim(conn, spec))
    except BaseException:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
        return 1
    return 0


async def _victim(conn: Connection, spec: _Spec) -> None:
    clock = SystemClock()
    report = _Reporter(conn)
    stop = asyncio.Event()

    def from_parent() -> None:
        try:
            word = conn.recv()
        except (EOFError, OSError):
            os._exit(3)  # the driver is gone: never outlive it
        if word == "stop":
            stop.set()

    asyncio.get_running_loop().add_reader(conn.fileno(), from_parent)
    # as ``watan up``: the directory's lock (the killed holder's went with it), the node
    NodeLock(Path(spec.data_dir)).acquire(what="starting it again")
    node, _ = await init_node(Path(spec.data_dir), clock=clock, hasher=CHEAP_HASHER)
    runner = web.AppRunner(
        make_app(node.services(clock)), access_log=None, handler_cancellation=True
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", spec.port).start()
    fed = node.federation
    fed.public_url = f"http://127.0.0.1:{spec.port}{FED_PREFIX}"
    service = fed.messages
    service.transport = _WatchedTransport(service.transport, lambda: report.started("deliver"))
    report.send("started", "serving")
    work = [_ingest(node, spec, report), service.run(idle_s=0.05)]
    if spec.mode == "crash":
        work += [_append(node, spec, report, clock), _send(node, spec, report)]
    else:
        work.append(_drained(node, spec, report, stop))
    tasks = [asyncio.ensure_future(job) for job in work]
    try:
        # the first to end is the drain (or a failure): the others run until killed
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        await node.close()


async def _ingest(node: Node, spec: _Spec, report: _Reporter) -> None:
    """Pull the peer's feed with the real replicator, again whenever it grows."""
    replicator = node.federation.replicator
    peer = await node.federation.peers.get(spec.peer)
    assert peer is not None
    while True:
        synced = asyncio.ensure_future(replicator.sync_peer(peer))
        while not synced.done():
            progress = replicator.state(spec.peer).progress
            if progress is not None:
                report.started("ingest")  # pulling the backlog, batch by batch
                if progress.done > progress.start:
                    report.started(BATCH_COMMITTED)  # one batch committed, more to come
            await asyncio.wait([synced], timeout=0.005)
        if not synced.result():
            await asyncio.sleep(0.05)  # a sync of the peer already running, or it failed
            continue
        head = await node.feeds.head(spec.peer)
        if head is not None and head.seq >= replicator.state(spec.peer).heads.get(spec.peer, 0):
            await asyncio.sleep(0.05)  # caught up: idle until the next pass


async def _append(node: Node, spec: _Spec, report: _Reporter, clock: Clock) -> None:
    """Own entries, one every ``APPEND_PAUSE_S``; each acknowledged once ``append_own``
    returned (committed)."""
    key, net = node.identity.signing_key, node.config.net
    for n in itertools.count():
        now = clock.now_ms()
        content = {"run": spec.run, "n": n}

        def make(head: protocol.FeedHead | None, content: Any = content, now: int = now) -> Any:
            return protocol.append(head, content, key=key, net=net, now_ms=now, kind=NOTE_KIND)

        entry = await node.feeds.append_own(make, now_ms=now)
        report.send("append", entry.seq, entry.id)
        report.started("append")
        if n % 8 == 7:
            node.federation.feed_grew()  # the peer pulls our feed (as after a delivery)
        await asyncio.sleep(APPEND_PAUSE_S)


async def _send(node: Node, spec: _Spec, report: _Reporter) -> None:
    """Messages to the peer; each acknowledged once ``send`` returned."""
    service = node.federation.messages
    for n in itertools.count():
        body = f"crash {spec.run}.{n}"
        ids = await service.send(account_id=None, to=[spec.peer], text=body)
        report.send("message", ids[0], body)
        await asyncio.sleep(SEND_PAUSE_S)


async def _drained(node: Node, spec: _Spec, report: _Reporter, stop: asyncio.Event) -> None:
    """Drain mode: report once the peer's feed is pulled and the outbox is empty, then
    wait for the parent's word (it pulls our feed meanwhile) and stop cleanly."""
    while True:
        head = await node.feeds.head(spec.peer)
        left = await node.db.read(
            lambda c: c.execute(select(func.count()).select_from(outbox)).scalar_one()
        )
        if head is not None and head.seq >= spec.peer_head and left == 0:
            break
        await asyncio.sleep(0.05)
    report.send("drained")
    await stop.wait()


# -- the parent: setup, rounds, checks -----------------------------------------------------


class _ForkServer:
    """A clean process (no threads, no event loop, no connections) with this module,
    hence the node's code, imported once, that forks one victim per request.

    Requests go over a ``SOCK_SEQPACKET`` socket pair (one message each): the pickled
    :class:`_Spec` with the victim's end of its event pipe attached (``SCM_RIGHTS``);
    the server answers the child's pid, then its exit code once it has reaped it. One
    victim runs at a time, so the pid cannot be reused before the parent has killed it
    (the server reaps only after the parent has read the pid and the child died).
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            start_new_session=True,  # a ^C at the terminal is the driver's to handle
        )
        theirs.close()
        ours.setblocking(False)
        self._sock = ours

    def fork(self, spec: _Spec) -> tuple[int, Connection]:
        """Start a victim; its pid and the parent's end of its (duplex) event pipe."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        try:
            socket.send_fds(self._sock, [pickle.dumps(spec)], [theirs.fileno()])
        finally:
            theirs.close()  # the victim's copy alone keeps the pipe open: EOF = its end
        return self._read_int_blocking(), ours

    async def exit_code(self) -> int:
        """The exit code of the victim forked last (negative: killed by that signal)."""
        data = await asyncio.wait_for(
            asyncio.get_running_loop().sock_recv(self._sock, 8), JOIN_TIMEOUT_S
        )
        if len(data) != 8:
            raise RuntimeError("the fork server ended")
        return int(struct.unpack("!q", data)[0])

    def _read_int_blocking(self) -> int:
        self._sock.setblocking(True)
        try:
            self._sock.settimeout(START_TIMEOUT_S)
            data = self._sock.recv(8)
        finally:
            self._sock.setblocking(False)
        if len(data) != 8:
            raise RuntimeError("the fork server ended")
        return int(struct.unpack("!q", data)[0])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()  # EOF: the server returns
        try:
            self._process.wait(JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


#: What the fork server process runs (``python -c``): it imports this module first.
_SERVER_SCRIPT: Final = "import sys, tools.crash as c; c._serve_forks(int(sys.argv[1]))"


def _serve_forks(fd: int) -> None:
    """The fork server's loop (see :class:`_ForkServer`)."""
    sock = socket.socket(fileno=fd)
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(sock, 1 << 16, 1)
        except OSError:
            return
        if not message or len(fds) != 1:
            return  # the driver closed its end
        spec = pickle.loads(message)
        pid = os.fork()
        if pid == 0:  # the victim
            code = 1
            try:
                sock.close()
                code = _victim_main(Connection(fds[0]), spec)
            finally:
                os._exit(code)
        os.close(fds[0])
        sock.send(struct.pack("!q", pid))
        _pid, status = os.waitpid(pid, 0)
        sock.send(struct.pack("!q", os.waitstatus_to_exitcode(status)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _org(name: str) -> OrgDetails:
    return OrgDetails(name_ar=f"منظمة {name}", name_en=f"Org {name}", registration=f"REG-{name}")


async def _create(base: Path, victim_url: str | None, clock: Clock) -> None:
    """The peer founds a federation (SQLite), the victim joins it."""
    peer, _ = await init_node(base / "peer", clock=clock, org=_org("peer"), hasher=CHEAP_HASHER)
    try:
        genesis = await found_or_join(base / "peer", peer, clock, None, "Crash federation")
    finally:
        await peer.close()
    victim, _ = await init_node(
        base / "victim",
        clock=clock,
        database_url=victim_url,
        org=_org("victim"),
        hasher=CHEAP_HASHER,
    )
    try:
        await found_or_join(base / "victim", victim, clock, genesis)
    finally:
        await victim.close()


async def _serve(node: Node, clock: Clock, port: int) -> web.AppRunner:
    runner = web.AppRunner(
        make_app(node.services(clock)), access_log=None, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    node.federation.public_url = f"http://127.0.0.1:{bound}{FED_PREFIX}"
    return runner


async def _link(peer: Node, base: Path, clock: Clock, victim_port: int) -> bytes:
    """Approve the two nodes to each other and let each pull the other's feed once
    (the victim needs the peer's profile to seal to it, the peer the victim's to
    accept its messages); the victim is served from here meanwhile."""
    victim, _ = await init_node(base / "victim", clock=clock, hasher=CHEAP_HASHER)
    runner = await _serve(victim, clock, victim_port)
    try:
        assert peer.federation.public_url and victim.federation.public_url
        await victim.federation.peers.set_state(
            peer.identity.node_id, "approved", actor=None, url=peer.federation.public_url
        )
        await peer.federation.peers.set_state(
            victim.identity.node_id, "approved", actor=None, url=victim.federation.public_url
        )
        for a, b in ((victim, peer), (peer, victim)):
            record = await a.federation.peers.get(b.identity.node_id)
            assert record is not None
            if not await a.federation.replicator.sync_peer(record):
                error = a.federation.replicator.state(b.identity.node_id).last_error
                raise RuntimeError(f"setup: the first sync failed: {error}")
        return victim.identity.node_id
    finally:
        await runner.cleanup()
        await victim.close()


async def _grow(peer: Node, count: int, clock: Clock) -> None:
    """Append ``count`` entries to the peer's feed.

    Signed and chained with ``protocol.append`` like any append, then stored in one
    bulk insert with the head row moved in the same transaction: the peer is the
    reference, not the subject, and ``append_own`` (a lock, a verification and five
    statements per entry) would make growing it cost more than a round. The victim
    verifies every one of them when it ingests them, and the checker again.
    """
    if count <= 0:
        return
    author, key, net = peer.identity.node_id, peer.identity.signing_key, peer.config.net
    head = await peer.feeds.head(author)
    now = clock.now_ms()
    rows = []
    for _ in range(count):
        entry = protocol.append(
            head, {"pad": "x" * 64}, key=key, net=net, now_ms=now, kind=NOTE_KIND
        )
        head = protocol.head_after(head, entry)
        rows.append(entry_row(entry, now))
    assert head is not None

    def txn(conn: SqlConnection) -> None:
        conn.execute(entries.insert(), rows)
        conn.execute(
            update(feeds)
            .where(feeds.c.author == author)
            .values(seq=head.seq, id=head.id, ts=head.ts, key=head.key)
        )

    await peer.db.write(txn)


class _Victim:
    """One victim process and the events it sent."""

    def __init__(self, server: _ForkServer, spec: _Spec, report: CrashReport) -> None:
        self.spec = spec
        self.started: set[str] = set()
        self.drained = asyncio.Event()
        self._server = server
        self._acked = report.acked
        self._problems = report.problems
        self._changed = asyncio.Event()
        self.began = time.monotonic()
        self.pid, self._reader = server.fork(spec)
        self._open = True
        asyncio.get_running_loop().add_reader(self._reader.fileno(), self._read)

    def _read(self) -> None:
        try:
            while self._open and self._reader.poll():
                self._handle(self._reader.recv())
        except (EOFError, OSError):
            self._close_reader()
        self._changed.set()

    def _close_reader(self) -> None:
        if self._open:
            self._open = False
            asyncio.get_running_loop().remove_reader(self._reader.fileno())

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "append":
            seq, entry_id = event[1], event[2]
            known = self._acked.entries.get(seq)
            if known is not None and known != entry_id:
                self._problems.append(
                    f"run {self.spec.run}: own seq {seq} acknowledged again with another id"
                )
            self._acked.entries[seq] = entry_id
        elif kind == "message":
            self._acked.messages[event[1]] = event[2]
        elif kind == "started":
            self.started.add(event[1])
            _log.debug("run %d: %s after %.2f s", self.spec.run, event[1], self.age)
        elif kind == "drained":
            self.drained.set()
        elif kind == "error":
            self._problems.append(f"run {self.spec.run}: victim failed:\n{event[1]}")

    @property
    def age(self) -> float:
        """Seconds since the victim was started."""
        return time.monotonic() - self.began

    @property
    def alive(self) -> bool:
        return self._open

    async def until(self, done: Callable[..., bool], timeout: float, *args: Any) -> bool:
        """Wait until ``done(*args)``, the child's end or ``timeout``; True if done."""
        deadline = time.monotonic() + timeout
        while not done(*args):
            if not self._open or time.monotonic() > deadline:
                return done(*args)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.05)
        return True

    def stop(self) -> None:
        """Tell a drain-mode victim to stop cleanly."""
        self._reader.send("stop")

    async def end(self, *, kill: bool) -> int:
        """SIGKILL the process (or wait for its end); read what is left in the pipe.

        Returns:
            Its exit code (``-signal.SIGKILL`` when killed).
        """
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        try:
            code = await self._server.exit_code()
        except TimeoutError:  # a hang guard: never expected
            os.kill(self.pid, signal.SIGKILL)
            code = await self._server.exit_code()
        self._read()
        self._close_reader()
        self._reader.close()
        return code


async def run_crash(
    base: Path,
    *,
    database_url: str | None = None,
    kills: int = 50,
    startup_kills: int | None = None,
    window_s: float = WINDOW_S,
    seed: int | None = None,
    victim_port: int | None = None,
) -> CrashReport:
    """Run the rounds of the module docstring in ``base`` (an empty directory).

    Args:
        database_url: the victim's database, empty (PostgreSQL); None for SQLite in
            its directory. The peer always uses SQLite.
        kills: counted kills, each after all three activities were under way.
        startup_kills: extra kills during start-up (default ``kills // 10``).
        window_s: the kill moment is uniform in ``[0, window_s]`` after that.
        seed: for the kill moments and the order of rounds (random if None; in the
            report). The moments are reproducible, not what they interrupt.
        victim_port: where every victim process listens (default: a free port).

    Returns:
        The report; the run stops at the first round with a problem (the stores stay
        in ``base``, and in the PostgreSQL database, for a closer look).
    """
    seed = secrets.randbits(32) if seed is None else seed
    report = CrashReport(
        backend="sqlite" if database_url is None else make_url(database_url).get_backend_name(),
        kills=0,
        startup_kills=0,
        seed=seed,
    )
    began = time.monotonic()
    startup_kills = kills // 10 if startup_kills is None else startup_kills
    try:
        await _run(base, report, database_url, kills, startup_kills, window_s, victim_port)
    finally:
        report.seconds = time.monotonic() - began
    return report


@dataclass
class _Setup:
    """The running peer and what every round shares."""

    base: Path
    peer: Node
    server: _ForkServer
    victim_db: Database
    checker: Checker
    port: int
    clock: Clock


async def _run(
    base: Path,
    report: CrashReport,
    victim_url: str | None,
    kills: int,
    startup_kills: int,
    window_s: float,
    victim_port: int | None,
) -> None:
    began = time.monotonic()
    clock = SystemClock()
    port = victim_port or _free_port()
    async with contextlib.AsyncExitStack() as stack:
        server = _ForkServer()  # first: its imports overlap with the setup below
        stack.callback(server.close)
        await _create(base, victim_url, clock)  # None: SQLite in the node's directory
        victim_url = victim_url or f"sqlite:///{base / 'victim' / 'watan.db'}"
        peer, _ = await init_node(base / "peer", clock=clock, hasher=CHEAP_HASHER)
        stack.push_async_callback(peer.close)
        runner = await _serve(peer, clock, 0)
        stack.push_async_callback(runner.cleanup)
        # the peer delivers its receipts to the victim while it runs
        stop = asyncio.Event()
        deliver = asyncio.ensure_future(_deliver_until(peer, stop))
        stack.push_async_callback(_stop, stop, deliver)
        victim_db = Database.from_url(victim_url)
        stack.push_async_callback(victim_db.close)
        victim_id = await _link(peer, base, clock, port)
        stack.push_async_callback(_settle, peer, victim_id)
        _log.info("set up in %.1f s", time.monotonic() - began)
        report.peer_id, report.victim_id = peer.identity.node_id, victim_id
        report.net = peer.config.net
        report.peer_url = f"sqlite:///{base / 'peer' / 'watan.db'}"
        report.victim_url = victim_url
        checker = Checker(victim=victim_id, peer=report.peer_id, net=report.net)
        setup = _Setup(base, peer, server, victim_db, checker, port, clock)
        try:
            if await _rounds(setup, report, kills, startup_kills, window_s):
                await _drain(setup, report)
        finally:
            report.acked_entries = len(report.acked.entries)
            report.acked_messages = len(report.acked.messages)


async def _rounds(
    setup: _Setup, report: CrashReport, kills: int, startup_kills: int, window_s: float
) -> bool:
    """The killed rounds; False if one found a problem (the run stops there)."""
    rng = random.Random(report.seed)
    # The start-up kills are spread among the others, never first: their moment is
    # drawn from the start-up times seen so far.
    plan: list[Literal["work", "startup"]] = ["work"] * kills
    for _ in range(startup_kills):
        plan.insert(rng.randint(1, len(plan)) if plan else 0, "startup")
    startups: list[float] = []
    peer = setup.peer
    for number, kind in enumerate(plan, start=1):
        held = setup.checker.view.replica.seq if setup.checker.view.replica else 0
        peer_head = await peer.feeds.head(peer.identity.node_id)
        assert peer_head is not None
        await _grow(peer, max(0, held + BACKLOG - peer_head.seq), setup.clock)
        victim = _Victim(setup.server, _spec(setup, report, number, "crash"), report)
        if kind == "startup":
            estimate = statistics.median(startups) if startups else 1.0
            await victim.until(lambda: False, rng.uniform(0, estimate))
        else:
            # every fourth counted kill waits for a batch of the peer's feed to commit
            needed = ACTIVITIES | {BATCH_COMMITTED} if len(startups) % 4 == 3 else ACTIVITIES
            ready = await victim.until(victim.started.issuperset, START_TIMEOUT_S, needed)
            if not ready:
                missing = sorted(needed - victim.started)
                report.problems.append(f"run {number}: {missing} never under way")
            startups.append(time.monotonic() - victim.began)
            await victim.until(lambda: False, rng.uniform(0, window_s))
        alive = victim.alive
        lived = time.monotonic() - victim.began
        code = await victim.end(kill=True)
        if alive and code != -signal.SIGKILL:
            report.problems.append(f"run {number}: victim exit code {code}, not SIGKILL")
        if kind == "startup":
            report.startup_kills += 1
        else:
            report.kills += 1
        checked = time.monotonic()
        report.problems += await setup.checker.check(setup.victim_db, peer.db, report.acked)
        _log.info(
            "run %d (%s): killed after %.2f s (under way after %.2f s), checked in %.2f s; "
            "%d appends, %d messages acknowledged, %d of the peer's entries held",
            number,
            kind,
            lived,
            startups[-1] if kind == "work" and startups else 0,
            time.monotonic() - checked,
            len(report.acked.entries),
            len(report.acked.messages),
            setup.checker.view.replica.seq if setup.checker.view.replica else 0,
        )
        if report.problems:
            return False
    report.startup_s = statistics.median(startups) if startups else 0.0
    replica = setup.checker.view.replica
    report.ingested_killed = replica.seq if replica else 0
    return True


async def _deliver_until(peer: Node, stop: asyncio.Event) -> None:
    """The peer's delivery loop (its receipts to the victim), as ``MessageService.run``
    but stopped between passes: a pass cancelled in the middle of a write leaves the
    write running (``Database.write`` shields it) past the database's ``close``, and
    its connection is then never closed."""
    service = peer.federation.messages
    while not stop.is_set():
        try:
            await service.deliver_due()
        except Exception:  # the victim may die mid-pass; the rows stay due
            _log.debug("peer: delivery pass failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def _stop(stop: asyncio.Event, task: asyncio.Future[None]) -> None:
    stop.set()
    await task


async def _settle(peer: Node, victim: bytes) -> None:
    """Let a sync of the victim that its last calls started end before the peer closes
    (cancelled, its shielded writes would outlive the database; see _deliver_until)."""
    replicator = peer.federation.replicator
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while replicator.state(victim).running and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def _spec(setup: _Setup, report: CrashReport, number: int, mode: Mode, head: int = 0) -> _Spec:
    return _Spec(
        data_dir=str(setup.base / "victim"),
        port=setup.port,
        peer=report.peer_id,
        run=number,
        mode=mode,
        log_file=str(setup.base / "victim.log"),
        peer_head=head,
    )


async def _drain(setup: _Setup, report: CrashReport) -> None:
    """The final, un-killed run, then the final check with a fresh checker."""
    peer = setup.peer
    head = await peer.feeds.head(peer.identity.node_id)
    assert head is not None
    number = report.kills + report.startup_kills + 1
    victim = _Victim(setup.server, _spec(setup, report, number, "drain", head.seq), report)
    drained = await victim.until(victim.drained.is_set, DRAIN_TIMEOUT_S)
    if drained:
        record = await peer.federation.peers.get(report.victim_id)
        assert record is not None
        # the victim's notifies may have started a pull already: let it end
        replicator = peer.federation.replicator
        await victim.until(lambda: not replicator.state(report.victim_id).running, 60)
        if not await replicator.sync_peer(record):
            report.problems.append("final: the peer could not pull the victim's feed")
        victim.stop()
    else:
        report.problems.append("final: the victim did not drain (see victim.log)")
    code = await victim.end(kill=not drained)
    if drained and code != 0:
        report.problems.append(f"final: the victim exited with {code}")
    checker = Checker(victim=report.victim_id, peer=report.peer_id, net=report.net)
    report.problems += await checker.check(setup.victim_db, peer.db, report.acked, final=True)
    report.ingested = checker.view.replica.seq if checker.view.replica else 0
    copy = await peer.feeds.head(report.victim_id)
    report.peer_holds = copy.seq if copy else 0
    report.inbox = await peer.db.read(
        lambda c: c.execute(
            select(func.count()).select_from(messages).where(messages.c.direction == "in")
        ).scalar_one()
    )


# -- command line --------------------------------------------------------------------------


async def _cli_run(base: Path, args: argparse.Namespace) -> CrashReport:
    """:func:`run_crash` in a fresh PostgreSQL database (dropped after, unless ``--dir``
    keeps the run for a closer look) or on SQLite."""
    admin = args.postgres or os.environ.get("WATAN_TEST_POSTGRES", DEFAULT_POSTGRES)
    name, url = (
        await create_database(admin, "watan_crash") if args.db == "postgres" else (None, None)
    )
    try:
        return await run_crash(
            base,
            database_url=url,
            kills=args.kills,
            startup_kills=args.startup_kills,
            window_s=args.window,
            seed=args.seed,
        )
    finally:
        if name is not None and args.dir is None:
            await drop_database(admin, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.crash",
        description="Kill -9 a node while it ingests, appends and delivers; check what survived.",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--kills", type=int, default=50, help="counted kills (default 50)")
    parser.add_argument("--startup-kills", type=int, default=None, help="default kills/10")
    parser.add_argument("--window", type=float, default=WINDOW_S, help="kill window, s")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--postgres", default=None, help="maintenance database URL")
    parser.add_argument("--dir", type=Path, default=None, help="keep the nodes here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="log each round on stderr")
    args = parser.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="watan-crash-"))
    base.mkdir(parents=True, exist_ok=True)
    if any(base.iterdir()):
        parser.error(f"{base} is not empty")
    # The peer's log (its warnings about the victim it cannot reach, mostly) beside
    # the victims' own (victim.log); the rounds on stderr with --verbose.
    logging.basicConfig(
        filename=base / "peer.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.DEBUG)
    try:
        report = asyncio.run(_cli_run(base, args))
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(
            f"{report.backend}: {report.kills} kills (+{report.startup_kills} at start-up) "
            f"in {report.seconds:.1f} s, seed {report.seed}; acknowledged "
            f"{report.acked_entries} appends and {report.acked_messages} messages; "
            f"ingested {report.ingested}; peer inbox {report.inbox}"
        )
        if args.dir is not None:
            print(f"stores kept: {args.dir} (victim database {report.victim_url})")
        for problem in report.problems:
            print(f"PROBLEM: {problem}")
        if not report.problems:
            print("every invariant held")
    return 1 if report.problems else 0


if __name__ == "__main__":
    # Through the importable module, so that a victim's spec pickles as
    # ``tools.crash._Spec`` (not ``__main__._Spec``), which the fork server knows.
    from tools.crash import main as _main

    sys.exit(_main())
