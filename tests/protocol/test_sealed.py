"""Sealed direct messages (SPEC §6): sign, encrypt, address, and refuse everything else."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from nacl.public import PrivateKey, PublicKey, SealedBox

import protocol
from protocol import (
    MAX_CLOCK_SKEW_MS,
    MAX_MESSAGE_AGE_MS,
    MAX_SEALED_BYTES,
    MESSAGE_TAG,
    MIN_TS,
    Attachment,
    ErrorCode,
    LocalProtocolError,
    Receipt,
    RemoteProtocolError,
    Sealed,
    TextMessage,
    decode,
    enc_public_key,
    encode,
    open_envelope,
    seal,
    unseal,
)

from .conftest import (
    AUTHOR,
    ENC_SECRET,
    KEY,
    NET,
    NOW,
    OTHER_AUTHOR,
    OTHER_ENC_SECRET,
    OTHER_KEY,
    OTHER_NET,
    THIRD_ENC_SECRET,
    THIRD_KEY,
    pack,
    raises_code,
)

#: The sender is AUTHOR (KEY); the recipient is OTHER_AUTHOR, with OTHER_ENC_SECRET.
RECIPIENT = OTHER_AUTHOR
RECIPIENT_ENC_KEY = enc_public_key(OTHER_ENC_SECRET)
THIRD = protocol.public_key(THIRD_KEY)
EPHEMERAL = bytes(range(200, 232))
NONCE = bytes(range(16))
THREAD = hashlib.sha256(b"thread").digest()

TEXT = TextMessage(
    text="السلام عليكم،\nنرسل إليكم قائمة التوزيع لشهر آذار.\n\tمع التحية",
    subject="توزيع آذار",
    thread=THREAD,
    attachments=(
        Attachment(name="قائمة.csv", type="text/csv", data=b"district,count\nIQG08Q05,17\n"),
        Attachment(name="photo.png", type="image/png", data=b"\x89PNG\r\n\x1a\n" + bytes(100)),
    ),
)


def seal_to_recipient(content: Any = TEXT, **changes: Any) -> Sealed:
    arguments: dict[str, Any] = {
        "sender_key": KEY,
        "to": RECIPIENT,
        "recipient_enc_key": RECIPIENT_ENC_KEY,
        "net": NET,
        "now_ms": NOW,
        "ephemeral_secret": EPHEMERAL,
        "nonce": NONCE,
    }
    arguments.update(changes)
    return seal(content, **arguments)


def open_as_recipient(envelope: bytes, **changes: Any) -> protocol.Message:
    arguments: dict[str, Any] = {
        "net": NET,
        "recipient": RECIPIENT,
        "enc_secret": OTHER_ENC_SECRET,
        "now_ms": NOW,
    }
    arguments.update(changes)
    return unseal(envelope, **arguments)


def refused(envelope: bytes, code: ErrorCode, **changes: Any) -> None:
    with raises_code(RemoteProtocolError, code):
        open_as_recipient(envelope, **changes)


def message_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "content": {"text": "hello"},
        "from": AUTHOR,
        "kind": "msg.text/1",
        "net": NET,
        "nonce": NONCE,
        "to": RECIPIENT,
        "ts": NOW,
        "v": 1,
    }
    fields.update(changes)
    return fields


def hand_seal(
    payload: bytes | dict[str, Any],
    *,
    key: protocol.SigningKey = KEY,
    enc_key: bytes = RECIPIENT_ENC_KEY,
    to: bytes = RECIPIENT,
    inner: bytes | None = None,
) -> bytes:
    """An envelope around any payload, signed and sealed as a peer would (libsodium's
    own crypto_box_seal, with a random ephemeral key)."""
    if isinstance(payload, dict):
        payload = encode(payload)
    if inner is None:
        inner = encode([payload, key.sign(MESSAGE_TAG + payload).signature])
    box = SealedBox(PublicKey(enc_key)).encrypt(inner)
    return encode({"box": box, "id": hashlib.sha256(inner).digest(), "net": NET, "to": to, "v": 1})


def envelope_with(envelope: bytes, **changes: Any) -> bytes:
    return encode({**decode(envelope), **changes})


# --- round trips --------------------------------------------------------------------------


def test_text_message_round_trip() -> None:
    sealed = seal_to_recipient()
    message = open_as_recipient(sealed.envelope)
    assert message == sealed.message
    assert message.body == TEXT
    assert type(message.body) is TextMessage
    assert message.body.attachments is not None
    assert message.body.attachments[0].name == "قائمة.csv"
    assert (message.sender, message.to, message.net) == (AUTHOR, RECIPIENT, NET)
    assert (message.ts, message.nonce, message.kind) == (NOW, NONCE, "msg.text/1")
    assert message.id == sealed.id
    assert message.content == TEXT.to_content()


def test_sealing_is_deterministic_given_its_randomness() -> None:
    assert seal_to_recipient().envelope == seal_to_recipient().envelope
    other_nonce = seal_to_recipient(nonce=bytes(16))
    assert other_nonce.id != seal_to_recipient().id
    other_ephemeral = seal_to_recipient(ephemeral_secret=bytes(range(32)))
    assert other_ephemeral.id == seal_to_recipient().id  # same message ...
    assert other_ephemeral.envelope != seal_to_recipient().envelope  # ... other box


def test_envelope_layout() -> None:
    sealed = seal_to_recipient()
    fields = decode(sealed.envelope)
    assert list(fields) == ["box", "id", "net", "to", "v"]
    assert (fields["id"], fields["net"], fields["to"], fields["v"]) == (
        sealed.id,
        NET,
        RECIPIENT,
        1,
    )
    # A libsodium sealed box: the ephemeral public key, then the ciphertext and tag.
    assert fields["box"][:32] == enc_public_key(EPHEMERAL)
    inner = SealedBox(PrivateKey(OTHER_ENC_SECRET)).decrypt(fields["box"])
    assert len(fields["box"]) == len(inner) + 48
    payload, sig = decode(inner)
    assert hashlib.sha256(inner).digest() == sealed.id
    protocol._keys.verify(AUTHOR, MESSAGE_TAG + payload, sig)
    assert decode(payload) == {
        "content": TEXT.to_content(),
        "from": AUTHOR,
        "kind": "msg.text/1",
        "net": NET,
        "nonce": NONCE,
        "to": RECIPIENT,
        "ts": NOW,
        "v": 1,
    }


def test_box_opens_with_pynacl_sealed_box() -> None:
    # Interoperability: our box is libsodium's crypto_box_seal, byte for byte.
    sealed = seal_to_recipient()
    box = decode(sealed.envelope)["box"]
    inner = SealedBox(PrivateKey(OTHER_ENC_SECRET)).decrypt(box)
    assert hashlib.sha256(inner).digest() == sealed.id
    # And a box PyNaCl makes around the same inner message opens with unseal.
    assert open_as_recipient(hand_seal(b"", inner=inner)) == sealed.message


def test_receipt_round_trip() -> None:
    receipt = Receipt(message=seal_to_recipient().id, state="read")
    sealed = seal_to_recipient(receipt)
    message = open_as_recipient(sealed.envelope)
    assert message.body == receipt
    assert message.kind == "msg.receipt/1"


def test_minimal_text_message() -> None:
    minimal = TextMessage(text="")
    message = open_as_recipient(seal_to_recipient(minimal).envelope)
    assert message.body == minimal
    assert message.content == {"text": ""}


def test_unknown_message_kind_is_opaque() -> None:
    content = {"items": [1, b"\x00", {"z": None}], "note": "future"}
    sealed = seal_to_recipient(content, kind="msg.future_thing/2")
    message = open_as_recipient(sealed.envelope)
    assert message.body is None
    assert message.kind == "msg.future_thing/2"
    assert message.content == content


def test_unknown_message_kind_still_obeys_the_profile() -> None:
    unsorted = pack(message_fields(kind="msg.future/1", content={"b": 1, "a": 2}))
    refused(hand_seal(unsorted), ErrorCode.NON_CANONICAL)
    floats = pack(message_fields(kind="msg.future/1", content={"a": 0.5}))
    refused(hand_seal(floats), ErrorCode.FORBIDDEN_TYPE)
    deep: Any = None
    for _ in range(15):
        deep = [deep]
    refused(
        hand_seal(pack(message_fields(kind="msg.future/1", content={"a": deep}))),
        ErrorCode.TOO_DEEP,
    )


def test_message_kinds_are_in_the_msg_namespace() -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        seal_to_recipient({}, kind="future.thing/1")
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        seal_to_recipient({"text": "x"}, kind="msg.text")
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        seal_to_recipient({"text": "x"})  # a map needs its kind
    refused(hand_seal(message_fields(kind="ataa.allocation/1")), ErrorCode.BAD_KIND)
    refused(hand_seal(message_fields(kind="msg.Text/1")), ErrorCode.BAD_KIND)
    refused(hand_seal(message_fields(kind=1)), ErrorCode.WRONG_TYPE)


def test_message_kinds_never_enter_feeds() -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        protocol.append(None, TEXT, key=KEY, net=NET, now_ms=NOW)
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        protocol.append(None, {"x": 1}, key=KEY, net=NET, now_ms=NOW, kind="msg.future/1")


# --- addressing and authenticity ---------------------------------------------------------


def test_wrong_recipient() -> None:
    envelope = seal_to_recipient().envelope
    refused(envelope, ErrorCode.WRONG_RECIPIENT, recipient=THIRD, enc_secret=THIRD_ENC_SECRET)


def test_recipient_cannot_pass_a_message_on() -> None:
    # The recipient decrypts, re-encrypts the same signed inner message to a third node
    # and addresses a new envelope to it: the signed payload still names the recipient.
    sealed = seal_to_recipient()
    inner = SealedBox(PrivateKey(OTHER_ENC_SECRET)).decrypt(decode(sealed.envelope)["box"])
    forwarded = hand_seal(b"", inner=inner, enc_key=enc_public_key(THIRD_ENC_SECRET), to=THIRD)
    assert open_envelope(forwarded, net=NET).to == THIRD
    refused(forwarded, ErrorCode.WRONG_RECIPIENT, recipient=THIRD, enc_secret=THIRD_ENC_SECRET)


def test_relay_cannot_readdress_an_envelope() -> None:
    envelope = envelope_with(seal_to_recipient().envelope, to=THIRD)
    # The third node cannot open a box sealed to the recipient.
    refused(envelope, ErrorCode.DECRYPT_FAILED, recipient=THIRD, enc_secret=THIRD_ENC_SECRET)
    refused(envelope, ErrorCode.WRONG_RECIPIENT)


def test_decrypt_failed_with_the_wrong_secret() -> None:
    envelope = seal_to_recipient().envelope
    refused(envelope, ErrorCode.DECRYPT_FAILED, enc_secret=THIRD_ENC_SECRET)
    refused(envelope, ErrorCode.DECRYPT_FAILED, enc_secret=ENC_SECRET)


def test_tampered_box() -> None:
    box = decode(seal_to_recipient().envelope)["box"]
    for index in (0, 31, 32, 47, len(box) - 1):  # ephemeral key, tag, ciphertext
        tampered = bytearray(box)
        tampered[index] ^= 0x01
        refused(
            envelope_with(seal_to_recipient().envelope, box=bytes(tampered)),
            ErrorCode.DECRYPT_FAILED,
        )
    refused(envelope_with(seal_to_recipient().envelope, box=box[:-1]), ErrorCode.DECRYPT_FAILED)


def test_id_mismatch() -> None:
    envelope = seal_to_recipient().envelope
    refused(envelope_with(envelope, id=bytes(32)), ErrorCode.ID_MISMATCH)
    # A relay cannot swap in another message of the same sender under the old id.
    other = seal_to_recipient(Receipt(message=bytes(32), state="delivered"))
    swapped = envelope_with(envelope, box=decode(other.envelope)["box"])
    refused(swapped, ErrorCode.ID_MISMATCH)


def test_wrong_net() -> None:
    envelope = seal_to_recipient().envelope
    refused(envelope, ErrorCode.WRONG_NET, net=OTHER_NET)
    # An envelope re-labelled for our net around a message signed for another.
    refused(hand_seal(message_fields(net=OTHER_NET)), ErrorCode.WRONG_NET)


def test_signature_by_another_key() -> None:
    refused(hand_seal(message_fields(), key=OTHER_KEY), ErrorCode.BAD_SIGNATURE)
    payload = encode(message_fields())
    unsigned_tag = encode([payload, KEY.sign(payload).signature])
    refused(hand_seal(b"", inner=unsigned_tag), ErrorCode.BAD_SIGNATURE)


def test_sender_keys_after_rotation() -> None:
    # The sender's node id stays AUTHOR; it now signs with THIRD_KEY.
    sealed = seal_to_recipient(sender_key=THIRD_KEY, sender=AUTHOR)
    assert sealed.message.sender == AUTHOR
    refused(sealed.envelope, ErrorCode.BAD_SIGNATURE)  # default: the node id's own key
    asked: list[bytes] = []

    def keys_of(sender: bytes) -> list[bytes]:
        asked.append(sender)
        return [AUTHOR, THIRD]  # the current key and the one rotated away from

    message = open_as_recipient(sealed.envelope, sender_keys=keys_of)
    assert message.sender == AUTHOR
    assert message.body == TEXT
    assert asked == [AUTHOR]
    # A message signed before the rotation still arrives with the same list.
    assert open_as_recipient(seal_to_recipient().envelope, sender_keys=keys_of).sender == AUTHOR
    refused(sealed.envelope, ErrorCode.BAD_SIGNATURE, sender_keys=lambda sender: [AUTHOR])
    refused(sealed.envelope, ErrorCode.BAD_SIGNATURE, sender_keys=lambda sender: [])
    refused(sealed.envelope, ErrorCode.BAD_SIGNATURE, sender_keys=lambda sender: [THIRD[:31]])


def test_message_clock() -> None:
    envelope = seal_to_recipient().envelope
    assert open_as_recipient(envelope, now_ms=NOW - MAX_CLOCK_SKEW_MS).ts == NOW
    refused(envelope, ErrorCode.TS_IN_FUTURE, now_ms=NOW - MAX_CLOCK_SKEW_MS - 1)
    assert open_as_recipient(envelope, now_ms=NOW + MAX_MESSAGE_AGE_MS).ts == NOW
    refused(envelope, ErrorCode.EXPIRED, now_ms=NOW + MAX_MESSAGE_AGE_MS + 1)
    assert open_as_recipient(envelope, now_ms=None).ts == NOW
    refused(hand_seal(message_fields(ts=MIN_TS - 1)), ErrorCode.BAD_VALUE)


# --- the inner message's shape ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"v": 2}, ErrorCode.UNSUPPORTED_VERSION),
        ({"v": True}, ErrorCode.WRONG_TYPE),
        ({"from": AUTHOR[:31]}, ErrorCode.BAD_VALUE),
        ({"from": AUTHOR.hex()}, ErrorCode.WRONG_TYPE),
        ({"nonce": bytes(15)}, ErrorCode.BAD_VALUE),
        ({"to": None}, ErrorCode.WRONG_TYPE),
        ({"ts": str(NOW)}, ErrorCode.WRONG_TYPE),
        ({"content": ["hello"]}, ErrorCode.WRONG_TYPE),
        ({"extra": 1}, ErrorCode.UNKNOWN_FIELD),
    ],
)
def test_message_payload_fields(changes: dict[str, Any], code: ErrorCode) -> None:
    refused(hand_seal(message_fields(**changes)), code)


def test_message_payload_missing_field() -> None:
    fields = message_fields()
    del fields["nonce"]
    refused(hand_seal(fields), ErrorCode.MISSING_FIELD)


def test_message_inner_shape() -> None:
    payload = encode(message_fields())
    sig = KEY.sign(MESSAGE_TAG + payload).signature
    refused(hand_seal(b"", inner=encode([payload])), ErrorCode.MALFORMED)
    refused(hand_seal(b"", inner=encode({"payload": payload})), ErrorCode.MALFORMED)
    refused(hand_seal(b"", inner=encode([payload, sig[:63]])), ErrorCode.WRONG_TYPE)
    refused(hand_seal(b"", inner=encode([payload.hex(), sig])), ErrorCode.WRONG_TYPE)
    refused(hand_seal(b"", inner=encode([payload, sig]) + b"\x00"), ErrorCode.MALFORMED)
    refused(
        hand_seal(b"", inner=b"\x92\xc5\x00" + bytes([len(payload)]) + payload + b"\xc4\x40" + sig),
        ErrorCode.NON_CANONICAL,
    )
    refused(hand_seal(b"", inner=encode([encode([1]), sig])), ErrorCode.WRONG_TYPE)


def test_text_message_schema_on_receipt() -> None:
    text = {"text": "hello"}
    cases: list[tuple[dict[str, Any], ErrorCode]] = [
        ({**text, "subject": None}, ErrorCode.WRONG_TYPE),  # nil optional field: omit it
        ({**text, "subject": "a\u202eb"}, ErrorCode.BAD_VALUE),
        ({**text, "subject": ""}, ErrorCode.BAD_VALUE),
        ({"text": "a\x00b"}, ErrorCode.BAD_VALUE),
        ({"text": "\ufeffhello"}, ErrorCode.BAD_VALUE),
        ({"text": "x" * 32_769}, ErrorCode.BAD_VALUE),
        ({**text, "thread": bytes(31)}, ErrorCode.BAD_VALUE),
        ({**text, "attachments": []}, ErrorCode.BAD_VALUE),
        ({**text, "attachments": "file"}, ErrorCode.WRONG_TYPE),
        ({**text, "attachments": ["file"]}, ErrorCode.WRONG_TYPE),
        (
            {**text, "attachments": [{"data": b"", "name": "a.html", "type": "text/html"}]},
            ErrorCode.BAD_VALUE,
        ),
        ({**text, "attachments": [{"data": b"", "name": "a"}]}, ErrorCode.MISSING_FIELD),
        ({**text, "colour": "red"}, ErrorCode.UNKNOWN_FIELD),
        ({"subject": "s"}, ErrorCode.MISSING_FIELD),
    ]
    for content, code in cases:
        refused(hand_seal(message_fields(content=content)), code)
    assert open_as_recipient(
        hand_seal(message_fields(content={"text": "\t  indented\n"}))
    ).body == TextMessage(text="\t  indented\n")


def test_receipt_schema_on_receipt() -> None:
    for content, code in [
        ({"message": bytes(32), "state": "lost"}, ErrorCode.BAD_VALUE),
        ({"message": bytes(32)}, ErrorCode.MISSING_FIELD),
    ]:
        refused(hand_seal(message_fields(kind="msg.receipt/1", content=content)), code)


# --- attachment limits ----------------------------------------------------------------------


def attachment(size: int = 10, type: str = "application/pdf") -> Attachment:
    return Attachment(name="report.pdf", type=type, data=bytes(size))


def attachment_map(size: int = 10, type: str = "application/pdf") -> dict[str, Any]:
    return {"data": bytes(size), "name": "report.pdf", "type": type}


@pytest.mark.parametrize(
    "type",
    [
        "text/html",
        "image/svg+xml",
        "application/x-msdownload",
        "application/vnd.ms-excel.sheet.macroEnabled.12",
        "TEXT/PLAIN",
        "",
    ],
)
def test_attachment_type_not_allowed(type: str) -> None:
    assert type not in protocol.ATTACHMENT_TYPES
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        attachment(type=type)
    content = {"attachments": [attachment_map(type=type)], "text": "x"}
    refused(hand_seal(message_fields(content=content)), ErrorCode.BAD_VALUE)


@pytest.mark.parametrize("type", protocol.ATTACHMENT_TYPES)
def test_every_allowed_attachment_type(type: str) -> None:
    message = TextMessage(text="x", attachments=(attachment(type=type),))
    assert open_as_recipient(seal_to_recipient(message).envelope).body == message


def test_at_most_eight_attachments() -> None:
    eight = TextMessage(text="x", attachments=(attachment(),) * 8)
    assert open_as_recipient(seal_to_recipient(eight).envelope).body == eight
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        TextMessage(text="x", attachments=(attachment(),) * 9)
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        TextMessage(text="x", attachments=())
    with raises_code(LocalProtocolError, ErrorCode.WRONG_TYPE):
        TextMessage(text="x", attachments=[attachment()])  # type: ignore[arg-type]
    with raises_code(LocalProtocolError, ErrorCode.WRONG_TYPE):
        TextMessage(text="x", attachments=(attachment_map(),))  # type: ignore[arg-type]
    nine = {"attachments": [attachment_map()] * 9, "text": "x"}
    refused(hand_seal(message_fields(content=nine)), ErrorCode.BAD_VALUE)
    # Counted before any is parsed: nine invalid attachments are still "too many".
    nine_bad = {"attachments": ["junk"] * 9, "text": "x"}
    refused(hand_seal(message_fields(content=nine_bad)), ErrorCode.BAD_VALUE)


def test_attachments_total_size() -> None:
    limit = 786_432  # 768 KiB
    exactly = TextMessage(text="x", attachments=(attachment(limit // 2), attachment(limit // 2)))
    sealed = seal_to_recipient(exactly)
    assert len(sealed.envelope) <= MAX_SEALED_BYTES
    assert open_as_recipient(sealed.envelope).body == exactly
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        TextMessage(text="x", attachments=(attachment(limit // 2), attachment(limit // 2 + 1)))
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        attachment(limit + 1)
    over = {
        "attachments": [attachment_map(limit // 2), attachment_map(limit // 2 + 1)],
        "text": "x",
    }
    refused(hand_seal(message_fields(content=over)), ErrorCode.BAD_VALUE)


# --- seal refuses to send what unseal would refuse -----------------------------------------


def test_seal_argument_errors() -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        seal_to_recipient(nonce=bytes(15))
    with raises_code(LocalProtocolError, ErrorCode.CLOCK_UNSET):
        seal_to_recipient(now_ms=MIN_TS - 1)
    with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
        seal_to_recipient(recipient_enc_key=RECIPIENT_ENC_KEY[:31])
    with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
        seal_to_recipient(ephemeral_secret=EPHEMERAL[:31])
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        seal_to_recipient(to=RECIPIENT[:31])
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        seal_to_recipient(net=NET[:31])
    with raises_code(LocalProtocolError, ErrorCode.BAD_VALUE):
        seal_to_recipient({"text": "a\u202eb"}, kind="msg.text/1")
    with raises_code(LocalProtocolError, ErrorCode.FORBIDDEN_TYPE):
        seal_to_recipient({"x": 1.0}, kind="msg.future/1")
    with raises_code(LocalProtocolError, ErrorCode.TOO_LARGE):
        seal_to_recipient({"x": bytes(MAX_SEALED_BYTES)}, kind="msg.future/1")
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        seal_to_recipient(TEXT, kind="msg.receipt/1")  # a body's kind is its own
    with raises_code(LocalProtocolError, ErrorCode.BAD_KIND):
        seal_to_recipient({"text": "x"})  # a map needs its kind


def test_unseal_needs_a_32_byte_secret() -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
        open_as_recipient(seal_to_recipient().envelope, enc_secret=OTHER_ENC_SECRET[:31])


# --- envelopes, as a relay sees them -------------------------------------------------------


def test_open_envelope_without_decrypting() -> None:
    sealed = seal_to_recipient()
    envelope = open_envelope(sealed.envelope, net=NET)
    assert (envelope.id, envelope.net, envelope.to) == (sealed.id, NET, RECIPIENT)
    assert envelope.wire == sealed.envelope
    assert envelope.box == decode(sealed.envelope)["box"]
    assert open_envelope(bytearray(sealed.envelope), net=NET) == envelope  # type: ignore[arg-type]
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_NET):
        open_envelope(sealed.envelope, net=OTHER_NET)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"v": 2}, ErrorCode.UNSUPPORTED_VERSION),
        ({"v": "1"}, ErrorCode.WRONG_TYPE),
        ({"id": bytes(31)}, ErrorCode.BAD_VALUE),
        ({"to": "node"}, ErrorCode.WRONG_TYPE),
        ({"net": None}, ErrorCode.WRONG_TYPE),
        ({"box": bytes(47)}, ErrorCode.BAD_VALUE),
        ({"box": [b""]}, ErrorCode.WRONG_TYPE),
        ({"from": AUTHOR}, ErrorCode.UNKNOWN_FIELD),
    ],
)
def test_envelope_fields(changes: dict[str, Any], code: ErrorCode) -> None:
    envelope = envelope_with(seal_to_recipient().envelope, **changes)
    with raises_code(RemoteProtocolError, code):
        open_envelope(envelope, net=NET)
    refused(envelope, code)


def test_envelope_shape() -> None:
    fields = decode(seal_to_recipient().envelope)
    del fields["id"]
    with raises_code(RemoteProtocolError, ErrorCode.MISSING_FIELD):
        open_envelope(encode(fields), net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.WRONG_TYPE):
        open_envelope(encode([1, 2]), net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.NON_CANONICAL):
        open_envelope(
            pack(dict(reversed(list(decode(seal_to_recipient().envelope).items())))), net=NET
        )
    with raises_code(RemoteProtocolError, ErrorCode.MALFORMED):
        open_envelope(seal_to_recipient().envelope[:-1], net=NET)
    with raises_code(RemoteProtocolError, ErrorCode.TOO_LARGE):
        open_envelope(bytes(MAX_SEALED_BYTES + 1), net=NET)
