"""entry_position: the (author, seq) a node routes an entry by, before verifying it."""

from __future__ import annotations

import protocol
from protocol import ErrorCode, RemoteProtocolError, entry_position

from .conftest import (
    ALLOCATION_CONTENT,
    AUTHOR,
    KEY,
    NET,
    NOW,
    entry_wire,
    pack,
    pack_map,
    raises_code,
    sign_payload,
)


def test_position_of_a_valid_entry(feed: list[protocol.Entry]) -> None:
    for entry in feed:
        assert entry_position(entry.wire, net=NET, now_ms=NOW) == (AUTHOR, entry.seq)


def test_position_is_read_without_the_signature() -> None:
    # a bad signature is the verifier's business; the position only picks the feed
    wire = sign_payload(
        protocol.encode({**_fields(), "seq": 5}), key=protocol.signing_key(b"\x09" * 32)
    )
    assert entry_position(wire, net=NET, now_ms=NOW) == (AUTHOR, 5)


def test_unroutable_entries_get_the_verifiers_code() -> None:
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_NET):
        entry_position(
            protocol.encode([protocol.encode({**_fields(), "net": b"\x01" * 32}), b"s" * 64]),
            net=NET,
            now_ms=NOW,
        )
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_TYPE):
        entry_position(entry_wire(seq="1"), net=NET, now_ms=NOW)
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        entry_position(b"\xc1", net=NET, now_ms=NOW)
    with raises_code(RemoteProtocolError, ErrorCode.TOO_LARGE):
        entry_position(b"\x00" * (protocol.MAX_ENTRY_BYTES + 1), net=NET, now_ms=NOW)


def test_non_profile_documents_are_not_routed() -> None:
    # unsorted payload keys, a duplicate key, a float: each is refused as verify_entry does
    unsorted = sign_payload(pack(dict(reversed(list(_fields().items())))))
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        entry_position(unsorted, net=NET, now_ms=NOW)
    duplicate = sign_payload(pack_map([*sorted(_fields().items()), ("v", 1)]))
    with raises_code(RemoteProtocolError, ErrorCode.DUPLICATE_KEY):
        entry_position(duplicate, net=NET, now_ms=NOW)
    floating = entry_wire(content={**ALLOCATION_CONTENT, "quantity": 2.0})
    with raises_code(RemoteProtocolError, ErrorCode.FORBIDDEN_TYPE):
        entry_position(floating, net=NET, now_ms=NOW)


def _fields() -> dict[str, object]:
    entry = protocol.append(
        None, protocol.Vouch(peer=AUTHOR, stance="vouch"), key=KEY, net=NET, now_ms=NOW
    )
    return dict(protocol.decode(entry.payload))
