"""Households, pseudonyms and allocation entries for the queue, distribution and index
tests: rows inserted directly (the household service is tested elsewhere), peer
entries signed with the fixed peer keys and ingested as replication would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

import protocol
from node.ataa import DistributionService, PriorityQueue, install
from node.audit import AuditLog
from node.clock import FakeClock
from node.identity import Identity
from node.oracle import OracleError, OracleErrorCode
from node.storage import Database, FeedStore
from node.storage._schema import ataa_data_keys, ataa_households, pseudonyms

from .conftest import AUTHOR, KEY, NET, NOW

#: NOW is 2026-05-28T20:26:40Z: 23:26 in Baghdad, so "today" in Iraq is the 28th.
TODAY = "2026-05-28"
DISTRICT, GOVERNORATE = "IQG08Q05", "IQG08"
OTHER_DISTRICT, OTHER_GOVERNORATE = "IQG15Q05", "IQG15"
#: A third NGO's key (the conftest has ours and one peer's).
THIRD_KEY = protocol.signing_key(bytes(range(96, 128)))


def value(name: str) -> bytes:
    """A 32-byte pseudonym value (what the oracles would compute) named for a test."""
    return hashlib.sha256(b"pseudonym " + name.encode()).digest()


def mac(name: str) -> bytes:
    return hashlib.sha256(b"mac " + name.encode()).digest()


class Epochs:
    """Stands in for PseudonymService: the epoch in force, or no configuration."""

    def __init__(self, epoch: int | None = 1) -> None:
        self.epoch = epoch

    async def config(self) -> Any:
        if self.epoch is None:
            raise OracleError("no oracles configured", code=OracleErrorCode.NO_CONFIG)
        return self


class Feed:
    """Another NGO's feed: signs its allocations and voids; the test ingests them."""

    def __init__(self, key: protocol.SigningKey) -> None:
        self.key = key
        self.head: protocol.FeedHead | None = None

    @property
    def author(self) -> bytes:
        return protocol.public_key(self.key)

    def append(self, body: protocol.Body, *, now_ms: int = NOW) -> protocol.Entry:
        entry = protocol.append(self.head, body, key=self.key, net=NET, now_ms=now_ms)
        self.head = protocol.head_after(self.head, entry)
        return entry


def allocation(pseudonym: bytes, **changes: Any) -> protocol.Allocation:
    fields: dict[str, Any] = {
        "category": "food",
        "date": TODAY,
        "district": DISTRICT,
        "epoch": 1,
        "program": "winter-2026",
        "pseudonym": pseudonym,
        "quantity": 2,
        "unit": "basket",
        "value_iqd": 50_000,
    }
    fields.update(changes)
    return protocol.Allocation(**fields)


async def ingest(store: FeedStore, *entries: protocol.Entry) -> None:
    for entry in entries:
        result = await store.ingest(entry.wire, net=NET, now_ms=NOW)
        assert result.status == "stored"


@dataclass
class World:
    """One node's services on an upgraded database, with the index installed."""

    db: Database
    store: FeedStore
    audit: AuditLog
    clock: FakeClock
    queue: PriorityQueue
    epochs: Epochs
    appended: list[int] = field(default_factory=list)
    service: DistributionService | None = None

    @property
    def dist(self) -> DistributionService:
        assert self.service is not None
        return self.service


async def world(db: Database, *, epoch: int | None = 1) -> World:
    await db.upgrade()
    store = FeedStore(db, own=AUTHOR)
    install(store)
    audit = AuditLog(db)
    clock = FakeClock(NOW)
    queue = PriorityQueue(db, own=AUTHOR, clock=clock, audit=audit)
    made = World(db, store, audit, clock, queue, Epochs(epoch))
    made.service = DistributionService(
        db,
        feeds=store,
        identity=Identity(KEY, bytes(32)),
        net=lambda: NET,
        queue=queue,
        audit=audit,
        clock=clock,
        pseudonyms=made.epochs,
        on_appended=lambda: made.appended.append(1),
    )
    return made


async def household(
    db: Database,
    *,
    score: int | None,
    band: str | None = None,
    name: str | None = None,
    weak: bool = False,
    ready: int | None = 1,
    district: str = DISTRICT,
    governorate: str = GOVERNORATE,
    registered_ms: int = NOW,
    status: str = "active",
) -> int:
    """Insert a household; with ``name``, a pseudonym ``value(name)`` that is ready
    in epoch ``ready`` (None: pending). Returns its id."""

    def insert(conn: Connection) -> int:
        if conn.execute(ataa_data_keys.select()).first() is None:
            conn.execute(ataa_data_keys.insert().values(id=1, sealed=b"k", created_ms=NOW))
        result = conn.execute(
            ataa_households.insert().values(
                key_id=1,
                pii=b"sealed personal data",
                pseudonym_mac=None if name is None else mac(name),
                weak=weak,
                governorate=governorate,
                district=district,
                score=score,
                band=band,
                status=status,
                registered_ms=registered_ms,
                updated_ms=registered_ms,
            )
        )
        if name is not None and ready is not None:
            make_ready(conn, name, ready, weak=weak)
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    return await db.write(insert)


def make_ready(conn: Connection, name: str, epoch: int, *, weak: bool = False) -> None:
    conn.execute(
        pseudonyms.insert().values(
            mac=mac(name),
            epoch=epoch,
            weak=weak,
            value=value(name),
            sealed_input=None,
            attempts=0,
            next_ms=0,
            created_ms=NOW,
            updated_ms=NOW,
        )
    )


async def ready_pseudonym(db: Database, name: str, epoch: int = 1, *, weak: bool = False) -> None:
    await db.write(make_ready, name, epoch, weak=weak)
