"""The archive's records: writing them from one database snapshot, checking their
grammar and checksums, and loading them into an empty database.

Record grammar (each a ``[tag, payload]`` frame, see ``_format``)::

    ["watan-backup", {node_id, created_ms, schema_revision, source_backend, watan_version}]
    ["file", {path, data}]                      x 3: keys/*.key, node.json
    ["table", {name, columns}]                  per table, in foreign-key order, then
    ["row", [value, ...]]                       x its rows (nil, bool, int, str, bin only)
    ["end", {files, tables: [[name, rows, sha256], ...], sha256}]

A table's ``sha256`` covers its row frames; the end record's ``sha256`` covers every
frame before it. Nothing may follow the end record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Integer, MetaData, Table, inspect, select, text, tuple_
from sqlalchemy.engine import Connection

from ..storage import Database
from ..storage._schema import metadata
from ._format import ArchiveWriter, BackupError, Opened, records

__all__ = ["FILES", "Contents", "dump_txn", "load_txn", "walk", "watan_tables_txn"]

HEADER_TAG: Final = "watan-backup"
#: The node's files in an archive, by path relative to DIR. Never the one-time
#: first-admin password, nor the SQLite files (the rows replace them).
FILES: Final = ("keys/signing.key", "keys/encryption.key", "node.json")
_VALUE_TYPES: Final = (type(None), bool, int, str, bytes)


@dataclass(slots=True)
class Contents:
    """What an archive holds, once :func:`walk` has checked all of it."""

    header: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # per table, in archive order


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if type(value) not in _VALUE_TYPES:
        raise BackupError(f"{where} holds a {type(value).__name__}, which backups cannot store")
    return value


def _rows(conn: Connection, table: Table, batch_rows: int) -> Iterator[list[Any]]:
    """Every row of ``table`` in primary-key order, ``batch_rows`` per query (keyset
    paging: memory stays bounded, and each query is cheap however far in)."""
    key = list(table.primary_key.columns)
    if not key:
        raise BackupError(f"table {table.name} has no primary key; backups need one")
    query = select(*table.columns).order_by(*key).limit(batch_rows)
    after: list[Any] | None = None
    while True:
        page = query if after is None else query.where(tuple_(*key) > tuple_(*after))
        batch = conn.execute(page).all()
        for row in batch:
            pairs = zip(table.columns, row, strict=True)
            yield [_plain(v, f"{table.name}.{c.name}") for c, v in pairs]
        if len(batch) < batch_rows:
            return
        last = batch[-1]._mapping
        after = [last[c.name] for c in key]


def dump_txn(
    conn: Connection,
    writer: ArchiveWriter,
    *,
    header: dict[str, Any],
    files: dict[str, bytes],
    batch_rows: int,
) -> dict[str, int]:
    """Write the whole archive from ``conn``'s snapshot; returns rows per table.

    Raises:
        BackupError: the database is not at this code's schema revision.
    """
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision != Database.head_revision():
        raise BackupError(
            f"the database is at schema revision {revision}, this watan's is "
            f"{Database.head_revision()}: run 'watan db upgrade' (or start the node) first"
        )
    writer.record(HEADER_TAG, {**header, "schema_revision": revision})
    for path in FILES:
        writer.record("file", {"path": path, "data": files[path]})
    manifest: list[list[Any]] = []
    for table in metadata.sorted_tables:
        writer.record("table", {"name": table.name, "columns": [c.name for c in table.columns]})
        digest, count = hashlib.sha256(), 0
        for row in _rows(conn, table, batch_rows):
            digest.update(writer.record("row", row))
            count += 1
        manifest.append([table.name, count, digest.digest()])
    end = {"files": list(FILES), "tables": manifest, "sha256": writer.stream_digest()}
    writer.record("end", end)
    writer.finish()
    return {name: count for name, count, _ in manifest}


class Sink(Protocol):
    def table(self, name: str, columns: list[str]) -> None: ...
    def row(self, values: list[Any]) -> None: ...


def _damaged(what: str) -> BackupError:
    return BackupError(f"the archive is damaged ({what})")


def _check_header(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise _damaged("bad header record")
    node_id, created, revision = (
        payload.get(k) for k in ("node_id", "created_ms", "schema_revision")
    )
    if not (type(node_id) is bytes and len(node_id) == 32):
        raise _damaged("bad node id")
    if type(created) is not int or type(revision) is not str or not revision:
        raise _damaged("bad header record")
    return payload


def walk(opened: Opened, sink: Sink | None = None) -> Contents:
    """Read the whole archive, checking its grammar, every checksum and count, and
    hand its tables and rows to ``sink`` as they come.

    Raises:
        BackupError: damaged, truncated, or a wrong passphrase (from ``_format``).
    """
    contents = Contents()
    stream = hashlib.sha256()
    it = records(opened)
    first = next(it, None)
    if first is None or first[0] != HEADER_TAG:
        raise _damaged("no header record")
    contents.header = _check_header(first[1])
    stream.update(first[2])
    manifest: list[list[Any]] = []
    table: tuple[str, int, Any] | None = None  # name, columns, digest
    for tag, payload, frame in it:
        if tag == "end":
            if table is not None:
                manifest.append([table[0], contents.rows[table[0]], table[2].digest()])
            _check_end(payload, contents, manifest, stream.digest())
            if next(it, None) is not None:
                raise _damaged("records after the end record")
            return contents
        stream.update(frame)
        if tag == "file" and table is None and isinstance(payload, dict):
            path, data = payload.get("path"), payload.get("data")
            if path not in FILES or path in contents.files or type(data) is not bytes:
                raise _damaged("bad file record")
            contents.files[path] = data
        elif tag == "table" and isinstance(payload, dict):
            name, columns = payload.get("name"), payload.get("columns")
            if not (isinstance(name, str) and isinstance(columns, list) and columns):
                raise _damaged("bad table record")
            if name in contents.rows or not all(isinstance(c, str) for c in columns):
                raise _damaged("bad table record")
            if table is not None:
                manifest.append([table[0], contents.rows[table[0]], table[2].digest()])
            table = (name, len(columns), hashlib.sha256())
            contents.rows[name] = 0
            if sink is not None:
                sink.table(name, columns)
        elif tag == "row" and table is not None and isinstance(payload, list):
            if len(payload) != table[1] or not all(type(v) in _VALUE_TYPES for v in payload):
                raise _damaged(f"bad row in table {table[0]}")
            table[2].update(frame)
            contents.rows[table[0]] += 1
            if sink is not None:
                sink.row(payload)
        else:
            raise _damaged(f"unexpected {tag!r} record")
    raise BackupError("the archive is truncated (its end record is missing)")


def _check_end(payload: Any, contents: Contents, manifest: list[list[Any]], digest: bytes) -> None:
    if not isinstance(payload, dict):
        raise _damaged("bad end record")
    if payload.get("sha256") != digest:
        raise _damaged("checksum mismatch")
    if payload.get("tables") != manifest:
        raise _damaged("a table's row count or checksum does not match the manifest")
    if payload.get("files") != list(FILES) or set(contents.files) != set(FILES):
        raise _damaged("files are missing")


def watan_tables_txn(conn: Connection) -> list[str]:
    """The Watan tables (and Alembic's) already in the database."""
    ours = {*metadata.tables, "alembic_version"}
    return sorted(set(inspect(conn).get_table_names()) & ours)


class _Loader:
    """Inserts rows into the freshly migrated schema, ``batch_rows`` at a time."""

    def __init__(self, conn: Connection, skip: frozenset[str], batch_rows: int) -> None:
        self._conn = conn
        self._meta = MetaData()
        self._meta.reflect(conn)
        self._meta.remove(self._meta.tables["alembic_version"])
        # Rows a migration seeded (the audit head) are replaced by the archive's.
        for table in reversed(self._meta.sorted_tables):
            conn.execute(table.delete())
        self._skip = skip
        self._batch_rows = batch_rows
        self._table: Table | None = None
        self._columns: list[str] = []
        self._pending: list[dict[str, Any]] = []
        self.seen: list[str] = []

    def table(self, name: str, columns: list[str]) -> None:
        self.flush()
        table = self._meta.tables.get(name)
        if table is None or {c.name for c in table.columns} != set(columns):
            raise BackupError(
                f"table {name} in the archive does not match its schema revision "
                f"{name!r}; the archive is damaged or was made by another program"
            )
        self._table, self._columns = table, columns
        self.seen.append(name)

    def row(self, values: list[Any]) -> None:
        assert self._table is not None
        if self._table.name in self._skip:
            return
        self._pending.append(dict(zip(self._columns, values, strict=True)))
        if len(self._pending) >= self._batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._pending and self._table is not None:
            self._conn.execute(self._table.insert(), self._pending)
        self._pending = []

    def finish(self) -> None:
        self.flush()
        missing = set(self._meta.tables) - set(self.seen)
        if missing:
            raise BackupError(f"the archive has no rows for table(s) {', '.join(sorted(missing))}")
        if self._conn.dialect.name == "postgresql":
            self._reset_sequences()

    def _reset_sequences(self) -> None:
        # Inserting explicit ids does not move a SERIAL column's sequence: without
        # this the next account created would collide with account 1.
        quote = self._conn.dialect.identifier_preparer.quote
        for table in self._meta.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, Integer):
                    continue
                sequence = self._conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": quote(table.name), "c": column.name},
                ).scalar()
                if sequence is None:
                    continue
                top = f"SELECT COALESCE(MAX({quote(column.name)}), 0) FROM {quote(table.name)}"
                self._conn.execute(text(f"SELECT setval(:s, ({top}) + 1, false)"), {"s": sequence})


def load_txn(
    conn: Connection, opened: Opened, revision: str, skip: frozenset[str], batch_rows: int
) -> Contents:
    """Load the archive into the schema ``Database.load`` created at ``revision``
    (the whole archive is checked again as it streams; any failure rolls back)."""
    loader = _Loader(conn, skip, batch_rows)
    contents = walk(opened, loader)
    if contents.header["schema_revision"] != revision:
        raise BackupError("the archive changed while it was being restored")
    loader.finish()
    return contents
