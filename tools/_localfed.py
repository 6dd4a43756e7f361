"""A federation of real nodes in one process, each serving HTTP on a loopback port,
all approved to each other, with a dealt 2-of-3 (or t-of-n) pseudonym oracle key:
what benchmarks measure against (and ``watan demo`` later starts)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from node.clock import Clock
from node.daemon import Node, OrgDetails, init_node
from node.federation import FED_PREFIX, create_federation, join
from node.oracle import deal, dealers_of, founder_of, import_share
from node.web import make_app

__all__ = ["LocalNode", "local_federation"]


@dataclass
class LocalNode:
    name: str
    node: Node
    url: str  # the federation base URL, .../fed/v1


async def _found_or_join(data: Path, node: Node, clock: Clock, genesis: object | None) -> object:
    if genesis is None:
        _config, genesis = await create_federation(
            data,
            node.config,
            "Local federation",
            db=node.db,
            feeds_store=node.feeds,
            audit=node.audit,
            identity=node.identity,
            clock=clock,
        )
        return genesis
    await join(
        data,
        node.config,
        db=node.db,
        feeds_store=node.feeds,
        audit=node.audit,
        identity=node.identity,
        genesis=genesis,  # type: ignore[arg-type]
        clock=clock,
        action="federation.join",
    )
    return genesis


async def _sync_all(nodes: Sequence[LocalNode], rounds: int = 4) -> None:
    for _ in range(rounds):
        for local in nodes:
            replicator = local.node.federation.replicator
            for peer in await local.node.federation.peers.approved():
                await replicator.sync_peer(peer)


@asynccontextmanager
async def local_federation(
    base: Path,
    names: Sequence[str],
    *,
    clock: Clock,
    threshold: int = 2,
    database_url: str | None = None,
) -> AsyncIterator[list[LocalNode]]:
    """Nodes ``names`` in ``base/<name>``, serving on 127.0.0.1, all peered, the first
    the dealer of a ``threshold``-of-all oracle key every node holds a share of."""
    hasher = PasswordHasher.from_parameters(CHEAPEST)
    genesis = None
    for name in names:
        org = OrgDetails(name_ar=f"منظمة {name}", name_en=f"Org {name}", registration=f"REG-{name}")
        node, _ = await init_node(
            base / name, clock=clock, database_url=database_url, org=org, hasher=hasher
        )
        try:
            genesis = await _found_or_join(base / name, node, clock, genesis)
        finally:
            await node.close()
    async with AsyncExitStack() as stack:
        nodes: list[LocalNode] = []
        for name in names:
            node, _ = await init_node(base / name, clock=clock, hasher=hasher)
            stack.push_async_callback(node.close)
            runner = web.AppRunner(make_app(node.services(clock)), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            url = f"http://127.0.0.1:{port}{FED_PREFIX}"
            node.federation.public_url = url
            nodes.append(LocalNode(name, node, url))
        for a in nodes:
            for b in nodes:
                if a is not b:
                    await a.node.federation.peers.set_state(
                        b.node.identity.node_id, "approved", actor=None, url=b.url
                    )
        await _sync_all(nodes)
        dealer = nodes[0].node
        assert dealer.federation.oracle is not None
        dealt = await deal(
            feeds=dealer.feeds,
            audit=dealer.audit,
            identity=dealer.identity,
            net=dealer.config.net,
            clock=clock,
            shares=dealer.federation.oracle.shares,
            threshold=threshold,
            oracles=[n.node.identity.node_id for n in nodes],
            random_bytes=os.urandom,
            founder=founder_of(dealer.config),
        )
        await _sync_all(nodes)
        for local in nodes[1:]:
            node = local.node
            assert node.federation.oracle is not None
            await import_share(
                dealt.files[node.identity.node_id],
                feeds=node.feeds,
                scope=dealers_of(node.config),
                audit=node.audit,
                identity=node.identity,
                net=node.config.net,
                clock=clock,
                shares=node.federation.oracle.shares,
            )
        await asyncio.sleep(0)
        yield nodes
