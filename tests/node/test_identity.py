"""Node keys: created once, 0600, crash-safe, never silently replaced."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import protocol
from node.identity import (
    ENCRYPTION_FILE,
    SIGNING_FILE,
    IdentityError,
    load_identity,
    load_or_create_identity,
)


def counter_rng() -> Callable[[int], bytes]:
    calls = iter(range(1, 100))
    return lambda n: bytes([next(calls)]) * n


def test_first_run_creates_private_key_files(tmp_path: Path) -> None:
    identity, created = load_or_create_identity(tmp_path, random_bytes=counter_rng())
    assert created
    keys = tmp_path / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in (SIGNING_FILE, ENCRYPTION_FILE):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert sorted(os.listdir(keys)) == [ENCRYPTION_FILE, SIGNING_FILE]  # no temporaries
    assert identity.node_id == protocol.public_key(protocol.signing_key(b"\x01" * 32))
    assert identity.encryption_secret == b"\x02" * 32
    assert identity.enc_key == protocol.enc_public_key(b"\x02" * 32)
    assert identity.fingerprint == protocol.fingerprint(identity.node_id)


def test_later_runs_load_the_same_identity(tmp_path: Path) -> None:
    first, _ = load_or_create_identity(tmp_path)
    again, created = load_or_create_identity(tmp_path)
    assert not created
    assert again.node_id == first.node_id
    assert again.encryption_secret == first.encryption_secret


def test_repr_never_shows_secrets(tmp_path: Path) -> None:
    identity, _ = load_or_create_identity(tmp_path)
    shown = repr(identity)
    assert identity.node_id.hex() in shown
    assert identity.encryption_secret.hex() not in shown
    assert bytes(identity.signing_key).hex() not in shown


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    path = tmp_path / "keys" / SIGNING_FILE
    os.chmod(path, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_identity(tmp_path)


def test_half_an_identity_is_not_replaced(tmp_path: Path) -> None:
    identity, _ = load_or_create_identity(tmp_path)
    (tmp_path / "keys" / ENCRYPTION_FILE).unlink()
    with pytest.raises(IdentityError, match="restore the missing one"):
        load_or_create_identity(tmp_path)
    # the signing key file is untouched
    assert (tmp_path / "keys" / SIGNING_FILE).read_text().strip() == bytes(
        identity.signing_key
    ).hex()


@pytest.mark.parametrize("content", [b"", b"zz" * 32, b"ab" * 31, "\u0661".encode() * 64])
def test_damaged_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    load_or_create_identity(tmp_path)
    (tmp_path / "keys" / SIGNING_FILE).write_bytes(content)
    with pytest.raises(IdentityError, match="32-byte key"):
        load_identity(tmp_path)


def test_leftover_temporary_from_a_crash_is_cleaned(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / f".{SIGNING_FILE}.tmp").write_bytes(b"half-written")
    identity, created = load_or_create_identity(tmp_path)
    assert created and identity.node_id
    assert sorted(os.listdir(keys)) == [ENCRYPTION_FILE, SIGNING_FILE]


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/watan-cannot-exist")  # even root cannot create here
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    with pytest.raises(IdentityError, match="cannot create"):
        load_or_create_identity(target)
