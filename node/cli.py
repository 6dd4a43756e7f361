"""The ``watan`` command.

``watan up --data DIR``            run the node (creating it on first run)
``watan status --data DIR``        what the node holds (works while it runs)
``watan db upgrade --data DIR``    migrate the node's database
``watan protocol ...``             decode and verify protocol bytes

Exit status 2, with one line on stderr, for every failure the operator must fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import protocol._cli
from node.clock import SystemClock
from node.daemon import (
    DATABASE_URL_ENV,
    NodeError,
    OrgDetails,
    db_upgrade,
    init_node,
    node_status,
    serve,
)
from node.logs import FORMATS, configure_logging

__all__ = ["main"]


def _version() -> str:
    try:
        return metadata.version("watan")
    except metadata.PackageNotFoundError:
        return "0+source"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watan", description="Watan federated node.")
    parser.add_argument("--version", action="version", version=f"watan {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "protocol",
        help="decode and verify protocol bytes (see 'watan protocol --help')",
        add_help=False,
    )
    defaults = OrgDetails()
    up = commands.add_parser("up", help="run the node, creating it on first run")
    up.add_argument("--data", type=Path, required=True, metavar="DIR", help="node directory")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=_port, help="port to listen on (default 8470)")
    up.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV),
        metavar="URL",
        help=f"postgresql://... or sqlite:///PATH (default: ${DATABASE_URL_ENV}, "
        "else SQLite in DIR); stored on first run, later runs must match",
    )
    up.add_argument(
        "--trust-proxy",
        action="store_true",
        help="a TLS reverse proxy in front sets X-Forwarded-Proto (only when nothing "
        "else can reach the node's port)",
    )
    up.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get("WATAN_LOG_FORMAT", "text"),
        help="log lines as text or one JSON object each (default: $WATAN_LOG_FORMAT, else text)",
    )
    first = up.add_argument_group("organisation (first run only; placeholders by default)")
    first.add_argument("--org-name-ar", default=defaults.name_ar, metavar="NAME")
    first.add_argument("--org-name-en", default=defaults.name_en, metavar="NAME")
    first.add_argument("--registration", default=defaults.registration, metavar="NUMBER")
    first.add_argument(
        "--governorate", default=defaults.governorate, metavar="PCODE", help="IQG01..IQG19"
    )
    status = commands.add_parser("status", help="show the node's feeds (works while it runs)")
    status.add_argument("--data", type=Path, required=True, metavar="DIR", help="node directory")
    status.add_argument("--json", action="store_true", help="print JSON")
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    upgrade.add_argument("--data", type=Path, required=True, metavar="DIR", help="node directory")
    return parser


async def _up(args: argparse.Namespace) -> int:
    # Files the node creates (the SQLite database and its WAL) are its user's alone.
    os.umask(0o077)
    configure_logging(args.log_format)
    org = OrgDetails(
        name_ar=args.org_name_ar,
        name_en=args.org_name_en,
        registration=args.registration,
        governorate=args.governorate,
    )
    clock = SystemClock()
    node, _created = await init_node(
        args.data,
        clock=clock,
        database_url=args.database_url,
        host=args.host,
        port=args.port,
        org=org,
    )
    try:
        await serve(node, clock=clock, trust_proxy=args.trust_proxy)
    finally:
        await node.close()
    return 0


def _print_status(status: dict[str, Any]) -> None:
    feed = status["feed"]
    print(f"node        {status['node_id']}")
    print(f"fingerprint {status['fingerprint']}")
    print(f"net         {status['net']}" + (" (standalone)" if status["standalone"] else ""))
    print("own feed    " + ("empty" if feed is None else f"seq {feed['seq']}, head {feed['id']}"))
    print(f"peers       {len(status['peers'])}")
    print(f"feeds held  {len(status['heads'])}")
    for author, seq in status["heads"].items():
        print(f"  {author}  seq {seq}")


async def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        return await _up(args)
    if args.command == "status":
        status = await node_status(args.data)
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status)
        return 0
    revision = await db_upgrade(args.data)
    print(f"database at revision {revision}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["protocol"]:
        return protocol._cli.main(args[1:])
    parsed = _parser().parse_args(args)
    try:
        return asyncio.run(_run(parsed))
    except NodeError as error:
        print(f"watan: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during start-up or shutdown
        return 130


if __name__ == "__main__":
    sys.exit(main())
