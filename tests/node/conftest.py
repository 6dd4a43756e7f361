"""Fixtures for node tests: a fresh database on each backend, fixed keys and clock.

Every storage test runs twice: on SQLite in ``tmp_path`` and on PostgreSQL in a database
created for that test alone (``watan_test_<random>``, dropped after). The PostgreSQL
server comes from ``WATAN_TEST_POSTGRES`` (a maintenance database URL; default
``postgresql://postgres@127.0.0.1:5432/test``). If it is unreachable those tests are
skipped with the reason, except under ``CI=true``, where they fail: CI must test both.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import protocol
from node.storage import Database, FeedStore

#: The federation every test entry belongs to.
NET = hashlib.sha256(b"watan node test federation").digest()
#: The fixed clock: 2026-05-28T20:26:40Z. Tests never sleep and never read the time.
NOW = 1_780_000_000_000

#: Our node's key, a peer's, and a peer's key after rotation (fixed seeds).
KEY = protocol.signing_key(bytes(range(32)))
PEER_KEY = protocol.signing_key(bytes(range(32, 64)))
PEER_NEW_KEY = protocol.signing_key(bytes(range(64, 96)))
AUTHOR = protocol.public_key(KEY)
PEER = protocol.public_key(PEER_KEY)

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
_postgres_unreachable: list[str] = []  # the reason, once a first attempt failed


def postgres_admin_url() -> str:
    return os.environ.get("WATAN_TEST_POSTGRES", DEFAULT_POSTGRES)


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL at {make_url(postgres_admin_url())!r} unreachable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: both backends must be tested)", pytrace=False)
    pytest.skip(message)


async def _postgres_database(tmp_name: str) -> str:
    """Create an empty database and return its URL (plain ``postgresql://``)."""
    if _postgres_unreachable:
        _unavailable(_postgres_unreachable[0])
    admin = make_url(postgres_admin_url())
    engine = create_async_engine(
        admin.set(drivername="postgresql+asyncpg"),
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": 5},
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{tmp_name}"'))
    except Exception as error:  # any failure to reach the server: skip or fail below
        _postgres_unreachable.append(f"{type(error).__name__}: {error}".splitlines()[0])
        _unavailable(_postgres_unreachable[0])
    finally:
        await engine.dispose()
    return admin.set(database=tmp_name).render_as_string(hide_password=False)


async def _drop_postgres_database(name: str) -> None:
    admin = make_url(postgres_admin_url()).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database on each backend, not yet upgraded."""
    if request.param == "sqlite":
        database = Database.from_url(f"sqlite:///{tmp_path / 'watan.db'}")
        try:
            yield database
        finally:
            await database.close()
        return
    name = f"watan_test_{secrets.token_hex(6)}"
    database = Database.from_url(await _postgres_database(name))
    try:
        yield database
    finally:
        await database.close()
        await _drop_postgres_database(name)


@pytest.fixture
async def store(db: Database) -> FeedStore:
    """A feed store for our node (``AUTHOR``) on an upgraded database."""
    await db.upgrade()
    return FeedStore(db, own=AUTHOR)
