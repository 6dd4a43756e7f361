"""Feeds: one append-only, hash-chained log per author (SPEC §4).

A feed is valid when entry 1 has ``prev = nil``, each entry ``n+1`` names entry ``n``'s
id as ``prev``, timestamps never go backwards, and each entry is signed by the feed's
key at that point (the author's key, until a ``node.key_rotate/1`` hands over). Two
valid entries with the same author and seq are a fork: :class:`ForkProof` lets anyone
check that claim from the two wires alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._encoding import decode, encode
from ._entry import (
    MAX_ENTRY_BYTES,
    MIN_TS,
    Entry,
    create_entry,
    rotation_statement,
    verify_entry,
)
from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._keys import SigningKey, public_key, sign
from ._kinds import KeyRotate
from ._schema import Body, bin_exact, bin_max, check_map, uint

__all__ = [
    "FeedHead",
    "ForkProof",
    "append",
    "follows",
    "head_after",
    "make_fork_proof",
    "rotate_key",
    "verify_chain",
    "verify_fork_proof",
    "verify_next",
]

#: A fork proof is two entries and a key; bounded by two maximal entries plus framing.
_MAX_PROOF_BYTES: Final = 2 * MAX_ENTRY_BYTES + 128
_PROOF_FIELDS: Final = {
    "a": bin_max(MAX_ENTRY_BYTES),
    "b": bin_max(MAX_ENTRY_BYTES),
    "key": bin_exact(32),
    "v": uint(0, 2**32 - 1),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedHead:
    """The state a verifier keeps per feed: enough to check the next entry.

    Attributes:
        author: the feed's id (the public key of its first entry).
        seq, id, ts: of the newest entry.
        key: the public key that must sign the next entry.
    """

    author: bytes
    seq: int
    id: bytes
    ts: int
    key: bytes


def head_after(head: FeedHead | None, entry: Entry) -> FeedHead:
    """The head once ``entry`` (already checked to follow ``head``) is appended."""
    key = head.key if head is not None else entry.author
    if entry.kind == KeyRotate.KIND:  # known before its body is built: most are not
        body = entry.body
        assert type(body) is KeyRotate
        key = body.new_key
    return FeedHead(author=entry.author, seq=entry.seq, id=entry.id, ts=entry.ts, key=key)


def _remote(code: ErrorCode, message: str) -> Any:
    raise RemoteProtocolError(message, code=code)


def verify_next(
    head: FeedHead | None, wire: bytes, *, net: bytes, now_ms: int | None
) -> tuple[Entry, FeedHead]:
    """Verify that ``wire`` is the next entry of the feed whose head is ``head``.

    Args:
        head: the newest entry we hold of this feed, or None for a feed we lack.
        wire, net, now_ms: as for :func:`protocol.verify_entry`.

    Returns:
        The entry, and the feed's new head.

    Raises:
        RemoteProtocolError: WRONG_AUTHOR, SEQ_GAP (not exactly the next seq: a gap,
            or an old seq the caller should compare with what it holds, see SPEC §4.2),
            BAD_PREV, TS_BEFORE_PREV, or any error of :func:`protocol.verify_entry`.
    """
    if head is None:
        entry = verify_entry(wire, net=net, now_ms=now_ms)
    else:
        entry = verify_entry(wire, net=net, now_ms=now_ms, key=head.key, author=head.author)
    return entry, follows(head, entry)


def follows(head: FeedHead | None, entry: Entry) -> FeedHead:
    """Check that ``entry``, verified on its own by :func:`protocol.verify_entry` with
    the key of ``head``'s feed, is the next entry after ``head``: the half of
    :func:`verify_next` that needs its predecessor (a replica checks a range's
    signatures in parallel, then its links in order).

    Returns:
        The feed's head once ``entry`` is appended.

    Raises:
        RemoteProtocolError: WRONG_AUTHOR, SEQ_GAP, BAD_PREV or TS_BEFORE_PREV, as
            :func:`verify_next`.
    """
    if head is None:
        if entry.seq != 1:
            _remote(ErrorCode.SEQ_GAP, f"expected seq 1, got {entry.seq}")
        return head_after(None, entry)
    if entry.author != head.author:
        _remote(ErrorCode.WRONG_AUTHOR, "entry belongs to another feed")
    if entry.seq != head.seq + 1:
        _remote(ErrorCode.SEQ_GAP, f"expected seq {head.seq + 1}, got {entry.seq}")
    if entry.prev != head.id:
        _remote(ErrorCode.BAD_PREV, f"prev does not name entry {head.seq}")
    if entry.ts < head.ts:
        _remote(ErrorCode.TS_BEFORE_PREV, "ts is earlier than the previous entry's")
    return head_after(head, entry)


def verify_chain(
    wires: Iterable[bytes], *, net: bytes, now_ms: int | None, head: FeedHead | None = None
) -> tuple[list[Entry], FeedHead | None]:
    """Verify consecutive entries of one feed, starting after ``head``.

    Returns:
        The entries in order, and the final head.

    Raises:
        RemoteProtocolError: at the first invalid entry (``index`` is noted in the
            message); entries before it were valid.
    """
    entries: list[Entry] = []
    for index, wire in enumerate(wires):
        try:
            entry, head = verify_next(head, wire, net=net, now_ms=now_ms)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"entry {index}: {exc.message}", code=exc.code) from None
        entries.append(entry)
    return entries, head


def append(
    head: FeedHead | None,
    content: Body | Mapping[str, Any],
    *,
    key: SigningKey,
    net: bytes,
    now_ms: int,
    kind: str | None = None,
) -> Entry:
    """Create the next entry of our own feed.

    ``ts`` is ``max(now_ms, head.ts)``: a clock that jumped back (a box with no RTC
    battery after a power cut) must not produce an invalid feed.

    Raises:
        LocalProtocolError: CLOCK_UNSET if ``now_ms`` is before 2025 (the box's clock is
            not set: refuse rather than sign nonsense); BAD_KEY if ``key`` is not the
            feed's current key; any schema error of ``content``.
    """
    if now_ms < MIN_TS:
        raise LocalProtocolError("the clock is not set (before 2025)", code=ErrorCode.CLOCK_UNSET)
    if head is not None and public_key(key) != head.key:
        raise LocalProtocolError("key is not the feed's current key", code=ErrorCode.BAD_KEY)
    return create_entry(
        key=key,
        net=net,
        seq=head.seq + 1 if head else 1,
        prev=head.id if head else None,
        ts=max(now_ms, head.ts) if head else now_ms,
        content=content,
        kind=kind,
        author=head.author if head else None,
    )


def rotate_key(
    head: FeedHead, *, key: SigningKey, new_key: SigningKey, net: bytes, now_ms: int, reason: str
) -> Entry:
    """Append a ``node.key_rotate/1`` entry signed by ``key`` and ``new_key``.

    After it, :func:`append` needs ``new_key``; the feed's id stays ``head.author``.
    """
    new_public = public_key(new_key)
    statement = rotation_statement(
        net=net, author=head.author, seq=head.seq + 1, prev=head.id, new_key=new_public
    )
    body = KeyRotate(new_key=new_public, new_sig=sign(new_key, statement), reason=reason)
    return append(head, body, key=key, net=net, now_ms=now_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkProof:
    """Two valid entries by the same feed key at the same seq.

    ``first`` has the smaller id, so a fork has exactly one proof encoding. ``key`` is
    the key that signed both; a verifier must also know ``key`` was the author's key
    at that seq (it is the author itself unless the feed rotated keys).
    """

    first: Entry
    second: Entry
    key: bytes

    def to_bytes(self) -> bytes:
        return encode(
            {"a": self.first.wire, "b": self.second.wire, "key": self.key, "v": 1},
            max_size=_MAX_PROOF_BYTES,
        )


def make_fork_proof(one: Entry, other: Entry, *, key: bytes | None = None) -> ForkProof:
    """Package two verified entries as a fork proof.

    Raises:
        LocalProtocolError: NOT_A_FORK unless same author and seq and different ids.
    """
    if one.author != other.author or one.seq != other.seq or one.id == other.id:
        raise LocalProtocolError(
            "a fork is two different entries of one author at one seq",
            code=ErrorCode.NOT_A_FORK,
        )
    first, second = sorted((one, other), key=lambda entry: entry.id)
    return ForkProof(first=first, second=second, key=key or one.author)


def verify_fork_proof(data: bytes, *, net: bytes, key: bytes | None = None) -> ForkProof:
    """Check a fork proof received from a peer.

    Args:
        key: the key that was valid for the feed at the forked seq, when the feed has
            rotated keys before it; by default the author's own key. The proof names
            a key, but only the verifier knows which key the author had: without this
            check anyone could sign two entries "by" an innocent author and frame it.

    Raises:
        RemoteProtocolError: malformed, an entry invalid, BAD_SIGNATURE (not signed by
            the author's key), or NOT_A_FORK.
    """
    value = check_map("fork proof", decode(data, max_size=_MAX_PROOF_BYTES), _PROOF_FIELDS)
    if value["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "fork proof version is not 1")
    first = verify_entry(value["a"], net=net, now_ms=None, key=value["key"])
    second = verify_entry(value["b"], net=net, now_ms=None, key=value["key"])
    if value["key"] != (key or first.author):
        _remote(ErrorCode.BAD_SIGNATURE, "the proof is not signed with the author's key")
    if first.author != second.author or first.seq != second.seq or first.id == second.id:
        _remote(ErrorCode.NOT_A_FORK, "the entries are not a fork")
    if not first.id < second.id:
        _remote(ErrorCode.NON_CANONICAL, "a fork proof lists the smaller id first")
    return ForkProof(first=first, second=second, key=value["key"])
