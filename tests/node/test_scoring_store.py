"""The scoring store (``node.ataa.ScoringStore``): model versions, the digest rule,
re-scoring in batches with old scores kept, progress. Both backends."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import select

from node.ataa import (
    BlindIndex,
    DataKeys,
    HouseholdService,
    ScoringError,
    ScoringErrorCode,
    ScoringStore,
    default_model,
    dump_model,
    load_model,
    score,
)
from node.ataa._record import HouseholdRecord
from node.ataa._scoring_store import today
from node.audit import AuditLog
from node.clock import FakeClock
from node.identity import Identity
from node.storage import Database
from node.storage._schema import ataa_households

from .conftest import KEY, NOW

IDENTITY = Identity(signing_key=KEY, encryption_secret=bytes(range(100, 132)))
COORDINATOR = 11


def household(number: int, **changes: object) -> HouseholdRecord:
    fields: dict[str, object] = {
        "name": ("حسن", "كاظم", "جبار", "الساعدي"),
        "mother_name": "رباب",
        "national_id": f"4000000000{number:02d}",
        "governorate": "IQG08",
        "district": "IQG08Q01",
        "member_count": 4 + number,
        "monthly_income_iqd": 100_000 * number,
        # debt, disability, ... unknown: "missing" lines, which the new model prices.
    }
    fields.update(changes)
    return HouseholdRecord(**fields)  # type: ignore[arg-type]


def generous_model() -> str:
    """The default model with unknown facts earning full points (a real policy choice:
    "when in doubt, assume need"), under its own id."""
    doc = json.loads(dump_model(default_model()))
    doc["id"], doc["version"], doc["missing_points"] = "ngo-test-generous", 2, 100
    return json.dumps(doc, ensure_ascii=False)


@pytest.fixture
async def stores(db: Database) -> tuple[ScoringStore, HouseholdService, AuditLog, FakeClock]:
    await db.upgrade()
    clock = FakeClock(NOW)
    audit = AuditLog(db)
    keys = DataKeys(db, IDENTITY, clock, random.Random(3).randbytes, audit=audit)
    scoring = ScoringStore(db, audit, clock, keys=keys)
    service = HouseholdService(
        db,
        keys=keys,
        blind=BlindIndex(IDENTITY),
        audit=audit,
        clock=clock,
        pseudonyms=None,
        scoring=scoring,
    )
    return scoring, service, audit, clock


async def test_the_default_model_is_version_one(
    stores: tuple[ScoringStore, HouseholdService, AuditLog, FakeClock],
) -> None:
    scoring, _service, _audit, _clock = stores
    assert await scoring.ensure_default() == 1
    assert await scoring.ensure_default() == 1
    version, model = await scoring.active()
    assert (version, model) == (1, default_model())
    (stored,) = await scoring.versions()
    assert (stored.version, stored.model_id, stored.active, stored.created_by) == (
        1,
        "iraq-default",
        True,
        None,
    )
    assert await scoring.progress() == (0, 0)


async def test_a_new_model_rescores_every_household_and_keeps_old_scores(
    stores: tuple[ScoringStore, HouseholdService, AuditLog, FakeClock],
) -> None:
    scoring, service, audit, clock = stores
    ids = [await service.create(household(n), actor=None) for n in range(1, 4)]
    before = {s.id: s for s in await service.summaries(ids)}
    assert {s.model_version for s in before.values()} == {1}
    # The same model again (any spelling of its JSON) is no new version, and no audit row.
    assert await scoring.set_model(dump_model(default_model()), actor=COORDINATOR) == 1
    assert await audit.query(action="ataa.scoring.model") == []

    clock.advance(86_400_000)
    assert await scoring.set_model(generous_model(), actor=COORDINATOR) == 2
    assert await scoring.progress() == (0, 3)
    (row,) = await audit.query(action="ataa.scoring.model")
    assert (row.actor, row.target) == (COORDINATOR, "model:2")
    assert json.loads(row.details) | {"digest": ""} == {
        "version": 2,
        "model_id": "ngo-test-generous",
        "model_version": 2,
        "digest": "",
        "previous": 1,
    }
    assert [(v.version, v.active) for v in await scoring.versions()] == [(2, True), (1, False)]

    assert await scoring.rescore(batch=2) == 3
    assert await scoring.progress() == (3, 3)
    assert await scoring.rescore(batch=2) == 0
    model = load_model(generous_model())
    for household_id, number in zip(ids, range(1, 4), strict=True):
        expected = score(model, household(number).facts(today(clock.now_ms())))
        summary = await service.summary(household_id)
        assert (summary.score, summary.model_version) == (expected.total, 2)
        old_total = before[household_id].score
        assert summary.score is not None and old_total is not None
        assert summary.score > old_total  # missing facts now count
        history = await scoring.scores(household_id)
        assert [s.model_version for s in history] == [2, 1]
        assert history[1].score == before[household_id].score  # the old one, as it was
        assert history[1].computed_ms == NOW and history[0].computed_ms == NOW + 86_400_000
        assert all(line.points == 100 for line in history[0].breakdown if line.missing)
        view = await service.get(household_id, actor=COORDINATOR)
        assert view.score == history[0]
    assert await scoring.model(1) == default_model()


async def test_new_households_are_scored_with_the_active_model(
    stores: tuple[ScoringStore, HouseholdService, AuditLog, FakeClock],
) -> None:
    scoring, service, _audit, _clock = stores
    await scoring.ensure_default()
    await scoring.set_model(generous_model(), actor=COORDINATOR)
    household_id = await service.create(household(1), actor=None)
    assert (await service.summary(household_id)).model_version == 2
    assert [s.model_version for s in await scoring.scores(household_id)] == [2]
    assert await scoring.progress() == (1, 1)


async def test_a_bad_model_is_refused_with_its_path_and_changes_nothing(
    stores: tuple[ScoringStore, HouseholdService, AuditLog, FakeClock],
) -> None:
    scoring, _service, audit, _clock = stores
    await scoring.ensure_default()
    doc = json.loads(generous_model())
    doc["indicators"][0]["weight"] = 30
    with pytest.raises(ScoringError) as caught:
        await scoring.set_model(json.dumps(doc), actor=COORDINATOR)
    assert caught.value.code is ScoringErrorCode.BAD_MODEL
    assert caught.value.path == "indicators"
    with pytest.raises(ScoringError):
        await scoring.set_model("{not json", actor=COORDINATOR)
    assert [v.version for v in await scoring.versions()] == [1]
    assert await audit.query(action="ataa.scoring.model") == []


async def test_the_background_rescore_finishes_the_work(
    stores: tuple[ScoringStore, HouseholdService, AuditLog, FakeClock],
    db: Database,
) -> None:
    scoring, service, _audit, _clock = stores
    ids = [await service.create(household(n), actor=None) for n in range(1, 3)]
    await scoring.set_model(generous_model(), actor=COORDINATOR)
    task = scoring.start_rescore()
    assert scoring.start_rescore() is task  # one at a time
    assert await task == 2
    await scoring.close()

    def versions(conn: object) -> list[int]:
        query = select(ataa_households.c.model_version).order_by(ataa_households.c.id)
        return [row.model_version for row in conn.execute(query)]  # type: ignore[attr-defined]

    assert await db.read(versions) == [2] * len(ids)
