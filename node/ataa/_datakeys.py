"""Data keys: the symmetric keys that households' PII is encrypted with at rest.

Why keys of their own rather than sealing each household to the node's X25519 key: a
list page opens fifty names, and secretbox (XSalsa20-Poly1305) is a symmetric
operation where a sealed box is a Diffie-Hellman per record; and a data key can be
rotated (a suspected leak of a decrypted key, a staff member who ran a debugger) by
re-encrypting rows, without touching the node's identity, which peers know.

Each key is 32 random bytes, kept in ``ataa_data_keys`` sealed (libsodium
``crypto_box_seal``) to the node's own encryption key, as oracle shares are
(``node.oracle._shares``): a copy of the database alone, a backup or a stolen disk,
opens nothing without ``keys/encryption.key``. Opened keys are cached in memory.

A blob is ``nonce (24 bytes) || secretbox ciphertext``; the nonce comes from the
injected ``random_bytes`` (random 24-byte nonces never repeat in practice: libsodium
"Authenticated encryption" docs).

Other stores encrypt inside their own transactions with :meth:`DataKeys.encrypt_txn`
(as they write audit rows with ``AuditLog.record_txn``), so a row and the key it names
are always consistent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from node.audit import AuditLog
from node.clock import Clock
from node.identity import Identity
from node.storage import Database
from node.storage._schema import ataa_data_keys, ataa_households

from ._errors import HouseholdError, HouseholdErrorCode

__all__ = ["KEY_BYTES", "ROTATE_BATCH", "DataKeyInfo", "DataKeys", "RotationResult"]

#: secretbox key size (libsodium ``crypto_secretbox_KEYBYTES``).
KEY_BYTES: Final = sodium.crypto_secretbox_KEYBYTES
_NONCE_BYTES: Final = sodium.crypto_secretbox_NONCEBYTES
#: Households re-encrypted per transaction during a rotation: small enough that one
#: transaction holds the SQLite write lock for well under a second on an SD card
#: (a few ms per row at most), large enough that 100,000 households take 200 commits.
ROTATE_BATCH: Final = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationResult:
    """What :meth:`DataKeys.rotate` did.

    Attributes:
        key_id: the key every household is now encrypted with.
        reencrypted: households re-encrypted by this run (a resumed run counts only
            its own).
        retired: the keys retired by this run.
    """

    key_id: int
    reencrypted: int
    retired: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DataKeyInfo:
    """A data key as the admin page shows it (never the key itself)."""

    id: int
    created_ms: int
    retired_ms: int | None
    households: int


class DataKeys:
    """The node's data keys (one instance per node).

    Args:
        db: the node's database, upgraded.
        identity: the node's keys; data keys are sealed to ``identity.enc_key``.
        clock: for ``created_ms`` and ``retired_ms``.
        random_bytes: the source of keys and nonces (``secrets.token_bytes``).
        audit: where rotations are recorded; None only in tests that never rotate.
    """

    def __init__(
        self,
        db: Database,
        identity: Identity,
        clock: Clock,
        random_bytes: Callable[[int], bytes],
        *,
        audit: AuditLog | None = None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._clock = clock
        self._random = random_bytes
        self._audit = audit if audit is not None else AuditLog(db)
        self._opened: dict[int, bytes] = {}
        # Keys created in a transaction not known to have committed. Never cached: on
        # SQLite a rolled-back insert's id is given to the next key inserted, and a
        # cached key under a reused id would encrypt rows that nothing can open.
        self._uncommitted: set[int] = set()
        self._rotating = asyncio.Lock()

    # -- one transaction each -------------------------------------------------------

    async def current(self) -> int:
        """The id of the key new data is encrypted with, creating the first one."""
        key_id = await self._db.write(self.current_txn)
        self._uncommitted.discard(key_id)  # committed now
        return key_id

    async def encrypt(self, plaintext: bytes) -> tuple[int, bytes]:
        """Encrypt under the current key: ``(key_id, blob)``."""
        return await self._db.write(self.encrypt_txn, plaintext)

    async def decrypt(self, key_id: int, blob: bytes) -> bytes:
        """Open a blob made by :meth:`encrypt` (under any key, retired or not).

        Raises:
            HouseholdError: CORRUPT if the key or the blob does not open.
        """
        key = self._opened.get(key_id)
        if key is None:
            return await self._db.read(self.decrypt_txn, key_id, blob)
        return _open(key, key_id, blob)

    async def keys(self) -> list[DataKeyInfo]:
        """Every data key, oldest first, with how many households each encrypts."""
        return await self._db.read(_keys_txn)

    # -- within a caller's transaction ----------------------------------------------

    def current_txn(self, conn: Connection) -> int:
        """The current key's id, within ``conn``'s write transaction.

        On PostgreSQL the key row is share-locked (``FOR SHARE``) until the caller
        commits, so a rotation cannot retire it under a row being written with it;
        SQLite serializes writers anyway.
        """
        row = conn.execute(
            select(ataa_data_keys.c.id)
            .where(ataa_data_keys.c.retired_ms.is_(None))
            .order_by(ataa_data_keys.c.id.desc())
            .limit(1)
            .with_for_update(read=True)
        ).one_or_none()
        return row.id if row is not None else self._create_txn(conn)

    def encrypt_txn(self, conn: Connection, plaintext: bytes) -> tuple[int, bytes]:
        """:meth:`encrypt` within ``conn``'s write transaction."""
        key_id = self.current_txn(conn)
        return key_id, self._seal_with(conn, key_id, plaintext)

    def decrypt_txn(self, conn: Connection, key_id: int, blob: bytes) -> bytes:
        """:meth:`decrypt` within ``conn``'s transaction."""
        return _open(self._key_txn(conn, key_id), key_id, blob)

    # -- rotation -------------------------------------------------------------------

    async def rotate(self, *, actor: int | None, batch: int = ROTATE_BATCH) -> RotationResult:
        """Move every household to a new key, then retire the old keys.

        Resumable: a run that stops part-way (a crash, a restart) leaves the new key
        current and rows under either key, all still readable; the next call sees
        more than one unretired key and finishes moving rows to the newest instead of
        starting again. Retired keys are kept (a backup from before the rotation still
        needs them). One run at a time per node.

        Args:
            actor: the account that asked (audited as ``ataa.datakey.rotate``).
            batch: households per transaction.

        Returns:
            The key now in use, the rows moved and the keys retired by this run.
        """
        if batch < 1:
            raise HouseholdError("batch must be at least 1", code=HouseholdErrorCode.BAD_REQUEST)
        async with self._rotating:
            target = await self._db.write(self._rotation_target_txn)
            self._uncommitted.discard(target)
            moved = 0
            while True:
                done = await self._db.write(self._reencrypt_txn, target, batch)
                moved += done
                if done < batch:
                    break
            moved_late, retired = await self._db.write(self._retire_txn, target, actor, moved)
            return RotationResult(key_id=target, reencrypted=moved + moved_late, retired=retired)

    def _rotation_target_txn(self, conn: Connection) -> int:
        unretired = conn.execute(
            select(ataa_data_keys.c.id)
            .where(ataa_data_keys.c.retired_ms.is_(None))
            .order_by(ataa_data_keys.c.id)
        ).all()
        if len(unretired) >= 2:  # an interrupted rotation: finish it
            return int(unretired[-1].id)
        return self._create_txn(conn)

    def _reencrypt_txn(self, conn: Connection, target: int, batch: int) -> int:
        rows = conn.execute(
            select(ataa_households.c.id, ataa_households.c.key_id, ataa_households.c.pii)
            .where(ataa_households.c.key_id != target)
            .order_by(ataa_households.c.id)
            .limit(batch)
            .with_for_update()
        ).all()
        for row in rows:
            plaintext = self.decrypt_txn(conn, row.key_id, bytes(row.pii))
            conn.execute(
                update(ataa_households)
                .where(ataa_households.c.id == row.id)
                .values(key_id=target, pii=self._seal_with(conn, target, plaintext))
            )
        return len(rows)

    def _retire_txn(
        self, conn: Connection, target: int, actor: int | None, moved: int
    ) -> tuple[int, tuple[int, ...]]:
        # Lock the old keys first: on PostgreSQL this waits for writers that took one
        # (``current_txn``'s FOR SHARE) before the new key was committed; rows they
        # wrote under the old key are moved here, in the transaction that retires it.
        old = [
            int(row.id)
            for row in conn.execute(
                select(ataa_data_keys.c.id)
                .where(ataa_data_keys.c.retired_ms.is_(None), ataa_data_keys.c.id != target)
                .order_by(ataa_data_keys.c.id)
                .with_for_update()
            )
        ]
        late = 0
        while (done := self._reencrypt_txn(conn, target, ROTATE_BATCH)) > 0:
            late += done
        now_ms = self._clock.now_ms()
        if old:
            conn.execute(
                update(ataa_data_keys).where(ataa_data_keys.c.id.in_(old)).values(retired_ms=now_ms)
            )
        self._audit.record_txn(
            conn,
            actor,
            "ataa.datakey.rotate",
            f"datakey:{target}",
            {"key_id": target, "reencrypted": moved + late, "retired": len(old)},
            now_ms=now_ms,
        )
        return late, tuple(old)

    # -- keys -----------------------------------------------------------------------

    def _create_txn(self, conn: Connection) -> int:
        key = self._random(KEY_BYTES)
        if len(key) != KEY_BYTES:
            raise ValueError("random_bytes returned the wrong length")
        sealed = sodium.crypto_box_seal(key, self._identity.enc_key)
        key_id = int(
            conn.execute(
                ataa_data_keys.insert()
                .values(sealed=sealed, created_ms=self._clock.now_ms(), retired_ms=None)
                .returning(ataa_data_keys.c.id)
            ).scalar_one()
        )
        self._uncommitted.add(key_id)
        return key_id

    def _key_txn(self, conn: Connection, key_id: int) -> bytes:
        key = self._opened.get(key_id)
        if key is not None:
            return key
        sealed = conn.execute(
            select(ataa_data_keys.c.sealed).where(ataa_data_keys.c.id == key_id)
        ).scalar_one_or_none()
        if sealed is None:
            raise HouseholdError(f"data key {key_id} is missing", code=HouseholdErrorCode.CORRUPT)
        try:
            key = sodium.crypto_box_seal_open(
                bytes(sealed), self._identity.enc_key, self._identity.encryption_secret
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise HouseholdError(
                f"data key {key_id} does not open with this node's key",
                code=HouseholdErrorCode.CORRUPT,
            ) from None
        if len(key) != KEY_BYTES:
            raise HouseholdError(f"data key {key_id} is malformed", code=HouseholdErrorCode.CORRUPT)
        if key_id not in self._uncommitted:
            self._opened[key_id] = key
        return key

    def _seal_with(self, conn: Connection, key_id: int, plaintext: bytes) -> bytes:
        key = self._key_txn(conn, key_id)
        nonce = self._random(_NONCE_BYTES)
        if len(nonce) != _NONCE_BYTES:
            raise ValueError("random_bytes returned the wrong length")
        return nonce + sodium.crypto_secretbox(plaintext, nonce, key)


def _open(key: bytes, key_id: int, blob: bytes) -> bytes:
    try:
        if len(blob) < _NONCE_BYTES:
            raise ValueError("short blob")
        return sodium.crypto_secretbox_open(blob[_NONCE_BYTES:], blob[:_NONCE_BYTES], key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise HouseholdError(
            f"a record under data key {key_id} does not open (damaged or altered)",
            code=HouseholdErrorCode.CORRUPT,
        ) from None


def _keys_txn(conn: Connection) -> list[DataKeyInfo]:
    counts: dict[int, int] = dict(
        conn.execute(
            select(ataa_households.c.key_id, func.count()).group_by(ataa_households.c.key_id)
        ).all()
    )
    return [
        DataKeyInfo(
            id=row.id,
            created_ms=row.created_ms,
            retired_ms=row.retired_ms,
            households=int(counts.get(row.id, 0)),
        )
        for row in conn.execute(
            select(
                ataa_data_keys.c.id, ataa_data_keys.c.created_ms, ataa_data_keys.c.retired_ms
            ).order_by(ataa_data_keys.c.id)
        )
    ]
