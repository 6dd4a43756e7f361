"""The strict msgpack profile (SPEC §2), byte by byte.

Every rejected input here is written out by hand, so each test shows exactly which
bytes break which rule, and checks the exact code the decoder gives for them.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable

import pytest

from protocol import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_ITEMS,
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
    decode,
    encode,
)

from .conftest import raises_code

# --- what the profile accepts: exactly one encoding per value ----------------------

CANONICAL = [
    (None, "c0"),
    (False, "c2"),
    (True, "c3"),
    (0, "00"),
    (127, "7f"),
    (128, "cc80"),
    (255, "ccff"),
    (256, "cd0100"),
    (65_535, "cdffff"),
    (65_536, "ce00010000"),
    (2**32 - 1, "ceffffffff"),
    (2**32, "cf0000000100000000"),
    (2**64 - 1, "cfffffffffffffffff"),
    (-1, "ff"),
    (-32, "e0"),
    (-33, "d0df"),
    (-128, "d080"),
    (-129, "d1ff7f"),
    (-32_768, "d18000"),
    (-32_769, "d2ffff7fff"),
    (-(2**31), "d280000000"),
    (-(2**31) - 1, "d3ffffffff7fffffff"),
    (-(2**63), "d38000000000000000"),
    ("", "a0"),
    ("a" * 31, "bf" + "61" * 31),
    ("a" * 32, "d920" + "61" * 32),
    ("سلام", "a8d8b3d984d8a7d985"),
    (b"", "c400"),
    (b"\x00\xff", "c40200ff"),
    (b"x" * 256, "c50100" + "78" * 256),
    ([], "90"),
    ([None] * 15, "9f" + "c0" * 15),
    ([None] * 16, "dc0010" + "c0" * 16),
    ({}, "80"),
    ({"a": [1, {"b": b""}]}, "81a1619201 81a162c400".replace(" ", "")),
]


@pytest.mark.parametrize(("value", "hex_bytes"), CANONICAL)
def test_canonical_values_round_trip_byte_for_byte(value: object, hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    assert encode(value) == data
    assert decode(data) == value
    assert type(decode(data)) is type(value)


def test_large_canonical_headers() -> None:
    text = "a" * 256
    assert encode(text) == b"\xda\x01\x00" + text.encode()
    assert decode(b"\xda\x01\x00" + text.encode()) == text
    items = {f"{i:02d}": i for i in range(16)}
    data = encode(items)
    assert data[:3] == b"\xde\x00\x10"
    assert decode(data) == items


def test_decode_accepts_bytes_like_input() -> None:
    for data in (bytearray(b"\x92\x01\xa1a"), memoryview(b"\x92\x01\xa1a")):
        assert decode(data) == [1, "a"]  # type: ignore[arg-type]


# --- shortest forms only ------------------------------------------------------------


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "cc05",  # 5 as uint8
        "cd0005",  # 5 as uint16
        "ce00000005",  # 5 as uint32
        "cf0000000000000005",  # 5 as uint64
        "cd00ff",  # 255 as uint16
        "ce0000ffff",  # 65535 as uint32
        "cf00000000ffffffff",  # 2**32-1 as uint64
        "d005",  # 5 as int8
        "d0ff",  # -1 as int8 (fixint ff)
        "d1ff80",  # -128 as int16
        "d2ffff8000",  # -32768 as int32
        "d3ffffffff80000000",  # -2**31 as int64
        "d30000000000000005",  # 5 as int64
    ],
)
def test_non_minimal_ints_are_rejected(hex_bytes: str) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "data",
    [
        b"\xd9\x01a",  # str8 for a fixstr
        b"\xda\x00\x01a",  # str16 for a fixstr
        b"\xdb\x00\x00\x00\x01a",  # str32 for a fixstr
        b"\xda\x00\x20" + b"a" * 32,  # str16 for a str8
        b"\xd9\x00",  # empty str as str8
    ],
)
def test_non_minimal_str_headers_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc5\x00\x01a",  # bin16 for a bin8
        b"\xc6\x00\x00\x00\x01a",  # bin32 for a bin8
        b"\xc6\x00\x00\x01\x00" + b"x" * 256,  # bin32 for a bin16
    ],
)
def test_non_minimal_bin_headers_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xdc\x00\x01\x01",  # array16 for a fixarray
        b"\xdd\x00\x00\x00\x01\x01",  # array32 for a fixarray
        b"\xdc\x00\x00",  # empty array as array16
        b"\xdd\x00\x00\x00\x10" + b"\xc0" * 16,  # array32 for an array16
    ],
)
def test_non_minimal_array_headers_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xde\x00\x01\xa1a\x01",  # map16 for a fixmap
        b"\xdf\x00\x00\x00\x01\xa1a\x01",  # map32 for a fixmap
        b"\xde\x00\x00",  # empty map as map16
    ],
)
def test_non_minimal_map_headers_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(data)


def test_non_canonical_inside_containers_is_rejected() -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(b"\x92\x01\xcc\x05")
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(b"\x81\xa1a\xd9\x01b")


# --- maps: str keys, sorted by UTF-8 bytes, no duplicates -----------------------------


def test_unsorted_keys_are_rejected() -> None:
    assert decode(b"\x82\xa1a\x02\xa1b\x01") == {"a": 2, "b": 1}
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(b"\x82\xa1b\x01\xa1a\x02")


def test_unsorted_nested_keys_are_rejected() -> None:
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(b"\x81\xa1m\x82\xa1b\x01\xa1a\x02")


def test_shorter_key_sorts_first_when_it_is_a_prefix() -> None:
    assert encode({"ab": 1, "a": 2}) == b"\x82\xa1a\x02\xa2ab\x01"
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(b"\x82\xa2ab\x01\xa1a\x02")


#: Keys whose UTF-8 byte order differs from UTF-16 order: U+FEFC (an Arabic
#: presentation form) is below U+1EE00 (Arabic mathematical alef) in code points and
#: UTF-8, but above it in UTF-16 (whose surrogates are D800-DFFF).
NON_ASCII_KEYS = {"\U0001ee00": 1, "\ufefc": 2, "ع": 3, "z": 4}
NON_ASCII_SORTED = (
    b"\x84"
    + b"\xa1z\x04"
    + b"\xa2\xd8\xb9\x03"
    + b"\xa3\xef\xbb\xbc\x02"
    + b"\xa4\xf0\x9e\xb8\x80\x01"
)


def test_keys_sort_by_utf8_bytes_including_arabic_and_astral() -> None:
    keys = list(NON_ASCII_KEYS)
    assert sorted(keys) == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert sorted(keys) != sorted(keys, key=lambda k: k.encode("utf-16-be"))
    assert encode(NON_ASCII_KEYS) == NON_ASCII_SORTED
    assert list(decode(NON_ASCII_SORTED)) == ["z", "ع", "\ufefc", "\U0001ee00"]


def test_utf16_key_order_is_rejected() -> None:
    utf16_order = (
        b"\x84"
        + b"\xa1z\x04"
        + b"\xa2\xd8\xb9\x03"
        + b"\xa4\xf0\x9e\xb8\x80\x01"
        + b"\xa3\xef\xbb\xbc\x02"
    )
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        decode(utf16_order)


@pytest.mark.parametrize(
    "data",
    [
        b"\x82\xa1a\x01\xa1a\x02",  # adjacent
        b"\x82\xa1a\x01\xa1a\x01",  # adjacent, same value
        b"\x83\xa1a\x01\xa1b\x02\xa1a\x03",  # non-adjacent
        b"\x83\xa1b\x01\xa1a\x02\xa1b\x03",  # non-adjacent, first pair unsorted too
        b"\x81\xa1m\x82\xa1a\x01\xa1a\x02",  # nested
    ],
)
def test_duplicate_keys_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.DUPLICATE_KEY):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\x01\x01",  # int key
        b"\x81\xc4\x01a\x01",  # bin key
        b"\x81\xc0\x01",  # nil key
        b"\x81\xc3\x01",  # bool key
        b"\x81\x91\x01\x01",  # array key
        b"\x81\x80\x01",  # map key
        b"\x82\xa1a\x01\x01\x02",  # one str key, one int key
    ],
)
def test_non_str_keys_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.FORBIDDEN_TYPE):
        decode(data)


# --- forbidden types ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\xca\x3f\x80\x00\x00",  # float32 1.0
        b"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00",  # float64 1.0
        b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # float64 NaN
        b"\x91\xca\x00\x00\x00\x00",  # float32 inside an array
        b"\x81\xa1q\xcb\x40\x00\x00\x00\x00\x00\x00\x00",  # float64 2.0 as a map value
    ],
)
def test_floats_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.FORBIDDEN_TYPE):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xd4\x01\x00",  # fixext 1
        b"\xd5\x05\x00\x00",  # fixext 2
        b"\xd8\x05" + bytes(16),  # fixext 16
        b"\xc7\x03\x05abc",  # ext 8
        b"\xc8\x00\x03\x05abc",  # ext 16
        b"\xc9\x00\x00\x00\x03\x05abc",  # ext 32
        b"\xc7\x00\x05",  # ext 8, empty
        b"\xd6\xff\x00\x00\x00\x00",  # timestamp 32 (1970-01-01)
        b"\xd7\xff" + bytes(8),  # timestamp 64
        b"\xc7\x0c\xff" + bytes(12),  # timestamp 96
        b"\x81\xa1t\xd6\xff\x69\x00\x00\x00",  # timestamp as a map value
    ],
)
def test_ext_and_timestamps_are_rejected(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.FORBIDDEN_TYPE):
        decode(data)


def test_malformed_timestamp_ext_is_malformed() -> None:
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(b"\xc7\x03\xff\x00\x00\x00")  # a timestamp cannot be 3 bytes


# --- malformed input -------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\xa1\xff",  # 0xff never occurs in UTF-8
        b"\xa2\xc3\x28",  # bad continuation byte
        b"\xa2\xc0\xaf",  # overlong "/"
        b"\xa3\xed\xa0\x80",  # an encoded surrogate (U+D800)
        b"\xa4\xf4\x90\x80\x80",  # above U+10FFFF
        b"\x81\xa1\xff\x01",  # invalid UTF-8 in a key
    ],
)
def test_invalid_utf8_is_malformed(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x92\x01",  # array missing an element
        b"\xcd\x01",  # uint16 missing a byte
        b"\xa5abc",  # str missing 2 bytes
        b"\xc4\x05ab",  # bin missing 3 bytes
        b"\x81\xa1a",  # map missing a value
        b"\xdc\x00",  # array16 header cut short
    ],
)
def test_truncated_input_is_malformed(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(data)


@pytest.mark.parametrize("data", [b"\x01\x02", b"\xc0\xc0", b"\x90\x00", b"\xa1a\xc1"])
def test_trailing_bytes_are_malformed(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(data)


@pytest.mark.parametrize("data", [b"\xc1", b"\x91\xc1", b"\x81\xa1a\xc1"])
def test_reserved_byte_c1_is_malformed(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(data)


def test_declared_length_beyond_input_is_malformed() -> None:
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(b"\xdd\xff\xff\xff\xff")  # 4 billion items announced in 5 bytes
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        decode(b"\xc6\xff\xff\xff\xff")


# --- limits -------------------------------------------------------------------------


def nested_arrays(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"


def nested_maps(depth: int) -> bytes:
    return b"\x81\xa1k" * depth + b"\xc0"


def test_max_depth_is_sixteen() -> None:
    assert MAX_DEPTH == 16


@pytest.mark.parametrize("nested", [nested_arrays, nested_maps])
def test_exactly_max_depth_passes(nested: Callable[[int], bytes]) -> None:
    value = decode(nested(MAX_DEPTH))
    for _ in range(MAX_DEPTH):
        value = value[0] if isinstance(value, list) else value["k"]
    assert value is None


@pytest.mark.parametrize("nested", [nested_arrays, nested_maps])
def test_one_level_deeper_is_too_deep(nested: Callable[[int], bytes]) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.TOO_DEEP):
        decode(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("data", [nested_arrays(2000), nested_maps(2000), b"\x91" * 100_000])
def test_very_deep_nesting_is_too_deep(data: bytes) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.TOO_DEEP):
        decode(data)


def test_exactly_max_items_passes() -> None:
    assert MAX_ITEMS == 4096
    array = b"\xdc\x10\x00" + b"\xc0" * MAX_ITEMS
    assert decode(array) == [None] * MAX_ITEMS
    items = {f"{i:04d}": None for i in range(MAX_ITEMS)}
    assert decode(encode(items)) == items


def test_one_item_more_is_too_many() -> None:
    array = b"\xdc\x10\x01" + b"\xc0" * (MAX_ITEMS + 1)
    with raises_code(RemoteProtocolError, ErrorCode.TOO_MANY_ITEMS):
        decode(array)
    pairs = b"".join(b"\xa4" + f"{i:04d}".encode() + b"\xc0" for i in range(MAX_ITEMS + 1))
    with raises_code(RemoteProtocolError, ErrorCode.TOO_MANY_ITEMS):
        decode(b"\xde\x10\x01" + pairs)


def test_max_size_is_checked_before_decoding() -> None:
    data = b"\xa3abc"
    assert decode(data, max_size=4) == "abc"
    with raises_code(RemoteProtocolError, ErrorCode.TOO_LARGE):
        decode(data, max_size=3)
    # Checked first: even garbage is TOO_LARGE, not MALFORMED.
    with raises_code(RemoteProtocolError, ErrorCode.TOO_LARGE):
        decode(b"\xc1\xc1", max_size=1)


def test_default_max_size() -> None:
    header = b"\xc6" + (MAX_DOCUMENT_BYTES - 5).to_bytes(4, "big")
    exactly = header + bytes(MAX_DOCUMENT_BYTES - 5)
    assert len(exactly) == MAX_DOCUMENT_BYTES
    assert decode(exactly) == bytes(MAX_DOCUMENT_BYTES - 5)
    header = b"\xc6" + (MAX_DOCUMENT_BYTES - 4).to_bytes(4, "big")
    with raises_code(RemoteProtocolError, ErrorCode.TOO_LARGE):
        decode(header + bytes(MAX_DOCUMENT_BYTES - 4))


# --- encode ---------------------------------------------------------------------------


def test_encode_sorts_keys_at_every_level() -> None:
    value = {"b": 1, "a": {"d": [], "c": None}}
    assert encode(value) == b"\x82\xa1a\x82\xa1c\xc0\xa1d\x90\xa1b\x01"


def test_encode_accepts_bytes_like_and_sequences() -> None:
    assert encode(bytearray(b"ab")) == b"\xc4\x02ab"
    assert encode(memoryview(b"ab")) == b"\xc4\x02ab"
    assert encode((1, 2)) == b"\x92\x01\x02"
    assert encode(types.MappingProxyType({"a": b"\x00"})) == b"\x81\xa1a\xc4\x01\x00"


def test_encode_keeps_bool_and_unwraps_int_subclasses() -> None:
    class Level(enum.IntEnum):
        HIGH = 200

    assert encode([True, False, 1]) == b"\x93\xc3\xc2\x01"
    assert encode(Level.HIGH) == b"\xcc\xc8"


@pytest.mark.parametrize(
    "value", [1.0, [0.5], {"a": float("nan")}, {1, 2}, object(), 1j, frozenset()]
)
def test_encode_rejects_types_outside_the_profile(value: object) -> None:
    with raises_code(LocalProtocolError, ErrorCode.FORBIDDEN_TYPE):
        encode(value)


@pytest.mark.parametrize("value", [{1: "a"}, {b"a": 1}, {None: 1}, {"a": {("t",): 1}}])
def test_encode_rejects_non_str_keys(value: object) -> None:
    with raises_code(LocalProtocolError, ErrorCode.FORBIDDEN_TYPE):
        encode(value)


@pytest.mark.parametrize("value", ["\ud800", ["ok", "x\udfffy"], {"\udc00": 1}])
def test_encode_rejects_lone_surrogates(value: object) -> None:
    with raises_code(LocalProtocolError, ErrorCode.FORBIDDEN_TYPE):
        encode(value)


def test_encode_int_range() -> None:
    assert encode(2**64 - 1) == b"\xcf" + b"\xff" * 8
    assert encode(-(2**63)) == b"\xd3\x80" + bytes(7)
    for value in (2**64, -(2**63) - 1, 10**30, [2**70]):
        with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
            encode(value)


def test_encode_depth_limit() -> None:
    value: list[object] = []
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert encode(value) == b"\x91" * (MAX_DEPTH - 1) + b"\x90"
    with raises_code(LocalProtocolError, ErrorCode.TOO_DEEP):
        encode([value])
    loop: list[object] = []
    loop.append(loop)
    with raises_code(LocalProtocolError, ErrorCode.TOO_DEEP):
        encode(loop)


def test_encode_item_limit() -> None:
    assert encode([0] * MAX_ITEMS) == b"\xdc\x10\x00" + bytes(MAX_ITEMS)
    with raises_code(LocalProtocolError, ErrorCode.TOO_MANY_ITEMS):
        encode([0] * (MAX_ITEMS + 1))
    with raises_code(LocalProtocolError, ErrorCode.TOO_MANY_ITEMS):
        encode({f"{i:05d}": 0 for i in range(MAX_ITEMS + 1)})


def test_encode_max_size() -> None:
    assert encode(b"x" * 10, max_size=12) == b"\xc4\x0a" + b"x" * 10
    with raises_code(LocalProtocolError, ErrorCode.TOO_LARGE):
        encode(b"x" * 10, max_size=11)
