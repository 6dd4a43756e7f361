"""``watan federation``, ``watan invite``, ``watan peers``, ``watan blocklist`` and
``watan feed confirm-head``: an admin's federation commands on the node's directory.

Commands that only change rows (peers, blocklist) work while the node runs: it reads
peers from the database every round. Commands that change what the node *is*
(founding or joining a federation) take the node directory's lock and refuse while it
runs.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import protocol
from node.audit import AuditLog
from node.clock import SystemClock
from node.config import NodeConfig, load_config
from node.daemon import NodeError, open_node
from node.federation import (
    FED_PREFIX,
    FedClient,
    FederationError,
    NodeLock,
    PeerCallError,
    PeerStore,
    create_federation,
    hello_body,
    hex_id,
    join,
    make_invite,
)
from node.identity import Identity, IdentityError, load_identity
from node.storage import Database, FeedStore, StorageError

__all__ = ["add_parsers", "opened", "run"]

COMMANDS = frozenset({"federation", "invite", "peers", "blocklist", "feed"})


@dataclass(slots=True)
class _Opened:
    data_dir: Path
    config: NodeConfig
    identity: Identity
    db: Database
    feeds: FeedStore
    audit: AuditLog
    peers: PeerStore


@asynccontextmanager
async def opened(data_dir: Path) -> AsyncIterator[_Opened]:
    config, db = await open_node(data_dir)
    try:
        try:
            identity = load_identity(data_dir)
            await db.upgrade()
        except IdentityError as error:
            raise NodeError(str(error)) from None
        except StorageError as error:
            raise NodeError(error.message) from None
        feeds = FeedStore(db, own=identity.node_id)
        audit = AuditLog(db)
        peers = PeerStore(
            db,
            feeds=feeds,
            audit=audit,
            identity=identity,
            net=lambda: config.net,
            clock=SystemClock(),
        )
        yield _Opened(data_dir, config, identity, db, feeds, audit, peers)
    finally:
        await db.close()


def add_parsers(commands: Any) -> None:
    """Add the federation commands to ``watan``'s sub-command parser."""
    data = {"type": Path, "required": True, "metavar": "DIR", "help": "node directory"}
    federation = commands.add_parser("federation", help="found a federation")
    fed_commands = federation.add_subparsers(dest="fed_command", required=True, metavar="COMMAND")
    create = fed_commands.add_parser("create", help="found a federation with this node (stopped)")
    create.add_argument("--data", **data)
    create.add_argument("name", help="the federation's name, e.g. 'Basra coordination hub'")

    invite = commands.add_parser("invite", help="invite another node, or accept an invite")
    invite_commands = invite.add_subparsers(dest="invite_command", required=True, metavar="COMMAND")
    make = invite_commands.add_parser("create", help="print a one-time invite token")
    make.add_argument("--data", **data)
    make.add_argument(
        "--url",
        required=True,
        help="this node's address as the other node reaches it, e.g. http://10.0.0.5:8470",
    )
    make.add_argument("--ttl-hours", type=int, default=72, help="valid for (default 72)")
    make.add_argument("--json", action="store_true", help="print JSON")
    accept = invite_commands.add_parser("accept", help="join through an invite (node stopped)")
    accept.add_argument("--data", **data)
    accept.add_argument("token", help="the invite token (watan-invite-1....)")
    accept.add_argument(
        "--fingerprint",
        help="the inviter's fingerprint as its admin read it to you (else you are asked)",
    )
    accept.add_argument(
        "--url", help="this node's address as the inviter reaches it (if it can at all)"
    )

    peers = commands.add_parser("peers", help="list, approve, block or unblock peers")
    # --data before or after the action (README: 'watan peers approve ID --data DIR'):
    # the action's copy sets it only when given, so that it never hides the other.
    peers.add_argument("--data", **{**data, "required": False})
    peers.add_argument("--json", action="store_true", help="print JSON")
    peer_commands = peers.add_subparsers(dest="peers_command", metavar="COMMAND")
    for name, what in (
        ("approve", "approve a proposed node after comparing its fingerprint"),
        ("block", "block a node: never talk to it, never keep its feed"),
        ("unblock", "lift a block (the node is proposed again)"),
    ):
        action = peer_commands.add_parser(name, help=what)
        action.add_argument("--data", **{**data, "required": False, "default": argparse.SUPPRESS})
        action.add_argument("node_id", metavar="ID", help="the node id (64 hex characters)")
        action.add_argument("--reason", help="why (required to block)")
        action.add_argument("--url", help="approve: the node's federation URL, if known")

    blocklist = commands.add_parser("blocklist", help="export or import the blocklist as CSV")
    block_commands = blocklist.add_subparsers(dest="block_command", required=True, metavar="CMD")
    export = block_commands.add_parser("export", help="print the blocklist as CSV")
    export.add_argument("--data", **data)
    imported = block_commands.add_parser("import", help="add a CSV's rows (all or nothing)")
    imported.add_argument("--data", **data)
    imported.add_argument("file", type=Path, help="CSV with header author,reason[,blocked_at_ms]")

    feed = commands.add_parser("feed", help="own feed maintenance")
    feed_commands = feed.add_subparsers(dest="feed_command", required=True, metavar="COMMAND")
    confirm = feed_commands.add_parser(
        "confirm-head",
        help="allow appending after a restore without hearing from peers (audited; risky)",
    )
    confirm.add_argument("--data", **data)
    confirm.add_argument("--reason", required=True, help="why no peer could be asked")


async def run(args: argparse.Namespace) -> int:
    """Run a federation command; raises NodeError for the operator."""
    try:
        if args.command == "federation":
            return await _federation_create(args)
        if args.command == "invite":
            if args.invite_command == "create":
                return await _invite_create(args)
            return await _invite_accept(args)
        if args.command == "peers":
            return await _peers(args)
        if args.command == "blocklist":
            return await _blocklist(args)
        return await _confirm_head(args)
    except FederationError as error:
        raise NodeError(error.message) from None
    except protocol.ProtocolError as error:
        raise NodeError(f"{error.code}: {error.message}") from None
    except StorageError as error:
        raise NodeError(error.message) from None


async def _federation_create(args: argparse.Namespace) -> int:
    lock = NodeLock(args.data)
    lock.acquire(what="founding a federation")
    try:
        async with opened(args.data) as node:
            config, genesis = await create_federation(
                args.data,
                node.config,
                args.name,
                db=node.db,
                feeds_store=node.feeds,
                audit=node.audit,
                identity=node.identity,
                clock=SystemClock(),
            )
    finally:
        lock.release()
    print(f"federation {genesis.name!r} founded: id {config.net.hex()}")
    print("invite other nodes with: watan invite create --data DIR --url URL")
    return 0


async def _invite_create(args: argparse.Namespace) -> int:
    if not 1 <= args.ttl_hours <= 24 * 30:
        raise NodeError("--ttl-hours is between 1 and 720")
    url = args.url.rstrip("/")
    if not url.endswith(FED_PREFIX):
        url += FED_PREFIX
    async with opened(args.data) as node:
        invite = await make_invite(
            node.config,
            node.peers,
            identity=node.identity,
            url=url,
            clock=SystemClock(),
            random_bytes=secrets.token_bytes,
            ttl_ms=args.ttl_hours * 3600 * 1000,
        )
    token = invite.to_token()
    if args.json:
        print(
            json.dumps(
                {
                    "token": token,
                    "node_id": invite.node.hex(),
                    "fingerprint": protocol.fingerprint(invite.node),
                    "federation": invite.genesis.net.hex(),
                    "expires_ms": invite.expires,
                }
            )
        )
        return 0
    print(token)
    print(
        f"give this one-time token to the other NGO's admin; they must confirm this "
        f"node's fingerprint: {protocol.fingerprint(invite.node)}",
        file=sys.stderr,
    )
    return 0


def _normal_fp(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


async def _invite_accept(args: argparse.Namespace) -> int:
    invite = protocol.parse_invite(args.token)
    expected = protocol.fingerprint(invite.node)
    if args.fingerprint is not None:
        if _normal_fp(args.fingerprint) != _normal_fp(expected):
            raise NodeError(
                f"fingerprint mismatch: the token names {expected}; do not join, and tell "
                "the inviting admin"
            )
    else:
        print(f"federation: {invite.genesis.name}")
        print(f"inviting node fingerprint: {expected}")
        if not sys.stdin.isatty():
            raise NodeError("confirm the fingerprint with --fingerprint (no terminal to ask)")
        answer = input("Does the inviting admin read you this same fingerprint? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise NodeError("not confirmed; nothing was changed")
    clock = SystemClock()
    if invite.expires < clock.now_ms():
        raise NodeError("this invite has expired; ask for a new one")
    lock = NodeLock(args.data)
    lock.acquire(what="joining a federation")
    node_id = b""
    try:
        async with opened(args.data) as node:
            config = load_config(args.data)
            if not config.standalone and config.net != invite.genesis.net:
                raise NodeError("this node already belongs to another federation")
            my_url = args.url.rstrip("/") if args.url else None
            if my_url is not None and not my_url.endswith(FED_PREFIX):
                my_url += FED_PREFIX
            config = await join(
                args.data,
                config,
                db=node.db,
                feeds_store=node.feeds,
                audit=node.audit,
                identity=node.identity,
                genesis=invite.genesis,
                clock=clock,
                action="federation.join",
            )
            client = FedClient(
                node.identity,
                clock=clock,
                random_bytes=secrets.token_bytes,
                key_of=node.feeds.current_key,
            )
            try:
                answer = await client.call(
                    invite.node,
                    invite.url,
                    "POST",
                    "/hello",
                    hello_body(invite, node_id=node.identity.node_id, url=my_url),
                )
            except PeerCallError as error:
                raise NodeError(
                    f"joined federation {invite.genesis.name!r} locally, but the inviter "
                    f"did not accept the invite ({error.code}); run the same command again "
                    "once it is reachable"
                ) from None
            finally:
                await client.close()
            node_id = node.identity.node_id
            if type(answer) is not dict or answer.get("node") != invite.node:
                raise NodeError("the inviter answered for another node; not approved")
            peers = PeerStore(
                node.db,
                feeds=node.feeds,
                audit=node.audit,
                identity=node.identity,
                net=lambda: config.net,  # the federation's, not the standalone one
                clock=clock,
            )
            await peers.set_state(
                invite.node,
                "approved",
                actor=None,
                reason="invite accepted; fingerprint confirmed",
                url=invite.url,
                source="invite",
            )
    finally:
        lock.release()
    print(f"joined federation {invite.genesis.name!r} ({invite.genesis.net.hex()})")
    print(f"approved peer {expected}; start the node with 'watan up' to replicate")
    print(
        "the inviting admin must now approve this node after comparing its fingerprint: "
        f"{protocol.fingerprint(node_id)}"
    )
    return 0


async def _peers(args: argparse.Namespace) -> int:
    if args.data is None:
        raise NodeError("watan peers needs --data DIR (the node directory)")
    async with opened(args.data) as node:
        if args.peers_command is None:
            peers = await node.peers.all()
            if args.json:
                print(json.dumps([peer.to_json() for peer in peers], indent=2))
            else:
                for peer in peers:
                    url = peer.url or "-"
                    print(f"{peer.node_id.hex()}  {peer.state:<8}  {peer.fingerprint}  {url}")
                if not peers:
                    print("no peers yet")
            return 0
        node_id = hex_id(args.node_id)
        state = {"approve": "approved", "block": "blocked", "unblock": "proposed"}[
            args.peers_command
        ]
        peer = await node.peers.set_state(
            node_id,
            state,  # type: ignore[arg-type]
            actor=None,
            reason=args.reason,
            url=args.url,
        )
    print(f"{peer.node_id.hex()} is now {peer.state} ({peer.fingerprint})")
    return 0


async def _blocklist(args: argparse.Namespace) -> int:
    async with opened(args.data) as node:
        if args.block_command == "export":
            sys.stdout.write(await node.peers.export_blocklist())
            return 0
        try:
            text = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise NodeError(f"cannot read {args.file}: {error}") from None
        added = await node.peers.import_blocklist(text, actor=None)
    print(f"blocklist imported: {added} author(s) newly blocked")
    return 0


async def _confirm_head(args: argparse.Namespace) -> int:
    async with opened(args.data) as node:
        reason = args.reason.strip()
        if not reason:
            raise NodeError("give a reason")
        if await node.feeds.head_unconfirmed() is None:
            print("nothing to confirm: appending is allowed")
            return 0
        await node.feeds.set_head_unconfirmed(None)
        await node.audit.record(
            None, "feed.confirm_head", None, {"reason": reason[:500]}, now_ms=SystemClock().now_ms()
        )
    print("appending is allowed again (recorded in the audit log)")
    return 0
