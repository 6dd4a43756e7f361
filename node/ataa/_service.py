"""Ata'a assembled: every store and service of one node, built together, and the
background work they need while the node runs (re-scoring after a model change,
publishing deliveries whose pseudonym arrived late, indexing allocations held from
before the index existed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from node.audit import AuditLog
from node.clock import Clock
from node.identity import Identity
from node.oracle import PseudonymService
from node.storage import Database, FeedStore
from node.storage._schema import (
    ataa_allocations,
    ataa_dist_households,
    ataa_households,
    ataa_imports,
    pseudonyms,
)

from . import _allocations
from ._blind import BlindIndex
from ._datakeys import DataKeys
from ._distributions import DistributionService
from ._duplicates import Duplicates
from ._households import HouseholdService
from ._import import ImportService
from ._queue import PriorityQueue
from ._reports import ReportService
from ._scoring_store import ScoringStore

__all__ = ["PUBLISH_INTERVAL_S", "Ataa", "ataa_status", "build_ataa"]

#: How often deliveries waiting for their pseudonym are retried (the pseudonym worker
#: itself retries with backoff; this only notices that it succeeded).
PUBLISH_INTERVAL_S: Final = 15.0

_log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class Ataa:
    """One node's Ata'a: what pages, the API, the CLI and the demo reach."""

    keys: DataKeys
    households: HouseholdService
    scoring: ScoringStore
    duplicates: Duplicates
    imports: ImportService
    queue: PriorityQueue
    distributions: DistributionService
    reports: ReportService
    db: Database
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: Import runs in progress (the page polls their rows), kept so they are not
    #: garbage-collected and are cancelled on close.
    _imports: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> None:
        """Before serving: the default scoring model, the allocation index caught up
        with entries stored before it existed; then the background loops."""
        await self.scoring.ensure_default()
        await self.imports.interrupt_running()  # a run the last process left behind
        indexed = await _allocations.backfill(self.db)
        if indexed:
            _log.info("allocations indexed", extra={"event": "ataa.backfill", "count": indexed})
        self.scoring.start_rescore()
        self._tasks.append(asyncio.create_task(self._publish_loop(), name="ataa-publish"))

    def run_import(
        self, import_id: int, data: bytes, mapping: dict[str, str], actor: int | None
    ) -> None:
        """Run an import started with ``imports.start`` in the background."""
        task = asyncio.create_task(
            self.imports.run(import_id, data, mapping, actor), name=f"ataa-import-{import_id}"
        )
        self._imports.add(task)
        task.add_done_callback(self._imports.discard)

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            try:
                await self.distributions.publish_pending()
            except Exception:
                _log.exception("publishing deliveries failed", extra={"event": "ataa.publish"})

    async def close(self) -> None:
        tasks = [*self._tasks, *self._imports]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.scoring.close()


def build_ataa(
    db: Database,
    *,
    feeds: FeedStore,
    audit: AuditLog,
    identity: Identity,
    clock: Clock,
    net: Callable[[], bytes],
    pseudonyms: PseudonymService,
    on_appended: Callable[[], None] | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> Ataa:
    """Every Ata'a service of one node, sharing its database, feed and audit log.
    Registers the allocation indexer on ``feeds``."""
    _allocations.install(feeds)
    keys = DataKeys(db, identity, clock, random_bytes, audit=audit)
    scoring = ScoringStore(db, audit, clock, keys=keys)
    households = HouseholdService(
        db,
        keys=keys,
        blind=BlindIndex(identity),
        audit=audit,
        clock=clock,
        pseudonyms=pseudonyms,
        scoring=scoring,
    )
    queue = PriorityQueue(db, own=identity.node_id, clock=clock, audit=audit)
    return Ataa(
        keys=keys,
        households=households,
        scoring=scoring,
        duplicates=Duplicates(db, audit, clock),
        imports=ImportService(db, sink=households, audit=audit, clock=clock),
        queue=queue,
        distributions=DistributionService(
            db,
            feeds=feeds,
            identity=identity,
            net=net,
            queue=queue,
            audit=audit,
            clock=clock,
            pseudonyms=pseudonyms,
            on_appended=on_appended,
        ),
        reports=ReportService(db, own=identity.node_id),
        db=db,
    )


async def ataa_status(db: Database) -> dict[str, int]:
    """Counts for ``watan status``: households by state, work waiting (pseudonyms,
    unpublished deliveries, running imports), allocations indexed. No PII."""
    return await db.read(_status_txn)


def _status_txn(conn: Connection) -> dict[str, int]:
    def count(table: Any, *where: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    h, d = ataa_households.c, ataa_dist_households.c
    return {
        "households": count(ataa_households, h.status == "active"),
        "households_weak": count(ataa_households, h.status == "active", h.weak.is_(True)),
        "pseudonyms_pending": count(pseudonyms, pseudonyms.c.epoch == 0),
        "deliveries": count(ataa_dist_households, d.state == "delivered"),
        "deliveries_unpublished": count(
            ataa_dist_households, d.state == "delivered", d.entry_seq.is_(None)
        ),
        "imports_running": count(ataa_imports, ataa_imports.c.state == "running"),
        "allocations_indexed": count(ataa_allocations),
        "allocations_voided": count(ataa_allocations, ataa_allocations.c.void_reason.is_not(None)),
    }
