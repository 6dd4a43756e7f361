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
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "accounts",
    "ataa_allocations",
    "ataa_data_keys",
    "ataa_dist_households",
    "ataa_distributions",
    "ataa_duplicates",
    "ataa_households",
    "ataa_imports",
    "ataa_models",
    "ataa_name_index",
    "ataa_scores",
    "audit_head",
    "audit_log",
    "blocks",
    "entries",
    "feeds",
    "forks",
    "invites",
    "messages",
    "metadata",
    "node_state",
    "oracle_shares",
    "oracle_usage",
    "outbox",
    "peers",
    "pseudonyms",
    "relay",
    "sessions",
]

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
    # Trust (vouches), oracle configurations and allocations are read by kind.
    Index("ix_entries_kind", "kind"),
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

#: Staff accounts (``node.accounts``). ``username`` is the normalized (lower-case) form,
#: so uniqueness is case-insensitive on both backends. Rows are never deleted (audit
#: rows name them by id); an account is disabled instead.
accounts: Final = Table(
    "accounts",
    metadata,
    Column("id", Integer, nullable=False),
    Column("username", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("must_change_password", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("username"),
    CheckConstraint(
        "role IN ('admin', 'coordinator', 'case_worker', 'auditor')", name="role_known"
    ),
)

#: Login sessions. The key is SHA-256 of the session token: a copy of the database
#: (a backup, a stolen disk) does not hold tokens that could be replayed as cookies.
sessions: Final = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary, nullable=False),
    Column("account_id", Integer, nullable=False, index=True),
    Column("csrf_secret", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("token_hash"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"]),
)

#: The append-only, hash-chained audit log (``node.audit``). ``details`` is canonical
#: JSON and never holds passwords, tokens or PII. Rows are only ever inserted.
audit_log: Final = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("actor", Integer, nullable=True),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=True),
    Column("details", Text, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    PrimaryKeyConstraint("seq"),
    CheckConstraint("seq >= 1", name="seq_positive"),
)

#: The audit chain's head, one row (``id`` = 1, inserted by the migration): the lock
#: that serializes audit writers (``SELECT ... FOR UPDATE``) and a second copy of the
#: newest ``(seq, hash)``, so that a truncated or re-hashed tail is noticed.
audit_head: Final = Table(
    "audit_head",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    PrimaryKeyConstraint("id"),
    CheckConstraint("id = 1", name="single_row"),
)


#: Known peer nodes (``node.federation``): proposed by discovery or an invite, approved
#: or blocked by an admin. Replication and messaging talk to approved peers only.
peers: Final = Table(
    "peers",
    metadata,
    Column("node_id", LargeBinary, nullable=False),
    Column("state", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("url", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=True),
    Column("last_sync_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("failures", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    PrimaryKeyConstraint("node_id"),
    CheckConstraint("length(node_id) = 32", name="node_id_len"),
    CheckConstraint("state IN ('proposed', 'approved', 'blocked')", name="state_known"),
    CheckConstraint("source IN ('lan', 'invite', 'manual')", name="source_known"),
)

#: Authors this node never replicates, stores or relays, with the admin's reason.
blocks: Final = Table(
    "blocks",
    metadata,
    Column("author", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("author"),
    CheckConstraint("length(author) = 32", name="author_len"),
)

#: Invites this node issued; the key is SHA-256 of the secret (the token is never kept).
invites: Final = Table(
    "invites",
    metadata,
    Column("secret_hash", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("created_by", Integer, nullable=True),
    Column("used_ms", BigInteger, nullable=True),
    Column("used_by", LargeBinary, nullable=True),
    PrimaryKeyConstraint("secret_hash"),
)

#: Small durable flags of the node (e.g. ``own_head_unconfirmed`` after a restore).
node_state: Final = Table(
    "node_state",
    metadata,
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("key"),
)

#: Org-to-org messages this node sent or received (opened; ``content`` is the canonical
#: msgpack of the message content). ``state``: outgoing queued/relayed/delivered/read/
#: failed; incoming received.
messages: Final = Table(
    "messages",
    metadata,
    Column("id", LargeBinary, nullable=False),
    Column("direction", Text, nullable=False),
    Column("peer", LargeBinary, nullable=False),
    Column("thread", LargeBinary, nullable=False),
    Column("kind", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("read_ms", BigInteger, nullable=True),
    Column("author_account", Integer, nullable=True),
    PrimaryKeyConstraint("id"),
    CheckConstraint("direction IN ('in', 'out')", name="direction_known"),
    Index("ix_messages_thread", "thread"),
    Index("ix_messages_peer", "peer"),
)

#: Sealed envelopes waiting to be delivered (retried with backoff until acknowledged).
outbox: Final = Table(
    "outbox",
    metadata,
    Column("id", LargeBinary, nullable=False),
    Column("recipient", LargeBinary, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False, index=True),
    Column("last_error", Text, nullable=True),
    Column("via", LargeBinary, nullable=True),
    Column("updated_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("id"),
)

#: Envelopes this node carries for others (it cannot open them); keyed by SHA-256 of
#: the envelope bytes (SPEC §6.8: a relay deduplicates on identical bytes only).
relay: Final = Table(
    "relay",
    metadata,
    Column("digest", LargeBinary, nullable=False),
    Column("recipient", LargeBinary, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("from_peer", LargeBinary, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("forwarded_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("digest"),
)


#: Key shares this node holds as a pseudonym oracle, one per epoch. The secret is
#: sealed to the node's own encryption key: the database alone (or a copy of it) does
#: not reveal it.
oracle_shares: Final = Table(
    "oracle_shares",
    metadata,
    Column("epoch", BigInteger, nullable=False),
    Column("share_index", Integer, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("share_key", LargeBinary, nullable=False),
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("dealer", LargeBinary, nullable=False),
    Column("imported_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("epoch"),
    CheckConstraint("length(share_key) = 32", name="share_key_len"),
    CheckConstraint("share_index BETWEEN 1 AND 255", name="share_index_range"),
)

#: As an oracle: elements evaluated per UTC day, requester and epoch (published daily
#: as ``oracle.usage/1``; the quota counts against it).
oracle_usage: Final = Table(
    "oracle_usage",
    metadata,
    Column("day", Text, nullable=False),
    Column("requester", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "requester", "epoch"),
    CheckConstraint("count >= 1", name="count_positive"),
)

#: As a client: pseudonyms by a keyed hash of their input (never the input itself). A
#: pending row (``epoch`` 0) keeps the input sealed to our own key until the oracles
#: answer; a ready row keeps only the pseudonym of its epoch.
pseudonyms: Final = Table(
    "pseudonyms",
    metadata,
    Column("mac", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("weak", Boolean, nullable=False),
    Column("value", LargeBinary, nullable=True),
    Column("sealed_input", LargeBinary, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_ms", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("mac", "epoch"),
    CheckConstraint(
        "(epoch = 0) = (value IS NULL) AND (value IS NULL) = (sealed_input IS NOT NULL)",
        name="pending_or_ready",
    ),
    Index("ix_pseudonyms_next_ms", "next_ms"),
)

# -- Ata'a (migration 0005) ---------------------------------------------------------------

#: Data keys for households' PII: random 32-byte secretbox keys, each sealed to our own
#: encryption key. The newest unretired key encrypts; rotation re-encrypts every
#: household under a new key, then retires the old one (kept: a backup may need it).
ataa_data_keys: Final = Table(
    "ataa_data_keys",
    metadata,
    Column("id", Integer, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("retired_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("id"),
)

#: Households. ``pii`` is everything personal (names, national ID, phone, birth date,
#: address, members, need facts), encrypted with data key ``key_id``. The other columns
#: are not personal and serve queries: blind indexes (keyed hashes) for exact search
#: and re-import, the pseudonym's cache key, area, and the current score.
ataa_households: Final = Table(
    "ataa_households",
    metadata,
    Column("id", Integer, nullable=False),
    Column("key_id", Integer, nullable=False),
    Column("pii", LargeBinary, nullable=False),
    Column("nid_index", LargeBinary, nullable=True),
    Column("phone_index", LargeBinary, nullable=True),
    Column("pseudonym_mac", LargeBinary, nullable=True),
    Column("weak", Boolean, nullable=False),
    Column("governorate", Text, nullable=False),
    Column("district", Text, nullable=False),
    Column("displacement", Text, nullable=True),
    Column("members", Integer, nullable=True),
    Column("score", Integer, nullable=True),
    Column("band", Text, nullable=True),
    Column("model_version", Integer, nullable=True),
    Column("status", Text, nullable=False),
    Column("merged_into", Integer, nullable=True),
    Column("import_id", Integer, nullable=True),
    Column("created_by", Integer, nullable=True),
    Column("registered_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("id"),
    ForeignKeyConstraint(["key_id"], ["ataa_data_keys.id"]),
    CheckConstraint("status IN ('active', 'merged', 'archived')", name="status"),
    Index("ix_ataa_households_nid_index", "nid_index", unique=True),
    Index("ix_ataa_households_phone_index", "phone_index"),
    Index("ix_ataa_households_pseudonym_mac", "pseudonym_mac"),
    Index("ix_ataa_households_status_score", "status", "score"),
    # The queue and the household list filter by area or band, then order by score: one
    # index per filter, so that the count and the highest scores of a district are read
    # from the index alone (tools/bench_ataa: a filtered count over 100,000 households
    # went from 0.8 s to a few ms on SQLite).
    Index("ix_ataa_households_district_status_score", "district", "status", "score"),
    Index("ix_ataa_households_governorate_status_score", "governorate", "status", "score"),
    Index("ix_ataa_households_band_status_score", "band", "status", "score"),
)

#: Name search without names: one keyed hash per normalized name token.
ataa_name_index: Final = Table(
    "ataa_name_index",
    metadata,
    Column("token", LargeBinary, nullable=False),
    Column("household_id", Integer, nullable=False),
    PrimaryKeyConstraint("token", "household_id"),
    ForeignKeyConstraint(["household_id"], ["ataa_households.id"]),
    Index("ix_ataa_name_index_household_id", "household_id"),
)

#: Scoring models, versioned; exactly one is active once Ata'a has started.
ataa_models: Final = Table(
    "ataa_models",
    metadata,
    Column("version", Integer, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("digest", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", Integer, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("version"),
)

#: Every score computed, kept with its model version (``breakdown`` is JSON).
ataa_scores: Final = Table(
    "ataa_scores",
    metadata,
    Column("household_id", Integer, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("score", Integer, nullable=False),
    Column("band", Text, nullable=False),
    Column("breakdown", Text, nullable=False),
    Column("computed_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("household_id", "model_version"),
    ForeignKeyConstraint(["household_id"], ["ataa_households.id"]),
    ForeignKeyConstraint(["model_version"], ["ataa_models.version"]),
)

#: Import runs: progress counters and the per-row report (JSON; row numbers, columns
#: and codes, never the values).
ataa_imports: Final = Table(
    "ataa_imports",
    metadata,
    Column("id", Integer, nullable=False),
    Column("filename", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("processed", Integer, nullable=False),
    Column("created", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("report", Text, nullable=False),
    Column("created_by", Integer, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("id"),
    CheckConstraint("state IN ('running', 'done', 'failed')", name="state"),
)

#: Within-node duplicate suggestions, a pair each (``a < b``), for a human to decide.
ataa_duplicates: Final = Table(
    "ataa_duplicates",
    metadata,
    Column("a", Integer, nullable=False),
    Column("b", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("decided_by", Integer, nullable=True),
    Column("decided_ms", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("a", "b"),
    ForeignKeyConstraint(["a"], ["ataa_households.id"]),
    ForeignKeyConstraint(["b"], ["ataa_households.id"]),
    CheckConstraint("a < b", name="ordered"),
    CheckConstraint("state IN ('open', 'merged', 'dismissed')", name="state"),
    Index("ix_ataa_duplicates_state", "state"),
)

#: The allocation index: one row per ``ataa.allocation/1`` entry we hold (ours and
#: peers'), its fields copied for the queue and reports; a later
#: ``ataa.allocation_void/1`` of the same author fills ``void_reason``/``void_seq``.
ataa_allocations: Final = Table(
    "ataa_allocations",
    metadata,
    Column("author", LargeBinary, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("entry_id", LargeBinary, nullable=False),
    Column("pseudonym", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("category", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("value_iqd", BigInteger, nullable=False),
    Column("program", Text, nullable=False),
    Column("date", Text, nullable=False),
    Column("district", Text, nullable=False),
    Column("void_reason", Text, nullable=True),
    Column("void_seq", BigInteger, nullable=True),
    PrimaryKeyConstraint("author", "seq"),
    ForeignKeyConstraint(["author", "seq"], ["entries.author", "entries.seq"]),
    Index("ix_ataa_allocations_pseudonym_date", "pseudonym", "date"),
    Index("ix_ataa_allocations_date", "date"),
    Index("ix_ataa_allocations_entry_id", "entry_id", unique=True),
)

#: Distributions a coordinator plans.
ataa_distributions: Final = Table(
    "ataa_distributions",
    metadata,
    Column("id", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("program", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("value_iqd", BigInteger, nullable=False),
    Column("governorate", Text, nullable=True),
    Column("district", Text, nullable=True),
    Column("target_count", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_by", Integer, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("id"),
    CheckConstraint("state IN ('draft', 'open', 'closed')", name="state"),
)

#: The households of a distribution: picked from the queue (``rank``, ``priority`` at
#: the time), included or excluded with a reason, delivered (``entry_seq`` of our
#: allocation entry; NULL while the household's pseudonym is pending, and
#: ``delivered_date`` keeps the delivery date the entry will carry) or voided.
ataa_dist_households: Final = Table(
    "ataa_dist_households",
    metadata,
    Column("distribution_id", Integer, nullable=False),
    Column("household_id", Integer, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("override_by", Integer, nullable=True),
    Column("override_reason", Text, nullable=True),
    Column("delivered_by", Integer, nullable=True),
    Column("delivered_ms", BigInteger, nullable=True),
    Column("delivered_date", Text, nullable=True),
    Column("entry_seq", BigInteger, nullable=True),
    Column("updated_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("distribution_id", "household_id"),
    ForeignKeyConstraint(["distribution_id"], ["ataa_distributions.id"]),
    ForeignKeyConstraint(["household_id"], ["ataa_households.id"]),
    CheckConstraint("state IN ('planned', 'excluded', 'delivered', 'voided')", name="state"),
    Index("ix_ataa_dist_households_household_id", "household_id"),
)
