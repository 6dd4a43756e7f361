"""Sealed direct messages, org to org, never in feeds (SPEC §6).

Layers, inside out:

1. ``payload`` = canonical ``{content, from, kind, net, nonce, to, ts, v}``, signed by the
   sender's Ed25519 feed key over ``MESSAGE_TAG || payload``: ``inner = [payload, sig]``.
   ``id = SHA-256(inner)`` identifies the message for idempotent delivery.
2. ``box`` = a libsodium sealed box (``crypto_box_seal``: X25519 ephemeral key,
   XSalsa20-Poly1305) of ``inner`` to the recipient's X25519 ``enc_key``, published in
   its ``node.profile/1``. Separate encryption keys rather than keys converted from
   Ed25519: the two can be rotated independently and no key serves two algorithms.
3. ``envelope`` = canonical ``{box, id, net, to, v}``: all a relay sees. It learns the
   recipient and size, not the sender or text.

Binding: the signed payload names ``net``, ``from`` and ``to``; the recipient checks
them against the envelope and itself, and ``id`` against the hash of what it decrypted,
so a relay can neither read, alter, re-address nor re-label a message, and a recipient
cannot pass a message on to a third node as if it had been sent there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import nacl.bindings
import nacl.exceptions

from ._encoding import check_tree, decode, encode
from ._entry import MAX_CLOCK_SKEW_MS, MAX_TS, MIN_TS
from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._keys import SigningKey, public_key, sign, verify
from ._kinds import MESSAGE_KINDS, check_kind_name
from ._schema import Body

__all__ = [
    "MAX_SEALED_BYTES",
    "MESSAGE_TAG",
    "Envelope",
    "Message",
    "Sealed",
    "enc_public_key",
    "open_envelope",
    "seal",
    "unseal",
]

MESSAGE_TAG: Final = b"watan/message/v1\x00"
#: Largest envelope: 1 MiB. Attachments are capped at 768 KiB (SPEC §5.8) so text and
#: framing fit; anything bigger belongs in a document exchange, not a message queue
#: that must be retried over links of a few kB/s.
MAX_SEALED_BYTES: Final = 1_048_576
#: Envelope framing is 168 bytes and the sealed box adds 48; 256 is a safe margin.
_MAX_INNER_BYTES: Final = MAX_SEALED_BYTES - 256
_PAYLOAD_KEYS: Final = ("content", "from", "kind", "net", "nonce", "to", "ts", "v")
_ENVELOPE_KEYS: Final = ("box", "id", "net", "to", "v")


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """What a relay sees and checks: to whom, in which federation, which message."""

    id: bytes
    net: bytes
    to: bytes
    box: bytes
    wire: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A message opened and verified by its recipient."""

    id: bytes
    net: bytes
    sender: bytes
    to: bytes
    ts: int
    nonce: bytes
    kind: str
    content: dict[str, Any]
    body: Body | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealed:
    """A message ready to send: keep ``envelope`` in the outbox and resend it as is."""

    id: bytes
    envelope: bytes
    message: Message


def _remote(code: ErrorCode, message: str) -> Any:
    raise RemoteProtocolError(message, code=code)


def enc_public_key(enc_secret: bytes) -> bytes:
    """The X25519 public key (``enc_key`` in a profile) of a 32-byte secret."""
    if type(enc_secret) is not bytes or len(enc_secret) != 32:
        raise LocalProtocolError("an X25519 secret is 32 bytes", code=ErrorCode.BAD_KEY)
    return nacl.bindings.crypto_scalarmult_base(enc_secret)


def _seal_box(message: bytes, recipient_enc_key: bytes, ephemeral_secret: bytes) -> bytes:
    """``crypto_box_seal`` with a caller-chosen ephemeral key (so vectors are fixed).

    libsodium: ``epk || crypto_box(m, nonce=BLAKE2b-192(epk || pk), pk, esk)``.
    """
    epk = enc_public_key(ephemeral_secret)
    nonce = hashlib.blake2b(epk + recipient_enc_key, digest_size=24).digest()
    try:
        boxed = nacl.bindings.crypto_box(message, nonce, recipient_enc_key, ephemeral_secret)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise LocalProtocolError("cannot encrypt to that key", code=ErrorCode.BAD_KEY) from None
    return epk + boxed


def seal(
    content: Body | Mapping[str, Any],
    *,
    sender_key: SigningKey,
    to: bytes,
    recipient_enc_key: bytes,
    net: bytes,
    now_ms: int,
    ephemeral_secret: bytes,
    nonce: bytes,
    kind: str | None = None,
    sender: bytes | None = None,
) -> Sealed:
    """Sign and encrypt a message to one peer.

    Args:
        content: a message :class:`Body` (``msg.text/1``...) or a map with ``kind``.
        sender_key: our current feed signing key; ``sender`` is our node id if the key
            was rotated (defaults to the key's public key).
        to: the recipient's node id; ``recipient_enc_key`` its profile's ``enc_key``.
        ephemeral_secret: 32 fresh random bytes (the caller's RNG), used once.
        nonce: 16 fresh random bytes, so that two identical texts sent in the same
            millisecond are still two messages.

    Raises:
        LocalProtocolError: invalid content, keys or sizes.
    """
    if isinstance(content, Body):
        kind, fields = content.KIND, content.to_content()
    elif kind is None:
        raise LocalProtocolError("a content map needs its kind", code=ErrorCode.BAD_KIND)
    else:
        fields = dict(content)
    if type(nonce) is not bytes or len(nonce) != 16:
        raise LocalProtocolError("nonce must be 16 bytes", code=ErrorCode.BAD_VALUE)
    payload = encode(
        {
            "content": fields,
            "from": sender or public_key(sender_key),
            "kind": kind,
            "net": net,
            "nonce": nonce,
            "to": to,
            "ts": now_ms,
            "v": 1,
        },
        max_size=_MAX_INNER_BYTES,
    )
    inner = encode([payload, sign(sender_key, MESSAGE_TAG + payload)], max_size=_MAX_INNER_BYTES)
    message_id = hashlib.sha256(inner).digest()
    box = _seal_box(inner, recipient_enc_key, ephemeral_secret)
    envelope = encode(
        {"box": box, "id": message_id, "net": net, "to": to, "v": 1}, max_size=MAX_SEALED_BYTES
    )
    try:
        message = _parse_inner(
            inner, envelope_to=to, net=net, key=public_key(sender_key), now_ms=None
        )
    except ProtocolError as exc:
        raise LocalProtocolError(exc.message, code=exc.code) from None
    return Sealed(id=message_id, envelope=envelope, message=message)


def open_envelope(data: bytes, *, net: bytes) -> Envelope:
    """Check an envelope's framing (what a relay or an inbox does before storing it).

    Raises:
        RemoteProtocolError: malformed, oversized, or WRONG_NET.
    """
    value = decode(data, max_size=MAX_SEALED_BYTES)
    if type(value) is not dict or tuple(value) != _ENVELOPE_KEYS:
        _remote(ErrorCode.MALFORMED, "an envelope is {box, id, net, to, v}")
    if type(value["v"]) is not int or value["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "envelope version is not 1")
    for name, size in (("id", 32), ("net", 32), ("to", 32)):
        if type(value[name]) is not bytes or len(value[name]) != size:
            _remote(ErrorCode.WRONG_TYPE, f"{name} must be {size} bytes")
    if type(value["box"]) is not bytes or len(value["box"]) < 48:
        _remote(ErrorCode.WRONG_TYPE, "box must be a sealed box")
    if value["net"] != net:
        _remote(ErrorCode.WRONG_NET, "envelope belongs to another federation")
    return Envelope(id=value["id"], net=net, to=value["to"], box=value["box"], wire=bytes(data))


def unseal(
    data: bytes,
    *,
    net: bytes,
    recipient: bytes,
    enc_secret: bytes,
    now_ms: int | None,
    sender_key: Callable[[bytes], bytes] | None = None,
) -> Message:
    """Open, authenticate and parse a message addressed to us.

    Args:
        recipient: our node id; ``enc_secret`` our X25519 secret.
        sender_key: maps a sender's node id to its current signing key (after a
            rotation); by default the node id itself.

    Raises:
        RemoteProtocolError: WRONG_RECIPIENT, DECRYPT_FAILED, ID_MISMATCH,
            BAD_SIGNATURE, WRONG_NET, TS_IN_FUTURE, or a schema/encoding error.
    """
    envelope = open_envelope(data, net=net)
    if envelope.to != recipient:
        _remote(ErrorCode.WRONG_RECIPIENT, "envelope is addressed to another node")
    try:
        inner = nacl.bindings.crypto_box_seal_open(
            envelope.box, enc_public_key(enc_secret), enc_secret
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        _remote(ErrorCode.DECRYPT_FAILED, "box does not open with our key")
    if hashlib.sha256(inner).digest() != envelope.id:
        _remote(ErrorCode.ID_MISMATCH, "envelope id is not the hash of its message")
    return _parse_inner(inner, envelope_to=envelope.to, net=net, key=sender_key, now_ms=now_ms)


def _parse_inner(
    inner: bytes,
    *,
    envelope_to: bytes,
    net: bytes,
    key: bytes | Callable[[bytes], bytes] | None,
    now_ms: int | None,
) -> Message:
    outer = decode(inner, max_size=_MAX_INNER_BYTES)
    if type(outer) is not list or len(outer) != 2:
        _remote(ErrorCode.MALFORMED, "a message is [payload, sig]")
    payload, sig = outer
    if type(payload) is not bytes or type(sig) is not bytes or len(sig) != 64:
        _remote(ErrorCode.WRONG_TYPE, "a message is [bin, bin 64]")
    fields = decode(payload, max_size=_MAX_INNER_BYTES)
    if type(fields) is not dict or tuple(fields) != _PAYLOAD_KEYS:
        _remote(ErrorCode.MALFORMED, "message payload has the wrong fields")
    if type(fields["v"]) is not int or fields["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "message version is not 1")
    for name, size in (("from", 32), ("net", 32), ("to", 32), ("nonce", 16)):
        if type(fields[name]) is not bytes or len(fields[name]) != size:
            _remote(ErrorCode.WRONG_TYPE, f"{name} must be {size} bytes")
    if fields["net"] != net:
        _remote(ErrorCode.WRONG_NET, "message belongs to another federation")
    if fields["to"] != envelope_to:
        _remote(ErrorCode.WRONG_RECIPIENT, "message was signed for another recipient")
    ts = fields["ts"]
    if type(ts) is not int or not MIN_TS <= ts <= MAX_TS:
        _remote(ErrorCode.BAD_VALUE, "ts out of range")
    if now_ms is not None and ts > now_ms + MAX_CLOCK_SKEW_MS:
        _remote(ErrorCode.TS_IN_FUTURE, "message ts is ahead of our clock")
    sender = fields["from"]
    signer = key(sender) if callable(key) else (key or sender)
    verify(signer, MESSAGE_TAG + payload, sig)
    kind, content = fields["kind"], fields["content"]
    try:
        check_kind_name("kind", kind)
    except LocalProtocolError as exc:
        _remote(exc.code, exc.message)
    if type(content) is not dict:
        _remote(ErrorCode.WRONG_TYPE, "content must be a map")
    spec = MESSAGE_KINDS.get(kind)
    if spec is None:
        check_tree(content, 2)
        body = None
    else:
        body = spec.from_content(content)
    return Message(
        id=hashlib.sha256(inner).digest(),
        net=net,
        sender=sender,
        to=fields["to"],
        ts=ts,
        nonce=fields["nonce"],
        kind=kind,
        content=content,
        body=body,
    )
