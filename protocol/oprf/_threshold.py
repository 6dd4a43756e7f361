"""Threshold evaluation: the OPRF key split t-of-n among oracles (SPEC §13.3).

A dealer splits ``sk`` with Shamir's scheme over ``Z_L``: share ``i`` (1 .. n) is
``f(i)`` for ``f(x) = sk + a_1 x + ... + a_{t-1} x^{t-1}``. Each oracle evaluates the
client's blinded elements with its share and proves it with a DLEQ proof against its
published share key ``f(i) * G`` (VOPRF mode). Because ``sk * E = sum(lambda_i *
f(i) * E)`` for any ``t`` distinct indices, with ``lambda_i`` the Lagrange coefficients
at 0, the client combines ``t`` verified evaluations into exactly the element a single
server holding ``sk`` would have returned, then finalizes as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from .._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from . import _group
from ._oprf import check_batch, verify_proof, voprf_blind_evaluate
from ._proof import PROOF_BYTES

__all__ = [
    "MAX_SHARES",
    "Combined",
    "KeyShare",
    "ShareEvaluation",
    "combine",
    "evaluate_share",
    "lagrange_coefficients",
    "split_key",
]

#: Share indices are 1 .. 255: one byte, and far more oracles than a federation runs.
MAX_SHARES: Final = 255


def _is_index(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_SHARES


@dataclass(frozen=True, slots=True)
class KeyShare:
    """Share ``index`` of a split key: ``secret = f(index)``, a non-zero scalar."""

    index: int
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _is_index(self.index):
            raise LocalProtocolError("share index is 1 .. 255", code=ErrorCode.BAD_VALUE)
        _group.check_scalar(self.secret, "share secret")

    @property
    def public_key(self) -> bytes:
        """``secret * G``: what the dealer publishes as this share's key."""
        return _group.base_mult(self.secret)


@dataclass(frozen=True, slots=True)
class ShareEvaluation:
    """One oracle's answer: its share index, the evaluated elements and a 64-byte proof.

    Only the shape is checked here; :func:`combine` checks the elements and the proof.
    """

    index: int
    evaluated_elements: tuple[bytes, ...]
    proof: bytes

    def __post_init__(self) -> None:
        shaped = (
            type(self.evaluated_elements) is tuple
            and all(type(e) is bytes for e in self.evaluated_elements)
            and type(self.proof) is bytes
            and len(self.proof) == PROOF_BYTES
        )
        if not _is_index(self.index) or not shaped:
            raise RemoteProtocolError(
                "a share evaluation is an index 1 .. 255, a tuple of bytes and a 64-byte proof",
                code=ErrorCode.BAD_VALUE,
            )


@dataclass(frozen=True, slots=True)
class Combined:
    """The result of :func:`combine`.

    Attributes:
        evaluated_elements: ``sk * blinded[i]`` for each blinded element, ready for
            :func:`finalize`.
        used: the share indices combined, ascending.
        rejected: share index → why its evaluation was refused.
    """

    evaluated_elements: tuple[bytes, ...]
    used: tuple[int, ...]
    rejected: Mapping[int, ErrorCode]


def _polynomial(coefficients: Sequence[int], x: int) -> int:
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % _group.L
    return result


def split_key(
    sk: bytes, *, threshold: int, shares: int, coefficients: Sequence[bytes]
) -> list[KeyShare]:
    """Shamir-split ``sk`` into ``shares`` shares, any ``threshold`` of which evaluate.

    Args:
        sk: the OPRF secret key (32-byte scalar).
        threshold: 2 .. ``shares``; ``shares``: at most 255.
        coefficients: ``threshold - 1`` strings of 64 random bytes from the caller's
            RNG (each reduced mod L), so that this function stays pure. They, and
            ``sk``, must be erased once the shares are handed out.

    Returns:
        Shares with indices 1 .. ``shares``.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` or ``BAD_SCALAR``.
    """
    secret = _group.scalar_to_int(_group.check_scalar(sk, "sk"))
    if type(threshold) is not int or type(shares) is not int:
        raise LocalProtocolError("threshold and shares are ints", code=ErrorCode.BAD_VALUE)
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise LocalProtocolError("need 2 <= threshold <= shares <= 255", code=ErrorCode.BAD_VALUE)
    if len(coefficients) != threshold - 1:
        raise LocalProtocolError("need threshold - 1 coefficients", code=ErrorCode.BAD_VALUE)
    poly = [secret]
    for i, wide in enumerate(coefficients):
        poly.append(_group.scalar_to_int(_group.check_scalar(_wide(wide), f"coefficient {i}")))
    return [
        KeyShare(index=x, secret=_group.int_to_scalar(_polynomial(poly, x)))
        for x in range(1, shares + 1)
    ]


def _wide(data: bytes) -> bytes:
    if type(data) is not bytes or len(data) != 64:
        raise LocalProtocolError("a coefficient is 64 random bytes", code=ErrorCode.BAD_VALUE)
    return _group.scalar_reduce(data)


def lagrange_coefficients(indices: Sequence[int]) -> dict[int, bytes]:
    """``lambda_i = prod_{j != i} j / (j - i)`` mod L: the Lagrange coefficients at 0.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` for no indices, a repeated one, or one
            outside 1 .. 255.
    """
    if not indices or len(set(indices)) != len(indices) or not all(map(_is_index, indices)):
        raise LocalProtocolError("indices: distinct, each 1 .. 255", code=ErrorCode.BAD_VALUE)
    out = {}
    for i in indices:
        num, den = 1, 1
        for j in indices:
            if j != i:
                num, den = num * j % _group.L, den * (j - i) % _group.L
        out[i] = _group.int_to_scalar(num * pow(den, -1, _group.L))
    return out


def evaluate_share(
    share: KeyShare, blinded_elements: Sequence[bytes], *, proof_random: bytes
) -> ShareEvaluation:
    """What oracle ``share.index`` returns: the batch under its share, with its proof.

    Raises:
        LocalProtocolError: bad ``proof_random``.
        RemoteProtocolError: ``BAD_VALUE`` or ``BAD_ELEMENT`` for the batch.
    """
    evaluated, proof = voprf_blind_evaluate(
        share.secret, share.public_key, blinded_elements, proof_random=proof_random
    )
    return ShareEvaluation(index=share.index, evaluated_elements=tuple(evaluated), proof=proof)


def _check_one(
    evaluation: ShareEvaluation, share_keys: Mapping[int, bytes], blinded: Sequence[bytes]
) -> ErrorCode | None:
    """Why ``evaluation`` is unusable, or None if its proof verifies."""
    if evaluation.index not in share_keys:
        return ErrorCode.BAD_VALUE
    try:
        verify_proof(
            share_keys[evaluation.index], blinded, evaluation.evaluated_elements, evaluation.proof
        )
    except RemoteProtocolError as exc:
        return exc.code
    return None


def _interpolate(chosen: Sequence[ShareEvaluation], count: int) -> tuple[bytes, ...]:
    weights = lagrange_coefficients([e.index for e in chosen])
    out = []
    for k in range(count):
        total = _group.mult(weights[chosen[0].index], chosen[0].evaluated_elements[k])
        for evaluation in chosen[1:]:
            term = _group.mult(weights[evaluation.index], evaluation.evaluated_elements[k])
            total = _group.add(total, term)
        out.append(total)
    return tuple(out)


def combine(
    evaluations: Sequence[ShareEvaluation],
    *,
    share_keys: Mapping[int, bytes],
    blinded_elements: Sequence[bytes],
    threshold: int,
) -> Combined:
    """Verify the oracles' evaluations and combine ``threshold`` of them.

    Each evaluation's proof is checked against ``share_keys[index]`` (VOPRF mode). One
    whose index is unknown or appears more than once (``BAD_VALUE``, all of that
    index's), whose element count differs from the batch (``BAD_VALUE``), or whose
    elements (``BAD_ELEMENT``) or proof (``BAD_PROOF``) are bad goes to ``rejected``.
    Of the valid ones, the ``threshold`` lowest indices are combined, so the choice
    does not depend on the order answers arrived in.

    Args:
        evaluations: the oracles' answers, in any order.
        share_keys: share index → public key, from the published configuration.
        blinded_elements: the batch every oracle was sent.
        threshold: how many evaluations to combine (the configured ``t``).

    Raises:
        LocalProtocolError: ``BAD_VALUE`` for our own arguments.
        RemoteProtocolError: ``TOO_FEW_SHARES`` if fewer than ``threshold`` are valid.
    """
    if type(threshold) is not int or not 2 <= threshold <= MAX_SHARES:
        raise LocalProtocolError("threshold is 2 .. 255", code=ErrorCode.BAD_VALUE)
    blinded = check_batch(blinded_elements, "blinded elements", local=True)
    counts = Counter(e.index for e in evaluations)
    rejected: dict[int, ErrorCode] = {i: ErrorCode.BAD_VALUE for i, n in counts.items() if n > 1}
    valid = []
    for evaluation in sorted(evaluations, key=lambda e: e.index):
        if evaluation.index in rejected:
            continue
        code = _check_one(evaluation, share_keys, blinded)
        if code is None:
            valid.append(evaluation)
        else:
            rejected[evaluation.index] = code
    if len(valid) < threshold:
        refused = ", ".join(f"{i}: {c.value}" for i, c in sorted(rejected.items())) or "none"
        raise RemoteProtocolError(
            f"{len(valid)} valid share evaluations, {threshold} needed; rejected: {refused}",
            code=ErrorCode.TOO_FEW_SHARES,
        )
    chosen = valid[:threshold]
    return Combined(
        evaluated_elements=_interpolate(chosen, len(blinded)),
        used=tuple(e.index for e in chosen),
        rejected=MappingProxyType(rejected),
    )
