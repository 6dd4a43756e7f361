"""Federation: peers, blocklist, invites, node state, and org-to-org messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Hand-written, SQLAlchemy Core only; runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "peers",
        sa.Column("node_id", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
        sa.Column("last_sync_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_peers"),
        sa.CheckConstraint("length(node_id) = 32", name="ck_peers_node_id_len"),
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'blocked')", name="ck_peers_state_known"
        ),
        sa.CheckConstraint("source IN ('lan', 'invite', 'manual')", name="ck_peers_source_known"),
    )
    op.create_table(
        "blocks",
        sa.Column("author", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("author", name="pk_blocks"),
        sa.CheckConstraint("length(author) = 32", name="ck_blocks_author_len"),
    )
    op.create_table(
        "invites",
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.Integer, nullable=True),
        sa.Column("used_ms", sa.BigInteger, nullable=True),
        sa.Column("used_by", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("secret_hash", name="pk_invites"),
    )
    op.create_table(
        "node_state",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_node_state"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.LargeBinary, nullable=False),
        sa.Column("direction", sa.Text, nullable=False),
        sa.Column("peer", sa.LargeBinary, nullable=False),
        sa.Column("thread", sa.LargeBinary, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("read_ms", sa.BigInteger, nullable=True),
        sa.Column("author_account", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_messages_direction_known"),
    )
    op.create_index("ix_messages_thread", "messages", ["thread"])
    op.create_index("ix_messages_peer", "messages", ["peer"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.LargeBinary, nullable=False),
        sa.Column("recipient", sa.LargeBinary, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("via", sa.LargeBinary, nullable=True),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_next_attempt_ms", "outbox", ["next_attempt_ms"])
    op.create_table(
        "relay",
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("recipient", sa.LargeBinary, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("from_peer", sa.LargeBinary, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("forwarded_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("digest", name="pk_relay"),
    )


def downgrade() -> None:
    for table in ("relay", "outbox", "messages", "node_state", "invites", "blocks", "peers"):
        op.drop_table(table)
