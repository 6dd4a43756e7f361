"""A federation of real nodes in one process, each serving HTTP on a loopback port,
all approved to each other, with a dealt 2-of-3 (or t-of-n) pseudonym oracle key:
what benchmarks measure against, what ``watan demo`` runs, and what the privacy test
records.

Opening the same directory again reuses it: nodes that exist are not created again,
the federation is not founded twice, peers already approved only get their current
address, and the oracle key is dealt only once. So ``watan demo`` survives a restart.

A *front* stands between a node and its peers: given the address the node listens on,
it yields the base URL peers are told to use (the privacy test puts a recording proxy
there, so that every byte a node sends to a peer or answers it passes through it).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

import protocol
from node.clock import Clock
from node.config import CONFIG_FILE, load_config
from node.daemon import Node, NodeError, OrgDetails, init_node
from node.federation import FED_PREFIX, FederationError, NodeLock, create_federation, join
from node.oracle import OracleError, deal, dealers_of, founder_of, import_share
from node.web import UiSetup, make_app

__all__ = [
    "CHEAP_HASHER",
    "Front",
    "LocalNode",
    "converge",
    "found_or_join",
    "local_federation",
    "start_background",
    "stop_background",
]

#: Password hashing for throw-away nodes (benchmarks, tests): argon2's cheapest
#: parameters, so that creating accounts costs nothing measurable.
CHEAP_HASHER: Final = PasswordHasher.from_parameters(CHEAPEST)
#: The most sync rounds :func:`converge` runs before giving up (each round lets every
#: node pull from every peer; three fully peered nodes converge in two).
MAX_ROUNDS: Final = 10

#: Given a node's name and the host and port it listens on, a context that yields the
#: base URL (``http://host:port``) its peers are to use, and stops whatever stands
#: there on exit.
Front = Callable[[str, str, int], AbstractAsyncContextManager[str]]


@dataclass
class LocalNode:
    """One running node of the federation.

    Attributes:
        url: the federation base URL its peers use (``.../fed/v1``, through the front).
        base_url: where it serves staff and the UI (``http://127.0.0.1:PORT``).
    """

    name: str
    node: Node
    url: str
    base_url: str


@asynccontextmanager
async def _direct(name: str, host: str, port: int) -> AsyncIterator[str]:
    yield f"http://{host}:{port}"


async def found_or_join(
    data: Path,
    node: Node,
    clock: Clock,
    genesis: protocol.Genesis | None,
    name: str = "Local federation",
) -> protocol.Genesis:
    """Found a federation called ``name`` at ``node`` (no ``genesis``), or join ``genesis``."""
    if genesis is None:
        _config, founded = await create_federation(
            data,
            node.config,
            name,
            db=node.db,
            feeds_store=node.feeds,
            audit=node.audit,
            identity=node.identity,
            clock=clock,
        )
        return founded
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
    return genesis


async def _create(
    base: Path,
    names: Sequence[str],
    orgs: Sequence[OrgDetails],
    *,
    clock: Clock,
    database_urls: Sequence[str | None],
    hasher: PasswordHasher | None,
) -> None:
    """Create the nodes that do not exist yet and have them join the first one's
    federation (founded now if the first is new)."""
    genesis: protocol.Genesis | None = None
    first = base / names[0]
    if (first / CONFIG_FILE).exists():
        config = load_config(first)
        if config.genesis is not None:
            genesis = protocol.parse_genesis(bytes.fromhex(config.genesis), net=config.net)
    for name, org, database_url in zip(names, orgs, database_urls, strict=True):
        data = base / name
        if (data / CONFIG_FILE).exists() and not load_config(data).standalone:
            continue
        node, _ = await init_node(
            data, clock=clock, database_url=database_url, org=org, hasher=hasher
        )
        try:
            genesis = await found_or_join(data, node, clock, genesis)
        finally:
            await node.close()


async def _serve(
    stack: AsyncExitStack, node: Node, app: web.Application, host: str, port: int
) -> int:
    # Not handler_cancellation (``watan up`` sets it, for event streams): an oracle
    # client cancels its requests to the slower oracles once it has enough answers,
    # and a handler cancelled in the middle of a SQLite write transaction leaves the
    # write lock held, so the node's next writes fail with "database is locked".
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise NodeError(f"port {port} on {host} is in use; choose other ports") from None
        raise NodeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    bound: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return bound


async def _peer_all(nodes: Sequence[LocalNode]) -> None:
    """Approve every node to every other; a peer approved already only gets its
    current address (no second vouch, no audit row per restart)."""
    for a in nodes:
        peers = a.node.federation.peers
        for b in nodes:
            if a is b:
                continue
            known = await peers.get(b.node.identity.node_id)
            if known is not None and known.state == "approved":
                await peers.set_url(b.node.identity.node_id, b.url)
            else:
                await peers.set_state(b.node.identity.node_id, "approved", actor=None, url=b.url)


async def converge(nodes: Sequence[LocalNode], *, rounds: int = MAX_ROUNDS) -> int:
    """Sync every node with every approved peer until a round changes nothing.

    Returns:
        The rounds it took.

    Raises:
        RuntimeError: still changing after ``rounds`` rounds.
    """
    for number in range(1, rounds + 1):
        before = [await local.node.feeds.heads() for local in nodes]
        for local in nodes:
            replicator = local.node.federation.replicator
            for peer in await local.node.federation.peers.approved():
                await replicator.sync_peer(peer)
        after = [await local.node.feeds.heads() for local in nodes]
        if before == after:
            return number
    raise RuntimeError(f"the local federation did not converge in {rounds} rounds")


async def _oracle_key(nodes: Sequence[LocalNode], *, clock: Clock, threshold: int) -> None:
    """Deal a ``threshold``-of-all key on the first node (the founder) unless one is
    in force, and import each share where it is missing."""
    dealer = nodes[0].node
    assert dealer.federation.oracle is not None and dealer.federation.pseudonyms is not None
    try:
        await dealer.federation.pseudonyms.config()
        return  # dealt on an earlier run
    except OracleError:
        pass
    dealt = await deal(
        feeds=dealer.feeds,
        audit=dealer.audit,
        identity=dealer.identity,
        net=dealer.config.net,
        clock=clock,
        shares=dealer.federation.oracle.shares,
        threshold=threshold,
        oracles=[local.node.identity.node_id for local in nodes],
        random_bytes=os.urandom,
        founder=founder_of(dealer.config),
    )
    await converge(nodes)
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


async def start_background(nodes: Sequence[LocalNode]) -> None:
    """Start each node's background work, as ``watan up`` does: periodic sync, push
    notify, message delivery, the pseudonym worker, Ata'a's loops."""
    for local in nodes:
        await local.node.federation.start()
        await local.node.ataa.start()


async def stop_background(nodes: Sequence[LocalNode]) -> None:
    """Stop what :func:`start_background` started (before the servers close)."""
    for local in nodes:
        await local.node.ataa.close()
        await local.node.federation.close()


def _lock(stack: AsyncExitStack, data: Path) -> None:
    lock = NodeLock(data)
    try:
        lock.acquire(what="starting it again")
    except FederationError as error:
        raise NodeError(error.message) from None
    stack.callback(lock.release)


@asynccontextmanager
async def local_federation(
    base: Path,
    names: Sequence[str],
    *,
    clock: Clock,
    threshold: int | None = 2,
    database_url: str | None = None,
    database_urls: Sequence[str | None] | None = None,
    orgs: Sequence[OrgDetails] | None = None,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    ui: UiSetup | None = None,
    front: Front | None = None,
    run: bool = False,
    lock: bool = False,
    hasher: PasswordHasher | None = CHEAP_HASHER,
) -> AsyncIterator[list[LocalNode]]:
    """Nodes ``names`` in ``base/<name>``, serving on ``host``, all peered, the first
    the founder and the dealer of a ``threshold``-of-all oracle key every node holds
    a share of. Existing nodes are reused (module docstring).

    Args:
        threshold: of the oracle key; None: no key is dealt (nodes without
            pseudonyms, e.g. for a replication benchmark).
        database_url: every new node's database (default: SQLite in its directory).
        database_urls: each new node's database instead, one per name (None: SQLite),
            e.g. a benchmark's nodes on SQLite and on PostgreSQL side by side.
        orgs: each node's organisation (first run only); default ``Org <name>``.
        ports: each node's port (default: any free one).
        ui: the admin UI to serve (``node.web.load_ui()``); default none (API only).
        front: what peers reach each node through (default: directly).
        run: start each node's background work (periodic sync, push notify, message
            delivery, the pseudonym worker, Ata'a's loops), as ``watan up`` does;
            otherwise the caller drives sync (:func:`converge`) and pseudonyms.
        lock: hold each node directory's lock, as ``watan up`` does, so that no
            other process serves or re-founds the node meanwhile.
        hasher: password hashing (default: cheap; None: production's).

    Raises:
        NodeError: a port in use, a node running elsewhere, a damaged directory.
    """
    if orgs is None:
        orgs = [
            OrgDetails(name_ar=f"منظمة {name}", name_en=f"Org {name}", registration=f"REG-{name}")
            for name in names
        ]
    ports = list(ports) if ports is not None else [0] * len(names)
    if database_urls is None:
        database_urls = [database_url] * len(names)
    elif database_url is not None:
        raise ValueError("give database_url or database_urls, not both")
    front = front or _direct
    async with AsyncExitStack() as stack:
        if lock:
            for name in names:
                (base / name).mkdir(mode=0o700, parents=True, exist_ok=True)
                _lock(stack, base / name)
        await _create(base, names, orgs, clock=clock, database_urls=database_urls, hasher=hasher)
        nodes: list[LocalNode] = []
        for name, port in zip(names, ports, strict=True):
            node, _ = await init_node(base / name, clock=clock, hasher=hasher)
            stack.push_async_callback(node.close)
            app = make_app(node.services(clock), ui=ui)
            bound = await _serve(stack, node, app, host, port)
            peer_base = await stack.enter_async_context(front(name, host, bound))
            url = f"{peer_base}{FED_PREFIX}"
            node.federation.public_url = url
            nodes.append(LocalNode(name, node, url, f"http://{host}:{bound}"))
        await _peer_all(nodes)
        await converge(nodes)
        if threshold is not None:
            await _oracle_key(nodes, clock=clock, threshold=threshold)
            await converge(nodes)
        if run:
            # stopped first on exit (the stack unwinds backwards): background work
            # must not meet servers and databases already closed
            stack.push_async_callback(stop_background, nodes)
            await start_background(nodes)
        await asyncio.sleep(0)
        yield nodes
