"""The ``watan`` command.

``watan up --data DIR``            run the node (creating it on first run)
``watan status --data DIR``        what the node holds (works while it runs)
``watan db upgrade --data DIR``    migrate the node's database
``watan backup --data DIR --out FILE``   a consistent snapshot (works while it runs)
``watan restore --in FILE --data DIR``   restore a snapshot into a new node directory
``watan audit verify --data DIR``  check the audit log's hash chain (exit 1: broken)
``watan accounts recover --data DIR``  a new one-time password for an admin
``watan protocol ...``             decode and verify protocol bytes

Packages add commands through the ``watan.commands`` entry point (``watan demo``, from
``tools``): each entry is a function given the subcommand registry, which adds its
parser and sets ``handler``, an async function of the parsed arguments returning the
exit status. node/ never imports them (the layers run one way).

Exit status 2, with one line on stderr, for every failure the operator must fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import protocol._cli
from node import fedcli, oraclecli
from node.accounts import FIRST_ADMIN, AccountError, AccountService
from node.audit import AuditLog
from node.backup import backup_node, read_passphrase, restore_node
from node.clock import SystemClock
from node.daemon import (
    DATABASE_URL_ENV,
    NodeError,
    OrgDetails,
    db_upgrade,
    init_node,
    node_status,
    open_node,
    serve,
)
from node.logs import FORMATS, configure_logging
from node.storage import StorageError
from protocol import oprf

__all__ = ["COMMAND_ENTRY_POINTS", "main"]

#: Entry point group of commands other packages add (module docstring).
COMMAND_ENTRY_POINTS: Final = "watan.commands"


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
    up.add_argument(
        "--public-url",
        metavar="URL",
        help="this node's address as peers reach it (default: http://HOST:PORT when "
        "HOST is one address); sent to peers and put in invites",
    )
    up.add_argument(
        "--no-discovery",
        action="store_true",
        help="do not advertise or look for nodes on the LAN (mDNS)",
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
    _backup_parsers(commands)
    fedcli.add_parsers(commands)
    oraclecli.add_parsers(commands)
    for entry in metadata.entry_points(group=COMMAND_ENTRY_POINTS):
        try:
            add: Callable[[Any], None] = entry.load()
        except ImportError:  # registered but not installed (the container has no tools/)
            continue
        add(commands)
    return parser


def _backup_parsers(commands: Any) -> None:
    data_help = "node directory"
    secret = "file whose first line is the passphrase (without it: no encryption)"
    backup = commands.add_parser("backup", help="snapshot the node (works while it runs)")
    backup.add_argument("--data", type=Path, required=True, metavar="DIR", help=data_help)
    backup.add_argument("--out", type=Path, required=True, metavar="FILE", help="archive")
    backup.add_argument("--passphrase-file", type=Path, metavar="F", help=secret)
    backup.add_argument("--force", action="store_true", help="replace an existing FILE")
    restore = commands.add_parser("restore", help="restore a backup into a new node directory")
    restore.add_argument("--in", dest="archive", type=Path, required=True, metavar="FILE")
    restore.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="new or empty directory"
    )
    restore.add_argument("--passphrase-file", type=Path, metavar="F", help=secret)
    restore.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV),
        metavar="URL",
        help=f"an empty database (default: ${DATABASE_URL_ENV}, else SQLite in DIR)",
    )
    accounts = commands.add_parser("accounts", help="staff account recovery")
    accounts_commands = accounts.add_subparsers(
        dest="accounts_command", required=True, metavar="COMMAND"
    )
    recover = accounts_commands.add_parser(
        "recover",
        help="give an admin account a new one-time password (when no admin can sign in)",
    )
    recover.add_argument("--data", type=Path, required=True, metavar="DIR", help=data_help)
    recover.add_argument("--username", default=FIRST_ADMIN, help="admin account (default: admin)")
    audit = commands.add_parser("audit", help="audit log checks")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_commands.add_parser("verify", help="check the hash chain (works while running)")
    verify.add_argument("--data", type=Path, required=True, metavar="DIR", help=data_help)
    verify.add_argument("--json", action="store_true", help="print JSON")


async def _up(args: argparse.Namespace) -> int:
    # Files the node creates (the SQLite database and its WAL) are its user's alone.
    os.umask(0o077)
    configure_logging(args.log_format)
    if not oprf.available():  # pseudonyms need it; say so now, not at the first household
        raise NodeError(
            "the system libsodium (>= 1.0.18, with ristretto255) is missing: "
            "install it (Debian: apt-get install libsodium23) and start again"
        )
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
        await serve(
            node,
            clock=clock,
            trust_proxy=args.trust_proxy,
            discover=not args.no_discovery,
            public_url=args.public_url,
        )
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


async def _backup(args: argparse.Namespace) -> int:
    os.umask(0o077)
    passphrase = None
    if args.passphrase_file is not None:
        passphrase = read_passphrase(args.passphrase_file, for_backup=args.command == "backup")
    if args.command == "restore":
        restored = await restore_node(
            args.archive, args.data, passphrase=passphrase, database_url=args.database_url
        )
        print(f"restored node {restored.node_id.hex()} into {args.data}")
        print(f"fingerprint {restored.fingerprint}, schema revision {restored.revision}")
        for name, count in restored.rows.items():
            print(f"  {name:<12} {count} rows")
        print(f"  ({restored.sessions_dropped} sessions dropped: staff log in again)")
        if not restored.audit.ok:
            print(
                f"watan: audit log broken at row {restored.audit.first_bad_seq}: "
                f"{restored.audit.reason} (it was so in the backup)",
                file=sys.stderr,
            )
            return 1
        print(f"audit log intact: {restored.audit.rows} rows")
        return 0
    if passphrase is None:
        print(
            f"watan: warning: {args.out} is NOT encrypted and holds the node's private "
            "keys in clear; keep it as safe as the keys (or use --passphrase-file)",
            file=sys.stderr,
        )
    made = await backup_node(
        args.data, args.out, clock=SystemClock(), passphrase=passphrase, force=args.force
    )
    tables = ", ".join(f"{name} {count}" for name, count in made.rows.items())
    kind = "encrypted" if made.encrypted else "not encrypted"
    print(f"backup of node {made.node_id.hex()} written to {made.path} ({made.size} bytes, {kind})")
    print(f"rows: {tables}")
    return 0


async def _audit_verify(args: argparse.Namespace) -> int:
    _config, db = await open_node(args.data)
    try:
        report, (seq, head) = await AuditLog(db).verify_with_head()
    except StorageError as error:
        raise NodeError(f"cannot read the audit log: {error.message}") from None
    finally:
        await db.close()
    if args.json:
        result = {
            "ok": report.ok,
            "rows": report.rows,
            "head": {"seq": seq, "hash": head.hex()},
            "first_bad_seq": report.first_bad_seq,
            "reason": report.reason,
        }
        print(json.dumps(result, indent=2))
    elif report.ok:
        print(f"intact: {report.rows} rows, head {seq} {head.hex()}")
    else:
        print(f"BROKEN at row {report.first_bad_seq}: {report.reason}")
    return 0 if report.ok else 1


async def _recover(args: argparse.Namespace) -> int:
    _config, db = await open_node(args.data)
    try:
        await db.upgrade()
        accounts = AccountService(db, audit=AuditLog(db))
        password = await accounts.recover(
            args.username, random_bytes=secrets.token_bytes, now_ms=SystemClock().now_ms()
        )
    except AccountError as error:
        raise NodeError(f"cannot recover {args.username!r}: {error.message}") from None
    except StorageError as error:
        raise NodeError(error.message) from None
    finally:
        await db.close()
    print(f"one-time password for {args.username!r}: {password}")
    print("it must be changed at the next sign-in; the account's sessions were ended")
    return 0


async def _run(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace], Awaitable[int]] | None = getattr(args, "handler", None)
    if handler is not None:  # a command added through COMMAND_ENTRY_POINTS
        return await handler(args)
    if args.command == "up":
        return await _up(args)
    if args.command in ("backup", "restore"):
        return await _backup(args)
    if args.command == "audit":
        return await _audit_verify(args)
    if args.command == "accounts":
        return await _recover(args)
    if args.command in fedcli.COMMANDS:
        return await fedcli.run(args)
    if args.command in oraclecli.COMMANDS:
        return await oraclecli.run(args)
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
