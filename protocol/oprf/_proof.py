"""Discrete-log-equality proofs of RFC 9497 §2.2, batched (SPEC §13.2).

A proof that ``B = k*A`` and ``D[i] = k*C[i]`` for every ``i`` with the same ``k``,
without revealing ``k``. The elements are combined first with scalars hashed from all
of them (ComputeComposites), so one proof covers a whole batch. Here ``A`` is always
the generator ``G`` and ``B`` the server's (or a share's) public key.

``proof = SerializeScalar(c) ‖ SerializeScalar(s)``: 64 bytes, each scalar 32 bytes
little-endian.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from .._errors import ErrorCode, ProtocolError, RemoteProtocolError
from . import _group
from ._suite import context_string, hash_to_scalar, i2osp, length_prefixed

__all__ = ["PROOF_BYTES", "generate_proof", "verify_proof"]

PROOF_BYTES: Final = 2 * _group.SCALAR_BYTES


def _seed(pk: bytes, mode: int) -> bytes:
    return hashlib.sha512(length_prefixed(pk, b"Seed-" + context_string(mode))).digest()


def _composite_scalars(pk: bytes, c: Sequence[bytes], d: Sequence[bytes], mode: int) -> list[bytes]:
    """The ``d_i`` of ComputeComposites (RFC 9497 §2.2.1), one per pair."""
    seed = _seed(pk, mode)
    return [
        hash_to_scalar(
            length_prefixed(seed) + i2osp(i, 2) + length_prefixed(ci, di) + b"Composite", mode
        )
        for i, (ci, di) in enumerate(zip(c, d, strict=True))
    ]


def _weighted_sum(weights: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    """``sum(w_i * E_i)``; the identity as a result is ``BAD_ELEMENT``."""
    total = _group.mult(weights[0], elements[0])
    for weight, element in zip(weights[1:], elements[1:], strict=True):
        total = _group.add(total, _group.mult(weight, element))
    if total == bytes(_group.ELEMENT_BYTES):
        raise RemoteProtocolError("composite element is the identity", code=ErrorCode.BAD_ELEMENT)
    return total


def _challenge(pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, mode: int) -> bytes:
    return hash_to_scalar(length_prefixed(pk, m, z, t2, t3) + b"Challenge", mode)


def generate_proof(
    k: bytes, pk: bytes, c: Sequence[bytes], d: Sequence[bytes], *, r: bytes, mode: int
) -> bytes:
    """GenerateProof (RFC 9497 §2.2.1) with ComputeCompositesFast: the server knows ``k``.

    ``k``, ``r`` are checked non-zero scalars; ``pk = k*G``; ``c``, ``d`` checked elements
    with ``d[i] = k*c[i]``.
    """
    m = _weighted_sum(_composite_scalars(pk, c, d, mode), c)
    z = _group.mult(k, m)
    t2 = _group.base_mult(r)
    t3 = _group.mult(r, m)
    challenge = _challenge(pk, m, z, t2, t3, mode)
    s = _group.scalar_sub(r, _group.scalar_mul(challenge, k))
    return challenge + s


def _parse_proof(proof: object) -> tuple[bytes, bytes]:
    if type(proof) is not bytes or len(proof) != PROOF_BYTES:
        raise RemoteProtocolError("a proof is 64 bytes", code=ErrorCode.BAD_PROOF)
    c, s = proof[:32], proof[32:]
    for scalar in (c, s):
        if not 0 < _group.scalar_to_int(scalar) < _group.L:
            raise RemoteProtocolError(
                "a proof scalar is zero or not below L", code=ErrorCode.BAD_PROOF
            )
    return c, s


def verify_proof(
    pk: bytes, c: Sequence[bytes], d: Sequence[bytes], proof: bytes, *, mode: int
) -> None:
    """VerifyProof (RFC 9497 §2.2.2) with ComputeComposites: the client knows only ``pk``.

    ``pk``, ``c`` and ``d`` are checked elements of equal count.

    Raises:
        RemoteProtocolError: ``BAD_PROOF``.
    """
    challenge, s = _parse_proof(proof)
    weights = _composite_scalars(pk, c, d, mode)
    try:
        m = _weighted_sum(weights, c)
        z = _weighted_sum(weights, d)
        t2 = _group.add(_group.base_mult(s), _group.mult(challenge, pk))
        t3 = _group.add(_group.mult(s, m), _group.mult(challenge, z))
    except ProtocolError:
        # Only a forged batch can make a composite the identity: it proves nothing.
        raise RemoteProtocolError(
            "the proof's composites are degenerate", code=ErrorCode.BAD_PROOF
        ) from None
    if _challenge(pk, m, z, t2, t3, mode) != challenge:
        raise RemoteProtocolError("the proof does not verify", code=ErrorCode.BAD_PROOF)
