"""Key shares: the dealer's share files, importing one, and keeping it sealed at rest.

A share file is one line of text, ``watan-share-1.`` + base64url (no padding) of::

    {"box": bin, "dealer": bin32, "epoch": uint, "index": uint, "net": bin32,
     "oracle": bin32, "threshold": uint, "v": 1}

``box`` is a libsodium sealed box to the oracle's published ``enc_key`` holding
``{"epoch", "index", "net", "secret"}``: only that oracle can open it, and the outer
fields cannot be swapped without the inner ones disagreeing. Being text, the file can
travel as a message attachment or on a USB stick.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Final

import nacl.bindings as sodium
import nacl.exceptions
from sqlalchemy import select
from sqlalchemy.engine import Connection

import protocol
from node.identity import Identity
from node.storage import Database
from node.storage._schema import oracle_shares
from protocol import oprf

from ._errors import OracleError, OracleErrorCode

__all__ = [
    "SHARE_FILE_PREFIX",
    "HeldShare",
    "ShareStore",
    "open_share_file",
    "seal_share_file",
]

SHARE_FILE_PREFIX: Final = "watan-share-1."
#: A share file is a few hundred characters; anything much larger is not one.
MAX_SHARE_FILE_CHARS: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldShare:
    """A share this node holds as an oracle (secret unsealed in memory only)."""

    epoch: int
    share: oprf.KeyShare
    threshold: int
    dealer: bytes
    imported_ms: int

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        return f"HeldShare(epoch={self.epoch}, index={self.share.index})"


def seal_share_file(
    share: oprf.KeyShare,
    *,
    epoch: int,
    threshold: int,
    net: bytes,
    dealer: bytes,
    oracle: bytes,
    oracle_enc_key: bytes,
) -> str:
    """The text of ``oracle``'s share file (module docstring)."""
    inner = protocol.encode(
        {"epoch": epoch, "index": share.index, "net": net, "secret": share.secret}
    )
    document = {
        "box": sodium.crypto_box_seal(inner, oracle_enc_key),
        "dealer": dealer,
        "epoch": epoch,
        "index": share.index,
        "net": net,
        "oracle": oracle,
        "threshold": threshold,
        "v": 1,
    }
    encoded = base64.urlsafe_b64encode(protocol.encode(document)).rstrip(b"=")
    return SHARE_FILE_PREFIX + encoded.decode("ascii")


def _bad(why: str) -> OracleError:
    return OracleError(f"not a usable share file: {why}", code=OracleErrorCode.BAD_SHARE_FILE)


def _decode_document(text: str) -> dict[str, Any]:
    text = text.strip()
    if len(text) > MAX_SHARE_FILE_CHARS or not text.startswith(SHARE_FILE_PREFIX):
        raise _bad(f"it does not start with {SHARE_FILE_PREFIX!r}")
    body = text[len(SHARE_FILE_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        value = protocol.decode(raw)
    except (binascii.Error, ValueError, protocol.ProtocolError):
        raise _bad("damaged (not base64url of canonical msgpack)") from None
    shape = {
        "box": bytes,
        "dealer": bytes,
        "epoch": int,
        "index": int,
        "net": bytes,
        "oracle": bytes,
        "threshold": int,
        "v": int,
    }
    if type(value) is not dict or set(value) != set(shape):
        raise _bad("unexpected fields")
    for field, kind in shape.items():
        if type(value[field]) is not kind:
            raise _bad(f"{field} has the wrong type")
    if value["v"] != 1:
        raise _bad(f"version {value['v']} is not supported by this release")
    return value


def open_share_file(
    text: str, *, identity: Identity, net: bytes
) -> tuple[dict[str, Any], oprf.KeyShare]:
    """Decode and open a share file meant for this node of federation ``net``.

    Returns:
        The outer document (epoch, index, threshold, dealer) and the share.

    Raises:
        OracleError: BAD_SHARE_FILE naming what is wrong.
    """
    document = _decode_document(text)
    if document["oracle"] != identity.node_id:
        raise _bad("it is meant for another node")
    if document["net"] != net:
        raise _bad("it belongs to another federation")
    try:
        inner = protocol.decode(
            sodium.crypto_box_seal_open(
                document["box"], identity.enc_key, identity.encryption_secret
            )
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError, protocol.ProtocolError):
        raise _bad("it does not open with this node's key") from None
    if (
        type(inner) is not dict
        or set(inner) != {"epoch", "index", "net", "secret"}
        or any(inner[k] != document[k] for k in ("epoch", "index", "net"))
        or type(inner["secret"]) is not bytes
    ):
        raise _bad("its sealed part disagrees with its label")
    try:
        share = oprf.KeyShare(index=inner["index"], secret=inner["secret"])
    except protocol.ProtocolError:
        raise _bad("the share is not a valid key share") from None
    return document, share


class ShareStore:
    """This node's key shares, sealed to its own encryption key in the database."""

    def __init__(self, db: Database, *, identity: Identity) -> None:
        self._db = db
        self._identity = identity
        self._cache: dict[int, HeldShare] = {}

    async def put(
        self, share: oprf.KeyShare, *, epoch: int, threshold: int, dealer: bytes, now_ms: int
    ) -> bool:
        """Keep ``share`` for ``epoch``; False if this very share was already held.

        Raises:
            OracleError: SHARE_EXISTS if a different share of that epoch is held.
        """
        sealed = sodium.crypto_box_seal(share.secret, self._identity.enc_key)
        row = {
            "epoch": epoch,
            "share_index": share.index,
            "threshold": threshold,
            "share_key": share.public_key,
            "sealed_secret": sealed,
            "dealer": dealer,
            "imported_ms": now_ms,
        }
        return await self._db.write(_put_txn, row)

    async def get(self, epoch: int) -> HeldShare | None:
        held = self._cache.get(epoch)
        if held is None:
            row = await self._db.read(_get_txn, epoch)
            if row is None:
                return None
            held = self._unseal(row)
            self._cache[epoch] = held
        return held

    async def epochs(self) -> list[int]:
        return await self._db.read(_epochs_txn)

    def _unseal(self, row: Any) -> HeldShare:
        secret = sodium.crypto_box_seal_open(
            bytes(row.sealed_secret), self._identity.enc_key, self._identity.encryption_secret
        )
        return HeldShare(
            epoch=row.epoch,
            share=oprf.KeyShare(index=row.share_index, secret=secret),
            threshold=row.threshold,
            dealer=bytes(row.dealer),
            imported_ms=row.imported_ms,
        )


def _put_txn(conn: Connection, row: dict[str, Any]) -> bool:
    old = conn.execute(
        select(oracle_shares.c.share_key, oracle_shares.c.share_index).where(
            oracle_shares.c.epoch == row["epoch"]
        )
    ).one_or_none()
    if old is not None:
        if bytes(old.share_key) == row["share_key"] and old.share_index == row["share_index"]:
            return False
        raise OracleError(
            f"this node already holds a different share of epoch {row['epoch']}",
            code=OracleErrorCode.SHARE_EXISTS,
        )
    conn.execute(oracle_shares.insert().values(row))
    return True


def _get_txn(conn: Connection, epoch: int) -> Any:
    return conn.execute(select(oracle_shares).where(oracle_shares.c.epoch == epoch)).one_or_none()


def _epochs_txn(conn: Connection) -> list[int]:
    query = select(oracle_shares.c.epoch).order_by(oracle_shares.c.epoch)
    return [row.epoch for row in conn.execute(query)]
