"""The node's federation: founding or joining one, invites, and the parts that run.

Founding (``watan federation create``) and joining (``watan invite accept``) change the
node's ``net``. A standalone node's few entries were signed for its private standalone
``net`` and never left it, so they are *re-rooted*: removed and the newest profile
signed again as entry 1 under the federation's ``net`` (in one transaction, with the
config written after it commits). Both refuse while the node runs (the directory
lock) and once the node is federated.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.config import NodeConfig, write_config
from node.identity import Identity
from node.storage import Database, FeedStore, stored_content
from node.storage._schema import entries, feeds

from ._peers import FederationError, FederationErrorCode, PeerStore

__all__ = [
    "DEFAULT_INVITE_TTL_MS",
    "LOCK_FILE",
    "NodeLock",
    "create_federation",
    "make_invite",
    "reroot_txn",
]

LOCK_FILE: Final = "node.lock"
DEFAULT_INVITE_TTL_MS: Final = 72 * 3600 * 1000

_log = logging.getLogger(__name__)


class NodeLock:
    """An exclusive lock on a node directory, held while ``watan up`` runs (two
    processes serving one node would each append: a fork of itself) and by commands
    that change what the node is."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, *, what: str) -> None:
        """Raises FederationError(NODE_RUNNING) if another process holds it."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FederationError(
                f"the node in {self._path.parent} is running; stop it before {what}",
                code=FederationErrorCode.NODE_RUNNING,
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def reroot_txn(
    conn: Connection,
    *,
    feeds_store: FeedStore,
    identity: Identity,
    net: bytes,
    now_ms: int,
) -> protocol.Entry:
    """Re-sign a standalone node's newest profile as entry 1 under ``net`` (module
    docstring). Only the node's own feed may exist: a standalone node holds no other."""
    own = identity.node_id
    others = conn.execute(select(entries.c.author).where(entries.c.author != own).limit(1))
    if others.first() is not None:
        raise FederationError(
            "this node holds other nodes' entries; it is not standalone",
            code=FederationErrorCode.ALREADY_FEDERATED,
        )
    wire = conn.execute(
        select(entries.c.wire)
        .where(entries.c.author == own, entries.c.kind == protocol.Profile.KIND)
        .order_by(entries.c.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    if wire is None:
        raise FederationError("the node has no profile yet", code=FederationErrorCode.STANDALONE)
    profile = protocol.Profile.from_content(stored_content(wire))
    conn.execute(delete(feeds).where(feeds.c.author == own))
    conn.execute(delete(entries).where(entries.c.author == own))
    key = identity.signing_key
    return feeds_store.append_own_txn(
        conn, lambda head: protocol.append(head, profile, key=key, net=net, now_ms=now_ms), now_ms
    )


async def join(
    data_dir: Path,
    config: NodeConfig,
    *,
    db: Database,
    feeds_store: FeedStore,
    audit: AuditLog,
    identity: Identity,
    genesis: protocol.Genesis,
    clock: Clock,
    action: str,
) -> NodeConfig:
    """Move a standalone node into the federation of ``genesis`` (re-rooting its
    feed), then write the new config. Returns it."""
    if not config.standalone:
        if config.net == genesis.net:
            return config
        raise FederationError(
            "this node already belongs to a federation",
            code=FederationErrorCode.ALREADY_FEDERATED,
        )
    now_ms = clock.now_ms()

    def txn(conn: Connection) -> None:
        audit.lock_txn(conn)
        reroot_txn(conn, feeds_store=feeds_store, identity=identity, net=genesis.net, now_ms=now_ms)
        audit.record_txn(
            conn,
            None,
            action,
            f"federation:{genesis.net.hex()}",
            {"name": genesis.name, "founder": protocol.fingerprint(genesis.founder)},
            now_ms=now_ms,
        )

    await db.write(txn)
    new = replace(config, net=genesis.net, standalone=False, genesis=genesis.wire.hex())
    write_config(data_dir, new)
    return new


async def create_federation(
    data_dir: Path,
    config: NodeConfig,
    name: str,
    *,
    db: Database,
    feeds_store: FeedStore,
    audit: AuditLog,
    identity: Identity,
    clock: Clock,
) -> tuple[NodeConfig, protocol.Genesis]:
    """Found a federation with this node as its first member.

    Raises:
        FederationError: ALREADY_FEDERATED; LocalProtocolError: a bad name.
    """
    if not config.standalone:
        raise FederationError(
            "this node already belongs to a federation",
            code=FederationErrorCode.ALREADY_FEDERATED,
        )
    genesis = protocol.create_genesis(name, key=identity.signing_key, now_ms=clock.now_ms())
    new = await join(
        data_dir,
        config,
        db=db,
        feeds_store=feeds_store,
        audit=audit,
        identity=identity,
        genesis=genesis,
        clock=clock,
        action="federation.create",
    )
    return new, genesis


async def make_invite(
    config: NodeConfig,
    peers: PeerStore,
    *,
    identity: Identity,
    url: str,
    clock: Clock,
    random_bytes: Callable[[int], bytes],
    ttl_ms: int = DEFAULT_INVITE_TTL_MS,
    actor: int | None = None,
) -> protocol.Invite:
    """A one-time invite into this node's federation, reachable at ``url``.

    Raises:
        FederationError: STANDALONE (found or join a federation first);
        LocalProtocolError: a bad URL.
    """
    if config.standalone or config.genesis is None:
        raise FederationError(
            "this node has no federation yet: run 'watan federation create NAME' first",
            code=FederationErrorCode.STANDALONE,
        )
    genesis = protocol.parse_genesis(bytes.fromhex(config.genesis), net=config.net)
    secret = random_bytes(32)
    expires = clock.now_ms() + ttl_ms
    invite = protocol.Invite.create(
        url=url, node=identity.node_id, genesis=genesis, secret=secret, expires=expires
    )
    await peers.add_invite(secret, expires_ms=expires, actor=actor)
    return invite


def hello_body(invite: protocol.Invite, *, node_id: bytes, url: str | None) -> dict[str, Any]:
    return {"node": node_id, "secret": invite.secret, "url": url}
