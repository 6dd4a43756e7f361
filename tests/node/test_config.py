"""node.json: round trip, permissions, atomic replacement, clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from node.clock import FakeClock
from node.config import (
    CONFIG_FILE,
    ConfigError,
    NodeConfig,
    load_config,
    standalone_net,
    write_config,
)

from .conftest import AUTHOR, NOW


def _config(**changes: object) -> NodeConfig:
    fields: dict[str, object] = {
        "node_id": AUTHOR,
        "net": standalone_net(AUTHOR),
        "database_url": None,
        "host": "127.0.0.1",
        "port": 8470,
        "created_ms": NOW,
        "profile_provisional": True,
    }
    fields.update(changes)
    return NodeConfig(**fields)  # type: ignore[arg-type]


def test_fake_clock_advances_and_never_goes_back() -> None:
    clock = FakeClock(NOW)
    clock.advance(1500)
    assert clock.now_ms() == NOW + 1500
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_standalone_net_is_domain_separated_sha256() -> None:
    import hashlib

    assert standalone_net(AUTHOR) == hashlib.sha256(b"watan/standalone/v1\x00" + AUTHOR).digest()
    assert standalone_net(AUTHOR) != hashlib.sha256(AUTHOR).digest()


def test_round_trip_and_file_contents(tmp_path: Path) -> None:
    config = _config(database_url="postgresql://u:pw@db/watan")
    write_config(tmp_path, config)
    assert load_config(tmp_path) == config
    path = tmp_path / CONFIG_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["node_id"] == AUTHOR.hex()
    assert data["standalone"] is True
    assert data["profile_provisional"] is True
    assert "pw" not in repr(config)
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / f".{CONFIG_FILE}.tmp").write_text("left by a crash")
    write_config(tmp_path, _config())
    write_config(tmp_path, _config(port=9000))
    assert load_config(tmp_path).port == 9000
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE]


def test_missing_file_says_not_a_node_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Watan node directory"):
        load_config(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).mkdir()  # reading a directory fails even as root
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


@pytest.mark.parametrize("text", ["{", "\xff", "[]", "null"])
def test_invalid_json(tmp_path: Path, text: str) -> None:
    (tmp_path / CONFIG_FILE).write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match="JSON"):
        load_config(tmp_path)


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_wrong_version(tmp_path: Path, version: object) -> None:
    data = _config().to_json()
    data["version"] = version
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="config version"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", True, "port has the wrong type"),
        ("port", 0, "not between"),
        ("node_id", "zz", "node_id is not 32 bytes"),
        ("net", "00" * 32, "derived from its node_id"),
        ("host", None, "host has the wrong type"),
        ("extra", 1, "unknown field"),
    ],
)
def test_invalid_fields(tmp_path: Path, field: str, value: object, message: str) -> None:
    data = _config().to_json()
    data[field] = value
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_missing_field(tmp_path: Path) -> None:
    data = _config().to_json()
    del data["created_ms"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="created_ms is missing"):
        load_config(tmp_path)
