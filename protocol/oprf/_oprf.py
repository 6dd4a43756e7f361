"""RFC 9497 OPRF (mode 0) and VOPRF (mode 1) protocols, ristretto255-SHA512 (SPEC §13.2).

Client: ``blind`` each input, send the blinded elements, ``finalize`` (OPRF) or
``voprf_finalize`` (VOPRF, after checking the server's proof) what comes back. Server:
``blind_evaluate`` (OPRF) or ``voprf_blind_evaluate`` (VOPRF, a batch under one proof).

A server sees only ``blind * HashToGroup(input)``: a uniformly random element,
independent of the input. Finalize's hash has no context string, so OPRF and VOPRF
evaluations of the same key and input agree once unblinded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from .._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from . import _group, _proof
from ._suite import MODE_OPRF, MODE_VOPRF, hash_to_group, length_prefixed

__all__ = [
    "MAX_BATCH",
    "blind",
    "blind_evaluate",
    "check_batch",
    "check_elements",
    "finalize",
    "verify_proof",
    "voprf_blind_evaluate",
    "voprf_finalize",
]

#: Most elements in one batch: 4096, the most items in a document array (SPEC §2.6), so
#: a batch fits one request. (RFC 9497's own bound is 2^16, from ``I2OSP(i, 2)``.)
MAX_BATCH: Final = 4096


def check_batch(elements: Sequence[bytes], name: str, *, local: bool) -> list[bytes]:
    """1 .. MAX_BATCH valid elements, as a list.

    Raises:
        ProtocolError: ``BAD_VALUE`` (count, type, length) or ``BAD_ELEMENT``.
    """
    error = LocalProtocolError if local else RemoteProtocolError
    if not isinstance(elements, list | tuple) or not 0 < len(elements) <= MAX_BATCH:
        raise error(f"{name}: 1 .. {MAX_BATCH} elements", code=ErrorCode.BAD_VALUE)
    return [_group.check_element(e, f"{name}[{i}]", local=local) for i, e in enumerate(elements)]


def check_elements(elements: Sequence[bytes]) -> list[bytes]:
    """Check received blinded elements before spending anything on them (an oracle
    validates a request before counting it against the requester's quota).

    Raises:
        RemoteProtocolError: ``BAD_VALUE`` (count, type, length) or ``BAD_ELEMENT``.
    """
    return check_batch(elements, "elements", local=False)


def _proof_random(data: bytes) -> bytes:
    if type(data) is bytes and len(data) == 64:
        data = _group.scalar_reduce(data)
    return _group.check_scalar(data, "proof_random")


def _check_input(data: bytes) -> bytes:
    if type(data) is not bytes or len(data) > 2**16 - 1:
        raise LocalProtocolError("an input is at most 65535 bytes", code=ErrorCode.BAD_VALUE)
    return data


def blind(
    input: bytes, *, blind: bytes | None = None, mode: int = MODE_OPRF
) -> tuple[bytes, bytes]:
    """RFC 9497 §3.3.1 Blind.

    Args:
        input: the private input, at most 65535 bytes.
        blind: a non-zero scalar (32 bytes), for test vectors; None draws one from
            libsodium's CSPRNG. This is the one place, like ``crypto_box_seal``, where
            the protocol layer takes randomness from libsodium rather than its caller:
            a blind must never be reused, and an RNG parameter would invite exactly that.
        mode: ``MODE_OPRF`` or ``MODE_VOPRF``; it selects HashToGroup's domain.

    Returns:
        ``(blind, blinded_element)``: keep the blind secret until :func:`finalize`.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` or ``BAD_SCALAR``.
    """
    scalar = _group.random_scalar() if blind is None else _group.check_scalar(blind, "blind")
    element = hash_to_group(_check_input(input), mode)
    return scalar, _group.mult(scalar, element)


def blind_evaluate(sk: bytes, blinded_element: bytes) -> bytes:
    """RFC 9497 §3.3.1 BlindEvaluate: ``sk * blinded_element``.

    Raises:
        LocalProtocolError: ``BAD_SCALAR`` or ``BAD_VALUE`` for the key.
        RemoteProtocolError: ``BAD_VALUE`` or ``BAD_ELEMENT`` for the client's element.
    """
    key = _group.check_scalar(sk, "sk")
    return _group.mult(key, _group.check_element(blinded_element, "blinded element"))


def finalize(input: bytes, blind: bytes, evaluated_element: bytes) -> bytes:
    """RFC 9497 §3.3.1 Finalize: unblind, then
    ``SHA-512(I2OSP(len(input), 2) ‖ input ‖ I2OSP(32, 2) ‖ unblinded ‖ "Finalize")``.

    Returns:
        The 64-byte PRF output.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` or ``BAD_SCALAR`` for the input or blind.
        RemoteProtocolError: ``BAD_VALUE`` or ``BAD_ELEMENT`` for the evaluated element.
    """
    scalar = _group.check_scalar(blind, "blind")
    element = _group.check_element(evaluated_element, "evaluated element")
    unblinded = _group.mult(_group.scalar_invert(scalar), element)
    return hashlib.sha512(length_prefixed(_check_input(input), unblinded) + b"Finalize").digest()


def voprf_blind_evaluate(
    sk: bytes, pk: bytes, blinded_elements: Sequence[bytes], *, proof_random: bytes
) -> tuple[list[bytes], bytes]:
    """RFC 9497 §3.3.2 BlindEvaluate, batched: every element times ``sk``, one proof.

    Args:
        sk, pk: the key pair (from :func:`derive_key_pair` in ``MODE_VOPRF``).
        blinded_elements: 1 .. :data:`MAX_BATCH` elements from one client.
        proof_random: the proof's random scalar ``r``, fresh for every call: 32
            canonical bytes, or 64 uniform bytes (reduced mod L).

    Returns:
        ``(evaluated_elements, proof)``.

    Raises:
        LocalProtocolError: a bad key (``BAD_KEY`` if ``pk`` is not ``sk``'s), or
            ``proof_random``.
        RemoteProtocolError: ``BAD_VALUE`` or ``BAD_ELEMENT`` for the batch.
    """
    key = _group.check_scalar(sk, "sk")
    public = _group.check_element(pk, "pk", local=True)
    if _group.base_mult(key) != public:
        raise LocalProtocolError("pk is not the public key of sk", code=ErrorCode.BAD_KEY)
    r = _proof_random(proof_random)
    blinded = check_batch(blinded_elements, "blinded elements", local=False)
    evaluated = [_group.mult(key, element) for element in blinded]
    return evaluated, _proof.generate_proof(key, public, blinded, evaluated, r=r, mode=MODE_VOPRF)


def verify_proof(
    pk: bytes,
    blinded_elements: Sequence[bytes],
    evaluated_elements: Sequence[bytes],
    proof: bytes,
    *,
    mode: int = MODE_VOPRF,
) -> None:
    """RFC 9497 §2.2.2 VerifyProof: ``evaluated[i] = k * blinded[i]`` for the ``k`` of ``pk``.

    Raises:
        LocalProtocolError: our own blinded elements are invalid.
        RemoteProtocolError: ``BAD_ELEMENT`` or ``BAD_VALUE`` (including a count
            different from the blinded elements') for ``pk`` or the evaluated elements;
            ``BAD_PROOF`` if the proof does not verify.
    """
    blinded = check_batch(blinded_elements, "blinded elements", local=True)
    evaluated = check_batch(evaluated_elements, "evaluated elements", local=False)
    if len(evaluated) != len(blinded):
        raise RemoteProtocolError(
            "not one evaluated element per blinded element", code=ErrorCode.BAD_VALUE
        )
    public = _group.check_element(pk, "pk")
    _proof.verify_proof(public, blinded, evaluated, proof, mode=mode)


def voprf_finalize(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated_elements: Sequence[bytes],
    blinded_elements: Sequence[bytes],
    pk: bytes,
    proof: bytes,
) -> list[bytes]:
    """RFC 9497 §3.3.2 Finalize, batched: verify the proof, then finalize each input.

    Raises:
        LocalProtocolError: ``inputs``, ``blinds`` and ``blinded_elements`` differ in
            count, or one of them is invalid.
        RemoteProtocolError: as :func:`verify_proof`.
    """
    if not len(inputs) == len(blinds) == len(blinded_elements):
        raise LocalProtocolError(
            "one input and one blind per blinded element", code=ErrorCode.BAD_VALUE
        )
    verify_proof(pk, blinded_elements, evaluated_elements, proof, mode=MODE_VOPRF)
    return [finalize(x, b, e) for x, b, e in zip(inputs, blinds, evaluated_elements, strict=True)]
