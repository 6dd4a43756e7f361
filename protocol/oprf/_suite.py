"""The ciphersuite ristretto255-SHA512 of RFC 9497 §4.1: context strings and hashes (SPEC §13.1).

- ``contextString = "OPRFV1-" ‖ I2OSP(mode, 1) ‖ "-" ‖ "ristretto255-SHA512"`` (§3.1).
- ``HashToGroup(x)``: ``expand_message_xmd(SHA-512)`` (RFC 9380 §5.3.1) of ``x`` to 64
  bytes under ``DST = "HashToGroup-" ‖ contextString``, then the ristretto255 one-way
  map (RFC 9496 §4.3.4).
- ``HashToScalar(x)``: the same expansion under ``"HashToScalar-" ‖ contextString``
  (or a DST given by the caller), read little-endian, mod ``L``.
"""

from __future__ import annotations

import hashlib
from typing import Final

from .._errors import ErrorCode, LocalProtocolError
from . import _group

__all__ = [
    "MODE_OPRF",
    "MODE_VOPRF",
    "OUTPUT_BYTES",
    "SUITE",
    "context_string",
    "derive_key_pair",
    "expand_message_xmd",
    "hash_to_group",
    "hash_to_scalar",
    "i2osp",
    "length_prefixed",
]

SUITE: Final = "ristretto255-SHA512"
MODE_OPRF: Final = 0
MODE_VOPRF: Final = 1
#: ``Nh``: the output of SHA-512 and so of Finalize (RFC 9497 §4.1).
OUTPUT_BYTES: Final = 64
_SHA512_BLOCK: Final = 128
#: RFC 9497 §1.2: inputs are length-prefixed with two bytes, so at most 2^16 − 1 bytes.
_MAX_INPUT: Final = 2**16 - 1


def i2osp(value: int, length: int) -> bytes:
    """RFC 8017 §4.1: ``value`` as ``length`` big-endian bytes."""
    return value.to_bytes(length, "big")


def length_prefixed(*parts: bytes) -> bytes:
    """``I2OSP(len(p), 2) ‖ p`` for each part, concatenated (RFC 9497 transcripts)."""
    for part in parts:
        if len(part) > _MAX_INPUT:
            raise LocalProtocolError(
                "an input is longer than 65535 bytes", code=ErrorCode.BAD_VALUE
            )
    return b"".join(i2osp(len(part), 2) + part for part in parts)


def context_string(mode: int) -> bytes:
    """``"OPRFV1-" ‖ I2OSP(mode, 1) ‖ "-" ‖ SUITE`` (RFC 9497 §3.1)."""
    if type(mode) is not int or mode not in (MODE_OPRF, MODE_VOPRF):
        raise LocalProtocolError("mode is 0 (OPRF) or 1 (VOPRF)", code=ErrorCode.BAD_VALUE)
    return b"OPRFV1-" + i2osp(mode, 1) + b"-" + SUITE.encode("ascii")


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 with SHA-512 (``b_in_bytes`` 64, ``s_in_bytes`` 128)."""
    ell = -(-length // 64)
    if not 0 < length <= 65535 or ell > 255 or len(dst) > 255:
        raise LocalProtocolError(
            "expand_message_xmd: length or DST too long", code=ErrorCode.BAD_VALUE
        )
    dst_prime = dst + i2osp(len(dst), 1)
    b_0 = hashlib.sha512(
        bytes(_SHA512_BLOCK) + msg + i2osp(length, 2) + b"\x00" + dst_prime
    ).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    out = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + i2osp(i, 1) + dst_prime).digest()
        out.append(b_i)
    return b"".join(out)[:length]


def hash_to_group(msg: bytes, mode: int) -> bytes:
    """RFC 9497 §4.1 HashToGroup: hash_to_ristretto255 (RFC 9380 §6.8.1, RFC 9496 §4.3.4)."""
    dst = b"HashToGroup-" + context_string(mode)
    return _group.from_hash(expand_message_xmd(msg, dst, 64))


def hash_to_scalar(msg: bytes, mode: int, dst: bytes | None = None) -> bytes:
    """RFC 9497 §4.1 HashToScalar: 64 expanded bytes, little-endian, mod ``L``."""
    if dst is None:
        dst = b"HashToScalar-" + context_string(mode)
    return _group.int_to_scalar(_group.scalar_to_int(expand_message_xmd(msg, dst, 64)))


def derive_key_pair(seed: bytes, info: bytes, *, mode: int = MODE_OPRF) -> tuple[bytes, bytes]:
    """RFC 9497 §3.2.1 DeriveKeyPair: a key pair from a 32-byte seed and a public info string.

    Args:
        seed: 32 secret, uniformly random bytes (``Ns``), from the caller's RNG.
        info: public key information, at most 65535 bytes (may be empty).
        mode: ``MODE_OPRF`` or ``MODE_VOPRF``: the same seed gives different keys.

    Returns:
        ``(sk, pk)``: the 32-byte scalar and its 32-byte public element ``sk * G``.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` for a seed that is not 32 bytes, an info
            longer than 65535 bytes or an unknown mode; ``BAD_SCALAR`` in the
            negligible case (about 2^-64000) that 256 counters all hash to zero.
    """
    if type(seed) is not bytes or len(seed) != _group.SCALAR_BYTES or type(info) is not bytes:
        raise LocalProtocolError("seed must be 32 bytes and info bytes", code=ErrorCode.BAD_VALUE)
    derive_input = seed + length_prefixed(info)
    dst = b"DeriveKeyPair" + context_string(mode)
    for counter in range(256):
        sk = hash_to_scalar(derive_input + i2osp(counter, 1), mode, dst)
        if sk != bytes(_group.SCALAR_BYTES):
            return sk, _group.base_mult(sk)
    raise LocalProtocolError("DeriveKeyPairError: 256 zero scalars", code=ErrorCode.BAD_SCALAR)
