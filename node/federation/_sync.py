"""Replication: pull-based, idempotent, per-peer backoff (DESIGN §4).

Each round, every approved peer that is due is synced in its own task, so one slow or
dead peer never delays the others: ask its heads, and for every author in our scope of
which it holds more than we do, pull the missing range in batches and ingest each
batch in one transaction (bounded memory: one batch at a time). A feed therefore
reaches us through any peer that holds it, its author online or not. Receiving
anything twice changes nothing (the feed store is idempotent).

A failed sync backs the peer off exponentially with full jitter; after
``BREAKER_FAILURES`` failures in a row the breaker opens and the peer is only probed
every ``BREAKER_COOLDOWN_MS``. A peer that comes back (it calls us: a notify, a pull)
is synced at once. After we append to our own feed, approved peers are notified so
they pull at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import protocol
from node._tasks import drop_outcome
from node.clock import Clock
from node.storage import MAX_RANGE, FeedStore, IngestResult, PreparedBatch, StorageError
from protocol import FeedHead

from ._peers import Peer, PeerStore
from ._transport import FedClient, PeerCallError

__all__ = [
    "BACKOFF_BASE_MS",
    "BACKOFF_CAP_MS",
    "BREAKER_COOLDOWN_MS",
    "BREAKER_FAILURES",
    "PeerSync",
    "Replicator",
    "SyncProgress",
]

BACKOFF_BASE_MS: Final = 2_000
BACKOFF_CAP_MS: Final = 300_000
BREAKER_FAILURES: Final = 6
BREAKER_COOLDOWN_MS: Final = 600_000
#: Entries asked for per pull request (the serving side caps it at MAX_RANGE too).
BATCH: Final = MAX_RANGE
#: A catch-up of at least this many entries starts the feed store's verifier
#: workers (node._verifier); a shorter one is over before they would be up.
LONG_CATCH_UP: Final = 4 * MAX_RANGE
#: Consecutive ranges of a catch-up stored in one transaction (at most MAX_RANGE_BYTES
#: each).
GROUP_RANGES: Final = 2
#: Most heads one peer may announce (a canonical array holds at most 4096 items).
MAX_HEADS: Final = 4096

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncProgress:
    """A catch-up in progress: ``author``'s feed from ``start`` towards ``target``."""

    author: bytes
    start: int
    done: int
    target: int


@dataclass(slots=True)
class PeerSync:
    """What the replicator knows of one peer (in memory; rebuilt after a restart)."""

    node_id: bytes
    failures: int = 0
    next_attempt_ms: int = 0
    breaker_open: bool = False
    running: bool = False
    heads: dict[bytes, int] = field(default_factory=dict)
    progress: SyncProgress | None = None
    last_error: str | None = None
    rejected: dict[str, int] = field(default_factory=dict)
    wake: bool = False
    stored: int = 0


def parse_heads(value: Any) -> tuple[dict[bytes, tuple[int, bytes]], set[bytes], int]:
    """A ``heads`` document: ``{"heads": [[author, seq, id, role|nil], ...],
    "forks": n}`` -> (author -> (seq, id), observers, fork count).

    Raises:
        RemoteProtocolError: the document is malformed.
    """
    bad = protocol.ErrorCode.MALFORMED
    if type(value) is not dict or type(value.get("heads")) is not list:
        raise protocol.RemoteProtocolError("heads: expected a map with a heads array", code=bad)
    forks = value.get("forks", 0)
    if type(forks) is not int or forks < 0:
        raise protocol.RemoteProtocolError("heads: forks is a count", code=bad)
    heads: dict[bytes, tuple[int, bytes]] = {}
    observers: set[bytes] = set()
    for item in value["heads"][:MAX_HEADS]:
        if (
            type(item) is not list
            or len(item) != 4
            or type(item[0]) is not bytes
            or len(item[0]) != 32
            or type(item[1]) is not int
            or not 1 <= item[1] <= protocol.MAX_SEQ
            or type(item[2]) is not bytes
            or len(item[2]) != 32
            or item[3] not in (None, "ngo", "observer")
        ):
            raise protocol.RemoteProtocolError("heads: bad item", code=bad)
        heads[item[0]] = (item[1], item[2])
        if item[3] == "observer":
            observers.add(item[0])
    return heads, observers, forks


class Replicator:
    """Keeps our replicas current from approved peers (module docstring)."""

    def __init__(
        self,
        *,
        feeds: FeedStore,
        peers: PeerStore,
        client: FedClient,
        net: Callable[[], bytes],
        own: bytes,
        clock: Clock,
        random_bytes: Callable[[int], bytes],
        max_parallel: int = 8,
    ) -> None:
        self._feeds = feeds
        self._peers = peers
        self._client = client
        self._net = net
        self._own = own
        self._clock = clock
        self._random = random_bytes
        self._state: dict[bytes, PeerSync] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._author_locks: dict[bytes, asyncio.Lock] = {}
        self._semaphore = asyncio.Semaphore(max_parallel)
        self._own_seq_notified: int | None = None
        self._closed = False
        #: Set after a sync round with any peer completed (tests wait on it).
        self.synced = asyncio.Event()

    # -- state for the UI -------------------------------------------------------------

    def state(self, node_id: bytes) -> PeerSync:
        state = self._state.get(node_id)
        if state is None:
            state = self._state[node_id] = PeerSync(node_id)
        return state

    def snapshot(self) -> dict[bytes, PeerSync]:
        return dict(self._state)

    # -- scheduling ---------------------------------------------------------------------

    async def tick(self) -> None:
        """One scheduling round: start a sync task for every due approved peer, and
        notify peers if our own feed grew. Never waits for the syncs themselves."""
        if self._closed:
            return
        now_ms = self._clock.now_ms()
        for peer in await self._peers.approved():
            if peer.url is None:
                continue
            state = self.state(peer.node_id)
            if state.running or (now_ms < state.next_attempt_ms and not state.wake):
                continue
            self._spawn(self.sync_peer(peer))
        await self.notify_now()

    def seen(self, node_id: bytes) -> None:
        """A peer called us. If we had given up on it for a while, it is back: sync
        it at once (a healthy peer's calls do not trigger syncs, or two nodes would
        wake each other forever)."""
        state = self.state(node_id)
        if state.failures > 0 and not state.running:
            self.wake(node_id)

    def wake(self, node_id: bytes) -> None:
        """A peer called us: it is up, so sync it at once (closing its breaker)."""
        state = self.state(node_id)
        state.wake = True
        state.breaker_open = False
        state.next_attempt_ms = 0
        if not state.running and not self._closed:
            self._spawn(self._wake_sync(node_id))

    async def _wake_sync(self, node_id: bytes) -> None:
        peer = await self._peers.get(node_id)
        if peer is not None and peer.state == "approved" and peer.url is not None:
            await self.sync_peer(peer)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- one peer -----------------------------------------------------------------------

    async def sync_peer(self, peer: Peer) -> bool:
        """Sync everything in scope that ``peer`` holds more of; True on success."""
        state = self.state(peer.node_id)
        if state.running or peer.url is None:
            return False
        state.running = True
        state.wake = False
        try:
            async with self._semaphore:
                rejected = await self._sync(peer, state)
        except (PeerCallError, protocol.ProtocolError) as error:
            code = error.code if isinstance(error, PeerCallError) else str(error.code)
            self._failed(peer, state, code)
            with contextlib.suppress(StorageError):
                await self._peers.record_contact(peer.node_id, ok=False, error=code)
            return False
        except StorageError as error:
            self._failed(peer, state, str(error.code))
            return False
        finally:
            state.running = False
            state.progress = None
        state.failures = 0
        state.breaker_open = False
        state.last_error = None
        state.next_attempt_ms = 0
        if state.stored:
            # Gossip: what we just learned, our other peers can pull from us at once
            # (so a feed crosses a chain of nodes in one go, not one round per hop).
            state.stored = 0
            await self._notify_others(peer.node_id)
        with contextlib.suppress(StorageError):
            await self._peers.record_contact(peer.node_id, ok=True, synced=True, rejected=rejected)
        self.synced.set()
        return True

    def _failed(self, peer: Peer, state: PeerSync, code: str) -> None:
        state.failures += 1
        state.last_error = code
        now_ms = self._clock.now_ms()
        if state.failures >= BREAKER_FAILURES:
            if not state.breaker_open:
                _log.warning(
                    "peer %s unreachable %d times: probing it every %d s",
                    peer.fingerprint,
                    state.failures,
                    BREAKER_COOLDOWN_MS // 1000,
                    extra={"event": "sync.breaker_open", "peer": peer.node_id.hex()},
                )
            state.breaker_open = True
            state.next_attempt_ms = now_ms + BREAKER_COOLDOWN_MS
            return
        ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (state.failures - 1))
        jitter = int.from_bytes(self._random(4), "big") / 2**32
        state.next_attempt_ms = now_ms + int(ceiling * (0.5 + jitter / 2))
        _log.info(
            "sync with %s failed (%s); retry in %d ms",
            peer.fingerprint,
            code,
            state.next_attempt_ms - now_ms,
            extra={"event": "sync.failed", "peer": peer.node_id.hex(), "code": code},
        )

    async def _sync(self, peer: Peer, state: PeerSync) -> int:
        assert peer.url is not None
        value = await self._client.call(peer.node_id, peer.url, "GET", "/heads")
        theirs, observers, fork_count = parse_heads(value)
        state.heads = {author: seq for author, (seq, _id) in theirs.items()}
        self._peers.observers |= observers
        rejected = 0
        done: set[bytes] = set()
        # A pulled feed may vouch for further authors: widen the scope and go on
        # (bounded: vouches reach one hop per pass).
        for _pass in range(4):
            scope = await self._peers.replicated_authors()
            ours = await self._feeds.heads()
            todo = [
                (author, seq)
                for author, (seq, _id) in theirs.items()
                if author in scope and author not in done and seq > ours.get(author, (0, b""))[0]
            ]
            if not todo:
                break
            for author, seq in sorted(todo, key=lambda item: item[1]):
                done.add(author)
                rejected += await self._pull(peer, state, author, seq)
        if fork_count:
            await self._pull_forks(peer)
        if await self._feeds.head_unconfirmed() is not None:
            # We asked a peer what it holds of our feed and pulled all of it: our
            # head is now at least what the federation saw of us before the restore.
            await self._feeds.set_head_unconfirmed(None)
            _log.warning(
                "own feed head confirmed by peer %s: appending is allowed again",
                peer.fingerprint,
                extra={"event": "sync.head_confirmed", "peer": peer.node_id.hex()},
            )
        return rejected

    async def _pull(self, peer: Peer, state: PeerSync, author: bytes, target: int) -> int:
        """Pull ``author``'s entries up to ``target`` from ``peer``; returns how many
        entries it sent that we rejected (the pull of this feed stops there)."""
        assert peer.url is not None
        lock = self._author_locks.setdefault(author, asyncio.Lock())
        async with lock:
            head = await self._feeds.head(author)
            held = head.seq if head is not None else 0
            if held >= target or await self._feeds.has_fork(author):
                return 0
            progress = SyncProgress(author=author, start=held, done=held, target=target)
            state.progress = progress
            net = self._net()
            if target - held >= LONG_CATCH_UP:
                self._feeds.verifier.start()  # worker processes: worth their start-up

            async def fetch(after: int) -> list[bytes]:
                assert peer.url is not None
                value = await self._client.call(
                    peer.node_id,
                    peer.url,
                    "GET",
                    f"/feeds/{author.hex()}",
                    query={"after": str(after), "limit": str(BATCH)},
                )
                return _entries_of(value)

            # A pipeline: range k+2 is asked for and range k+1 verified (by the feed
            # store's verifier, in worker processes) while range k is stored, so a
            # catch-up costs its slowest stage, not the sum of all three. Ranges that
            # follow each other whole are stored together, GROUP_RANGES a transaction
            # (a commit's cost is mostly its index pages: fewer, larger ones cost less).
            coming: asyncio.Task[list[bytes]] | None = asyncio.ensure_future(fetch(held))
            storing: asyncio.Task[tuple[list[IngestResult], Any]] | None = None
            waiting: PreparedBatch | None = None  # verified, not yet being stored
            grouped = 0  # ranges in waiting
            asked = held  # the end of the ranges asked for so far
            after: FeedHead | Literal["stored"] | None = "stored"

            async def settled() -> int | None:
                """The store in flight, waited for: what _pull returns if it must stop
                there (see _stored), None to go on (or when none is in flight)."""
                nonlocal storing
                if storing is None:
                    return None
                task, storing = storing, None
                return self._stored(peer, state, author, progress, await task)

            try:
                while True:
                    wires: list[bytes] = []
                    if coming is not None:
                        wires = await coming
                        coming = None
                        asked += len(wires)
                        if wires and asked < target:
                            coming = asyncio.ensure_future(fetch(asked))
                    prepared = None
                    if wires:
                        prepared = await self._feeds.prepare_batch(
                            wires, net=net, now_ms=self._clock.now_ms(), after=after
                        )
                        after = prepared.end
                    ready: list[PreparedBatch] = []  # to be stored, in this order
                    joined = waiting.then(prepared) if waiting and prepared else None
                    if joined is not None:
                        waiting, grouped = joined, grouped + 1
                    else:
                        if waiting is not None:
                            ready.append(waiting)
                        waiting, grouped = prepared, 1
                    if waiting is not None and (grouped >= GROUP_RANGES or coming is None):
                        ready.append(waiting)
                        waiting = None
                    for batch in ready:
                        if (outcome := await settled()) is not None:
                            return outcome
                        storing = asyncio.ensure_future(self._feeds.store_batch(batch))
                    if prepared is None:  # nothing more: the last store's outcome
                        outcome = await settled()
                        return 0 if outcome is None else outcome
            finally:
                abandoned: list[asyncio.Future[Any] | None] = [coming, storing]
                for pending in abandoned:  # not needed after all: its outcome is dropped
                    if pending is not None:
                        pending.add_done_callback(drop_outcome)
                        pending.cancel()

    def _stored(
        self,
        peer: Peer,
        state: PeerSync,
        author: bytes,
        progress: SyncProgress,
        outcome: tuple[list[IngestResult], protocol.ProtocolError | None],
    ) -> int | None:
        """Account for a stored batch of ``author``'s feed; what :meth:`_pull` returns
        if it must stop here, None to go on."""
        results, error = outcome
        stored = sum(1 for r in results if r.status == "stored")
        progress.done += stored
        state.stored += stored
        if progress.target - progress.start > BATCH:
            _log.info(
                "catch-up of %s from %s: %d/%d",
                author.hex()[:16],
                peer.fingerprint,
                progress.done - progress.start,
                progress.target - progress.start,
                extra={"event": "sync.progress", "peer": peer.node_id.hex()},
            )
        if error is not None:
            code = str(error.code)
            if error.code is protocol.ErrorCode.TS_IN_FUTURE:
                return 0  # retry later (SPEC §4.3): not the peer's fault
            state.rejected[code] = state.rejected.get(code, 0) + 1
            _log.warning(
                "peer %s sent an invalid entry of %s: %s",
                peer.fingerprint,
                author.hex()[:16],
                code,
                extra={"event": "sync.rejected", "peer": peer.node_id.hex(), "code": code},
            )
            return 1
        if any(r.status in ("fork", "gap") for r in results) or stored < len(results):
            return 0  # the ranges asked for next may not follow: ask again later
        if progress.done >= progress.target:
            return 0
        return None

    async def _pull_forks(self, peer: Peer) -> None:
        assert peer.url is not None
        value = await self._client.call(peer.node_id, peer.url, "GET", "/forks")
        proofs = value.get("proofs") if type(value) is dict else None
        if type(proofs) is not list:
            raise protocol.RemoteProtocolError(
                "forks: expected proofs", code=protocol.ErrorCode.MALFORMED
            )
        for proof in proofs[:64]:
            if type(proof) is not bytes:
                continue
            try:
                record = await self._feeds.add_fork_proof(
                    proof, net=self._net(), now_ms=self._clock.now_ms()
                )
            except protocol.ProtocolError:
                continue
            if record is not None:
                _log.warning(
                    "fork of %s at seq %d learned from %s",
                    record.author.hex()[:16],
                    record.seq,
                    peer.fingerprint,
                    extra={"event": "sync.fork", "peer": peer.node_id.hex()},
                )

    # -- notifying peers ------------------------------------------------------------------

    async def notify_now(self) -> None:
        """Tell approved peers our feed grew since we last told them."""
        head = await self._feeds.head(self._own)
        seq = head.seq if head is not None else 0
        if self._own_seq_notified is None:
            self._own_seq_notified = seq
            return
        if seq <= self._own_seq_notified:
            return
        self._own_seq_notified = seq
        assert head is not None
        for peer in await self._peers.approved():
            if peer.url is not None:
                self._spawn(self._notify(peer, head))

    async def _notify_others(self, source: bytes) -> None:
        head = await self._feeds.head(self._own)
        if head is None:
            return
        for peer in await self._peers.approved():
            if peer.url is not None and peer.node_id != source:
                self._spawn(self._notify(peer, head))

    async def _notify(self, peer: Peer, head: protocol.FeedHead) -> None:
        assert peer.url is not None
        body = {"heads": [[head.author, head.seq, head.id, None]]}
        with contextlib.suppress(PeerCallError, protocol.ProtocolError):
            await self._client.call(peer.node_id, peer.url, "POST", "/notify", body)


def _entries_of(value: Any) -> list[bytes]:
    bad = protocol.ErrorCode.MALFORMED
    if type(value) is not dict or type(value.get("entries")) is not list:
        raise protocol.RemoteProtocolError("feed range: expected entries", code=bad)
    wires = value["entries"]
    if len(wires) > BATCH or any(type(w) is not bytes for w in wires):
        raise protocol.RemoteProtocolError("feed range: bad entries", code=bad)
    return list(wires)
