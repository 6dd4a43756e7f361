"""The node's keys, kept in files that only the node's user can read (DESIGN §6).

``DIR/keys/signing.key`` holds the Ed25519 seed of the node's feed key (its public key
is the node id); ``DIR/keys/encryption.key`` the X25519 secret that sealed messages
are encrypted to (published as ``enc_key`` in the node's profile). Both are 32 random
bytes written as hex, mode 0600, in a 0700 directory. Like OpenSSH, we refuse to use a
key file that others can read: a leaked key lets anyone speak for the NGO.

Writes are crash-safe for boxes that lose power: write a temporary file, fsync it,
rename it into place, fsync the directory. A key is created once and never
overwritten.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import protocol

from ._files import write_private_file

__all__ = ["Identity", "IdentityError", "load_identity", "load_or_create_identity"]

SIGNING_FILE = "signing.key"
ENCRYPTION_FILE = "encryption.key"


class IdentityError(Exception):
    """The key directory or a key file is missing, unsafe or damaged."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The node's keys. ``node_id`` is the Ed25519 public key (the feed's author)."""

    signing_key: protocol.SigningKey
    encryption_secret: bytes

    @property
    def node_id(self) -> bytes:
        return protocol.public_key(self.signing_key)

    @property
    def enc_key(self) -> bytes:
        return protocol.enc_public_key(self.encryption_secret)

    @property
    def fingerprint(self) -> str:
        return protocol.fingerprint(self.node_id)

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return f"Identity(node_id={self.node_id.hex()})"


def load_identity(data_dir: Path) -> Identity:
    """Load the keys of an existing node.

    Raises:
        IdentityError: a file is missing, readable by others, or not 32 hex bytes.
    """
    keys = data_dir / "keys"
    seed = _read_key(keys / SIGNING_FILE)
    secret = _read_key(keys / ENCRYPTION_FILE)
    return Identity(signing_key=protocol.signing_key(seed), encryption_secret=secret)


def load_or_create_identity(
    data_dir: Path, *, random_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> tuple[Identity, bool]:
    """Load the node's keys, creating them on first run.

    Returns:
        The identity, and whether it was created now.

    Raises:
        IdentityError: as :func:`load_identity`; also if only one of the two files
            exists (a damaged data directory is never silently "repaired" with a new
            key, which would make the node someone else).
    """
    keys = data_dir / "keys"
    present = [(keys / name).exists() for name in (SIGNING_FILE, ENCRYPTION_FILE)]
    if all(present):
        return load_identity(data_dir), False
    if any(present):
        raise IdentityError(
            f"{keys} holds only one of {SIGNING_FILE} and {ENCRYPTION_FILE}; restore the "
            "missing one from a backup instead of creating a new identity"
        )
    _make_private_dir(keys)
    for name in (SIGNING_FILE, ENCRYPTION_FILE):
        _write_new_key(keys / name, random_bytes(32))
    return load_identity(data_dir), True


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise IdentityError(f"cannot create {path}: {exc.strerror}") from None


def _write_new_key(path: Path, key: bytes) -> None:
    if len(key) != 32:
        raise IdentityError("a key is 32 bytes")
    try:
        # never overwrite: a replaced key would make the node someone else
        write_private_file(path, key.hex().encode("ascii") + b"\n", overwrite=False)
    except FileExistsError:
        raise IdentityError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise IdentityError(f"cannot write {path}: {exc.strerror}") from None


def _read_key(path: Path) -> bytes:
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(
                f"{path} is accessible by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run: chmod 600 {path}"
            )
        text = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"{path} is missing") from None
    except OSError as exc:
        raise IdentityError(f"cannot read {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise IdentityError(f"{path} does not hold a 32-byte key in hex")
    return key
