"""Pseudonym oracles between real nodes over real loopback sockets (DESIGN §5, SPEC
§13): a 2-of-3 key ceremony, every node deriving the same pseudonym, an oracle down,
a lying oracle, too few oracles (pending, then resolved), quotas, published usage,
and what an oracle sees."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

import protocol
from node import cli, oraclecli
from node.clock import FakeClock, SystemClock
from node.daemon import NodeError
from node.federation import PeerCallError
from node.oracle import (
    OracleError,
    OracleErrorCode,
    PseudonymService,
    active_config,
    deal,
    dealers_of,
    founder_of,
    import_share,
    open_share_file,
)
from node.storage import stored_content
from protocol import oprf

from ..node.conftest import _drop_postgres_database, _postgres_database
from .fed_helpers import NOW, FedNode, converge, federation, heal, link, partition

pytestmark = pytest.mark.asyncio

NID = "١٩٨٥ ٠١٢٣ ٤٥٦٧"  # the same card, typed with Arabic-Indic digits
NID_ASCII = "198501234567"


def _service(fed: FedNode) -> PseudonymService:
    service = fed.node.federation.pseudonyms
    assert service is not None
    return service


async def _ceremony(
    nodes: dict[str, FedNode], dealer: str, oracles: list[str], clock: FakeClock, threshold: int = 2
) -> int:
    """Deal on ``dealer``, replicate the config, import each share where it belongs."""
    fed = nodes[dealer]
    server = fed.node.federation.oracle
    assert server is not None
    dealt = await deal(
        feeds=fed.node.feeds,
        audit=fed.node.audit,
        identity=fed.node.identity,
        net=fed.node.config.net,
        clock=clock,
        shares=server.shares,
        threshold=threshold,
        oracles=[nodes[name].id for name in oracles],
        random_bytes=os.urandom,
        founder=founder_of(fed.node.config),
    )
    await converge(list(nodes.values()))
    for name in oracles:
        target = nodes[name]
        if target.id not in dealt.files:
            continue
        target_server = target.node.federation.oracle
        assert target_server is not None
        await import_share(
            dealt.files[target.id],
            feeds=target.node.feeds,
            scope=dealers_of(target.node.config),
            audit=target.node.audit,
            identity=target.node.identity,
            net=target.node.config.net,
            clock=clock,
            shares=target_server.shares,
        )
    return dealt.epoch


async def test_every_node_derives_the_same_pseudonym(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c", "d"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c"), ("d", "a"), ("d", "b"), ("d", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))
        epoch = await _ceremony(nodes, "a", ["a", "b", "c"], clock)
        assert epoch == 1
        values = set()
        for name in "abcd":
            service = _service(nodes[name])
            first = await service.lookup(oprf.PseudonymInput.from_national_id(NID))
            assert first.state == "pending"  # a lookup never waits for the network
            result = await service.resolve(
                oprf.PseudonymInput.from_national_id(NID_ASCII), timeout_s=30
            )
            assert result.state == "ready", result
            assert result.epoch == 1 and not result.weak
            assert result.value is not None and len(result.value) == 32
            values.add(result.value)
            # cached: the second lookup answers at once, without asking any oracle
            again = await service.lookup(oprf.PseudonymInput.from_national_id(NID))
            assert again == result
        assert len(values) == 1
        other = await _service(nodes["d"]).resolve(
            oprf.PseudonymInput.from_national_id("198501234568"), timeout_s=30
        )
        assert other.value not in values


async def test_one_oracle_down_and_a_lying_oracle(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c", "d"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c"), ("d", "a"), ("d", "b"), ("d", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))
        await _ceremony(nodes, "a", ["a", "b", "c"], clock)
        service = _service(nodes["d"])
        config = await service.config()
        item = oprf.PseudonymInput.from_national_id(NID)
        [expected] = await service.evaluate([item], config=config)

        await partition(nodes["d"], nodes["b"])  # oracle 2 unreachable from d
        [value] = await service.evaluate([item], config=config)
        assert value == expected
        assert not service.answers[2].ok

        # Oracle 3 now evaluates with a share of another key: its proof fails against
        # its published share key, so it is identified and skipped, and with 1 and 2
        # the result is still exact.
        await heal(nodes["d"], nodes["b"])
        server_c = nodes["c"].node.federation.oracle
        assert server_c is not None
        held = await server_c.shares.get(1)
        assert held is not None
        liar = oprf.KeyShare(
            index=held.share.index, secret=oprf.derive_key_pair(b"x" * 32, b"liar")[0]
        )
        server_c.shares._cache[1] = type(held)(
            epoch=1, share=liar, threshold=2, dealer=held.dealer, imported_ms=0
        )
        await partition(nodes["d"], nodes["a"])  # only 2 and the liar remain: too few
        with pytest.raises(OracleError) as info:
            await service.evaluate([item], config=config)
        assert info.value.code is OracleErrorCode.TOO_FEW_ORACLES
        assert "#3 BAD_PROOF" in info.value.message
        assert service.answers[3].code == "BAD_PROOF" and service.answers[2].ok

        await heal(nodes["d"], nodes["a"])  # 1 and 2 honest: exact despite the liar
        for _ in range(3):
            [value] = await service.evaluate([item], config=config)
            assert value == expected


async def test_pending_until_enough_oracles_return(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c", "d"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c"), ("d", "a"), ("d", "b"), ("d", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))
        await _ceremony(nodes, "a", ["a", "b", "c"], clock)
        service = _service(nodes["d"])
        await partition(nodes["d"], nodes["a"])
        await partition(nodes["d"], nodes["b"])
        items = [oprf.PseudonymInput.from_national_id(f"19850123{n:04d}") for n in range(5)]
        for item in items:
            assert (await service.lookup(item)).state == "pending"
        assert await service.run_pending() == 5
        pending = await service.lookup(items[0])
        assert pending.state == "pending" and pending.error == "TOO_FEW_ORACLES"
        assert await service.run_pending() == 0  # backing off
        assert await service.counts() == {"ready": 0, "pending": 5}

        await heal(nodes["d"], nodes["a"])
        clock.advance(60_000)
        assert await service.run_pending() == 5
        assert await service.counts() == {"ready": 5, "pending": 0}
        results = [await service.lookup(item) for item in items]
        assert all(r.state == "ready" for r in results)
        assert len({r.value for r in results}) == 5


async def test_quota_audit_and_published_usage(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))
        await _ceremony(nodes, "a", ["a", "b"], clock)
        server_b = nodes["b"].node.federation.oracle
        assert server_b is not None
        await server_b.set_quota(3, actor=None)
        service = _service(nodes["c"])
        config = await service.config()
        items = [oprf.PseudonymInput.from_national_id(f"19850123{n:04d}") for n in range(3)]
        await service.evaluate(items, config=config)
        with pytest.raises(OracleError) as info:
            await service.evaluate(items[:1], config=config)
        assert info.value.code is OracleErrorCode.TOO_FEW_ORACLES
        assert service.answers[2].code == "QUOTA_EXCEEDED"

        actions = [r.action for r in await nodes["b"].node.audit.query(limit=200)]
        assert "oracle.evaluate" in actions and "oracle.quota_refused" in actions

        # The next UTC day: b publishes yesterday's usage, and everyone sees it.
        clock.advance(24 * 3600 * 1000)
        published = await server_b.publish_usage()
        assert len(published) == 1
        assert await server_b.publish_usage() == []  # once
        await converge(list(nodes.values()))
        wire = await nodes["c"].node.feeds.latest_of_kind(nodes["b"].id, "oracle.usage/1")
        assert wire is not None
        usage = protocol.OracleUsage.build(stored_content(wire))
        assert usage.requesters == [nodes["c"].id] and usage.counts == [3]
        # and the quota is a daily one: c may ask again
        await service.evaluate(items[:1], config=config)


async def test_only_approved_peers_are_answered(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c"], clock=clock) as nodes:
        await link(nodes["a"], nodes["b"])
        await link(nodes["a"], nodes["c"])  # c learns the config through a
        await converge(list(nodes.values()))
        await _ceremony(nodes, "a", ["a", "b"], clock)
        # c trusts b, but b does not know c
        await nodes["c"].node.federation.peers.set_state(
            nodes["b"].id, "approved", actor=None, url=nodes["b"].url
        )
        await converge(list(nodes.values()))
        service = _service(nodes["c"])
        config = await service.config()
        item = oprf.PseudonymInput.from_national_id(NID)
        with pytest.raises(OracleError):
            await service.evaluate([item], config=config)
        assert service.answers[1].ok and service.answers[2].code == "UNKNOWN_SIGNER"
        # b's admin sees c proposed, not yet approved: still refused
        await nodes["b"].node.federation.peers.propose(nodes["c"].id, url=None, source="manual")
        with pytest.raises(OracleError):
            await service.evaluate([item], config=config)
        assert service.answers[2].code == "NOT_APPROVED"
        await link(nodes["b"], nodes["c"])
        await service.evaluate([item], config=config)


async def test_share_file_checks(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))
        server_a = nodes["a"].node.federation.oracle
        assert server_a is not None
        dealt = await deal(
            feeds=nodes["a"].node.feeds,
            audit=nodes["a"].node.audit,
            identity=nodes["a"].node.identity,
            net=nodes["a"].node.config.net,
            clock=clock,
            shares=server_a.shares,
            threshold=2,
            oracles=[nodes["b"].id, nodes["c"].id],
            random_bytes=os.urandom,
            founder=founder_of(nodes["a"].node.config),
        )
        text_b = dealt.files[nodes["b"].id]
        b = nodes["b"].node
        # the config has not reached b yet: it cannot check the share
        server_b = b.federation.oracle
        assert server_b is not None

        async def attempt(text: str, target: FedNode = nodes["b"]) -> OracleErrorCode:
            node = target.node
            srv = node.federation.oracle
            assert srv is not None
            with pytest.raises(OracleError) as info:
                await import_share(
                    text,
                    feeds=node.feeds,
                    scope=dealers_of(node.config),
                    audit=node.audit,
                    identity=node.identity,
                    net=node.config.net,
                    clock=clock,
                    shares=srv.shares,
                )
            return info.value.code

        assert await attempt(text_b) is OracleErrorCode.NO_CONFIG
        await converge(list(nodes.values()))
        assert await attempt(text_b, nodes["c"]) is OracleErrorCode.BAD_SHARE_FILE  # not c's
        assert await attempt("watan-share-1.!!!") is OracleErrorCode.BAD_SHARE_FILE
        assert await attempt(text_b[:-8]) is OracleErrorCode.BAD_SHARE_FILE
        assert await attempt("hello") is OracleErrorCode.BAD_SHARE_FILE
        document, share = open_share_file(text_b, identity=b.identity, net=b.config.net)
        assert document["epoch"] == 1 and share.index == 1
        held = await import_share(
            text_b,
            feeds=b.feeds,
            scope=dealers_of(b.config),
            audit=b.audit,
            identity=b.identity,
            net=b.config.net,
            clock=clock,
            shares=server_b.shares,
        )
        assert (
            held.share.public_key
            == (await active_config(b.feeds, dealers_of(b.config))).share_keys()[1]
        )
        # the secret is sealed at rest: the row does not hold it
        row = await b.db.read(
            lambda conn: conn.exec_driver_sql(
                "SELECT sealed_secret FROM oracle_shares"
            ).scalar_one()
        )
        assert held.share.secret not in bytes(row)
        assert "secret" not in repr(held)


async def test_the_ceremony_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``watan oracle deal|import|quota|status|check`` on the nodes' directories while
    they run (the commands sign with the real clock, so the nodes use it too)."""
    clock = FakeClock(SystemClock().now_ms())
    async with federation(tmp_path, ["a", "b", "c"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))

        async def watan(*argv: str) -> str:
            await oraclecli.run(cli._parser().parse_args(["oracle", *argv]))
            return capsys.readouterr().out

        a, b, c = (str(nodes[n].data) for n in "abc")
        with pytest.raises(NodeError, match="comma-separated node ids"):
            await watan("deal", "--data", a, "--threshold", "2", "--oracles", "b,c")
        ids = f"{nodes['b'].id.hex()},{nodes['c'].id.hex()}"
        with pytest.raises(NodeError, match="BAD_DEAL"):
            await watan("deal", "--data", a, "--threshold", "3", "--oracles", ids)
        out = await watan("deal", "--data", a, "--threshold", "2", "--oracles", ids)
        assert "epoch 1: 2 of 2 oracles" in out
        files = sorted((nodes["a"].data / "oracle-shares" / "epoch-1").iterdir())
        assert len(files) == 2 and all(f.stat().st_mode & 0o077 == 0 for f in files)
        await converge(list(nodes.values()))
        for name in "bc":
            mine = (
                nodes["a"].data / "oracle-shares" / "epoch-1" / f"{nodes[name].id.hex()[:16]}.share"
            )
            with pytest.raises(NodeError, match="BAD_SHARE_FILE"):  # the other's file
                other = next(f for f in files if f != mine)
                await watan("import", "--data", str(nodes[name].data), str(other))
            out = await watan("import", "--data", str(nodes[name].data), str(mine))
            assert "of epoch 1" in out
        assert "daily quota: 5 " in await watan("quota", "--data", b, "5")
        status = json.loads(await watan("status", "--data", b, "--json"))
        assert status["config"]["epoch"] == 1 and status["shares"] == [1] and status["quota"] == 5
        out = await watan("check", "--data", a)
        assert "ok: 2 of 2 oracles answered" in out
        status = json.loads(await watan("status", "--data", c, "--json"))
        assert status["usage_today"] == {nodes["a"].id.hex(): 1}
        assert "no oracle configuration" not in await watan("status", "--data", a)


HOSTILE: list[tuple[dict[str, object], str]] = [
    ({"elements": [], "epoch": 1}, "MALFORMED"),
    ({"elements": [b"\x00" * 32] * 257, "epoch": 1}, "MALFORMED"),
    ({"elements": ["text"], "epoch": 1}, "MALFORMED"),
    ({"elements": [b"\x01" * 32], "epoch": 1, "x": 1}, "MALFORMED"),
    ({"elements": [b"\x00" * 31], "epoch": 1}, "BAD_VALUE"),
    ({"elements": [b"\xff" * 32], "epoch": 1}, "BAD_ELEMENT"),  # not canonical
    ({"elements": [b"\x00" * 32], "epoch": 1}, "BAD_ELEMENT"),  # the identity
    ({"elements": [bytes(range(32))], "epoch": 2}, "NOT_AN_ORACLE"),
]


async def test_hostile_evaluate_requests_get_clean_errors(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b"], clock=clock) as nodes:
        await link(nodes["a"], nodes["b"])
        await converge(list(nodes.values()))
        await _ceremony(nodes, "a", ["a", "b"], clock)
        client = nodes["b"].node.federation.client
        for body, code in HOSTILE:
            with pytest.raises(PeerCallError) as info:
                await client.call(nodes["a"].id, nodes["a"].url, "POST", "/oprf/evaluate", body)
            assert info.value.code == code, body
            assert info.value.status is not None and 400 <= info.value.status < 500
        # nothing was counted for refused requests, and a good one is still served
        server = nodes["a"].node.federation.oracle
        assert server is not None
        assert await server.usage() == []
        element = oprf.blind(b"IQ-NID:198501234567", mode=oprf.MODE_VOPRF)[1]
        answer = await client.call(
            nodes["a"].id,
            nodes["a"].url,
            "POST",
            "/oprf/evaluate",
            {"elements": [element], "epoch": 1},
        )
        assert answer["index"] == 1 and len(answer["elements"]) == 1
        assert [u.count for u in await server.usage()] == [1]


def _publish_config(fed: FedNode, clock: FakeClock, oracles: list[bytes]) -> Any:
    """An ``oracle.config/1`` of epoch 1 appended by hand (deal() refuses a non-new
    epoch, and refuses a node that did not found the federation)."""
    body = protocol.OracleConfig(
        epoch=1,
        keys=[oprf.derive_key_pair(bytes([i]) * 32, b"k")[1] for i in range(1, len(oracles) + 1)],
        oracles=oracles,
        suite=oprf.SUITE,
        threshold=2,
    )
    key, net, now = fed.node.identity.signing_key, fed.node.config.net, clock.now_ms()
    return fed.node.feeds.append_own(
        lambda head: protocol.append(head, body, key=key, net=net, now_ms=now), now_ms=now
    )


async def test_only_the_founder_deals_a_conflict_and_a_new_epoch(tmp_path: Path) -> None:
    """A peer's configuration is ignored (else one NGO could deal itself the whole key);
    two different ones of one epoch from the founder are a conflict nobody guesses
    through; a new epoch settles it, with pseudonyms that differ from the old ones."""
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b", "c"], clock=clock) as nodes:
        for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
            await link(nodes[x], nodes[y])
        await converge(list(nodes.values()))
        server_b = nodes["b"].node.federation.oracle
        assert server_b is not None
        with pytest.raises(OracleError) as refused:
            await deal(
                feeds=nodes["b"].node.feeds,
                audit=nodes["b"].node.audit,
                identity=nodes["b"].node.identity,
                net=nodes["b"].node.config.net,
                clock=clock,
                shares=server_b.shares,
                threshold=2,
                oracles=[nodes["b"].id, nodes["c"].id],
                random_bytes=os.urandom,
                founder=founder_of(nodes["b"].node.config),
            )
        assert refused.value.code is OracleErrorCode.NOT_FOUNDER
        # b publishes a configuration anyway, naming oracles it controls: ignored
        await _publish_config(nodes["b"], clock, [nodes["b"].id, nodes["c"].id])
        await converge(list(nodes.values()))
        service = _service(nodes["c"])
        with pytest.raises(OracleError) as info:
            await service.config()
        assert info.value.code is OracleErrorCode.NO_CONFIG

        await _ceremony(nodes, "a", ["a", "b", "c"], clock)
        item = oprf.PseudonymInput.from_national_id(NID)
        first = await service.resolve(item, timeout_s=30)
        assert first.state == "ready" and first.epoch == 1
        # the founder publishes a second, different epoch 1: a conflict
        await _publish_config(nodes["a"], clock, [nodes["c"].id, nodes["b"].id])
        await converge(list(nodes.values()))
        with pytest.raises(OracleError) as info:
            await service.config()
        assert info.value.code is OracleErrorCode.CONFIG_CONFLICT
        other = oprf.PseudonymInput.from_national_id("198501234599")
        pending = await service.lookup(other)
        assert pending.state == "pending" and pending.error == "CONFIG_CONFLICT"
        # a re-deal with a new epoch settles it
        epoch = await _ceremony(nodes, "a", ["a", "b", "c"], clock)
        assert epoch == 2
        second = await service.resolve(item, timeout_s=30)
        assert second.state == "ready" and second.epoch == 2
        assert second.value != first.value
        assert (await service.resolve(other, timeout_s=30)).epoch == 2
        # the pseudonym of epoch 1 is kept (records carry their epoch)
        assert await service.counts() == {"ready": 3, "pending": 0}


async def test_nothing_identifying_is_stored_by_the_client(tmp_path: Path) -> None:
    """The cache is keyed by a keyed hash; a pending input is sealed to the node's key."""
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b"], clock=clock) as nodes:
        await link(nodes["a"], nodes["b"])
        await converge(list(nodes.values()))
        service = _service(nodes["a"])
        item = oprf.PseudonymInput.from_fallback(
            name=["فاطمة", "حسين", "علي", "الجبوري"],
            mother_name="زينب",
            birth_year=1987,
            governorate="IQG08",
        )
        pending = await service.lookup(item)  # no oracles yet: stays pending
        assert pending.state == "pending" and pending.weak and pending.error == "NO_CONFIG"
        await _ceremony(nodes, "a", ["a", "b"], clock)
        nid = oprf.PseudonymInput.from_national_id(NID)
        await service.lookup(nid)
        db = nodes["a"].data / "watan.db"
        raw = db.read_bytes() + (nodes["a"].data / "watan.db-wal").read_bytes()
        for secret in (NID_ASCII.encode(), "الجبوري".encode(), "زينب".encode()):
            assert secret not in raw
        assert (await service.resolve(item, timeout_s=30)).state == "ready"


async def test_oracle_and_client_on_postgresql(tmp_path: Path) -> None:
    """The same flow with an oracle and a client on PostgreSQL (the others SQLite):
    counting, pending with backoff, resolution, published usage."""
    names = [f"watan_test_{secrets.token_hex(6)}" for _ in range(2)]
    urls = [await _postgres_database(name) for name in names]
    clock = FakeClock(NOW)
    try:
        async with federation(
            tmp_path, ["a", "b", "c"], clock=clock, database_urls=[None, *urls]
        ) as nodes:
            for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
                await link(nodes[x], nodes[y])
            await converge(list(nodes.values()))
            await _ceremony(nodes, "a", ["a", "b"], clock)
            service = _service(nodes["c"])
            await partition(nodes["c"], nodes["a"])
            items = [oprf.PseudonymInput.from_national_id(f"19850123{n:04d}") for n in range(3)]
            for item in items:
                await service.lookup(item)
            assert await service.run_pending() == 3
            assert await service.counts() == {"ready": 0, "pending": 3}
            await heal(nodes["c"], nodes["a"])
            clock.advance(60_000)
            assert await service.run_pending() == 3
            assert await service.counts() == {"ready": 3, "pending": 0}
            server_b = nodes["b"].node.federation.oracle
            assert server_b is not None
            # b answered the failed round too: an oracle cannot know the others failed
            assert [u.count for u in await server_b.usage()] == [6]
            clock.advance(24 * 3600 * 1000)
            [entry] = await server_b.publish_usage()
            assert protocol.OracleUsage.build(entry.content).counts == [6]
    finally:
        for name in names:
            await _drop_postgres_database(name)
