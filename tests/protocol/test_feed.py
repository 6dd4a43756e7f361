"""Feeds (SPEC §4): hash chains, key rotation and fork proofs."""

from __future__ import annotations

from typing import Any

import pytest

import protocol
from protocol import (
    MAX_ENTRY_BYTES,
    Entry,
    ErrorCode,
    FeedHead,
    ForkProof,
    KeyRotate,
    LocalProtocolError,
    RemoteProtocolError,
    append,
    create_entry,
    encode,
    follows,
    head_after,
    make_fork_proof,
    rotate_key,
    rotation_statement,
    verify_chain,
    verify_entry,
    verify_fork_proof,
    verify_next,
)

from .conftest import (
    AUTHOR,
    KEY,
    NET,
    NOW,
    OTHER_AUTHOR,
    OTHER_KEY,
    OTHER_NET,
    THIRD_KEY,
    allocation,
    raises_code,
)

NEW_KEY = OTHER_KEY
NEW_PUBLIC = OTHER_AUTHOR


def wires(entries: list[Entry]) -> list[bytes]:
    return [entry.wire for entry in entries]


def chain_rejected(entries: list[bytes], code: ErrorCode, index: int) -> None:
    with raises_code(RemoteProtocolError, code) as info:
        verify_chain(entries, net=NET, now_ms=NOW)
    assert info.value.message.startswith(f"entry {index}: ")


def head_of(entries: list[Entry]) -> FeedHead:
    head = None
    for entry in entries:
        head = head_after(head, entry)
    assert head is not None
    return head


# --- chains -------------------------------------------------------------------------------


def test_verify_chain_of_five(feed: list[Entry]) -> None:
    entries, head = verify_chain(wires(feed), net=NET, now_ms=NOW)
    assert entries == feed
    assert [entry.seq for entry in entries] == [1, 2, 3, 4, 5]
    assert [entry.prev for entry in entries] == [None, *(entry.id for entry in feed[:4])]
    assert head == FeedHead(author=AUTHOR, seq=5, id=feed[4].id, ts=NOW + 4000, key=AUTHOR)


def test_verify_chain_in_parts(feed: list[Entry]) -> None:
    first, head = verify_chain(wires(feed[:2]), net=NET, now_ms=NOW)
    rest, final = verify_chain(wires(feed[2:]), net=NET, now_ms=NOW, head=head)
    assert first + rest == feed
    assert final == head_of(feed)


def test_verify_chain_of_nothing(feed: list[Entry]) -> None:
    assert verify_chain([], net=NET, now_ms=NOW) == ([], None)
    head = head_of(feed)
    assert verify_chain([], net=NET, now_ms=NOW, head=head) == ([], head)


def test_verify_next(feed: list[Entry]) -> None:
    entry, head = verify_next(None, feed[0].wire, net=NET, now_ms=NOW)
    assert entry == feed[0]
    entry, head = verify_next(head, feed[1].wire, net=NET, now_ms=NOW)
    assert entry == feed[1]
    assert head == head_of(feed[:2])


def test_seq_gap(feed: list[Entry]) -> None:
    chain_rejected([feed[0].wire, feed[2].wire], ErrorCode.SEQ_GAP, 1)
    chain_rejected([feed[1].wire], ErrorCode.SEQ_GAP, 0)  # a feed starts at 1
    chain_rejected([feed[0].wire, feed[1].wire, feed[1].wire], ErrorCode.SEQ_GAP, 2)
    chain_rejected([feed[0].wire, feed[0].wire], ErrorCode.SEQ_GAP, 1)


def test_bad_prev(feed: list[Entry]) -> None:
    wrong = create_entry(key=KEY, net=NET, seq=2, prev=bytes(32), ts=NOW, content=allocation())
    chain_rejected([feed[0].wire, wrong.wire], ErrorCode.BAD_PREV, 1)
    skips = create_entry(key=KEY, net=NET, seq=3, prev=feed[0].id, ts=NOW, content=allocation())
    chain_rejected([*wires(feed[:2]), skips.wire], ErrorCode.BAD_PREV, 2)


def test_wrong_author(feed: list[Entry]) -> None:
    other = create_entry(
        key=OTHER_KEY, net=NET, seq=2, prev=feed[0].id, ts=NOW, content=allocation()
    )
    chain_rejected([feed[0].wire, other.wire], ErrorCode.WRONG_AUTHOR, 1)
    # Named as another feed's entry even though its signature is also wrong for ours.
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_AUTHOR):
        verify_entry(other.wire, net=NET, now_ms=NOW, author=AUTHOR)
    assert verify_entry(other.wire, net=NET, now_ms=NOW, author=OTHER_AUTHOR) == other


def test_ts_before_prev(feed: list[Entry]) -> None:
    early = create_entry(key=KEY, net=NET, seq=2, prev=feed[0].id, ts=NOW - 1, content=allocation())
    chain_rejected([feed[0].wire, early.wire], ErrorCode.TS_BEFORE_PREV, 1)
    same = create_entry(key=KEY, net=NET, seq=2, prev=feed[0].id, ts=NOW, content=allocation())
    assert verify_chain([feed[0].wire, same.wire], net=NET, now_ms=NOW)[0][1] == same


def test_follows_is_the_linking_half_of_verify_next(feed: list[Entry]) -> None:
    """verify_entry then follows judges an entry exactly as verify_next does, each
    link error included (a replica checks signatures in parallel, links in order)."""
    head = head_of(feed[:2])
    assert follows(None, feed[0]) == head_of(feed[:1])
    assert follows(head_of(feed[:1]), feed[1]) == head
    content = allocation()
    other = create_entry(key=OTHER_KEY, net=NET, seq=3, prev=feed[1].id, ts=NOW, content=content)
    bad = {
        ErrorCode.SEQ_GAP: feed[3],
        ErrorCode.BAD_PREV: create_entry(
            key=KEY, net=NET, seq=3, prev=feed[0].id, ts=NOW, content=content
        ),
        ErrorCode.TS_BEFORE_PREV: create_entry(
            key=KEY, net=NET, seq=3, prev=feed[1].id, ts=feed[1].ts - 1, content=content
        ),
        ErrorCode.WRONG_AUTHOR: other,
    }
    for code, entry in bad.items():
        with raises_code(RemoteProtocolError, code):
            follows(head, entry)
        with raises_code(RemoteProtocolError, code):
            verify_next(head, entry.wire, net=NET, now_ms=NOW)
    with raises_code(RemoteProtocolError, ErrorCode.SEQ_GAP):
        follows(None, feed[1])  # a feed starts at 1


def test_chain_reports_entry_errors_with_their_index(feed: list[Entry]) -> None:
    tampered = feed[3].wire[:-1] + bytes([feed[3].wire[-1] ^ 1])
    chain_rejected([*wires(feed[:3]), tampered], ErrorCode.BAD_SIGNATURE, 3)
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_NET):
        verify_chain(wires(feed), net=OTHER_NET, now_ms=NOW)


def test_chain_checks_the_clock(feed: list[Entry]) -> None:
    with raises_code(RemoteProtocolError, ErrorCode.TS_IN_FUTURE) as info:
        verify_chain(wires(feed), net=NET, now_ms=NOW - protocol.MAX_CLOCK_SKEW_MS - 1)
    assert info.value.message.startswith("entry 0: ")
    entries, _ = verify_chain(wires(feed), net=NET, now_ms=None)
    assert entries == feed


# --- key rotation -----------------------------------------------------------------------


@pytest.fixture
def rotated(feed: list[Entry]) -> list[Entry]:
    """feed[:2], a rotation to NEW_KEY at seq 3, and one entry signed by NEW_KEY."""
    head = head_of(feed[:2])
    rotation = rotate_key(
        head, key=KEY, new_key=NEW_KEY, net=NET, now_ms=NOW + 2000, reason="compromise"
    )
    head = head_after(head, rotation)
    after = append(head, allocation(quantity=9), key=NEW_KEY, net=NET, now_ms=NOW + 3000)
    return [*feed[:2], rotation, after]


def test_rotation_hands_the_feed_to_the_new_key(rotated: list[Entry]) -> None:
    rotation, after = rotated[2], rotated[3]
    assert rotation.body == KeyRotate(
        new_key=NEW_PUBLIC,
        new_sig=NEW_KEY.sign(
            rotation_statement(
                net=NET, author=AUTHOR, seq=3, prev=rotated[1].id, new_key=NEW_PUBLIC
            )
        ).signature,
        reason="compromise",
    )
    entries, head = verify_chain(wires(rotated), net=NET, now_ms=NOW)
    assert entries == rotated
    assert head is not None
    # The feed id stays the author; only the signing key changed.
    assert (head.author, head.key, head.seq) == (AUTHOR, NEW_PUBLIC, 4)
    assert after.author == AUTHOR
    assert verify_entry(after.wire, net=NET, now_ms=NOW, key=NEW_PUBLIC) == after
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_entry(after.wire, net=NET, now_ms=NOW)  # not the author's key any more


def test_rotation_statement_bytes() -> None:
    statement = rotation_statement(
        net=NET, author=AUTHOR, seq=3, prev=b"\x07" * 32, new_key=NEW_PUBLIC
    )
    assert statement == (
        protocol.ROTATE_TAG
        + b"\x85"
        + b"\xa6author\xc4\x20"
        + AUTHOR
        + b"\xa3net\xc4\x20"
        + NET
        + b"\xa7new_key\xc4\x20"
        + NEW_PUBLIC
        + b"\xa4prev\xc4\x20"
        + b"\x07" * 32
        + b"\xa3seq\x03"
    )


def test_after_rotation_the_old_key_is_refused(rotated: list[Entry]) -> None:
    head = head_of(rotated[:3])
    with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
        append(head, allocation(), key=KEY, net=NET, now_ms=NOW + 3000)
    # An entry the old key signs anyway (a thief with the old key) does not verify.
    stolen = create_entry(
        key=KEY,
        net=NET,
        seq=4,
        prev=rotated[2].id,
        ts=NOW + 3000,
        content=allocation(),
        author=AUTHOR,
    )
    chain_rejected([*wires(rotated[:3]), stolen.wire], ErrorCode.BAD_SIGNATURE, 3)


def test_rotating_twice(rotated: list[Entry]) -> None:
    head = head_of(rotated)
    again = rotate_key(
        head, key=NEW_KEY, new_key=THIRD_KEY, net=NET, now_ms=NOW + 4000, reason="scheduled"
    )
    head = head_after(head, again)
    last = append(head, allocation(), key=THIRD_KEY, net=NET, now_ms=NOW + 5000)
    entries, final = verify_chain(wires([*rotated, again, last]), net=NET, now_ms=NOW)
    assert entries[-1] == last
    assert final is not None
    assert (final.author, final.key, final.seq) == (AUTHOR, protocol.public_key(THIRD_KEY), 6)


def rotation_with(new_sig: bytes, new_key: bytes = NEW_PUBLIC) -> dict[str, Any]:
    return {"new_key": new_key, "new_sig": new_sig, "reason": "scheduled"}


def test_rotation_with_a_wrong_new_sig(feed: list[Entry]) -> None:
    head = head_of(feed[:2])

    def statement(**changes: Any) -> bytes:
        fields: dict[str, Any] = {
            "net": NET,
            "author": AUTHOR,
            "seq": 3,
            "prev": feed[1].id,
            "new_key": NEW_PUBLIC,
        }
        fields.update(changes)
        return rotation_statement(**fields)

    bad_sigs = {
        "other seq": NEW_KEY.sign(statement(seq=4)).signature,
        "other prev": NEW_KEY.sign(statement(prev=feed[0].id)).signature,
        "other net": NEW_KEY.sign(statement(net=OTHER_NET)).signature,
        "other author": NEW_KEY.sign(statement(author=OTHER_AUTHOR)).signature,
        "signed by a third key": THIRD_KEY.sign(statement()).signature,
        "without the tag": NEW_KEY.sign(statement()[len(protocol.ROTATE_TAG) :]).signature,
        "zeros": bytes(64),
    }
    for why, new_sig in bad_sigs.items():
        content = rotation_with(new_sig)
        with raises_code(LocalProtocolError, ErrorCode.BAD_SIGNATURE):
            append(head, content, key=KEY, net=NET, now_ms=NOW, kind=KeyRotate.KIND)
        # The same entry signed (by the right feed key) and received from a peer:
        wire = _sign_unchecked(head, content)
        with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
            verify_next(head, wire, net=NET, now_ms=NOW)
        assert why


def _sign_unchecked(head: FeedHead, content: dict[str, Any]) -> bytes:
    payload = encode(
        {
            "author": head.author,
            "content": content,
            "kind": KeyRotate.KIND,
            "net": NET,
            "prev": head.id,
            "seq": head.seq + 1,
            "ts": NOW + 5000,
            "v": 1,
        }
    )
    return encode([payload, KEY.sign(protocol.ENTRY_TAG + payload).signature])


def test_rotation_to_the_same_key(feed: list[Entry]) -> None:
    head = head_of(feed[:2])
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        rotate_key(head, key=KEY, new_key=KEY, net=NET, now_ms=NOW, reason="scheduled")
    statement = rotation_statement(net=NET, author=AUTHOR, seq=3, prev=head.id, new_key=AUTHOR)
    wire = _sign_unchecked(head, rotation_with(KEY.sign(statement).signature, AUTHOR))
    with raises_code(RemoteProtocolError, ErrorCode.BAD_VALUE):
        verify_next(head, wire, net=NET, now_ms=NOW)


def test_rotation_with_a_bad_reason(feed: list[Entry]) -> None:
    head = head_of(feed[:2])
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        rotate_key(head, key=KEY, new_key=NEW_KEY, net=NET, now_ms=NOW, reason="whim")


# --- fork proofs ------------------------------------------------------------------------


@pytest.fixture
def fork() -> tuple[Entry, Entry]:
    one = append(None, allocation(quantity=1), key=KEY, net=NET, now_ms=NOW)
    two = append(None, allocation(quantity=2), key=KEY, net=NET, now_ms=NOW)
    assert one.id != two.id
    return one, two


def test_fork_proof_round_trip(fork: tuple[Entry, Entry]) -> None:
    one, two = fork
    proof = make_fork_proof(one, two)
    assert proof.first.id < proof.second.id
    assert [proof.first, proof.second] == sorted(fork, key=lambda entry: entry.id)
    assert proof.key == AUTHOR
    assert verify_fork_proof(proof.to_bytes(), net=NET) == proof


def test_fork_proof_is_canonical(fork: tuple[Entry, Entry]) -> None:
    one, two = fork
    data = make_fork_proof(one, two).to_bytes()
    assert make_fork_proof(two, one).to_bytes() == data
    first, second = sorted(fork, key=lambda entry: entry.id)
    size = len(first.wire).to_bytes(2, "big")
    assert data == (
        b"\x84"
        + b"\xa1a\xc5"
        + size
        + first.wire
        + b"\xa1b\xc5"
        + len(second.wire).to_bytes(2, "big")
        + second.wire
        + b"\xa3key\xc4\x20"
        + AUTHOR
        + b"\xa1v\x01"
    )


def test_not_a_fork(fork: tuple[Entry, Entry], feed: list[Entry]) -> None:
    one, _ = fork
    with raises_code(LocalProtocolError, ErrorCode.NOT_A_FORK):
        make_fork_proof(one, one)
    with raises_code(LocalProtocolError, ErrorCode.NOT_A_FORK):
        make_fork_proof(feed[0], feed[1])  # different seq
    other = append(None, allocation(), key=OTHER_KEY, net=NET, now_ms=NOW)
    with raises_code(LocalProtocolError, ErrorCode.NOT_A_FORK):
        make_fork_proof(one, other)  # different authors
    for a, b in ((one, one), (feed[0], feed[1])):
        data = encode({"a": a.wire, "b": b.wire, "key": AUTHOR, "v": 1})
        with raises_code(RemoteProtocolError, ErrorCode.NOT_A_FORK):
            verify_fork_proof(data, net=NET)


def test_fork_proof_of_two_authors_is_refused(fork: tuple[Entry, Entry]) -> None:
    one, _ = fork
    other = append(None, allocation(), key=OTHER_KEY, net=NET, now_ms=NOW)
    data = encode({"a": one.wire, "b": other.wire, "key": AUTHOR, "v": 1})
    # other is not signed by the proof's key
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_fork_proof(data, net=NET)


def test_fork_proof_with_entries_swapped(fork: tuple[Entry, Entry]) -> None:
    proof = make_fork_proof(*fork)
    swapped = encode({"a": proof.second.wire, "b": proof.first.wire, "key": AUTHOR, "v": 1})
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        verify_fork_proof(swapped, net=NET)


def test_tampered_fork_proof(fork: tuple[Entry, Entry]) -> None:
    proof = make_fork_proof(*fork)
    data = proof.to_bytes()
    # The last byte of the first entry's signature: after the 6 bytes of framing
    # (map header, "a", bin16 header) and the wire.
    position = 6 + len(proof.first.wire)
    assert data[6:position] == proof.first.wire
    tampered = bytearray(data)
    tampered[position - 1] ^= 0x01
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_fork_proof(bytes(tampered), net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        verify_fork_proof(data[:-1], net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_NET):
        verify_fork_proof(data, net=OTHER_NET)


def test_fork_proof_cannot_frame_an_author(fork: tuple[Entry, Entry]) -> None:
    # Anyone can sign two entries naming AUTHOR with their own key; a proof naming that
    # key must not convict AUTHOR.
    forged = [
        create_entry(
            key=OTHER_KEY,
            net=NET,
            seq=1,
            prev=None,
            ts=NOW,
            content=allocation(quantity=q),
            author=AUTHOR,
        )
        for q in (1, 2)
    ]
    proof = make_fork_proof(*forged, key=OTHER_AUTHOR)
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_fork_proof(proof.to_bytes(), net=NET)
    # Unless the verifier knows that key was the feed's key (it rotated to it).
    assert verify_fork_proof(proof.to_bytes(), net=NET, key=OTHER_AUTHOR) == proof
    genuine = make_fork_proof(*fork)
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_fork_proof(genuine.to_bytes(), net=NET, key=OTHER_AUTHOR)


def test_fork_after_rotation(rotated: list[Entry]) -> None:
    head = head_of(rotated[:3])
    one = append(head, allocation(quantity=1), key=NEW_KEY, net=NET, now_ms=NOW + 9000)
    two = append(head, allocation(quantity=2), key=NEW_KEY, net=NET, now_ms=NOW + 9000)
    proof = make_fork_proof(one, two, key=NEW_PUBLIC)
    assert verify_fork_proof(proof.to_bytes(), net=NET, key=NEW_PUBLIC) == proof
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_fork_proof(proof.to_bytes(), net=NET)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"v": 2}, ErrorCode.UNSUPPORTED_VERSION),
        ({"v": 0}, ErrorCode.UNSUPPORTED_VERSION),
        ({"v": "1"}, ErrorCode.WRONG_TYPE),
        ({"key": AUTHOR[:31]}, ErrorCode.BAD_VALUE),
        ({"key": AUTHOR.hex()}, ErrorCode.WRONG_TYPE),
        ({"a": "wire"}, ErrorCode.WRONG_TYPE),
        ({"b": None}, ErrorCode.WRONG_TYPE),
        ({"a": bytes(MAX_ENTRY_BYTES + 1)}, ErrorCode.BAD_VALUE),
        ({"c": 1}, ErrorCode.UNKNOWN_FIELD),
    ],
)
def test_fork_proof_fields(
    fork: tuple[Entry, Entry], changes: dict[str, Any], code: ErrorCode
) -> None:
    proof = make_fork_proof(*fork)
    fields = {"a": proof.first.wire, "b": proof.second.wire, "key": AUTHOR, "v": 1, **changes}
    with raises_code(RemoteProtocolError, code):
        verify_fork_proof(encode(fields), net=NET)


def test_fork_proof_shape(fork: tuple[Entry, Entry]) -> None:
    proof = make_fork_proof(*fork)
    with raises_code(RemoteProtocolError, ErrorCode.MISSING_FIELD):
        verify_fork_proof(encode({"a": proof.first.wire, "key": AUTHOR, "v": 1}), net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_TYPE):
        verify_fork_proof(encode([proof.first.wire, proof.second.wire]), net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        verify_fork_proof(b"", net=NET)
    assert isinstance(proof, ForkProof)
