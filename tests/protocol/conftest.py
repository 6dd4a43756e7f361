"""Shared fixed inputs for the protocol tests: keys from fixed seeds, one net, one clock.

Everything here is deterministic, so every byte a test produces is the same on every
run. Helpers that build *hostile* bytes (payloads the library itself refuses to sign)
live here too, so each test module states only what it breaks.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack
import pytest

import protocol
from protocol import SigningKey

#: The federation id every test entry belongs to.
NET = hashlib.sha256(b"watan test federation").digest()
#: Another federation, for WRONG_NET.
OTHER_NET = hashlib.sha256(b"another federation").digest()
#: The verifier's clock: 2026-05-28T20:26:40Z.
NOW = 1_780_000_000_000

KEY = protocol.signing_key(bytes(range(32)))
OTHER_KEY = protocol.signing_key(bytes(range(32, 64)))
THIRD_KEY = protocol.signing_key(bytes(range(64, 96)))
AUTHOR = protocol.public_key(KEY)
OTHER_AUTHOR = protocol.public_key(OTHER_KEY)

#: X25519 secrets for sealed messages (fixed, like the signing seeds).
ENC_SECRET = bytes(range(100, 132))
OTHER_ENC_SECRET = bytes(range(140, 172))
THIRD_ENC_SECRET = bytes(range(180, 212))

PSEUDONYM = hashlib.sha256(b"household 17").digest()

#: Valid content for every kind this version defines, by kind name. key_rotate needs a
#: signature over its place in a feed, so tests build it with ``protocol.rotate_key``.
ALLOCATION_CONTENT: dict[str, Any] = {
    "category": "food",
    "date": "2026-03-15",
    "district": "IQG08Q05",
    "epoch": 3,
    "program": "winter-2026",
    "pseudonym": PSEUDONYM,
    "quantity": 2,
    "unit": "basket",
    "value_iqd": 150_000,
}
PROFILE_CONTENT: dict[str, Any] = {
    "enc_key": protocol.enc_public_key(ENC_SECRET),
    "endpoints": ["https://hope.example.iq/watan"],
    "governorate": "IQG09",
    "name_ar": "منظمة الأمل",
    "name_en": "Hope Organisation",
    "registration": "1234/B-56",
    "role": "ngo",
    "sectors": ["food_security", "health"],
}
VOUCH_CONTENT: dict[str, Any] = {"peer": OTHER_AUTHOR, "stance": "vouch"}
ORACLE_CONFIG_CONTENT: dict[str, Any] = {
    "epoch": 1,
    "keys": [hashlib.sha256(b"share key %d" % i).digest() for i in (1, 2, 3)],
    "oracles": [hashlib.sha256(b"oracle %d" % i).digest() for i in (1, 2, 3)],
    "suite": "ristretto255-SHA512",
    "threshold": 2,
}
ORACLE_USAGE_CONTENT: dict[str, Any] = {
    "counts": [120, 7],
    "date": "2026-11-22",
    "epoch": 1,
    "requesters": sorted(hashlib.sha256(b"requester %d" % i).digest() for i in (1, 2)),
}
CHECKPOINT_CONTENT: dict[str, Any] = {
    "author": OTHER_AUTHOR,
    "id": hashlib.sha256(b"some entry").digest(),
    "seq": 42,
}
VOID_CONTENT: dict[str, Any] = {
    "allocation": hashlib.sha256(b"an allocation").digest(),
    "reason": "entered_in_error",
}


def allocation(**changes: Any) -> protocol.Allocation:
    return protocol.Allocation(**{**ALLOCATION_CONTENT, **changes})


def payload_fields(**changes: Any) -> dict[str, Any]:
    """The fields of a valid seq-1 allocation payload, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "author": AUTHOR,
        "content": dict(ALLOCATION_CONTENT),
        "kind": "ataa.allocation/1",
        "net": NET,
        "prev": None,
        "seq": 1,
        "ts": NOW,
        "v": 1,
    }
    fields.update(changes)
    return fields


def pack(value: Any) -> bytes:
    """Plain msgpack, in the order given: how a careless or hostile peer encodes."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def pack_map(pairs: Iterable[tuple[str, Any]]) -> bytes:
    """A msgpack map from pairs exactly as given (duplicates and order kept)."""
    items = list(pairs)
    assert len(items) < 16
    return bytes([0x80 | len(items)]) + b"".join(pack(k) + pack(v) for k, v in items)


def sign_payload(payload: bytes, key: SigningKey = KEY) -> bytes:
    """An entry wire for arbitrary payload bytes, signed as the protocol signs."""
    sig = key.sign(protocol.ENTRY_TAG + payload).signature
    return pack([payload, sig])


def entry_wire(key: SigningKey = KEY, **changes: Any) -> bytes:
    """A signed wire of :func:`payload_fields` encoded as given (not canonicalised)."""
    return sign_payload(pack(payload_fields(**changes)), key)


@contextlib.contextmanager
def raises_code(
    exc_type: type[protocol.ProtocolError], code: protocol.ErrorCode
) -> Iterator[pytest.ExceptionInfo[protocol.ProtocolError]]:
    """``pytest.raises`` that also checks the error code, exactly."""
    with pytest.raises(exc_type) as info:
        yield info
    assert info.value.code is code, f"expected {code}, got {info.value!r}"


@pytest.fixture
def alloc_entry() -> protocol.Entry:
    return protocol.append(None, allocation(), key=KEY, net=NET, now_ms=NOW)


@pytest.fixture
def feed() -> list[protocol.Entry]:
    """Five entries of one feed, each a second after the last."""
    entries: list[protocol.Entry] = []
    head = None
    for index in range(5):
        entry = protocol.append(
            head, allocation(quantity=index + 1), key=KEY, net=NET, now_ms=NOW + index * 1000
        )
        entries.append(entry)
        head = protocol.head_after(head, entry)
    return entries
