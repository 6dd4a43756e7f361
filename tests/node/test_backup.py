"""``watan backup`` / ``watan restore``: round trips on both backends and across them,
with and without a passphrase, a snapshot taken while writers run, and every way a
damaged archive or a wrong target is refused (leaving nothing behind)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

import protocol
from node.accounts import AccountError, AccountService, Role
from node.backup import (
    FILES,
    FORMAT_VERSION,
    MAGIC,
    PRODUCTION_KDF,
    BackupError,
    KdfParams,
    backup_node,
    read_passphrase,
    restore_node,
)
from node.backup._format import ArchiveWriter, open_archive, records
from node.backup._tables import walk, watan_tables_txn
from node.cli import main
from node.clock import FakeClock
from node.config import load_config
from node.daemon import FIRST_PASSWORD_FILE, Node, init_node
from node.storage import Database
from node.storage._schema import audit_head, audit_log, entries, feeds, metadata
from protocol import Entry, FeedHead

from .conftest import NOW, PEER_KEY, _drop_postgres_database, _postgres_database

CHEAP = PasswordHasher.from_parameters(CHEAPEST)
#: Argon2id at its cheapest for tests; the production parameters are checked once.
CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = b"correct horse battery staple"
NEW_PASSWORD = "a much longer passphrase 1"
KIND = "test.note/1"


@pytest.fixture
async def postgres() -> AsyncIterator[Callable[[], Any]]:
    """Make fresh PostgreSQL databases on demand (dropped after the test)."""
    names: list[str] = []

    async def make() -> str:
        name = f"watan_test_{secrets.token_hex(6)}"
        url = await _postgres_database(name)
        names.append(name)
        return url

    try:
        yield make
    finally:
        for name in names:
            await _drop_postgres_database(name)


async def _url(backend: str, postgres: Callable[[], Any]) -> str | None:
    return None if backend == "sqlite" else await postgres()


async def make_node(data: Path, url: str | None) -> Node:
    node, created = await init_node(data, clock=FakeClock(NOW), database_url=url)
    assert created
    return node


def own(node: Node, content: dict[str, Any], now_ms: int) -> Callable[[FeedHead | None], Entry]:
    """A pure ``make`` for ``append_own``: the node's next entry."""
    key, net = node.identity.signing_key, node.config.net

    def make(head: FeedHead | None) -> Entry:
        return protocol.append(head, content, kind=KIND, key=key, net=net, now_ms=now_ms)

    return make


async def populate(node: Node, *, audit_rows: int = 5) -> None:
    """Entries (own, a peer's, a fork), accounts (one locked), sessions, audit rows."""
    net = node.config.net
    for n in range(3):
        await node.feeds.append_own(
            own(node, {"n": n, "blob": bytes(range(256))}, NOW + n), now_ms=NOW + n
        )
    head = None
    peer = []
    for n in range(3):
        entry = protocol.append(head, {"n": n}, kind=KIND, key=PEER_KEY, net=net, now_ms=NOW)
        head = protocol.head_after(head, entry)
        peer.append(entry)
    for entry in peer[:2]:
        await node.feeds.ingest(entry.wire, net=net, now_ms=NOW)
    other = protocol.append(
        protocol.head_after(None, peer[0]), {"n": 99}, kind=KIND, key=PEER_KEY, net=net, now_ms=NOW
    )
    assert (await node.feeds.ingest(other.wire, net=net, now_ms=NOW + 5)).status == "fork"
    accounts = AccountService(node.db, audit=node.audit, hasher=CHEAP)
    admin = await accounts.store.by_username("admin")
    assert admin is not None and node.first_password is not None
    admin = await accounts.change_password(
        admin, node.first_password, NEW_PASSWORD, now_ms=NOW + 10
    )
    await accounts.create_account(
        admin,
        username="worker1",
        display_name="عاملة الحالة",
        role=Role.CASE_WORKER,
        random_bytes=secrets.token_bytes,
        now_ms=NOW + 20,
    )
    for _ in range(5):  # locks the account: locked_until_ms is set
        with pytest.raises(AccountError):
            await accounts.authenticate("worker1", "wrong password!", now_ms=NOW + 30, source="web")
    await accounts.start_session(admin, now_ms=NOW + 40, random_bytes=secrets.token_bytes)
    for i in range(audit_rows):
        await node.audit.record(None, "test.row", f"n:{i}", {"i": i, "ok": True}, now_ms=NOW + i)


def _dump_txn(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in metadata.sorted_tables:
        rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
        out[table.name] = [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows
        ]
    return out


async def dump(data: Path) -> dict[str, list[tuple[Any, ...]]]:
    config = load_config(data)
    url = config.database_url or f"sqlite:///{(data / 'watan.db').absolute()}"
    db = Database.from_url(url)
    try:
        return await db.read(_dump_txn)
    finally:
        await db.close()


async def check_restored(source: Path, target: Path, url: str | None) -> None:
    """Every row equal (sessions dropped), keys byte-identical 0600, node.json equal but
    for database_url, and the restored node opens, verifies and creates accounts."""
    before, after = await dump(source), await dump(target)
    assert before["sessions"] and after["sessions"] == []
    for name in before:
        if name != "sessions":
            assert after[name] == before[name], name
    for name in ("signing.key", "encryption.key"):
        path = target / "keys" / name
        assert path.read_bytes() == (source / "keys" / name).read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "node.json").stat().st_mode) == 0o600
    assert not (target / FIRST_PASSWORD_FILE).exists()
    old = json.loads((source / "node.json").read_text())
    new = json.loads((target / "node.json").read_text())
    assert new.pop("database_url") == url
    old.pop("database_url")
    assert new == old
    node, created = await init_node(target, clock=FakeClock(NOW + 100))
    try:
        assert not created
        assert (await node.audit.verify()).ok
        admin = await node.accounts.store.by_username("admin")
        assert admin is not None
        accounts = AccountService(node.db, audit=node.audit, hasher=CHEAP)
        made, _ = await accounts.create_account(  # ids continue (PostgreSQL sequences)
            admin,
            username="worker2",
            display_name="Worker",
            role=Role.AUDITOR,
            random_bytes=secrets.token_bytes,
            now_ms=NOW + 100,
        )
        assert made.id == max(row[0] for row in before["accounts"]) + 1
    finally:
        await node.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "encrypted"])
async def test_round_trip(
    tmp_path: Path, backend: str, encrypted: bool, postgres: Callable[[], Any]
) -> None:
    source = tmp_path / "node"
    node = await make_node(source, await _url(backend, postgres))
    await populate(node)
    await node.close()
    passphrase = PASSPHRASE if encrypted else None
    archive = tmp_path / "node.wbak"
    made = await backup_node(
        source, archive, clock=FakeClock(NOW), passphrase=passphrase, kdf=CHEAP_KDF
    )
    assert made.encrypted == encrypted and made.size == archive.stat().st_size
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert made.rows["sessions"] == 1 and made.rows["forks"] == 1
    target_url = await _url(backend, postgres)
    target = tmp_path / "restored"
    result = await restore_node(archive, target, passphrase=passphrase, database_url=target_url)
    assert result.node_id == made.node_id and result.audit.ok
    assert result.sessions_dropped == 1 and result.rows["sessions"] == 0
    assert result.rows["entries"] == made.rows["entries"] == 6
    await check_restored(source, target, target_url)


@pytest.mark.parametrize("direction", ["postgresql-to-sqlite", "sqlite-to-postgresql"])
async def test_round_trip_across_backends(
    tmp_path: Path, direction: str, postgres: Callable[[], Any]
) -> None:
    source_backend, _, target_backend = direction.split("-")
    source = tmp_path / "node"
    node = await make_node(source, await _url(source_backend, postgres))
    await populate(node)
    await node.close()
    archive = tmp_path / "node.wbak"
    await backup_node(source, archive, clock=FakeClock(NOW), passphrase=PASSPHRASE, kdf=CHEAP_KDF)
    target_url = await _url(target_backend, postgres)
    target = tmp_path / "restored"
    await restore_node(archive, target, passphrase=PASSPHRASE, database_url=target_url)
    await check_restored(source, target, target_url)


def _consistency_txn(conn: Connection) -> None:
    for head in conn.execute(select(feeds)).all():
        top = conn.execute(
            select(func.max(entries.c.seq)).where(entries.c.author == head.author)
        ).scalar()
        entry_id = conn.execute(
            select(entries.c.id).where(entries.c.author == head.author, entries.c.seq == head.seq)
        ).scalar()
        assert entry_id is not None
        assert (head.seq, bytes(head.id)) == (top, bytes(entry_id))
    top = conn.execute(select(func.max(audit_log.c.seq))).scalar()
    assert conn.execute(select(audit_head.c.seq)).scalar() == top


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_backup_while_the_node_writes_is_consistent(
    tmp_path: Path, backend: str, postgres: Callable[[], Any]
) -> None:
    source = tmp_path / "node"
    node = await make_node(source, await _url(backend, postgres))
    await populate(node, audit_rows=40)
    in_backup = asyncio.Event()
    stop = asyncio.Event()
    during = 0

    async def writer() -> None:
        nonlocal during
        n = 100
        while not stop.is_set():
            n += 1
            await node.feeds.append_own(own(node, {"n": n}, NOW + n), now_ms=NOW + n)
            await node.audit.record(None, "test.write", None, {"n": n}, now_ms=NOW + n)
            if in_backup.is_set():
                during += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.05)
        in_backup.set()
        archive = tmp_path / "node.wbak"
        made = await backup_node(source, archive, clock=FakeClock(NOW), batch_rows=2)
        in_backup.clear()
    finally:
        stop.set()
        await task
        await node.close()
    assert during > 0, "the writer never ran during the backup"
    target = tmp_path / "restored"
    result = await restore_node(archive, target)
    assert result.audit.ok and result.rows["audit_log"] == made.rows["audit_log"]
    restored = Database.from_url(f"sqlite:///{target / 'watan.db'}")
    try:
        await restored.read(_consistency_txn)
    finally:
        await restored.close()


# -- the archive ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small node on SQLite, backed up clear and encrypted (cheap KDF), made once."""
    where = tmp_path_factory.mktemp("archives")

    async def make() -> None:
        node = await make_node(where / "node", None)
        await populate(node, audit_rows=2)
        await node.close()
        for name, passphrase in (("clear", None), ("encrypted", PASSPHRASE)):
            await backup_node(
                where / "node",
                where / f"{name}.wbak",
                clock=FakeClock(NOW),
                passphrase=passphrase,
                kdf=CHEAP_KDF,
            )

    asyncio.run(make())
    return where


@pytest.fixture
def archives(made_archives: Path, tmp_path: Path) -> dict[str, Path]:
    """This test's copies: ``tmp_path / "node"`` (closed) and its two archives."""
    shutil.copytree(made_archives / "node", tmp_path / "node")
    out = {}
    for name in ("clear", "encrypted"):
        out[name] = tmp_path / f"{name}.wbak"
        shutil.copy2(made_archives / f"{name}.wbak", out[name])
    return out


def _passphrase(kind: str) -> bytes | None:
    return PASSPHRASE if kind == "encrypted" else None


async def refused(archive: Path, target: Path, match: str, kind: str = "encrypted") -> None:
    with pytest.raises(BackupError, match=match):
        await restore_node(archive, target, passphrase=_passphrase(kind))
    assert not target.exists()


async def test_the_archive_holds_the_files_but_no_one_time_secret(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    assert (tmp_path / "node" / FIRST_PASSWORD_FILE).exists()
    password = (tmp_path / "node" / FIRST_PASSWORD_FILE).read_bytes().split(b"\n")[1]
    raw = archives["clear"].read_bytes()
    assert raw.startswith(MAGIC) and password not in raw
    contents = walk(open_archive(archives["clear"], None))
    assert tuple(contents.files) == FILES
    assert contents.header["schema_revision"] == Database.head_revision()
    assert contents.header["created_ms"] == NOW
    assert list(contents.rows) == [t.name for t in metadata.sorted_tables]
    # An encrypted archive shows nothing of the node but its magic and KDF header.
    encrypted = archives["encrypted"].read_bytes()
    assert bytes.fromhex(contents.header["node_id"].hex()) not in encrypted
    assert b"signing" not in encrypted


async def test_production_kdf_parameters_are_in_the_header(tmp_path: Path) -> None:
    assert PRODUCTION_KDF == KdfParams(time_cost=3, memory_kib=65536, parallelism=4)
    source = tmp_path / "node"
    await (await make_node(source, None)).close()
    archive = tmp_path / "prod.wbak"
    await backup_node(source, archive, clock=FakeClock(NOW), passphrase=PASSPHRASE)
    header = open_archive(archive, PASSPHRASE).header
    kdf = header["kdf"]
    assert (kdf["name"], kdf["time_cost"], kdf["memory_kib"], kdf["parallelism"]) == (
        "argon2id",
        3,
        65536,
        4,
    )
    assert len(kdf["salt"]) == 16 and header["encryption"] == "xchacha20poly1305-secretstream"
    result = await restore_node(archive, tmp_path / "restored", passphrase=PASSPHRASE)
    assert result.audit.ok


async def test_a_wrong_passphrase_is_refused(tmp_path: Path, archives: dict[str, Path]) -> None:
    with pytest.raises(BackupError, match="wrong passphrase"):
        await restore_node(archives["encrypted"], tmp_path / "t", passphrase=b"not the right one")
    assert not (tmp_path / "t").exists()
    await refused(archives["encrypted"], tmp_path / "t", "is encrypted; give", kind="clear")
    await refused(archives["clear"], tmp_path / "t", "not encrypted", kind="encrypted")


@pytest.mark.parametrize("kind", ["clear", "encrypted"])
async def test_a_truncated_archive_is_refused(
    tmp_path: Path, archives: dict[str, Path], kind: str
) -> None:
    raw = archives[kind].read_bytes()
    for cut in (1, 17, 100, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        damaged = tmp_path / "damaged.wbak"
        damaged.write_bytes(raw[: len(raw) - cut])
        await refused(damaged, tmp_path / "t", "truncated|damaged|magic", kind)
    damaged.write_bytes(raw + b"\x00")
    await refused(damaged, tmp_path / "t", "damaged", kind)


@pytest.mark.parametrize("kind", ["clear", "encrypted"])
async def test_a_flipped_byte_is_refused(
    tmp_path: Path, archives: dict[str, Path], kind: str
) -> None:
    raw = archives[kind].read_bytes()
    positions = sorted({*range(0, len(raw), max(1, len(raw) // 40)), len(raw) - 1, 9, 12})
    for position in positions:
        damaged = tmp_path / "damaged.wbak"
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        damaged.write_bytes(bytes(flipped))
        await refused(
            damaged, tmp_path / "t", "damaged|truncated|magic|version|passphrase|range", kind
        )


async def test_wrong_magic_or_version_is_refused(tmp_path: Path, archives: dict[str, Path]) -> None:
    raw = archives["encrypted"].read_bytes()
    damaged = tmp_path / "damaged.wbak"
    damaged.write_bytes(b"PK\x03\x04" + raw[4:])
    await refused(damaged, tmp_path / "t", "not a Watan backup")
    damaged.write_bytes(raw[:8] + (FORMAT_VERSION + 1).to_bytes(2, "big") + raw[10:])
    await refused(damaged, tmp_path / "t", "format version 2 is not supported")
    damaged.write_bytes(b"")
    await refused(damaged, tmp_path / "t", "not a Watan backup")
    await refused(tmp_path / "missing.wbak", tmp_path / "t", "cannot read")


async def test_a_hostile_kdf_header_is_refused(tmp_path: Path, archives: dict[str, Path]) -> None:
    raw = archives["encrypted"].read_bytes()
    length = int.from_bytes(raw[10:14], "big")
    header = msgpack.unpackb(raw[14 : 14 + length])
    header["kdf"]["memory_kib"] = 64 * 1024 * 1024  # 64 GiB
    packed = msgpack.packb(header, use_bin_type=True)
    damaged = tmp_path / "damaged.wbak"
    damaged.write_bytes(raw[:10] + len(packed).to_bytes(4, "big") + packed + raw[14 + length :])
    await refused(damaged, tmp_path / "t", "out of range")


async def test_a_non_empty_directory_is_refused(tmp_path: Path, archives: dict[str, Path]) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(BackupError, match="is not empty"):
        await restore_node(archives["clear"], target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    # An empty directory is fine, and stays empty when the restore fails.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackupError):
        await restore_node(archives["encrypted"], empty, passphrase=b"wrong passphrase!")
    assert empty.is_dir() and not any(empty.iterdir())
    await restore_node(archives["clear"], empty)
    assert (empty / "node.json").exists()


async def test_a_non_empty_database_is_refused(
    tmp_path: Path, archives: dict[str, Path], postgres: Callable[[], Any]
) -> None:
    url = await postgres()
    await restore_node(archives["clear"], tmp_path / "first", database_url=url)
    before = await dump(tmp_path / "first")
    with pytest.raises(BackupError, match="already holds Watan tables"):
        await restore_node(archives["clear"], tmp_path / "second", database_url=url)
    assert not (tmp_path / "second").exists()
    assert await dump(tmp_path / "first") == before


async def test_a_failed_load_leaves_the_database_empty(
    tmp_path: Path,
    archives: dict[str, Path],
    postgres: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The archive is replaced between the check and the load: the one load
    transaction rolls back, the database stays empty and DIR is removed."""
    url = await postgres()

    def walk_then_damage(opened: Any, sink: Any = None) -> Any:
        contents = walk(opened, sink)
        raw = bytearray(archives["clear"].read_bytes())
        raw[-40] ^= 0x01
        archives["clear"].write_bytes(bytes(raw))
        return contents

    monkeypatch.setattr("node.backup._ops.walk", walk_then_damage)
    with pytest.raises(BackupError, match="damaged"):
        await restore_node(archives["clear"], tmp_path / "t", database_url=url)
    assert not (tmp_path / "t").exists()
    db = Database.from_url(url)
    try:
        assert await db.read(watan_tables_txn) == []
    finally:
        await db.close()


async def test_an_existing_output_needs_force(tmp_path: Path, archives: dict[str, Path]) -> None:
    source = tmp_path / "node"
    existing = archives["clear"]
    before = existing.read_bytes()
    with pytest.raises(BackupError, match="exists"):
        await backup_node(source, existing, clock=FakeClock(NOW))
    assert existing.read_bytes() == before
    await backup_node(source, existing, clock=FakeClock(NOW + 1), force=True)
    assert existing.read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(BackupError, match="not a Watan node directory"):
        await backup_node(tmp_path / "nowhere", tmp_path / "x.wbak", clock=FakeClock(NOW))
    with pytest.raises(BackupError, match="does not exist"):
        await backup_node(source, tmp_path / "no" / "x.wbak", clock=FakeClock(NOW))


def test_passphrase_files(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes("  كلمة سر طويلة جدا  \r\nsecond line\n".encode())
    assert read_passphrase(path, for_backup=True) == "  كلمة سر طويلة جدا  ".encode()
    for content, match in (("", "empty"), ("\nlong enough line", "empty"), ("short\n", "shorter")):
        path.write_text(content)
        with pytest.raises(BackupError, match=match):
            read_passphrase(path, for_backup=True)
    assert read_passphrase(path, for_backup=False) == b"short"  # restore takes any
    path.write_bytes(b"\xff\xfe not utf-8 at all")
    with pytest.raises(BackupError, match="not UTF-8"):
        read_passphrase(path, for_backup=True)
    with pytest.raises(BackupError, match="cannot read"):
        read_passphrase(tmp_path / "missing", for_backup=True)


async def test_the_commands(
    tmp_path: Path, archives: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "node"
    secret = tmp_path / "pass"
    secret.write_text(PASSPHRASE.decode() + "\n")
    out = tmp_path / "cli.wbak"

    async def run(*argv: str) -> int:
        umask = os.umask(0o022)
        os.umask(umask)
        try:
            return await asyncio.to_thread(main, list(argv))
        finally:
            os.umask(umask)

    assert await run("backup", "--data", str(source), "--out", str(out)) == 0
    captured = capsys.readouterr()
    assert "NOT encrypted" in captured.err and "not encrypted" in captured.out
    assert await run("backup", "--data", str(source), "--out", str(out)) == 2
    assert "exists" in capsys.readouterr().err
    args = ["--passphrase-file", str(secret), "--force"]
    assert await run("backup", "--data", str(source), "--out", str(out), *args) == 0
    assert "encrypted" in capsys.readouterr().out
    target = tmp_path / "restored"
    restore = ["restore", "--in", str(out), "--data", str(target)]
    assert await run(*restore) == 2
    assert capsys.readouterr().err.startswith("watan: error: ")
    assert await run(*restore, "--passphrase-file", str(secret)) == 0
    printed = capsys.readouterr().out
    assert "sessions dropped" in printed and "audit log intact" in printed
    assert load_config(target).node_id == load_config(source).node_id
    assert await run(*restore, "--passphrase-file", str(secret)) == 2
    assert "not empty" in capsys.readouterr().err


async def test_a_broken_audit_log_is_restored_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "node"
    node = await make_node(source, None)
    await populate(node, audit_rows=3)

    def tamper(conn: Connection) -> None:
        conn.execute(text("UPDATE audit_log SET details = '{}' WHERE seq = 2"))

    await node.db.write(tamper)
    await node.close()
    archive = tmp_path / "node.wbak"
    await backup_node(source, archive, clock=FakeClock(NOW))
    result = await restore_node(archive, tmp_path / "restored")
    assert (result.audit.ok, result.audit.first_bad_seq) == (False, 2)
    restore = ["restore", "--in", str(archive), "--data", str(tmp_path / "again")]
    umask = os.umask(0o022)
    try:
        assert await asyncio.to_thread(main, restore) == 1
    finally:
        os.umask(umask)
    assert "audit log broken at row 2: row 2 was changed" in capsys.readouterr().err


def rewrite(source: Path, out: Path, *, revision: str, tables: set[str]) -> None:
    """A clear archive as an older (or newer) Watan would write it: another schema
    revision, only some tables; checksums recomputed."""
    with out.open("wb") as fh:
        writer = ArchiveWriter(fh)
        manifest: list[list[Any]] = []
        keep = True
        for tag, payload, _frame in records(open_archive(source, None)):
            if tag == "watan-backup":
                payload["schema_revision"] = revision
            elif tag == "table":
                keep = payload["name"] in tables
                if keep:
                    manifest.append([payload["name"], 0, hashlib.sha256()])
            elif tag == "end":
                tables_ = [[name, n, digest.digest()] for name, n, digest in manifest]
                end = {"files": payload["files"], "tables": tables_}
                writer.record("end", {**end, "sha256": writer.stream_digest()})
                break
            if not keep:
                continue
            frame = writer.record(tag, payload)
            if tag == "row":
                manifest[-1][1] += 1
                manifest[-1][2].update(frame)
        writer.finish()


async def test_an_older_schema_is_restored_then_upgraded(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    """Revision 0001 held only the feed tables: the restore creates that schema, loads
    them, and migrates to head (accounts and audit log empty, the audit head seeded)."""
    old = tmp_path / "old.wbak"
    rewrite(archives["clear"], old, revision="0001", tables={"entries", "feeds", "forks"})
    result = await restore_node(old, tmp_path / "restored")
    assert result.revision == Database.head_revision() and result.audit.ok
    restored = await dump(tmp_path / "restored")
    assert restored["entries"] == (await dump(tmp_path / "node"))["entries"]
    assert restored["accounts"] == [] and restored["audit_head"] == [(1, 0, bytes(32))]


async def test_a_newer_schema_is_refused(tmp_path: Path, archives: dict[str, Path]) -> None:
    newer = tmp_path / "newer.wbak"
    rewrite(archives["clear"], newer, revision="0099", tables=set(metadata.tables))
    await refused(newer, tmp_path / "t", "schema revision 0099 is unknown", kind="clear")
    # The rewriting itself is sound: the same archive at our revision restores.
    same = tmp_path / "same.wbak"
    rewrite(archives["clear"], same, revision=Database.head_revision(), tables=set(metadata.tables))
    assert (await restore_node(same, tmp_path / "t")).audit.ok
