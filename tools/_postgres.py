"""Throw-away PostgreSQL databases for benchmarks and fault-injection runs."""

from __future__ import annotations

import secrets
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["DEFAULT_POSTGRES", "create_database", "drop_database"]

#: The server the tools create their throw-away databases on (this project's machines
#: run one there, trust auth; tests/node/conftest.py uses the same).
DEFAULT_POSTGRES: Final = "postgresql://postgres@127.0.0.1:5432/test"


async def create_database(admin_url: str, prefix: str) -> tuple[str, str]:
    """A new, empty database ``<prefix>_<random>`` on the server of ``admin_url``: its
    name and URL.

    Raises:
        OSError, sqlalchemy.exc.SQLAlchemyError: the server cannot be reached (5 s to
            connect) or refused.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    await _admin_execute(admin_url, f'CREATE DATABASE "{name}"', {"timeout": 5})
    url = make_url(admin_url).set(drivername="postgresql", database=name)
    return name, url.render_as_string(hide_password=False)


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``admin_url``, its sessions ended."""
    await _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', {})


async def _admin_execute(admin_url: str, sql: str, connect_args: dict[str, Any]) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
    admin = make_url(admin_url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT", connect_args=connect_args)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()
