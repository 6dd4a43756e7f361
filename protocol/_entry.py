"""Entries: the signed, replicated unit of every feed (SPEC §3).

``wire = [payload: bin, sig: bin 64]``; ``payload`` is the canonical encoding of
``{author, content, kind, net, prev, seq, ts, v}``; ``sig`` is Ed25519 over
``ENTRY_TAG || payload``; ``id = SHA-256(wire)``. Verification works on the received
bytes and keeps them: nothing is re-serialized to be verified (STYLE §7).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from ._encoding import check_tree, diagnose, encode, pack, unpack_fast
from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._keys import SigningKey, public_key, sign, verify
from ._kinds import (
    ENTRY_KINDS,
    KIND_NAME,
    MAX_KIND_BYTES,
    MESSAGE_NAMESPACE,
    KeyRotate,
    check_kind_name,
)
from ._schema import Body, bin_exact, fail, uint, wrong_type

__all__ = [
    "ENTRY_TAG",
    "MAX_CLOCK_SKEW_MS",
    "MAX_ENTRY_BYTES",
    "MAX_SEQ",
    "MAX_TS",
    "MIN_TS",
    "ROTATE_TAG",
    "Entry",
    "create_entry",
    "entry_position",
    "rotation_statement",
    "verify_entry",
]

#: Domain separation tags: a signature made for one purpose never verifies for another.
ENTRY_TAG: Final = b"watan/entry/v1\x00"
ROTATE_TAG: Final = b"watan/key-rotate/v1\x00"

#: Largest entry wire. Matrix caps a federated event at 65,536 bytes (spec §"Size
#: limits"), Secure Scuttlebutt a message at 8,192 characters. Every kind defined here
#: fits in 4 KiB; 64 KiB leaves room for future kinds while bounding what one hostile
#: author can make every node store (bulk data travels in direct messages instead).
MAX_ENTRY_BYTES: Final = 65_536

#: How far an entry's ``ts`` may lie ahead of the verifier's clock. Kerberos deployments
#: tolerate 5 minutes (RFC 4120 §10); we allow 10 because NGO boxes may go days without
#: reaching an NTP server. A later entry is not invalid, only early: callers should
#: retry it later rather than count it against the peer (SPEC §4.3).
MAX_CLOCK_SKEW_MS: Final = 10 * 60 * 1000

#: Earliest possible ``ts`` (2025-01-01T00:00:00Z, before the protocol existed). A box
#: without a real-time clock boots in 1970; this catches that instead of signing it.
MIN_TS: Final = 1_735_689_600_000
#: Latest ``ts``: 2**53 - 1, the largest integer JSON consumers (JavaScript) hold exactly.
MAX_TS: Final = 2**53 - 1
#: Largest ``seq``: fits a signed 64-bit database column.
MAX_SEQ: Final = 2**63 - 1

_PAYLOAD_KEYS: Final = ["author", "content", "kind", "net", "prev", "seq", "ts", "v"]
_VERSION: Final = 1


class Entry(NamedTuple):
    """A verified entry. Build one with :func:`create_entry`, or get one from
    :func:`verify_entry`; never construct it directly from unchecked values.

    A NamedTuple rather than a frozen dataclass: equally immutable, and built in half
    the time, which is 2% of the whole verification (``tools/bench_protocol.py``).

    Attributes:
        id: SHA-256 of ``wire``.
        wire: the exact bytes as received or created.
        payload: the signed bytes inside ``wire``.
        content: the decoded content map (treat as read-only), already checked
            against its kind's schema when the kind is known.
    """

    id: bytes
    wire: bytes
    payload: bytes
    sig: bytes
    net: bytes
    author: bytes
    seq: int
    prev: bytes | None
    ts: int
    kind: str
    content: dict[str, Any]

    @property
    def body(self) -> Body | None:
        """The content as its kind's :class:`Body`, or None for a kind this version
        does not know (an opaque kind, stored and relayed uninterpreted).

        Built on access from the already-checked content (building is a third of the
        schema check's cost and most consumers never need it).
        """
        spec = ENTRY_KINDS.get(self.kind)
        return None if spec is None else spec.build(spec._prepare(self.content))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled without ``payload`` and ``sig``, which are slices of ``wire``: a
        node's verifier workers send thousands of entries back a second."""
        fields = (self.id, self.wire, self.net, self.author, self.seq, self.prev, self.ts)
        return _unpickle_entry, (*fields, self.kind, self.content)


def _unpickle_entry(
    entry_id: bytes,
    wire: bytes,
    net: bytes,
    author: bytes,
    seq: int,
    prev: bytes | None,
    ts: int,
    kind: str,
    content: dict[str, Any],
) -> Entry:
    start = 3 if wire[1] == 0xC4 else 4  # the header _wire_bytes writes: bin8 or bin16
    payload, sig = wire[start:-66], wire[-64:]
    return Entry(entry_id, wire, payload, sig, net, author, seq, prev, ts, kind, content)


def _wire_bytes(payload: bytes, sig: bytes) -> bytes:
    """The canonical wire for a payload and signature (SPEC §3.1), built directly."""
    size = len(payload)  # < MAX_ENTRY_BYTES, so bin8 or bin16
    if size < 0x100:
        header = b"\x92\xc4" + bytes((size,))
    else:
        header = b"\x92\xc5" + size.to_bytes(2, "big")
    return header + payload + b"\xc4\x40" + sig


def _fail(code: ErrorCode, message: str) -> Any:
    raise RemoteProtocolError(message, code=code)


def _payload_keys_error(payload: Any, raw: bytes) -> None:
    if type(payload) is not dict:
        _fail(ErrorCode.WRONG_TYPE, "payload must be a map")
    keys = list(payload)
    if not all(type(key) is str for key in keys):
        _fail(ErrorCode.FORBIDDEN_TYPE, "payload: map key is not a str")
    # duplicates collapse in the fast decoder (possibly into an unsorted order): let the
    # strict decoder name them first, as decode() would
    if pack(payload) != raw:
        diagnose(raw, max_size=MAX_ENTRY_BYTES)
    if sorted(keys) == _PAYLOAD_KEYS and keys != _PAYLOAD_KEYS:
        _fail(ErrorCode.NON_CANONICAL, "payload keys are not sorted by UTF-8 bytes")
    unknown = [k for k in keys if k not in _PAYLOAD_KEYS]
    if unknown:
        _fail(ErrorCode.UNKNOWN_FIELD, f"payload: unknown field {unknown[0][:40]!r}")
    missing = [k for k in _PAYLOAD_KEYS if k not in payload]
    _fail(ErrorCode.MISSING_FIELD, f"payload: missing field {missing[0]!r}")


_BIN32: Final = bin_exact(32)
_SEQ: Final = uint(1, MAX_SEQ)
_TS: Final = uint(MIN_TS, MAX_TS)


def _explain(fields: dict[str, Any], *, net: bytes, now_ms: int | None) -> None:
    """Raise the error for payload fields that failed :func:`verify_entry`'s fast test,
    with the same field checks (and codes) as kind content."""
    try:
        _explain_fields(fields, net=net, now_ms=now_ms)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message, code=exc.code) from None


def _explain_fields(fields: dict[str, Any], *, net: bytes, now_ms: int | None) -> None:
    version = fields["v"]
    if type(version) is not int:
        wrong_type("v", version, "int")
    if version != _VERSION:
        fail(ErrorCode.UNSUPPORTED_VERSION, f"entry version {version} is not 1")
    _BIN32("net", fields["net"])
    if fields["net"] != net:
        fail(ErrorCode.WRONG_NET, "entry belongs to another federation")
    _BIN32("author", fields["author"])
    seq, prev, ts = fields["seq"], fields["prev"], fields["ts"]
    _SEQ("seq", seq)
    if seq == 1:
        if prev is not None:
            fail(ErrorCode.BAD_PREV, "the first entry of a feed has prev nil")
    elif prev is None:
        fail(ErrorCode.BAD_PREV, "prev is nil but seq > 1")
    else:
        _BIN32("prev", prev)
    _TS("ts", ts)
    if now_ms is not None and ts > now_ms + MAX_CLOCK_SKEW_MS:
        fail(ErrorCode.TS_IN_FUTURE, f"ts is {ts - now_ms} ms ahead of our clock")
    check_kind_name("kind", fields["kind"])
    wrong_type("content", fields["content"], "map")


def verify_entry(
    wire: bytes,
    *,
    net: bytes,
    now_ms: int | None,
    key: bytes | None = None,
    author: bytes | None = None,
) -> Entry:
    """Decode and verify one entry on its own (its place in a feed is checked by
    :func:`protocol.verify_next`).

    Args:
        wire: the exact bytes received.
        net: the federation id this node belongs to; entries of any other are refused.
        now_ms: the verifier's clock (Unix ms), to refuse entries from the future; None
            skips that check (for evidence such as a fork proof, judged later).
        key: the key the author's feed is signed with now, if it was rotated
            (SPEC §4.4); by default the author's own key.
        author: the feed this entry must belong to, if the caller knows it; checked
            before the signature so that an entry of another feed is named as such.

    Returns:
        The verified :class:`Entry`.

    Raises:
        RemoteProtocolError: with the first rule the entry breaks.
    """
    if type(wire) is not bytes:
        wire = bytes(wire)
    if len(wire) > MAX_ENTRY_BYTES:
        _fail(ErrorCode.TOO_LARGE, f"entry of {len(wire)} bytes exceeds {MAX_ENTRY_BYTES}")
    outer = unpack_fast(wire)
    if type(outer) is not list or len(outer) != 2:
        _fail(ErrorCode.MALFORMED, "wire must be an array [payload, sig]")
    payload, sig = outer
    if type(payload) is not bytes or type(sig) is not bytes:
        _fail(ErrorCode.WRONG_TYPE, "wire must be [bin, bin]")
    if len(sig) != 64:
        _fail(ErrorCode.BAD_VALUE, "sig must be 64 bytes")
    if wire != _wire_bytes(payload, sig):
        diagnose(wire, max_size=MAX_ENTRY_BYTES)

    fields = unpack_fast(payload)
    if type(fields) is not dict or list(fields) != _PAYLOAD_KEYS:
        _payload_keys_error(fields, payload)
    # The keys are exactly _PAYLOAD_KEYS in order, so the values come in that order.
    entry_author, content, kind, entry_net, prev, seq, ts, version = fields.values()
    # One fast test for the common case; _explain names the first rule that failed.
    if not (
        type(version) is int
        and version == _VERSION
        and entry_net == net
        and len(entry_net) == 32
        and type(entry_author) is bytes
        and len(entry_author) == 32
        and type(seq) is int
        and 1 <= seq <= MAX_SEQ
        and (prev is None if seq == 1 else type(prev) is bytes and len(prev) == 32)
        and type(ts) is int
        and MIN_TS <= ts <= MAX_TS
        and (now_ms is None or ts <= now_ms + MAX_CLOCK_SKEW_MS)
        and type(kind) is str
        and (kind in ENTRY_KINDS or (len(kind) <= MAX_KIND_BYTES and KIND_NAME.fullmatch(kind)))
        and type(content) is dict
    ):
        _explain(fields, net=net, now_ms=now_ms)
    if author is not None and entry_author != author:
        _fail(ErrorCode.WRONG_AUTHOR, "entry belongs to another feed")
    if pack(fields) != payload:
        diagnose(payload, max_size=MAX_ENTRY_BYTES)

    verify(key or entry_author, ENTRY_TAG + payload, sig)

    spec = ENTRY_KINDS.get(kind)
    if spec is None:
        if kind.startswith(MESSAGE_NAMESPACE):
            _fail(ErrorCode.BAD_KIND, "message kinds never enter feeds (SPEC §5.1.1)")
        check_tree(content, 2)
    else:
        spec.check_content(content)
        if spec is KeyRotate:
            _check_rotation(
                content, net=net, author=entry_author, seq=seq, prev=prev, key=key or entry_author
            )
    return Entry(
        hashlib.sha256(wire).digest(),
        wire,
        payload,
        sig,
        net,
        entry_author,
        seq,
        prev,
        ts,
        kind,
        content,
    )


def entry_position(wire: bytes, *, net: bytes, now_ms: int | None) -> tuple[bytes, int]:
    """The ``(author, seq)`` an entry claims, read before it can be verified.

    A node needs it to know which feed's head to lock and so which key checks the
    signature (after a rotation it is not the author's own). The wire and payload must
    already be valid documents of the encoding profile (SPEC §2); nothing else is
    checked, and nothing in ``content`` is interpreted.

    Raises:
        RemoteProtocolError: the entry has no readable position; the code is the one
            :func:`verify_entry` gives it.
    """
    fields: Any = None
    try:
        if len(wire) <= MAX_ENTRY_BYTES:
            outer = unpack_fast(wire)
            if type(outer) is list and len(outer) == 2 and type(outer[0]) is bytes:
                fields = unpack_fast(outer[0])
                if pack(outer) != wire or pack(fields) != outer[0]:
                    fields = None  # not canonical (duplicate keys collapse here too)
                else:
                    check_tree(outer, 1)
                    check_tree(fields, 1)
    except RemoteProtocolError:
        fields = None
    if type(fields) is dict:
        author, seq = fields.get("author"), fields.get("seq")
        if (
            fields.get("net") == net
            and type(author) is bytes
            and len(author) == 32
            and type(seq) is int
            and 1 <= seq <= MAX_SEQ
        ):
            return author, seq
    verify_entry(wire, net=net, now_ms=now_ms)
    raise RemoteProtocolError("entry has no valid author and seq", code=ErrorCode.MALFORMED)


def rotation_statement(
    *, net: bytes, author: bytes, seq: int, prev: bytes, new_key: bytes
) -> bytes:
    """What the new key signs in a ``node.key_rotate/1`` entry (SPEC §4.4)."""
    statement = {"author": author, "net": net, "new_key": new_key, "prev": prev, "seq": seq}
    return ROTATE_TAG + encode(statement)


def _check_rotation(
    content: dict[str, Any], *, net: bytes, author: bytes, seq: int, prev: Any, key: bytes
) -> None:
    if seq == 1:
        _fail(ErrorCode.BAD_VALUE, "a feed cannot rotate its key in its first entry")
    new_key = content["new_key"]
    if new_key == key:
        _fail(ErrorCode.BAD_VALUE, "new_key is the key the feed already has")
    message = rotation_statement(net=net, author=author, seq=seq, prev=prev, new_key=new_key)
    try:
        verify(new_key, message, content["new_sig"])
    except RemoteProtocolError:
        _fail(ErrorCode.BAD_SIGNATURE, "new_sig: the new key did not sign the rotation")


def create_entry(
    *,
    key: SigningKey,
    net: bytes,
    seq: int,
    prev: bytes | None,
    ts: int,
    content: Body | Mapping[str, Any],
    kind: str | None = None,
    author: bytes | None = None,
) -> Entry:
    """Build and sign an entry. Prefer :func:`protocol.append`, which fills in
    ``seq``, ``prev`` and ``ts`` from the feed's head.

    Args:
        key: the feed's current signing key.
        content: a :class:`Body` of a known kind, or a mapping with ``kind`` given.
        author: the feed's id; defaults to ``key``'s public key (differs only after a
            key rotation).

    Raises:
        LocalProtocolError: the entry would be invalid; nothing was signed.
    """
    if isinstance(content, Body):
        if kind is not None and kind != content.KIND:
            raise LocalProtocolError("kind does not match the body", code=ErrorCode.BAD_KIND)
        kind, fields = content.KIND, content.to_content()
    else:
        if kind is None:
            raise LocalProtocolError("a content map needs its kind", code=ErrorCode.BAD_KIND)
        fields = dict(content)
    payload = encode(
        {
            "author": author or public_key(key),
            "content": fields,
            "kind": kind,
            "net": net,
            "prev": prev,
            "seq": seq,
            "ts": ts,
            "v": _VERSION,
        },
        max_size=MAX_ENTRY_BYTES,
    )
    wire = encode([payload, sign(key, ENTRY_TAG + payload)], max_size=MAX_ENTRY_BYTES)
    try:
        return verify_entry(wire, net=net, now_ms=None, key=public_key(key))
    except ProtocolError as exc:
        raise LocalProtocolError(exc.message, code=exc.code) from None
