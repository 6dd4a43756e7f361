"""Feeds: entries as received, the head cache, fork proofs.

Revision ID: 0001
Revises:
Create Date: 2026-11-01

Hand-written, SQLAlchemy Core only; runs on SQLite and PostgreSQL. Constraint names are
spelled out so that later migrations can alter them by name on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("author", sa.LargeBinary, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("id", sa.LargeBinary, nullable=False),
        sa.Column("prev", sa.LargeBinary, nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("wire", sa.LargeBinary, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("author", "seq", name="pk_entries"),
        sa.UniqueConstraint("id", name="uq_entries_id"),
        sa.CheckConstraint("length(author) = 32", name="ck_entries_author_len"),
        sa.CheckConstraint("length(id) = 32", name="ck_entries_id_len"),
        sa.CheckConstraint("seq >= 1", name="ck_entries_seq_positive"),
        sa.CheckConstraint("(seq = 1) = (prev IS NULL)", name="ck_entries_prev_iff_not_first"),
    )
    op.create_table(
        "feeds",
        sa.Column("author", sa.LargeBinary, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("id", sa.LargeBinary, nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=True),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("author", name="pk_feeds"),
        sa.ForeignKeyConstraint(
            ["author", "seq"],
            ["entries.author", "entries.seq"],
            name="fk_feeds_author_seq_entries",
        ),
        sa.CheckConstraint("length(author) = 32", name="ck_feeds_author_len"),
        sa.CheckConstraint(
            "(seq IS NULL AND id IS NULL AND ts IS NULL AND key IS NULL)"
            " OR (seq IS NOT NULL AND id IS NOT NULL AND ts IS NOT NULL AND key IS NOT NULL)",
            name="ck_feeds_head_complete",
        ),
    )
    op.create_table(
        "forks",
        sa.Column("author", sa.LargeBinary, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("proof", sa.LargeBinary, nullable=False),
        sa.Column("found_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("author", "seq", name="pk_forks"),
        sa.ForeignKeyConstraint(
            ["author", "seq"],
            ["entries.author", "entries.seq"],
            name="fk_forks_author_seq_entries",
        ),
    )


def downgrade() -> None:
    op.drop_table("forks")
    op.drop_table("feeds")
    op.drop_table("entries")
