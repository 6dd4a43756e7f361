"""Throw-away PostgreSQL databases for benchmarks and fault-injection runs."""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["DEFAULT_POSTGRES", "drop_database"]

#: The server the tools create their throw-away databases on (this project's machines
#: run one there, trust auth; tests/node/conftest.py uses the same).
DEFAULT_POSTGRES: Final = "postgresql://postgres@127.0.0.1:5432/test"


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``admin_url``, its sessions ended."""
    admin = make_url(admin_url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()
