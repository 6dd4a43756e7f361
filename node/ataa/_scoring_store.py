"""The scoring store: versioned need-scoring models and every score computed.

``ataa_models.version`` is this node's own counter (1, 2, ...), the key that scores
name; the model's ``id`` and ``version`` fields are its author's label and are kept in
the body. Exactly one version is active. Setting a model whose digest equals the
active one's changes nothing; any other model becomes a new active version, and older
versions are kept, as are the scores they produced (``ataa_scores`` has one row per
household and version), so a breakdown shown last month can be shown again.

A new version makes every household's current score stale. :meth:`ScoringStore.rescore`
brings them to the active version in batches (a node with 100,000 households must not
hold the write lock for the minute that takes), and :meth:`ScoringStore.progress`
says how far it got. Who may set a model (``Permission.EDIT_SCORING``) is the web
layer's check; this store records who did.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, func, or_, select, update

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.storage import Database
from node.storage._schema import ataa_households, ataa_models, ataa_scores

from ._datakeys import DataKeys
from ._errors import HouseholdError, HouseholdErrorCode
from ._model import ScoringModel
from ._model_json import default_model, dump_model, load_model, model_digest
from ._record import HouseholdRecord
from ._score import Score, score

__all__ = [
    "RESCORE_BATCH",
    "BreakdownLine",
    "ModelVersion",
    "ScoringStore",
    "StoredScore",
    "decode_record",
    "stored_score_txn",
    "today",
]

#: Households re-scored per transaction (see ``_datakeys.ROTATE_BATCH`` for the size).
RESCORE_BATCH: Final = 500

_log = logging.getLogger(__name__)


def today(now_ms: int) -> datetime.date:
    """The date ages are computed on. UTC: a few hours' difference to Baghdad moves an
    age by a day at most once a year, and every node then agrees."""
    return datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC).date()


def decode_record(plaintext: bytes) -> HouseholdRecord:
    """A household record from its decrypted ``pii`` column (canonical msgpack of
    :meth:`HouseholdRecord.to_dict`).

    Raises:
        HouseholdError: CORRUPT if it does not decode to a valid record.
    """
    try:
        data = protocol.decode(plaintext)
        if type(data) is not dict:
            raise ValueError("not a map")
        return HouseholdRecord.from_dict(data)
    except (protocol.CodedError, ValueError, KeyError, TypeError):
        raise HouseholdError(
            "a household record does not decode", code=HouseholdErrorCode.CORRUPT
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakdownLine:
    """One rule's part of a stored score (``Score.breakdown`` plus the rule's weight)."""

    indicator: str
    value: bool | int | str | None
    points: int
    weight: int
    weighted: int
    missing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredScore:
    """A score as stored in ``ataa_scores``: under which model version, and why."""

    household_id: int
    model_version: int
    score: int
    band: str
    breakdown: tuple[BreakdownLine, ...]
    computed_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion:
    """One stored model version (the body: :meth:`ScoringStore.model`)."""

    version: int
    model_id: str
    digest: str
    active: bool
    created_by: int | None
    created_ms: int


def _breakdown_json(model: ScoringModel, result: Score) -> str:
    lines = [
        {
            "indicator": line.indicator,
            "value": line.value,
            "points": line.points,
            "weight": rule.weight,
            "weighted": line.weighted,
            "missing": line.missing,
        }
        for rule, line in zip(model.indicators, result.breakdown, strict=True)
    ]
    return json.dumps(lines, ensure_ascii=False, separators=(",", ":"))


def _stored(row: Any) -> StoredScore:
    return StoredScore(
        household_id=row.household_id,
        model_version=row.model_version,
        score=row.score,
        band=row.band,
        breakdown=tuple(BreakdownLine(**line) for line in json.loads(row.breakdown)),
        computed_ms=row.computed_ms,
    )


class ScoringStore:
    """Scoring models and scores (one instance per node).

    Args:
        db: the node's database, upgraded.
        audit: where model changes are recorded.
        clock: for ``created_ms``/``computed_ms`` and ages ("today").
        keys: to decrypt households when re-scoring them.
    """

    def __init__(self, db: Database, audit: AuditLog, clock: Clock, *, keys: DataKeys) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._keys = keys
        self._models: dict[int, ScoringModel] = {}
        self._task: asyncio.Task[int] | None = None

    # -- models ---------------------------------------------------------------------

    async def ensure_default(self) -> int:
        """Store the default model as version 1, active, if no model is stored yet;
        returns the active version."""
        version, _model = await self._db.write(self.active_txn)
        return version

    async def active(self) -> tuple[int, ScoringModel]:
        """The active ``(version, model)`` (the default model stored first if none)."""
        return await self._db.write(self.active_txn)

    async def versions(self) -> list[ModelVersion]:
        """Every stored version, newest first."""
        return await self._db.read(_versions_txn)

    async def model(self, version: int) -> ScoringModel:
        """The model of a stored version (for the labels of an old score).

        Raises:
            HouseholdError: NOT_FOUND.
        """
        return await self._db.read(self._model_txn, version)

    async def set_model(self, text: str, *, actor: int | None) -> int:
        """Make the model in ``text`` (JSON, ``docs/scoring.md``) the active one.

        Returns:
            The active version: the current one if ``text`` is the same model (same
            digest), else a new version (audited as ``ataa.scoring.model``).

        Raises:
            ScoringError: BAD_MODEL, with the JSON path of the problem.
        """
        model = load_model(text)
        version = await self._db.write(self._set_txn, model, actor, self._clock.now_ms())
        self._models.setdefault(version, model)
        return version

    def active_txn(self, conn: Connection) -> tuple[int, ScoringModel]:
        """The active ``(version, model)`` within ``conn``'s write transaction."""
        row = conn.execute(
            select(ataa_models.c.version).where(ataa_models.c.active.is_(True))
        ).one_or_none()
        if row is not None:
            return row.version, self._model_txn(conn, row.version)
        newest = conn.execute(select(func.max(ataa_models.c.version))).scalar_one()
        if newest is not None:  # none active (edited by hand): the newest wins
            conn.execute(
                update(ataa_models).where(ataa_models.c.version == newest).values(active=True)
            )
            return newest, self._model_txn(conn, newest)
        model = default_model()
        conn.execute(
            ataa_models.insert().values(
                version=1,
                model_id=model.id,
                digest=model_digest(model),
                body=dump_model(model),
                active=True,
                created_by=None,
                created_ms=self._clock.now_ms(),
            )
        )
        self._models[1] = model
        return 1, model

    def _model_txn(self, conn: Connection, version: int) -> ScoringModel:
        model = self._models.get(version)
        if model is None:
            body = conn.execute(
                select(ataa_models.c.body).where(ataa_models.c.version == version)
            ).scalar_one_or_none()
            if body is None:
                raise HouseholdError(
                    f"no scoring model version {version}", code=HouseholdErrorCode.NOT_FOUND
                )
            model = load_model(body)
            self._models[version] = model
        return model

    def _set_txn(
        self, conn: Connection, model: ScoringModel, actor: int | None, now_ms: int
    ) -> int:
        self._audit.lock_txn(conn)  # two coordinators saving at once: one after the other
        active, current = self.active_txn(conn)
        digest = model_digest(model)
        if model_digest(current) == digest:
            return active
        newest = conn.execute(select(func.max(ataa_models.c.version))).scalar_one()
        version = int(newest) + 1
        conn.execute(update(ataa_models).where(ataa_models.c.active.is_(True)).values(active=False))
        conn.execute(
            ataa_models.insert().values(
                version=version,
                model_id=model.id,
                digest=digest,
                body=dump_model(model),
                active=True,
                created_by=actor,
                created_ms=now_ms,
            )
        )
        self._audit.record_txn(
            conn,
            actor,
            "ataa.scoring.model",
            f"model:{version}",
            {
                "version": version,
                "model_id": model.id,
                "model_version": model.version,
                "digest": digest,
                "previous": active,
            },
            now_ms=now_ms,
        )
        return version

    # -- scores ---------------------------------------------------------------------

    def score_txn(
        self, conn: Connection, record: HouseholdRecord, now_ms: int
    ) -> tuple[int, Score]:
        """Score ``record`` with the active model: ``(version, score)``."""
        version, model = self.active_txn(conn)
        return version, score(model, record.facts(today(now_ms)))

    def keep_txn(
        self, conn: Connection, household_id: int, version: int, result: Score, now_ms: int
    ) -> None:
        """Store ``result`` as the household's score under ``version`` (replacing an
        earlier one of the same version: a record edited under one model)."""
        values = {
            "score": result.total,
            "band": str(result.band),
            "breakdown": _breakdown_json(result.model, result),
            "computed_ms": now_ms,
        }
        where = (ataa_scores.c.household_id == household_id) & (
            ataa_scores.c.model_version == version
        )
        if conn.execute(select(ataa_scores.c.score).where(where)).one_or_none() is None:
            conn.execute(
                ataa_scores.insert().values(
                    household_id=household_id, model_version=version, **values
                )
            )
        else:
            conn.execute(update(ataa_scores).where(where).values(**values))

    async def scores(self, household_id: int) -> list[StoredScore]:
        """Every stored score of a household, newest model version first."""
        return await self._db.read(_scores_txn, household_id)

    # -- re-scoring -----------------------------------------------------------------

    async def rescore(self, batch: int = RESCORE_BATCH) -> int:
        """Re-score every household not scored with the active version, ``batch`` per
        transaction; earlier scores are kept. Returns how many were re-scored."""
        if batch < 1:
            raise HouseholdError("batch must be at least 1", code=HouseholdErrorCode.BAD_REQUEST)
        total = 0
        while True:
            done = await self._db.write(self._rescore_txn, batch, self._clock.now_ms())
            total += done
            if done < batch:
                return total

    def _rescore_txn(self, conn: Connection, batch: int, now_ms: int) -> int:
        version, model = self.active_txn(conn)
        rows = conn.execute(
            select(ataa_households.c.id, ataa_households.c.key_id, ataa_households.c.pii)
            .where(
                or_(
                    ataa_households.c.model_version.is_(None),
                    ataa_households.c.model_version != version,
                )
            )
            .order_by(ataa_households.c.id)
            .limit(batch)
            .with_for_update()
        ).all()
        day = today(now_ms)
        for row in rows:
            record = decode_record(self._keys.decrypt_txn(conn, row.key_id, bytes(row.pii)))
            result = score(model, record.facts(day))
            self.keep_txn(conn, row.id, version, result, now_ms)
            conn.execute(
                update(ataa_households)
                .where(ataa_households.c.id == row.id)
                .values(score=result.total, band=str(result.band), model_version=version)
            )
        return len(rows)

    async def progress(self) -> tuple[int, int]:
        """``(done, total)``: households scored with the active version, and all."""
        return await self._db.read(_progress_txn)

    def start_rescore(self) -> asyncio.Task[int]:
        """Run :meth:`run_rescore` in the background unless it already runs (the
        daemon calls this at start and after a model change); returns the task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run_rescore(), name="ataa-rescore")
        return self._task

    async def run_rescore(self) -> int:
        """:meth:`rescore`, logged; for a background task (errors are logged, not
        raised, so the daemon keeps running; the next start retries)."""
        try:
            done = await self.rescore()
        except Exception:
            _log.exception("re-scoring failed", extra={"event": "ataa.rescore.error"})
            return 0
        if done:
            _log.info(
                "re-scored %d households",
                done,
                extra={"event": "ataa.rescore.done", "count": done},
            )
        return done

    async def close(self) -> None:
        """Stop a background re-scoring (the next :meth:`start_rescore` resumes it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _versions_txn(conn: Connection) -> list[ModelVersion]:
    return [
        ModelVersion(
            version=row.version,
            model_id=row.model_id,
            digest=row.digest,
            active=bool(row.active),
            created_by=row.created_by,
            created_ms=row.created_ms,
        )
        for row in conn.execute(
            select(
                ataa_models.c.version,
                ataa_models.c.model_id,
                ataa_models.c.digest,
                ataa_models.c.active,
                ataa_models.c.created_by,
                ataa_models.c.created_ms,
            ).order_by(ataa_models.c.version.desc())
        )
    ]


def _scores_txn(conn: Connection, household_id: int) -> list[StoredScore]:
    return [
        _stored(row)
        for row in conn.execute(
            select(ataa_scores)
            .where(ataa_scores.c.household_id == household_id)
            .order_by(ataa_scores.c.model_version.desc())
        )
    ]


def _progress_txn(conn: Connection) -> tuple[int, int]:
    active = conn.execute(
        select(ataa_models.c.version).where(ataa_models.c.active.is_(True))
    ).scalar_one_or_none()
    total = int(conn.execute(select(func.count()).select_from(ataa_households)).scalar_one())
    if active is None:
        return 0, total
    done = conn.execute(
        select(func.count())
        .select_from(ataa_households)
        .where(ataa_households.c.model_version == active)
    ).scalar_one()
    return int(done), total


def stored_score_txn(conn: Connection, household_id: int, version: int) -> StoredScore | None:
    """The household's score under ``version``, if stored."""
    row = conn.execute(
        select(ataa_scores).where(
            ataa_scores.c.household_id == household_id, ataa_scores.c.model_version == version
        )
    ).one_or_none()
    return None if row is None else _stored(row)
