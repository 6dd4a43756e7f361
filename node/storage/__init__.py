"""Storage: the node's database (SQLite or PostgreSQL) and one store per domain.

>>> db = Database.from_url("sqlite:///watan.db")
>>> await db.upgrade()
>>> feeds = FeedStore(db, own=identity.node_id)

Every public store method is one transaction (STYLE §9); every failure is a
:class:`StorageError` with a :class:`StorageErrorCode`, except protocol violations in
received bytes, which stay ``protocol.RemoteProtocolError``.
"""

from ._bulk import insert_rows
from ._db import CONNECT_TIMEOUT_S, SQLITE_BUSY_TIMEOUT_MS, Database, StorageError, StorageErrorCode
from ._feeds import (
    HEAD_UNCONFIRMED_KEY,
    MAX_RANGE,
    MAX_RANGE_BYTES,
    FeedStore,
    ForkRecord,
    Indexer,
    IngestResult,
    IngestStatus,
    PreparedBatch,
    entry_row,
    stored_content,
)

__all__ = [
    "CONNECT_TIMEOUT_S",
    "HEAD_UNCONFIRMED_KEY",
    "MAX_RANGE",
    "MAX_RANGE_BYTES",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Database",
    "FeedStore",
    "ForkRecord",
    "Indexer",
    "IngestResult",
    "IngestStatus",
    "PreparedBatch",
    "StorageError",
    "StorageErrorCode",
    "entry_row",
    "insert_rows",
    "stored_content",
]
