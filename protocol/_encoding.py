"""The strict msgpack profile (SPEC §2): one value, one encoding.

Allowed types: nil, bool, int (-2**63 .. 2**64-1), str (valid UTF-8), bin, array, and
map with str keys sorted by their UTF-8 bytes, no duplicates. Every item uses its
shortest msgpack form. No float, no ext (so no msgpack timestamps). Decoding re-encodes
and rejects input that is not byte-identical, so a value has exactly one encoding and
therefore one hash.

The C unpacker does the byte-level work; this module adds the checks msgpack itself does
not make (key order, duplicates, types, depth) and translates msgpack's exceptions into
:class:`RemoteProtocolError` at this single boundary (STYLE §6).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import msgpack

from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_ITEMS",
    "Value",
    "check_tree",
    "decode",
    "diagnose",
    "encode",
    "pack",
    "unpack_fast",
]

#: Deepest nesting of arrays and maps in one document (the outermost container is
#: depth 1). The deepest schema defined in SPEC §5 needs 4 (payload > content >
#: attachments > attachment); 16 leaves room for future kinds while keeping recursion
#: bounded. For comparison: serde_json stops at 128, msgpack-c's unpacker at 1024 and
#: Python's json module only at the interpreter's recursion limit (~1000).
MAX_DEPTH = 16

#: Most elements in one array or map. No defined kind needs more than 64; 4096 bounds
#: the Python objects a hostile 64 KiB entry can make us allocate (a 64 KiB array of
#: nils would otherwise be 65,536 objects).
MAX_ITEMS = 4096

#: Default size limit for a standalone document (the largest thing :func:`decode` is
#: used for is a sealed message, SPEC §6: 1 MiB of ciphertext plus its header).
MAX_DOCUMENT_BYTES = 1_100_000

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

#: What a decoded document may contain. ``dict``/``list`` hold further Values.
Value = None | bool | int | str | bytes | list[Any] | dict[str, Any]


class _Map(list[tuple[Any, Any]]):
    """Marks a msgpack map while it is still a list of pairs (so duplicates survive)."""

    __slots__ = ()


def _unpack(data: bytes, pairs_hook: type[_Map] | None = _Map) -> Any:
    """Run the C unpacker, translating everything it raises into our errors.

    With ``pairs_hook=None`` maps come back as plain dicts: faster, but duplicate keys
    collapse, so such callers must re-encode and compare (see :func:`unpack_fast`).
    """
    try:
        return msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=False, object_pairs_hook=pairs_hook
        )
    except msgpack.StackError:
        _remote(ErrorCode.TOO_DEEP, "nesting deeper than the decoder's stack")
    except msgpack.ExtraData:
        _remote(ErrorCode.MALFORMED, "trailing bytes after the msgpack value")
    except UnicodeDecodeError:
        _remote(ErrorCode.MALFORMED, "str is not valid UTF-8")
    except TypeError:
        # Only the dict-building fast path raises it: a map key that is itself an
        # array or map (unhashable). The pairs path reports the same fault itself.
        _remote(ErrorCode.FORBIDDEN_TYPE, "map key is not a str")
    except (msgpack.UnpackException, ValueError, OverflowError) as exc:
        # OutOfData (truncated), FormatError (reserved byte 0xc1), and limits.
        _remote(ErrorCode.MALFORMED, f"not msgpack: {type(exc).__name__}")


def _remote(code: ErrorCode, message: str) -> NoReturn:
    raise RemoteProtocolError(message, code=code)


def _check_decoded(obj: Any, depth: int) -> Value:
    """Turn the unpacker's output into a Value, enforcing the profile's rules."""
    kind = type(obj)
    if obj is None or kind is bool or kind is int or kind is str or kind is bytes:
        return obj  # type: ignore[no-any-return]
    if kind is _Map or kind is list:
        if depth > MAX_DEPTH:
            _remote(ErrorCode.TOO_DEEP, f"nesting deeper than {MAX_DEPTH}")
        if len(obj) > MAX_ITEMS:
            _remote(ErrorCode.TOO_MANY_ITEMS, f"container with more than {MAX_ITEMS} items")
        if kind is list:
            return [_check_decoded(item, depth + 1) for item in obj]
        keys = [key for key, _ in obj]
        for key in keys:
            if type(key) is not str:
                _remote(ErrorCode.FORBIDDEN_TYPE, "map key is not a str")
        if len(set(keys)) != len(keys):
            _remote(ErrorCode.DUPLICATE_KEY, "map has a duplicate key")
        for left, right in itertools.pairwise(keys):
            # Python orders str by code point, which is exactly UTF-8 byte order.
            if not left < right:
                _remote(ErrorCode.NON_CANONICAL, "map keys are not sorted by UTF-8 bytes")
        return {key: _check_decoded(value, depth + 1) for key, value in obj}
    if kind is float:
        _remote(ErrorCode.FORBIDDEN_TYPE, "float is not allowed")
    _remote(ErrorCode.FORBIDDEN_TYPE, "ext types are not allowed")


def decode(data: bytes, *, max_size: int = MAX_DOCUMENT_BYTES) -> Any:
    """Decode one strict-profile msgpack document.

    Args:
        data: the exact bytes received.
        max_size: reject larger input before decoding anything.

    Returns:
        A :data:`Value`, with maps as ``dict`` and arrays as ``list``. Typed ``Any``:
        callers check the shape they expect at run time, as they must for input.

    Raises:
        RemoteProtocolError: with the first rule the input breaks.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        _remote(ErrorCode.TOO_LARGE, f"{len(data)} bytes exceeds the limit of {max_size}")
    value = _check_decoded(_unpack(data), 1)
    if _pack(value) != data:
        _remote(ErrorCode.NON_CANONICAL, "not the shortest encoding of its value")
    return value


def diagnose(data: bytes, *, max_size: int) -> NoReturn:
    """Raise the precise error for bytes a fast path found non-canonical."""
    decode(data, max_size=max_size)
    _remote(ErrorCode.NON_CANONICAL, "not the canonical encoding of its value")


def _pack(value: Value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _local(code: ErrorCode, message: str) -> NoReturn:
    raise LocalProtocolError(message, code=code)


def _canonical(obj: object, depth: int) -> Value:
    """Check a Python value against the profile and sort its maps."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        if not _INT_MIN <= obj <= _INT_MAX:
            _local(ErrorCode.BAD_VALUE, "int outside -2**63 .. 2**64-1")
        return int(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, (Mapping, Sequence)):
        if depth > MAX_DEPTH:
            _local(ErrorCode.TOO_DEEP, f"nesting deeper than {MAX_DEPTH}")
        if len(obj) > MAX_ITEMS:
            _local(ErrorCode.TOO_MANY_ITEMS, f"container with more than {MAX_ITEMS} items")
        if isinstance(obj, Mapping):
            if not all(type(key) is str for key in obj):
                _local(ErrorCode.FORBIDDEN_TYPE, "map keys must be str")
            return {key: _canonical(obj[key], depth + 1) for key in sorted(obj)}
        return [_canonical(item, depth + 1) for item in obj]
    _local(ErrorCode.FORBIDDEN_TYPE, f"{type(obj).__name__} is not in the profile")


def encode(value: object, *, max_size: int = MAX_DOCUMENT_BYTES) -> bytes:
    """Encode a value in the strict profile (maps sorted, shortest forms).

    Args:
        value: None, bool, int, str, bytes-like, sequences and str-keyed mappings.
        max_size: refuse to produce a larger document.

    Raises:
        LocalProtocolError: the value has a float or other forbidden type, a str that
            is not encodable as UTF-8, an int out of range, or breaks a limit.
    """
    try:
        data = _pack(_canonical(value, 1))
    except UnicodeEncodeError:
        _local(ErrorCode.FORBIDDEN_TYPE, "str is not encodable as UTF-8 (lone surrogate)")
    if len(data) > max_size:
        _local(ErrorCode.TOO_LARGE, f"{len(data)} bytes exceeds the limit of {max_size}")
    return data


# --- fast path for hot decoders (entries): the C unpacker builds dicts directly ------


def unpack_fast(data: bytes) -> Any:
    """Decode with plain dicts, for callers that re-encode and compare afterwards.

    Duplicate keys collapse here, which the caller's byte comparison then catches (the
    re-encoding is shorter); :func:`diagnose` names the precise fault.
    """
    return _unpack(data, None)


_packers = threading.local()


def pack(value: Value) -> bytes:
    """Encode an already-decoded value (dicts in received order) without checks.

    Reuses one Packer per thread: a third cheaper than ``msgpack.packb``, which builds
    a new Packer per call, and this runs once per verified entry. A Packer that raises
    mid-value resets its buffer, so reuse is safe.
    """
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(value)  # type: ignore[no-any-return]


def check_tree(value: Any, depth: int) -> None:
    """Check a fast-path value (opaque content) against the profile's type rules.

    Raises:
        RemoteProtocolError: forbidden type, non-str or unsorted keys, too deep or long.
    """
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str or kind is bytes:
        return
    if kind is dict or kind is list:
        if depth > MAX_DEPTH:
            _remote(ErrorCode.TOO_DEEP, f"nesting deeper than {MAX_DEPTH}")
        if len(value) > MAX_ITEMS:
            _remote(ErrorCode.TOO_MANY_ITEMS, f"container with more than {MAX_ITEMS} items")
        if kind is dict:
            keys = list(value)
            if not all(type(key) is str for key in keys):
                _remote(ErrorCode.FORBIDDEN_TYPE, "map key is not a str")
            if keys != sorted(keys):
                _remote(ErrorCode.NON_CANONICAL, "map keys are not sorted by UTF-8 bytes")
            value = value.values()
        for item in value:
            check_tree(item, depth + 1)
        return
    if kind is float:
        _remote(ErrorCode.FORBIDDEN_TYPE, "float is not allowed")
    _remote(ErrorCode.FORBIDDEN_TYPE, "ext types are not allowed")
