"""LAN discovery without a network: the TXT parser against hostile input, the instance
name, and what :class:`Discovery` reports (own advert, other federations, rate limit,
failing callbacks). The real multicast path is tested in
``tests/integration/test_netns_discovery.py``."""

from __future__ import annotations

import hashlib
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocol
from node.federation._discovery import (
    MAX_ADDRESSES,
    MAX_REMEMBERED,
    PROTOCOL_VERSION,
    REPORT_INTERVAL_S,
    SERVICE_TYPE,
    Advert,
    Discovery,
    _parse,
    _ReportLimit,
    instance_name,
    parse_advert,
    txt_properties,
)

NET = hashlib.sha256(b"watan discovery test federation").digest()
OTHER_NET = hashlib.sha256(b"another federation").digest()
OURS = protocol.public_key(protocol.signing_key(bytes(range(32))))
PEER = protocol.public_key(protocol.signing_key(bytes(range(32, 64))))
PORT = 8443


def txt(node_id: bytes = PEER, net: bytes = NET, api: str = "/fed/v1") -> dict[bytes, bytes | None]:
    """A TXT record as zeroconf hands it to a browser: bytes keys and values."""
    properties = txt_properties(node_id=node_id, net=net, api_path=api)
    return {key.encode(): value.encode() for key, value in properties.items()}


def with_value(key: bytes, value: bytes | None) -> dict[bytes, bytes | None]:
    properties = txt()
    properties[key] = value
    return properties


def without(key: bytes) -> dict[bytes, bytes | None]:
    properties = txt()
    del properties[key]
    return properties


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- names and the TXT record ---


def test_instance_name_is_stable_and_from_the_node_id() -> None:
    assert instance_name(PEER) == "watan-" + PEER.hex()[:16]
    assert instance_name(PEER) == instance_name(bytes(PEER))
    assert instance_name(OURS) != instance_name(PEER)
    assert SERVICE_TYPE == "_watan._tcp.local."


@pytest.mark.parametrize("node_id", [b"", bytes(31), bytes(33)])
def test_instance_name_rejects_a_malformed_id(node_id: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        instance_name(node_id)


def test_txt_record_is_ascii_and_round_trips() -> None:
    properties = txt_properties(node_id=PEER, net=NET, api_path="/fed/v1")
    assert properties == {
        "id": PEER.hex(),
        "fp": protocol.fingerprint(PEER),
        "net": NET.hex(),
        "v": str(PROTOCOL_VERSION),
        "api": "/fed/v1",
    }
    assert all(value.isascii() for value in properties.values())
    advert = parse_advert(txt(), ["10.247.1.2", "fd00::2"], PORT)
    assert advert == Advert(
        node_id=PEER,
        fingerprint=protocol.fingerprint(PEER),
        net=NET,
        version=PROTOCOL_VERSION,
        urls=("http://10.247.1.2:8443/fed/v1", "http://[fd00::2]:8443/fed/v1"),
        api="/fed/v1",
    )


def test_unknown_keys_and_other_versions_are_accepted() -> None:
    properties = txt() | {b"later": b"x", b"flag": None}
    properties[b"v"] = b"7"
    advert = parse_advert(properties, ["10.0.0.9"], PORT)
    assert advert is not None
    assert advert.version == 7


def test_addresses_ipv4_first_deduplicated_and_reachable_only() -> None:
    addresses = [
        "fd00::1",
        "10.0.0.1",
        "127.0.0.1",  # loopback: would make us call ourselves
        "::1",
        "0.0.0.0",
        "224.0.0.251",
        "fe80::1",  # link-local IPv6 needs a zone a URL cannot carry portably
        "::ffff:10.0.0.1",
        "10.0.0.1",
        "not an address",
        "169.254.7.7",  # link-local IPv4 is how an offline LAN without DHCP talks
        "2001:db8::0001",
    ]
    advert = parse_advert(txt(), addresses, PORT)
    assert advert is not None
    assert advert.urls == (
        "http://10.0.0.1:8443/fed/v1",
        "http://169.254.7.7:8443/fed/v1",
        "http://[fd00::1]:8443/fed/v1",
        "http://[2001:db8::1]:8443/fed/v1",
    )


def test_addresses_are_capped() -> None:
    advert = parse_advert(txt(), [f"10.0.1.{i}" for i in range(1, 100)], PORT)
    assert advert is not None
    assert len(advert.urls) == MAX_ADDRESSES


# --- hostile adverts ---

BAD = [
    (without(b"id"), "id: missing"),
    (with_value(b"id", None), "id: missing"),
    (with_value(b"id", PEER.hex().upper().encode()), "id: malformed"),
    (with_value(b"id", PEER.hex()[:62].encode()), "id: malformed"),
    (with_value(b"id", PEER.hex().encode() + b"00"), "id: malformed"),
    (with_value(b"id", b"zz" + PEER.hex()[2:].encode()), "id: malformed"),
    (with_value(b"id", b" " + PEER.hex()[1:].encode()), "id: malformed"),
    (with_value(b"id", PEER.hex().encode() + b"\n"), "id: malformed"),
    (without(b"net"), "net: missing"),
    (with_value(b"net", NET.hex()[:-2].encode()), "net: malformed"),
    (with_value(b"net", b"x" * 100_000), "net: malformed"),
    (without(b"fp"), "fp: missing"),
    (with_value(b"fp", protocol.fingerprint(OURS).encode()), "fp: does not match"),
    (with_value(b"fp", protocol.fingerprint(PEER).encode() + b" "), "fp: malformed"),
    (with_value(b"fp", b"\xd9\xa1" * 10), "fp: malformed"),
    (without(b"v"), "v: missing"),
    (with_value(b"v", b"1.0"), "v: malformed"),
    (with_value(b"v", b"-1"), "v: malformed"),
    (with_value(b"v", b"01"), "v: malformed"),
    (with_value(b"v", b"one"), "v: malformed"),
    (with_value(b"v", b"1" * 4301), "v: malformed"),  # int() would refuse (or take time)
    (with_value(b"v", "١".encode()), "v: malformed"),  # Arabic-Indic digit: int() takes it
    (without(b"api"), "api: missing"),
    (with_value(b"api", b"fed/v1"), "api: malformed"),
    (with_value(b"api", b"/fed v1"), "api: malformed"),
    (with_value(b"api", b"/fed?x=1"), "api: malformed"),
    (with_value(b"api", b"/fed#x"), "api: malformed"),
    (with_value(b"api", b"/@evil"), "api: malformed"),
    (with_value(b"api", b"/%2e%2e"), "api: malformed"),
    (with_value(b"api", b"/" + b"a" * 64), "api: malformed"),
]


@pytest.mark.parametrize(("properties", "reason"), BAD)
def test_hostile_txt_is_dropped_with_a_reason(
    properties: dict[bytes, bytes | None], reason: str
) -> None:
    assert parse_advert(properties, ["10.0.0.2"], PORT) is None
    with pytest.raises(ValueError, match=reason):
        _parse(properties, ["10.0.0.2"], PORT)


@pytest.mark.parametrize("port", [None, 0, -1, 65536])
def test_bad_port_is_dropped(port: int | None) -> None:
    with pytest.raises(ValueError, match="port"):
        _parse(txt(), ["10.0.0.2"], port)


@pytest.mark.parametrize("addresses", [[], ["127.0.0.1", "fe80::2", "::"], ["host.local"]])
def test_advert_without_usable_address_is_dropped(addresses: list[str]) -> None:
    with pytest.raises(ValueError, match="no usable address"):
        _parse(txt(), addresses, PORT)


KEYS = st.sampled_from([b"id", b"fp", b"net", b"v", b"api"]) | st.binary(max_size=12)
VALUES = st.none() | st.binary(max_size=80) | st.sampled_from(list(txt().values()))
ADDRESSES = st.lists(st.ip_addresses().map(str) | st.text(max_size=40), max_size=20)


@given(
    properties=st.dictionaries(KEYS, VALUES, max_size=8),
    addresses=ADDRESSES,
    port=st.none() | st.integers(min_value=-(2**70), max_value=2**70),
)
def test_parse_never_raises_on_arbitrary_input(
    properties: dict[bytes, bytes | None], addresses: list[str], port: int | None
) -> None:
    advert = parse_advert(properties, addresses, port)
    if advert is not None:  # only a fully consistent advert gets through
        assert advert.fingerprint == protocol.fingerprint(advert.node_id)
        assert 0 < len(advert.urls) <= MAX_ADDRESSES
        assert all(url.startswith("http://") and url.endswith(advert.api) for url in advert.urls)


@given(
    key=st.sampled_from([b"id", b"fp", b"net", b"v", b"api"]),
    value=st.none() | st.binary(max_size=300),
    addresses=ADDRESSES,
)
def test_one_corrupted_field_never_raises(
    key: bytes, value: bytes | None, addresses: list[str]
) -> None:
    advert = parse_advert(with_value(key, value), addresses, PORT)
    if advert is not None:
        assert advert.node_id == PEER
        assert advert.net == NET


def test_advert_checks_itself() -> None:
    good = parse_advert(txt(), ["10.0.0.2"], PORT)
    assert good is not None
    fields = {
        "node_id": good.node_id,
        "fingerprint": good.fingerprint,
        "net": good.net,
        "version": good.version,
        "urls": good.urls,
        "api": good.api,
    }
    for name, value in [
        ("node_id", bytes(31)),
        ("fingerprint", protocol.fingerprint(OURS)),
        ("net", bytes(33)),
        ("version", -1),
        ("urls", ()),
        ("api", "fed"),
    ]:
        with pytest.raises(ValueError):
            Advert(**(fields | {name: value}))  # type: ignore[arg-type]


# --- the rate limit ---


def advert(node_id: bytes = PEER, addresses: tuple[str, ...] = ("10.0.0.2",)) -> Advert:
    parsed = parse_advert(txt(node_id), list(addresses), PORT)
    assert parsed is not None
    return parsed


def test_rate_limit_once_per_interval_unless_addresses_change() -> None:
    clock = FakeMonotonic()
    limit = _ReportLimit(interval_s=REPORT_INTERVAL_S, monotonic=clock)
    assert limit.allow(advert())
    assert not limit.allow(advert())
    assert limit.allow(advert(OURS))  # per node
    clock.now += REPORT_INTERVAL_S - 0.001
    assert not limit.allow(advert())
    assert limit.allow(advert(addresses=("10.0.0.2", "10.0.0.3")))  # new address
    assert not limit.allow(advert(addresses=("10.0.0.3", "10.0.0.2")))  # same, reordered
    clock.now += REPORT_INTERVAL_S
    assert limit.allow(advert(addresses=("10.0.0.2", "10.0.0.3")))


def test_rate_limit_memory_is_bounded() -> None:
    clock = FakeMonotonic()
    limit = _ReportLimit(interval_s=REPORT_INTERVAL_S, monotonic=clock)
    first = advert()
    assert limit.allow(first)
    for i in range(MAX_REMEMBERED):
        node_id = protocol.public_key(protocol.signing_key(i.to_bytes(32, "big")))
        assert limit.allow(advert(node_id))
    assert len(limit._last) == MAX_REMEMBERED
    assert limit.allow(first)  # the oldest was forgotten


# --- what Discovery reports ---


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.found: list[Advert] = []
        self.fail = fail

    async def __call__(self, advert: Advert) -> None:
        self.found.append(advert)
        if self.fail:
            raise RuntimeError("the callback broke")


def discovery(on_found: Recorder, clock: FakeMonotonic | None = None) -> Discovery:
    return Discovery(
        node_id=OURS,
        net=NET,
        port=PORT,
        on_found=on_found,
        monotonic=clock or FakeMonotonic(),
    )


async def test_reports_a_peer_of_our_federation() -> None:
    found = Recorder()
    await discovery(found)._received(txt(), ["10.0.0.2"], PORT)
    assert [a.node_id for a in found.found] == [PEER]
    assert found.found[0].urls == ("http://10.0.0.2:8443/fed/v1",)


async def test_ignores_its_own_advert() -> None:
    found = Recorder()
    await discovery(found)._received(txt(OURS), ["10.0.0.1"], PORT)
    assert found.found == []


async def test_ignores_another_federation(caplog: pytest.LogCaptureFixture) -> None:
    found = Recorder()
    with caplog.at_level(logging.DEBUG, logger="node.federation._discovery"):
        await discovery(found)._received(txt(net=OTHER_NET), ["10.0.0.2"], PORT)
    assert found.found == []
    assert [(r.levelno, getattr(r, "event", None)) for r in caplog.records] == [
        (logging.DEBUG, "discovery.other_net")
    ]
    assert caplog.records[0].getMessage() == "another federation"


async def test_invalid_advert_logged_without_its_content(caplog: pytest.LogCaptureFixture) -> None:
    found = Recorder()
    hostile = with_value(b"api", b"/\x1b[2J<script>")
    with caplog.at_level(logging.DEBUG, logger="node.federation._discovery"):
        await discovery(found)._received(hostile, ["10.9.8.7"], PORT)
    assert found.found == []
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert getattr(record, "event", None) == "discovery.invalid"
    assert getattr(record, "reason", None) == "api: malformed"
    assert "script" not in caplog.text
    assert "10.9.8.7" not in caplog.text  # logs never carry addresses


async def test_reports_are_rate_limited() -> None:
    found, clock = Recorder(), FakeMonotonic()
    node = discovery(found, clock)
    for _ in range(3):
        await node._received(txt(), ["10.0.0.2"], PORT)
    assert len(found.found) == 1
    await node._received(txt(), ["10.0.0.5"], PORT)  # moved: reported at once
    assert len(found.found) == 2
    clock.now += REPORT_INTERVAL_S
    await node._received(txt(), ["10.0.0.5"], PORT)
    assert len(found.found) == 3


async def test_a_failing_callback_does_not_stop_discovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    found = Recorder(fail=True)
    node = discovery(found)
    await node._received(txt(), ["10.0.0.2"], PORT)
    await node._received(
        txt(protocol.public_key(protocol.signing_key(bytes(32)))), ["10.0.0.3"], PORT
    )
    assert len(found.found) == 2
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("discovery.on_found_failed") == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"node_id": bytes(31)}, "32 bytes"),
        ({"net": bytes(31)}, "federation id"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"api_path": "fed"}, "API path"),
        ({"api_path": "/fed?x"}, "API path"),
    ],
)
def test_constructor_rejects_bad_arguments(change: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"node_id": OURS, "net": NET, "port": PORT}
    with pytest.raises(ValueError, match=message):
        Discovery(**(arguments | change), on_found=Recorder())  # type: ignore[arg-type]


async def test_stop_is_idempotent_and_callbacks_after_stop_are_ignored() -> None:
    node = discovery(Recorder())
    await node.stop()
    await node.stop()
    node._on_state_change(None, SERVICE_TYPE, "x." + SERVICE_TYPE, None)  # type: ignore[arg-type]
    assert node._pending == {}
