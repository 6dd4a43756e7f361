"""Properties: round trips, and "a decoder raises only ProtocolError" (STYLE §6, §12).

Each property runs a bounded number of examples so the suite stays fast; the exhaustive
single-bit-flip test is a plain loop, not hypothesis, so it always covers every bit.
The properties catch RemoteProtocolError only: anything else a decoder raises (KeyError,
a msgpack or nacl exception, even a LocalProtocolError) fails them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.public import PublicKey, SealedBox

import protocol
from protocol import (
    Entry,
    RemoteProtocolError,
    decode,
    encode,
    open_envelope,
    unseal,
    verify_entry,
    verify_fork_proof,
)

from .conftest import KEY, NET, NOW, OTHER_AUTHOR, OTHER_ENC_SECRET, allocation

FAST = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])

INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
LEAVES = st.none() | st.booleans() | INTS | st.text(max_size=20) | st.binary(max_size=20)
#: Any value of the profile (depth stays far below MAX_DEPTH at this size).
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)

#: Values outside the profile too: floats, ext types, non-str keys, unsorted maps. Packed
#: by plain msgpack, they reach the decoder's deeper checks, not just its first byte.
WILD_LEAVES = (
    LEAVES
    | st.floats(allow_nan=True)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))
)
WILD = st.recursive(
    WILD_LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=4) | st.integers(0, 3) | st.binary(max_size=2), children, max_size=4
        )
    ),
    max_leaves=15,
)


def same_structure(left: Any, right: Any) -> bool:
    """Equality that also tells True from 1 (Python's == does not)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_structure, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same_structure(left[k], right[k]) for k in left)
    return bool(left == right)


# --- the encoding profile -----------------------------------------------------------------


@FAST
@given(VALUES)
def test_encode_decode_round_trip(value: Any) -> None:
    data = encode(value)
    decoded = decode(data)
    assert decoded == value
    assert same_structure(decoded, _sorted(value))
    assert encode(decoded) == data


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


@FAST
@given(VALUES)
def test_encoding_is_independent_of_insertion_order(value: Any) -> None:
    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {key: reverse(v[key]) for key in reversed(list(v))}
        if isinstance(v, list):
            return [reverse(item) for item in v]
        return v

    assert encode(reverse(value)) == encode(value)


@FAST
@given(st.binary(max_size=64))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    try:
        value = decode(data)
    except RemoteProtocolError:
        return
    # Whatever the strict decoder accepts is the one encoding of its value.
    assert encode(value) == data


@FAST
@given(WILD)
def test_decode_any_msgpack(value: Any) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    try:
        decoded = decode(data)
    except RemoteProtocolError:
        return
    assert encode(decoded) == data


# --- entries ---------------------------------------------------------------------------------

ENTRY = protocol.append(None, allocation(), key=KEY, net=NET, now_ms=NOW)


def entry_or_none(wire: bytes) -> Entry | None:
    try:
        return verify_entry(wire, net=NET, now_ms=NOW)
    except RemoteProtocolError:
        return None


@FAST
@given(st.binary(max_size=600))
def test_verify_entry_arbitrary_bytes(data: bytes) -> None:
    assert entry_or_none(data) is None


MUTATION = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buffer = bytearray(data)
    for action, position, byte in mutations:
        index = position % (len(buffer) + 1)
        if action == "insert":
            buffer.insert(index, byte)
        elif not buffer:
            continue
        elif action == "replace":
            buffer[index % len(buffer)] = byte
        elif action == "delete":
            del buffer[index % len(buffer)]
        else:
            del buffer[index:]
    return bytes(buffer)


@MANY
@given(st.lists(MUTATION, min_size=1, max_size=4))
def test_verify_entry_mutated_wires(mutations: list[tuple[str, int, int]]) -> None:
    wire = mutate(ENTRY.wire, mutations)
    entry = entry_or_none(wire)
    # Only the original bytes can verify: the signature covers everything else.
    assert entry is None or wire == ENTRY.wire


def test_every_single_bit_flip_is_rejected() -> None:
    wire = ENTRY.wire
    codes = set()
    flips = 0
    for index in range(len(wire)):
        for bit in range(8):
            flipped = bytearray(wire)
            flipped[index] ^= 1 << bit
            with pytest.raises(RemoteProtocolError) as info:
                verify_entry(bytes(flipped), net=NET, now_ms=NOW)
            codes.add(info.value.code)
            flips += 1
    assert flips == len(wire) * 8 == 2912
    # Flips are caught at every layer, not only by the signature.
    assert {
        protocol.ErrorCode.BAD_SIGNATURE,
        protocol.ErrorCode.MALFORMED,
        protocol.ErrorCode.NON_CANONICAL,
        protocol.ErrorCode.UNKNOWN_FIELD,
        protocol.ErrorCode.WRONG_NET,
    } <= codes


# --- sealed messages and fork proofs ------------------------------------------------------

SEALED = protocol.seal(
    protocol.TextMessage(text="نص"),
    sender_key=KEY,
    to=OTHER_AUTHOR,
    recipient_enc_key=protocol.enc_public_key(OTHER_ENC_SECRET),
    net=NET,
    now_ms=NOW,
    ephemeral_secret=bytes(range(32)),
    nonce=bytes(16),
)


def unseal_or_none(data: bytes) -> protocol.Message | None:
    try:
        return unseal(
            data, net=NET, recipient=OTHER_AUTHOR, enc_secret=OTHER_ENC_SECRET, now_ms=NOW
        )
    except RemoteProtocolError:
        return None


def open_or_none(data: bytes) -> protocol.Envelope | None:
    try:
        return open_envelope(data, net=NET)
    except RemoteProtocolError:
        return None


@FAST
@given(st.binary(max_size=300))
def test_unseal_and_open_envelope_arbitrary_bytes(data: bytes) -> None:
    assert unseal_or_none(data) is None
    assert open_or_none(data) is None


@SLOW
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_unseal_mutated_envelopes(mutations: list[tuple[str, int, int]]) -> None:
    data = mutate(SEALED.envelope, mutations)
    message = unseal_or_none(data)
    assert message is None or data == SEALED.envelope
    envelope = open_or_none(data)
    if envelope is not None:
        assert envelope.wire == data


@SLOW
@given(WILD)
def test_unseal_any_msgpack_inner(value: Any) -> None:
    # Hostile content inside a genuinely sealed box: only the decoders stand in the way.
    inner = msgpack.packb(value, use_bin_type=True)
    box = seal_box(inner)
    envelope = encode(
        {"box": box, "id": hashlib.sha256(inner).digest(), "net": NET, "to": OTHER_AUTHOR, "v": 1}
    )
    assert unseal_or_none(envelope) is None


def seal_box(inner: bytes) -> bytes:
    return SealedBox(PublicKey(protocol.enc_public_key(OTHER_ENC_SECRET))).encrypt(inner)


_ONE = protocol.append(None, allocation(quantity=1), key=KEY, net=NET, now_ms=NOW)
PROOF = protocol.make_fork_proof(ENTRY, _ONE).to_bytes()


def proof_or_none(data: bytes) -> protocol.ForkProof | None:
    try:
        return verify_fork_proof(data, net=NET)
    except RemoteProtocolError:
        return None


@FAST
@given(st.binary(max_size=300))
def test_verify_fork_proof_arbitrary_bytes(data: bytes) -> None:
    assert proof_or_none(data) is None


@SLOW
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_verify_fork_proof_mutated(mutations: list[tuple[str, int, int]]) -> None:
    data = mutate(PROOF, mutations)
    assert proof_or_none(data) is None or data == PROOF
