"""Federation genesis and invite tokens (SPEC §12)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocol
from protocol import ErrorCode, LocalProtocolError, RemoteProtocolError

KEY = protocol.signing_key(bytes(range(32)))
OTHER = protocol.signing_key(bytes(range(1, 33)))
NOW = 1_780_000_000_000
URL = "http://10.0.0.5:8470/fed/v1"


def _genesis(name: str = "Basra coordination hub") -> protocol.Genesis:
    return protocol.create_genesis(name, key=KEY, now_ms=NOW)


def _invite(**changes: object) -> protocol.Invite:
    fields: dict[str, object] = {
        "url": URL,
        "node": protocol.public_key(KEY),
        "genesis": _genesis(),
        "secret": bytes(range(32)),
        "expires": NOW + 3_600_000,
    }
    fields.update(changes)
    return protocol.Invite.create(**fields)  # type: ignore[arg-type]


def test_genesis_is_signed_by_its_founder_and_hashes_to_the_net() -> None:
    genesis = _genesis()
    assert genesis.net == hashlib.sha256(genesis.wire).digest()
    assert genesis.founder == protocol.public_key(KEY)
    assert (genesis.name, genesis.ts) == ("Basra coordination hub", NOW)
    assert protocol.parse_genesis(genesis.wire, net=genesis.net) == genesis
    # deterministic: same founder, name and time give the same federation id
    assert _genesis().net == genesis.net
    assert protocol.create_genesis("Other", key=KEY, now_ms=NOW).net != genesis.net


def test_a_genesis_of_another_federation_is_wrong_net() -> None:
    with pytest.raises(RemoteProtocolError) as error:
        protocol.parse_genesis(_genesis().wire, net=bytes(32))
    assert error.value.code is ErrorCode.WRONG_NET


def test_a_tampered_genesis_is_refused() -> None:
    payload, sig = protocol.decode(_genesis().wire)
    forged = protocol.encode([payload, protocol._keys.sign(OTHER, b"x")])
    with pytest.raises(RemoteProtocolError) as error:
        protocol.parse_genesis(forged)
    assert error.value.code is ErrorCode.BAD_SIGNATURE
    for bad, code in (
        (protocol.encode([payload]), ErrorCode.MALFORMED),
        (protocol.encode([payload, sig[:10]]), ErrorCode.WRONG_TYPE),
        (protocol.encode("text"), ErrorCode.MALFORMED),
    ):
        with pytest.raises(RemoteProtocolError) as error:
            protocol.parse_genesis(bad)
        assert error.value.code is code


def test_genesis_version_and_clock_and_name_are_checked() -> None:
    fields = protocol.decode(protocol.decode(_genesis().wire)[0])
    fields["v"] = 2
    payload = protocol.encode(fields)
    wire = protocol.encode([payload, protocol._keys.sign(KEY, protocol.GENESIS_TAG + payload)])
    with pytest.raises(RemoteProtocolError) as error:
        protocol.parse_genesis(wire)
    assert error.value.code is ErrorCode.UNSUPPORTED_VERSION
    with pytest.raises(LocalProtocolError) as local:
        protocol.create_genesis("hub", key=KEY, now_ms=1000)
    assert local.value.code is ErrorCode.CLOCK_UNSET
    for name in ("", "x" * 101, "bad\nname"):
        with pytest.raises(LocalProtocolError):
            protocol.create_genesis(name, key=KEY, now_ms=NOW)


def test_invite_token_round_trips() -> None:
    invite = _invite()
    token = invite.to_token()
    assert token.startswith(protocol.INVITE_PREFIX)
    assert len(token) < protocol.MAX_INVITE_CHARS
    assert protocol.parse_invite("  " + token + "\n") == invite
    assert invite.genesis.net == _genesis().net


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("hello", ErrorCode.MALFORMED),
        (protocol.INVITE_PREFIX + "!!!", ErrorCode.MALFORMED),
        (protocol.INVITE_PREFIX + "YQ==", ErrorCode.MALFORMED),
        (protocol.INVITE_PREFIX + "x" * 3000, ErrorCode.TOO_LARGE),
        (protocol.INVITE_PREFIX + "YR", ErrorCode.NON_CANONICAL),
        (protocol.INVITE_PREFIX + "gA", ErrorCode.MISSING_FIELD),
    ],
)
def test_bad_tokens_are_refused_with_a_code(token: str, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as error:
        protocol.parse_invite(token)
    assert error.value.code is code


def test_invite_fields_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        _invite(url="ftp://example")
    with pytest.raises(LocalProtocolError):
        _invite(secret=b"short")
    with pytest.raises(RemoteProtocolError):
        protocol.parse_invite(12)  # type: ignore[arg-type]
    data = protocol.decode(base64.urlsafe_b64decode(_invite().to_token()[15:] + "=="))
    data["v"] = 7
    token = protocol.INVITE_PREFIX + base64.urlsafe_b64encode(protocol.encode(data)).rstrip(
        b"="
    ).decode("ascii")
    with pytest.raises(RemoteProtocolError) as error:
        protocol.parse_invite(token)
    assert error.value.code is ErrorCode.UNSUPPORTED_VERSION


@given(st.text(max_size=400))
def test_any_text_parses_or_raises_a_protocol_error(text: str) -> None:
    try:
        protocol.parse_invite(protocol.INVITE_PREFIX + text)
    except RemoteProtocolError:
        pass


@given(st.binary(max_size=300))
def test_any_bytes_parse_as_a_genesis_or_raise_a_protocol_error(data: bytes) -> None:
    try:
        protocol.parse_genesis(data)
    except RemoteProtocolError:
        pass
