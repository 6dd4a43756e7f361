"""The household store: registration, update, re-import, search and the audited view.

At rest a household is one encrypted blob (``pii``: the canonical msgpack of
:meth:`HouseholdRecord.to_dict` under a data key, ``_datakeys``) plus columns that are
not personal and serve queries: blind tokens (``_blind``), the pseudonym's cache key,
the area, displacement, member count and the current score.

Who sees what. Lists, search results and summaries show the head's name, decrypted,
next to the non-personal columns, and are not audited: staff with
``Permission.VIEW_HOUSEHOLDS`` work from them all day, an audit row per name shown
would bury the rows that matter, and a name alone is what a distribution sheet
prints anyway. The full record (national ID, phone, birth date, address, members'
health) is returned only by :meth:`HouseholdService.get`, which writes an
``ataa.household.view_pii`` audit row (actor, household id, purpose) in the same
transaction that reads it; the web layer requires ``Permission.VIEW_PII`` for it.

Every write encrypts, indexes, scores with the active model, records the score and
looks for duplicate suggestions in one transaction, and audits it without PII
(household id, import id). The pseudonym is asked for before that transaction
(``PseudonymService.lookup`` never waits for the network: a household registered
offline gets a pending pseudonym that the worker resolves later); the household keeps
only its cache key, and the queue joins ``pseudonyms`` on ``(mac, epoch)``.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, Protocol

from sqlalchemy import Connection, delete, func, select, update

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.oracle import PseudonymResult
from node.storage import Database
from node.storage._schema import ataa_households, ataa_name_index
from protocol.oprf import PseudonymInput

from ._blind import BlindIndex, NameTokens
from ._datakeys import DataKeys
from ._duplicates import MatchKeys, suggest_txn
from ._errors import HouseholdError, HouseholdErrorCode
from ._household_views import (
    HouseholdStatus,
    HouseholdSummary,
    HouseholdView,
    filtered,
    page,
    scalar_txn,
    search_query,
    states_txn,
    summaries_txn,
)
from ._record import HouseholdRecord
from ._scoring_store import ScoringStore, decode_record, stored_score_txn

__all__ = [
    "ARCHIVE_REASONS",
    "HouseholdService",
    "PseudonymLookup",
    "UpsertResult",
]

UpsertResult = Literal["created", "updated", "unchanged"]

#: Why a household leaves the active list: codes, not free text, because the reason
#: goes into the audit log, which must never hold PII (a typed note could name people).
ARCHIVE_REASONS: Final = ("moved", "deceased", "ineligible", "withdrew", "other")
#: What ``get``'s purpose may look like (it is audited): a short code such as ``view``,
#: ``edit``, ``delivery``.
_PURPOSE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")


class PseudonymLookup(Protocol):
    """What households need of ``node.oracle.PseudonymService``."""

    def mac(self, item: PseudonymInput) -> bytes: ...

    async def lookup(self, item: PseudonymInput) -> PseudonymResult: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pseudonym:
    mac: bytes | None
    weak: bool


_NO_PSEUDONYM: Final = _Pseudonym(mac=None, weak=False)


def _encode(record: HouseholdRecord) -> bytes:
    return protocol.encode(record.to_dict())


def _member_count(record: HouseholdRecord) -> int | None:
    return len(record.members) if record.members else record.member_count


def _not_found(household_id: int) -> HouseholdError:
    return HouseholdError(
        f"no household {household_id}",
        code=HouseholdErrorCode.NOT_FOUND,
        household_id=household_id,
    )


class HouseholdService:
    """Households of this node (one instance per node).

    Args:
        db: the node's database, upgraded.
        keys: data keys that encrypt the records.
        blind: blind tokens for search, re-import and duplicate suggestions.
        audit: where writes and PII views are recorded.
        clock: for timestamps and ages.
        pseudonyms: the node's pseudonym client, None on a node without federation.
        scoring: the active model; every write is scored with it.
    """

    def __init__(
        self,
        db: Database,
        *,
        keys: DataKeys,
        blind: BlindIndex,
        audit: AuditLog,
        clock: Clock,
        pseudonyms: PseudonymLookup | None,
        scoring: ScoringStore,
    ) -> None:
        self._db = db
        self._keys = keys
        self._blind = blind
        self._audit = audit
        self._clock = clock
        self._pseudonyms = pseudonyms
        self._scoring = scoring
        self._have_key = False

    # -- writes ---------------------------------------------------------------------

    async def create(
        self, record: HouseholdRecord, *, actor: int | None, import_id: int | None = None
    ) -> int:
        """Register a household; returns its id. Audited as ``ataa.household.create``.

        Raises:
            HouseholdError: DUPLICATE_NATIONAL_ID (``household_id`` names the household
                that has it); nothing is stored.
        """
        pseudonym = await self._prepare(record)
        return await self._db.write(
            self._create_txn, record, actor, import_id, pseudonym, self._clock.now_ms()
        )

    async def update(
        self, household_id: int, record: HouseholdRecord, *, actor: int | None
    ) -> None:
        """Replace a household's record (re-indexed, re-scored). A record equal to the
        stored one changes nothing and is not audited; otherwise audited as
        ``ataa.household.update``. Archived and merged households may be corrected too
        (they keep their status).

        Raises:
            HouseholdError: NOT_FOUND; DUPLICATE_NATIONAL_ID.
        """
        pseudonym = await self._prepare(record)
        await self._db.write(
            self._change_txn, household_id, record, actor, None, pseudonym, self._clock.now_ms()
        )

    async def upsert(
        self, record: HouseholdRecord, *, actor: int | None, import_id: int | None
    ) -> UpsertResult:
        """Create or update by national ID (what an import calls per row).

        A record with a national ID already held updates that household (whatever its
        status: an archived or merged one is corrected, not revived), or changes
        nothing if equal. A record without a national ID is always created: duplicate
        suggestions catch a second registration.
        """
        pseudonym = await self._prepare(record)
        return await self._db.write(
            self._upsert_txn, record, actor, import_id, pseudonym, self._clock.now_ms()
        )

    async def archive(self, household_id: int, *, actor: int | None, reason: str) -> None:
        """Take an active household off lists, search and the queue. Audited as
        ``ataa.household.archive`` with the reason code.

        Args:
            reason: one of :data:`ARCHIVE_REASONS`.

        Raises:
            HouseholdError: BAD_REQUEST for another reason; NOT_FOUND; NOT_ACTIVE.
        """
        if reason not in ARCHIVE_REASONS:
            raise HouseholdError(
                "reason must be one of " + ", ".join(ARCHIVE_REASONS),
                code=HouseholdErrorCode.BAD_REQUEST,
            )
        await self._db.write(self._archive_txn, household_id, actor, reason, self._clock.now_ms())

    async def _prepare(self, record: HouseholdRecord) -> _Pseudonym:
        if not self._have_key:  # the first key in a transaction of its own (_datakeys)
            await self._keys.current()
            self._have_key = True
        item = record.pseudonym_input()
        if item is None or self._pseudonyms is None:
            return _NO_PSEUDONYM
        await self._pseudonyms.lookup(item)  # queues it if not cached; never waits
        return _Pseudonym(mac=self._pseudonyms.mac(item), weak=item.weak)

    def _nid(self, record: HouseholdRecord) -> bytes | None:
        return None if record.national_id is None else self._blind.national_id(record.national_id)

    def _holder_txn(self, conn: Connection, nid: bytes | None) -> int | None:
        if nid is None:
            return None
        return conn.execute(
            select(ataa_households.c.id).where(ataa_households.c.nid_index == nid)
        ).scalar_one_or_none()

    def _columns(
        self, conn: Connection, record: HouseholdRecord, pseudonym: _Pseudonym, now_ms: int
    ) -> tuple[dict[str, Any], NameTokens, MatchKeys, tuple[int, Any]]:
        """Everything a write stores, and what it indexes and scores."""
        key_id, blob = self._keys.encrypt_txn(conn, _encode(record))
        version, result = self._scoring.score_txn(conn, record, now_ms)
        phone = None if record.phone is None else self._blind.phone(record.phone)
        tokens = self._blind.names(record)
        values = {
            "key_id": key_id,
            "pii": blob,
            "nid_index": self._nid(record),
            "phone_index": phone,
            "pseudonym_mac": pseudonym.mac,
            "weak": pseudonym.weak,
            "governorate": record.governorate,
            "district": record.district,
            "displacement": record.displacement,
            "members": _member_count(record),
            "score": result.total,
            "band": str(result.band),
            "model_version": version,
            "updated_ms": now_ms,
        }
        match = MatchKeys(
            phone=phone,
            weak_mac=pseudonym.mac if pseudonym.weak else None,
            parts=tokens.parts,
            mother_year=tokens.mother_year,
        )
        return values, tokens, match, (version, result)

    def _after_write_txn(
        self,
        conn: Connection,
        household_id: int,
        tokens: NameTokens,
        match: MatchKeys,
        scored: tuple[int, Any],
        now_ms: int,
        *,
        active: bool,
    ) -> None:
        conn.execute(delete(ataa_name_index).where(ataa_name_index.c.household_id == household_id))
        if tokens.rows:
            conn.execute(
                ataa_name_index.insert(),
                [{"token": t, "household_id": household_id} for t in sorted(tokens.rows)],
            )
        self._scoring.keep_txn(conn, household_id, scored[0], scored[1], now_ms)
        if active:
            suggest_txn(conn, household_id, match, now_ms)

    def _create_txn(
        self,
        conn: Connection,
        record: HouseholdRecord,
        actor: int | None,
        import_id: int | None,
        pseudonym: _Pseudonym,
        now_ms: int,
    ) -> int:
        holder = self._holder_txn(conn, self._nid(record))
        if holder is not None:
            raise HouseholdError(
                f"household {holder} already has this national ID",
                code=HouseholdErrorCode.DUPLICATE_NATIONAL_ID,
                household_id=holder,
            )
        values, tokens, match, scored = self._columns(conn, record, pseudonym, now_ms)
        household_id = int(
            conn.execute(
                ataa_households.insert()
                .values(
                    **values,
                    status="active",
                    merged_into=None,
                    import_id=import_id,
                    created_by=actor,
                    registered_ms=now_ms,
                )
                .returning(ataa_households.c.id)
            ).scalar_one()
        )
        self._after_write_txn(conn, household_id, tokens, match, scored, now_ms, active=True)
        self._audit_write(conn, "create", household_id, actor, import_id, now_ms)
        return household_id

    def _change_txn(
        self,
        conn: Connection,
        household_id: int,
        record: HouseholdRecord,
        actor: int | None,
        import_id: int | None,
        pseudonym: _Pseudonym,
        now_ms: int,
    ) -> bool:
        row = conn.execute(
            select(
                ataa_households.c.key_id,
                ataa_households.c.pii,
                ataa_households.c.pseudonym_mac,
                ataa_households.c.weak,
                ataa_households.c.status,
            )
            .where(ataa_households.c.id == household_id)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise _not_found(household_id)
        old = decode_record(self._keys.decrypt_txn(conn, row.key_id, bytes(row.pii)))
        old_mac = None if row.pseudonym_mac is None else bytes(row.pseudonym_mac)
        if old == record and (old_mac, bool(row.weak)) == (pseudonym.mac, pseudonym.weak):
            return False
        holder = self._holder_txn(conn, self._nid(record))
        if holder is not None and holder != household_id:
            raise HouseholdError(
                f"household {holder} already has this national ID",
                code=HouseholdErrorCode.DUPLICATE_NATIONAL_ID,
                household_id=holder,
            )
        values, tokens, match, scored = self._columns(conn, record, pseudonym, now_ms)
        conn.execute(
            update(ataa_households).where(ataa_households.c.id == household_id).values(**values)
        )
        active = row.status == "active"
        self._after_write_txn(conn, household_id, tokens, match, scored, now_ms, active=active)
        self._audit_write(conn, "update", household_id, actor, import_id, now_ms)
        return True

    def _upsert_txn(
        self,
        conn: Connection,
        record: HouseholdRecord,
        actor: int | None,
        import_id: int | None,
        pseudonym: _Pseudonym,
        now_ms: int,
    ) -> UpsertResult:
        holder = self._holder_txn(conn, self._nid(record))
        if holder is None:
            self._create_txn(conn, record, actor, import_id, pseudonym, now_ms)
            return "created"
        changed = self._change_txn(conn, holder, record, actor, import_id, pseudonym, now_ms)
        return "updated" if changed else "unchanged"

    def _audit_write(
        self,
        conn: Connection,
        verb: str,
        household_id: int,
        actor: int | None,
        import_id: int | None,
        now_ms: int,
    ) -> None:
        details: dict[str, int | None] = {"household": household_id}
        if import_id is not None:
            details["import"] = import_id
        self._audit.record_txn(
            conn,
            actor,
            f"ataa.household.{verb}",
            f"household:{household_id}",
            details,
            now_ms=now_ms,
        )

    def _archive_txn(
        self, conn: Connection, household_id: int, actor: int | None, reason: str, now_ms: int
    ) -> None:
        status = conn.execute(
            select(ataa_households.c.status)
            .where(ataa_households.c.id == household_id)
            .with_for_update()
        ).scalar_one_or_none()
        if status is None:
            raise _not_found(household_id)
        if status != "active":
            raise HouseholdError(
                f"household {household_id} is {status}, not active",
                code=HouseholdErrorCode.NOT_ACTIVE,
                household_id=household_id,
            )
        conn.execute(
            update(ataa_households)
            .where(ataa_households.c.id == household_id)
            .values(status="archived", updated_ms=now_ms)
        )
        self._audit.record_txn(
            conn,
            actor,
            "ataa.household.archive",
            f"household:{household_id}",
            {"household": household_id, "reason": reason},
            now_ms=now_ms,
        )

    # -- the audited view -----------------------------------------------------------

    async def get(
        self, household_id: int, *, actor: int | None, purpose: str = "view"
    ) -> HouseholdView:
        """The full record, decrypted, with its current score and pseudonym state.
        Writes an ``ataa.household.view_pii`` audit row (actor, household, purpose) in
        the transaction that reads the record.

        Args:
            purpose: why it is opened, a short code (``view``, ``edit``, ``delivery``).

        Raises:
            HouseholdError: NOT_FOUND; BAD_REQUEST for a malformed purpose.
        """
        if not isinstance(purpose, str) or _PURPOSE.fullmatch(purpose) is None:
            raise HouseholdError(
                "purpose must be a short lower-case code", code=HouseholdErrorCode.BAD_REQUEST
            )
        view = await self._db.write(
            self._view_txn, household_id, actor, purpose, self._clock.now_ms()
        )
        item = view.record.pseudonym_input()
        if item is None or self._pseudonyms is None:
            return view
        result = await self._pseudonyms.lookup(item)  # the state in the epoch in force
        return replace(view, pseudonym=result.state, weak=result.weak, pseudonym_error=result.error)

    def _view_txn(
        self, conn: Connection, household_id: int, actor: int | None, purpose: str, now_ms: int
    ) -> HouseholdView:
        row = conn.execute(
            select(ataa_households).where(ataa_households.c.id == household_id)
        ).one_or_none()
        if row is None:
            raise _not_found(household_id)
        record = decode_record(self._keys.decrypt_txn(conn, row.key_id, bytes(row.pii)))
        current = None
        if row.model_version is not None:
            current = stored_score_txn(conn, household_id, row.model_version)
        state = states_txn(conn, [row]).get(household_id, "none")
        self._audit.record_txn(
            conn,
            actor,
            "ataa.household.view_pii",
            f"household:{household_id}",
            {"household": household_id, "purpose": purpose},
            now_ms=now_ms,
        )
        return HouseholdView(
            id=household_id,
            record=record,
            status=row.status,
            merged_into=row.merged_into,
            score=current,
            pseudonym=state,
            weak=bool(row.weak),
            pseudonym_error=None,
            import_id=row.import_id,
            created_by=row.created_by,
            registered_ms=row.registered_ms,
            updated_ms=row.updated_ms,
        )

    # -- lists (names only, not audited) --------------------------------------------

    async def summary(self, household_id: int) -> HouseholdSummary:
        """One household as lists show it (not audited: name and non-PII columns).

        Raises:
            HouseholdError: NOT_FOUND.
        """
        found = await self._db.read(self._summaries_by_id_txn, [household_id])
        if not found:
            raise _not_found(household_id)
        return found[0]

    async def summaries(self, household_ids: builtins.list[int]) -> builtins.list[HouseholdSummary]:
        """Several households as lists show them, in the order asked; unknown ids are
        left out (for the queue and distribution sheets)."""
        return await self._db.read(self._summaries_by_id_txn, household_ids)

    async def list(
        self,
        *,
        status: HouseholdStatus = "active",
        governorate: str | None = None,
        district: str | None = None,
        band: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[HouseholdSummary]:
        """Households by score, highest first (unscored last, then by id)."""
        query = filtered(select(ataa_households), status, governorate, district, band)
        query = query.order_by(
            ataa_households.c.score.is_(None),
            ataa_households.c.score.desc(),
            ataa_households.c.id,
        )
        query = query.limit(page(limit)).offset(max(0, offset))
        return await self._db.read(summaries_txn, self._keys, query)

    async def count(
        self,
        *,
        status: HouseholdStatus = "active",
        governorate: str | None = None,
        district: str | None = None,
        band: str | None = None,
    ) -> int:
        """How many households :meth:`list` would page through."""
        query = filtered(
            select(func.count()).select_from(ataa_households), status, governorate, district, band
        )
        return await self._db.read(scalar_txn, query)

    async def search(
        self, query: str, *, limit: int = 50, include_inactive: bool = False
    ) -> builtins.list[HouseholdSummary]:
        """Households matching what staff typed (not audited).

        A number is looked up as a national ID and as a phone (any digit script,
        spaces, ``+964``/``0`` prefixes); anything else as name words, every one of
        which must be in the head's or mother's name (whole words, after Arabic
        normalization). Households whose given and father's names are the first two
        words rank first, then by score.
        """
        parsed = self._blind.query(query)
        if parsed.empty:
            return []
        sql = search_query(parsed, include_inactive=include_inactive, limit=limit)
        return await self._db.read(summaries_txn, self._keys, sql)

    def _summaries_by_id_txn(
        self, conn: Connection, household_ids: builtins.list[int]
    ) -> builtins.list[HouseholdSummary]:
        if not household_ids:
            return []
        query = select(ataa_households).where(ataa_households.c.id.in_(set(household_ids)))
        found = {s.id: s for s in summaries_txn(conn, self._keys, query)}
        return [found[i] for i in household_ids if i in found]
