"""The running federation of one node: peers, the signed client, the replicator, the
replay cache and the scheduler that drives them (APScheduler)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.config import NodeConfig
from node.identity import Identity
from node.storage import Database, FeedStore, stored_content

from ._peers import PeerStore
from ._sync import Replicator
from ._transport import FedClient, ReplayCache

if TYPE_CHECKING:
    from node.oracle import OracleServer, PseudonymService

__all__ = ["SYNC_INTERVAL_S", "FederationService"]

#: How often every due peer is synced (a notify syncs at once in between).
SYNC_INTERVAL_S: Final = 15.0

_log = logging.getLogger(__name__)


class FederationService:
    """Everything federation a running node needs; one per node."""

    def __init__(
        self,
        db: Database,
        *,
        config: NodeConfig,
        feeds: FeedStore,
        audit: AuditLog,
        identity: Identity,
        clock: Clock,
        random_bytes: Callable[[int], bytes],
        public_url: str | None = None,
        sync_interval_s: float = SYNC_INTERVAL_S,
    ) -> None:
        self.config = config
        self.identity = identity
        self.feeds = feeds
        self.clock = clock
        self.public_url = public_url
        self.peers = PeerStore(
            db, feeds=feeds, audit=audit, identity=identity, net=lambda: self.net, clock=clock
        )
        self.client = FedClient(
            identity, clock=clock, random_bytes=random_bytes, key_of=self.key_of
        )
        self.replicator = Replicator(
            feeds=feeds,
            peers=self.peers,
            client=self.client,
            net=lambda: self.net,
            own=identity.node_id,
            clock=clock,
            random_bytes=random_bytes,
        )
        self.replay = ReplayCache(started_s=clock.now_ms() // 1000)
        self._interval = float(os.environ.get("WATAN_SYNC_INTERVAL_S", sync_interval_s))
        self._scheduler: AsyncIOScheduler | None = None
        self.messages: Any = None  # MessageService, set by the daemon
        #: This node as a pseudonym oracle, and as a pseudonym client (set by the daemon).
        self.oracle: OracleServer | None = None
        self.pseudonyms: PseudonymService | None = None
        #: Approved peers as of the last sync round (the dashboard shows it).
        self.approved_count = 0
        self._background: set[asyncio.Task[None]] = set()

    @property
    def net(self) -> bytes:
        return self.config.net

    @property
    def standalone(self) -> bool:
        return self.config.standalone

    async def key_of(self, node_id: bytes) -> bytes | None:
        """The key ``node_id`` signs with now (``FeedStore.current_key``)."""
        return await self.feeds.current_key(node_id)

    async def heads_document(self) -> dict[str, Any]:
        """What ``GET /fed/v1/heads`` answers: every feed in our scope we hold."""
        scope = await self.peers.replicated_authors()
        held = await self.feeds.heads()
        items = []
        for author, (seq, entry_id) in sorted(held.items()):
            if author not in scope:
                continue
            items.append([author, seq, entry_id, await self._role(author)])
        return {"forks": len(await self.feeds.forks()), "heads": items[:4096]}

    async def _role(self, author: bytes) -> str | None:
        wire = await self.feeds.latest_of_kind(author, protocol.Profile.KIND)
        if wire is None:
            return None
        try:
            role = stored_content(wire).get("role")
        except protocol.ProtocolError:
            return None
        return role if role in ("ngo", "observer") else None

    async def start(self) -> None:
        """Start periodic sync (and a first round at once)."""
        if self.standalone:
            return
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            _quietly,
            "interval",
            args=[self._tick],
            seconds=self._interval,
            id="sync",
            name="sync",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.add_job(
            _quietly,
            "interval",
            args=[self._deliver],
            seconds=2.0,
            id="deliver",
            name="deliver",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            _quietly,
            "interval",
            args=[self._publish_usage],
            minutes=10,
            id="oracle-usage",
            name="oracle-usage",
            max_instances=1,
        )
        scheduler.start()
        self._scheduler = scheduler
        if self.pseudonyms is not None:
            self.pseudonyms.start()
        await self._tick()
        await self._publish_usage()

    async def lags(self) -> dict[bytes, dict[bytes, int]]:
        """For every peer the replicator has asked for its heads: by how many entries
        we are behind it, per author it holds more of. Only authors in our replication
        scope count: we never pull the others, so they would look behind for ever."""
        ours = await self.feeds.heads()
        scope = await self.peers.replicated_authors()
        lags: dict[bytes, dict[bytes, int]] = {}
        for node_id, state in self.replicator.snapshot().items():
            lag = {}
            for author, seq in state.heads.items():
                held = ours.get(author, (0, b""))[0]
                if author in scope and seq > held:
                    lag[author] = seq - held
            lags[node_id] = lag
        return lags

    async def relays_for(self, recipient: bytes) -> list[bytes]:
        """Approved peers that can carry a message to ``recipient``: those that hold
        its feed (so they replicate it, hence peer with it or with one who does)."""
        out = []
        for node_id, state in self.replicator.snapshot().items():
            if node_id != recipient and recipient in state.heads:
                out.append(node_id)
        approved = await self.peers.approved_ids()
        return [node_id for node_id in out if node_id in approved]

    async def _tick(self) -> None:
        try:
            self.approved_count = len(await self.peers.approved())
            await self.replicator.tick()
            self.replay.prune(self.clock.now_ms() // 1000)
        except Exception:
            _log.exception("sync round failed", extra={"event": "sync.error"})

    async def _deliver(self) -> None:
        """Notify peers if our feed grew, and start a delivery pass without waiting for
        it: a pass waits for each recipient it serves, so one that does not answer (a
        silent partition) holds its pass until the request times out, and the next
        passes serve the others (they skip the recipients still being served)."""
        if self.messages is None:
            return
        try:
            await self.replicator.notify_now()
        except Exception:
            _log.exception("notifying peers failed", extra={"event": "sync.error"})
        self._spawn(self._deliver_pass())

    async def _deliver_pass(self) -> None:
        assert self.messages is not None
        try:
            await self.messages.deliver_due()
        except Exception:
            _log.exception("message delivery round failed", extra={"event": "messages.error"})

    def feed_grew(self) -> None:
        """Our feed just grew (a delivery): tell approved peers now rather than at the
        next round, so that their queues re-rank within seconds. Call from the loop."""
        self._spawn(self._notify_grew())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of its own, cancelled by :meth:`close` if unfinished."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _notify_grew(self) -> None:
        try:
            await self.replicator.notify_now()
        except Exception:
            _log.exception("notifying peers failed", extra={"event": "sync.error"})

    async def _publish_usage(self) -> None:
        """Append ``oracle.usage/1`` for finished days (checked every 10 minutes, so a
        day's usage appears shortly after midnight UTC, or when the node next runs)."""
        if self.oracle is None:
            return
        try:
            if await self.oracle.publish_usage():
                await self.replicator.notify_now()
        except Exception:
            _log.exception("usage publication failed", extra={"event": "oracle.error"})

    async def close(self) -> None:
        if self.pseudonyms is not None:
            await self.pseudonyms.close()
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._background):  # notifies and delivery passes in flight
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.messages is not None:
            self.messages.close()
        await self.replicator.close()
        await self.client.close()


async def _quietly(job: Callable[[], Awaitable[None]]) -> None:
    """Run a scheduled job, which logs its own failures. A job is cancelled only at
    shutdown (the event loop cancels what still runs, e.g. a delivery waiting on a slow
    peer): that is no failure, though APScheduler would log it as a job that "raised an
    exception", with a traceback. What the job did not finish stays due."""
    with contextlib.suppress(asyncio.CancelledError):
        await job()
