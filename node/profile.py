"""The organisation profile: the node's newest ``node.profile/1`` entry.

Editing it appends a new signed profile to the node's own feed and an audit row, in
one transaction: peers learn the change by replication, and the audit log says who
made it. Old profiles stay in the feed (entries are never changed), which is the
history of the organisation's details.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

import protocol
from node.accounts import Account, Permission, authorize
from node.audit import AuditLog
from node.clock import Clock
from node.identity import Identity
from node.storage import Database, FeedStore

__all__ = ["OrgProfile", "ProfileError", "ProfileService"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgProfile:
    """The organisation details of the newest profile entry."""

    name_ar: str
    name_en: str
    registration: str
    governorate: str
    sectors: tuple[str, ...]
    endpoints: tuple[str, ...]
    role: str
    seq: int
    ts_ms: int


class ProfileError(protocol.CodedError):
    """A profile edit the protocol refuses (``code`` is the protocol's, e.g. BAD_VALUE)."""


def _parse(wire: bytes) -> OrgProfile:
    payload, _sig = protocol.decode(wire)
    fields = protocol.decode(payload)
    body = protocol.Profile.from_content(fields["content"])
    return OrgProfile(
        name_ar=body.name_ar,
        name_en=body.name_en,
        registration=body.registration,
        governorate=body.governorate,
        sectors=tuple(body.sectors),
        endpoints=tuple(body.endpoints),
        role=body.role,
        seq=fields["seq"],
        ts_ms=fields["ts"],
    )


class ProfileService:
    """Reads and edits the node's organisation profile.

    Args:
        db, feeds, audit: the node's database, its feed store and audit log.
        identity: the node's keys (the profile is signed with them).
        net: the federation id the node's entries carry.
        clock: the node's clock.
    """

    def __init__(
        self,
        db: Database,
        *,
        feeds: FeedStore,
        audit: AuditLog,
        identity: Identity,
        net: bytes,
        clock: Clock,
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._audit = audit
        self._identity = identity
        self._net = net
        self._clock = clock
        self._latest: OrgProfile | None = None

    @property
    def latest(self) -> OrgProfile | None:
        """The profile as last read or written by this service (no database round
        trip: for page headers); None until :meth:`current` or :meth:`update` ran."""
        return self._latest

    async def current(self) -> OrgProfile | None:
        """The newest profile, or None before the node's first entry."""
        wire = await self._feeds.latest_of_kind(self._identity.node_id, protocol.Profile.KIND)
        if wire is not None:
            self._latest = _parse(wire)
        return self._latest if wire is not None else None

    async def update(
        self,
        by: Account,
        *,
        name_ar: str,
        name_en: str,
        registration: str,
        governorate: str,
        sectors: Sequence[str],
    ) -> OrgProfile:
        """Append a new profile with these details (endpoints and role are kept).

        Raises:
            AccountError: ``by`` may not edit settings.
            ProfileError: a value the protocol refuses (code BAD_VALUE and a message
                naming the field); nothing was appended.
            StorageError: the database failed; nothing was appended.
        """
        authorize(by, Permission.EDIT_SETTINGS)
        old = await self.current()
        try:
            body = protocol.Profile(
                enc_key=self._identity.enc_key,
                endpoints=list(old.endpoints) if old else [],
                governorate=governorate,
                name_ar=name_ar.strip(),
                name_en=name_en.strip(),
                registration=registration.strip(),
                role=old.role if old else "ngo",
                sectors=sorted(set(sectors)),
            )
        except protocol.ProtocolError as error:
            raise ProfileError(error.message, code=error.code) from None
        now_ms = self._clock.now_ms()
        changed = sorted(
            name
            for name in ("name_ar", "name_en", "registration", "governorate", "sectors")
            if old is None or getattr(old, name) != _as_tuple(getattr(body, name))
        )
        entry = await self._db.write(self._update_txn, by, body, changed, now_ms)
        self._latest = _parse(entry.wire)
        return self._latest

    def _update_txn(
        self,
        conn: Connection,
        by: Account,
        body: protocol.Profile,
        changed: list[str],
        now_ms: int,
    ) -> protocol.Entry:
        self._audit.lock_txn(conn)
        key, net = self._identity.signing_key, self._net
        entry = self._feeds.append_own_txn(
            conn,
            lambda head: protocol.append(head, body, key=key, net=net, now_ms=now_ms),
            now_ms,
        )
        self._audit.record_txn(
            conn,
            by.id,
            "settings.profile",
            f"entry:{entry.seq}",
            {"fields": ",".join(changed)},
            now_ms=now_ms,
        )
        return entry


def _as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value
