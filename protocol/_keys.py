"""Ed25519 signatures and key fingerprints: the one place nacl exceptions are translated.

Verification is Ed25519 as in RFC 8032 §5.1.7, done by libsodium, which additionally
rejects a non-canonical S (S >= L), a non-canonical or small-order public key, and a
small-order R. Implementations must apply the same rules (SPEC §3.3) so that one entry is
valid everywhere or nowhere.
"""

from __future__ import annotations

import hashlib

import nacl.bindings
import nacl.exceptions
from nacl.signing import SigningKey

from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = ["SigningKey", "fingerprint", "public_key", "sign", "signing_key", "verify"]

_FINGERPRINT_TAG = b"watan/fingerprint/v1\x00"


def signing_key(seed: bytes) -> SigningKey:
    """An Ed25519 signing key from its 32-byte seed (RFC 8032 §5.1.5 "private key").

    Raises:
        LocalProtocolError: BAD_KEY if the seed is not 32 bytes.
    """
    if type(seed) is not bytes or len(seed) != 32:
        raise LocalProtocolError("an Ed25519 seed is 32 bytes", code=ErrorCode.BAD_KEY)
    return SigningKey(seed)


def public_key(key: SigningKey) -> bytes:
    """The 32-byte public key, which is also a node's id and its feed's author."""
    return bytes(key.verify_key)


def sign(key: SigningKey, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` (already domain-tagged)."""
    return key.sign(message).signature


def verify(key: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature; never returns a bool (STYLE §7).

    Raises:
        RemoteProtocolError: BAD_SIGNATURE for a wrong signature, and for a key or
            signature that libsodium will not even consider.
    """
    # crypto_sign_open takes signature || message and reads the key's first 32 bytes:
    # without these checks a 63-byte signature borrows the message's first byte, and a
    # 33-byte key passes as its 32-byte prefix.
    try:
        if len(key) != 32 or len(signature) != 64:
            raise ValueError("an Ed25519 key is 32 bytes and a signature 64")
        nacl.bindings.crypto_sign_open(signature + message, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(
            "signature does not verify", code=ErrorCode.BAD_SIGNATURE
        ) from None


def fingerprint(key: bytes) -> str:
    """A human-comparable fingerprint of a public key: six groups of five digits.

    Digits read aloud the same way in Arabic and English over a bad phone line, which
    letters do not. The groups come from SHA-512 like Signal's safety numbers: each is
    5 bytes of the hash as a big-endian integer modulo 100000, ~99.6 bits in all, so
    finding another key with the same fingerprint costs ~2**99 work.
    """
    if type(key) is not bytes or len(key) != 32:
        raise LocalProtocolError("a public key is 32 bytes", code=ErrorCode.BAD_KEY)
    digest = hashlib.sha512(_FINGERPRINT_TAG + key).digest()
    groups = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return " ".join(f"{group:05d}" for group in groups)
