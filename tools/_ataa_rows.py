"""Federation-scale rows for the Ata'a benchmark (:mod:`tools.bench_ataa`), and the
bulk loader that writes them straight into the tables.

The rows are what a node of a 20-NGO federation would hold: households with the
non-personal columns and score of synthetic households (:mod:`tools._synthetic`,
scored with the default model) and a PII blob of random bytes of the size a real
encrypted record has (ranking never decrypts); each household's pseudonym ready; and
the allocation index with its ``entries`` rows (a placeholder wire: verifying a million
signatures is the ingest benchmark's job, not the queue's). 30% of households are
matched by 1-5 allocations; every other allocation names a pseudonym this node does
not know (other NGOs' beneficiaries).
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Table, event, text
from sqlalchemy.engine import Connection

import protocol
from node import geo
from node.ataa import default_model, score
from node.storage import Database
from node.storage._schema import (
    ataa_allocations,
    ataa_data_keys,
    ataa_households,
    entries,
    pseudonyms,
)

from . import _synthetic

__all__ = [
    "AUTHORS",
    "DAYS",
    "EPOCH",
    "MATCHED_SHARE",
    "SMALL_SHARE",
    "WINDOW_DAYS",
    "Dataset",
    "load",
]

AUTHORS: Final = 20
#: Allocation dates spread over this many days back from today.
DAYS: Final = 90
#: The queue's default window (``QueueSettings.window_days``).
WINDOW_DAYS: Final = 30
MATCHED_SHARE: Final = 0.3
#: Most allocations one matched household has (1..this, uniformly: 3 on average).
MAX_PER_MATCHED: Final = 5
#: Households in the small district: 0.1%, fewer than the queue's first candidates.
SMALL_SHARE: Final = 0.001
SMALL_GOVERNORATE: Final = "IQG10"
#: Rows per write transaction while loading.
BATCH: Final = 20_000
#: Synthetic households whose profiles (score, band, area, size) the rows copy.
PROFILES: Final = 3_000
EPOCH: Final = 1
_WIRE: Final = b"bench placeholder wire"
_VALUES: Final = (25_000, 50_000, 75_000, 100_000, 150_000, 250_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Profile:
    """What a household row copies from a scored synthetic household."""

    score: int
    band: str
    governorate: str
    district: str
    displacement: str | None
    members: int
    pii_bytes: int


def _profiles(count: int, today: datetime.date) -> list[_Profile]:
    model = default_model()
    out: list[_Profile] = []
    for record in _synthetic.households(7, count):
        result = score(model, record.facts(today))
        out.append(
            _Profile(
                score=result.total,
                band=str(result.band),
                governorate=record.governorate,
                district=record.district,
                displacement=record.displacement,
                members=len(record.members),
                # secretbox: 24-byte nonce and 16-byte tag around the encoded record
                pii_bytes=len(protocol.encode(record.to_dict())) + 40,
            )
        )
    return out


#: One table's rows of a batch: the table, its columns, the rows as tuples.
_Rows = tuple[Table, tuple[str, ...], list[tuple[Any, ...]]]
_HOUSEHOLD_COLUMNS: Final = (
    "id", "key_id", "pii", "nid_index", "phone_index", "pseudonym_mac", "weak",
    "governorate", "district", "displacement", "members", "score", "band",
    "model_version", "status", "registered_ms", "updated_ms",
)  # fmt: skip
_PSEUDONYM_COLUMNS: Final = (
    "mac", "epoch", "weak", "value", "attempts", "next_ms", "created_ms", "updated_ms",
)  # fmt: skip
_ENTRY_COLUMNS: Final = ("author", "seq", "id", "prev", "ts", "kind", "wire", "received_ms")
_ALLOCATION_COLUMNS: Final = (
    "author", "seq", "entry_id", "pseudonym", "epoch", "category", "unit", "quantity",
    "value_iqd", "program", "date", "district",
)  # fmt: skip


def _chunks(blob: bytes, size: int) -> list[bytes]:
    return [blob[i : i + size] for i in range(0, len(blob), size)]


@dataclass(slots=True)
class Dataset:
    """The rows to load, made batch by batch from one seeded generator (columns drawn
    a batch at a time: a million rows in seconds)."""

    households_count: int
    allocations_count: int
    today: datetime.date
    now_ms: int
    rng: random.Random
    profiles: list[_Profile]
    values: list[bytes]  # households' pseudonym values, by index
    districts: list[str]  # households' districts, by index
    small_district: str
    matched: list[int]
    unknown: list[bytes]
    matched_allocations: int
    in_window: int = 0

    @classmethod
    def make(
        cls, *, households: int, allocations: int, today: datetime.date, now_ms: int
    ) -> Dataset:
        """The same rows for the same arguments (a fixed seed)."""
        rng = random.Random(20261123)
        profiles = _profiles(min(PROFILES, max(100, households // 10)), today)
        n = households
        matched = rng.sample(range(n), round(MATCHED_SHARE * n))
        # each matched household gets one allocation, then 0..4 more (3 on average)
        spread = min(sum(rng.randint(1, MAX_PER_MATCHED) for _ in matched), allocations)
        unknown_count = max(1, (allocations - spread) // 3)
        return cls(
            households_count=households,
            allocations_count=allocations,
            today=today,
            now_ms=now_ms,
            rng=rng,
            profiles=profiles,
            values=_chunks(rng.randbytes(32 * n), 32),
            districts=[],
            small_district=geo.districts(SMALL_GOVERNORATE)[0].pcode,
            matched=matched,
            unknown=_chunks(rng.randbytes(32 * unknown_count), 32),
            matched_allocations=spread,
        )

    def households(self) -> Iterator[list[_Rows]]:
        rng, n, now = self.rng, self.households_count, self.now_ms
        every = n // max(1, round(SMALL_SHARE * n))  # one in ``every`` is in the small one
        for start in range(0, n, BATCH):
            count = min(n, start + BATCH) - start
            macs = _chunks(rng.randbytes(32 * count), 32)
            blind = _chunks(rng.randbytes(64 * count), 32)
            rows, ready = [], []
            for i, profile in enumerate(rng.choices(self.profiles, k=count)):
                index = start + i
                place = (profile.governorate, profile.district)
                if index % every == 0:
                    place = (SMALL_GOVERNORATE, self.small_district)
                self.districts.append(place[1])
                rows.append(
                    (
                        index + 1, 1, rng.randbytes(profile.pii_bytes), blind[2 * i],
                        blind[2 * i + 1], macs[i], False, *place, profile.displacement,
                        profile.members, profile.score, profile.band, 1, "active",
                        now - rng.randrange(10**10), now,
                    )
                )  # fmt: skip
                ready.append((macs[i], EPOCH, False, self.values[index], 0, 0, now, now))
            yield [
                (ataa_households, _HOUSEHOLD_COLUMNS, rows),
                (pseudonyms, _PSEUDONYM_COLUMNS, ready),
            ]

    def allocations(self) -> Iterator[list[_Rows]]:
        rng, total, now = self.rng, self.allocations_count, self.now_ms
        authors = _chunks(rng.randbytes(32 * AUTHORS), 32)
        seqs = [0] * AUTHORS
        last: list[bytes | None] = [None] * AUTHORS
        districts = [d.pcode for d in geo.districts()]
        days = [(self.today - datetime.timedelta(days=d)).isoformat() for d in range(DAYS)]
        since = days[WINDOW_DAYS]
        kind = protocol.Allocation.KIND
        for start in range(0, total, BATCH):
            count = min(total, start + BATCH) - start
            ids = _chunks(rng.randbytes(32 * count), 32)
            columns = zip(
                ids,
                rng.choices(range(AUTHORS), k=count),
                rng.choices(days, k=count),
                rng.choices(protocol.ALLOCATION_CATEGORIES, k=count),
                rng.choices(protocol.ALLOCATION_UNITS, k=count),
                rng.choices(range(1, 6), k=count),
                rng.choices(_VALUES, k=count),
                strict=True,
            )
            wires, rows = [], []
            for i, (entry_id, author, date, category, unit, quantity, value) in enumerate(columns):
                index = start + i
                if index < self.matched_allocations:
                    matched = self.matched
                    household = matched[index] if index < len(matched) else rng.choice(matched)
                    pseudonym, district = self.values[household], self.districts[household]
                else:
                    pseudonym, district = rng.choice(self.unknown), rng.choice(districts)
                seqs[author] += 1
                self.in_window += date >= since
                seq = seqs[author]
                wires.append((authors[author], seq, entry_id, last[author], now, kind, _WIRE, now))
                last[author] = entry_id
                rows.append(
                    (
                        authors[author], seq, entry_id, pseudonym, EPOCH, category, unit,
                        quantity, value, "bench-2026", date, district,
                    )
                )  # fmt: skip
            yield [
                (entries, _ENTRY_COLUMNS, wires),
                (ataa_allocations, _ALLOCATION_COLUMNS, rows),
            ]


def _loading_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # Loading only (an engine of its own, closed before measuring): no fsync per
        # batch, and a cache that holds the random-keyed indexes being filled.
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-262144")
    finally:
        cursor.close()


def _indexes_txn(conn: Connection, action: str) -> None:
    for table in (ataa_households, pseudonyms, entries, ataa_allocations):
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            index.drop(conn) if action == "drop" else index.create(conn)


async def _put(raw: Any, backend: str, batch: list[_Rows]) -> None:
    """One batch in one transaction, through the driver: SQLite's executemany (a C
    loop), PostgreSQL's COPY. SQLAlchemy's executemany would spend more time binding
    parameters in Python than the databases spend storing them."""
    if backend == "sqlite":
        await raw.execute("BEGIN IMMEDIATE")
        for table, columns, rows in batch:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
            await raw.executemany(sql, rows)
        await raw.execute("COMMIT")
        return
    async with raw.transaction():
        for table, columns, rows in batch:
            await raw.copy_records_to_table(table.name, records=rows, columns=list(columns))


async def load(url: str, data: Dataset) -> float:
    """Create the schema and load ``data`` through an engine of its own (closed after,
    so the measured connections have exactly the node's settings); seconds taken."""
    start = time.perf_counter()
    db = Database.from_url(url)
    if db.backend == "sqlite":
        event.listen(db.engine.sync_engine, "connect", _loading_pragmas)
    try:
        await db.upgrade()
        # Secondary indexes are built after the rows, from the schema's own definitions
        # (CREATE INDEX sorts once; a million random keys inserted one by one would not).
        await db.write(_indexes_txn, "drop")
        async with db.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            key = (ataa_data_keys, ("id", "sealed", "created_ms"), [(1, b"k", 0)])
            await _put(raw, db.backend, [key])
            for batch in data.households():
                await _put(raw, db.backend, batch)
            for batch in data.allocations():
                await _put(raw, db.backend, batch)
        await db.write(_indexes_txn, "create")
        if db.backend == "postgresql":
            autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
            async with autocommit.connect() as conn:
                await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await db.close()
    return time.perf_counter() - start
