"""``watan backup`` and ``watan restore``: files, databases and clean-up around the
archive format (``_format``) and its records (``_tables``)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Final

import protocol

from .._files import write_private_file
from ..audit import AuditLog, VerifyReport
from ..clock import Clock
from ..config import ConfigError, load_config, write_config
from ..daemon import SQLITE_FILE, NodeError, open_node
from ..identity import IdentityError, load_identity
from ..storage import Database, FeedStore, StorageError
from ._format import (
    PRODUCTION_KDF,
    SALT_BYTES,
    ArchiveWriter,
    BackupError,
    KdfParams,
    derive_key,
    open_archive,
)
from ._tables import FILES, dump_txn, load_txn, walk, watan_tables_txn

__all__ = [
    "MIN_PASSPHRASE_CHARS",
    "BackupResult",
    "RestoreResult",
    "backup_node",
    "read_passphrase",
    "restore_node",
]

MIN_PASSPHRASE_CHARS: Final = 12
#: Rows per database query while dumping, and per INSERT while restoring.
BATCH_ROWS: Final = 500
#: Tables whose rows a restore drops: a restored node does not honour old logins.
DROPPED_ON_RESTORE: Final = frozenset({"sessions"})


def read_passphrase(path: Path, *, for_backup: bool) -> bytes:
    """The passphrase in ``path``: its first line without the line ending, NFC.

    Raises:
        BackupError: unreadable, not UTF-8, empty, or (for a new backup) shorter than
            ``MIN_PASSPHRASE_CHARS`` characters.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BackupError(f"cannot read passphrase file {path}: {error.strerror}") from None
    try:
        line = raw.decode("utf-8").split("\n", 1)[0].removesuffix("\r")
    except UnicodeDecodeError:
        raise BackupError(f"passphrase file {path} is not UTF-8 text") from None
    line = unicodedata.normalize("NFC", line)
    if not line:
        raise BackupError(f"passphrase file {path} is empty (the first line is used)")
    if for_backup and len(line) < MIN_PASSPHRASE_CHARS:
        raise BackupError(
            f"the passphrase in {path} is shorter than {MIN_PASSPHRASE_CHARS} characters"
        )
    return line.encode("utf-8")


def _version() -> str:
    try:
        return package_metadata.version("watan")
    except package_metadata.PackageNotFoundError:
        return "0+source"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupResult:
    path: Path
    node_id: bytes
    encrypted: bool
    size: int
    rows: dict[str, int]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def backup_node(
    data_dir: Path,
    out: Path,
    *,
    clock: Clock,
    passphrase: bytes | None = None,
    force: bool = False,
    kdf: KdfParams = PRODUCTION_KDF,
    batch_rows: int = BATCH_ROWS,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> BackupResult:
    """Write a consistent snapshot of the node in ``data_dir`` to ``out`` (mode 0600),
    while the node runs: every table read in one snapshot transaction, streamed.

    ``out`` appears complete or not at all (temporary file, fsync, rename).

    Raises:
        BackupError: not a node directory, unreadable keys, an unreachable database,
            ``out`` exists (without ``force``) or cannot be written.
    """
    if out.is_dir():
        raise BackupError(f"{out} is a directory; give the backup file's name")
    if out.exists() and not force:
        raise BackupError(f"{out} exists; choose another name or use --force to replace it")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} does not exist")
    try:
        config, db = await open_node(data_dir)
    except NodeError as error:
        raise BackupError(str(error)) from None
    try:
        return await _write_backup(
            data_dir, out, config.node_id, db, clock, passphrase, force, kdf, batch_rows,
            random_bytes,
        )  # fmt: skip
    finally:
        await db.close()


async def _write_backup(
    data_dir: Path,
    out: Path,
    node_id: bytes,
    db: Database,
    clock: Clock,
    passphrase: bytes | None,
    force: bool,
    kdf: KdfParams,
    batch_rows: int,
    random_bytes: Callable[[int], bytes],
) -> BackupResult:
    try:
        if load_identity(data_dir).node_id != node_id:
            raise BackupError(f"{data_dir}/node.json belongs to another node than its keys")
        files = {path: (data_dir / path).read_bytes() for path in FILES}
    except IdentityError as error:
        raise BackupError(str(error)) from None
    except OSError as error:
        raise BackupError(f"cannot read {error.filename}: {error.strerror}") from None
    key, salt = None, b""
    if passphrase is not None:
        salt = random_bytes(SALT_BYTES)
        key = await asyncio.to_thread(derive_key, passphrase, salt, kdf)
    header = {
        "node_id": node_id,
        "created_ms": clock.now_ms(),
        "source_backend": db.backend,
        "watan_version": _version(),
    }
    temporary: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        temporary = Path(name)
        with os.fdopen(fd, "wb") as fh:
            writer = ArchiveWriter(fh, key=key, salt=salt, kdf=kdf)
            rows = await db.snapshot(
                dump_txn, writer, header=header, files=files, batch_rows=batch_rows
            )
            fh.flush()
            os.fsync(fh.fileno())
        size = temporary.stat().st_size
        if force:
            os.replace(temporary, out)
        else:
            os.link(temporary, out)
        _fsync_dir(out.parent)
    except StorageError as error:
        raise BackupError(f"cannot read the database: {error.message}") from None
    except FileExistsError:
        raise BackupError(f"{out} exists; choose another name or use --force") from None
    except OSError as error:
        raise BackupError(f"cannot write {out}: {error.strerror}") from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    return BackupResult(path=out, node_id=node_id, encrypted=key is not None, size=size, rows=rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreResult:
    node_id: bytes
    fingerprint: str
    revision: str
    rows: dict[str, int]  # as restored (sessions: 0)
    sessions_dropped: int
    audit: VerifyReport


def _check_target(data_dir: Path) -> bool:
    """True if ``data_dir`` must be created (it does not exist)."""
    if not data_dir.exists():
        return True
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir} exists and is not a directory")
    try:
        empty = not any(data_dir.iterdir())
    except OSError as error:
        raise BackupError(f"cannot read {data_dir}: {error.strerror}") from None
    if not empty:
        raise BackupError(f"{data_dir} is not empty; restore into a new or empty directory")
    return False


def _clean(data_dir: Path, created: bool) -> None:
    if created:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for child in data_dir.iterdir() if data_dir.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _check_files(files: dict[str, bytes], node_id: bytes) -> None:
    try:
        seed = bytes.fromhex(files["keys/signing.key"].decode("ascii").strip())
        secret = bytes.fromhex(files["keys/encryption.key"].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        seed = secret = b""
    if len(seed) != 32 or len(secret) != 32:
        raise BackupError("the archive's key files are damaged")
    if protocol.public_key(protocol.signing_key(seed)) != node_id:
        raise BackupError("the archive's signing key is not its node's key")
    try:
        config = json.loads(files["node.json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        config = None
    if not isinstance(config, dict) or config.get("node_id") != node_id.hex():
        raise BackupError("the archive's node.json is damaged or belongs to another node")


def _write_files(data_dir: Path, files: dict[str, bytes], database_url: str | None) -> None:
    keys = data_dir / "keys"
    keys.mkdir(mode=0o700)
    os.chmod(keys, 0o700)
    for path in FILES:  # the keys first, node.json last (as ``watan up`` does)
        write_private_file(data_dir / path, files[path], overwrite=False)
    config = load_config(data_dir)
    if config.database_url != database_url:
        write_config(data_dir, replace(config, database_url=database_url))


async def _check_restored(data_dir: Path) -> tuple[str, str]:
    """Open the restored node as ``watan up`` would; returns (fingerprint, revision)."""
    try:
        config, db = await open_node(data_dir)
    except NodeError as error:
        raise BackupError(str(error)) from None
    try:
        identity = load_identity(data_dir)
        if identity.node_id != config.node_id:
            raise BackupError("the restored node.json belongs to another node than its keys")
        await db.ping()
        revision = await db.current_revision()
        if revision != Database.head_revision():
            raise BackupError(f"the restored database is at revision {revision}, not head")
        if await FeedStore(db, own=config.node_id).head(config.node_id) is None:
            raise BackupError("the restored database does not hold the node's own feed")
    finally:
        await db.close()
    return identity.fingerprint, revision


async def restore_node(
    archive: Path,
    data_dir: Path,
    *,
    passphrase: bytes | None = None,
    database_url: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> RestoreResult:
    """Restore ``archive`` into ``data_dir`` (absent or empty) and its database.

    The whole archive is read and checked first (chunk tags, checksums, counts);
    then, in one database transaction, the schema is created at the backup's
    revision, the rows loaded (checked again as they stream) and the schema migrated
    to head; then the keys (0600, in a 0700 ``keys/``) and ``node.json`` (its
    ``database_url`` set to ``database_url``: None means SQLite in ``data_dir``) are
    written, and the node is opened to check it. Session rows are dropped: a restored
    node does not honour logins made before the backup.

    A broken audit chain is restored as it was and reported in the result (the
    archive's checksums show it was broken before the backup was taken).

    Raises:
        BackupError: ``data_dir`` not empty, the database not empty or unreachable,
            a wrong passphrase, a damaged, truncated or foreign archive. ``data_dir``
            is then left as it was, and the database empty.
    """
    created = _check_target(data_dir)
    opened = await asyncio.to_thread(open_archive, archive, passphrase)
    contents = await asyncio.to_thread(walk, opened)
    node_id = contents.header["node_id"]
    _check_files(contents.files, node_id)
    revision = contents.header["schema_revision"]
    if not Database.knows_revision(revision):
        raise BackupError(
            f"the backup's schema revision {revision} is unknown to this watan (made by a "
            "newer version?); restore it with that version or newer"
        )
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"cannot create {data_dir}: {error.strerror}") from None
    url = database_url or f"sqlite:///{(data_dir / SQLITE_FILE).absolute()}"
    db: Database | None = None
    try:
        db = Database.from_url(url)
        await db.ping()
        if found := await db.read(watan_tables_txn):
            raise BackupError(
                f"the target database already holds Watan tables ({', '.join(found)}); "
                "restore only into an empty database"
            )
        loaded = await db.load(revision, load_txn, opened, revision, DROPPED_ON_RESTORE, batch_rows)
        if loaded.header != contents.header or loaded.rows != contents.rows:
            raise BackupError("the archive changed while it was being restored")
        audit = await AuditLog(db).verify()
        await db.close()
        _write_files(data_dir, contents.files, database_url)
        fingerprint, final_revision = await _check_restored(data_dir)
        await _guard_own_feed(data_dir, url)
    except BaseException as error:
        if db is not None:
            await db.close()
        _clean(data_dir, created)
        if isinstance(error, StorageError):
            raise BackupError(f"restore failed: {error.message}") from None
        if isinstance(error, ConfigError | IdentityError):
            raise BackupError(f"restore failed: {error}") from None
        if isinstance(error, OSError):
            raise BackupError(f"restore failed: {error.filename}: {error.strerror}") from None
        raise
    rows = {name: 0 if name in DROPPED_ON_RESTORE else n for name, n in contents.rows.items()}
    return RestoreResult(
        node_id=node_id,
        fingerprint=fingerprint,
        revision=final_revision,
        rows=rows,
        sessions_dropped=sum(contents.rows.get(name, 0) for name in DROPPED_ON_RESTORE),
        audit=audit,
    )


async def _guard_own_feed(data_dir: Path, url: str) -> None:
    """A restored federated node must learn its own feed's head from peers before it
    appends again (it may have appended after the backup: DESIGN §4)."""
    config = load_config(data_dir)
    if config.standalone:
        return
    db = Database.from_url(url)
    try:
        await FeedStore(db, own=config.node_id).set_head_unconfirmed(
            "restored from a backup: waiting to learn this node's feed head from a peer"
        )
    finally:
        await db.close()
