"""Entries (SPEC §3) and the schemas of the kinds they carry (SPEC §5).

Hostile entries are signed by hand (``conftest.sign_payload``): the library refuses to
create them, and a peer's bad entry usually carries a good signature.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import msgpack
import pytest

import protocol
from protocol import (
    ENTRY_KINDS,
    ENTRY_TAG,
    MAX_CLOCK_SKEW_MS,
    MAX_ENTRY_BYTES,
    MAX_SEQ,
    MAX_TS,
    MIN_TS,
    Allocation,
    AllocationVoid,
    Body,
    Checkpoint,
    Entry,
    ErrorCode,
    KeyRotate,
    LocalProtocolError,
    OracleConfig,
    OracleUsage,
    Profile,
    RemoteProtocolError,
    Vouch,
    append,
    create_entry,
    verify_entry,
)

from .conftest import (
    ALLOCATION_CONTENT,
    AUTHOR,
    CHECKPOINT_CONTENT,
    KEY,
    NET,
    NOW,
    ORACLE_CONFIG_CONTENT,
    ORACLE_USAGE_CONTENT,
    OTHER_KEY,
    OTHER_NET,
    PROFILE_CONTENT,
    PSEUDONYM,
    VOID_CONTENT,
    VOUCH_CONTENT,
    allocation,
    entry_wire,
    pack,
    pack_map,
    payload_fields,
    raises_code,
    sign_payload,
)

BODIES: dict[str, Body] = {
    "ataa.allocation/1": Allocation(**ALLOCATION_CONTENT),
    "ataa.allocation_void/1": AllocationVoid(**VOID_CONTENT),
    "node.checkpoint/1": Checkpoint(**CHECKPOINT_CONTENT),
    "node.profile/1": Profile(**PROFILE_CONTENT),
    "node.vouch/1": Vouch(**VOUCH_CONTENT),
    "oracle.config/1": OracleConfig(**ORACLE_CONFIG_CONTENT),
    "oracle.usage/1": OracleUsage(**ORACLE_USAGE_CONTENT),
}


def rejected(wire: bytes, code: ErrorCode, *, now_ms: int | None = NOW) -> None:
    with raises_code(RemoteProtocolError, code):
        verify_entry(wire, net=NET, now_ms=now_ms)


def content_wire(content: Any, kind: str = "ataa.allocation/1", **changes: Any) -> bytes:
    return entry_wire(content=content, kind=kind, **changes)


# --- every kind, end to end -----------------------------------------------------------


def test_every_defined_kind_is_covered_here() -> None:
    assert set(ENTRY_KINDS) == {*BODIES, KeyRotate.KIND}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_create_and_verify_every_kind(kind: str) -> None:
    body = BODIES[kind]
    entry = create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=body)
    assert entry.kind == kind
    assert type(entry.body) is type(body)
    assert entry.body == body
    assert entry.content == body.to_content()
    assert entry.author == AUTHOR
    assert (entry.seq, entry.prev, entry.ts, entry.net) == (1, None, NOW, NET)
    assert entry.id == hashlib.sha256(entry.wire).digest()
    assert verify_entry(entry.wire, net=NET, now_ms=NOW) == entry
    # The same content given as a map with its kind makes the same bytes.
    again = create_entry(
        key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=body.to_content(), kind=kind
    )
    assert again.wire == entry.wire


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_append_every_kind_after_the_first(kind: str, alloc_entry: Entry) -> None:
    head = protocol.head_after(None, alloc_entry)
    entry = append(head, BODIES[kind], key=KEY, net=NET, now_ms=NOW + 1)
    assert (entry.seq, entry.prev, entry.ts) == (2, alloc_entry.id, NOW + 1)
    assert entry.body == BODIES[kind]
    assert verify_entry(entry.wire, net=NET, now_ms=NOW) == entry


def test_key_rotate_entry(alloc_entry: Entry) -> None:
    head = protocol.head_after(None, alloc_entry)
    entry = protocol.rotate_key(
        head, key=KEY, new_key=OTHER_KEY, net=NET, now_ms=NOW, reason="device_change"
    )
    assert entry.kind == "node.key_rotate/1"
    assert type(entry.body) is KeyRotate
    assert entry.body.new_key == protocol.public_key(OTHER_KEY)
    assert entry.body.reason == "device_change"
    assert verify_entry(entry.wire, net=NET, now_ms=NOW) == entry


#: SHA-256 of the allocation entry that KEY, NET and NOW give (a fixed vector).
EXPECTED_ALLOCATION_ID = "a63610dcd227e6e88823aba77a3cfce38cf3cdb91ae37c7d83488d5e7ea04a32"


@pytest.mark.parametrize("pad", [0, 100, 300, 60_000], ids=["small", "bin8", "bin16", "large"])
def test_an_entry_pickles_to_itself_without_its_slices(pad: int) -> None:
    """Entries cross a pipe from a node's verifier workers: the round trip gives the
    very entry back, payload and signature sliced from the wire again, whichever
    header (bin8 or bin16) the wire has."""
    entry = create_entry(
        key=KEY, net=NET, seq=1, prev=None, ts=NOW, content={"pad": "x" * pad}, kind="test.pad/1"
    )
    assert (entry.wire[1] == 0xC4) == (len(entry.payload) < 256)
    again = pickle.loads(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(again) is Entry and again == entry
    assert again.payload == entry.payload and again.sig == entry.sig
    plain = pickle.dumps(tuple(entry), protocol=pickle.HIGHEST_PROTOCOL)
    assert len(pickle.dumps(entry)) < len(plain) - len(entry.payload)


def test_entry_bytes_follow_the_spec_layout(alloc_entry: Entry) -> None:
    content = (
        b"\x89"
        + b"\xa8category\xa4food"
        + b"\xa4date\xaa2026-03-15"
        + b"\xa8district\xa8IQG08Q05"
        + b"\xa5epoch\x03"
        + b"\xa7program\xabwinter-2026"
        + b"\xa9pseudonym\xc4\x20"
        + PSEUDONYM
        + b"\xa8quantity\x02"
        + b"\xa4unit\xa6basket"
        + b"\xa9value_iqd\xce\x00\x02\x49\xf0"
    )
    payload = (
        b"\x88"
        + b"\xa6author\xc4\x20"
        + AUTHOR
        + b"\xa7content"
        + content
        + b"\xa4kind\xb1ataa.allocation/1"
        + b"\xa3net\xc4\x20"
        + NET
        + b"\xa4prev\xc0"
        + b"\xa3seq\x01"
        + b"\xa2ts\xcf"
        + NOW.to_bytes(8, "big")
        + b"\xa1v\x01"
    )
    sig = KEY.sign(ENTRY_TAG + payload).signature
    assert alloc_entry.payload == payload
    assert alloc_entry.sig == sig
    assert alloc_entry.wire == b"\x92\xc5" + len(payload).to_bytes(2, "big") + payload + (
        b"\xc4\x40" + sig
    )
    # Ed25519 is deterministic: this id is a fixed vector for these seeds.
    assert alloc_entry.id.hex() == hashlib.sha256(alloc_entry.wire).hexdigest()
    assert alloc_entry.id.hex() == EXPECTED_ALLOCATION_ID


def test_short_payload_uses_bin8_header() -> None:
    entry = create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content={}, kind="x.y/1")
    assert len(entry.payload) < 256
    assert entry.wire[:3] == b"\x92\xc4" + bytes([len(entry.payload)])
    assert verify_entry(entry.wire, net=NET, now_ms=NOW) == entry


def test_verify_accepts_bytes_like(alloc_entry: Entry) -> None:
    for wire in (bytearray(alloc_entry.wire), memoryview(alloc_entry.wire)):
        assert verify_entry(wire, net=NET, now_ms=NOW) == alloc_entry  # type: ignore[arg-type]


def test_create_entry_kind_must_match_body() -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        create_entry(
            key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=allocation(), kind="node.vouch/1"
        )
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=ALLOCATION_CONTENT)
    same = create_entry(
        key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=allocation(), kind="ataa.allocation/1"
    )
    assert same.kind == "ataa.allocation/1"


# --- unknown kinds are opaque, but still obey the profile -------------------------------

OPAQUE = "future.thing/3"


def test_unknown_kind_is_carried_opaque() -> None:
    content = {"anything": [1, b"\x00", {"nested": None}], "count": -5, "ok": True}
    entry = create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=content, kind=OPAQUE)
    assert entry.kind == OPAQUE
    assert entry.body is None
    assert entry.content == content
    assert verify_entry(entry.wire, net=NET, now_ms=NOW) == entry
    assert verify_entry(content_wire(content, OPAQUE), net=NET, now_ms=NOW).content == content


def test_opaque_content_with_a_float_is_forbidden() -> None:
    rejected(content_wire({"x": 1.5}, OPAQUE), ErrorCode.FORBIDDEN_TYPE)
    rejected(content_wire({"x": [[{"y": 0.0}]]}, OPAQUE), ErrorCode.FORBIDDEN_TYPE)
    with raises_code(LocalProtocolError, ErrorCode.FORBIDDEN_TYPE):
        create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content={"x": 1.5}, kind=OPAQUE)


def test_opaque_content_with_a_float32_is_forbidden() -> None:
    content = b"\x81\xa1x\xca\x3f\xc0\x00\x00"  # {"x": float32 1.5}
    fields = payload_fields(kind=OPAQUE, content={"x": 0})
    raw = pack(fields).replace(b"\xa7content\x81\xa1x\x00", b"\xa7content" + content)
    assert content in raw
    rejected(sign_payload(raw), ErrorCode.FORBIDDEN_TYPE)


def test_opaque_content_with_ext_or_non_str_key_is_forbidden() -> None:
    rejected(content_wire({"x": msgpack.ExtType(5, b"abc")}, OPAQUE), ErrorCode.FORBIDDEN_TYPE)
    rejected(content_wire({"x": [msgpack.ExtType(1, b"")]}, OPAQUE), ErrorCode.FORBIDDEN_TYPE)
    rejected(content_wire({1: "x"}, OPAQUE), ErrorCode.FORBIDDEN_TYPE)
    rejected(content_wire({"x": {b"k": 1}}, OPAQUE), ErrorCode.FORBIDDEN_TYPE)


def test_opaque_content_with_unsorted_keys_is_non_canonical() -> None:
    rejected(content_wire({"b": 1, "a": 2}, OPAQUE), ErrorCode.NON_CANONICAL)
    rejected(content_wire({"a": {"z": 1, "y": 2}}, OPAQUE), ErrorCode.NON_CANONICAL)
    rejected(content_wire({"a": [{"z": 1, "y": 2}]}, OPAQUE), ErrorCode.NON_CANONICAL)


def test_opaque_content_with_duplicate_keys() -> None:
    content = pack_map([("a", 1), ("a", 2)])
    raw = pack(payload_fields(kind=OPAQUE, content={"a": 0}))
    raw = raw.replace(b"\xa7content\x81\xa1a\x00", b"\xa7content" + content)
    rejected(sign_payload(raw), ErrorCode.DUPLICATE_KEY)


def nest(levels: int) -> Any:
    value: Any = None
    for _ in range(levels):
        value = [value]
    return value


def test_opaque_content_depth() -> None:
    # The payload map is depth 1 and content depth 2; 14 arrays inside reach 16.
    ok = content_wire({"x": nest(14)}, OPAQUE)
    assert verify_entry(ok, net=NET, now_ms=NOW).content == {"x": nest(14)}
    rejected(content_wire({"x": nest(15)}, OPAQUE), ErrorCode.TOO_DEEP)
    # Deeper than msgpack's own stack: built by hand (no packer goes there).
    raw = pack(payload_fields(kind=OPAQUE, content={"x": None}))
    deep = raw.replace(
        b"\xa7content\x81\xa1x\xc0", b"\xa7content\x81\xa1x" + b"\x91" * 2000 + b"\xc0"
    )
    assert len(deep) == len(raw) + 2000
    rejected(sign_payload(deep), ErrorCode.TOO_DEEP)
    with raises_code(LocalProtocolError, ErrorCode.TOO_DEEP):
        create_entry(
            key=KEY, net=NET, seq=1, prev=None, ts=NOW, content={"x": nest(15)}, kind=OPAQUE
        )


def test_opaque_content_item_limit() -> None:
    ok = content_wire({"x": [0] * protocol.MAX_ITEMS}, OPAQUE)
    assert len(verify_entry(ok, net=NET, now_ms=NOW).content["x"]) == protocol.MAX_ITEMS
    rejected(content_wire({"x": [0] * (protocol.MAX_ITEMS + 1)}, OPAQUE), ErrorCode.TOO_MANY_ITEMS)


BAD_KIND_NAMES = [
    "future.thing",  # no version
    "thing/1",  # one part
    "Future.thing/1",  # upper case
    "future.Thing/1",
    "future.thing/0",  # version 0
    "future.thing/01",  # leading zero
    "future.thing/1234567",  # 7 digits
    "future..thing/1",
    ".future.thing/1",
    "future.thing/1 ",
    " future.thing/1",
    "future.thing/1\n",
    "1future.thing/1",
    "future.th-ing/1",
    "fütüre.thing/1",
    "",
    "a." + "b" * 61 + "/1",  # 65 bytes
]


@pytest.mark.parametrize("kind", BAD_KIND_NAMES)
def test_bad_kind_names(kind: str) -> None:
    rejected(content_wire({}, kind), ErrorCode.BAD_KIND)
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content={}, kind=kind)


def test_longest_kind_name_passes() -> None:
    kind = "a." + "b" * 60 + "/1"
    assert len(kind) == 64
    assert verify_entry(content_wire({}, kind), net=NET, now_ms=NOW).kind == kind


def test_kind_must_be_a_str() -> None:
    rejected(content_wire({}, kind=b"x.y/1"), ErrorCode.WRONG_TYPE)  # type: ignore[arg-type]
    rejected(entry_wire(kind=5), ErrorCode.WRONG_TYPE)
    rejected(entry_wire(kind=None), ErrorCode.WRONG_TYPE)


# --- payload rules --------------------------------------------------------------------


def test_reference_wire_is_valid() -> None:
    # The hand-signed baseline every following test breaks in exactly one way.
    entry = verify_entry(entry_wire(), net=NET, now_ms=NOW)
    assert entry.body == allocation()


@pytest.mark.parametrize(
    ("v", "code"),
    [
        (2, ErrorCode.UNSUPPORTED_VERSION),
        (0, ErrorCode.UNSUPPORTED_VERSION),
        (-1, ErrorCode.UNSUPPORTED_VERSION),
        ("1", ErrorCode.WRONG_TYPE),
        (True, ErrorCode.WRONG_TYPE),
        (None, ErrorCode.WRONG_TYPE),
        (1.0, ErrorCode.FORBIDDEN_TYPE),
    ],
)
def test_version(v: object, code: ErrorCode) -> None:
    rejected(entry_wire(v=v), code)


def test_wrong_net(alloc_entry: Entry) -> None:
    rejected(entry_wire(net=OTHER_NET), ErrorCode.WRONG_NET)
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_NET):
        verify_entry(alloc_entry.wire, net=OTHER_NET, now_ms=NOW)
    rejected(entry_wire(net=NET.hex()), ErrorCode.WRONG_TYPE)
    rejected(entry_wire(net=NET[:31]), ErrorCode.BAD_VALUE)
    # Even a verifier configured with the same short net refuses it: a net is 32 bytes.
    with raises_code(RemoteProtocolError, ErrorCode.BAD_VALUE):
        verify_entry(entry_wire(net=NET[:31]), net=NET[:31], now_ms=NOW)


@pytest.mark.parametrize("index", [0, 31, 63])
def test_flipped_signature_byte(alloc_entry: Entry, index: int) -> None:
    sig = bytearray(alloc_entry.sig)
    sig[index] ^= 0x01
    wire = alloc_entry.wire[:-64] + bytes(sig)
    rejected(wire, ErrorCode.BAD_SIGNATURE)


def test_flipped_payload_byte_breaks_the_signature(alloc_entry: Entry) -> None:
    # The last content byte of value_iqd: still a valid payload, no longer the signed one.
    wire = bytearray(alloc_entry.wire)
    position = alloc_entry.wire.index(b"\xa9value_iqd") + 14
    wire[position] ^= 0x01
    rejected(bytes(wire), ErrorCode.BAD_SIGNATURE)


def test_signature_by_another_key() -> None:
    rejected(entry_wire(key=OTHER_KEY), ErrorCode.BAD_SIGNATURE)


def test_signature_without_the_domain_tag() -> None:
    payload = pack(payload_fields())
    wire = pack([payload, KEY.sign(payload).signature])
    rejected(wire, ErrorCode.BAD_SIGNATURE)


def test_signature_is_checked_before_content() -> None:
    bad_content = {**ALLOCATION_CONTENT, "category": "cars"}
    rejected(entry_wire(key=OTHER_KEY, content=bad_content), ErrorCode.BAD_SIGNATURE)
    rejected(entry_wire(content=bad_content), ErrorCode.BAD_VALUE)


def test_signature_shape() -> None:
    payload = pack(payload_fields())
    sig = KEY.sign(ENTRY_TAG + payload).signature
    rejected(pack([payload, sig[:63]]), ErrorCode.BAD_VALUE)
    rejected(pack([payload, sig + b"\x00"]), ErrorCode.BAD_VALUE)
    rejected(pack([payload, sig.hex()]), ErrorCode.WRONG_TYPE)
    rejected(pack([payload.hex(), sig]), ErrorCode.WRONG_TYPE)
    rejected(pack([payload, sig, b""]), ErrorCode.MALFORMED)
    rejected(pack([payload]), ErrorCode.MALFORMED)
    rejected(pack({"payload": payload, "sig": sig}), ErrorCode.MALFORMED)
    rejected(pack(payload), ErrorCode.MALFORMED)


@pytest.mark.parametrize(
    ("seq", "code"),
    [
        (0, ErrorCode.BAD_VALUE),
        (-1, ErrorCode.BAD_VALUE),
        (MAX_SEQ + 1, ErrorCode.BAD_VALUE),
        (2**64 - 1, ErrorCode.BAD_VALUE),
        ("1", ErrorCode.WRONG_TYPE),
        (None, ErrorCode.WRONG_TYPE),
    ],
)
def test_seq(seq: object, code: ErrorCode) -> None:
    rejected(entry_wire(seq=seq), code)


def test_largest_seq_passes() -> None:
    entry = verify_entry(entry_wire(seq=MAX_SEQ, prev=bytes(32)), net=NET, now_ms=NOW)
    assert entry.seq == MAX_SEQ


def test_prev() -> None:
    rejected(entry_wire(seq=2, prev=None), ErrorCode.BAD_PREV)
    rejected(entry_wire(seq=1, prev=bytes(32)), ErrorCode.BAD_PREV)
    rejected(entry_wire(seq=2, prev=bytes(31)), ErrorCode.BAD_VALUE)
    rejected(entry_wire(seq=2, prev="00" * 32), ErrorCode.WRONG_TYPE)
    entry = verify_entry(entry_wire(seq=2, prev=b"\x01" * 32), net=NET, now_ms=NOW)
    assert entry.prev == b"\x01" * 32


def test_ts_range() -> None:
    rejected(entry_wire(ts=MIN_TS - 1), ErrorCode.BAD_VALUE)
    rejected(entry_wire(ts=0), ErrorCode.BAD_VALUE)
    rejected(entry_wire(ts=-1), ErrorCode.BAD_VALUE)
    rejected(entry_wire(ts=MAX_TS + 1), ErrorCode.BAD_VALUE, now_ms=None)
    rejected(entry_wire(ts=str(NOW)), ErrorCode.WRONG_TYPE)
    assert verify_entry(entry_wire(ts=MIN_TS), net=NET, now_ms=NOW).ts == MIN_TS
    assert verify_entry(entry_wire(ts=MAX_TS), net=NET, now_ms=None).ts == MAX_TS


def test_ts_in_the_future() -> None:
    limit = NOW + MAX_CLOCK_SKEW_MS
    assert verify_entry(entry_wire(ts=limit), net=NET, now_ms=NOW).ts == limit
    rejected(entry_wire(ts=limit + 1), ErrorCode.TS_IN_FUTURE)
    # Without a clock (evidence judged later) the check is skipped.
    assert verify_entry(entry_wire(ts=limit + 1), net=NET, now_ms=None).ts == limit + 1


def test_author() -> None:
    rejected(entry_wire(author=AUTHOR.hex()[:32]), ErrorCode.WRONG_TYPE)  # str/bin confusion
    rejected(entry_wire(author=AUTHOR[:31]), ErrorCode.BAD_VALUE)
    rejected(entry_wire(author=AUTHOR + b"\x00"), ErrorCode.BAD_VALUE)
    rejected(entry_wire(author=None), ErrorCode.WRONG_TYPE)


def test_content_must_be_a_map() -> None:
    rejected(entry_wire(content=[1]), ErrorCode.WRONG_TYPE)
    rejected(entry_wire(content=None), ErrorCode.WRONG_TYPE)
    rejected(entry_wire(content=1.5), ErrorCode.FORBIDDEN_TYPE)
    rejected(entry_wire(content=msgpack.ExtType(1, b"")), ErrorCode.FORBIDDEN_TYPE)
    rejected(entry_wire(content=[], kind=OPAQUE), ErrorCode.WRONG_TYPE)


def test_payload_fields_missing_or_extra() -> None:
    fields = payload_fields()
    del fields["ts"]
    rejected(sign_payload(pack(fields)), ErrorCode.MISSING_FIELD)
    rejected(sign_payload(pack({})), ErrorCode.MISSING_FIELD)
    rejected(sign_payload(pack({**payload_fields(), "x": 1})), ErrorCode.UNKNOWN_FIELD)
    fields = payload_fields()
    del fields["v"]
    rejected(sign_payload(pack({**fields, "version": 1})), ErrorCode.UNKNOWN_FIELD)


def test_payload_shape() -> None:
    rejected(sign_payload(pack(list(payload_fields().values()))), ErrorCode.WRONG_TYPE)
    rejected(sign_payload(b"\xc0"), ErrorCode.WRONG_TYPE)
    rejected(sign_payload(pack({**payload_fields(), 1: 1})), ErrorCode.FORBIDDEN_TYPE)
    rejected(sign_payload(b"\xc1"), ErrorCode.MALFORMED)
    rejected(sign_payload(pack(payload_fields()) + b"\x00"), ErrorCode.MALFORMED)
    rejected(sign_payload(pack(payload_fields())[:-1]), ErrorCode.MALFORMED)


def test_payload_keys_must_be_sorted() -> None:
    fields = payload_fields()
    swapped = dict(reversed(list(fields.items())))
    rejected(sign_payload(pack(swapped)), ErrorCode.NON_CANONICAL)


def test_payload_non_minimal_int() -> None:
    raw = pack(payload_fields())
    assert raw.count(b"\xa3seq\x01") == 1
    rejected(sign_payload(raw.replace(b"\xa3seq\x01", b"\xa3seq\xcc\x01")), ErrorCode.NON_CANONICAL)
    assert raw.count(b"\xa1v\x01") == 1
    rejected(sign_payload(raw.replace(b"\xa1v\x01", b"\xa1v\xd0\x01")), ErrorCode.NON_CANONICAL)


def test_payload_float32_where_an_int_was_expected() -> None:
    raw = pack(payload_fields(content={**ALLOCATION_CONTENT, "quantity": 2.0}))
    float64 = b"\xa8quantity\xcb\x40\x00\x00\x00\x00\x00\x00\x00"
    assert float64 in raw
    float32 = b"\xa8quantity\xca\x40\x00\x00\x00"
    rejected(sign_payload(raw), ErrorCode.FORBIDDEN_TYPE)
    rejected(sign_payload(raw.replace(float64, float32)), ErrorCode.FORBIDDEN_TYPE)


def test_payload_duplicate_keys() -> None:
    items = list(payload_fields().items())
    adjacent = pack_map([items[0], *items])
    rejected(sign_payload(adjacent), ErrorCode.DUPLICATE_KEY)
    at_end = pack_map([*items, items[0]])
    rejected(sign_payload(at_end), ErrorCode.DUPLICATE_KEY)
    # "content" twice, around "author": the strict decoder says DUPLICATE_KEY for
    # these bytes, and so must verify_entry.
    around = pack_map([items[1], items[0], *items[1:]])
    with raises_code(RemoteProtocolError, ErrorCode.DUPLICATE_KEY):
        protocol.decode(around)
    rejected(sign_payload(around), ErrorCode.DUPLICATE_KEY)
    # A duplicate with a different, invalid value: still a duplicate.
    twice_v = pack_map([*items, ("v", 1)])
    rejected(sign_payload(twice_v), ErrorCode.DUPLICATE_KEY)


def test_content_duplicate_keys() -> None:
    content = list(ALLOCATION_CONTENT.items())
    raw = pack(payload_fields(content={"a": 0}))
    for pairs in ([content[0], *content], [*content, content[-1]], [content[1], *content]):
        bad = raw.replace(b"\xa7content\x81\xa1a\x00", b"\xa7content" + pack_map(pairs))
        rejected(sign_payload(bad), ErrorCode.DUPLICATE_KEY)


def test_wire_encoding() -> None:
    payload = pack(payload_fields())
    sig = KEY.sign(ENTRY_TAG + payload).signature
    good = pack([payload, sig])
    assert verify_entry(good, net=NET, now_ms=NOW).payload == payload
    size = len(payload).to_bytes(2, "big")
    # array16 header, bin32 header for the payload, bin16 header for the sig
    rejected(b"\xdc\x00\x02\xc5" + size + payload + b"\xc4\x40" + sig, ErrorCode.NON_CANONICAL)
    rejected(b"\x92\xc6\x00\x00" + size + payload + b"\xc4\x40" + sig, ErrorCode.NON_CANONICAL)
    rejected(b"\x92\xc5" + size + payload + b"\xc5\x00\x40" + sig, ErrorCode.NON_CANONICAL)
    rejected(good + b"\x00", ErrorCode.MALFORMED)
    rejected(good[:-1], ErrorCode.MALFORMED)
    rejected(b"", ErrorCode.MALFORMED)


def test_oversize_wire() -> None:
    # 70,000 bytes of opaque content: refused on size alone, before decoding.
    wire = content_wire({"blob": bytes(70_000)}, OPAQUE)
    assert len(wire) > MAX_ENTRY_BYTES
    rejected(wire, ErrorCode.TOO_LARGE)
    rejected(b"\xc1" * (MAX_ENTRY_BYTES + 1), ErrorCode.TOO_LARGE)
    with raises_code(LocalProtocolError, ErrorCode.TOO_LARGE):
        create_entry(
            key=KEY, net=NET, seq=1, prev=None, ts=NOW, content={"blob": bytes(70_000)}, kind=OPAQUE
        )


def test_largest_wire_passes() -> None:
    # Find the blob size that makes the wire exactly MAX_ENTRY_BYTES.
    base = len(content_wire({"blob": bytes(60_000)}, OPAQUE))
    blob = bytes(60_000 + MAX_ENTRY_BYTES - base)
    wire = content_wire({"blob": blob}, OPAQUE)
    assert len(wire) == MAX_ENTRY_BYTES
    assert verify_entry(wire, net=NET, now_ms=NOW).content == {"blob": blob}
    rejected(content_wire({"blob": blob + b"\x00"}, OPAQUE), ErrorCode.TOO_LARGE)


# --- known kinds: content schemas --------------------------------------------------------

ALLOCATION_ERRORS: list[tuple[str, Any, ErrorCode]] = [
    ("category", "cars", ErrorCode.BAD_VALUE),
    ("category", "Food", ErrorCode.BAD_VALUE),
    ("category", 5, ErrorCode.WRONG_TYPE),
    ("category", b"food", ErrorCode.WRONG_TYPE),
    ("date", "2026-02-30", ErrorCode.BAD_VALUE),
    ("date", "2026-1-5", ErrorCode.BAD_VALUE),
    ("date", "2026-13-01", ErrorCode.BAD_VALUE),
    ("date", "2027-02-29", ErrorCode.BAD_VALUE),
    ("date", "1999-12-31", ErrorCode.BAD_VALUE),
    ("date", "2200-01-01", ErrorCode.BAD_VALUE),
    ("date", "2026-03-15T00:00", ErrorCode.BAD_VALUE),
    ("date", "20260315", ErrorCode.BAD_VALUE),
    ("date", "٢٠٢٦-٠٣-١٥", ErrorCode.BAD_VALUE),  # Arabic-Indic digits
    ("date", 20260315, ErrorCode.WRONG_TYPE),
    ("district", "IQG08Q5", ErrorCode.BAD_VALUE),
    ("district", "IQG08Q055", ErrorCode.BAD_VALUE),
    ("district", "IQD045", ErrorCode.BAD_VALUE),  # not an OCHA code
    ("district", "IQG20Q01", ErrorCode.BAD_VALUE),
    ("district", "iqd045", ErrorCode.BAD_VALUE),
    ("district", "IQG09", ErrorCode.BAD_VALUE),
    ("district", "IQG08Q05\n", ErrorCode.BAD_VALUE),
    ("district", 45, ErrorCode.WRONG_TYPE),
    ("epoch", 0, ErrorCode.BAD_VALUE),
    ("epoch", -1, ErrorCode.BAD_VALUE),
    ("epoch", 2**32, ErrorCode.BAD_VALUE),
    ("epoch", "3", ErrorCode.WRONG_TYPE),
    ("epoch", True, ErrorCode.WRONG_TYPE),
    ("program", "", ErrorCode.BAD_VALUE),
    ("program", "-winter", ErrorCode.BAD_VALUE),
    ("program", "a" * 65, ErrorCode.BAD_VALUE),
    ("program", "winter 2026", ErrorCode.BAD_VALUE),
    ("program", "برنامج", ErrorCode.BAD_VALUE),
    ("program", "9winter", ErrorCode.BAD_VALUE),  # starts with a letter
    ("program", "hh07901234567", ErrorCode.BAD_VALUE),  # a phone number smuggled in
    ("program", "id-1234567", ErrorCode.BAD_VALUE),  # 7 digits in a row
    ("program", ["winter"], ErrorCode.WRONG_TYPE),
    ("pseudonym", PSEUDONYM[:31], ErrorCode.BAD_VALUE),
    ("pseudonym", PSEUDONYM + b"\x00", ErrorCode.BAD_VALUE),
    ("pseudonym", b"", ErrorCode.BAD_VALUE),
    ("pseudonym", PSEUDONYM.hex(), ErrorCode.WRONG_TYPE),  # str/bin confusion
    ("quantity", 0, ErrorCode.BAD_VALUE),
    ("quantity", -2, ErrorCode.BAD_VALUE),
    ("quantity", 10**9 + 1, ErrorCode.BAD_VALUE),
    ("quantity", True, ErrorCode.WRONG_TYPE),  # bool where int expected
    ("quantity", "2", ErrorCode.WRONG_TYPE),
    ("quantity", 2.0, ErrorCode.FORBIDDEN_TYPE),
    ("unit", "tonne", ErrorCode.BAD_VALUE),
    ("unit", "", ErrorCode.BAD_VALUE),
    ("unit", {"kg": 1}, ErrorCode.WRONG_TYPE),
    ("value_iqd", -1, ErrorCode.BAD_VALUE),
    ("value_iqd", 10**12 + 1, ErrorCode.BAD_VALUE),
    ("value_iqd", False, ErrorCode.WRONG_TYPE),
    *[(name, None, ErrorCode.WRONG_TYPE) for name in sorted(ALLOCATION_CONTENT)],
]


@pytest.mark.parametrize(("field", "value", "code"), ALLOCATION_ERRORS)
def test_allocation_field_errors(field: str, value: Any, code: ErrorCode) -> None:
    # Building the body refuses it (we are about to send it) ...
    with raises_code(LocalProtocolError, code):
        allocation(**{field: value})
    with raises_code(LocalProtocolError, code):
        append(
            None,
            {**ALLOCATION_CONTENT, field: value},
            key=KEY,
            net=NET,
            now_ms=NOW,
            kind=Allocation.KIND,
        )
    # ... and a peer's entry carrying it is refused too.
    rejected(content_wire({**ALLOCATION_CONTENT, field: value}), code)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date", "2000-01-01"),
        ("date", "2199-12-31"),
        ("date", "2028-02-29"),
        ("epoch", 2**32 - 1),
        ("program", "a" * 64),
        ("program", "A.b_c-9"),
        ("program", "winter-123456-2026"),  # 6 digits in a row
        ("quantity", 10**9),
        ("quantity", 1),
        ("value_iqd", 0),
        ("value_iqd", 10**12),
    ],
)
def test_allocation_boundaries_pass(field: str, value: Any) -> None:
    content = {**ALLOCATION_CONTENT, field: value}
    entry = verify_entry(content_wire(content), net=NET, now_ms=NOW)
    assert entry.body == allocation(**{field: value})


def test_allocation_content_keys() -> None:
    missing = dict(ALLOCATION_CONTENT)
    del missing["unit"]
    rejected(content_wire(missing), ErrorCode.MISSING_FIELD)
    rejected(content_wire({}), ErrorCode.MISSING_FIELD)
    rejected(content_wire({**ALLOCATION_CONTENT, "name": "Fatima"}), ErrorCode.UNKNOWN_FIELD)
    rejected(content_wire({**ALLOCATION_CONTENT, "zz": 1}), ErrorCode.UNKNOWN_FIELD)
    rejected(content_wire({**ALLOCATION_CONTENT, 7: 1}), ErrorCode.FORBIDDEN_TYPE)
    unsorted = dict(reversed(list(ALLOCATION_CONTENT.items())))
    rejected(content_wire(unsorted), ErrorCode.NON_CANONICAL)
    with raises_code(LocalProtocolError, ErrorCode.UNKNOWN_FIELD):
        append(
            None,
            {**ALLOCATION_CONTENT, "name": "x"},
            key=KEY,
            net=NET,
            now_ms=NOW,
            kind=Allocation.KIND,
        )


def test_content_with_a_float_in_a_known_kind() -> None:
    rejected(content_wire({**VOUCH_CONTENT, "stance": 1.0}, Vouch.KIND), ErrorCode.FORBIDDEN_TYPE)
    ext = msgpack.ExtType(1, b"x")
    rejected(content_wire({**VOUCH_CONTENT, "peer": ext}, Vouch.KIND), ErrorCode.FORBIDDEN_TYPE)


PROFILE_ERRORS: list[tuple[str, Any, ErrorCode]] = [
    ("name_ar", "منظمة \u202eالأمل", ErrorCode.BAD_VALUE),  # RIGHT-TO-LEFT OVERRIDE
    ("name_ar", "منظمة \u2066الأمل\u2069", ErrorCode.BAD_VALUE),  # isolates
    ("name_ar", "منظمة\u202bالأمل", ErrorCode.BAD_VALUE),  # embedding
    ("name_ar", "منظمة\nالأمل", ErrorCode.BAD_VALUE),
    ("name_ar", "منظمة\x85الأمل", ErrorCode.BAD_VALUE),  # C1 control
    ("name_ar", " منظمة", ErrorCode.BAD_VALUE),
    ("name_ar", "", ErrorCode.BAD_VALUE),
    ("name_ar", "ا" * 101, ErrorCode.BAD_VALUE),  # 202 UTF-8 bytes
    ("name_ar", b"name", ErrorCode.WRONG_TYPE),
    ("name_en", "Hope\tOrg", ErrorCode.BAD_VALUE),
    ("name_en", "Hope ", ErrorCode.BAD_VALUE),
    ("sectors", ["health", "food_security"], ErrorCode.NON_CANONICAL),
    ("sectors", ["health", "health"], ErrorCode.BAD_VALUE),
    ("sectors", ["cooking"], ErrorCode.BAD_VALUE),
    ("sectors", [*protocol.SECTORS, "wash"], ErrorCode.BAD_VALUE),
    ("sectors", "health", ErrorCode.WRONG_TYPE),
    ("sectors", [1], ErrorCode.WRONG_TYPE),
    ("endpoints", ["ftp://hope.example.iq"], ErrorCode.BAD_VALUE),
    ("endpoints", ["javascript:alert(1)"], ErrorCode.BAD_VALUE),
    ("endpoints", ["https://"], ErrorCode.BAD_VALUE),
    ("endpoints", ["https://hope example"], ErrorCode.BAD_VALUE),
    ("endpoints", ["https://hope.example/\u0639"], ErrorCode.BAD_VALUE),
    ("endpoints", ["https://" + "a" * 241], ErrorCode.BAD_VALUE),
    ("endpoints", [f"https://h{i}.example" for i in range(9)], ErrorCode.BAD_VALUE),
    ("endpoints", ["https://a.example", "https://a.example"], ErrorCode.BAD_VALUE),
    ("endpoints", [b"https://a.example"], ErrorCode.WRONG_TYPE),
    ("governorate", "IQG20", ErrorCode.BAD_VALUE),
    ("governorate", "IQG00", ErrorCode.BAD_VALUE),
    ("governorate", "IQG08Q05", ErrorCode.BAD_VALUE),
    ("registration", "x", ErrorCode.BAD_VALUE),
    ("registration", "/123", ErrorCode.BAD_VALUE),
    ("role", "admin", ErrorCode.BAD_VALUE),
    ("enc_key", bytes(31), ErrorCode.BAD_VALUE),
    ("enc_key", None, ErrorCode.WRONG_TYPE),
]


@pytest.mark.parametrize(("field", "value", "code"), PROFILE_ERRORS)
def test_profile_field_errors(field: str, value: Any, code: ErrorCode) -> None:
    with raises_code(LocalProtocolError, code):
        Profile(**{**PROFILE_CONTENT, field: value})
    rejected(content_wire({**PROFILE_CONTENT, field: value}, Profile.KIND), code)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name_ar", "ا" * 100),  # 200 UTF-8 bytes
        ("name_ar", "جمعية \u200fالرحمة"),  # RLM is not an override
        ("sectors", []),
        ("sectors", list(protocol.SECTORS)),
        ("endpoints", []),
        ("endpoints", ["https://" + "a" * 240]),
        ("endpoints", [f"https://h{i}.example" for i in range(8)]),
        ("endpoints", ["http://192.168.1.20:8080/"]),
        ("governorate", "IQG19"),
        ("governorate", "IQG01"),
        ("role", "observer"),
    ],
)
def test_profile_boundaries_pass(field: str, value: Any) -> None:
    content = {**PROFILE_CONTENT, field: value}
    entry = verify_entry(content_wire(content, Profile.KIND), net=NET, now_ms=NOW)
    assert entry.body == Profile(**content)
    assert entry.content == content


def test_other_kinds_field_errors() -> None:
    cases: list[tuple[type[Body], dict[str, Any], ErrorCode]] = [
        (Vouch, {**VOUCH_CONTENT, "stance": "maybe"}, ErrorCode.BAD_VALUE),
        (Vouch, {**VOUCH_CONTENT, "peer": bytes(33)}, ErrorCode.BAD_VALUE),
        (Checkpoint, {**CHECKPOINT_CONTENT, "seq": 0}, ErrorCode.BAD_VALUE),
        (Checkpoint, {**CHECKPOINT_CONTENT, "seq": 2**63}, ErrorCode.BAD_VALUE),
        (Checkpoint, {**CHECKPOINT_CONTENT, "id": "x" * 32}, ErrorCode.WRONG_TYPE),
        (AllocationVoid, {**VOID_CONTENT, "reason": "changed my mind"}, ErrorCode.BAD_VALUE),
        (AllocationVoid, {**VOID_CONTENT, "allocation": None}, ErrorCode.WRONG_TYPE),
    ]
    for cls, content, code in cases:
        with raises_code(LocalProtocolError, code):
            cls(**content)
        rejected(content_wire(content, cls.KIND), code)


def test_key_rotate_at_seq_1() -> None:
    new_public = protocol.public_key(OTHER_KEY)
    statement = protocol.rotation_statement(
        net=NET, author=AUTHOR, seq=1, prev=bytes(32), new_key=new_public
    )
    body = KeyRotate(
        new_key=new_public, new_sig=OTHER_KEY.sign(statement).signature, reason="scheduled"
    )
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=body)
    rejected(content_wire(body.to_content(), KeyRotate.KIND), ErrorCode.BAD_VALUE)


def test_key_rotate_schema() -> None:
    content: dict[str, Any] = {"new_key": bytes(32), "new_sig": bytes(64), "reason": "bored"}
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        KeyRotate(**content)
    rejected(content_wire(content, KeyRotate.KIND, seq=2, prev=bytes(32)), ErrorCode.BAD_VALUE)
    content = {"new_key": bytes(32), "new_sig": bytes(63), "reason": "scheduled"}
    rejected(content_wire(content, KeyRotate.KIND, seq=2, prev=bytes(32)), ErrorCode.BAD_VALUE)


# --- append ---------------------------------------------------------------------------------


def test_append_first_entry(alloc_entry: Entry) -> None:
    assert (alloc_entry.seq, alloc_entry.prev, alloc_entry.ts) == (1, None, NOW)
    assert alloc_entry.author == AUTHOR


def test_append_when_the_clock_goes_backwards(alloc_entry: Entry) -> None:
    head = protocol.head_after(None, alloc_entry)
    entry = append(head, allocation(), key=KEY, net=NET, now_ms=NOW - 3_600_000)
    assert entry.ts == NOW  # max(now, head.ts)
    entry = append(head, allocation(), key=KEY, net=NET, now_ms=NOW + 5)
    assert entry.ts == NOW + 5


def test_append_refuses_an_unset_clock(alloc_entry: Entry) -> None:
    head = protocol.head_after(None, alloc_entry)
    for now_ms in (0, MIN_TS - 1):
        with raises_code(LocalProtocolError, ErrorCode.CLOCK_UNSET):
            append(None, allocation(), key=KEY, net=NET, now_ms=now_ms)
        # Even when the head's ts would be usable: the box's clock is wrong.
        with raises_code(LocalProtocolError, ErrorCode.CLOCK_UNSET):
            append(head, allocation(), key=KEY, net=NET, now_ms=now_ms)
    assert append(None, allocation(), key=KEY, net=NET, now_ms=MIN_TS).ts == MIN_TS


def test_append_with_the_wrong_key(alloc_entry: Entry) -> None:
    head = protocol.head_after(None, alloc_entry)
    with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
        append(head, allocation(), key=OTHER_KEY, net=NET, now_ms=NOW)


def test_append_invalid_content_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError) as info:
        append(None, {"category": "food"}, key=KEY, net=NET, now_ms=NOW, kind=Allocation.KIND)
    assert type(info.value) is LocalProtocolError
    assert info.value.code is ErrorCode.MISSING_FIELD
    with pytest.raises(LocalProtocolError) as info:
        append(None, {"x": 1.5}, key=KEY, net=NET, now_ms=NOW, kind=OPAQUE)
    assert type(info.value) is LocalProtocolError
    assert info.value.code is ErrorCode.FORBIDDEN_TYPE
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        append(None, allocation(), key=KEY, net=NET, now_ms=MAX_TS + 1)
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        append(None, allocation(), key=KEY, net=NET[:31], now_ms=NOW)


def test_errors_render_their_code() -> None:
    error = RemoteProtocolError("entry 3: bad", code=ErrorCode.SEQ_GAP)
    assert str(error) == "SEQ_GAP: entry 3: bad"
    assert repr(error) == "RemoteProtocolError('entry 3: bad', code=SEQ_GAP)"
    assert isinstance(error, protocol.ProtocolError)
    assert not isinstance(error, LocalProtocolError)
