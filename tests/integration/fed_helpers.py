"""Real nodes in one process, each serving its web application on a real loopback
socket, for federation tests: real databases, real signed HTTP between them.

Nodes share one :class:`FakeClock` (signatures and entries need a set clock); tests
drive sync rounds explicitly (``sync``/``converge``), so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

import protocol
from node.clock import FakeClock
from node.config import load_config
from node.daemon import Node, OrgDetails, init_node
from node.federation import FED_PREFIX, create_federation, join
from node.web import make_app

NOW = 1_780_000_000_000
CHEAP = PasswordHasher.from_parameters(CHEAPEST)
NOTE_KIND = "test.note/1"
#: How long :meth:`FedNode.sync` waits for a sync already running in the background.
BACKGROUND_SYNC_DEADLINE_S = 60.0


@dataclass
class FedNode:
    name: str
    data: Path
    node: Node
    server: TestServer
    url: str = ""

    def __post_init__(self) -> None:
        if not self.url:
            self.url = str(self.server.make_url(FED_PREFIX))

    @property
    def id(self) -> bytes:
        return self.node.identity.node_id

    async def append_notes(self, count: int, clock: FakeClock) -> None:
        """Append ``count`` opaque entries to this node's own feed (up to 500 per
        transaction, each through ``FeedStore.append_own_txn``)."""
        key, net, feeds = self.node.identity.signing_key, self.node.config.net, self.node.feeds
        now = clock.now_ms()

        def append(conn: Any, first: int, last: int) -> None:
            for index in range(first, last):

                def make(head: protocol.FeedHead | None, i: int = index) -> Any:
                    return protocol.append(
                        head, {"n": i}, key=key, net=net, now_ms=now, kind=NOTE_KIND
                    )

                feeds.append_own_txn(conn, make, now)

        for first in range(0, count, 500):
            await self.node.db.write(append, first, min(first + 500, count))

    async def seq_of(self, other: FedNode) -> int:
        head = await self.node.feeds.head(other.id)
        return 0 if head is None else head.seq

    async def sync(self) -> list[bool]:
        """One sync round with every approved peer, waited for."""
        results = []
        replicator = self.node.federation.replicator
        for peer in await self.node.federation.peers.approved():
            # a notify may have started a sync of this peer in the background: let it end
            # (a hang guard, generous: a worker of a parallel run gets about one core)
            deadline = time.monotonic() + BACKGROUND_SYNC_DEADLINE_S
            while replicator.state(peer.node_id).running and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            results.append(await replicator.sync_peer(peer))
        return results


async def _open(data: Path, clock: FakeClock, name: str, database_url: str | None) -> Node:
    org = OrgDetails(name_ar=f"منظمة {name}", name_en=f"Org {name}", registration=f"REG-{name}")
    node, _ = await init_node(data, clock=clock, database_url=database_url, org=org, hasher=CHEAP)
    return node


@asynccontextmanager
async def federation(
    tmp: Path,
    names: Sequence[str],
    *,
    clock: FakeClock | None = None,
    database_urls: Sequence[str | None] | None = None,
) -> AsyncIterator[dict[str, FedNode]]:
    """Nodes of one federation (the first founds it, the others join), each serving
    on 127.0.0.1; no peers approved yet (see :func:`link`)."""
    clock = clock or FakeClock(NOW)
    urls = list(database_urls or [None] * len(names))
    genesis: protocol.Genesis | None = None
    for index, name in enumerate(names):
        data = tmp / name
        node = await _open(data, clock, name, urls[index])
        try:
            if genesis is None:
                _config, genesis = await create_federation(
                    data,
                    node.config,
                    "Test hub",
                    db=node.db,
                    feeds_store=node.feeds,
                    audit=node.audit,
                    identity=node.identity,
                    clock=clock,
                )
            else:
                await join(
                    data,
                    node.config,
                    db=node.db,
                    feeds_store=node.feeds,
                    audit=node.audit,
                    identity=node.identity,
                    genesis=genesis,
                    clock=clock,
                    action="federation.join",
                )
        finally:
            await node.close()
        assert not load_config(data).standalone
    nodes: dict[str, FedNode] = {}
    async with AsyncExitStack() as stack:
        for index, name in enumerate(names):
            data = tmp / name
            node = await _open(data, clock, name, urls[index])
            stack.push_async_callback(node.close)
            server = TestServer(make_app(node.services(clock)), host="127.0.0.1")
            await server.start_server()
            stack.push_async_callback(server.close)
            fed = FedNode(name, data, node, server)
            node.federation.public_url = fed.url
            nodes[name] = fed
        yield nodes


async def link(a: FedNode, b: FedNode) -> None:
    """Approve ``a`` and ``b`` to each other (as their admins would)."""
    await a.node.federation.peers.set_state(b.id, "approved", actor=None, url=b.url)
    await b.node.federation.peers.set_state(a.id, "approved", actor=None, url=a.url)


async def converge(nodes: Sequence[FedNode], *, rounds: int = 10) -> int:
    """Sync every node with its peers until a round changes nothing; returns rounds."""
    for number in range(1, rounds + 1):
        before = [await n.node.feeds.heads() for n in nodes]
        for fed in nodes:
            await fed.sync()
        after = [await n.node.feeds.heads() for n in nodes]
        if before == after:
            return number
    raise AssertionError(f"no convergence after {rounds} rounds")


DEAD_URL = "http://127.0.0.1:9/fed/v1"  # the discard port: nothing listens there


async def partition(a: FedNode, b: FedNode) -> None:
    """Cut the link between ``a`` and ``b`` (each sees the other unreachable)."""
    await a.node.federation.peers.set_url(b.id, DEAD_URL)
    await b.node.federation.peers.set_url(a.id, DEAD_URL)


async def heal(a: FedNode, b: FedNode) -> None:
    await a.node.federation.peers.set_url(b.id, b.url)
    await b.node.federation.peers.set_url(a.id, a.url)
