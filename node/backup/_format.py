"""The archive's bytes: prefix, optional encryption, and framed msgpack records.

See the package docstring for the layout. This module knows nothing of databases: it
writes and reads a stream of ``[tag, payload]`` records, and raises
:class:`BackupError` for anything that is not a well-formed, intact archive.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgpack
import nacl.bindings as sodium
import nacl.exceptions
from argon2.low_level import Type, hash_secret_raw

from ..daemon import NodeError

__all__ = [
    "CHUNK_BYTES",
    "FORMAT_VERSION",
    "MAGIC",
    "PRODUCTION_KDF",
    "ArchiveWriter",
    "BackupError",
    "KdfParams",
    "Opened",
    "open_archive",
    "records",
]

MAGIC: Final = b"WATANBAK"
FORMAT_VERSION: Final = 1
#: Plaintext bytes per encrypted chunk.
CHUNK_BYTES: Final = 64 * 1024
#: Largest record (one table row, one file); entries are at most 64 KiB, a fork proof two.
MAX_FRAME: Final = 4 * 1024 * 1024
MAX_HEADER: Final = 4096
SALT_BYTES: Final = 16
CIPHER: Final = "xchacha20poly1305-secretstream"
_PREFIX: Final = struct.Struct(">8sHI")  # magic, format version, header length
_LEN: Final = struct.Struct(">I")
_ABYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_FINAL: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_TAG_MESSAGE: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE


class BackupError(NodeError):
    """A backup or restore failed; one line, no secrets (the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters (stored in the archive's header)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def check(self) -> None:
        # Bounds for reading: a hostile header must not make restore allocate 100 GiB.
        if not (
            1 <= self.time_cost <= 16
            and 1 <= self.parallelism <= 16
            and 8 * self.parallelism <= self.memory_kib <= 4 * 1024 * 1024
        ):
            raise BackupError("the archive's key derivation parameters are out of range")


#: RFC 9106's second recommended option: Argon2id, t=3, 64 MiB, 4 lanes.
PRODUCTION_KDF: Final = KdfParams()


def derive_key(passphrase: bytes, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        passphrase,
        salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES,
        type=Type.ID,
    )


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types for bad input
        raise BackupError("the archive is damaged (a record is not valid msgpack)") from None


class ArchiveWriter:
    """Writes an archive to ``out``: the prefix now, then :meth:`record` by record.

    Args:
        key: None for a clear archive; else the 32-byte key from :func:`derive_key`,
            with the ``salt`` and ``kdf`` it was derived with.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        key: bytes | None = None,
        salt: bytes = b"",
        kdf: KdfParams = PRODUCTION_KDF,
    ) -> None:
        self._out = out
        self._stream = hashlib.sha256()
        self._buffer = bytearray()
        self._state: Any = None
        header: dict[str, Any] = {"encryption": "none"}
        if key is not None:
            self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
            stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
            header = {
                "encryption": CIPHER,
                "kdf": {
                    "name": "argon2id",
                    "time_cost": kdf.time_cost,
                    "memory_kib": kdf.memory_kib,
                    "parallelism": kdf.parallelism,
                    "salt": salt,
                },
                "chunk_bytes": CHUNK_BYTES,
                "stream_header": stream_header,
            }
        packed = _pack(header)
        self._prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(packed)) + packed
        out.write(self._prefix)

    def record(self, tag: str, payload: Any) -> bytes:
        """Append ``[tag, payload]``; returns the frame's bytes (for checksums)."""
        body = _pack([tag, payload])
        if len(body) > MAX_FRAME:
            raise BackupError(f"a {tag} record is larger than {MAX_FRAME} bytes")
        frame = _LEN.pack(len(body)) + body
        self._stream.update(frame)
        self._write(frame)
        return frame

    def stream_digest(self) -> bytes:
        """SHA-256 of every frame written so far."""
        return self._stream.digest()

    def _write(self, data: bytes) -> None:
        if self._state is None:
            self._out.write(data)
            return
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:  # keep a remainder for the final chunk
            self._push(bytes(self._buffer[:CHUNK_BYTES]), _TAG_MESSAGE)
            del self._buffer[:CHUNK_BYTES]

    def _push(self, plain: bytes, tag: int) -> None:
        sealed = sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, plain, self._prefix, tag
        )
        self._out.write(_LEN.pack(len(sealed)) + sealed)

    def finish(self) -> None:
        """Seal the last chunk with the FINAL tag (truncation is then detectable)."""
        if self._state is not None:
            self._push(bytes(self._buffer), _TAG_FINAL)
            self._buffer.clear()


@dataclass(frozen=True, slots=True)
class Opened:
    """An archive whose prefix was read and whose key (if any) was derived."""

    path: Path
    prefix: bytes
    header: dict[str, Any]
    key: bytes | None


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise BackupError("the archive is truncated")
    return data


def _read_prefix(fh: BinaryIO) -> tuple[bytes, dict[str, Any]]:
    raw = fh.read(_PREFIX.size)
    if len(raw) < _PREFIX.size or raw[:8] != MAGIC:
        raise BackupError("not a Watan backup (wrong magic bytes)")
    _magic, version, length = _PREFIX.unpack(raw)
    if version != FORMAT_VERSION:
        raise BackupError(
            f"backup format version {version} is not supported (this watan reads "
            f"version {FORMAT_VERSION})"
        )
    if length > MAX_HEADER:
        raise BackupError("the archive is damaged (header too long)")
    packed = _read_exact(fh, length)
    header = _unpack(packed)
    if not isinstance(header, dict) or header.get("encryption") not in ("none", CIPHER):
        raise BackupError("the archive is damaged (unknown header)")
    return raw + packed, header


def _kdf_of(header: dict[str, Any]) -> tuple[KdfParams, bytes]:
    kdf = header.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
        raise BackupError("the archive is damaged (bad encryption header)")
    numbers = [kdf.get(name) for name in ("time_cost", "memory_kib", "parallelism")]
    salt, stream_header = kdf.get("salt"), header.get("stream_header")
    if (
        not all(type(n) is int for n in numbers)
        or type(salt) is not bytes
        or len(salt) != SALT_BYTES
        or header.get("chunk_bytes") != CHUNK_BYTES
        or type(stream_header) is not bytes
        or len(stream_header) != sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
    ):
        raise BackupError("the archive is damaged (bad encryption header)")
    params = KdfParams(kdf["time_cost"], kdf["memory_kib"], kdf["parallelism"])
    params.check()
    return params, salt


def open_archive(path: Path, passphrase: bytes | None) -> Opened:
    """Read the archive's prefix and derive its key (the slow step, done once).

    Raises:
        BackupError: unreadable, not an archive, another version, or a passphrase
            given for a clear archive / missing for an encrypted one.
    """
    try:
        with path.open("rb") as fh:
            prefix, header = _read_prefix(fh)
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from None
    if header["encryption"] == "none":
        if passphrase is not None:
            raise BackupError(f"{path} is not encrypted; leave out --passphrase-file")
        return Opened(path, prefix, header, None)
    if passphrase is None:
        raise BackupError(f"{path} is encrypted; give its passphrase with --passphrase-file")
    params, salt = _kdf_of(header)
    return Opened(path, prefix, header, derive_key(passphrase, salt, params))


def _plain_chunks(fh: BinaryIO, opened: Opened) -> Iterator[bytes]:
    if opened.key is None:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk
        return
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(
            state, opened.header["stream_header"], opened.key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise BackupError("the archive is damaged (bad stream header)") from None
    first = True
    while True:
        raw = fh.read(_LEN.size)
        if len(raw) < _LEN.size:
            raise BackupError("the archive is truncated (its final chunk is missing)")
        (length,) = _LEN.unpack(raw)
        if not _ABYTES <= length <= CHUNK_BYTES + _ABYTES:
            raise BackupError("the archive is damaged (bad chunk length)")
        sealed = _read_exact(fh, length)
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                state, sealed, opened.prefix
            )
        except (nacl.exceptions.CryptoError, ValueError):
            if first:
                raise BackupError(
                    "cannot decrypt: wrong passphrase, or a damaged archive"
                ) from None
            raise BackupError("the archive is damaged (a chunk fails authentication)") from None
        first = False
        yield plain
        if tag == _TAG_FINAL:
            if fh.read(1):
                raise BackupError("the archive is damaged (data after its final chunk)")
            return
        if tag != _TAG_MESSAGE:
            raise BackupError("the archive is damaged (unexpected chunk tag)")


def records(opened: Opened) -> Iterator[tuple[str, Any, bytes]]:
    """Every ``(tag, payload, frame)`` of the archive, decrypted and authenticated
    chunk by chunk, in order, with bounded memory. The caller checks the grammar and
    checksums (a clear archive is protected by its checksums alone).

    Raises:
        BackupError: unreadable, damaged, truncated, or a wrong passphrase.
    """
    try:
        with opened.path.open("rb") as fh:
            fh.seek(len(opened.prefix))
            buffer = bytearray()
            for chunk in _plain_chunks(fh, opened):
                buffer += chunk
                while len(buffer) >= _LEN.size:
                    (length,) = _LEN.unpack_from(buffer)
                    if length > MAX_FRAME:
                        raise BackupError("the archive is damaged (a record is too long)")
                    if len(buffer) < _LEN.size + length:
                        break
                    frame = bytes(buffer[: _LEN.size + length])
                    del buffer[: _LEN.size + length]
                    value = _unpack(frame[_LEN.size :])
                    if not (isinstance(value, list) and len(value) == 2):
                        raise BackupError("the archive is damaged (a record is not [tag, value])")
                    if not isinstance(value[0], str):
                        raise BackupError("the archive is damaged (a record has no tag)")
                    yield value[0], value[1], frame
            if buffer:
                raise BackupError("the archive is truncated or damaged (a record is cut off)")
    except OSError as error:
        raise BackupError(f"cannot read {opened.path}: {error.strerror}") from None
