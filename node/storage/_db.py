"""The node's database: SQLite (WAL) by default, PostgreSQL by URL (DESIGN §6).

One :class:`Database` per node owns the SQLAlchemy engine. Stores run their queries
through :meth:`Database.read` and :meth:`Database.write`, each one transaction; this
module is the one place where SQLAlchemy, sqlite3, asyncpg and Alembic exceptions become
:class:`StorageError` (STYLE §6, like httpcore's ``map_exceptions``).

Transactions. On SQLite a write transaction starts with ``BEGIN IMMEDIATE``: it takes
the database's single write lock up front (waiting up to ``SQLITE_BUSY_TIMEOUT_MS``),
so two writers serialize instead of both reading a feed head and then failing to
upgrade their read locks (SQLite "Transaction" docs, §"Read transactions"). Reads use
``BEGIN DEFERRED`` and, under WAL, never wait for the writer. On PostgreSQL the default
READ COMMITTED isolation is kept; stores that read-then-write lock the rows they read
(``SELECT ... FOR UPDATE``), which re-reads the newest committed version after waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import alembic.command
import alembic.util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import protocol
from node._tasks import drop_outcome

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_MIN_FREE_BYTES",
    "Database",
    "StorageError",
    "StorageErrorCode",
]

P = ParamSpec("P")
T = TypeVar("T")

#: How long a SQLite writer waits for the write lock before failing with CONFLICT. A
#: write transaction here takes milliseconds; 10 s also covers a WAL checkpoint or a
#: backup on a slow SD card, while a lock that is never released still surfaces as an
#: error rather than a hang. (Python's sqlite3 default is 5 s.)
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000

#: How long to wait for a PostgreSQL server to accept a connection. asyncpg's default
#: is 60 s; a health check or a start-up that hangs a minute on a dead link reads as
#: a frozen node, and a server on the LAN answers in well under a second.
CONNECT_TIMEOUT_S: Final = 10

#: Below this much free space where the SQLite file lives, the health check reports the
#: storage FULL. Every write appends each page it changes (4 KiB) to the WAL, and a
#: checkpoint then grows the database file: an import batch or a catch-up sync changes
#: a few hundred pages, so with less than 1 MiB free the next large write fails. The
#: operator should hear that from monitoring, not from a case worker.
SQLITE_MIN_FREE_BYTES: Final = 1 << 20

# SQLite settings for every connection (https://www.sqlite.org/pragma.html).
_SQLITE_PRAGMAS: Final = (
    # Write-ahead log: readers never block the writer nor the writer readers.
    "PRAGMA journal_mode=WAL",
    # FULL, not NORMAL: with WAL, NORMAL stays consistent after a power cut but may lose
    # the last committed transactions. Losing an entry of our own feed that peers have
    # already pulled would make the node sign a different entry at the same seq: a
    # fork of itself (SPEC §4.1 "A node MUST never fork its own feed"). NGO boxes lose
    # power often; one fsync per commit is cheap at our write rate.
    "PRAGMA synchronous=FULL",
    # Off by default in SQLite; our schema relies on them (feeds -> entries).
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
)

#: Execution option that marks the write engine's connections (see ``_sqlite_begin``).
_WRITE_OPTION: Final = "watan_write"
#: PostgreSQL advisory lock key that serializes concurrent upgrades ("WATANMIG").
_MIGRATION_LOCK: Final = 0x5741_5441_4E4D_4947
_MIGRATIONS: Final = Path(__file__).with_name("migrations")


class StorageErrorCode(enum.StrEnum):
    """Stable, machine-readable storage error codes."""

    BAD_URL = "BAD_URL"  # malformed database URL, or a database we do not support
    UNREACHABLE = "UNREACHABLE"  # cannot connect, authenticate, or open the file
    CONFLICT = "CONFLICT"  # a concurrent writer won (unique key, lock timeout): retry
    FULL = "FULL"  # no space left for the database (its disk, or the server's): free some
    CORRUPT = "CORRUPT"  # stored data breaks an invariant, or a damaged database file
    SCHEMA = "SCHEMA"  # tables missing (not upgraded) or newer than this code
    FAILED = "FAILED"  # any other database error
    HEAD_UNCONFIRMED = "HEAD_UNCONFIRMED"  # restored node: own head not yet learned from peers


class StorageError(protocol.CodedError):
    """Base of every error raised by ``node.storage``; its message never holds a
    password or PII."""

    code: StorageErrorCode

    def __init__(self, message: str, *, code: StorageErrorCode) -> None:
        super().__init__(message, code=code)


_URL_HELP: Final = "use sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_SQLITE_DRIVERS: Final = ("sqlite", "sqlite+aiosqlite")
_POSTGRES_DRIVERS: Final = ("postgresql", "postgresql+asyncpg")


def _bad_url(reason: str) -> StorageError:
    return StorageError(f"{reason}; {_URL_HELP}", code=StorageErrorCode.BAD_URL)


def _parse_url(url: str) -> URL:
    """The async driver URL for a configured database URL (never echoes the URL back:
    it may hold a password)."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError, TypeError):
        raise _bad_url("not a database URL") from None
    if parsed.query:
        raise _bad_url("database URL options (?...) are not supported")
    if parsed.drivername in _SQLITE_DRIVERS:
        if parsed.host or parsed.username or parsed.password or parsed.port:
            raise _bad_url("a SQLite URL names a file, not a server")
        if not parsed.database or parsed.database == ":memory:":
            raise _bad_url("a SQLite URL needs a file path")
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in _POSTGRES_DRIVERS:
        if not parsed.database:
            raise _bad_url("a PostgreSQL URL needs a database name")
        return parsed.set(drivername="postgresql+asyncpg")
    raise _bad_url(f"unsupported database {parsed.drivername.split('+')[0]!r}")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module (its legacy mode begins only before DML,
    # so SELECTs would run outside the transaction); ``_sqlite_begin`` emits it. This
    # is SQLAlchemy's documented recipe ("Serializable isolation / Savepoints /
    # Transactional DDL", sqlite dialect docs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN DEFERRED")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def _upgrade_txn(conn: Connection, revision: str = "head") -> None:
    if conn.dialect.name == "postgresql":
        # Two processes (a node and an operator's CLI) upgrading at once: the second
        # waits here, then finds the schema at head and does nothing.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = _alembic_config()
    config.attributes["connection"] = conn
    alembic.command.upgrade(config, revision)


def _load_txn(conn: Connection, revision: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    _upgrade_txn(conn, revision)
    result = fn(conn, *args)
    _upgrade_txn(conn, "head")
    return result


def _current_revision_txn(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _ping_txn(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))


# SQLSTATEs (PostgreSQL manual, appendix A "Error Codes") that mean "another transaction
# got there first: retry", and classes that mean "we cannot use the server at all"
# (08 connection exception, 28 invalid authorization, 3D invalid catalog name, 53
# insufficient resources, 57 operator intervention such as a shutdown).
_PG_CONFLICT: Final = frozenset({"23505", "40001", "40P01", "55P03"})
_PG_FULL: Final = frozenset({"53100"})  # disk_full (checked before class 53 below)
_PG_UNREACHABLE: Final = frozenset({"08", "28", "3D", "53", "57"})
_PG_CORRUPT: Final = frozenset({"XX001", "XX002"})
_PG_SCHEMA: Final = frozenset({"42P01", "42703"})  # undefined table, undefined column
# sqlite3 error names (https://www.sqlite.org/rescode.html), prefix-matched so that
# extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CONSTRAINT_UNIQUE, ...) are covered.
_SQLITE_CODES: Final = (
    ("SQLITE_BUSY", StorageErrorCode.CONFLICT),
    ("SQLITE_LOCKED", StorageErrorCode.CONFLICT),
    ("SQLITE_CONSTRAINT_PRIMARYKEY", StorageErrorCode.CONFLICT),
    ("SQLITE_CONSTRAINT_UNIQUE", StorageErrorCode.CONFLICT),
    # "database or disk is full": SQLite's name for ENOSPC (and for a database at its
    # max_page_count, which we never set), whether the WAL, the file or a temp file grew.
    ("SQLITE_FULL", StorageErrorCode.FULL),
    ("SQLITE_CORRUPT", StorageErrorCode.CORRUPT),
    ("SQLITE_NOTADB", StorageErrorCode.CORRUPT),
    ("SQLITE_CANTOPEN", StorageErrorCode.UNREACHABLE),
    ("SQLITE_PERM", StorageErrorCode.UNREACHABLE),
    ("SQLITE_READONLY", StorageErrorCode.UNREACHABLE),
)


def _classify(error: exc.SQLAlchemyError) -> StorageErrorCode:
    if not isinstance(error, exc.DBAPIError):
        return StorageErrorCode.FAILED
    if error.connection_invalidated:
        return StorageErrorCode.UNREACHABLE
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate in _PG_CONFLICT:
            return StorageErrorCode.CONFLICT
        if sqlstate in _PG_FULL:
            return StorageErrorCode.FULL
        if sqlstate[:2] in _PG_UNREACHABLE:
            return StorageErrorCode.UNREACHABLE
        if sqlstate in _PG_CORRUPT:
            return StorageErrorCode.CORRUPT
        if sqlstate in _PG_SCHEMA:
            return StorageErrorCode.SCHEMA
        return StorageErrorCode.FAILED
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        for prefix, code in _SQLITE_CODES:
            if name.startswith(prefix):
                return code
        if "no such table" in str(orig):
            return StorageErrorCode.SCHEMA
    if isinstance(error, exc.InterfaceError):  # asyncpg: connection closed under us
        return StorageErrorCode.UNREACHABLE
    return StorageErrorCode.FAILED


class Database:
    """One engine for the node's database, and the transactions the stores run in.

    Build one with :meth:`from_url`, call :meth:`upgrade` at start-up, and
    :meth:`close` at shutdown.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine made by :meth:`from_url` (which installs the SQLite hooks)."""
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._password = engine.url.password
        self._where = engine.url.render_as_string(hide_password=True)
        # SQLite has one write lock, and a writer that finds it taken polls for it
        # (busy_timeout: sleeps of up to 100 ms between tries), so under steady writing
        # (an import, seeding, replication beside deliveries) one of this process's
        # writers can lose every race until its timeout and fail with CONFLICT. This
        # process's writers therefore queue here first, in arrival order; the busy
        # timeout is left for other processes (the CLI) on the same file. Made in the
        # event loop that first writes (an asyncio lock belongs to one loop).
        self._write_queue: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        # Writes still running, their callers perhaps cancelled (see write): close waits.
        self._writes: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Open (lazily: nothing connects until first use) the database at ``url``.

        Args:
            url: ``sqlite:///PATH`` (relative; ``sqlite:////abs/path`` for an absolute
                path) or ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE``. The
                explicit async drivers (``sqlite+aiosqlite``, ``postgresql+asyncpg``)
                are accepted too. No ``?options``.

        Raises:
            StorageError: BAD_URL, without repeating the URL (it may hold a password).
        """
        parsed = _parse_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_async_engine(parsed)
            event.listen(engine.sync_engine, "connect", _sqlite_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        else:
            # pre_ping: one round trip per checkout, so that a connection the server
            # dropped (restart, idle timeout, flaky link) fails the ping, not our write.
            engine = create_async_engine(
                parsed, pool_pre_ping=True, connect_args={"timeout": CONNECT_TIMEOUT_S}
            )
        return cls(engine)

    def __repr__(self) -> str:
        return f"Database({self._where!r})"

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (reads; :meth:`write` adds the write-lock option)."""
        return self._engine

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one read transaction (each statement sees committed
        data; on PostgreSQL each statement its own snapshot: use :meth:`snapshot`
        when several reads must agree).

        Raises:
            StorageError: any database failure, translated.
        """
        with self._translated():
            async with self._engine.connect() as conn:
                return await conn.run_sync(fn, *args, **kwargs)

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one write transaction: committed if ``fn`` returns,
        rolled back if it raises. ``fn``'s own exceptions (protocol errors, a crash it
        simulates) pass through unchanged; database and OS errors are translated.

        Raises:
            StorageError: any database failure, translated; CONFLICT when a concurrent
                writer won or the SQLite write lock was not free within
                ``SQLITE_BUSY_TIMEOUT_MS``.
        """
        # Shielded: a cancelled caller (a browser or peer that hung up, a client that
        # had enough oracle answers) must not abandon a transaction half way, which on
        # SQLite would leave the write lock held by a connection nobody returns. The
        # transaction runs to its commit or rollback; the caller sees CancelledError.
        task = asyncio.ensure_future(self._write(fn, *args, **kwargs))
        task.add_done_callback(drop_outcome)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self._queued():
            with self._translated():
                async with self._writer.begin() as conn:
                    return await conn.run_sync(fn, *args, **kwargs)

    def _queued(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """On SQLite, this process's queue of writers (see ``__init__``)."""
        if self._engine.dialect.name != "sqlite":
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        if self._write_queue is None or self._write_queue[0] is not loop:
            self._write_queue = (loop, asyncio.Lock())
        return self._write_queue[1]

    async def snapshot(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` in one read-only transaction in which every statement
        sees the same snapshot, however long ``fn`` runs (a backup, a full audit walk),
        while writers carry on. SQLite (WAL): a read transaction, whose snapshot is
        taken at its first read. PostgreSQL: ``REPEATABLE READ READ ONLY`` (the default
        READ COMMITTED takes a new snapshot per statement; a read-only transaction
        never fails with a serialization error).

        Raises:
            StorageError: any database failure, translated.
        """
        with self._translated():
            async with self._engine.connect() as conn:
                if self.backend == "postgresql":
                    await conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                return await conn.run_sync(fn, *args, **kwargs)

    async def load(self, revision: str, fn: Callable[..., T], /, *args: Any) -> T:
        """Fill an empty database from a backup: in one write transaction, create the
        schema at ``revision`` (the backup's), run ``fn(conn, *args)`` to insert its
        rows, then migrate to the newest revision. A failure (``fn``'s own exceptions
        pass through) leaves the database as it was: DDL is transactional on both
        backends.

        Raises:
            StorageError: SCHEMA if ``revision`` is unknown to this code, or any
                database failure, translated.
        """
        return await self.write(_load_txn, revision, fn, args)

    async def upgrade(self) -> None:
        """Migrate the schema to the newest revision; a no-op when it is current.

        All pending migrations run in one transaction: a failure leaves the schema as
        it was (DDL is transactional on both SQLite and PostgreSQL).

        Raises:
            StorageError: SCHEMA if the database is at a revision this code does not
                know (written by a newer version of Watan), or any database failure.
        """
        await self.write(_upgrade_txn)

    async def current_revision(self) -> str | None:
        """The schema revision the database is at; None before the first upgrade."""
        return await self.read(_current_revision_txn)

    @staticmethod
    def head_revision() -> str:
        """The newest schema revision this code knows."""
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - the package ships its migrations
            raise StorageError("no migrations found", code=StorageErrorCode.SCHEMA)
        return head

    @staticmethod
    def knows_revision(revision: str) -> bool:
        """Whether ``revision`` is one of this code's schema revisions (a backup made
        by a newer Watan may name one it does not know)."""
        script = ScriptDirectory.from_config(_alembic_config())
        return revision in {known.revision for known in script.walk_revisions()}

    async def ping(self) -> None:
        """Check that the database answers (for start-up and the health endpoint).

        Raises:
            StorageError: UNREACHABLE, with the reason and the URL without password.
        """
        try:
            self._check_sqlite_directory()
            await self.read(_ping_txn)
        except StorageError as error:
            raise StorageError(
                f"cannot use {self._where}: {error.message}", code=StorageErrorCode.UNREACHABLE
            ) from None

    async def check(self) -> None:
        """What the health endpoint asks: does the database answer (:meth:`ping`), and,
        on SQLite, is there room to write (``SQLITE_MIN_FREE_BYTES``)?

        Raises:
            StorageError: UNREACHABLE (see :meth:`ping`), or FULL.
        """
        await self.ping()
        free = self.free_bytes()
        if free is not None and free < SQLITE_MIN_FREE_BYTES:
            raise StorageError(
                f"only {free} bytes free for {self._where}", code=StorageErrorCode.FULL
            )

    def free_bytes(self) -> int | None:
        """Free space (``statvfs``, as an unprivileged writer sees it) in the directory
        of the SQLite database; None on PostgreSQL, whose disk is the server's, or when
        the directory cannot be read (``ping`` says why)."""
        url = self._engine.url
        if url.get_backend_name() != "sqlite" or not url.database:
            return None
        try:
            stat = os.statvfs(Path(url.database).parent)
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    async def close(self) -> None:
        """Close every pooled connection, after the writes still running (a shielded
        write outlives its cancelled caller: disposing under it would leave its
        connection unclosed, and let it commit after close returned). The object may
        be used again afterwards."""
        loop = asyncio.get_running_loop()
        running = [task for task in self._writes if task.get_loop() is loop]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await self._engine.dispose()

    def _check_sqlite_directory(self) -> None:
        # SQLite would say only "unable to open database file"; name the likely cause.
        # (Checking first also avoids aiosqlite 0.22's failed-connect path, whose
        # worker thread may report to an event loop that has already closed.)
        url = self._engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            directory = Path(url.database).parent
            if not directory.is_dir():
                raise StorageError(
                    f"directory {str(directory)!r} does not exist",
                    code=StorageErrorCode.UNREACHABLE,
                )

    def _scrub(self, message: str) -> str:
        line = message.strip().splitlines()[0] if message.strip() else "unknown error"
        if self._password:
            line = line.replace(self._password, "***")
        return line

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """The exception boundary: foreign database exceptions become StorageError."""
        try:
            yield
        except alembic.util.CommandError as error:
            raise StorageError(
                f"schema migration failed: {self._scrub(str(error))}",
                code=StorageErrorCode.SCHEMA,
            ) from error
        except exc.SQLAlchemyError as error:
            code = _classify(error)
            orig = getattr(error, "orig", None)
            reason = self._scrub(str(orig if orig is not None else error))
            if code is StorageErrorCode.UNREACHABLE:
                # from None: the driver's traceback may carry connection parameters.
                raise StorageError(reason, code=code) from None
            raise StorageError(reason, code=code) from error
        except OSError as error:  # asyncpg raises these as they are while connecting
            reason = self._scrub(str(error) or type(error).__name__)
            full = error.errno in (errno.ENOSPC, errno.EDQUOT)
            code = StorageErrorCode.FULL if full else StorageErrorCode.UNREACHABLE
            raise StorageError(reason, code=code) from None
