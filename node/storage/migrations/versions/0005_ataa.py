"""Ata'a: households (PII encrypted), scores by model version, imports, duplicate
suggestions, the allocation index, distributions and their households.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Hand-written, SQLAlchemy Core only; runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG, _BIN, _TEXT, _INT = sa.BigInteger, sa.LargeBinary, sa.Text, sa.Integer


def upgrade() -> None:
    op.create_table(
        "ataa_data_keys",
        sa.Column("id", _INT, nullable=False),
        sa.Column("sealed", _BIN, nullable=False),
        sa.Column("created_ms", _BIG, nullable=False),
        sa.Column("retired_ms", _BIG, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ataa_data_keys"),
    )
    op.create_table(
        "ataa_households",
        sa.Column("id", _INT, nullable=False),
        sa.Column("key_id", _INT, nullable=False),
        sa.Column("pii", _BIN, nullable=False),
        sa.Column("nid_index", _BIN, nullable=True),
        sa.Column("phone_index", _BIN, nullable=True),
        sa.Column("pseudonym_mac", _BIN, nullable=True),
        sa.Column("weak", sa.Boolean, nullable=False),
        sa.Column("governorate", _TEXT, nullable=False),
        sa.Column("district", _TEXT, nullable=False),
        sa.Column("displacement", _TEXT, nullable=True),
        sa.Column("members", _INT, nullable=True),
        sa.Column("score", _INT, nullable=True),
        sa.Column("band", _TEXT, nullable=True),
        sa.Column("model_version", _INT, nullable=True),
        sa.Column("status", _TEXT, nullable=False),
        sa.Column("merged_into", _INT, nullable=True),
        sa.Column("import_id", _INT, nullable=True),
        sa.Column("created_by", _INT, nullable=True),
        sa.Column("registered_ms", _BIG, nullable=False),
        sa.Column("updated_ms", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ataa_households"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["ataa_data_keys.id"], name="fk_ataa_households_key_id_ataa_data_keys"
        ),
        sa.CheckConstraint(
            "status IN ('active', 'merged', 'archived')", name="ck_ataa_households_status"
        ),
    )
    op.create_index("ix_ataa_households_nid_index", "ataa_households", ["nid_index"], unique=True)
    op.create_index("ix_ataa_households_phone_index", "ataa_households", ["phone_index"])
    op.create_index("ix_ataa_households_pseudonym_mac", "ataa_households", ["pseudonym_mac"])
    op.create_index("ix_ataa_households_status_score", "ataa_households", ["status", "score"])
    for column in ("district", "governorate", "band"):  # the queue's filters (_schema.py)
        op.create_index(
            f"ix_ataa_households_{column}_status_score",
            "ataa_households",
            [column, "status", "score"],
        )
    op.create_table(
        "ataa_name_index",
        sa.Column("token", _BIN, nullable=False),
        sa.Column("household_id", _INT, nullable=False),
        sa.PrimaryKeyConstraint("token", "household_id", name="pk_ataa_name_index"),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["ataa_households.id"],
            name="fk_ataa_name_index_household_id_ataa_households",
        ),
    )
    op.create_index("ix_ataa_name_index_household_id", "ataa_name_index", ["household_id"])
    op.create_table(
        "ataa_models",
        sa.Column("version", _INT, nullable=False),
        sa.Column("model_id", _TEXT, nullable=False),
        sa.Column("digest", _TEXT, nullable=False),
        sa.Column("body", _TEXT, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_by", _INT, nullable=True),
        sa.Column("created_ms", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_ataa_models"),
    )
    op.create_table(
        "ataa_scores",
        sa.Column("household_id", _INT, nullable=False),
        sa.Column("model_version", _INT, nullable=False),
        sa.Column("score", _INT, nullable=False),
        sa.Column("band", _TEXT, nullable=False),
        sa.Column("breakdown", _TEXT, nullable=False),
        sa.Column("computed_ms", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("household_id", "model_version", name="pk_ataa_scores"),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["ataa_households.id"],
            name="fk_ataa_scores_household_id_ataa_households",
        ),
        sa.ForeignKeyConstraint(
            ["model_version"],
            ["ataa_models.version"],
            name="fk_ataa_scores_model_version_ataa_models",
        ),
    )
    op.create_table(
        "ataa_imports",
        sa.Column("id", _INT, nullable=False),
        sa.Column("filename", _TEXT, nullable=False),
        sa.Column("state", _TEXT, nullable=False),
        sa.Column("total", _INT, nullable=False),
        sa.Column("processed", _INT, nullable=False),
        sa.Column("created", _INT, nullable=False),
        sa.Column("updated", _INT, nullable=False),
        sa.Column("rejected", _INT, nullable=False),
        sa.Column("report", _TEXT, nullable=False),
        sa.Column("created_by", _INT, nullable=True),
        sa.Column("created_ms", _BIG, nullable=False),
        sa.Column("finished_ms", _BIG, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ataa_imports"),
        sa.CheckConstraint("state IN ('running', 'done', 'failed')", name="ck_ataa_imports_state"),
    )
    op.create_table(
        "ataa_duplicates",
        sa.Column("a", _INT, nullable=False),
        sa.Column("b", _INT, nullable=False),
        sa.Column("reason", _TEXT, nullable=False),
        sa.Column("state", _TEXT, nullable=False),
        sa.Column("decided_by", _INT, nullable=True),
        sa.Column("decided_ms", _BIG, nullable=True),
        sa.Column("created_ms", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("a", "b", name="pk_ataa_duplicates"),
        sa.ForeignKeyConstraint(
            ["a"], ["ataa_households.id"], name="fk_ataa_duplicates_a_ataa_households"
        ),
        sa.ForeignKeyConstraint(
            ["b"], ["ataa_households.id"], name="fk_ataa_duplicates_b_ataa_households"
        ),
        sa.CheckConstraint("a < b", name="ck_ataa_duplicates_ordered"),
        sa.CheckConstraint(
            "state IN ('open', 'merged', 'dismissed')", name="ck_ataa_duplicates_state"
        ),
    )
    op.create_index("ix_ataa_duplicates_state", "ataa_duplicates", ["state"])
    op.create_table(
        "ataa_allocations",
        sa.Column("author", _BIN, nullable=False),
        sa.Column("seq", _BIG, nullable=False),
        sa.Column("entry_id", _BIN, nullable=False),
        sa.Column("pseudonym", _BIN, nullable=False),
        sa.Column("epoch", _BIG, nullable=False),
        sa.Column("category", _TEXT, nullable=False),
        sa.Column("unit", _TEXT, nullable=False),
        sa.Column("quantity", _BIG, nullable=False),
        sa.Column("value_iqd", _BIG, nullable=False),
        sa.Column("program", _TEXT, nullable=False),
        sa.Column("date", _TEXT, nullable=False),
        sa.Column("district", _TEXT, nullable=False),
        sa.Column("void_reason", _TEXT, nullable=True),
        sa.Column("void_seq", _BIG, nullable=True),
        sa.PrimaryKeyConstraint("author", "seq", name="pk_ataa_allocations"),
        sa.ForeignKeyConstraint(
            ["author", "seq"],
            ["entries.author", "entries.seq"],
            name="fk_ataa_allocations_author_seq_entries",
        ),
    )
    op.create_index("ix_ataa_allocations_pseudonym_date", "ataa_allocations", ["pseudonym", "date"])
    op.create_index("ix_ataa_allocations_date", "ataa_allocations", ["date"])
    op.create_index("ix_ataa_allocations_entry_id", "ataa_allocations", ["entry_id"], unique=True)
    op.create_table(
        "ataa_distributions",
        sa.Column("id", _INT, nullable=False),
        sa.Column("title", _TEXT, nullable=False),
        sa.Column("program", _TEXT, nullable=False),
        sa.Column("category", _TEXT, nullable=False),
        sa.Column("unit", _TEXT, nullable=False),
        sa.Column("quantity", _BIG, nullable=False),
        sa.Column("value_iqd", _BIG, nullable=False),
        sa.Column("governorate", _TEXT, nullable=True),
        sa.Column("district", _TEXT, nullable=True),
        sa.Column("target_count", _INT, nullable=False),
        sa.Column("state", _TEXT, nullable=False),
        sa.Column("created_by", _INT, nullable=True),
        sa.Column("created_ms", _BIG, nullable=False),
        sa.Column("updated_ms", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ataa_distributions"),
        sa.CheckConstraint(
            "state IN ('draft', 'open', 'closed')", name="ck_ataa_distributions_state"
        ),
    )
    op.create_table(
        "ataa_dist_households",
        sa.Column("distribution_id", _INT, nullable=False),
        sa.Column("household_id", _INT, nullable=False),
        sa.Column("rank", _INT, nullable=False),
        sa.Column("priority", _INT, nullable=False),
        sa.Column("state", _TEXT, nullable=False),
        sa.Column("reason", _TEXT, nullable=True),
        sa.Column("override_by", _INT, nullable=True),
        sa.Column("override_reason", _TEXT, nullable=True),
        sa.Column("delivered_by", _INT, nullable=True),
        sa.Column("delivered_ms", _BIG, nullable=True),
        sa.Column("delivered_date", _TEXT, nullable=True),
        sa.Column("entry_seq", _BIG, nullable=True),
        sa.Column("updated_ms", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("distribution_id", "household_id", name="pk_ataa_dist_households"),
        sa.ForeignKeyConstraint(
            ["distribution_id"],
            ["ataa_distributions.id"],
            name="fk_ataa_dist_households_distribution_id_ataa_distributions",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["ataa_households.id"],
            name="fk_ataa_dist_households_household_id_ataa_households",
        ),
        sa.CheckConstraint(
            "state IN ('planned', 'excluded', 'delivered', 'voided')",
            name="ck_ataa_dist_households_state",
        ),
    )
    op.create_index(
        "ix_ataa_dist_households_household_id",
        "ataa_dist_households",
        ["household_id"],
    )


_TABLES = (
    "ataa_dist_households",
    "ataa_distributions",
    "ataa_allocations",
    "ataa_duplicates",
    "ataa_imports",
    "ataa_scores",
    "ataa_models",
    "ataa_name_index",
    "ataa_households",
    "ataa_data_keys",
)


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
