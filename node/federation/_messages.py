"""Org-to-org direct messages: the outbox, the inbox and the relay (SPEC §6, DESIGN §4).

A message never enters a feed. :meth:`MessageService.send` seals one ``msg.text/1`` per
recipient (signed with our feed key, encrypted to the recipient's ``enc_key`` from its
newest ``node.profile/1`` in our replica) and stores, in one transaction per
recipient, the opened message (``messages``), the sealed envelope (``outbox``) and an
audit row. :meth:`MessageService.deliver_due` then hands envelopes to a
:class:`Transport`, directly to the recipient when it is an approved peer, else (or
when it cannot be reached) through a relay: an approved peer that holds the
recipient's feed. The envelope is resent unchanged, with exponential backoff and full
jitter, until acknowledged or older than ``protocol.MAX_MESSAGE_AGE_MS``.

:meth:`MessageService.receive` answers a batch of envelopes with one :class:`Ack`
each. Envelopes for us are opened and verified (SPEC §6.7) before anything is stored;
delivery is idempotent by message id. A text is answered with a ``msg.receipt/1``
"delivered" through the outbox (so it survives a lost link like any message), and
opening its thread answers "read". Receipts advance our outgoing message's state
(queued, relayed -> delivered -> read; never backwards) and are never answered.
Envelopes for another node are carried as opaque bytes (SPEC §6.8): kept in ``relay``
keyed by SHA-256 of the exact bytes and forwarded when the recipient is reachable.

No database transaction is held while the network is awaited; different recipients
are served concurrently, so one slow peer delays only its own messages.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Protocol

from sqlalchemy import Table, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog, DetailValue
from node.clock import Clock
from node.identity import Identity
from node.storage import Database, FeedStore, stored_content
from node.storage._schema import messages, outbox, relay
from protocol._kinds import MAX_ATTACHMENTS, MAX_ATTACHMENTS_BYTES

__all__ = [
    "BACKOFF_BASE_MS",
    "BACKOFF_CAP_MS",
    "RELAY_RECHECK_MS",
    "Ack",
    "AckStatus",
    "AttachmentInfo",
    "DeliveryFailed",
    "MessageError",
    "MessageErrorCode",
    "MessageEvent",
    "MessageService",
    "MessageState",
    "MessageView",
    "PeerName",
    "RecipientState",
    "Subscription",
    "ThreadSummary",
    "Transport",
]

MessageState = Literal["queued", "relayed", "delivered", "read", "failed"]
AckStatus = Literal["delivered", "duplicate", "relayed", "rejected", "retry"]
EventKind = Literal["message", "state", "unread"]

#: First retry after up to 5 s; each failure doubles the ceiling, up to 30 min (a node
#: on a flaky link is back within minutes; one that is off for days costs a request
#: every half hour). The delay is drawn uniformly below the ceiling ("full jitter",
#: AWS Architecture Blog, "Exponential Backoff And Jitter", 2015), so that the
#: outboxes of a federation do not all retry at the same instant after an outage.
BACKOFF_BASE_MS: Final = 5_000
BACKOFF_CAP_MS: Final = 30 * 60_000
#: A relay took custody: stop retrying, but if no "delivered" receipt came back within
#: a day, send again (the relay may have lost it; the recipient deduplicates by id).
RELAY_RECHECK_MS: Final = 24 * 60 * 60_000
#: Envelopes per call: at most 1 MiB of envelopes (one maximal envelope always fits
#: alone), so a call stays within a federation request body (``MAX_DOCUMENT_BYTES``
#: = 1 100 000) and a retry over a slow link resends little.
MAX_BATCH_BYTES: Final = protocol.MAX_SEALED_BYTES
MAX_BATCH_COUNT: Final = 64
#: Due rows one pass takes (the rest wait for the next pass, moments later).
MAX_DUE_PER_PASS: Final = 500
#: Peers served at once; each holds at most one batch (~1 MiB) in memory.
MAX_CONCURRENT_PEERS: Final = 16
#: Envelopes we carry for one sending peer: a relay must not become a peer's free
#: unbounded storage (2 000 x 1 MiB worst case; real messages are a few KiB).
MAX_RELAY_PER_PEER: Final = 2_000
#: Events buffered per subscriber; a browser that lags further loses the oldest ones
#: (the next "unread" event carries the whole state again).
SUBSCRIBER_QUEUE: Final = 64

_TEXT: Final = protocol.TextMessage.KIND
_RECEIPT: Final = protocol.Receipt.KIND
_PROFILE: Final = protocol.Profile.KIND
_ROTATE: Final = protocol.KeyRotate.KIND
#: Outgoing states, in the only order they may change (failed aside: a receipt proves
#: delivery even after we gave up, so it may lift "failed").
_RANK: Final = {"failed": -1, "queued": 0, "relayed": 1, "delivered": 2, "read": 3}
_DONE_ACKS: Final = frozenset({"delivered", "duplicate"})
_CUSTODY_ACKS: Final = frozenset({"delivered", "duplicate", "relayed"})

_log = logging.getLogger(__name__)


class MessageErrorCode(enum.StrEnum):
    NO_RECIPIENT = "NO_RECIPIENT"  # nobody to send to
    UNKNOWN_RECIPIENT = "UNKNOWN_RECIPIENT"  # no profile (hence no enc_key) replicated
    NOT_A_PEER = "NOT_A_PEER"  # neither an approved peer nor reachable through a relay
    TOO_LARGE = "TOO_LARGE"  # the text or the whole message is over its limit
    BAD_ATTACHMENT = "BAD_ATTACHMENT"  # type not allowed, empty, too many or too large
    INVALID = "INVALID"  # text or subject breaks the text rules (SPEC §5.1.5)


class MessageError(protocol.CodedError):
    """A message we refuse to send; nothing was stored. ``message`` is one line."""

    code: MessageErrorCode

    def __init__(self, message: str, *, code: MessageErrorCode) -> None:
        super().__init__(message, code=code)


class DeliveryFailed(Exception):
    """The transport could not hand envelopes to a peer: unreachable, timed out, or
    the peer refused the whole request. ``code`` is machine-readable (``UNREACHABLE``,
    ``TIMEOUT``, an error code the peer sent...). Raised by the :class:`Transport`."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """A receiving node's answer for one envelope.

    Attributes:
        id: the envelope's message id.
        status: ``delivered`` (stored in its inbox), ``duplicate`` (it had it), ``relayed``
            (a relay took custody), ``rejected`` (final: never send it again), ``retry``
            (not now: e.g. the recipient has not replicated the sender yet).
        code: why, for ``rejected`` and ``retry`` (a protocol ``ErrorCode`` or one of
            ``UNKNOWN_SENDER``, ``UNKNOWN_RECIPIENT``, ``RELAY_FULL``, ``FORK``).
    """

    id: bytes
    status: AckStatus
    code: str | None = None


class Transport(Protocol):
    """Node-to-node delivery (implemented by the signed federation HTTP client)."""

    async def post_envelopes(self, peer: bytes, envelopes: list[bytes]) -> list[Ack]:
        """Hand ``envelopes`` to ``peer``; one :class:`Ack` per envelope.

        The transport bounds each call with its own timeout.

        Raises:
            DeliveryFailed: the peer is unreachable, timed out or refused the request.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerName:
    """A peer organisation's names, from its newest ``node.profile/1``."""

    name_ar: str
    name_en: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientState:
    peer: bytes
    message: bytes
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentInfo:
    index: int
    name: str
    type: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageView:
    """One message of a thread as the UI shows it. An outgoing text sent to several
    peers at once is one view with one :class:`RecipientState` per peer.

    Attributes:
        id: the message id (for an outgoing view, the first recipient's copy).
        sender: the peer that sent it (incoming), or our node id (outgoing).
        ts: the sender's time stamp; ``created_ms`` when we stored it.
        read_ms: when an incoming message was first read here.
    """

    id: bytes
    direction: Literal["in", "out"]
    thread: bytes
    sender: bytes
    recipients: tuple[RecipientState, ...]
    ts: int
    created_ms: int
    subject: str | None
    text: str
    attachments: tuple[AttachmentInfo, ...]
    read_ms: int | None
    author_account: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadSummary:
    """A conversation in the inbox.

    Attributes:
        peers: every peer the thread was exchanged with, in first-seen order.
        subject: the first subject given in the thread, if any.
        last_ms: when its newest message was stored here.
        unread: incoming messages not yet read.
        last_state: the least advanced state among the recipients of our newest
            message in the thread (``failed`` first); None if we never wrote in it.
    """

    thread: bytes
    peers: tuple[bytes, ...]
    subject: str | None
    last_ms: int
    count: int
    unread: int
    last_state: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent:
    """What subscribers (the UI's server-sent events) hear.

    ``message``: a text arrived in ``thread``; ``state``: one of our messages in
    ``thread`` changed state; ``unread``: the unread count is now ``unread``.
    """

    kind: EventKind
    thread: bytes | None = None
    unread: int | None = None


class Subscription:
    """An async iterator over :class:`MessageEvent`, and an async context manager that
    unsubscribes on exit. Events published while nobody reads are buffered up to
    :data:`SUBSCRIBER_QUEUE`; beyond that the oldest are dropped."""

    def __init__(self, subscribers: set[Subscription]) -> None:
        self._subscribers = subscribers
        self._queue: asyncio.Queue[MessageEvent | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._closed = False
        subscribers.add(self)

    def put(self, event: MessageEvent | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()  # drop the oldest: a lagging browser must not grow us
        self._queue.put_nowait(event)

    def close(self) -> None:
        """Unsubscribe; a reader waiting in ``__anext__`` stops iterating."""
        if not self._closed:
            self._closed = True
            self._subscribers.discard(self)
            self.put(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MessageEvent:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class _Due:
    key: bytes  # outbox: message id; relay: envelope digest
    recipient: bytes
    attempts: int
    deadline_ms: int  # give up (EXPIRED) at this time
    size: int


Outcome = tuple[AckStatus, str | None, bytes | None]  # status, code, via


class MessageService:
    """The node's outbox, inbox and relay. One instance per node.

    Args:
        db, feeds, audit: the node's database, feed store and audit log.
        identity: our keys (we sign with the feed key, open with the X25519 secret).
        net: the federation id.
        clock: the node's clock.
        random_bytes: the RNG (ephemeral keys, nonces, thread ids, jitter).
        transport: how envelopes reach peers; None until federation is wired (then
            :meth:`deliver_due` does nothing). Settable later.
        approved_peers: the node ids we may talk to directly.
        relays_for: approved peers that hold a node's feed (relay candidates).
    """

    def __init__(
        self,
        db: Database,
        *,
        feeds: FeedStore,
        audit: AuditLog,
        identity: Identity,
        net: bytes,
        clock: Clock,
        random_bytes: Callable[[int], bytes],
        transport: Transport | None = None,
        approved_peers: Callable[[], Awaitable[set[bytes]]],
        relays_for: Callable[[bytes], Awaitable[list[bytes]]],
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._audit = audit
        self._identity = identity
        self._me = identity.node_id
        self._net = net
        self._clock = clock
        self._random = random_bytes
        self.transport = transport
        self._approved_peers = approved_peers
        self._relays_for = relays_for
        self._subscribers: set[Subscription] = set()
        self._in_flight: set[bytes] = set()
        #: Recipients a pass is serving now, with that pass's token and the keys of the
        #: rows it took: later passes leave them to it (see :meth:`deliver_due`).
        self._busy: dict[bytes, tuple[object, set[bytes]]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_PEERS)
        self._wake = asyncio.Event()
        self._unread: int | None = None

    # -- sending --------------------------------------------------------------------

    async def send(
        self,
        *,
        account_id: int | None,
        to: Sequence[bytes],
        text: str,
        subject: str | None = None,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        thread: bytes | None = None,
    ) -> list[bytes]:
        """Seal a text to each recipient and queue it (delivery: :meth:`deliver_due`).

        Args:
            account_id: the staff account that wrote it (audited).
            to: recipients' node ids (duplicates are sent once).
            text: the message; CR LF becomes LF (SPEC §5.1.5).
            subject: single-line; blank means none.
            attachments: ``(name, media type, data)`` each.
            thread: the conversation to reply in; None starts a new one.

        Returns:
            The message ids, one per recipient, in the order of ``to``.

        Raises:
            MessageError: nothing was stored (see :class:`MessageErrorCode`).
            StorageError: the database failed; recipients before the failing one
                were queued.
        """
        recipients = list(dict.fromkeys(to))
        if not recipients:
            raise MessageError("no recipient", code=MessageErrorCode.NO_RECIPIENT)
        body = _text_body(text, subject, attachments, thread or self._random(32))
        approved = await self._approved_peers()
        keys: dict[bytes, bytes] = {}
        for peer in recipients:
            if peer == self._me or (peer not in approved and not await self._relays(peer)):
                raise MessageError(
                    f"{peer.hex()[:16]}… is not a peer", code=MessageErrorCode.NOT_A_PEER
                )
            profile = await self._profile(peer)
            if profile is None:
                raise MessageError(
                    f"no profile of {peer.hex()[:16]}… replicated yet",
                    code=MessageErrorCode.UNKNOWN_RECIPIENT,
                )
            keys[peer] = profile.enc_key
        now = self._clock.now_ms()
        sealed = [(peer, self._seal(body, peer, keys[peer], now)) for peer in recipients]
        content = protocol.encode(body.to_content())
        assert body.thread is not None
        for peer, item in sealed:
            await self._db.write(self._queue_text_txn, peer, item, body, content, account_id, now)
        self._publish(MessageEvent(kind="state", thread=body.thread))
        self._wake.set()
        return [item.id for _peer, item in sealed]

    def _seal(self, body: protocol.Body, peer: bytes, enc_key: bytes, now: int) -> protocol.Sealed:
        try:
            return protocol.seal(
                body,
                sender_key=self._identity.signing_key,
                sender=self._me,
                to=peer,
                recipient_enc_key=enc_key,
                net=self._net,
                now_ms=now,
                ephemeral_secret=self._random(32),
                nonce=self._random(16),
            )
        except protocol.LocalProtocolError as error:
            if error.code is protocol.ErrorCode.TOO_LARGE:
                raise MessageError(error.message, code=MessageErrorCode.TOO_LARGE) from None
            if error.code is protocol.ErrorCode.BAD_KEY:
                raise MessageError(
                    "the recipient's profile has an unusable key",
                    code=MessageErrorCode.UNKNOWN_RECIPIENT,
                ) from None
            raise

    def _queue_text_txn(
        self,
        conn: Connection,
        peer: bytes,
        item: protocol.Sealed,
        body: protocol.TextMessage,
        content: bytes,
        account_id: int | None,
        now: int,
    ) -> None:
        assert body.thread is not None
        conn.execute(
            messages.insert().values(
                id=item.id,
                direction="out",
                peer=peer,
                thread=body.thread,
                kind=_TEXT,
                content=content,
                ts=now,
                created_ms=now,
                state="queued",
                author_account=account_id,
            )
        )
        _queue_envelope(conn, item, peer, now)
        details: dict[str, DetailValue] = {
            "message": item.id.hex(),
            "thread": body.thread.hex(),
            "attachments": len(body.attachments or ()),
            "bytes": len(item.envelope),
        }
        self._audit.record_txn(conn, account_id, "message.sent", peer.hex(), details, now_ms=now)

    # -- receiving --------------------------------------------------------------------

    async def receive(self, envelopes: Sequence[bytes], *, from_peer: bytes) -> list[Ack]:
        """Take envelopes a peer hands us: our own inbox's, or others' to relay.

        Returns:
            One :class:`Ack` per envelope, in order. An envelope whose framing is
            invalid is acknowledged with the message id ``bytes(32)`` when it has none.

        Raises:
            StorageError: the database failed (the peer retries; delivery is idempotent).
        """
        acks = []
        for data in envelopes:
            try:
                envelope = protocol.open_envelope(bytes(data), net=self._net)
            except protocol.ProtocolError as error:
                acks.append(Ack(id=_claimed_id(data), status="rejected", code=error.code.value))
                continue
            if envelope.to == self._me:
                acks.append(await self._receive_own(envelope))
            else:
                acks.append(await self._receive_for_relay(envelope, from_peer))
        return acks

    async def _receive_own(self, envelope: protocol.Envelope) -> Ack:
        sender: list[bytes] = []

        def note_sender(node: bytes) -> Sequence[bytes]:
            sender.append(node)
            return ()  # the keys come from our replica, which needs an await: pass two

        # Pass one opens and checks everything up to the signature (SPEC §6.7 steps
        # 1-20) and tells us the sender; pass two verifies under its keys.
        try:
            self._unseal(envelope, note_sender)
        except protocol.RemoteProtocolError as error:
            if error.code is not protocol.ErrorCode.BAD_SIGNATURE or not sender:
                return _refusal(envelope.id, error.code.value)
        if await self._feeds.has_fork(sender[0]):
            return Ack(id=envelope.id, status="rejected", code="FORK")
        keys = await self._sender_keys(sender[0])
        if not keys:
            return Ack(id=envelope.id, status="retry", code="UNKNOWN_SENDER")
        try:
            message = self._unseal(envelope, lambda _node: keys)
        except protocol.RemoteProtocolError as error:
            return _refusal(envelope.id, error.code.value)
        if message.kind == _RECEIPT:
            return await self._take_receipt(message)
        return await self._take_message(message)

    def _unseal(
        self, envelope: protocol.Envelope, keys: Callable[[bytes], Sequence[bytes]]
    ) -> protocol.Message:
        return protocol.unseal(
            envelope.wire,
            net=self._net,
            recipient=self._me,
            enc_secret=self._identity.encryption_secret,
            now_ms=self._clock.now_ms(),
            sender_keys=keys,
        )

    async def _take_message(self, message: protocol.Message) -> Ack:
        if await self._db.read(_exists_txn, message.id):
            return Ack(id=message.id, status="duplicate")
        receipt = None
        if message.kind == _TEXT:
            receipt = await self._seal_receipt(message.sender, message.id, "delivered")
        stored = await self._db.write(self._store_incoming_txn, message, receipt)
        if not stored:
            return Ack(id=message.id, status="duplicate")
        if message.kind == _TEXT:
            self._publish(MessageEvent(kind="message", thread=_thread_of(message)))
            await self._publish_unread()
        if receipt is not None:
            self._wake.set()
        return Ack(id=message.id, status="delivered")

    def _store_incoming_txn(
        self, conn: Connection, message: protocol.Message, receipt: protocol.Sealed | None
    ) -> bool:
        now = self._clock.now_ms()
        inserted = conn.execute(
            _insert(conn, messages)
            .values(
                id=message.id,
                direction="in",
                peer=message.sender,
                thread=_thread_of(message),
                kind=message.kind,
                content=protocol.encode(message.content),
                ts=message.ts,
                created_ms=now,
                state="received",
                # a kind this version cannot show is stored (so its id deduplicates)
                # but never counted as unread
                read_ms=None if message.kind == _TEXT else now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        if inserted.rowcount != 1:
            return False
        if receipt is not None:
            _queue_envelope(conn, receipt, message.sender, now)
        return True

    async def _take_receipt(self, message: protocol.Message) -> Ack:
        body = message.body
        assert isinstance(body, protocol.Receipt)
        thread = await self._db.write(
            _advance_txn, body.message, message.sender, body.state, self._clock.now_ms()
        )
        if thread is None:
            return Ack(id=message.id, status="duplicate")
        self._publish(MessageEvent(kind="state", thread=thread))
        return Ack(id=message.id, status="delivered")

    async def _receive_for_relay(self, envelope: protocol.Envelope, from_peer: bytes) -> Ack:
        recipient = envelope.to
        known = recipient in await self._approved_peers()
        if not known and await self._feeds.head(recipient) is None:
            return Ack(id=envelope.id, status="rejected", code="UNKNOWN_RECIPIENT")
        stored = await self._db.write(_store_relay_txn, envelope, from_peer, self._clock.now_ms())
        if not stored:
            return Ack(id=envelope.id, status="retry", code="RELAY_FULL")
        self._wake.set()
        return Ack(id=envelope.id, status="relayed")

    # -- delivering -------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """One pass over due outbox and relay rows.

        Outbox rows go to the recipient directly when it is an approved peer; when
        that fails, or it is not approved, through each of ``relays_for(recipient)``
        in turn. Relay rows go only to their recipient, when it is an approved peer.
        Rows past ``MAX_MESSAGE_AGE_MS`` give up (EXPIRED). Recipients are served
        concurrently; no transaction is open while the network is awaited.

        Returns:
            How many due rows the pass handled (sent, retried later or expired).

        Raises:
            StorageError: the database failed (after every recipient was tried).
        """
        transport = self.transport
        if transport is None:
            return 0
        now = self._clock.now_ms()
        out_rows, relay_rows = await self._db.read(_due_txn, now, MAX_DUE_PER_PASS)
        out_rows = [r for r in out_rows if r.key not in self._in_flight]
        relay_rows = [r for r in relay_rows if r.key not in self._in_flight]
        expired = [r for r in out_rows + relay_rows if r.deadline_ms <= now]
        if expired:
            threads = await self._db.write(
                _expire_txn,
                [r.key for r in out_rows if r.deadline_ms <= now],
                [r.key for r in relay_rows if r.deadline_ms <= now],
                now,
            )
            self._publish_states(threads)
        groups: dict[bytes, tuple[list[_Due], list[_Due]]] = defaultdict(lambda: ([], []))
        for row in out_rows:
            if row.deadline_ms > now:
                groups[row.recipient][0].append(row)
        for row in relay_rows:
            if row.deadline_ms > now:
                groups[row.recipient][1].append(row)
        for busy in self._busy.keys() & groups.keys():
            del groups[busy]  # a pass still serves it (waiting on it, maybe for long)
        token = object()  # this pass, as the owner of what it claims
        for recipient, (outs, relays) in groups.items():
            keys = {r.key for r in outs + relays}
            self._busy[recipient] = (token, keys)
            self._in_flight |= keys
        try:
            approved = await self._approved_peers() if groups else set()
            results = await asyncio.gather(
                *(
                    self._deliver_to(transport, peer, outs, relays, approved, token)
                    for peer, (outs, relays) in groups.items()
                ),
                return_exceptions=True,
            )
        finally:
            for recipient in groups:  # what _deliver_to has not released (never ran)
                self._release(recipient, token)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(out_rows) + len(relay_rows)

    async def _deliver_to(
        self,
        transport: Transport,
        recipient: bytes,
        outs: list[_Due],
        relays: list[_Due],
        approved: set[bytes],
        token: object,
    ) -> None:
        try:
            async with self._slots:
                for chunk in _batches(outs):
                    await self._send_chunk(transport, recipient, chunk, approved)
                for chunk in _batches(relays):
                    await self._forward_chunk(transport, recipient, chunk, approved)
        finally:
            # Done with this recipient: a later pass may take its rows (when due again)
            # while this pass still waits for another recipient.
            self._release(recipient, token)

    def _release(self, recipient: bytes, token: object) -> None:
        """End pass ``token``'s claim on ``recipient`` and its rows, if it still holds it."""
        held = self._busy.get(recipient)
        if held is not None and held[0] is token:
            del self._busy[recipient]
            self._in_flight -= held[1]

    async def _send_chunk(
        self, transport: Transport, recipient: bytes, chunk: list[_Due], approved: set[bytes]
    ) -> None:
        envelopes = await self._db.read(_envelopes_txn, outbox, [r.key for r in chunk])
        if not envelopes:
            return
        results: dict[bytes, Outcome] = {}
        pending = list(envelopes)
        codes = dict.fromkeys(pending, "NO_ROUTE")
        if recipient in approved:
            try:
                acks = await transport.post_envelopes(recipient, list(envelopes.values()))
            except DeliveryFailed as error:
                codes = dict.fromkeys(pending, error.code)
            else:
                answered = {ack.id: ack for ack in acks}
                for key in pending:
                    ack = answered.get(key)
                    results[key] = (
                        (ack.status, ack.code, None) if ack else ("retry", "NO_ACK", None)
                    )
                pending = []
        relays = await self._relays(recipient) if pending else []
        for via in relays:
            try:
                acks = await transport.post_envelopes(via, [envelopes[k] for k in pending])
            except DeliveryFailed as error:
                codes.update(dict.fromkeys(pending, error.code))
                continue
            answered = {ack.id: ack for ack in acks}
            for key in pending:
                ack = answered.get(key)
                if ack is not None and ack.status in _CUSTODY_ACKS:
                    results[key] = (ack.status, ack.code, via)
                else:  # a relay's refusal is not final: another may carry it
                    codes[key] = (ack.code or ack.status) if ack else "NO_ACK"
            pending = [k for k in pending if k not in results]
            if not pending:
                break
        for key in pending:
            results[key] = ("retry", codes[key], None)
        threads = await self._db.write(self._apply_outbox_txn, results, self._clock.now_ms())
        self._publish_states(threads)

    def _apply_outbox_txn(
        self, conn: Connection, results: dict[bytes, Outcome], now: int
    ) -> set[bytes]:
        changed: set[bytes] = set()
        for key, (status, code, via) in results.items():
            if status in _DONE_ACKS:
                conn.execute(outbox.delete().where(outbox.c.id == key))
                changed |= _set_state(conn, key, "delivered")
            elif status == "relayed":
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == key)
                    .values(
                        state="relayed",
                        via=via,
                        attempts=outbox.c.attempts + 1,
                        last_error=None,
                        next_attempt_ms=now + RELAY_RECHECK_MS,
                        updated_ms=now,
                    )
                )
                changed |= _set_state(conn, key, "relayed")
            elif status == "rejected":
                changed |= _fail_outbox(conn, key, code or "REJECTED", now)
            else:
                attempts = conn.execute(
                    select(outbox.c.attempts).where(outbox.c.id == key)
                ).scalar_one_or_none()
                if attempts is not None:
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id == key)
                        .values(
                            attempts=attempts + 1,
                            last_error=code or "RETRY",
                            next_attempt_ms=now + self._backoff_ms(attempts + 1),
                            updated_ms=now,
                        )
                    )
        return changed

    async def _forward_chunk(
        self, transport: Transport, recipient: bytes, chunk: list[_Due], approved: set[bytes]
    ) -> None:
        envelopes = await self._db.read(_envelopes_txn, relay, [r.key for r in chunk])
        done: set[bytes] = set()
        if recipient in approved and envelopes:
            ids = {key: _claimed_id(wire) for key, wire in envelopes.items()}
            try:
                acks = await transport.post_envelopes(recipient, list(envelopes.values()))
            except DeliveryFailed:
                acks = []
            final = {ack.id for ack in acks if ack.status != "retry"}
            done = {key for key, message_id in ids.items() if message_id in final}
        retry = {r.key: r.attempts + 1 for r in chunk if r.key in envelopes and r.key not in done}
        await self._db.write(
            _apply_relay_txn,
            done,
            {k: self._backoff_ms(n) for k, n in retry.items()},
            self._clock.now_ms(),
        )

    def _backoff_ms(self, attempts: int) -> int:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempts - 1))]."""
        ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS << min(attempts - 1, 30))
        fraction = int.from_bytes(self._random(8), "big") / 2**64
        return int(ceiling * fraction)

    async def run(self, *, idle_s: float = 5.0) -> None:
        """Deliver until cancelled: a pass as soon as something is queued or received
        for relay, and every ``idle_s`` seconds otherwise. Errors are logged; the
        loop carries on (the rows stay due)."""
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # a background loop must outlive a bad pass
                _log.exception("message delivery pass failed", extra={"event": "messages.error"})
            try:
                await asyncio.wait_for(self._wake.wait(), idle_s)
            except TimeoutError:
                pass

    # -- reading ----------------------------------------------------------------------

    async def mark_thread_read(self, thread: bytes, *, account_id: int | None) -> int:
        """Mark the thread's incoming texts read and queue "read" receipts to their
        senders (and an audit row), in one transaction.

        Returns:
            How many messages were newly marked read.
        """
        unread = await self._db.read(_unread_in_thread_txn, thread)
        if not unread:
            return 0
        receipts = {
            message_id: await self._seal_receipt(peer, message_id, "read")
            for message_id, peer in unread
        }
        count = await self._db.write(
            self._mark_read_txn, thread, receipts, account_id, self._clock.now_ms()
        )
        if count:
            await self._publish_unread()
            self._wake.set()
        return count

    def _mark_read_txn(
        self,
        conn: Connection,
        thread: bytes,
        receipts: dict[bytes, protocol.Sealed | None],
        account_id: int | None,
        now: int,
    ) -> int:
        count = 0
        for message_id, receipt in receipts.items():
            marked = conn.execute(
                update(messages)
                .where(messages.c.id == message_id, messages.c.read_ms.is_(None))
                .values(read_ms=now)
            )
            if marked.rowcount == 1:
                count += 1
                if receipt is not None:
                    _queue_envelope(conn, receipt, receipt.message.to, now)
        if count:
            details: dict[str, DetailValue] = {"thread": thread.hex(), "messages": count}
            self._audit.record_txn(
                conn, account_id, "message.read", thread.hex(), details, now_ms=now
            )
        return count

    async def threads(
        self, *, limit: int = 50, before_ms: int | None = None
    ) -> list[ThreadSummary]:
        """Conversations, newest activity first; page with ``before_ms`` (the
        ``last_ms`` of the last one shown)."""
        return await self._db.read(_threads_txn, max(1, min(limit, 200)), before_ms)

    async def thread(self, thread: bytes) -> list[MessageView]:
        """The texts of one conversation, oldest first (empty if there is none)."""
        return await self._db.read(_thread_txn, thread, self._me)

    async def attachment(self, message_id: bytes, index: int) -> protocol.Attachment | None:
        """Attachment ``index`` of a stored text, or None."""
        content = await self._db.read(_content_txn, message_id)
        if content is None:
            return None
        attachments = _parse_text(content).attachments or ()
        return attachments[index] if 0 <= index < len(attachments) else None

    async def unread_count(self) -> int:
        """Incoming texts not yet read."""
        self._unread = await self._db.read(_unread_count_txn)
        return self._unread

    @property
    def last_unread_count(self) -> int | None:
        """The unread count as last computed (no database round trip: for page
        headers); None until :meth:`unread_count` or a change computed it."""
        return self._unread

    async def names(self, peers: Iterable[bytes]) -> dict[bytes, PeerName]:
        """Display names of peers whose profile we hold."""
        found = {}
        for peer in dict.fromkeys(peers):
            profile = await self._profile(peer)
            if profile is not None:
                found[peer] = PeerName(name_ar=profile.name_ar, name_en=profile.name_en)
        return found

    async def recipients(self) -> list[tuple[bytes, str, str]]:
        """Approved peers we can write to (we hold their profile): ``(node id,
        name_ar, name_en)``, by English name."""
        approved = sorted((await self._approved_peers()) - {self._me})
        names = await self.names(approved)
        found = [(peer, names[peer].name_ar, names[peer].name_en) for peer in names]
        return sorted(found, key=lambda item: (item[2].casefold(), item[0]))

    # -- events -------------------------------------------------------------------------

    def subscribe(self) -> Subscription:
        """Events from now on: ``async with service.subscribe() as events: async for
        event in events: ...``. Leaving the block unsubscribes."""
        return Subscription(self._subscribers)

    def close(self) -> None:
        """End every subscription (at shutdown, so open event streams finish)."""
        for subscription in list(self._subscribers):
            subscription.close()

    def wake(self) -> None:
        """Ask :meth:`run` for a pass now."""
        self._wake.set()

    def _publish(self, event: MessageEvent) -> None:
        for subscription in list(self._subscribers):
            subscription.put(event)

    def _publish_states(self, threads: Iterable[bytes]) -> None:
        for thread in threads:
            self._publish(MessageEvent(kind="state", thread=thread))

    async def _publish_unread(self) -> None:
        self._publish(MessageEvent(kind="unread", unread=await self.unread_count()))

    # -- peers' keys from our replica -------------------------------------------------

    async def _relays(self, recipient: bytes) -> list[bytes]:
        found = await self._relays_for(recipient)
        return [peer for peer in dict.fromkeys(found) if peer not in (recipient, self._me)]

    async def _profile(self, peer: bytes) -> protocol.Profile | None:
        wire = await self._feeds.latest_of_kind(peer, _PROFILE)
        return None if wire is None else _parse_profile(wire)

    async def _seal_receipt(
        self, peer: bytes, message_id: bytes, state: str
    ) -> protocol.Sealed | None:
        profile = await self._profile(peer)
        if profile is None:  # we verified its feed, so this is rare; it learns by retry
            return None
        body = protocol.Receipt(message=message_id, state=state)
        try:
            return self._seal(body, peer, profile.enc_key, self._clock.now_ms())
        except MessageError:
            return None

    async def _sender_keys(self, sender: bytes) -> tuple[bytes, ...]:
        """The keys a sender's messages may be signed with (SPEC §6.7 "Sender keys"):
        its feed's current key; and, if its newest rotation is younger than
        ``MAX_MESSAGE_AGE_MS``, not for ``compromise``, and away from the node id, the
        node id too. (A key between two rotations within 30 days is not kept: its
        messages are refused with BAD_SIGNATURE.)"""
        head = await self._feeds.head(sender)
        if head is None:
            return ()
        if head.key == sender:
            return (sender,)
        wire = await self._feeds.latest_of_kind(sender, _ROTATE)
        if wire is not None and _rotated_from_node_id(
            wire, sender, net=self._net, since_ms=self._clock.now_ms() - protocol.MAX_MESSAGE_AGE_MS
        ):
            return (head.key, sender)
        return (head.key,)


# -- pure helpers -----------------------------------------------------------------------


def _text_body(
    text: str,
    subject: str | None,
    attachments: Sequence[tuple[str, str, bytes]],
    thread: bytes,
) -> protocol.TextMessage:
    if len(attachments) > MAX_ATTACHMENTS:
        raise MessageError("too many attachments", code=MessageErrorCode.BAD_ATTACHMENT)
    total = sum(len(data) for _name, _type, data in attachments)
    if total > MAX_ATTACHMENTS_BYTES:
        raise MessageError("attachments are too large", code=MessageErrorCode.BAD_ATTACHMENT)
    items = []
    for name, media_type, data in attachments:
        if media_type not in protocol.ATTACHMENT_TYPES or not data:
            raise MessageError(
                "attachment type not allowed, or empty", code=MessageErrorCode.BAD_ATTACHMENT
            )
        try:
            items.append(protocol.Attachment(data=bytes(data), name=name, type=media_type))
        except protocol.ProtocolError:
            raise MessageError(
                "attachment name not allowed", code=MessageErrorCode.BAD_ATTACHMENT
            ) from None
    text = text.replace("\r\n", "\n")
    if len(text.encode("utf-8", "surrogatepass")) > 32_768:
        raise MessageError("the text is over 32 KiB", code=MessageErrorCode.TOO_LARGE)
    try:
        return protocol.TextMessage(
            text=text,
            subject=(subject or "").strip() or None,
            attachments=tuple(items) or None,
            thread=thread,
        )
    except protocol.ProtocolError as error:
        raise MessageError(error.message, code=MessageErrorCode.INVALID) from None


def _parse_profile(wire: bytes) -> protocol.Profile | None:
    """The profile in a stored entry (verified when it was stored, as
    ``node.profile`` reads it); None if it does not parse."""
    try:
        return protocol.Profile.from_content(stored_content(wire))
    except protocol.ProtocolError:
        return None


def _rotated_from_node_id(wire: bytes, sender: bytes, *, net: bytes, since_ms: int) -> bool:
    try:
        entry = protocol.verify_entry(wire, net=net, now_ms=None, key=sender, author=sender)
        rotation = protocol.KeyRotate.from_content(stored_content(entry.wire))
    except protocol.ProtocolError:
        return False  # signed by a later key: the node id was rotated away from earlier
    return rotation.reason != "compromise" and entry.ts >= since_ms


def _parse_text(content: bytes) -> protocol.TextMessage:
    return protocol.TextMessage.from_content(protocol.decode(content))


def _thread_of(message: protocol.Message) -> bytes:
    body = message.body
    if isinstance(body, protocol.TextMessage) and body.thread is not None:
        return body.thread
    return message.id


def _claimed_id(data: bytes) -> bytes:
    """The id an envelope claims (for the ack of one we refuse): unverified."""
    try:
        value = protocol.decode(bytes(data), max_size=protocol.MAX_SEALED_BYTES)
    except protocol.ProtocolError:
        return bytes(32)
    claimed = value.get("id") if type(value) is dict else None
    return claimed if type(claimed) is bytes and len(claimed) == 32 else bytes(32)


def _refusal(message_id: bytes, code: str) -> Ack:
    # TS_IN_FUTURE: our clock or theirs is off; the sender retries later (SPEC §4.3).
    status: AckStatus = "retry" if code == protocol.ErrorCode.TS_IN_FUTURE else "rejected"
    return Ack(id=message_id, status=status, code=code)


def _batches(rows: list[_Due]) -> Iterable[list[_Due]]:
    batch: list[_Due] = []
    size = 0
    for row in rows:
        if batch and (size + row.size > MAX_BATCH_BYTES or len(batch) >= MAX_BATCH_COUNT):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row.size
    if batch:
        yield batch


# -- transaction bodies (sync: they run inside run_sync) ------------------------------


def _insert(conn: Connection, table: Table) -> Any:
    """INSERT with ``ON CONFLICT`` support: the same SQL on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _queue_envelope(conn: Connection, item: protocol.Sealed, recipient: bytes, now: int) -> None:
    conn.execute(
        outbox.insert().values(
            id=item.id,
            recipient=recipient,
            envelope=item.envelope,
            created_ms=now,
            expires_ms=item.message.ts + protocol.MAX_MESSAGE_AGE_MS,
            state="queued",
            attempts=0,
            next_attempt_ms=now,
            updated_ms=now,
        )
    )


def _set_state(conn: Connection, message_id: bytes, state: str) -> set[bytes]:
    """Advance an outgoing message to ``state`` if that is forward; its thread if so."""
    lower = [name for name, rank in _RANK.items() if rank < _RANK[state]]
    thread = conn.execute(
        update(messages)
        .where(
            messages.c.id == message_id,
            messages.c.direction == "out",
            messages.c.state.in_(lower),
        )
        .values(state=state)
        .returning(messages.c.thread)
    ).scalar_one_or_none()
    return set() if thread is None else {bytes(thread)}


def _fail_outbox(conn: Connection, message_id: bytes, code: str, now: int) -> set[bytes]:
    thread = conn.execute(
        update(messages)
        .where(
            messages.c.id == message_id,
            messages.c.direction == "out",
            messages.c.state.in_(("queued", "relayed")),
        )
        .values(state="failed")
        .returning(messages.c.thread)
    ).scalar_one_or_none()
    if thread is None:  # a receipt (no message row), or delivered meanwhile: forget it
        conn.execute(outbox.delete().where(outbox.c.id == message_id))
        return set()
    # Keep the row for the reason (shown to staff); drop the envelope, never sent again.
    conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id)
        .values(state="failed", last_error=code[:64], envelope=b"", updated_ms=now)
    )
    return {bytes(thread)}


def _advance_txn(
    conn: Connection, message_id: bytes, sender: bytes, state: str, now: int
) -> bytes | None:
    """A receipt: advance our message to ``state`` if it was sent to ``sender``; its
    custody ends (no more retries). The thread if the state changed."""
    owner = conn.execute(
        select(messages.c.peer).where(messages.c.id == message_id, messages.c.direction == "out")
    ).scalar_one_or_none()
    if owner is None or bytes(owner) != sender:
        return None  # not ours, or a receipt from someone else than its recipient
    changed = _set_state(conn, message_id, state)
    if changed:
        conn.execute(outbox.delete().where(outbox.c.id == message_id))
    return next(iter(changed), None)


def _exists_txn(conn: Connection, message_id: bytes) -> bool:
    query = select(messages.c.id).where(messages.c.id == message_id)
    return conn.execute(query).first() is not None


def _store_relay_txn(
    conn: Connection, envelope: protocol.Envelope, from_peer: bytes, now: int
) -> bool:
    digest = hashlib.sha256(envelope.wire).digest()
    if conn.execute(select(relay.c.digest).where(relay.c.digest == digest)).first():
        return True  # the same bytes again (SPEC §6.8: dedupe on identical bytes only)
    held = conn.execute(
        select(func.count()).select_from(relay).where(relay.c.from_peer == from_peer)
    ).scalar_one()
    if held >= MAX_RELAY_PER_PEER:
        return False
    conn.execute(
        _insert(conn, relay)
        .values(
            digest=digest,
            recipient=envelope.to,
            envelope=envelope.wire,
            from_peer=from_peer,
            received_ms=now,
            attempts=0,
            next_attempt_ms=now,
        )
        .on_conflict_do_nothing(index_elements=["digest"])
    )
    return True


def _due_txn(conn: Connection, now: int, limit: int) -> tuple[list[_Due], list[_Due]]:
    out_query = (
        select(
            outbox.c.id,
            outbox.c.recipient,
            outbox.c.attempts,
            outbox.c.expires_ms,
            func.length(outbox.c.envelope).label("size"),
        )
        .where(
            outbox.c.state.in_(("queued", "relayed")),
            or_(outbox.c.next_attempt_ms <= now, outbox.c.expires_ms <= now),
        )
        .order_by(outbox.c.next_attempt_ms)
        .limit(limit)
    )
    relay_query = (
        select(
            relay.c.digest,
            relay.c.recipient,
            relay.c.attempts,
            relay.c.received_ms,
            func.length(relay.c.envelope).label("size"),
        )
        .where(
            or_(
                relay.c.next_attempt_ms <= now,
                relay.c.received_ms <= now - protocol.MAX_MESSAGE_AGE_MS,
            )
        )
        .order_by(relay.c.next_attempt_ms)
        .limit(limit)
    )
    outs = [
        _Due(bytes(r.id), bytes(r.recipient), r.attempts, r.expires_ms, r.size)
        for r in conn.execute(out_query)
    ]
    relays = [
        _Due(
            bytes(r.digest),
            bytes(r.recipient),
            r.attempts,
            r.received_ms + protocol.MAX_MESSAGE_AGE_MS,
            r.size,
        )
        for r in conn.execute(relay_query)
    ]
    return outs, relays


def _envelopes_txn(conn: Connection, table: Table, keys: list[bytes]) -> dict[bytes, bytes]:
    column = table.c.id if table is outbox else table.c.digest
    query = select(column, table.c.envelope).where(column.in_(keys))
    if table is outbox:  # a receipt may have ended custody since the pass began
        query = query.where(outbox.c.state.in_(("queued", "relayed")))
    found = {bytes(key): bytes(wire) for key, wire in conn.execute(query)}
    return {key: found[key] for key in keys if key in found}


def _expire_txn(
    conn: Connection, out_keys: list[bytes], relay_keys: list[bytes], now: int
) -> set[bytes]:
    threads: set[bytes] = set()
    for key in out_keys:
        threads |= _fail_outbox(conn, key, protocol.ErrorCode.EXPIRED.value, now)
    if relay_keys:
        conn.execute(relay.delete().where(relay.c.digest.in_(relay_keys)))
    return threads


def _apply_relay_txn(conn: Connection, done: set[bytes], retry: dict[bytes, int], now: int) -> None:
    if done:
        conn.execute(relay.delete().where(relay.c.digest.in_(done)))
    for key, delay in retry.items():
        conn.execute(
            update(relay)
            .where(relay.c.digest == key)
            .values(attempts=relay.c.attempts + 1, next_attempt_ms=now + delay)
        )


def _unread_in_thread_txn(conn: Connection, thread: bytes) -> list[tuple[bytes, bytes]]:
    query = select(messages.c.id, messages.c.peer).where(
        messages.c.thread == thread,
        messages.c.direction == "in",
        messages.c.kind == _TEXT,
        messages.c.read_ms.is_(None),
    )
    return [(bytes(row.id), bytes(row.peer)) for row in conn.execute(query)]


def _unread_count_txn(conn: Connection) -> int:
    query = (
        select(func.count())
        .select_from(messages)
        .where(messages.c.direction == "in", messages.c.kind == _TEXT, messages.c.read_ms.is_(None))
    )
    count: int = conn.execute(query).scalar_one()
    return count


def _content_txn(conn: Connection, message_id: bytes) -> bytes | None:
    query = select(messages.c.content).where(messages.c.id == message_id, messages.c.kind == _TEXT)
    content = conn.execute(query).scalar_one_or_none()
    return None if content is None else bytes(content)


_UNREAD: Final = func.sum(
    case(
        (and_(messages.c.direction == "in", messages.c.read_ms.is_(None)), 1),
        else_=0,
    )
)


def _threads_txn(conn: Connection, limit: int, before_ms: int | None) -> list[ThreadSummary]:
    last = func.max(messages.c.created_ms)
    query = (
        select(
            messages.c.thread,
            last.label("last_ms"),
            func.count().label("n"),
            _UNREAD.label("unread"),
        )
        .where(messages.c.kind == _TEXT)
        .group_by(messages.c.thread)
        .order_by(last.desc(), messages.c.thread)
        .limit(limit)
    )
    if before_ms is not None:
        query = query.having(last < before_ms)
    summaries = []
    for row in conn.execute(query).all():
        thread = bytes(row.thread)
        rows = conn.execute(
            select(messages.c.peer, messages.c.direction, messages.c.state, messages.c.created_ms)
            .where(messages.c.thread == thread, messages.c.kind == _TEXT)
            .order_by(messages.c.created_ms, messages.c.id)
        ).all()
        peers = tuple(dict.fromkeys(bytes(r.peer) for r in rows))
        outgoing = [r for r in rows if r.direction == "out"]
        last_state = None
        if outgoing:
            newest = max(r.created_ms for r in outgoing)
            states = [r.state for r in outgoing if r.created_ms == newest]
            last_state = min(states, key=lambda s: _RANK.get(s, 0))
        summaries.append(
            ThreadSummary(
                thread=thread,
                peers=peers,
                subject=_first_subject(conn, thread),
                last_ms=row.last_ms,
                count=row.n,
                unread=int(row.unread or 0),
                last_state=last_state,
            )
        )
    return summaries


def _first_subject(conn: Connection, thread: bytes) -> str | None:
    query = (
        select(messages.c.content)
        .where(messages.c.thread == thread, messages.c.kind == _TEXT)
        .order_by(messages.c.created_ms, messages.c.id)
        .limit(5)  # a subject is set on the first message, if at all
    )
    for content in conn.execute(query).scalars():
        subject = _parse_text(bytes(content)).subject
        if subject:
            return subject
    return None


def _thread_txn(conn: Connection, thread: bytes, me: bytes) -> list[MessageView]:
    query = (
        select(messages, outbox.c.last_error)
        .outerjoin(outbox, outbox.c.id == messages.c.id)
        .where(messages.c.thread == thread, messages.c.kind == _TEXT)
        .order_by(messages.c.created_ms, messages.c.id)
    )
    views: list[MessageView] = []
    for row in conn.execute(query):
        content = bytes(row.content)
        body = _parse_text(content)
        recipient = RecipientState(
            peer=bytes(row.peer), message=bytes(row.id), state=row.state, error=row.last_error
        )
        previous = views[-1] if views else None
        if (
            row.direction == "out"
            and previous is not None
            and previous.direction == "out"
            and previous.created_ms == row.created_ms
            and previous.author_account == row.author_account
            and _same_text(previous, body)
        ):  # one send() to several peers: one view, a state per peer
            views[-1] = _with_recipient(previous, recipient)
            continue
        attachments = tuple(
            AttachmentInfo(index=i, name=a.name, type=a.type, size=len(a.data))
            for i, a in enumerate(body.attachments or ())
        )
        views.append(
            MessageView(
                id=bytes(row.id),
                direction=row.direction,
                thread=thread,
                sender=bytes(row.peer) if row.direction == "in" else me,
                recipients=(recipient,) if row.direction == "out" else (),
                ts=row.ts,
                created_ms=row.created_ms,
                subject=body.subject,
                text=body.text,
                attachments=attachments,
                read_ms=row.read_ms,
                author_account=row.author_account,
            )
        )
    return views


def _same_text(view: MessageView, body: protocol.TextMessage) -> bool:
    names = tuple((a.name, a.type, len(a.data)) for a in body.attachments or ())
    return (
        view.text == body.text
        and view.subject == body.subject
        and tuple((a.name, a.type, a.size) for a in view.attachments) == names
    )


def _with_recipient(view: MessageView, recipient: RecipientState) -> MessageView:
    fields = {name: getattr(view, name) for name in MessageView.__dataclass_fields__}
    fields["recipients"] = (*view.recipients, recipient)
    return MessageView(**fields)
