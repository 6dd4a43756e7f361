"""Pseudonym oracles: key shares held, usage counted as an oracle, pseudonyms obtained.

This node's key shares, its usage counts as an oracle, and the pseudonyms it obtained
(or still waits for) as a client; an index on entries.kind.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Hand-written, SQLAlchemy Core only; runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trust (vouches), oracle configurations and allocations are read by kind.
    op.create_index("ix_entries_kind", "entries", ["kind"])
    op.create_table(
        "oracle_shares",
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("share_index", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("share_key", sa.LargeBinary, nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary, nullable=False),
        sa.Column("dealer", sa.LargeBinary, nullable=False),
        sa.Column("imported_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("epoch", name="pk_oracle_shares"),
        sa.CheckConstraint("length(share_key) = 32", name="ck_oracle_shares_share_key_len"),
        sa.CheckConstraint(
            "share_index BETWEEN 1 AND 255", name="ck_oracle_shares_share_index_range"
        ),
    )
    op.create_table(
        "oracle_usage",
        sa.Column("day", sa.Text, nullable=False),
        sa.Column("requester", sa.LargeBinary, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "requester", "epoch", name="pk_oracle_usage"),
        sa.CheckConstraint("count >= 1", name="ck_oracle_usage_count_positive"),
    )
    op.create_table(
        "pseudonyms",
        sa.Column("mac", sa.LargeBinary, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("weak", sa.Boolean, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=True),
        sa.Column("sealed_input", sa.LargeBinary, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_ms", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("mac", "epoch", name="pk_pseudonyms"),
        sa.CheckConstraint(
            "(epoch = 0) = (value IS NULL) AND (value IS NULL) = (sealed_input IS NOT NULL)",
            name="ck_pseudonyms_pending_or_ready",
        ),
    )
    op.create_index("ix_pseudonyms_next_ms", "pseudonyms", ["next_ms"])


def downgrade() -> None:
    op.drop_index("ix_pseudonyms_next_ms", table_name="pseudonyms")
    for table in ("pseudonyms", "oracle_usage", "oracle_shares"):
        op.drop_table(table)
    op.drop_index("ix_entries_kind", table_name="entries")
