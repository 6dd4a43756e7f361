"""Command-line pieces the benchmarks share."""

from __future__ import annotations

import argparse

from ._postgres import DEFAULT_POSTGRES

__all__ = ["add_backend_options", "positive"]


def positive(text: str) -> int:
    """An ``argparse`` type: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--postgres URL`` (a server's admin URL) or ``--no-postgres`` (SQLite only)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres", default=DEFAULT_POSTGRES, help="a PostgreSQL server's admin URL"
    )
    where.add_argument("--no-postgres", action="store_true", help="SQLite only")
