"""Federation between real nodes in one process, over real loopback sockets: signed
requests, approval, pull replication through third nodes, idempotence, forks, the
restore guard, backoff, blocklists and hostile peers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import time
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy

import protocol
from node.clock import FakeClock
from node.federation import (
    BREAKER_FAILURES,
    CONTENT_TYPE,
    FederationError,
    PeerCallError,
    _sync,
    parse_blocklist,
)
from node.federation._transport import sign_headers
from node.storage import MAX_RANGE_BYTES, StorageError, StorageErrorCode

from .fed_helpers import (
    NOTE_KIND,
    NOW,
    FedNode,
    converge,
    federation,
    heal,
    link,
    partition,
)

pytestmark = pytest.mark.asyncio


async def _raw(
    caller: FedNode,
    target: FedNode,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    now_s: int | None = None,
    nonce: str | None = None,
    tamper: bool = False,
) -> tuple[int, dict[str, str], bytes, dict[str, str]]:
    """A hand-made signed request from ``caller`` to ``target`` (for hostile cases)."""
    url = target.url + path
    authority = f"127.0.0.1:{target.server.port}"
    headers = sign_headers(
        identity=caller.node.identity,
        method=method,
        authority=authority,
        path="/fed/v1" + path,
        query="",
        body=body,
        now_s=now_s if now_s is not None else NOW // 1000,
        nonce=nonce or base64.urlsafe_b64encode(bytes(18)).decode() + path.strip("/")[:4],
    )
    if tamper:
        sig = headers["Signature"]
        headers["Signature"] = sig[:-6] + ("A" if sig[-6] != "A" else "B") + sig[-5:]
    async with aiohttp.ClientSession() as session:
        data = io.BytesIO(body) if len(body) > 65536 else body
        async with session.request(method, url, data=data, headers=headers) as response:
            return response.status, dict(response.headers), await response.read(), headers


def _code(body: bytes) -> str:
    value = protocol.decode(body)
    code: str = value["error"]["code"]
    return code


async def test_approved_peers_replicate_and_receiving_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await a.append_notes(5, clock)
        assert await b.sync() == [True]
        assert await b.seq_of(a) == await a.seq_of(a)
        entries_before = await b.node.feeds.count()
        assert await b.sync() == [True]  # again: nothing new, nothing changes
        assert await b.node.feeds.count() == entries_before
        # both sides hold each other's approval vouch and profile
        assert await converge([a, b]) <= 2
        assert await a.seq_of(b) == await b.seq_of(b)


async def test_unknown_proposed_and_blocked_signers_are_refused(tmp_path: Path) -> None:
    async with federation(tmp_path, ["a", "c"]) as nodes:
        a, c = nodes["a"], nodes["c"]
        status, _h, body, _ = await _raw(c, a, "GET", "/heads")
        assert (status, _code(body)) == (401, "UNKNOWN_SIGNER")
        await a.node.federation.peers.propose(c.id, url=c.url, source="lan")
        status, _h, body, _ = await _raw(c, a, "GET", "/heads", nonce="n" * 22)
        assert (status, _code(body)) == (403, "NOT_APPROVED")
        await a.node.federation.peers.set_state(c.id, "blocked", actor=None, reason="spam")
        status, _h, body, _ = await _raw(c, a, "GET", "/heads", nonce="m" * 22)
        assert (status, _code(body)) == (403, "PEER_BLOCKED")
        # nothing was replicated either way
        assert await a.seq_of(c) == 0


async def test_a_feed_reaches_a_node_through_a_third_while_its_author_is_offline(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b", "c"]) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await link(b, c)  # a and c never talk
        await a.append_notes(1000, clock)
        assert await b.sync() == [True, True]
        await a.server.close()  # a goes offline
        await c.sync()
        await c.sync()  # b's vouch for a brings a into c's scope
        assert await c.seq_of(a) == await a.seq_of(a) >= 1000
        assert await c.node.feeds.get(a.id, 1000) == await a.node.feeds.get(a.id, 1000)


async def test_five_nodes_in_a_chain_converge(tmp_path: Path) -> None:
    names = ["n1", "n2", "n3", "n4", "n5"]
    async with federation(tmp_path, names) as nodes:
        chain = [nodes[name] for name in names]
        clock = chain[0].node.federation.clock
        assert isinstance(clock, FakeClock)
        for left, right in itertools.pairwise(chain):
            await link(left, right)
        for index, fed in enumerate(chain):
            await fed.append_notes(index + 3, clock)
        await converge(chain, rounds=12)
        heads = [await fed.node.feeds.heads() for fed in chain]
        assert all(h == heads[0] for h in heads)
        assert set(heads[0]) == {fed.id for fed in chain}


async def test_partition_heals(tmp_path: Path) -> None:
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await converge([a, b])
        await partition(a, b)  # both keep working alone
        await a.append_notes(20, clock)
        await b.append_notes(7, clock)
        assert await a.sync() == [False]
        state = a.node.federation.replicator.state(b.id)
        assert state.failures == 1 and state.next_attempt_ms > clock.now_ms()
        await heal(a, b)
        await converge([a, b])
        assert await a.node.feeds.heads() == await b.node.feeds.heads()


async def test_dead_peer_backs_off_opens_the_breaker_and_never_delays_others(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b", "c"]) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await link(a, c)
        await b.server.close()
        replicator = a.node.federation.replicator
        delays = []
        for _ in range(BREAKER_FAILURES):
            peer = await a.node.federation.peers.get(b.id)
            assert peer is not None
            assert await replicator.sync_peer(peer) is False
            state = replicator.state(b.id)
            delays.append(state.next_attempt_ms - clock.now_ms())
        assert state.breaker_open
        assert delays[1] > delays[0] * 0.9 and delays[3] > delays[1]
        # c is synced in the same round regardless
        await c.append_notes(3, clock)
        await replicator.tick()
        await asyncio.sleep(0)
        deadline = time.monotonic() + 30  # a hang guard: a loaded worker may take seconds
        while await a.seq_of(c) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await a.seq_of(c) >= 3
        peer = await a.node.federation.peers.get(b.id)
        assert peer is not None and peer.failures >= BREAKER_FAILURES
        assert peer.last_error == "UNREACHABLE"


async def test_other_federations_entries_are_never_stored(tmp_path: Path) -> None:
    async with (
        federation(tmp_path / "one", ["a"]) as one,
        federation(tmp_path / "two", ["x"]) as two,
    ):
        a, x = one["a"], two["x"]
        # an admin approves x by mistake (fingerprints compared, federations not)
        await link(a, x)
        assert await a.sync() == [True]
        assert await a.seq_of(x) == 0
        peer = await a.node.federation.peers.get(x.id)
        assert peer is not None and peer.rejected >= 1


async def test_a_fork_is_kept_offered_to_peers_and_stops_the_author(tmp_path: Path) -> None:
    async with federation(tmp_path, ["a", "b", "c"]) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await link(b, c)
        await converge([a, b, c])
        # a signs a second, different entry at its current head seq (equivocation)
        head = await a.node.feeds.head(a.id)
        assert head is not None
        before = await a.node.feeds.get(a.id, head.seq - 1)
        assert before is not None
        prev_head = protocol.FeedHead(
            author=a.id,
            seq=head.seq - 1,
            id=hashlib.sha256(before).digest(),
            ts=head.ts,
            key=a.id,
        )
        twin = protocol.append(
            prev_head,
            {"evil": True},
            key=a.node.identity.signing_key,
            net=a.node.config.net,
            now_ms=clock.now_ms(),
            kind=NOTE_KIND,
        )
        result = await b.node.feeds.ingest(twin.wire, net=b.node.config.net, now_ms=clock.now_ms())
        assert result.status == "fork"
        assert await b.node.feeds.has_fork(a.id)
        await c.sync()  # c learns the proof from b
        assert await c.node.feeds.has_fork(a.id)
        await a.append_notes(2, clock)
        await b.sync()
        assert await b.seq_of(a) == head.seq  # nothing after the fork is accepted


async def test_a_restored_node_learns_its_head_from_peers_before_appending(
    tmp_path: Path,
) -> None:
    from node.backup import backup_node, restore_node

    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await converge([a, b])
        archive = tmp_path / "a.watanbak"
        await backup_node(a.data, archive, clock=clock, passphrase=None)
        await a.append_notes(4, clock)  # after the backup: only b learns these
        await b.sync()
        held_by_b = await b.seq_of(a)
        restored_dir = tmp_path / "a-restored"
        await restore_node(archive, restored_dir, passphrase=None)
        from .fed_helpers import _open

        restored = await _open(restored_dir, clock, "a", None)
        try:
            assert await restored.feeds.head_unconfirmed() is not None
            with pytest.raises(StorageError) as refused:
                await FedNode("r", restored_dir, restored, a.server).append_notes(1, clock)
            assert refused.value.code is StorageErrorCode.HEAD_UNCONFIRMED
            peer = await restored.federation.peers.get(b.id)
            assert peer is not None
            assert await restored.federation.replicator.sync_peer(peer)
            assert await restored.feeds.head_unconfirmed() is None
            assert (await restored.feeds.head(a.id)).seq == held_by_b  # type: ignore[union-attr]
            await FedNode("r", restored_dir, restored, a.server).append_notes(1, clock)
        finally:
            await restored.close()


async def test_hostile_requests_are_refused_with_codes_and_store_nothing(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        count = await a.node.feeds.count()
        # forged signature
        status, _h, body, _ = await _raw(b, a, "GET", "/heads", tamper=True, nonce="f" * 22)
        assert (status, _code(body)) == (401, "BAD_SIGNATURE")
        # replayed request: the same signed request twice
        status, _h, body, sent = await _raw(b, a, "GET", "/heads", nonce="r" * 22)
        assert status == 200
        async with aiohttp.ClientSession() as session:
            async with session.get(a.url + "/heads", headers=sent) as response:
                assert response.status == 401
                assert _code(await response.read()) == "SIGNATURE_REPLAYED"
        # expired signature
        old = NOW // 1000 - 3600
        status, _h, body, _ = await _raw(b, a, "GET", "/heads", now_s=old, nonce="e" * 22)
        assert (status, _code(body)) == (401, "SIGNATURE_EXPIRED")
        # oversized body
        big = b"\x00" * (protocol.MAX_DOCUMENT_BYTES + 10)
        status, _h, body, _ = await _raw(b, a, "POST", "/notify", big, nonce="o" * 22)
        assert (status, _code(body)) == (413, "TOO_LARGE")
        # a body that is not a canonical document
        status, _h, body, _ = await _raw(b, a, "POST", "/messages", b"\xc1", nonce="g" * 22)
        assert status == 401 or _code(body) in ("MALFORMED", "FORBIDDEN_TYPE")
        assert await a.node.feeds.count() == count
        # the node still serves its peer
        assert await b.sync() == [True]


async def test_invalid_entries_from_a_peer_are_rejected_counted_and_not_stored(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await converge([a, b])
        held = await b.seq_of(a)
        # a serves an entry with a wrong prev (as a buggy or hostile peer would)
        head = await a.node.feeds.head(a.id)
        assert head is not None
        bad = protocol.create_entry(
            key=a.node.identity.signing_key,
            net=a.node.config.net,
            seq=head.seq + 1,
            prev=bytes(32),
            ts=clock.now_ms(),
            content={"n": 1},
            kind=NOTE_KIND,
        )
        gap = protocol.create_entry(
            key=a.node.identity.signing_key,
            net=a.node.config.net,
            seq=head.seq + 5,
            prev=bytes(32),
            ts=clock.now_ms(),
            content={"n": 2},
            kind=NOTE_KIND,
        )
        results, error = await b.node.feeds.ingest_batch(
            [bad.wire], net=b.node.config.net, now_ms=clock.now_ms()
        )
        assert results == [] and error is not None and error.code is protocol.ErrorCode.BAD_PREV
        results, error = await b.node.feeds.ingest_batch(
            [gap.wire], net=b.node.config.net, now_ms=clock.now_ms()
        )
        assert error is None and results[0].status == "gap"
        assert await b.seq_of(a) == held


async def test_blocklist_csv_is_checked_line_by_line() -> None:
    good = "author,reason,blocked_at_ms\n" + "ab" * 32 + ",spam,1\n"
    assert parse_blocklist(good) == [(bytes.fromhex("ab" * 32), "spam")]
    for bad, line in (
        ("who,why\n", "line 1"),
        ("author,reason\nnothex,spam\n", "line 2"),
        ("author,reason\n" + "ab" * 32 + ",\n", "line 2"),
        ("author,reason\n" + "ab" * 32 + ",a\x07b\n", "line 2"),
    ):
        with pytest.raises(FederationError) as error:
            parse_blocklist(bad)
        assert line in error.value.message


async def test_blocked_authors_are_never_pulled_and_blocklists_round_trip(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b", "c"]) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await link(b, c)
        await c.node.federation.peers.block_author(a.id, reason="fraud report 12", actor=None)
        await converge([a, b, c])
        assert await c.seq_of(a) == 0
        exported = await c.node.federation.peers.export_blocklist()
        assert a.id.hex() in exported and "fraud report 12" in exported
        added = await a.node.federation.peers.import_blocklist(
            exported.replace(a.id.hex(), c.id.hex()), actor=None
        )
        assert added == 1
        assert c.id in await a.node.federation.peers.blocked_ids()


async def test_unreachable_peer_call_is_a_coded_error(tmp_path: Path) -> None:
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        await b.server.close()
        with pytest.raises(PeerCallError) as error:
            await a.node.federation.client.call(b.id, b.url, "GET", "/heads")
        assert error.value.code == "UNREACHABLE"
        assert CONTENT_TYPE == "application/vnd.watan+msgpack"


async def test_messages_cross_real_sockets_directly_and_through_a_relay(tmp_path: Path) -> None:
    async with federation(tmp_path, ["a", "b", "c"]) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await link(b, c)  # a reaches c only through b
        await converge([a, b, c])
        messages = a.node.federation.messages
        assert messages is not None
        direct = await messages.send(account_id=None, to=[b.id], text="توزيع غدا")
        relayed = await messages.send(account_id=None, to=[c.id], text="for c only")
        await messages.deliver_due()
        # the relay holds an envelope it cannot read
        relay_rows = await b.node.db.read(
            lambda conn: list(conn.execute(sqlalchemy.text("SELECT envelope FROM relay")))
        )
        assert len(relay_rows) == 1 and b"for c only" not in bytes(relay_rows[0][0])
        await b.node.federation.messages.deliver_due()  # b forwards to c
        got_b = await b.node.federation.messages.threads()
        got_c = await c.node.federation.messages.threads()
        assert len(got_b) == 1 and len(got_c) == 1
        # receipts travel back (c's through b) and advance the sender's states
        for _ in range(3):
            for fed in (c, b, a):
                await fed.node.federation.messages.deliver_due()
        states = {
            view.id: view
            for thread in await messages.threads()
            for view in await messages.thread(thread.thread)
        }
        assert set(states) >= set(direct) | set(relayed)


async def test_a_slow_loris_body_is_cut_off_while_others_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import node.web._federation as fed_routes

    monkeypatch.setattr(fed_routes, "BODY_TIMEOUT_S", 1.0)
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        await link(a, b)
        body = protocol.encode({"heads": []})
        headers = sign_headers(
            identity=b.node.identity,
            method="POST",
            authority=f"127.0.0.1:{a.server.port}",
            path="/fed/v1/notify",
            query="",
            body=body,
            now_s=NOW // 1000,
            nonce="s" * 22,
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", a.server.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            (
                f"POST /fed/v1/notify HTTP/1.1\r\nHost: 127.0.0.1:{a.server.port}\r\n"
                f"Content-Length: {len(body)}\r\n{head}\r\n"
            ).encode()
            + body[:1]
        )
        await writer.drain()
        assert await b.sync() == [True]  # served while the slow body hangs
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
        assert b" 408 " in answer.split(b"\r\n")[0]
        writer.close()


async def test_key_rotations_are_honoured_when_replicating_a_vouched_feed(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        # x: an author a vouches for, whose feed rotates its key part way
        old = protocol.signing_key(bytes(range(100, 132)))
        new = protocol.signing_key(bytes(range(140, 172)))
        net, now = a.node.config.net, clock.now_ms()
        first = protocol.append(None, {"n": 0}, key=old, net=net, now_ms=now, kind=NOTE_KIND)
        head = protocol.head_after(None, first)
        rotation = protocol.rotate_key(
            head, key=old, new_key=new, net=net, now_ms=now, reason="scheduled"
        )
        head = protocol.head_after(head, rotation)
        after = protocol.append(head, {"n": 2}, key=new, net=net, now_ms=now, kind=NOTE_KIND)
        x = first.author
        for entry in (first, rotation, after):
            result = await a.node.feeds.ingest(entry.wire, net=net, now_ms=now)
            assert result.status == "stored"
        await a.node.federation.peers.set_state(x, "approved", actor=None)  # vouches for x
        await converge([a, b])
        held = await b.node.feeds.head(x)
        assert held is not None and held.seq == 3 and held.key == protocol.public_key(new)
        # an entry still signed by the old key after the rotation is refused
        stale = protocol.create_entry(
            key=old, net=net, seq=4, prev=held.id, ts=now, content={"n": 3}, kind=NOTE_KIND
        )
        with pytest.raises(protocol.RemoteProtocolError) as error:
            await b.node.feeds.ingest(stale.wire, net=net, now_ms=now)
        assert error.value.code is protocol.ErrorCode.BAD_SIGNATURE


async def test_an_invite_joins_a_standalone_node_and_the_inviter_admin_approves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from node import fedcli
    from node.config import load_config
    from node.daemon import NodeError
    from node.federation import make_invite

    from .fed_helpers import _open

    # the CLI reads the wall clock: the inviter's clock must agree with it
    wall = FakeClock(time.time_ns() // 1_000_000)
    async with federation(tmp_path, ["a"], clock=wall) as nodes:
        a = nodes["a"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        joiner_dir = tmp_path / "j"
        joiner = await _open(joiner_dir, clock, "j", None)
        joiner_id = joiner.identity.node_id
        await joiner.close()
        invite = await make_invite(
            a.node.config,
            a.node.federation.peers,
            identity=a.node.identity,
            url=a.url,
            clock=clock,
            random_bytes=lambda n: bytes(range(n)),
        )

        def accept(fingerprint: str) -> argparse.Namespace:
            return argparse.Namespace(
                command="invite",
                invite_command="accept",
                data=joiner_dir,
                token=invite.to_token(),
                fingerprint=fingerprint,
                url="http://127.0.0.1:9/fed/v1",
            )

        # a wrong fingerprint changes nothing
        with pytest.raises(NodeError, match="fingerprint mismatch"):
            await fedcli.run(accept("00000 00000 00000 00000 00000 00000"))
        assert load_config(joiner_dir).standalone
        await fedcli.run(accept(protocol.fingerprint(a.id)))
        assert "must now approve this node" in capsys.readouterr().out
        config = load_config(joiner_dir)
        assert not config.standalone and config.net == a.node.config.net
        # the inviter holds the joiner as proposed, awaiting its admin
        peer = await a.node.federation.peers.get(joiner_id)
        assert peer is not None and (peer.state, peer.source) == ("proposed", "invite")
        # the secret is spent: a second use is refused
        with pytest.raises(FederationError):
            await a.node.federation.peers.spend_invite(invite.secret, node_id=bytes(32), url=None)


@pytest.mark.parametrize("fault", ["wrong_prev", "seq_gap", "wrong_net", "bad_signature"])
async def test_a_hostile_peer_serving_bad_entries_is_refused_counted_and_others_served(
    tmp_path: Path, fault: str
) -> None:
    async with federation(tmp_path, ["a", "b", "c"]) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await link(b, c)
        await converge([a, b, c])
        head = await a.node.feeds.head(a.id)
        assert head is not None
        key, net = a.node.identity.signing_key, a.node.config.net
        fields = {
            "key": key,
            "net": net,
            "seq": head.seq + 1,
            "prev": head.id,
            "ts": clock.now_ms(),
            "content": {"n": 1},
            "kind": NOTE_KIND,
        }
        if fault == "wrong_prev":
            fields["prev"] = bytes(32)
        elif fault == "seq_gap":
            fields["seq"] = head.seq + 2
        elif fault == "wrong_net":
            fields["net"] = bytes(32)
        bad = protocol.create_entry(**fields).wire  # type: ignore[arg-type]
        if fault == "bad_signature":
            bad = bad[:-1] + bytes([bad[-1] ^ 1])
        # a turns hostile: it announces one more entry and serves the bad one
        real_heads, real_range = a.node.feeds.heads, a.node.feeds.range

        async def heads() -> dict[bytes, tuple[int, bytes]]:
            held = await real_heads()
            held[a.id] = (head.seq + (2 if fault == "seq_gap" else 1), bytes(32))
            return held

        async def served(
            author: bytes, after_seq: int, limit: int, *, max_bytes: int = MAX_RANGE_BYTES
        ) -> list[bytes]:
            if author == a.id:
                return [bad]
            return await real_range(author, after_seq, limit, max_bytes=max_bytes)

        a.node.feeds.heads = heads  # type: ignore[method-assign]
        a.node.feeds.range = served  # type: ignore[method-assign]
        before = await b.node.feeds.count()
        await b.sync()
        assert await b.node.feeds.count() == before  # nothing stored
        assert await b.seq_of(a) == head.seq
        peer = await b.node.federation.peers.get(a.id)
        assert peer is not None
        state = b.node.federation.replicator.state(a.id)
        if fault == "seq_gap":
            assert peer.rejected == 0  # a gap is not invalid: the missing entries come later
        else:
            expected = {"wrong_prev": "BAD_PREV", "wrong_net": "WRONG_NET"}.get(
                fault, "BAD_SIGNATURE"
            )
            assert peer.rejected == 1 and state.rejected == {expected: 1}
        # b still serves and syncs its other peer
        await c.append_notes(2, clock)
        assert await b.sync() == [True, True]
        assert await b.seq_of(c) == await c.seq_of(c)
        assert await c.sync() == [True]


@pytest.mark.parametrize("bad_range", [2, 3])
async def test_a_long_catch_up_is_pipelined_and_stops_exactly_at_a_bad_entry(
    tmp_path: Path, bad_range: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up of several ranges (each fetched while the one before is verified and
    stored, two stored per transaction, see Replicator._pull) with an invalid entry in
    its second range (joined with the first) or its third: b keeps exactly the entries
    before it, counts one rejection, and takes the rest once the peer serves them
    honestly. (Ranges of 256 here rather than MAX_RANGE: the same pipeline, and a
    tenth of the entries to append.)"""
    batch = 256
    monkeypatch.setattr(_sync, "BATCH", batch)
    async with federation(tmp_path, ["a", "b"]) as nodes:
        a, b = nodes["a"], nodes["b"]
        clock = a.node.federation.clock
        assert isinstance(clock, FakeClock)
        await link(a, b)
        await converge([a, b])
        start = await b.seq_of(a)
        await a.append_notes(2 * batch + 150, clock)
        total = await a.seq_of(a)
        bad_seq = start + (bad_range - 1) * batch + 100
        real_range = a.node.feeds.range

        async def served(
            author: bytes, after_seq: int, limit: int, *, max_bytes: int = MAX_RANGE_BYTES
        ) -> list[bytes]:
            wires = await real_range(author, after_seq, limit, max_bytes=max_bytes)
            if author != a.id:
                return wires
            return [
                wire[:-1] + bytes([wire[-1] ^ 1]) if after_seq + i + 1 == bad_seq else wire
                for i, wire in enumerate(wires)
            ]

        a.node.feeds.range = served  # type: ignore[method-assign]
        await b.sync()
        assert await b.seq_of(a) == bad_seq - 1
        assert b.node.federation.replicator.state(a.id).rejected == {"BAD_SIGNATURE": 1}
        a.node.feeds.range = real_range  # type: ignore[method-assign]
        await b.sync()
        assert await b.seq_of(a) == total
        assert (await b.node.feeds.heads())[a.id] == (await a.node.feeds.heads())[a.id]
