"""Hostile input for every decoder of ``protocol`` that other tests do not reach yet
(STYLE §6: "a decoder that raises anything but ProtocolError on hostile input has a bug").

Arbitrary bytes mostly die at the first byte or at the signature. So the properties here
are *structure-aware*: valid documents whose fields are replaced, removed or added and
which are then **signed** (so the signature passes and the parsing behind it runs),
valid encodings mutated byte by byte, and arbitrary request targets and header sets
around a valid HTTP signature. A decoder may raise only RemoteProtocolError with an
ErrorCode; anything else (KeyError, ValueError, LocalProtocolError...) fails the test.
Where a decoder accepts the input, the property checks what it returned as well.

Decoders, and where each is fuzzed:

=========================================  ============================================
``decode``                                 test_properties (bytes, any msgpack); here:
                                           mutated encodings, deep nesting, huge lengths
``verify_entry``                           test_properties (bytes, mutations, bit flips);
                                           here: signed payloads with fuzzed fields, every
                                           known kind with fuzzed content, key/author
``entry_position``                         here
``verify_next`` / ``verify_chain``         here (shuffled, mutated feeds, any head)
``verify_fork_proof``                      test_properties; here: fuzzed proof maps
``open_envelope`` / ``unseal``             test_properties; here: signed inner payloads
                                           with fuzzed fields and content, key lookups
``parse_genesis``                          test_federation (bytes); here: signed fields
``parse_invite``                           test_federation (text); here: fuzzed documents,
                                           mutated tokens, tokens that are not text
``Body.check_content`` (every kind)        here
``verify_request`` / ``verify_response`` / test_httpsig (header values); here: targets,
``check_content_digest``                   header sets, statuses
``_sfv.parse_dictionary``                  here (SFError only)
``oprf.check_elements``, ``evaluate_share``here; ``blind_evaluate``, ``verify_proof``,
``ShareEvaluation``                        ``combine``, ``finalize``: test_oprf
``python -m protocol decode``              here (exit 0 or 2 and JSON, never a traceback)
=========================================  ============================================

Synchronous, like all of tests/protocol: no event loop.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from nacl.public import PublicKey, SealedBox

import protocol
from protocol import (
    ENTRY_KINDS,
    ENTRY_TAG,
    GENESIS_TAG,
    INVITE_PREFIX,
    MAX_SEQ,
    MAX_TS,
    MESSAGE_KINDS,
    MESSAGE_TAG,
    MIN_TS,
    ErrorCode,
    RemoteProtocolError,
    _cli,
    _json,
    decode,
    encode,
    oprf,
)
from protocol._sfv import SFError, parse_dictionary, serialize_dictionary

from .conftest import (
    ALLOCATION_CONTENT,
    AUTHOR,
    CHECKPOINT_CONTENT,
    KEY,
    NET,
    NOW,
    ORACLE_CONFIG_CONTENT,
    ORACLE_USAGE_CONTENT,
    OTHER_AUTHOR,
    OTHER_ENC_SECRET,
    OTHER_KEY,
    OTHER_NET,
    PROFILE_CONTENT,
    VOID_CONTENT,
    VOUCH_CONTENT,
    allocation,
    payload_fields,
)
from .test_properties import MUTATION, VALUES, WILD, mutate

FUZZ = settings(deadline=None, max_examples=250, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

# --- building blocks ----------------------------------------------------------------------

#: Values a careless or hostile peer puts where a field belongs: anything msgpack carries
#: (floats, ext, unsorted maps, non-str keys: see test_properties.WILD) and the edges of
#: the fields' own ranges, which random values rarely hit.
EDGES = st.sampled_from(
    [
        0,
        -1,
        1,
        2**32 - 1,
        2**32,
        2**53 - 1,
        2**53,
        2**63 - 1,
        2**63,
        2**64 - 1,
        -(2**63),
        MIN_TS - 1,
        MIN_TS,
        MAX_TS,
        MAX_TS + 1,
        NOW + 10**9,
        True,
        False,
        None,
        b"",
        bytes(16),
        bytes(31),
        bytes(32),
        bytes(33),
        bytes(64),
        AUTHOR,
        OTHER_AUTHOR,
        NET,
        "",
        " ",
        "a" * 300,
        "\u202e",
        "\x00",
        "msg.text/1",
        "node.key_rotate/1",
        "ataa.allocation/1",
        "test.unknown/1",
        "https://x.example/fed/v1",
        [],
        {},
        [b""],
        [AUTHOR, AUTHOR],
        {"a": 1},
        1.5,
        msgpack.ExtType(1, b"x"),
    ]
)
ANY_VALUE = EDGES | WILD


def sort_maps(value: Any) -> Any:
    """Maps with str keys sorted (as the profile wants), other keys left as they are:
    so that fuzzed documents get past the key-order check to the checks behind it."""
    if isinstance(value, dict):
        items = list(value.items())
        if all(type(k) is str for k, _ in items):
            items.sort(key=lambda kv: kv[0])
        return {k: sort_maps(v) for k, v in items}
    if isinstance(value, list):
        return [sort_maps(v) for v in value]
    return value


def pack(value: Any, *, sort: bool = True) -> bytes:
    """Plain msgpack, maps sorted by default: valid or not, whatever the value holds."""
    return msgpack.packb(sort_maps(value) if sort else value, use_bin_type=True)  # type: ignore[no-any-return]


def fuzz_map(base: dict[str, Any], data: st.DataObject, values: Any = ANY_VALUE) -> dict[str, Any]:
    """``base`` with one to three fields replaced, removed or added."""
    fields = dict(base)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "add" or not fields:
            name = data.draw(st.sampled_from([*base, "x", "", "zz", "é"]) | st.text(max_size=5))
            fields[name] = data.draw(values)
        elif action == "replace":
            fields[data.draw(st.sampled_from(sorted(fields)))] = data.draw(values)
        else:
            del fields[data.draw(st.sampled_from(sorted(fields)))]
    return fields


def only_remote(call: Callable[[], Any]) -> Any:
    """Run a decoder: its result, or None if it raised RemoteProtocolError with a code.
    Any other exception propagates and fails the property."""
    try:
        return call()
    except RemoteProtocolError as error:
        assert isinstance(error.code, ErrorCode)
        return None


def sign_entry_fields(fields: dict[str, Any], *, sort: bool = True) -> bytes:
    """An entry wire whose payload is ``fields`` packed as given, signed by KEY."""
    payload = pack(fields, sort=sort)
    return pack([payload, KEY.sign(ENTRY_TAG + payload).signature])


# --- the encoding profile -----------------------------------------------------------------


@FUZZ
@given(VALUES, st.lists(MUTATION, min_size=1, max_size=3))
def test_decode_mutated_encodings(value: Any, mutations: list[tuple[str, int, int]]) -> None:
    data = mutate(encode(value), mutations)
    decoded = only_remote(lambda: decode(data))
    if decoded is not None or data == b"\xc0":
        assert encode(decoded) == data  # what is accepted is the one encoding of its value


# A container header (fixarray/fixmap, array16/32, map16/32, str/bin 8/16/32) that
# declares far more than follows, nested as deep as anyone likes.
HEADERS = st.one_of(
    st.just(b"\x91"),  # honest nesting: an array of one...
    st.just(b"\x81\xa1k"),  # ...or a map of one, {"k": ...}
    st.sampled_from(
        [
            *(b"\xdc\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xde\xff\xff", b"\xdf\xff\xff\xff\xff"),
            *(b"\xd9\xff", b"\xda\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"),
            *(b"\xc7\xff\x01", b"\xcb", b"\xc1"),
        ]
    ),
)
LEAVES = st.sampled_from([b"\xc0", b"\x01", b"\xa0", b"\x90"]) | st.binary(max_size=8)


@FUZZ
@given(st.lists(HEADERS, min_size=1, max_size=40), LEAVES)
@example([b"\x91"] * 17, b"\xc0")  # one level deeper than MAX_DEPTH
def test_decode_deep_and_lying_headers(headers: list[bytes], tail: bytes) -> None:
    data = b"".join(headers) + tail
    decoded = only_remote(lambda: decode(data))
    if decoded is not None:
        assert encode(decoded) == data


@FEW
@given(st.lists(st.sampled_from([b"\x91", b"\x81\xa1k"]), min_size=1, max_size=60), LEAVES)
def test_decode_nesting_of_any_depth(headers: list[bytes], leaf: bytes) -> None:
    decoded = only_remote(lambda: decode(b"".join(headers) + leaf))
    if len(headers) > protocol.MAX_DEPTH:
        assert decoded is None


# --- entries ------------------------------------------------------------------------------


def check_accepted_entry(entry: protocol.Entry, wire: bytes) -> None:
    """What a verified entry must satisfy, however it was made."""
    assert entry.wire == wire and entry.id == hashlib.sha256(wire).digest()
    assert decode(entry.payload)["content"] == entry.content
    body = entry.body
    if body is not None:
        assert encode(body.to_content()) == encode(entry.content)
    # every view of it works: the CLI's JSON, and the position a node routes it by
    json.dumps(_json.entry_json(entry))
    assert protocol.entry_position(wire, net=NET, now_ms=None) == (entry.author, entry.seq)


@FUZZ
@given(st.data(), st.booleans())
def test_signed_payloads_with_fuzzed_fields(data: st.DataObject, sort: bool) -> None:
    fields = fuzz_map(payload_fields(content={"n": 1}, kind="test.note/1"), data)
    wire = sign_entry_fields(fields, sort=sort)
    now_ms = data.draw(st.sampled_from([None, NOW]))
    entry = only_remote(lambda: protocol.verify_entry(wire, net=NET, now_ms=now_ms))
    if entry is not None:
        check_accepted_entry(entry, wire)
    position = only_remote(lambda: protocol.entry_position(wire, net=NET, now_ms=now_ms))
    if position is not None:
        author, seq = position
        assert type(author) is bytes and len(author) == 32 and 1 <= seq <= MAX_SEQ


def rotation_content() -> dict[str, Any]:
    head = protocol.head_after(
        None, protocol.append(None, allocation(), key=KEY, net=NET, now_ms=NOW)
    )
    entry = protocol.rotate_key(
        head, key=KEY, new_key=OTHER_KEY, net=NET, now_ms=NOW, reason="scheduled"
    )
    return dict(entry.content)


#: The prev the rotation content was signed for (seq 2 of KEY's feed).
CONTENT_PREV = protocol.append(None, allocation(), key=KEY, net=NET, now_ms=NOW).id
THREAD = hashlib.sha256(b"thread").digest()
TEXT_CONTENT: dict[str, Any] = {
    "attachments": [{"data": b"%PDF-1.7", "name": "list.pdf", "type": "application/pdf"}],
    "subject": "توزيع",
    "text": "نص\nالرسالة",
    "thread": THREAD,
}
RECEIPT_CONTENT: dict[str, Any] = {"message": THREAD, "state": "read"}
#: Valid content of every kind this version interprets (entries and messages).
CONTENT: dict[str, dict[str, Any]] = {
    "ataa.allocation/1": ALLOCATION_CONTENT,
    "ataa.allocation_void/1": VOID_CONTENT,
    "node.checkpoint/1": CHECKPOINT_CONTENT,
    "node.key_rotate/1": rotation_content(),
    "node.profile/1": PROFILE_CONTENT,
    "node.vouch/1": VOUCH_CONTENT,
    "oracle.config/1": ORACLE_CONFIG_CONTENT,
    "oracle.usage/1": ORACLE_USAGE_CONTENT,
    "msg.text/1": TEXT_CONTENT,
    "msg.receipt/1": RECEIPT_CONTENT,
}
KINDS = {**ENTRY_KINDS, **MESSAGE_KINDS}


def test_every_kind_has_valid_content_here() -> None:
    # A kind added to the registries must get fuzzed content here too.
    assert set(CONTENT) == set(KINDS)
    for kind, content in CONTENT.items():
        assert KINDS[kind].from_content(content).to_content() == content


def content_values(kind: str) -> Any:
    """Values for a kind's fields: anything, plus valid values of its other fields and
    nested shapes (an attachment map, a list of keys) that reach the deeper checks."""
    valid = list(CONTENT[kind].values())
    nested = [
        [dict(TEXT_CONTENT["attachments"][0])] * 9,
        [{**TEXT_CONTENT["attachments"][0], "data": 1}],
        [{"name": "x"}],
        [AUTHOR, OTHER_AUTHOR],
        [OTHER_AUTHOR, AUTHOR],
        [1, 2],
    ]
    return ANY_VALUE | st.sampled_from(valid + nested)


@FUZZ
@given(st.sampled_from(sorted(CONTENT)), st.data())
def test_kind_content(kind: str, data: st.DataObject) -> None:
    spec = KINDS[kind]
    content = fuzz_map(CONTENT[kind], data, content_values(kind))
    checked = only_remote(lambda: spec.check_content(sort_maps(content)))
    if checked is not None:
        body = spec.build(checked)
        assert encode(body.to_content()) == encode(sort_maps(content))


@FUZZ
@given(st.sampled_from(sorted(ENTRY_KINDS)), st.data())
def test_signed_entries_of_known_kinds_with_fuzzed_content(kind: str, data: st.DataObject) -> None:
    content = fuzz_map(CONTENT[kind], data, content_values(kind))
    seq = 2 if kind == "node.key_rotate/1" else 1
    prev = CONTENT_PREV if seq == 2 else None
    wire = sign_entry_fields(payload_fields(content=content, kind=kind, seq=seq, prev=prev))
    entry = only_remote(lambda: protocol.verify_entry(wire, net=NET, now_ms=NOW))
    if entry is not None:
        check_accepted_entry(entry, wire)


@FEW
@given(st.binary(max_size=40) | st.sampled_from([AUTHOR, OTHER_AUTHOR]), st.data())
def test_verify_entry_with_any_key_and_author(key: bytes, data: st.DataObject) -> None:
    wire = protocol.append(None, allocation(), key=KEY, net=NET, now_ms=NOW).wire
    author = data.draw(st.none() | st.binary(max_size=40) | st.just(AUTHOR))
    entry = only_remote(
        lambda: protocol.verify_entry(wire, net=NET, now_ms=NOW, key=key, author=author)
    )
    if entry is not None:
        # an empty key is no key: the author's own (``key or author``)
        assert (key or AUTHOR) == AUTHOR and author in (None, AUTHOR)


def _feed(count: int) -> list[protocol.Entry]:
    entries, head = [], None
    for index in range(count):
        entry = protocol.append(
            head, allocation(quantity=index + 1), key=KEY, net=NET, now_ms=NOW + index
        )
        entries.append(entry)
        head = protocol.head_after(head, entry)
    return entries


FEED = _feed(4)
HEADS: list[protocol.FeedHead | None] = [None]
for _entry in FEED:
    HEADS.append(protocol.head_after(HEADS[-1], _entry))


def mutated_wire(mutations: list[tuple[str, int, int]]) -> bytes:
    return mutate(FEED[1].wire, mutations)


@FUZZ
@given(
    st.binary(max_size=200) | st.builds(mutated_wire, st.lists(MUTATION, min_size=1, max_size=3))
)
def test_entry_position_of_arbitrary_and_mutated_wires(wire: bytes) -> None:
    position = only_remote(lambda: protocol.entry_position(wire, net=NET, now_ms=NOW))
    if position is not None:
        author, seq = position
        assert type(author) is bytes and len(author) == 32 and 1 <= seq <= MAX_SEQ


@FUZZ
@given(
    st.lists(st.sampled_from(range(len(FEED))), max_size=6),
    st.sampled_from(range(len(HEADS))),
    st.lists(MUTATION, max_size=2),
    st.integers(0, 5),
)
def test_verify_chain_of_shuffled_and_mutated_feeds(
    order: list[int], start: int, mutations: list[tuple[str, int, int]], victim: int
) -> None:
    wires = [FEED[i].wire for i in order]
    if wires and mutations:
        wires[victim % len(wires)] = mutate(wires[victim % len(wires)], mutations)
    head = HEADS[start]
    result = only_remote(lambda: protocol.verify_chain(wires, net=NET, now_ms=NOW, head=head))
    if result is not None:
        entries, final = result
        # only the feed's own next entries, in order, verify after its head
        assert [e.wire for e in entries] == [e.wire for e in FEED[start : start + len(wires)]]
        assert final == HEADS[start + len(wires)]


# --- fork proofs ----------------------------------------------------------------------------

_FORKED = protocol.append(None, allocation(quantity=7), key=KEY, net=NET, now_ms=NOW)
_FIRST, _SECOND = sorted([FEED[0], _FORKED], key=lambda e: e.id)
PROOF_FIELDS: dict[str, Any] = {"a": _FIRST.wire, "b": _SECOND.wire, "key": AUTHOR, "v": 1}
_OTHER_FEED = protocol.append(None, allocation(), key=OTHER_KEY, net=NET, now_ms=NOW)
WIRES = st.sampled_from([e.wire for e in (*FEED, _FORKED, _OTHER_FEED)])


@FUZZ
@given(st.data(), st.none() | st.sampled_from([AUTHOR, OTHER_AUTHOR, b"", bytes(40)]))
def test_fork_proofs_with_fuzzed_fields(data: st.DataObject, key: bytes | None) -> None:
    fields = fuzz_map(PROOF_FIELDS, data, ANY_VALUE | WIRES)
    proof = pack(fields)
    verified = only_remote(lambda: protocol.verify_fork_proof(proof, net=NET, key=key))
    if verified is not None:
        assert verified.to_bytes() == proof
        assert verified.first.author == verified.second.author == AUTHOR


# --- sealed messages ------------------------------------------------------------------------

RECIPIENT_ENC_KEY = protocol.enc_public_key(OTHER_ENC_SECRET)
MESSAGE_FIELDS: dict[str, Any] = {
    "content": TEXT_CONTENT,
    "from": AUTHOR,
    "kind": "msg.text/1",
    "net": NET,
    "nonce": bytes(16),
    "to": OTHER_AUTHOR,
    "ts": NOW,
    "v": 1,
}


def seal_fields(fields: dict[str, Any], *, envelope: dict[str, Any] | None = None) -> bytes:
    """A genuine envelope to OTHER_AUTHOR around ``fields``, signed by KEY."""
    payload = pack(fields)
    inner = pack([payload, KEY.sign(MESSAGE_TAG + payload).signature])
    box = SealedBox(PublicKey(RECIPIENT_ENC_KEY)).encrypt(inner)
    outer = {
        "box": box,
        "id": hashlib.sha256(inner).digest(),
        "net": NET,
        "to": OTHER_AUTHOR,
        "v": 1,
    }
    return pack({**outer, **(envelope or {})})


SENDER_KEYS = st.none() | st.lists(
    st.sampled_from([AUTHOR, OTHER_AUTHOR, b"", bytes(31)]) | st.binary(max_size=40), max_size=3
)


@FUZZ
@given(st.data(), SENDER_KEYS)
def test_unseal_signed_messages_with_fuzzed_fields(
    data: st.DataObject, keys: list[bytes] | None
) -> None:
    fields = fuzz_map(MESSAGE_FIELDS, data)
    if data.draw(st.booleans(), label="fuzz the content instead"):
        kind = data.draw(st.sampled_from(["msg.text/1", "msg.receipt/1", "msg.unknown/1"]))
        base = CONTENT.get(kind, {"any": [1, b"2"]})
        fields = {
            **MESSAGE_FIELDS,
            "kind": kind,
            "content": fuzz_map(base, data, content_values("msg.text/1")),
        }
    envelope = seal_fields(fields)
    lookup = None if keys is None else (lambda sender: keys)
    message = only_remote(
        lambda: protocol.unseal(
            envelope,
            net=NET,
            recipient=OTHER_AUTHOR,
            enc_secret=OTHER_ENC_SECRET,
            now_ms=NOW,
            sender_keys=lookup,
        )
    )
    if message is not None:
        assert message.sender == AUTHOR and message.to == OTHER_AUTHOR
        assert keys is None or AUTHOR in keys
        if message.body is not None:
            assert encode(message.body.to_content()) == encode(message.content)


@FEW
@given(st.data())
def test_envelopes_with_fuzzed_fields(data: st.DataObject) -> None:
    envelope = pack(fuzz_map(decode(seal_fields(MESSAGE_FIELDS)), data))
    opened = only_remote(lambda: protocol.open_envelope(envelope, net=NET))
    if opened is not None:
        assert opened.wire == envelope
    only_remote(
        lambda: protocol.unseal(
            envelope, net=NET, recipient=OTHER_AUTHOR, enc_secret=OTHER_ENC_SECRET, now_ms=NOW
        )
    )


# --- genesis and invites --------------------------------------------------------------------

GENESIS_FIELDS: dict[str, Any] = {"founder": AUTHOR, "name": "Basra hub", "ts": NOW, "v": 1}


def sign_genesis(fields: dict[str, Any]) -> bytes:
    payload = pack(fields)
    return pack([payload, KEY.sign(GENESIS_TAG + payload).signature])


GENESIS = protocol.parse_genesis(sign_genesis(GENESIS_FIELDS))


@FUZZ
@given(st.data(), st.none() | st.sampled_from([GENESIS.net, OTHER_NET]))
def test_signed_genesis_with_fuzzed_fields(data: st.DataObject, net: bytes | None) -> None:
    wire = sign_genesis(fuzz_map(GENESIS_FIELDS, data))
    if data.draw(st.booleans(), label="mutate"):
        wire = mutate(wire, data.draw(st.lists(MUTATION, min_size=1, max_size=2)))
    genesis = only_remote(lambda: protocol.parse_genesis(wire, net=net))
    if genesis is not None:
        assert genesis.wire == wire and genesis.net == hashlib.sha256(wire).digest()
        assert net in (None, genesis.net)


INVITE_FIELDS: dict[str, Any] = {
    "expires": NOW + 86_400_000,
    "genesis": GENESIS.wire,
    "node": AUTHOR,
    "secret": bytes(range(32)),
    "url": "http://10.0.0.5:8470/fed/v1",
    "v": 1,
}


def token_of(document: bytes) -> str:
    return INVITE_PREFIX + base64.urlsafe_b64encode(document).rstrip(b"=").decode("ascii")


def parse_invite_or_none(token: Any) -> protocol.Invite | None:
    invite: protocol.Invite | None = only_remote(lambda: protocol.parse_invite(token))
    if invite is not None:
        assert invite.to_token() == token.strip()
    return invite


@FUZZ
@given(st.data())
def test_invites_with_fuzzed_fields(data: st.DataObject) -> None:
    values = ANY_VALUE | st.sampled_from([sign_genesis({**GENESIS_FIELDS, "v": 2}), b"\x92"])
    parse_invite_or_none(token_of(pack(fuzz_map(INVITE_FIELDS, data, values))))


TOKEN = token_of(encode(INVITE_FIELDS)) + "\n"
TOKEN_CHARS = st.sampled_from([*"A_-=+/. \t\n\u0661é", "", "watan-invite-1."])


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(TOKEN)), TOKEN_CHARS, st.integers(0, 2)),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_invite_tokens(edits: list[tuple[int, str, int]]) -> None:
    token = TOKEN
    for index, char, drop in edits:
        token = token[:index] + char + token[index + drop :]
    parse_invite_or_none(token)


@pytest.mark.parametrize("token", [None, 7, b"watan-invite-1.AAAA", ["watan-invite-1."]])
def test_an_invite_that_is_not_text_is_wrong_type(token: Any) -> None:
    with pytest.raises(RemoteProtocolError) as error:
        protocol.parse_invite(token)
    assert error.value.code is ErrorCode.WRONG_TYPE


# --- HTTP message signatures ----------------------------------------------------------------

NOW_S = NOW // 1000
TARGET = ("POST", "node-b.example.org", "/fed/v1/messages", "?a=1")
BODY = b"\x81\xa1a\x01"


def _signed_request() -> dict[str, str]:
    headers = {"Content-Digest": protocol.content_digest(BODY)}
    params = protocol.SignatureParams(
        keyid=AUTHOR.hex(), created=NOW_S, expires=NOW_S + 60, nonce="n" * 24
    )
    method, authority, path, query = TARGET
    return headers | protocol.sign_request(
        method=method,
        authority=authority,
        path=path,
        query=query,
        headers=headers,
        key=KEY,
        params=params,
    )


SIGNED = _signed_request()
KEYS = {AUTHOR.hex(): AUTHOR}
HEADER_TEXT = (
    st.text(max_size=60)
    | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
    | st.sampled_from([*SIGNED.values(), "watan=:AAAA:", 'watan=("@method");keyid="x"', ""])
)


def verify(headers: Any, *, target: tuple[str, str, str, str] = TARGET, body: bytes = BODY) -> Any:
    method, authority, path, query = target
    return only_remote(
        lambda: protocol.verify_request(
            method=method,
            authority=authority,
            path=path,
            query=query,
            headers=headers,
            body=body,
            now_s=NOW_S,
            key_of=KEYS.get,
        )
    )


def test_the_signed_request_verifies() -> None:
    assert verify(SIGNED) is not None


@FUZZ
@given(st.data())
def test_verify_request_with_any_target(data: st.DataObject) -> None:
    target = list(TARGET)
    for index in data.draw(st.sets(st.integers(0, 3), min_size=1)):
        target[index] = data.draw(
            st.text(max_size=30) | st.sampled_from(["", "/", "?", "GET", "%2F"])
        )
    body = data.draw(st.just(BODY) | st.binary(max_size=20))
    verified = verify(SIGNED, target=(target[0], target[1], target[2], target[3]), body=body)
    if verified is not None:  # only what was signed: the authority's case aside (RFC 9421 §2.2.3)
        assert (target[0], target[1].lower(), *target[2:]) == (TARGET[0], TARGET[1], *TARGET[2:])
        assert body == BODY


HEADER_NAMES = st.sampled_from(
    [
        "Signature",
        "signature",
        "Signature-Input",
        "SIGNATURE-INPUT",
        "Content-Digest",
        "content-digest",
        "X-Other",
        "sïgnature",
    ]
)


@FUZZ
@given(st.lists(st.tuples(HEADER_NAMES, HEADER_TEXT), max_size=6), st.booleans())
def test_verify_request_with_any_header_lines(lines: list[tuple[str, str]], keep: bool) -> None:
    headers: CIMultiDict[str] = CIMultiDict(SIGNED if keep else {})
    for name, value in lines:
        headers.add(name, value)
    verified = verify(headers)
    if verified is not None:
        assert verified.key == AUTHOR


@FUZZ
@given(
    st.lists(st.tuples(HEADER_NAMES, HEADER_TEXT), max_size=4),
    st.integers(-10, 1100) | st.sampled_from([200, 404]),
    st.binary(max_size=10),
)
def test_verify_response_with_any_headers_and_status(
    lines: list[tuple[str, str]], status: int, body: bytes
) -> None:
    signature = SIGNED["Signature"]
    headers: CIMultiDict[str] = CIMultiDict({"Content-Digest": protocol.content_digest(b"")})
    headers.update(
        protocol.sign_response(
            status=200,
            headers=headers,
            request_signature=signature,
            request=TARGET,
            key=OTHER_KEY,
            params=protocol.SignatureParams(
                keyid=OTHER_AUTHOR.hex(), created=NOW_S, expires=NOW_S + 60, nonce="r" * 24
            ),
        )
    )
    for name, value in lines:
        headers.add(name, value)
    verified = only_remote(
        lambda: protocol.verify_response(
            status=status,
            headers=headers,
            body=body,
            request_signature=signature,
            request=TARGET,
            now_s=NOW_S,
            key_of={OTHER_AUTHOR.hex(): OTHER_AUTHOR}.get,
        )
    )
    if verified is not None:
        assert status == 200 and body == b""


SF_TEXT = st.lists(
    st.sampled_from([*'aw=();:"*?-019 ,\t\\/+Z.', "sha-256", "keyid", "req", ":AAAA:", "?1"]),
    max_size=40,
).map("".join)


@FUZZ
@given(st.text(max_size=80) | SF_TEXT)
def test_parse_dictionary_raises_only_sf_errors(text: str) -> None:
    try:
        members = parse_dictionary(text)
    except SFError:
        return
    # what parses serializes, and parses back to the same members
    assert parse_dictionary(serialize_dictionary(members)) == members


# --- pseudonym oracles: the server side of an evaluation ------------------------------------

needs_sodium = pytest.mark.skipif(
    not oprf.available(), reason="libsodium >= 1.0.18 with ristretto255 is not installed"
)
ELEMENT_LIKE = (
    st.binary(min_size=32, max_size=32)
    | st.binary(max_size=40)
    | st.sampled_from([bytes(32), b"\xff" * 32])
    | st.integers()
    | st.none()
    | st.text(max_size=3)
)
BATCHES = st.lists(ELEMENT_LIKE, max_size=5) | st.tuples(ELEMENT_LIKE) | ELEMENT_LIKE


@needs_sodium
@FEW
@given(BATCHES)
def test_an_oracle_refuses_any_batch_with_a_protocol_error(elements: Any) -> None:
    sk, _ = oprf.derive_key_pair(bytes(32), b"fuzz", mode=oprf.MODE_VOPRF)
    share = oprf.split_key(sk, threshold=2, shares=2, coefficients=[bytes(range(64))])[0]
    checked = only_remote(lambda: oprf.check_elements(elements))
    evaluation = only_remote(
        lambda: oprf.evaluate_share(share, elements, proof_random=bytes(range(64)))
    )
    assert (checked is None) == (evaluation is None)
    if evaluation is not None:
        oprf.verify_proof(
            share.public_key, checked, list(evaluation.evaluated_elements), evaluation.proof
        )


@needs_sodium
@FEW
@given(ELEMENT_LIKE | st.integers(-3, 300), BATCHES, ELEMENT_LIKE)
def test_share_evaluations_of_any_shape(index: Any, elements: Any, proof: Any) -> None:
    only_remote(lambda: oprf.ShareEvaluation(index=index, evaluated_elements=elements, proof=proof))


# --- python -m protocol decode --------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, Any]:
    out = io.StringIO()
    status = _cli.main(["decode", *args], out=out)
    return status, json.loads(out.getvalue())


@FEW
@given(st.data())
def test_cli_decode_never_crashes(data: st.DataObject) -> None:
    how = data.draw(st.sampled_from(["bytes", "mutated", "signed", "envelope", "proof"]))
    if how == "bytes":
        wire = data.draw(st.binary(max_size=100))
    elif how == "mutated":
        wire = mutate(FEED[2].wire, data.draw(st.lists(MUTATION, min_size=1, max_size=3)))
    elif how == "signed":
        wire = sign_entry_fields(fuzz_map(payload_fields(), data))
    elif how == "envelope":
        wire = seal_fields(fuzz_map(MESSAGE_FIELDS, data))
    else:
        wire = pack(fuzz_map(PROOF_FIELDS, data, ANY_VALUE | WIRES))
    status, result = run_cli(wire.hex())
    assert status in (0, 2)
    assert ("error" in result) == (status == 2)


@FEW
@given(st.integers(MIN_TS, MAX_TS))
@example(MAX_TS)
@example(253_402_300_799_999)  # 9999-12-31T23:59:59.999Z, the last time ISO 8601 can write
@example(253_402_300_800_000)
def test_cli_decodes_an_entry_of_any_valid_time(ts: int) -> None:
    # Regression: entries dated after year 9999 are valid (ts <= MAX_TS), and decoding
    # one crashed `python -m protocol decode` with a ValueError from datetime.
    wire = sign_entry_fields(payload_fields(ts=ts))
    status, result = run_cli(wire.hex(), "--net", NET.hex())
    assert status == 0, result
    assert result["ts"] == ts
    assert (result["ts_utc"] is None) == (ts > 253_402_300_799_999)
