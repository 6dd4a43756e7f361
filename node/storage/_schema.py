"""The tables the node's stores query, as SQLAlchemy Core metadata.

This module describes the *current* schema for queries; the migrations in
``migrations/versions/`` create it and never import this module (a migration must keep
meaning what it meant when it was written). ``tests/node/test_storage.py`` checks that
the two agree on both backends.

Types are portable: ``LargeBinary`` is BLOB on SQLite and BYTEA on PostgreSQL,
``BigInteger`` holds any ``seq`` (``protocol.MAX_SEQ`` = 2**63 - 1) and any ``ts``.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["entries", "feeds", "forks", "metadata"]

#: Constraint names spelled out, so that later migrations can name what they alter on
#: both backends (SQLite and PostgreSQL would otherwise invent different names).
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata: Final = MetaData(naming_convention=NAMING_CONVENTION)

#: Every entry we hold, exactly as received (``wire``); the other columns are copies of
#: signed payload fields, for queries. Rows are only ever inserted, never updated.
entries: Final = Table(
    "entries",
    metadata,
    Column("author", LargeBinary, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("id", LargeBinary, nullable=False),
    Column("prev", LargeBinary, nullable=True),
    Column("ts", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("wire", LargeBinary, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("author", "seq"),
    UniqueConstraint("id"),
    CheckConstraint("length(author) = 32", name="author_len"),
    CheckConstraint("length(id) = 32", name="id_len"),
    CheckConstraint("seq >= 1", name="seq_positive"),
    CheckConstraint("(seq = 1) = (prev IS NULL)", name="prev_iff_not_first"),
)

#: The head cache: one row per feed, updated in the transaction that inserts the entry
#: it points at. A row whose ``seq`` is NULL is a lock placeholder for a feed of which
#: we hold nothing yet (see ``_feeds._lock_head``); it never outlives its transaction.
#: The foreign key makes a head that names a missing entry impossible (it is not
#: checked while ``seq`` is NULL: SQL's MATCH SIMPLE rule).
feeds: Final = Table(
    "feeds",
    metadata,
    Column("author", LargeBinary, nullable=False),
    Column("seq", BigInteger, nullable=True),
    Column("id", LargeBinary, nullable=True),
    Column("ts", BigInteger, nullable=True),
    Column("key", LargeBinary, nullable=True),
    PrimaryKeyConstraint("author"),
    ForeignKeyConstraint(["author", "seq"], ["entries.author", "entries.seq"]),
    CheckConstraint("length(author) = 32", name="author_len"),
    CheckConstraint(
        "(seq IS NULL AND id IS NULL AND ts IS NULL AND key IS NULL)"
        " OR (seq IS NOT NULL AND id IS NOT NULL AND ts IS NOT NULL AND key IS NOT NULL)",
        name="head_complete",
    ),
)

#: Fork proofs (SPEC §4.2): one per forked ``(author, seq)``, the first one found.
#: ``proof`` is ``protocol.ForkProof.to_bytes()``; the foreign key ties it to the entry
#: we held at that seq.
forks: Final = Table(
    "forks",
    metadata,
    Column("author", LargeBinary, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("proof", LargeBinary, nullable=False),
    Column("found_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("author", "seq"),
    ForeignKeyConstraint(["author", "seq"], ["entries.author", "entries.seq"]),
)
