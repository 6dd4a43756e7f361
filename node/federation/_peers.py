"""Peers, the blocklist and invites: whom this node talks to and whose feeds it keeps.

Trust is never automatic (DESIGN §4): discovery and invites only *propose* a peer, or
record one the admin already confirmed by fingerprint; an admin approves, blocks and
unblocks. Approving a peer appends a ``node.vouch/1`` (stance ``vouch``) to our feed,
blocking one a ``revoke``, so that our own peers learn whom we trust; every change
is audited in the same transaction.

Which authors we replicate (:meth:`PeerStore.replicated_authors`): ourselves, approved
peers, observers announced by approved peers, and every author vouched for by one of
those or, transitively, by an author already in scope (so a feed crosses a chain of
nodes); never a blocked author, and never through one.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Row, select, update
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.identity import Identity
from node.storage import Database, FeedStore, stored_content
from node.storage._schema import blocks, entries, invites, peers

__all__ = [
    "BLOCKLIST_HEADER",
    "Block",
    "FederationError",
    "FederationErrorCode",
    "Peer",
    "PeerSource",
    "PeerState",
    "PeerStore",
    "read_peers",
]

PeerState = Literal["proposed", "approved", "blocked"]
PeerSource = Literal["lan", "invite", "manual"]
#: The blocklist CSV's header row (UTF-8, comma-separated, RFC 4180 quoting).
BLOCKLIST_HEADER: Final = ("author", "reason", "blocked_at_ms")
MAX_REASON_CHARS: Final = 500
#: A blocklist import larger than this is refused outright (a federation has hundreds
#: of nodes, not hundreds of thousands).
MAX_BLOCKLIST_ROWS: Final = 10_000
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class FederationErrorCode(enum.StrEnum):
    UNKNOWN_PEER = "UNKNOWN_PEER"
    NOT_APPROVED = "NOT_APPROVED"
    PEER_BLOCKED = "PEER_BLOCKED"
    SELF = "SELF"
    STANDALONE = "STANDALONE"  # no federation yet
    ALREADY_FEDERATED = "ALREADY_FEDERATED"
    BAD_INVITE = "BAD_INVITE"
    INVITE_USED = "INVITE_USED"
    INVITE_EXPIRED = "INVITE_EXPIRED"
    FINGERPRINT_MISMATCH = "FINGERPRINT_MISMATCH"
    BAD_REASON = "BAD_REASON"
    BAD_CSV = "BAD_CSV"
    UNREACHABLE = "UNREACHABLE"
    NODE_RUNNING = "NODE_RUNNING"


class FederationError(protocol.CodedError):
    """A federation operation refused; ``message`` is one line, safe to show."""

    code: FederationErrorCode

    def __init__(self, message: str, *, code: FederationErrorCode) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """A known node and how talking to it goes."""

    node_id: bytes
    state: PeerState
    source: PeerSource
    url: str | None
    reason: str | None
    created_ms: int
    updated_ms: int
    last_seen_ms: int | None
    last_sync_ms: int | None
    last_error: str | None
    failures: int
    rejected: int

    @property
    def fingerprint(self) -> str:
        return protocol.fingerprint(self.node_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id.hex(),
            "fingerprint": self.fingerprint,
            "state": self.state,
            "source": self.source,
            "url": self.url,
            "reason": self.reason,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "last_seen_ms": self.last_seen_ms,
            "last_sync_ms": self.last_sync_ms,
            "last_error": self.last_error,
            "failures": self.failures,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    author: bytes
    reason: str
    created_ms: int


def _peer(row: Row[Any]) -> Peer:
    return Peer(
        node_id=bytes(row.node_id),
        state=row.state,
        source=row.source,
        url=row.url,
        reason=row.reason,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        last_seen_ms=row.last_seen_ms,
        last_sync_ms=row.last_sync_ms,
        last_error=row.last_error,
        failures=row.failures,
        rejected=row.rejected,
    )


def check_reason(reason: str | None, *, required: bool) -> str | None:
    """A block or approval reason: one line, at most 500 characters."""
    if reason is not None:
        reason = reason.strip()
        if not reason:
            reason = None
    if reason is None:
        if required:
            raise FederationError("give a reason", code=FederationErrorCode.BAD_REASON)
        return None
    if len(reason) > MAX_REASON_CHARS or any(ch < " " or ch == "\x7f" for ch in reason):
        raise FederationError(
            f"a reason is one line of at most {MAX_REASON_CHARS} characters",
            code=FederationErrorCode.BAD_REASON,
        )
    return reason


class PeerStore:
    """Peers, blocks and invites in the node's database."""

    def __init__(
        self,
        db: Database,
        *,
        feeds: FeedStore,
        audit: AuditLog,
        identity: Identity,
        net: Callable[[], bytes],
        clock: Clock,
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._audit = audit
        self._identity = identity
        self._net = net
        self._clock = clock
        #: Authors approved peers announce as observers (``heads`` role hints).
        self.observers: set[bytes] = set()

    # -- reads ----------------------------------------------------------------------

    async def get(self, node_id: bytes) -> Peer | None:
        return await self._db.read(_get_txn, node_id)

    async def all(self) -> list[Peer]:
        return await read_peers(self._db)

    async def approved(self) -> list[Peer]:
        return [peer for peer in await self.all() if peer.state == "approved"]

    async def approved_ids(self) -> set[bytes]:
        return {peer.node_id for peer in await self.approved()}

    async def blocks(self) -> list[Block]:
        return await self._db.read(_blocks_txn)

    async def blocked_ids(self) -> set[bytes]:
        return {block.author for block in await self.blocks()}

    async def replicated_authors(self) -> set[bytes]:
        """Authors whose feeds we pull, keep and serve (module docstring)."""
        return await self._db.read(self._scope_txn)

    def _scope_txn(self, conn: Connection) -> set[bytes]:
        own = self._identity.node_id
        approved = {bytes(r.node_id) for r in conn.execute(_approved_query())}
        blocked = {bytes(r.author) for r in conn.execute(select(blocks.c.author))}
        # The latest stance of each (voucher, vouched) pair, over every vouch we hold.
        rows = conn.execute(
            select(entries.c.author, entries.c.seq, entries.c.wire)
            .where(entries.c.kind == protocol.Vouch.KIND)
            .order_by(entries.c.author, entries.c.seq)
        )
        stance: dict[tuple[bytes, bytes], str] = {}
        for row in rows:
            vouch = _vouch_of(bytes(row.wire))
            if vouch is not None:
                stance[(bytes(row.author), vouch.peer)] = vouch.stance
        vouched: dict[bytes, set[bytes]] = {}
        for (by, peer), value in stance.items():
            if value == "vouch":
                vouched.setdefault(by, set()).add(peer)
        # Trust travels along vouches from ourselves and our approved peers (a feed
        # crosses a chain of nodes), never through a blocked author.
        scope: set[bytes] = set()
        frontier = [own, *approved, *self.observers]
        while frontier:
            author = frontier.pop()
            if author in scope or (author in blocked and author != own):
                continue
            scope.add(author)
            frontier.extend(vouched.get(author, ()))
        return scope

    # -- peers ------------------------------------------------------------------------

    async def propose(self, node_id: bytes, *, url: str | None, source: PeerSource) -> Peer:
        """Record a node discovery or an invite found; never changes a known peer's
        state (a blocked node stays blocked, an approved one approved)."""
        if node_id == self._identity.node_id:
            raise FederationError("that is this node", code=FederationErrorCode.SELF)
        return await self._db.write(
            _propose_txn, node_id, url, source, self._clock.now_ms(), self._audit
        )

    async def set_state(
        self,
        node_id: bytes,
        state: PeerState,
        *,
        actor: int | None,
        reason: str | None = None,
        url: str | None = None,
        source: PeerSource = "manual",
    ) -> Peer:
        """Approve, block or unblock (back to proposed) a peer, with its vouch entry
        and audit row in one transaction. An unknown node is added (``source``)."""
        if node_id == self._identity.node_id:
            raise FederationError("that is this node", code=FederationErrorCode.SELF)
        reason = check_reason(reason, required=state == "blocked")
        now_ms = self._clock.now_ms()
        return await self._db.write(
            self._set_state_txn, node_id, state, actor, reason, url, source, now_ms
        )

    def _set_state_txn(
        self,
        conn: Connection,
        node_id: bytes,
        state: PeerState,
        actor: int | None,
        reason: str | None,
        url: str | None,
        source: PeerSource,
        now_ms: int,
    ) -> Peer:
        self._audit.lock_txn(conn)
        old = _get_txn(conn, node_id)
        if old is None:
            conn.execute(peers.insert().values(_new_row(node_id, url, source, now_ms, state=state)))
        values: dict[str, Any] = {"state": state, "reason": reason, "updated_ms": now_ms}
        if url is not None:
            values["url"] = url
        if state != "blocked":
            values["failures"] = 0
        conn.execute(update(peers).where(peers.c.node_id == node_id).values(values))
        if state == "blocked":
            _upsert_block(conn, node_id, reason or "", now_ms)
        elif old is not None and old.state == "blocked":
            conn.execute(blocks.delete().where(blocks.c.author == node_id))
        was = old.state if old is not None else None
        stance = {"approved": "vouch", "blocked": "revoke"}.get(state)
        if stance is not None and not (was == state):
            self._vouch_txn(conn, node_id, stance, now_ms)
        if was == "approved" and state == "proposed":
            self._vouch_txn(conn, node_id, "revoke", now_ms)
        action = {"approved": "peer.approve", "blocked": "peer.block", "proposed": "peer.unblock"}
        details: dict[str, str] = {"fingerprint": protocol.fingerprint(node_id)}
        if reason:
            details["reason"] = reason
        self._audit.record_txn(
            conn, actor, action[state], f"peer:{node_id.hex()}", details, now_ms=now_ms
        )
        peer = _get_txn(conn, node_id)
        assert peer is not None
        return peer

    def _vouch_txn(self, conn: Connection, node_id: bytes, stance: str, now_ms: int) -> None:
        body = protocol.Vouch(peer=node_id, stance=stance)
        key, net = self._identity.signing_key, self._net()
        self._feeds.append_own_txn(
            conn,
            lambda head: protocol.append(head, body, key=key, net=net, now_ms=now_ms),
            now_ms,
        )

    async def record_contact(
        self,
        node_id: bytes,
        *,
        ok: bool,
        error: str | None = None,
        synced: bool = False,
        rejected: int = 0,
    ) -> None:
        """Note how the last exchange with a peer went (for the Peers page)."""
        await self._db.write(
            _contact_txn, node_id, ok, error, synced, rejected, self._clock.now_ms()
        )

    async def set_url(self, node_id: bytes, url: str) -> None:
        await self._db.write(_set_url_txn, node_id, url, self._clock.now_ms())

    # -- blocklist ----------------------------------------------------------------------

    async def block_author(self, author: bytes, *, reason: str, actor: int | None) -> None:
        """Block an author that need not be a peer (a vouched feed, an observer)."""
        checked = check_reason(reason, required=True)
        assert checked is not None
        if author == self._identity.node_id:
            raise FederationError("that is this node", code=FederationErrorCode.SELF)
        peer = await self.get(author)
        if peer is not None:
            await self.set_state(author, "blocked", actor=actor, reason=checked)
            return
        await self._db.write(self._block_author_txn, [(author, checked)], actor)

    def _block_author_txn(
        self, conn: Connection, rows: list[tuple[bytes, str]], actor: int | None
    ) -> int:
        self._audit.lock_txn(conn)
        now_ms = self._clock.now_ms()
        added = 0
        for author, reason in rows:
            if author == self._identity.node_id:
                continue
            added += _upsert_block(conn, author, reason, now_ms)
            conn.execute(
                update(peers)
                .where(peers.c.node_id == author)
                .values(state="blocked", reason=reason, updated_ms=now_ms)
            )
        self._audit.record_txn(
            conn,
            actor,
            "blocklist.import",
            None,
            {"rows": len(rows), "added": added},
            now_ms=now_ms,
        )
        return added

    async def unblock_author(self, author: bytes, *, actor: int | None) -> None:
        peer = await self.get(author)
        if peer is not None and peer.state == "blocked":
            await self.set_state(author, "proposed", actor=actor)
            return
        await self._db.write(self._unblock_txn, author, actor)

    def _unblock_txn(self, conn: Connection, author: bytes, actor: int | None) -> None:
        self._audit.lock_txn(conn)
        conn.execute(blocks.delete().where(blocks.c.author == author))
        self._audit.record_txn(
            conn, actor, "blocklist.remove", f"peer:{author.hex()}", {}, now_ms=self._clock.now_ms()
        )

    async def export_blocklist(self) -> str:
        """The blocklist as CSV (header ``author,reason,blocked_at_ms``)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(BLOCKLIST_HEADER)
        for block in await self.blocks():
            writer.writerow((block.author.hex(), block.reason, block.created_ms))
        return out.getvalue()

    async def import_blocklist(self, text: str, *, actor: int | None) -> int:
        """Add every row of a blocklist CSV; all or nothing. Returns how many authors
        were newly blocked (rows already blocked keep their first reason).

        Raises:
            FederationError: BAD_CSV naming the first bad line; nothing was changed.
        """
        rows = parse_blocklist(text)
        return await self._db.write(self._block_author_txn, rows, actor)

    # -- invites ------------------------------------------------------------------------

    async def add_invite(self, secret: bytes, *, expires_ms: int, actor: int | None) -> None:
        now_ms = self._clock.now_ms()
        await self._db.write(self._add_invite_txn, secret, expires_ms, actor, now_ms)

    def _add_invite_txn(
        self, conn: Connection, secret: bytes, expires_ms: int, actor: int | None, now_ms: int
    ) -> None:
        self._audit.lock_txn(conn)
        conn.execute(
            invites.insert().values(
                secret_hash=hashlib.sha256(secret).digest(),
                created_ms=now_ms,
                expires_ms=expires_ms,
                created_by=actor,
            )
        )
        self._audit.record_txn(
            conn, actor, "invite.create", None, {"expires_ms": expires_ms}, now_ms=now_ms
        )

    async def spend_invite(self, secret: bytes, *, node_id: bytes, url: str | None) -> Peer:
        """Spend a one-time invite secret and propose the node presenting it.

        The node is *proposed*, not approved: the token may have been intercepted on
        its way, so our admin approves it after comparing its fingerprint with the
        one the joining admin reads out (nothing is trusted automatically).

        Raises:
            FederationError: BAD_INVITE, INVITE_USED, INVITE_EXPIRED, PEER_BLOCKED.
        """
        now_ms = self._clock.now_ms()
        return await self._db.write(self._spend_txn, secret, node_id, url, now_ms)

    def _spend_txn(
        self, conn: Connection, secret: bytes, node_id: bytes, url: str | None, now_ms: int
    ) -> Peer:
        digest = hashlib.sha256(secret).digest()
        row = conn.execute(
            select(invites).where(invites.c.secret_hash == digest).with_for_update()
        ).one_or_none()
        if row is None:
            raise FederationError("unknown invite", code=FederationErrorCode.BAD_INVITE)
        if row.used_ms is not None:
            if row.used_by is not None and bytes(row.used_by) == node_id:
                peer = _get_txn(conn, node_id)  # a retried hello: same answer
                if peer is not None:
                    return peer
            raise FederationError("invite already used", code=FederationErrorCode.INVITE_USED)
        if now_ms > row.expires_ms:
            raise FederationError("invite expired", code=FederationErrorCode.INVITE_EXPIRED)
        old = _get_txn(conn, node_id)
        if old is not None and old.state == "blocked":
            raise FederationError("this node is blocked", code=FederationErrorCode.PEER_BLOCKED)
        conn.execute(
            update(invites)
            .where(invites.c.secret_hash == digest)
            .values(used_ms=now_ms, used_by=node_id)
        )
        if old is not None:
            return _propose_txn(conn, node_id, url, "invite", now_ms, self._audit)
        self._audit.lock_txn(conn)
        conn.execute(peers.insert().values(_new_row(node_id, url, "invite", now_ms)))
        self._audit.record_txn(
            conn,
            None,
            "invite.accepted",
            f"peer:{node_id.hex()}",
            {"fingerprint": protocol.fingerprint(node_id)},
            now_ms=now_ms,
        )
        peer = _get_txn(conn, node_id)
        assert peer is not None
        return peer


def parse_blocklist(text: str) -> list[tuple[bytes, str]]:
    """Parse a blocklist CSV (our export format; ``blocked_at_ms`` is optional).

    Raises:
        FederationError: BAD_CSV naming the first bad line.
    """

    def bad(line: int, why: str) -> FederationError:
        return FederationError(f"line {line}: {why}", code=FederationErrorCode.BAD_CSV)

    text = text.removeprefix("\ufeff")  # spreadsheet programs add a BOM
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        table = list(reader)
    except csv.Error as error:
        raise bad(0, f"not CSV ({error})") from None
    if not table or [cell.strip().lower() for cell in table[0][:2]] != ["author", "reason"]:
        raise bad(1, "the first line must be the header author,reason[,blocked_at_ms]")
    if len(table) - 1 > MAX_BLOCKLIST_ROWS:
        raise bad(0, f"more than {MAX_BLOCKLIST_ROWS} rows")
    rows: list[tuple[bytes, str]] = []
    seen: set[bytes] = set()
    for number, cells in enumerate(table[1:], start=2):
        if not cells or all(not cell.strip() for cell in cells):
            continue
        if len(cells) not in (2, 3):
            raise bad(number, "expected author,reason[,blocked_at_ms]")
        author_hex = cells[0].strip().lower()
        if not _HEX64.fullmatch(author_hex):
            raise bad(number, "author is not a 64-character hex node id")
        try:
            reason = check_reason(cells[1], required=True)
        except FederationError as error:
            raise bad(number, error.message) from None
        if len(cells) == 3 and cells[2].strip() and not cells[2].strip().isdigit():
            raise bad(number, "blocked_at_ms is not a number")
        author = bytes.fromhex(author_hex)
        if author in seen:
            continue
        seen.add(author)
        assert reason is not None
        rows.append((author, reason))
    return rows


# -- transaction bodies ---------------------------------------------------------------


def _approved_query() -> Any:
    return select(peers.c.node_id).where(peers.c.state == "approved")


def _vouch_of(wire: bytes) -> protocol.Vouch | None:
    """The vouch in a stored (hence verified) entry's content, or None."""
    try:
        return protocol.Vouch.from_content(stored_content(wire))
    except protocol.ProtocolError:
        return None


def _new_row(
    node_id: bytes, url: str | None, source: str, now_ms: int, *, state: str = "proposed"
) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "state": state,
        "source": source,
        "url": url,
        "created_ms": now_ms,
        "updated_ms": now_ms,
        "last_seen_ms": now_ms,
        "failures": 0,
        "rejected": 0,
    }


def _get_txn(conn: Connection, node_id: bytes) -> Peer | None:
    row = conn.execute(select(peers).where(peers.c.node_id == node_id)).one_or_none()
    return None if row is None else _peer(row)


async def read_peers(db: Database) -> list[Peer]:
    """Every known peer (for readers without a whole :class:`PeerStore`)."""
    return await db.read(_list_txn)


def _list_txn(conn: Connection) -> list[Peer]:
    rows = conn.execute(select(peers).order_by(peers.c.state, peers.c.created_ms))
    return [_peer(row) for row in rows]


def _blocks_txn(conn: Connection) -> list[Block]:
    rows = conn.execute(select(blocks).order_by(blocks.c.created_ms, blocks.c.author))
    return [Block(author=bytes(r.author), reason=r.reason, created_ms=r.created_ms) for r in rows]


def _upsert_block(conn: Connection, author: bytes, reason: str, now_ms: int) -> int:
    exists = conn.execute(select(blocks.c.author).where(blocks.c.author == author)).first()
    if exists is not None:
        return 0
    conn.execute(blocks.insert().values(author=author, reason=reason, created_ms=now_ms))
    return 1


def _propose_txn(
    conn: Connection,
    node_id: bytes,
    url: str | None,
    source: str,
    now_ms: int,
    audit: AuditLog,
) -> Peer:
    old = _get_txn(conn, node_id)
    if old is None:
        audit.lock_txn(conn)
        conn.execute(peers.insert().values(_new_row(node_id, url, source, now_ms)))
        audit.record_txn(
            conn,
            None,
            "peer.propose",
            f"peer:{node_id.hex()}",
            {"fingerprint": protocol.fingerprint(node_id), "source": source},
            now_ms=now_ms,
        )
    else:
        values: dict[str, Any] = {"last_seen_ms": now_ms}
        if url is not None and old.state != "blocked":
            values["url"] = url
        conn.execute(update(peers).where(peers.c.node_id == node_id).values(values))
    peer = _get_txn(conn, node_id)
    assert peer is not None
    return peer


def _contact_txn(
    conn: Connection,
    node_id: bytes,
    ok: bool,
    error: str | None,
    synced: bool,
    rejected: int,
    now_ms: int,
) -> None:
    values: dict[str, Any] = {"rejected": peers.c.rejected + rejected}
    if ok:
        values.update(last_seen_ms=now_ms, failures=0, last_error=None)
        if synced:
            values["last_sync_ms"] = now_ms
    else:
        values.update(failures=peers.c.failures + 1, last_error=error)
    if error is not None and ok:
        values["last_error"] = error
    conn.execute(update(peers).where(peers.c.node_id == node_id).values(values))


def _set_url_txn(conn: Connection, node_id: bytes, url: str, now_ms: int) -> None:
    conn.execute(
        update(peers)
        .where(peers.c.node_id == node_id, peers.c.state != "blocked")
        .values(url=url, last_seen_ms=now_ms)
    )


def hex_id(text: str) -> bytes:
    """A node id from its 64-character hex form.

    Raises:
        FederationError: UNKNOWN_PEER if ``text`` is not one.
    """
    text = text.strip().lower()
    if not _HEX64.fullmatch(text):
        raise FederationError(
            "a node id is 64 hexadecimal characters", code=FederationErrorCode.UNKNOWN_PEER
        )
    return bytes.fromhex(text)
