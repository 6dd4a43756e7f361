"""The ``watan`` command.

The node daemon (``watan up``) arrives with the node core; until then ``watan`` offers
the protocol tools, so the installed command already does real work:
``watan protocol decode HEX_OR_@FILE`` and ``watan protocol verify-chain @FILE``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

import protocol._cli

__all__ = ["main"]


def _version() -> str:
    try:
        return metadata.version("watan")
    except metadata.PackageNotFoundError:
        return "0+source"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="watan", description="Watan federated node.")
    parser.add_argument("--version", action="version", version=f"watan {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "protocol",
        help="decode and verify protocol bytes (see 'watan protocol --help')",
        add_help=False,
    )
    if args[:1] == ["protocol"]:
        return protocol._cli.main(args[1:])
    parser.parse_args(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
