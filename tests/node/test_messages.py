"""Org-to-org messages between real :class:`MessageService` instances, each with its own
keys, database and feed store (holding the others' profiles), connected by an
in-process transport that calls the target's ``receive()`` and can be told to fail,
hold, duplicate or lose answers. Delivery and receipt states, idempotence, relays that
carry what they cannot read, backoff, expiry, attachment limits, unknown senders and
hostile envelopes."""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import protocol
from node.audit import AuditLog
from node.clock import FakeClock
from node.federation._messages import (
    BACKOFF_BASE_MS,
    BACKOFF_CAP_MS,
    MAX_RELAY_PER_PEER,
    RELAY_RECHECK_MS,
    Ack,
    DeliveryFailed,
    MessageError,
    MessageErrorCode,
    MessageEvent,
    MessageService,
)
from node.identity import Identity
from node.storage import Database, FeedStore
from node.storage._schema import audit_log, messages, outbox, relay
from protocol._kinds import MAX_ATTACHMENTS_BYTES

from .conftest import NET, NOW, _drop_postgres_database, _postgres_database

DAY_MS = 24 * 60 * 60 * 1000
TEXT = "اجتماع التنسيق يوم الأحد\nmeeting on Sunday"


def identity(seed: int) -> Identity:
    return Identity(
        signing_key=protocol.signing_key(bytes([seed]) * 32),
        encryption_secret=bytes([seed + 100]) * 32,
    )


class LoopTransport:
    """Calls the target node's ``receive()`` in process, as the signed HTTP transport
    would over the network; ``down`` peers are unreachable, ``held`` peers answer only
    once their event is set, ``lose_answer`` peers take the envelopes but the answer is
    lost, ``twice`` delivers every batch twice."""

    def __init__(self, network: Network, me: bytes) -> None:
        self.network = network
        self.me = me
        self.down: set[bytes] = set()
        self.held: dict[bytes, asyncio.Event] = {}
        self.lose_answer: set[bytes] = set()
        self.twice = False
        self.calls: list[tuple[bytes, int]] = []

    async def post_envelopes(self, peer: bytes, envelopes: list[bytes]) -> list[Ack]:
        self.calls.append((peer, len(envelopes)))
        if peer in self.down:
            raise DeliveryFailed("UNREACHABLE", "connection refused")
        if peer in self.held:
            await self.held[peer].wait()
        target = self.network.nodes[peer].service
        acks = await target.receive(envelopes, from_peer=self.me)
        if self.twice:
            acks = await target.receive(envelopes, from_peer=self.me)
        if peer in self.lose_answer:
            raise DeliveryFailed("TIMEOUT", "no answer")
        return acks


@dataclass
class Node:
    name: str
    identity: Identity
    db: Database
    feeds: FeedStore
    audit: AuditLog
    service: MessageService
    transport: LoopTransport
    profile: bytes
    approved: set[bytes] = field(default_factory=set)
    relays: dict[bytes, list[bytes]] = field(default_factory=dict)

    @property
    def id(self) -> bytes:
        return self.identity.node_id

    async def count(self, table: Any) -> int:
        def count(conn: Any) -> int:
            total: int = conn.execute(select(func.count()).select_from(table)).scalar_one()
            return total

        return await self.db.read(count)

    async def rows(self, table: Any) -> list[Any]:
        return await self.db.read(lambda conn: list(conn.execute(select(table)).all()))

    async def state(self, message_id: bytes) -> str:
        def state(conn: Any) -> str:
            query = select(messages.c.state).where(messages.c.id == message_id)
            value: str = conn.execute(query).scalar_one()
            return value

        return await self.db.read(state)

    async def outbox_row(self, message_id: bytes) -> Any:
        return await self.db.read(
            lambda conn: conn.execute(select(outbox).where(outbox.c.id == message_id)).one_or_none()
        )


@dataclass
class Network:
    clock: FakeClock
    net: bytes = NET
    nodes: dict[bytes, Node] = field(default_factory=dict)

    def link(self, *pairs: tuple[Node, Node]) -> None:
        """Approve each pair both ways."""
        for one, other in pairs:
            one.approved.add(other.id)
            other.approved.add(one.id)

    async def know(self, holder: Node, *others: Node) -> None:
        """Replicate the others' profiles (their feeds) into ``holder``'s feed store."""
        for other in others:
            result = await holder.feeds.ingest(
                other.profile, net=self.net, now_ms=self.clock.now_ms()
            )
            assert result.status in ("stored", "duplicate")


def rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


async def make_node(network: Network, name: str, seed: int, db: Database) -> Node:
    """A node with its own keys and database, its profile first in its feed."""
    await db.upgrade()
    me = identity(seed)
    feeds = FeedStore(db, own=me.node_id)
    body = protocol.Profile(
        enc_key=me.enc_key,
        endpoints=[],
        governorate="IQG08",
        name_ar=f"منظمة {name}",
        name_en=f"Organisation {name}",
        registration=f"1Z-{seed}",
        role="ngo",
        sectors=[],
    )
    now, net = network.clock.now_ms(), network.net
    entry = await feeds.append_own(
        lambda head: protocol.append(head, body, key=me.signing_key, net=net, now_ms=now),
        now_ms=now,
    )
    return join(network, name, me, db, feeds, AuditLog(db), entry.wire, rng(seed))


def join(
    network: Network,
    name: str,
    me: Identity,
    db: Database,
    feeds: FeedStore,
    audit: AuditLog,
    profile: bytes,
    random_bytes: Callable[[int], bytes],
) -> Node:
    """Give a node (its keys, stores and profile entry) a MessageService on the
    network; its approved peers and relays are the returned node's fields."""
    transport = LoopTransport(network, me.node_id)
    holder: dict[str, Node] = {}

    async def approved() -> set[bytes]:
        return set(holder["node"].approved)

    async def relays_for(peer: bytes) -> list[bytes]:
        return list(holder["node"].relays.get(peer, []))

    service = MessageService(
        db,
        feeds=feeds,
        audit=audit,
        identity=me,
        net=network.net,
        clock=network.clock,
        random_bytes=random_bytes,
        transport=transport,
        approved_peers=approved,
        relays_for=relays_for,
    )
    node = Node(name, me, db, feeds, audit, service, transport, profile)
    holder["node"] = node
    network.nodes[me.node_id] = node
    return node


@asynccontextmanager
async def databases(backend: str, tmp_path: Path, count: int) -> AsyncIterator[list[Database]]:
    async with AsyncExitStack() as stack:
        found = []
        for i in range(count):
            if backend == "sqlite":
                db = Database.from_url(f"sqlite:///{tmp_path / f'node{i}.db'}")
            else:
                name = f"watan_test_msg_{secrets.token_hex(6)}"
                db = Database.from_url(await _postgres_database(name))
                stack.push_async_callback(_drop_postgres_database, name)
            stack.push_async_callback(db.close)
            found.append(db)
        yield found


@asynccontextmanager
async def network_of(
    tmp_path: Path, *names: str, backend: str = "sqlite"
) -> AsyncIterator[tuple[Network, list[Node]]]:
    network = Network(FakeClock(NOW))
    async with databases(backend, tmp_path, len(names)) as dbs:
        pairs = enumerate(zip(names, dbs, strict=True))
        nodes = [await make_node(network, name, i + 1, db) for i, (name, db) in pairs]
        yield network, nodes


async def pair(network: Network, a: Node, b: Node) -> None:
    network.link((a, b))
    await network.know(a, b)
    await network.know(b, a)


async def next_event(events: Any, kind: str) -> MessageEvent:
    async with asyncio.timeout(5):
        async for event in events:
            if event.kind == kind:
                assert isinstance(event, MessageEvent)
                return event
    raise AssertionError("subscription ended")


# -- delivery and receipts ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_delivered_then_read_with_receipts(tmp_path: Path, backend: str) -> None:
    async with network_of(tmp_path, "A", "B", backend=backend) as (network, (a, b)):
        await pair(network, a, b)
        async with b.service.subscribe() as b_events, a.service.subscribe() as a_events:
            [mid] = await a.service.send(
                account_id=None, to=[b.id], text=TEXT + "\r\nend", subject=" Plan "
            )
            assert await a.state(mid) == "queued"
            row = await a.outbox_row(mid)
            assert (row.state, row.attempts, row.next_attempt_ms) == ("queued", 0, NOW)
            assert await a.service.deliver_due() == 1
            assert await a.state(mid) == "delivered"
            assert await a.outbox_row(mid) is None  # custody ended
            arrived = await next_event(b_events, "message")
            assert (await next_event(b_events, "unread")).unread == 1
            assert await b.service.unread_count() == 1
            [summary] = await b.service.threads()
            assert arrived.thread == summary.thread
            assert (summary.peers, summary.subject, summary.unread) == ((a.id,), "Plan", 1)
            [view] = await b.service.thread(summary.thread)
            assert (view.direction, view.sender, view.text) == ("in", a.id, TEXT + "\nend")
            assert view.read_ms is None
            # B answered "delivered" through its outbox; A already knew: nothing moves.
            assert await b.count(outbox) == 1
            assert await b.service.deliver_due() == 1
            assert await b.count(outbox) == 0 and await a.state(mid) == "delivered"
            # B's coordinator opens the thread: a "read" receipt goes back.
            assert await b.service.mark_thread_read(summary.thread, account_id=7) == 1
            assert await b.service.mark_thread_read(summary.thread, account_id=7) == 0
            assert await b.service.unread_count() == 0
            assert await b.service.deliver_due() == 1
            assert await a.state(mid) == "read"
            assert (await next_event(a_events, "state")).thread == summary.thread
            [mine] = await a.service.thread(summary.thread)
            assert [(r.peer, r.state) for r in mine.recipients] == [(b.id, "read")]
            [a_summary] = await a.service.threads()
            assert a_summary.last_state == "read" and a_summary.unread == 0
        # The audit rows name the recipient and the message, never the text.
        [sent] = [r for r in await a.rows(audit_log) if r.action == "message.sent"]
        assert sent.target == b.id.hex() and mid.hex() in sent.details
        assert "Sunday" not in sent.details and "Plan" not in sent.details
        [read] = [r for r in await b.rows(audit_log) if r.action == "message.read"]
        assert read.actor == 7 and "Sunday" not in read.details


async def test_duplicates_change_nothing(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        a.transport.twice = True  # every batch arrives twice
        [mid] = await a.service.send(account_id=None, to=[b.id], text="once")
        envelope = (await a.outbox_row(mid)).envelope
        await a.service.deliver_due()
        assert await a.state(mid) == "delivered"
        before = (await b.rows(messages), await b.rows(outbox), await b.service.unread_count())
        assert len(before[0]) == 1 and len(before[1]) == 1  # one message, one receipt
        again = await b.service.receive([envelope, envelope], from_peer=a.id)
        assert [ack.status for ack in again] == ["duplicate", "duplicate"]
        assert [ack.id for ack in again] == [mid, mid]
        after = (await b.rows(messages), await b.rows(outbox), await b.service.unread_count())
        assert after == before
        # Receipts never move a state backwards: "read", then a stale "delivered".
        [summary] = await b.service.threads()
        await b.service.mark_thread_read(summary.thread, account_id=None)
        receipts = [bytes(r.envelope) for r in await b.rows(outbox)]
        await b.service.deliver_due()
        assert await a.state(mid) == "read"
        replayed = await a.service.receive(receipts, from_peer=b.id)
        assert {ack.status for ack in replayed} == {"duplicate"}
        assert await a.state(mid) == "read"
        # ... and are never answered with receipts.
        assert await a.count(outbox) == 0


async def test_lost_answer_is_resent_and_deduplicated(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        a.transport.lose_answer.add(b.id)
        [mid] = await a.service.send(account_id=None, to=[b.id], text="are you there?")
        await a.service.deliver_due()
        assert await a.state(mid) == "queued"  # B has it, A does not know
        assert (await a.outbox_row(mid)).last_error == "TIMEOUT"
        assert await b.count(messages) == 1
        a.transport.lose_answer.clear()
        network.clock.advance(BACKOFF_BASE_MS)
        await a.service.deliver_due()
        assert await a.state(mid) == "delivered"
        assert await b.count(messages) == 1


# -- relays ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_relay_carries_what_it_cannot_read(tmp_path: Path, backend: str) -> None:
    secret = "كلمة سرية للاختبار 7781"
    async with network_of(tmp_path, "A", "R", "B", backend=backend) as (network, (a, r, b)):
        network.link((a, r), (r, b))  # A and B are not peers of each other
        await network.know(a, r, b)
        await network.know(r, a, b)
        await network.know(b, r, a)
        a.relays[b.id] = [r.id]
        b.relays[a.id] = [r.id]
        [mid] = await a.service.send(
            account_id=None, to=[b.id], text=secret, attachments=[("n.txt", "text/plain", b"xyz")]
        )
        await a.service.deliver_due()
        assert a.transport.calls == [(r.id, 1)]
        assert await a.state(mid) == "relayed"
        row = await a.outbox_row(mid)
        assert (row.state, row.via) == ("relayed", r.id)
        assert row.next_attempt_ms == NOW + RELAY_RECHECK_MS
        # The relay holds the envelope bytes and nothing it could read.
        [held] = await r.rows(relay)
        assert bytes(held.envelope) == bytes(row.envelope)
        assert held.digest == hashlib.sha256(bytes(row.envelope)).digest()
        assert (held.recipient, held.from_peer) == (b.id, a.id)
        assert await r.count(messages) == 0 and await r.count(outbox) == 0
        needle = secret.encode()
        for table in (relay, messages, outbox, audit_log):
            for stored in await r.rows(table):
                assert needle not in repr(tuple(stored)).encode(), table.name
                assert all(needle not in v for v in stored if isinstance(v, bytes)), table.name
        if backend == "sqlite":  # the files themselves, write-ahead log included
            assert needle not in _files(tmp_path, "node1.db")
            assert needle in _files(tmp_path, "node0.db")  # A's own copy (a proof that
            # the scan can find plaintext where there is some)
        # The relay forwards; B opens it; B's receipt comes back through the relay.
        assert await r.service.deliver_due() == 1
        assert await r.count(relay) == 0
        [summary] = await b.service.threads()
        [view] = await b.service.thread(summary.thread)
        assert view.text == secret and view.sender == a.id
        attachment = await b.service.attachment(view.id, 0)
        assert attachment is not None and attachment.data == b"xyz"
        await b.service.deliver_due()  # the "delivered" receipt, to R
        assert await a.state(mid) == "relayed"
        await r.service.deliver_due()
        assert await a.state(mid) == "delivered"
        assert await a.outbox_row(mid) is None


async def test_unreachable_peer_falls_back_to_a_relay(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "R", "B") as (network, (a, r, b)):
        network.link((a, r), (r, b), (a, b))
        for holder in (a, r, b):
            await network.know(holder, *[n for n in (a, r, b) if n is not holder])
        a.relays[b.id] = [b.id, a.id, r.id]  # the recipient and ourselves are skipped
        a.transport.down.add(b.id)
        [mid] = await a.service.send(account_id=None, to=[b.id], text="via R")
        await a.service.deliver_due()
        assert a.transport.calls == [(b.id, 1), (r.id, 1)]
        assert await a.state(mid) == "relayed"
        # R cannot reach B yet: it keeps the envelope and backs off.
        r.transport.down.add(b.id)
        await r.service.deliver_due()
        [held] = await r.rows(relay)
        assert held.attempts == 1 and NOW <= held.next_attempt_ms <= NOW + BACKOFF_BASE_MS
        r.transport.down.clear()
        network.clock.advance(BACKOFF_BASE_MS)
        await r.service.deliver_due()
        assert await b.count(messages) == 1 and await r.count(relay) == 0
        # No receipt reached A (B sends it directly, and A is down for B now): after a
        # day A sends again; B already has it.
        b.transport.down.add(a.id)
        await b.service.deliver_due()
        a.transport.down.clear()
        network.clock.advance(RELAY_RECHECK_MS)
        await a.service.deliver_due()
        assert await a.state(mid) == "delivered"
        assert await b.count(messages) == 1


async def test_relay_dedupes_bytes_refuses_strangers_and_caps_each_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with network_of(tmp_path, "A", "R", "B", "X") as (network, (a, r, b, x)):
        network.link((a, r), (r, b))
        await network.know(a, b)
        a.relays[b.id] = [r.id]
        for text in ("one", "two"):
            await a.service.send(account_id=None, to=[b.id], text=text)
        envelopes = [bytes(row.envelope) for row in await a.rows(outbox)]
        acks = await r.service.receive([envelopes[0], envelopes[0]], from_peer=a.id)
        assert [ack.status for ack in acks] == ["relayed", "relayed"]
        assert await r.count(relay) == 1
        # A recipient R neither approves nor replicates: refused, nothing kept.
        to_x = await _envelope_to(a, x)
        [refused] = await r.service.receive([to_x], from_peer=a.id)
        assert (refused.status, refused.code) == ("rejected", "UNKNOWN_RECIPIENT")
        monkeypatch.setattr("node.federation._messages.MAX_RELAY_PER_PEER", 1)
        [full] = await r.service.receive([envelopes[1]], from_peer=a.id)
        assert (full.status, full.code) == ("retry", "RELAY_FULL")
        assert await r.count(relay) == 1
        assert MAX_RELAY_PER_PEER > 1


def _files(directory: Path, name: str) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob(name + "*")))


async def _envelope_to(sender: Node, recipient: Node) -> bytes:
    """An envelope from ``sender`` to ``recipient``, built directly (no outbox)."""
    return protocol.seal(
        protocol.TextMessage(text="hi", thread=bytes(32)),
        sender_key=sender.identity.signing_key,
        to=recipient.id,
        recipient_enc_key=recipient.identity.enc_key,
        net=NET,
        now_ms=NOW,
        ephemeral_secret=bytes([9]) * 32,
        nonce=bytes(16),
    ).envelope


# -- retries, backoff, expiry ------------------------------------------------------------


async def test_retries_back_off_exponentially_with_jitter(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        a.transport.down.add(b.id)
        [mid] = await a.service.send(account_id=None, to=[b.id], text="retry me")
        delays = []
        for attempt in range(1, 14):
            assert await a.service.deliver_due() == 1
            row = await a.outbox_row(mid)
            assert (row.attempts, row.last_error, row.state) == (attempt, "UNREACHABLE", "queued")
            delay = row.next_attempt_ms - network.clock.now_ms()
            ceiling = min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1))
            assert 0 <= delay <= ceiling
            delays.append(delay)
            if delay > 0:  # not due before its time
                assert await a.service.deliver_due() == 0
            network.clock.advance(delay)
        assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
        assert max(delays[-4:]) > BACKOFF_CAP_MS // 8  # it grew towards the cap
        a.transport.down.clear()
        await a.service.deliver_due()
        assert await a.state(mid) == "delivered"


async def test_messages_expire_after_30_days(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        a.transport.down.add(b.id)
        async with a.service.subscribe() as events:
            [mid] = await a.service.send(account_id=None, to=[b.id], text="too late")
            await a.service.deliver_due()
            network.clock.advance(protocol.MAX_MESSAGE_AGE_MS - 1)
            await a.service.deliver_due()
            assert await a.state(mid) == "queued"
            network.clock.advance(1)
            a.transport.calls.clear()
            assert await a.service.deliver_due() == 1
            assert a.transport.calls == []  # not sent: B would refuse it as EXPIRED
            assert await a.state(mid) == "failed"
            row = await a.outbox_row(mid)
            assert (row.state, row.last_error, bytes(row.envelope)) == ("failed", "EXPIRED", b"")
            await next_event(events, "state")
        [view] = await a.service.thread((await a.service.threads())[0].thread)
        assert [(r.state, r.error) for r in view.recipients] == [("failed", "EXPIRED")]
        assert await a.service.deliver_due() == 0


async def test_a_recipient_refuses_what_is_older_than_30_days(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        envelope = await _envelope_to(a, b)
        network.clock.advance(protocol.MAX_MESSAGE_AGE_MS + 1)
        [ack] = await b.service.receive([envelope], from_peer=a.id)
        assert (ack.status, ack.code) == ("rejected", "EXPIRED")
        assert await b.count(messages) == 0


# -- what may be sent ----------------------------------------------------------------------


async def test_attachment_limits(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        pdf = ("report.pdf", "application/pdf", b"%PDF-1.7 ...")
        refused = [
            [("page.html", "text/html", b"<script>")],
            [("image.svg", "image/svg+xml", b"<svg/>")],
            [("empty.txt", "text/plain", b"")],
            [("big.csv", "text/csv", bytes(MAX_ATTACHMENTS_BYTES + 1))],
            [("a.csv", "text/csv", bytes(MAX_ATTACHMENTS_BYTES // 2 + 1))] * 2,
            [pdf] * 9,
            [("bad\u202ename.pdf", "application/pdf", b"x")],
        ]
        for attachments in refused:
            with pytest.raises(MessageError) as caught:
                await a.service.send(account_id=None, to=[b.id], text="", attachments=attachments)
            assert caught.value.code is MessageErrorCode.BAD_ATTACHMENT
        assert await a.count(messages) == 0 and await a.count(outbox) == 0
        most = [
            ("a.csv", "text/csv", b"a" * (MAX_ATTACHMENTS_BYTES - 1)),
            ("b.txt", "text/plain", b"b"),
        ]
        [mid] = await a.service.send(account_id=None, to=[b.id], text="", attachments=most)
        await a.service.deliver_due()
        assert await a.state(mid) == "delivered"
        [summary] = await b.service.threads()
        [view] = await b.service.thread(summary.thread)
        assert [(x.name, x.type, x.size) for x in view.attachments] == [
            ("a.csv", "text/csv", MAX_ATTACHMENTS_BYTES - 1),
            ("b.txt", "text/plain", 1),
        ]
        second = await b.service.attachment(view.id, 1)
        assert second is not None and second.data == b"b"
        assert await b.service.attachment(view.id, 2) is None
        assert await b.service.attachment(bytes(32), 0) is None


async def test_refusals_before_anything_is_stored(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B", "C", "D") as (network, (a, b, c, d)):
        await pair(network, a, b)
        network.link((a, c))  # approved, but its profile is not replicated yet
        await network.know(a, d)  # replicated, but neither approved nor relayable
        cases = [
            ([], "hi", MessageErrorCode.NO_RECIPIENT),
            ([b.id, c.id], "hi", MessageErrorCode.UNKNOWN_RECIPIENT),
            ([b.id, d.id], "hi", MessageErrorCode.NOT_A_PEER),
            ([a.id], "hi", MessageErrorCode.NOT_A_PEER),
            ([b.id], "x" * 32_769, MessageErrorCode.TOO_LARGE),
            ([b.id], "carriage\rreturn", MessageErrorCode.INVALID),
            ([b.id], "trojan \u202e source", MessageErrorCode.INVALID),
        ]
        for to, text, code in cases:
            with pytest.raises(MessageError) as caught:
                await a.service.send(account_id=None, to=to, text=text)
            assert caught.value.code is code, (text[:20], caught.value)
        with pytest.raises(MessageError) as caught:
            await a.service.send(account_id=None, to=[b.id], text="x", subject="a\nb")
        assert caught.value.code is MessageErrorCode.INVALID
        assert await a.count(messages) == 0 and await a.count(outbox) == 0
        # D becomes reachable through a relay: allowed (C's profile still missing).
        a.relays[d.id] = [b.id]
        assert len(await a.service.send(account_id=None, to=[d.id, d.id], text="hi")) == 1


# -- unknown senders and hostile envelopes -----------------------------------------------


async def test_unknown_sender_is_retried_until_replicated(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        network.link((a, b))
        await network.know(a, b)  # B has not replicated A yet
        [mid] = await a.service.send(account_id=None, to=[b.id], text="who am I?")
        await a.service.deliver_due()
        row = await a.outbox_row(mid)
        assert (row.state, row.attempts, row.last_error) == ("queued", 1, "UNKNOWN_SENDER")
        assert await b.count(messages) == 0 and await b.count(relay) == 0
        await network.know(b, a)
        network.clock.advance(BACKOFF_BASE_MS)
        await a.service.deliver_due()
        assert await a.state(mid) == "delivered" and await b.count(messages) == 1


async def test_sender_keys_follow_rotation_but_not_compromise(tmp_path: Path) -> None:
    for reason, accepted in (("scheduled", True), ("compromise", False)):
        (tmp_path / reason).mkdir()
        async with network_of(tmp_path / reason, "A", "B") as (network, (a, b)):
            await pair(network, a, b)
            [mid] = await a.service.send(account_id=None, to=[b.id], text="before rotation")
            head = await a.feeds.head(a.id)
            assert head is not None
            rotation = protocol.rotate_key(
                head,
                key=a.identity.signing_key,
                new_key=protocol.signing_key(bytes([77]) * 32),
                net=NET,
                now_ms=NOW,
                reason=reason,
            )
            await b.feeds.ingest(rotation.wire, net=NET, now_ms=NOW)
            await a.service.deliver_due()
            if accepted:
                assert await a.state(mid) == "delivered"
            else:
                assert await a.state(mid) == "failed"
                assert (await a.outbox_row(mid)).last_error == "BAD_SIGNATURE"


async def test_hostile_envelopes_are_refused_with_codes_and_store_nothing(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B", "X") as (network, (a, b, x)):
        await pair(network, a, b)
        good = await _envelope_to(a, b)
        fields = protocol.decode(good)

        def envelope(**changes: Any) -> bytes:
            return protocol.encode({**fields, **changes})

        box = bytearray(fields["box"])
        box[60] ^= 1
        for_x = protocol.seal(  # signed for X, sealed to B, then addressed to B
            protocol.TextMessage(text="moved"),
            sender_key=a.identity.signing_key,
            to=x.id,
            recipient_enc_key=b.identity.enc_key,
            net=NET,
            now_ms=NOW,
            ephemeral_secret=bytes([5]) * 32,
            nonce=bytes(16),
        )
        readdressed = protocol.encode({**protocol.decode(for_x.envelope), "to": b.id})
        forged = protocol.seal(  # claims to be from A, signed by X's key
            protocol.TextMessage(text="forged"),
            sender_key=x.identity.signing_key,
            sender=a.id,
            to=b.id,
            recipient_enc_key=b.identity.enc_key,
            net=NET,
            now_ms=NOW,
            ephemeral_secret=bytes([6]) * 32,
            nonce=bytes(16),
        ).envelope
        future = protocol.seal(
            protocol.TextMessage(text="from the future"),
            sender_key=a.identity.signing_key,
            to=b.id,
            recipient_enc_key=b.identity.enc_key,
            net=NET,
            now_ms=NOW + protocol.MAX_CLOCK_SKEW_MS + 1,
            ephemeral_secret=bytes([7]) * 32,
            nonce=bytes(16),
        ).envelope
        other_net = bytes(32)
        cases = [
            (b"garbage", "rejected", "MALFORMED"),
            (good + b"\x00", "rejected", "MALFORMED"),
            (protocol.encode({"box": b"x"}), "rejected", "MISSING_FIELD"),
            (envelope(net=other_net), "rejected", "WRONG_NET"),
            (envelope(v=2), "rejected", "UNSUPPORTED_VERSION"),
            (envelope(box=bytes(box)), "rejected", "DECRYPT_FAILED"),
            (envelope(id=bytes(32)), "rejected", "ID_MISMATCH"),
            (envelope(to=x.id), "rejected", "UNKNOWN_RECIPIENT"),
            (readdressed, "rejected", "WRONG_RECIPIENT"),
            (forged, "rejected", "BAD_SIGNATURE"),
            (future, "retry", "TS_IN_FUTURE"),
        ]
        acks = await b.service.receive([data for data, _s, _c in cases], from_peer=a.id)
        assert [(ack.status, ack.code) for ack in acks] == [(s, c) for _d, s, c in cases]
        assert acks[5].id == fields["id"] and acks[0].id == bytes(32)
        for table in (messages, outbox, relay):
            assert await b.count(table) == 0, table.name
        assert await b.service.unread_count() == 0
        # The genuine one still arrives.
        [ack] = await b.service.receive([good], from_peer=a.id)
        assert ack.status == "delivered"


# -- concurrency, threads, events ------------------------------------------------------


async def test_one_slow_peer_does_not_block_the_others(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B", "C") as (network, (a, b, c)):
        await pair(network, a, b)
        await pair(network, a, c)
        gate = asyncio.Event()
        a.transport.held[b.id] = gate
        [to_b, to_c] = await a.service.send(account_id=None, to=[b.id, c.id], text="to both")
        async with a.service.subscribe() as a_events:
            delivering = asyncio.create_task(a.service.deliver_due())
            await next_event(a_events, "state")  # C is served while B hangs
            assert await a.state(to_c) == "delivered" and await a.state(to_b) == "queued"
            # A second pass meanwhile does not send B's envelope twice.
            assert await a.service.deliver_due() == 0
            gate.set()
            assert await delivering == 2
        assert await a.state(to_b) == "delivered"
        assert a.transport.calls.count((b.id, 1)) == 1


async def test_threads_views_names_and_recipients(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B", "C") as (network, (a, b, c)):
        await pair(network, a, b)
        await pair(network, a, c)
        assert await a.service.recipients() == [
            (b.id, "منظمة B", "Organisation B"),
            (c.id, "منظمة C", "Organisation C"),
        ]
        first = await a.service.send(account_id=3, to=[b.id, c.id], text="hello both", subject="S")
        await a.service.deliver_due()
        [summary] = await a.service.threads()
        assert set(summary.peers) == {b.id, c.id} and summary.subject == "S"
        thread = summary.thread
        # B replies in the thread; A sees one thread with both messages.
        network.clock.advance(1000)
        await b.service.send(account_id=None, to=[a.id], text="reply", thread=thread)
        await b.service.deliver_due()
        views = await a.service.thread(thread)
        assert [v.direction for v in views] == ["out", "in"]
        assert {(r.peer, r.message, r.state) for r in views[0].recipients} == {
            (b.id, first[0], "delivered"),
            (c.id, first[1], "delivered"),
        }
        assert views[0].author_account == 3 and views[1].text == "reply"
        [summary] = await a.service.threads()
        assert (summary.count, summary.unread, summary.last_state) == (3, 1, "delivered")
        # A second thread, newer; paging by last_ms.
        network.clock.advance(1000)
        await a.service.send(account_id=None, to=[c.id], text="other")
        newest, older = await a.service.threads()
        assert older.thread == thread and newest.last_state == "queued"
        assert [t.thread for t in await a.service.threads(before_ms=newest.last_ms)] == [thread]
        assert await a.service.threads(limit=1) == [newest]
        names = await a.service.names([b.id, bytes(32)])
        assert list(names) == [b.id] and names[b.id].name_en == "Organisation B"
        assert await a.service.thread(bytes(32)) == []
        assert await a.service.mark_thread_read(bytes(32), account_id=None) == 0


async def test_a_lagging_subscriber_loses_the_oldest_events(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A") as (_network, (a,)):
        events = a.service.subscribe()
        for i in range(100):
            a.service._publish(MessageEvent(kind="unread", unread=i))
        first = await anext(events)
        assert first.unread == 100 - 64
        events.close()
        assert [e.unread async for e in events][-1] == 99
        assert a.service._subscribers == set()
        # close() ends every open subscription (at shutdown).
        async with a.service.subscribe() as live:
            waiting = asyncio.create_task(anext(live))
            await asyncio.sleep(0)
            a.service.close()
            with pytest.raises(StopAsyncIteration):
                await waiting


async def test_the_delivery_loop_sends_as_soon_as_something_is_queued(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        loop = asyncio.create_task(a.service.run(idle_s=3600))
        try:
            async with b.service.subscribe() as events:
                await a.service.send(account_id=None, to=[b.id], text="now")
                await next_event(events, "message")
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop


async def test_without_a_transport_nothing_is_sent(tmp_path: Path) -> None:
    async with network_of(tmp_path, "A", "B") as (network, (a, b)):
        await pair(network, a, b)
        a.service.transport = None
        [mid] = await a.service.send(account_id=None, to=[b.id], text="later")
        assert await a.service.deliver_due() == 0
        assert await a.state(mid) == "queued"
