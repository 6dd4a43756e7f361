"""Many rows into one table with one ``executemany``, past SQLAlchemy's per-row work.

A catch-up stores hundreds of entries and their index rows per transaction. Through
``conn.execute(table.insert(), rows)`` SQLAlchemy compiles the parameters of every
row and runs each value through its type's bind processor: about 25 µs per entry
row, more than the rest of storing it. The rows here are already the driver's types
(bytes, int, str, None), so :func:`insert_rows` hands them to the driver as they are,
with one ``INSERT`` string per table (``Connection.exec_driver_sql``): on SQLite the
rows as an ``executemany`` (one round trip to aiosqlite's thread), on PostgreSQL one
statement whose parameters are a column of values each, ``INSERT ... SELECT * FROM
unnest($1::bytea[], ...)`` (one statement for the server to plan and run, where an
``executemany`` runs one per row). Errors are the same ``DBAPIError`` s as any statement's, so
:class:`~node.storage.Database` maps them as it does every other.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect

__all__ = ["insert_rows"]


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Insert ``rows`` (every one with the same keys, column names of ``table``, and
    values of the driver's own types) in ``conn``'s transaction.

    Args:
        ignore_conflicts: ``ON CONFLICT DO NOTHING``: a row whose key is held already
            is skipped (both backends).

    Raises:
        KeyError: a row lacks a column the first one has.
        sqlalchemy.exc.DBAPIError: what the database refused (a constraint, no space).
    """
    if not rows:
        return
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        # One statement whatever the number of rows: a column of values per array
        # parameter, unnested into rows by the server.
        sql = _unnest_sql(conn.dialect, table, columns, ignore_conflicts)
        conn.exec_driver_sql(sql, tuple([row[name] for row in rows] for name in columns))
        return
    sql = _insert_sql(conn.dialect.paramstyle, table, columns, ignore_conflicts)
    values = itemgetter(*columns)
    if len(columns) == 1:
        conn.exec_driver_sql(sql, [(values(row),) for row in rows])
    else:
        conn.exec_driver_sql(sql, [values(row) for row in rows])


@functools.cache
def _insert_sql(paramstyle: str, table: Table, columns: tuple[str, ...], ignore: bool) -> str:
    _check_columns(table, columns)
    if paramstyle == "qmark":
        marks = ", ".join("?" for _ in columns)
    elif paramstyle == "numeric_dollar":
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    else:  # pragma: no cover - the drivers _db accepts use one of the above
        raise ValueError(f"unsupported paramstyle {paramstyle}")
    names = ", ".join(f'"{name}"' for name in columns)
    conflict = " ON CONFLICT DO NOTHING" if ignore else ""
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}){conflict}'


@functools.cache
def _unnest_sql(dialect: Dialect, table: Table, columns: tuple[str, ...], ignore: bool) -> str:
    _check_columns(table, columns)
    arrays = ", ".join(
        f"${n}::{table.c[name].type.compile(dialect=dialect)}[]"
        for n, name in enumerate(columns, start=1)
    )
    names = ", ".join(f'"{name}"' for name in columns)
    conflict = " ON CONFLICT DO NOTHING" if ignore else ""
    return f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays}){conflict}'


def _check_columns(table: Table, columns: tuple[str, ...]) -> None:
    for name in columns:
        if name not in table.c:
            raise KeyError(f"{table.name} has no column {name!r}")
