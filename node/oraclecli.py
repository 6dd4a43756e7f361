"""``watan oracle``: the pseudonym key ceremony and an oracle's administration.

    watan oracle deal --data DIR --threshold 2 --oracles ID1,ID2,ID3 [--out DIR]
    watan oracle import --data DIR FILE
    watan oracle quota --data DIR [N]
    watan oracle status --data DIR [--json]
    watan oracle check --data DIR

Every command works while the node runs (they change rows and append entries, as
``watan peers approve`` does); ``check`` calls the oracles over signed HTTP as the
node itself would.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path
from typing import Any

import protocol
from node._files import write_private_file
from node.clock import SystemClock
from node.daemon import NodeError
from node.fedcli import opened
from node.federation import FedClient, hex_id
from node.oracle import (
    OracleError,
    OracleServer,
    PseudonymService,
    active_config,
    deal,
    dealers_of,
    founder_of,
    import_share,
    utc_day,
)
from protocol import oprf

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = frozenset({"oracle"})


def add_parsers(commands: Any) -> None:
    data = {"type": Path, "required": True, "metavar": "DIR", "help": "node directory"}
    oracle = commands.add_parser("oracle", help="pseudonym oracles: deal keys, import a share")
    sub = oracle.add_subparsers(dest="oracle_command", required=True, metavar="COMMAND")
    dealing = sub.add_parser("deal", help="create a new epoch's key and split it among oracles")
    dealing.add_argument("--data", **data)
    dealing.add_argument("--threshold", type=int, required=True, help="oracles needed (t)")
    dealing.add_argument(
        "--oracles", required=True, help="comma-separated node ids (64 hex) of the oracles"
    )
    dealing.add_argument("--epoch", type=int, help="default: one more than the newest known")
    dealing.add_argument(
        "--out", type=Path, help="where share files go (default DIR/oracle-shares)"
    )
    importing = sub.add_parser("import", help="import this node's share file")
    importing.add_argument("--data", **data)
    importing.add_argument("file", type=Path, help="the share file the dealer sent")
    quota = sub.add_parser("quota", help="show or set the daily quota per requester")
    quota.add_argument("--data", **data)
    quota.add_argument("quota", type=int, nargs="?", help="elements per requester per UTC day")
    status = sub.add_parser("status", help="configuration, this node's share, usage")
    status.add_argument("--data", **data)
    status.add_argument("--json", action="store_true", help="print JSON")
    check = sub.add_parser("check", help="evaluate a test pseudonym with the oracles now")
    check.add_argument("--data", **data)


async def run(args: argparse.Namespace) -> int:
    try:
        command = args.oracle_command
        if command == "deal":
            return await _deal(args)
        if command == "import":
            return await _import(args)
        if command == "quota":
            return await _quota(args)
        if command == "status":
            return await _status(args)
        return await _check(args)
    except OracleError as error:
        raise NodeError(f"{error.code}: {error.message}") from None


def _server(node: Any) -> OracleServer:
    return OracleServer(
        node.db,
        feeds=node.feeds,
        audit=node.audit,
        identity=node.identity,
        net=lambda: node.config.net,
        clock=SystemClock(),
        random_bytes=secrets.token_bytes,
    )


def _federated(node: Any) -> None:
    if node.config.standalone:
        raise NodeError("this node belongs to no federation yet (watan federation create)")


async def _deal(args: argparse.Namespace) -> int:
    try:
        oracles = [hex_id(part.strip()) for part in args.oracles.split(",") if part.strip()]
    except Exception:
        raise NodeError("--oracles: comma-separated node ids, 64 hex characters each") from None
    async with opened(args.data) as node:
        _federated(node)
        server = _server(node)
        dealt = await deal(
            feeds=node.feeds,
            audit=node.audit,
            identity=node.identity,
            net=node.config.net,
            clock=SystemClock(),
            shares=server.shares,
            threshold=args.threshold,
            oracles=oracles,
            random_bytes=secrets.token_bytes,
            founder=founder_of(node.config),
            epoch=args.epoch,
        )
    out = args.out or args.data / "oracle-shares" / f"epoch-{dealt.epoch}"
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"epoch {dealt.epoch}: {args.threshold} of {len(oracles)} oracles; config published")
    if dealt.imported_own:
        print("  this node's own share is imported")
    for node_id, text in dealt.files.items():
        path = out / f"{node_id.hex()[:16]}.share"
        write_private_file(path, text.encode("ascii") + b"\n", overwrite=True)
        print(f"  {protocol.fingerprint(node_id)}: {path}")
    if dealt.files:
        print("send each file to its oracle's admin (a message attachment or a USB stick);")
        print("they run: watan oracle import --data DIR FILE. Then delete the files here.")
    return 0


async def _import(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise NodeError(f"cannot read {args.file}: {error}") from None
    async with opened(args.data) as node:
        _federated(node)
        server = _server(node)
        held = await import_share(
            text,
            feeds=node.feeds,
            scope=dealers_of(node.config),
            audit=node.audit,
            identity=node.identity,
            net=node.config.net,
            clock=SystemClock(),
            shares=server.shares,
        )
    print(
        f"imported share {held.share.index} of epoch {held.epoch} "
        f"({held.threshold} oracles needed); this node now answers as an oracle"
    )
    return 0


async def _quota(args: argparse.Namespace) -> int:
    async with opened(args.data) as node:
        server = _server(node)
        if args.quota is not None:
            await server.set_quota(args.quota, actor=None)
        print(f"daily quota: {await server.quota()} elements per requester")
    return 0


async def _status(args: argparse.Namespace) -> int:
    async with opened(args.data) as node:
        server = _server(node)
        doc: dict[str, Any] = {"config": None, "error": None}
        try:
            config = await active_config(node.feeds, dealers_of(node.config))
        except OracleError as error:
            doc["error"] = error.code.value
        else:
            doc["config"] = {
                "epoch": config.epoch,
                "threshold": config.threshold,
                "dealer": config.dealer.hex(),
                "oracles": [n.hex() for n in config.oracles().values()],
            }
        doc["shares"] = await server.shares.epochs()
        doc["quota"] = await server.quota()
        today = utc_day(SystemClock().now_ms())
        doc["usage_today"] = {
            row.requester.hex(): row.count for row in await server.usage(since_day=today)
        }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if doc["config"] is None:
        print(f"no oracle configuration ({doc['error']})")
    else:
        c = doc["config"]
        print(f"epoch {c['epoch']}: {c['threshold']} of {len(c['oracles'])} oracles")
        for index, node_id in enumerate(c["oracles"], start=1):
            print(f"  #{index} {protocol.fingerprint(bytes.fromhex(node_id))}")
    print(f"shares held: {doc['shares'] or 'none'}; daily quota {doc['quota']}")
    for requester, count in doc["usage_today"].items():
        print(f"  today {protocol.fingerprint(bytes.fromhex(requester))}: {count}")
    return 0


async def _check(args: argparse.Namespace) -> int:
    """Evaluate a random test input with the oracles, as the node would."""
    async with opened(args.data) as node:
        _federated(node)
        clock = SystemClock()
        client = FedClient(
            node.identity,
            clock=clock,
            random_bytes=secrets.token_bytes,
            key_of=node.feeds.current_key,
        )
        service = PseudonymService(
            node.db,
            feeds=node.feeds,
            peers=node.peers,
            client=client,
            server=_server(node),
            identity=node.identity,
            clock=clock,
            random_bytes=secrets.token_bytes,
            scope=dealers_of(node.config),
        )
        try:
            config = await service.config()
            # a random card number: evaluated like any, kept nowhere
            probe = oprf.PseudonymInput.from_national_id(
                "".join(secrets.choice("0123456789") for _ in range(12))
            )
            reason = ""
            try:
                await service.evaluate([probe], config=config)
                ok = True
            except OracleError as error:
                ok, reason = False, error.message
        finally:
            await client.close()
    for index, answer in sorted(service.answers.items()):
        state = "ok" if answer.ok else answer.code
        print(f"  #{index} {protocol.fingerprint(answer.node_id)}: {state}")
    if not ok:
        raise NodeError(f"pseudonyms cannot be computed now: {reason}")
    print(f"ok: {config.threshold} of {len(config.oracles())} oracles answered with valid proofs")
    return 0
