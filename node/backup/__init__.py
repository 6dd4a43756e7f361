"""``watan backup`` and ``watan restore``: a consistent, optionally encrypted snapshot
of a node (database, keys, config) taken while it runs, and its restore.

The snapshot is *logical*: every table of the node's schema, read in one snapshot
transaction (``Database.snapshot``: a SQLite WAL read transaction, or PostgreSQL
``REPEATABLE READ READ ONLY``), in foreign-key order, streamed in pages, plus the
schema's Alembic revision. So a PostgreSQL node restores onto SQLite and back, and
neither side ever holds the whole database in memory. The archive holds the key files
and ``node.json`` as they are, never ``first-admin-password.txt`` (a one-time secret)
nor the SQLite files.

Archive format, version 1 (integers big-endian)::

    "WATANBAK"  u16 format version (1)  u32 n  header: msgpack map, n bytes
    body

The header is ``{"encryption": "none"}`` or ``{"encryption":
"xchacha20poly1305-secretstream", "kdf": {"name": "argon2id", "time_cost",
"memory_kib", "parallelism", "salt" (16 bytes)}, "chunk_bytes": 65536,
"stream_header" (24 bytes)}``. A clear body is the record stream itself. An encrypted
body is a sequence of ``u32 n, n bytes`` chunks, each libsodium
``crypto_secretstream_xchacha20poly1305`` of up to 64 KiB of the record stream, keyed
by Argon2id(passphrase, salt) (production: t=3, 64 MiB, 4 lanes), with the prefix
(magic, version, header) as additional data of every chunk; the last chunk carries the
FINAL tag, and nothing may follow it, so truncation and appended bytes are detected.

The record stream is frames ``u32 n, msgpack [tag, payload]`` (``_tables`` gives the
grammar): a header record (node id, creation time, schema revision, source backend,
Watan version), the three files, then per table its name and columns followed by one
record per row (nil, bool, int, str and bin values, so BLOBs round-trip exactly), and
an end record: the manifest of files, per-table row counts and SHA-256 of their row
frames, and the SHA-256 of every frame before it.
"""

from ._format import FORMAT_VERSION, MAGIC, PRODUCTION_KDF, BackupError, KdfParams
from ._ops import (
    DROPPED_ON_RESTORE,
    MIN_PASSPHRASE_CHARS,
    BackupResult,
    RestoreResult,
    backup_node,
    read_passphrase,
    restore_node,
)
from ._tables import FILES

__all__ = [
    "DROPPED_ON_RESTORE",
    "FILES",
    "FORMAT_VERSION",
    "MAGIC",
    "MIN_PASSPHRASE_CHARS",
    "PRODUCTION_KDF",
    "BackupError",
    "BackupResult",
    "KdfParams",
    "RestoreResult",
    "backup_node",
    "read_passphrase",
    "restore_node",
]
