"""``oracle.config/1`` and ``oracle.usage/1`` (SPEC §5.9): the field rules each kind
shares with the others are tested in test_entries; here, the rules across fields."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import (
    ErrorCode,
    LocalProtocolError,
    OracleConfig,
    OracleUsage,
    RemoteProtocolError,
    create_entry,
    verify_entry,
)

from .conftest import (
    KEY,
    NET,
    NOW,
    ORACLE_CONFIG_CONTENT,
    ORACLE_USAGE_CONTENT,
    entry_wire,
    raises_code,
)

CONFIG = ORACLE_CONFIG_CONTENT
USAGE = ORACLE_USAGE_CONTENT


def _entry_rejected(content: dict[str, Any], kind: str, code: ErrorCode) -> None:
    with raises_code(RemoteProtocolError, code):
        verify_entry(entry_wire(content=content, kind=kind), net=NET, now_ms=NOW)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"threshold": 4}, ErrorCode.BAD_VALUE),  # more than there are oracles
        ({"threshold": 1}, ErrorCode.BAD_VALUE),  # one oracle alone would see everything
        ({"keys": CONFIG["keys"][:2]}, ErrorCode.BAD_VALUE),  # a share key missing
        ({"oracles": CONFIG["oracles"][:1], "keys": CONFIG["keys"][:1]}, ErrorCode.BAD_VALUE),
        ({"oracles": [CONFIG["oracles"][0]] * 3}, ErrorCode.BAD_VALUE),  # one node twice
        ({"suite": "P256-SHA256"}, ErrorCode.BAD_VALUE),
        ({"epoch": 0}, ErrorCode.BAD_VALUE),
        ({"keys": [b"short"] * 3}, ErrorCode.BAD_VALUE),
    ],
)
def test_config_rules(change: dict[str, Any], code: ErrorCode) -> None:
    content = {**CONFIG, **change}
    _entry_rejected(content, OracleConfig.KIND, code)
    with raises_code(RemoteProtocolError, code):
        OracleConfig.from_content(content)
    with raises_code(LocalProtocolError, code):
        OracleConfig(**content)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"counts": [1]}, ErrorCode.BAD_VALUE),  # one count for two requesters
        ({"counts": [0, 1]}, ErrorCode.BAD_VALUE),  # a requester with no requests is omitted
        ({"counts": []}, ErrorCode.BAD_VALUE),
        ({"counts": "12"}, ErrorCode.WRONG_TYPE),
        ({"counts": [1, True]}, ErrorCode.WRONG_TYPE),
        ({"requesters": list(reversed(USAGE["requesters"]))}, ErrorCode.NON_CANONICAL),
        ({"date": "2026-02-30"}, ErrorCode.BAD_VALUE),
    ],
)
def test_usage_rules(change: dict[str, Any], code: ErrorCode) -> None:
    content = {**USAGE, **change}
    _entry_rejected(content, OracleUsage.KIND, code)
    with raises_code(RemoteProtocolError, code):
        OracleUsage.from_content(content)


def test_equal_counts_are_fine() -> None:
    """Counts repeat (two requesters asked as often): unlike a set, they are not unique."""
    body = OracleUsage(**{**USAGE, "counts": [5, 5]})
    entry = create_entry(key=KEY, net=NET, seq=1, prev=None, ts=NOW, content=body)
    assert verify_entry(entry.wire, net=NET, now_ms=NOW).body == body
