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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import nacl.bindings
import nacl.exceptions

from ._encoding import check_tree, decode, encode
from ._entry import MAX_CLOCK_SKEW_MS, MAX_TS, MIN_TS
from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._keys import SigningKey, public_key, sign, verify
from ._kinds import MESSAGE_KINDS, MESSAGE_NAMESPACE, check_kind_name
from ._schema import Body, bin_exact, bin_max, check_map, fail, uint, wrong_type

__all__ = [
    "MAX_MESSAGE_AGE_MS",
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
#: How old a message may be when it arrives: 30 days. Offline-first links can hold a
#: message in an outbox or at a relay for days; past this the sender gives up and the
#: recipient refuses it, so an inbox need remember ids (to drop replays) only this long.
MAX_MESSAGE_AGE_MS: Final = 30 * 24 * 60 * 60 * 1000
#: The envelope's framing takes at most 125 bytes and the sealed box adds 48 (a 32-byte
#: ephemeral key and a 16-byte tag): 256 leaves a margin.
_MAX_INNER_BYTES: Final = MAX_SEALED_BYTES - 256
_BOX_OVERHEAD: Final = 48


def _map(name: str, value: Any) -> None:
    if type(value) is not dict:
        wrong_type(name, value, "map")


def _message_kind(name: str, value: Any) -> None:
    check_kind_name(name, value)
    if not value.startswith(MESSAGE_NAMESPACE):
        fail(ErrorCode.BAD_KIND, f"{name}: message kinds are in the msg. namespace")


_ENVELOPE_FIELDS: Final = {
    "box": bin_max(MAX_SEALED_BYTES),
    "id": bin_exact(32),
    "net": bin_exact(32),
    "to": bin_exact(32),
    "v": uint(0, 2**32 - 1),
}
_PAYLOAD_FIELDS: Final = {
    "content": _map,
    "from": bin_exact(32),
    "kind": _message_kind,
    "net": bin_exact(32),
    "nonce": bin_exact(16),
    "to": bin_exact(32),
    "ts": uint(MIN_TS, MAX_TS),
    "v": uint(0, 2**32 - 1),
}


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


def _verify_any(keys: Sequence[bytes], message: bytes, sig: bytes) -> None:
    for key in keys:
        try:
            verify(key, message, sig)
        except RemoteProtocolError:
            continue
        return
    _remote(ErrorCode.BAD_SIGNATURE, "message is not signed by any key of its sender")


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
        if kind is not None and kind != content.KIND:
            raise LocalProtocolError("kind does not match the body", code=ErrorCode.BAD_KIND)
        kind, fields = content.KIND, content.to_content()
    elif kind is None:
        raise LocalProtocolError("a content map needs its kind", code=ErrorCode.BAD_KIND)
    else:
        fields = dict(content)
    if type(nonce) is not bytes or len(nonce) != 16:
        raise LocalProtocolError("nonce must be 16 bytes", code=ErrorCode.BAD_VALUE)
    if now_ms < MIN_TS:
        raise LocalProtocolError("the clock is not set (before 2025)", code=ErrorCode.CLOCK_UNSET)
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
            inner, envelope_to=to, net=net, keys=public_key(sender_key), now_ms=None
        )
    except ProtocolError as exc:
        raise LocalProtocolError(exc.message, code=exc.code) from None
    return Sealed(id=message_id, envelope=envelope, message=message)


def open_envelope(data: bytes, *, net: bytes) -> Envelope:
    """Check an envelope's framing (what a relay or an inbox does before storing it).

    Raises:
        RemoteProtocolError: malformed, oversized, or WRONG_NET.
    """
    value = check_map("envelope", decode(data, max_size=MAX_SEALED_BYTES), _ENVELOPE_FIELDS)
    if value["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "envelope version is not 1")
    if len(value["box"]) < _BOX_OVERHEAD:
        _remote(ErrorCode.BAD_VALUE, "box is shorter than a sealed box's overhead")
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
    sender_keys: Callable[[bytes], Sequence[bytes]] | None = None,
) -> Message:
    """Open, authenticate and parse a message addressed to us.

    Args:
        recipient: our node id; ``enc_secret`` our X25519 secret.
        now_ms: our clock, to refuse messages from the future and messages older than
            :data:`MAX_MESSAGE_AGE_MS`; None skips both (for tools).
        sender_keys: maps a sender's node id to the keys its messages may be signed
            with: its current key and those it rotated away from within
            :data:`MAX_MESSAGE_AGE_MS`, so messages queued before a rotation still
            arrive. Never a key rotated away from for ``compromise``: whoever holds it
            could forge back-dated messages. By default the node id itself.

    Raises:
        RemoteProtocolError: WRONG_RECIPIENT, DECRYPT_FAILED, ID_MISMATCH,
            BAD_SIGNATURE, WRONG_NET, TS_IN_FUTURE, EXPIRED, or a schema/encoding error.
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
    return _parse_inner(inner, envelope_to=envelope.to, net=net, keys=sender_keys, now_ms=now_ms)


def _parse_inner(
    inner: bytes,
    *,
    envelope_to: bytes,
    net: bytes,
    keys: bytes | Callable[[bytes], Sequence[bytes]] | None,
    now_ms: int | None,
) -> Message:
    outer = decode(inner, max_size=_MAX_INNER_BYTES)
    if type(outer) is not list or len(outer) != 2:
        _remote(ErrorCode.MALFORMED, "a message is [payload, sig]")
    payload, sig = outer
    if type(payload) is not bytes or type(sig) is not bytes or len(sig) != 64:
        _remote(ErrorCode.WRONG_TYPE, "a message is [bin, bin 64]")
    fields = check_map("message", decode(payload, max_size=_MAX_INNER_BYTES), _PAYLOAD_FIELDS)
    if fields["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "message version is not 1")
    if fields["net"] != net:
        _remote(ErrorCode.WRONG_NET, "message belongs to another federation")
    if fields["to"] != envelope_to:
        _remote(ErrorCode.WRONG_RECIPIENT, "message was signed for another recipient")
    ts = fields["ts"]
    if now_ms is not None and ts > now_ms + MAX_CLOCK_SKEW_MS:
        _remote(ErrorCode.TS_IN_FUTURE, "message ts is ahead of our clock")
    if now_ms is not None and ts < now_ms - MAX_MESSAGE_AGE_MS:
        _remote(ErrorCode.EXPIRED, "message is older than the inbox remembers ids")
    sender = fields["from"]
    _verify_any(keys(sender) if callable(keys) else [keys or sender], MESSAGE_TAG + payload, sig)
    kind, content = fields["kind"], fields["content"]
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
