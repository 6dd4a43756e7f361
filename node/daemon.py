"""``watan up``, ``watan status`` and ``watan db upgrade``: the node's life cycle.

First run of ``watan up --data DIR``: create ``DIR`` (0700), the keys
(:mod:`node.identity`), the database (migrated to the newest schema), the node's first
feed entry (a ``node.profile/1``), and ``DIR/node.json`` last, so that a crash part way
leaves a directory the next run completes rather than a half-made node. Later runs
load the config and keys, upgrade the database (a no-op when current) and serve.

Every failure an operator can fix surfaces as :class:`NodeError`: one line, no
traceback, no database password; the CLI prints it and exits with status 2.

A database outage while the node runs (PostgreSQL restarting, the disk full) is not
fatal: requests fail with 503 UNAVAILABLE or 507 STORAGE_FULL, ``/healthz`` says
which, and everything works again once the database does. ``node.logs``
keeps the background loops from logging a traceback every round meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from argon2 import PasswordHasher

import protocol
from node._files import write_private_file
from node._verifier import Verifier
from node.accounts import FIRST_ADMIN, AccountError, AccountErrorCode, AccountService
from node.ataa import Ataa, ataa_status, build_ataa
from node.audit import AuditLog
from node.clock import Clock
from node.config import (
    CONFIG_FILE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ConfigError,
    NodeConfig,
    load_config,
    standalone_net,
    write_config,
)
from node.federation import (
    FederationError,
    FederationService,
    MessageService,
    NodeLock,
    read_peers,
)
from node.federation._delivery import PeerTransport
from node.federation._discovery import Advert, Discovery, DiscoveryError
from node.identity import Identity, IdentityError, load_or_create_identity
from node.oracle import OracleServer, PseudonymService, dealers_of
from node.profile import ProfileService
from node.storage import Database, FeedStore, StorageError
from node.web import Services, load_ui, make_app

__all__ = [
    "DATABASE_URL_ENV",
    "FIRST_PASSWORD_FILE",
    "Node",
    "NodeError",
    "OrgDetails",
    "db_upgrade",
    "init_node",
    "node_status",
    "open_node",
    "serve",
]

#: Environment variable for ``--database-url`` (keeps a password off the command line,
#: where any user of the box can read it in the process list).
DATABASE_URL_ENV: Final = "WATAN_DATABASE_URL"
SQLITE_FILE: Final = "watan.db"
#: The first admin's one-time password, 0600, for an operator who missed the console
#: line. Removed as soon as that password has been changed.
FIRST_PASSWORD_FILE: Final = "first-admin-password.txt"

_log = logging.getLogger(__name__)


class NodeError(Exception):
    """A failure the operator must fix; its message is one line without secrets."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgDetails:
    """The organisation details of the first ``node.profile/1``. The defaults are
    placeholders (``provisional``): the admin replaces them in a later profile."""

    name_ar: str = "منظمة جديدة"
    name_en: str = "New organisation"
    registration: str = "PENDING"
    governorate: str = "IQG01"

    @property
    def provisional(self) -> bool:
        return self == OrgDetails()


@dataclass(slots=True)
class Node:
    """A node opened for serving: its directory, keys, config and open database."""

    data_dir: Path
    identity: Identity
    config: NodeConfig
    db: Database
    feeds: FeedStore
    audit: AuditLog
    accounts: AccountService
    profiles: ProfileService
    federation: FederationService
    ataa: Ataa
    #: The first admin's one-time password, set only by the run that created it.
    first_password: str | None = None

    def services(self, clock: Clock, *, trust_proxy: bool = False) -> Services:
        """The services the web application runs on."""
        return Services(
            identity=self.identity,
            config=self.config,
            db=self.db,
            feeds=self.feeds,
            accounts=self.accounts,
            audit=self.audit,
            profiles=self.profiles,
            federation=self.federation,
            messages=self.federation.messages,
            ataa=self.ataa,
            peer_count=lambda: self.federation.approved_count,
            clock=clock,
            random_bytes=secrets.token_bytes,
            started_ms=clock.now_ms(),
            trust_proxy=trust_proxy,
            on_password_changed=self.forget_first_password,
        )

    def forget_first_password(self, username: str) -> None:
        """Remove the first admin's one-time password file once it has been changed."""
        if username == FIRST_ADMIN:
            (self.data_dir / FIRST_PASSWORD_FILE).unlink(missing_ok=True)

    async def close(self) -> None:
        await self.ataa.close()
        await self.federation.close()
        await self.feeds.close()
        await self.db.close()


def _prepare_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise NodeError(f"{data_dir} exists and is not a directory")
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise NodeError(f"cannot create {data_dir}: {error.strerror}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise NodeError(f"{data_dir} is not writable by this user")


def _database_url(data_dir: Path, configured: str | None) -> str:
    if configured is not None:
        return configured
    return f"sqlite:///{(data_dir / SQLITE_FILE).absolute()}"


def _profile(identity: Identity, org: OrgDetails) -> protocol.Profile:
    try:
        return protocol.Profile(
            enc_key=identity.enc_key,
            endpoints=[],
            governorate=org.governorate,
            name_ar=org.name_ar,
            name_en=org.name_en,
            registration=org.registration,
            role="ngo",
            sectors=[],
        )
    except protocol.ProtocolError as error:
        raise NodeError(f"invalid organisation details: {error.message}") from None


async def _ensure_profile(node: Node, org: OrgDetails, clock: Clock) -> None:
    """Append our first entry, a profile, unless our feed already has one."""
    if await node.feeds.head(node.identity.node_id) is not None:
        return
    profile = _profile(node.identity, org)
    now_ms = clock.now_ms()
    key, net = node.identity.signing_key, node.config.net
    try:
        await node.feeds.append_own(
            lambda head: protocol.append(head, profile, key=key, net=net, now_ms=now_ms),
            now_ms=now_ms,
        )
    except protocol.ProtocolError as error:  # e.g. CLOCK_UNSET on a box without RTC
        raise NodeError(f"cannot create the node's profile: {error.message}") from None


async def _open_db(url: str) -> Database:
    try:
        db = Database.from_url(url)
    except StorageError as error:
        raise NodeError(error.message) from None
    try:
        await db.ping()
        await db.upgrade()
    except StorageError as error:
        await db.close()
        raise NodeError(error.message) from None
    return db


async def init_node(
    data_dir: Path,
    *,
    clock: Clock,
    database_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    org: OrgDetails | None = None,
    hasher: PasswordHasher | None = None,
) -> tuple[Node, bool]:
    """Open the node in ``data_dir``, creating it on first run.

    Args:
        database_url: None for the configured one (first run: SQLite in ``data_dir``).
            On later runs it must match ``node.json``: pointing an existing node at
            another database would make it sign a second seq 1, a fork of itself.
        host, port: override ``node.json`` for this run (first run: stored in it).
        org: first run only: the profile's organisation details.
        hasher: the password hasher (tests pass a cheap one; default: production).

    Returns:
        The opened node (the caller closes it), and whether it was created now.

    Raises:
        NodeError: a bad directory, damaged keys or config, an unreachable database.
    """
    _prepare_dir(data_dir)
    first_run = not (data_dir / CONFIG_FILE).exists()
    try:
        identity, _ = load_or_create_identity(data_dir)
        if first_run:
            config = _first_config(identity, clock, database_url, org)
        else:
            config = _checked_config(data_dir, identity, database_url)
    except (IdentityError, ConfigError) as error:
        raise NodeError(str(error)) from None
    config = replace(
        config,
        host=host if host is not None else config.host,
        port=port if port is not None else config.port,
    )
    db = await _open_db(_database_url(data_dir, config.database_url))
    node = _make_node(data_dir, identity, config, db, hasher, clock)
    try:
        await _ensure_profile(node, org or OrgDetails(), clock)
        if first_run:
            node.first_password = await _first_admin(node, clock)
            write_config(data_dir, config)
        elif (account := await node.accounts.store.by_username(FIRST_ADMIN)) is None or (
            not account.must_change_password
        ):
            node.forget_first_password(FIRST_ADMIN)
    except (NodeError, ConfigError, StorageError) as error:
        await node.close()
        message = error.message if isinstance(error, StorageError) else str(error)
        raise NodeError(message) from None
    return node, first_run


def _make_node(
    data_dir: Path,
    identity: Identity,
    config: NodeConfig,
    db: Database,
    hasher: PasswordHasher | None,
    clock: Clock,
) -> Node:
    feeds = FeedStore(db, own=identity.node_id, verifier=Verifier())  # closed by Node.close
    audit = AuditLog(db)
    profiles = ProfileService(
        db, feeds=feeds, audit=audit, identity=identity, net=config.net, clock=clock
    )
    federation = FederationService(
        db,
        config=config,
        feeds=feeds,
        audit=audit,
        identity=identity,
        clock=clock,
        random_bytes=secrets.token_bytes,
    )
    federation.messages = _messages(db, feeds, audit, identity, config, clock, federation)
    _oracles(db, feeds, audit, identity, config, clock, federation)
    assert federation.pseudonyms is not None
    ataa = build_ataa(
        db,
        feeds=feeds,
        audit=audit,
        identity=identity,
        clock=clock,
        net=lambda: federation.net,
        pseudonyms=federation.pseudonyms,
        on_appended=federation.feed_grew,
    )
    return Node(
        data_dir,
        identity,
        config,
        db,
        feeds,
        audit,
        AccountService(db, audit=audit, hasher=hasher),
        profiles,
        federation,
        ataa,
    )


def _messages(
    db: Database,
    feeds: FeedStore,
    audit: AuditLog,
    identity: Identity,
    config: NodeConfig,
    clock: Clock,
    federation: FederationService,
) -> MessageService:
    """The node's message service, delivering over signed federation HTTP."""

    return MessageService(
        db,
        feeds=feeds,
        audit=audit,
        identity=identity,
        net=config.net,
        clock=clock,
        random_bytes=secrets.token_bytes,
        transport=PeerTransport(federation),
        approved_peers=federation.peers.approved_ids,
        relays_for=federation.relays_for,
    )


def _oracles(
    db: Database,
    feeds: FeedStore,
    audit: AuditLog,
    identity: Identity,
    config: NodeConfig,
    clock: Clock,
    federation: FederationService,
) -> None:
    """This node as a pseudonym oracle (if it holds a share) and as a client."""
    federation.oracle = OracleServer(
        db,
        feeds=feeds,
        audit=audit,
        identity=identity,
        net=lambda: federation.net,
        clock=clock,
        random_bytes=secrets.token_bytes,
    )
    federation.pseudonyms = PseudonymService(
        db,
        feeds=feeds,
        peers=federation.peers,
        client=federation.client,
        server=federation.oracle,
        identity=identity,
        clock=clock,
        random_bytes=secrets.token_bytes,
        scope=dealers_of(config),
    )


async def _first_admin(node: Node, clock: Clock) -> str | None:
    """Create the first admin and save its one-time password 0600 in the node's
    directory; None if an account exists already (a first run that crashed after
    creating it: ``watan accounts recover`` gives the admin a new password)."""
    try:
        _account, password = await node.accounts.create_first_admin(
            secrets.token_bytes, now_ms=clock.now_ms()
        )
    except AccountError as error:
        if error.code is not AccountErrorCode.CONFLICT:
            raise NodeError(error.message) from None
        return None
    try:
        write_private_file(
            node.data_dir / FIRST_PASSWORD_FILE,
            f"{FIRST_ADMIN}\n{password}\n".encode(),
            overwrite=True,
        )
    except OSError as error:
        raise NodeError(f"cannot save the first admin's password: {error.strerror}") from None
    return password


def _first_config(
    identity: Identity, clock: Clock, database_url: str | None, org: OrgDetails | None
) -> NodeConfig:
    return NodeConfig(
        node_id=identity.node_id,
        net=standalone_net(identity.node_id),
        standalone=True,
        database_url=database_url,
        host=DEFAULT_HOST,
        port=DEFAULT_PORT,
        created_ms=clock.now_ms(),
        profile_provisional=(org or OrgDetails()).provisional,
    )


def _checked_config(data_dir: Path, identity: Identity, database_url: str | None) -> NodeConfig:
    config = load_config(data_dir)
    if config.node_id != identity.node_id:
        raise ConfigError(f"{data_dir / CONFIG_FILE} belongs to another node than {data_dir}/keys")
    if database_url is not None and database_url != config.database_url:
        raise ConfigError(
            f"this node's database is set in {data_dir / CONFIG_FILE}; moving a node to "
            "another database is not supported (edit node.json only for a copy of it)"
        )
    return config


async def open_node(data_dir: Path) -> tuple[NodeConfig, Database]:
    """Open an existing node's database without upgrading it (for ``watan status``).

    Raises:
        NodeError: not a node directory, or the database cannot be opened.
    """
    if not data_dir.is_dir():
        raise NodeError(f"{data_dir} is not a Watan node directory (no such directory)")
    try:
        config = load_config(data_dir)
    except ConfigError as error:
        raise NodeError(str(error)) from None
    try:
        db = Database.from_url(_database_url(data_dir, config.database_url))
    except StorageError as error:
        raise NodeError(error.message) from None
    return config, db


async def node_status(data_dir: Path) -> dict[str, Any]:
    """What ``watan status --json`` prints: ids, our feed's head, peers, held heads.

    Raises:
        NodeError: not a node directory, or the database cannot be read.
    """
    config, db = await open_node(data_dir)
    try:
        feeds = FeedStore(db, own=config.node_id)
        heads = await feeds.heads()
        peers = await _status_peers(db)
        ataa = await ataa_status(db)
    except StorageError as error:
        raise NodeError(error.message) from None
    finally:
        await db.close()
    own = heads.get(config.node_id)
    return {
        "node_id": config.node_id.hex(),
        "fingerprint": protocol.fingerprint(config.node_id),
        "net": config.net.hex(),
        "standalone": config.standalone,
        "feed": None if own is None else {"seq": own[0], "id": own[1].hex()},
        "peers": peers,
        "heads": {author.hex(): seq for author, (seq, _id) in sorted(heads.items())},
        "ataa": ataa,
    }


async def _status_peers(db: Database) -> list[dict[str, Any]]:
    try:
        known = await read_peers(db)
    except StorageError:
        return []  # an older schema without peers
    keys = ("node_id", "fingerprint", "state", "url", "last_seen_ms", "last_error")
    return [
        {key: peer.to_json()[key] for key in keys}
        for peer in sorted(known, key=lambda peer: peer.created_ms)
    ]


async def db_upgrade(data_dir: Path) -> str:
    """Migrate an existing node's database; returns the revision it is now at.

    Raises:
        NodeError: not a node directory, or the database cannot be migrated.
    """
    _config, db = await open_node(data_dir)
    try:
        await db.upgrade()
        revision = await db.current_revision()
    except StorageError as error:
        raise NodeError(error.message) from None
    finally:
        await db.close()
    return revision or "none"


async def serve(
    node: Node,
    *,
    clock: Clock,
    trust_proxy: bool = False,
    ready: asyncio.Event | None = None,
    discover: bool = True,
    public_url: str | None = None,
) -> None:
    """Serve the node until SIGINT or SIGTERM, then close the server and the database.

    Raises:
        NodeError: the port is taken or the address cannot be bound.
    """
    host, port = node.config.host, node.config.port
    if public_url is not None:
        node.federation.public_url = public_url.rstrip("/")
    lock = NodeLock(node.data_dir)
    try:
        lock.acquire(what="starting it again")
    except FederationError as error:
        raise NodeError(error.message) from None
    app = make_app(node.services(clock, trust_proxy=trust_proxy), ui=load_ui())
    # handler_cancellation: a closed browser tab ends its event stream at once.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    discovery = None
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise NodeError(
                    f"port {port} on {host} is in use; choose another with --port"
                ) from None
            raise NodeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        print(
            f"watan: node {node.identity.node_id.hex()} listening on {url} "
            f"(fingerprint {node.identity.fingerprint})",
            flush=True,
        )
        if node.first_password is not None:
            login = f"{url}/login"
            if host in ("0.0.0.0", "::"):  # every address: name none of them
                login = f"http://<this machine's address>:{port}/login"
            print(
                f"watan: first sign-in at {login} as '{FIRST_ADMIN}' with the one-time "
                f"password {node.first_password} (also saved in "
                f"{node.data_dir / FIRST_PASSWORD_FILE}); you will be asked to change it",
                flush=True,
            )
        if node.federation.public_url is None and host not in ("0.0.0.0", "::"):
            node.federation.public_url = url + "/fed/v1"
        await node.federation.start()
        await node.ataa.start()
        if discover:
            discovery = await _start_discovery(node, port)
        if ready is not None:
            ready.set()
        # The handlers stay installed until asyncio.run closes the loop: a second
        # signal during shutdown (an impatient operator, systemd) must not kill the
        # process half way through closing the database.
        await stop.wait()
        print("watan: shutting down", file=sys.stderr, flush=True)
    finally:
        if discovery is not None:
            await discovery.stop()
        await node.ataa.close()
        await node.federation.close()
        await runner.cleanup()
        lock.release()


async def _start_discovery(node: Node, port: int) -> Any:
    """Advertise and browse on the LAN; found nodes of our federation are proposed."""
    if node.config.standalone:
        return None

    async def found(advert: Advert) -> None:
        peer = await node.federation.peers.get(advert.node_id)
        url = advert.urls[0] if advert.urls else None
        if peer is None:
            await node.federation.peers.propose(advert.node_id, url=url, source="lan")
            _log.info(
                "discovered node %s on the LAN: approve it after comparing fingerprints",
                advert.fingerprint,
                extra={"event": "discovery.proposed"},
            )
        elif url is not None and peer.state != "blocked":
            await node.federation.peers.set_url(advert.node_id, url)
            node.federation.replicator.seen(advert.node_id)

    discovery = Discovery(
        node_id=node.identity.node_id, net=node.config.net, port=port, on_found=found
    )
    try:
        await discovery.start()
    except (DiscoveryError, OSError) as error:
        _log.warning("LAN discovery is off: %s", error, extra={"event": "discovery.off"})
        return None
    return discovery
