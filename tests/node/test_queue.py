"""The priority queue (``node.ataa._queue``): need first, lowered by what other NGOs gave
(strong pseudonym, same epoch, within the window, not voided), weak matches shown but
never counted, deterministic ties, filters, and its audited settings."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from sqlalchemy.engine import Connection

import protocol
from node.ataa import AllocationError, AllocationErrorCode, QueueRow, QueueSettings, Received
from node.storage import Database
from node.storage._schema import ataa_dist_households, ataa_distributions, node_state

from .allocation_helpers import (
    DISTRICT,
    OTHER_DISTRICT,
    OTHER_GOVERNORATE,
    THIRD_KEY,
    TODAY,
    Feed,
    World,
    allocation,
    household,
    ingest,
    value,
    world,
)
from .conftest import KEY, NET, NOW, PEER, PEER_KEY


def days_ago(days: int) -> str:
    return (datetime.date.fromisoformat(TODAY) - datetime.timedelta(days=days)).isoformat()


async def order(
    w: World,
    *,
    category: str | None = "food",
    district: str | None = None,
    governorate: str | None = None,
    band: str | None = None,
) -> list[int]:
    page = await w.queue.rank(
        epoch=1, category=category, district=district, governorate=governorate, band=band
    )
    return [row.household_id for row in page.rows]


async def by_id(
    w: World, *, category: str | None = "food", epoch: int | None = 1
) -> dict[int, QueueRow]:
    page = await w.queue.rank(epoch=epoch, category=category)
    return {row.household_id: row for row in page.rows}


@pytest.fixture
async def w(db: Database) -> World:
    return await world(db)


async def test_need_first_then_each_tie_break(w: World) -> None:
    low = await household(w.db, score=300, name="low")
    high = await household(w.db, score=900, name="high")
    # equal priority 500: the higher score first
    served = await household(w.db, score=900, name="served")
    plain = await household(w.db, score=500, name="plain")
    # equal priority and score: earlier registration first, then the lower id
    late = await household(w.db, score=400, registered_ms=NOW + 5)
    early_b = await household(w.db, score=400, registered_ms=NOW)
    early_a_later_id = await household(w.db, score=400, registered_ms=NOW)
    await ingest(w.store, Feed(PEER_KEY).append(allocation(value("served"))))

    assert await order(w) == [high, served, plain, early_b, early_a_later_id, late, low]
    rows = await by_id(w)
    assert (rows[served].priority, rows[served].penalty) == (500, 400)
    assert (rows[plain].priority, rows[plain].penalty) == (500, 0)


async def test_a_peers_recent_allocation_lowers_the_household(w: World) -> None:
    served = await household(w.db, score=700, name="served")
    unserved = await household(w.db, score=500, name="unserved")
    assert await order(w) == [served, unserved]

    peer = Feed(PEER_KEY)
    await ingest(w.store, peer.append(allocation(value("served"), date=days_ago(5))))
    assert await order(w) == [unserved, served]
    row = (await by_id(w))[served]
    assert (row.score, row.priority, row.penalty, row.pseudonym_state) == (700, 300, 400, "ready")
    assert row.received == (
        Received(author=PEER, category="food", value_iqd=50_000, quantity=2, unit="basket",
                 date=days_ago(5), program="winter-2026", weak_match=False, points=400),
    )  # fmt: skip


async def test_the_window_counts_from_today_minus_window_days(w: World) -> None:
    edge = await household(w.db, score=700, name="edge")
    old = await household(w.db, score=700, name="old")
    peer = Feed(PEER_KEY)
    await ingest(
        w.store,
        peer.append(allocation(value("edge"), date=days_ago(30))),  # counts: date >= today - 30
        peer.append(allocation(value("old"), date=days_ago(31))),
    )
    rows = await by_id(w)
    assert (rows[edge].priority, rows[old].priority) == (300, 700)
    assert rows[old].received == ()
    assert await order(w) == [old, edge]

    # a fake day later, the edge allocation leaves the window too
    tomorrow = datetime.date.fromisoformat(TODAY) + datetime.timedelta(days=1)
    page = await w.queue.rank(epoch=1, category="food", today=tomorrow)
    assert [r.priority for r in page.rows] == [700, 700]

    await w.queue.update_settings(QueueSettings(window_days=60), actor=None)
    assert [
        (r.household_id, r.priority) for r in (await w.queue.rank(epoch=1, category="food")).rows
    ] == [
        (edge, 300),
        (old, 300),
    ]


async def test_other_categories_cost_less_and_no_category_counts_all(w: World) -> None:
    cash = await household(w.db, score=700, name="cash")
    food = await household(w.db, score=700, name="food")
    peer = Feed(PEER_KEY)
    await ingest(
        w.store,
        peer.append(allocation(value("cash"), category="cash", unit="transfer")),
        peer.append(allocation(value("food"))),
    )
    rows = await by_id(w, category="food")
    assert (rows[cash].priority, rows[food].priority) == (600, 300)
    assert rows[cash].received[0].points == 100
    rows = await by_id(w, category="cash")
    assert (rows[cash].priority, rows[food].priority) == (300, 600)
    rows = await by_id(w, category=None)
    assert (rows[cash].priority, rows[food].priority) == (300, 300)


async def test_penalties_add_up_to_the_cap(w: World) -> None:
    twice = await household(w.db, score=700, name="twice")
    peer = Feed(PEER_KEY)
    await ingest(
        w.store,
        peer.append(allocation(value("twice"))),
        peer.append(allocation(value("twice"), date=days_ago(10))),
    )
    row = (await by_id(w))[twice]
    assert (row.priority, row.penalty, len(row.received)) == (0, 700, 2)  # 800 capped at 100%
    await w.queue.update_settings(QueueSettings(cap_pct=50), actor=None)
    row = (await by_id(w))[twice]
    assert (row.priority, row.penalty) == (350, 350)
    assert [r.date for r in row.received] == [TODAY, days_ago(10)]  # newest first


async def test_voided_and_other_epoch_allocations_do_not_count(w: World) -> None:
    voided = await household(w.db, score=700, name="voided")
    other_epoch = await household(w.db, score=700, name="other-epoch")
    peer = Feed(PEER_KEY)
    given = peer.append(allocation(value("voided")))
    await ingest(
        w.store,
        given,
        peer.append(protocol.AllocationVoid(allocation=given.id, reason="not_delivered")),
        peer.append(allocation(value("other-epoch"), epoch=2)),
    )
    rows = await by_id(w)
    assert (rows[voided].priority, rows[voided].received) == (700, ())
    assert (rows[other_epoch].priority, rows[other_epoch].received) == (700, ())
    # without a configuration (epoch None) no pseudonym matches at all
    assert {r.priority for r in (await by_id(w, epoch=None)).values()} == {700}


async def test_weak_matches_are_flagged_and_never_change_the_order(w: World) -> None:
    weak = await household(w.db, score=700, name="weak", weak=True)
    strong = await household(w.db, score=600, name="strong")
    await ingest(w.store, Feed(PEER_KEY).append(allocation(value("weak"))))

    assert await order(w) == [weak, strong]
    row = (await by_id(w))[weak]
    assert (row.priority, row.penalty, row.weak, row.pseudonym_state) == (700, 0, True, "ready")
    assert [(r.author, r.weak_match, r.points) for r in row.received] == [(PEER, True, 0)]


async def test_filters_status_and_pages(w: World) -> None:
    here = await household(w.db, score=500, band="high")
    there = await household(
        w.db, score=800, band="critical", district=OTHER_DISTRICT, governorate=OTHER_GOVERNORATE
    )
    also_here = await household(w.db, score=300, band="moderate")
    archived = await household(w.db, score=900, status="archived")
    unscored = await household(w.db, score=None)  # not scored yet: not in the queue
    assert await order(w) == [there, here, also_here]
    assert await order(w, district="IQG08Q05") == [here, also_here]
    assert await order(w, governorate=OTHER_GOVERNORATE) == [there]
    assert await order(w, band="moderate") == [also_here]
    assert await order(w, district="IQG08Q05", band="critical") == []

    page = await w.queue.rank(epoch=1, category=None, limit=1, offset=1)
    assert ([r.household_id for r in page.rows], page.total) == ([here], 3)
    filtered = await w.queue.rank(epoch=1, category=None, district="IQG08Q05", limit=1)
    assert filtered.total == 2
    assert await w.queue.row(there, epoch=1, category="food") is not None
    assert await w.queue.row(archived, epoch=1, category="food") is None
    assert await w.queue.row(unscored, epoch=1, category="food") is None

    for bad in ({"category": "gold"}, {"limit": 0}, {"limit": 501}, {"offset": -1}):
        kwargs = {"epoch": 1, "category": "food", **bad}
        with pytest.raises(AllocationError) as info:
            await w.queue.rank(**kwargs)  # type: ignore[arg-type]
        assert info.value.code is AllocationErrorCode.INVALID


async def test_pseudonym_states(w: World) -> None:
    ready = await household(w.db, score=500, name="r")
    pending = await household(w.db, score=500, name="p", ready=None)
    none = await household(w.db, score=500)
    old_epoch = await household(w.db, score=500, name="o", ready=2)
    rows = await by_id(w)
    states = {k: (v.pseudonym_state, v.weak) for k, v in rows.items()}
    assert states == {
        ready: ("ready", False),
        pending: ("pending", False),
        none: ("none", False),
        old_epoch: ("pending", False),
    }


async def test_settings_are_stored_checked_and_audited(w: World) -> None:
    assert await w.queue.settings() == QueueSettings()
    changed = QueueSettings(window_days=90, same_category_penalty=300, other_category_penalty=50,
                            cap_pct=80)  # fmt: skip
    await w.queue.update_settings(changed, actor=7)
    assert await w.queue.settings() == changed
    [record] = await w.audit.query(action="ataa.queue.settings")
    assert (record.actor, record.details) == (
        7,
        '{"cap_pct":80,"other_category_penalty":50,"same_category_penalty":300,"window_days":90}',
    )
    for bad in (
        {"window_days": 0},
        {"window_days": 367},
        {"same_category_penalty": 1001},
        {"other_category_penalty": 500},  # more than same-category
        {"cap_pct": 101},
        {"cap_pct": True},
    ):
        with pytest.raises(AllocationError) as info:
            QueueSettings(**bad)
        assert info.value.code is AllocationErrorCode.INVALID

    def damage(conn: Connection) -> None:
        conn.execute(node_state.update().values(value='{"window_days": "x"}'))

    await w.db.write(damage)
    assert await w.queue.settings() == QueueSettings()  # unreadable: the defaults


async def test_a_served_top_widens_the_candidates(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.ataa._queue._FIRST_CANDIDATES", 1)
    served = [await household(w.db, score=900 - n, name=f"s{n}") for n in range(6)]
    unserved = await household(w.db, score=400, name="u")
    peer = Feed(PEER_KEY)
    await ingest(w.store, *[peer.append(allocation(value(f"s{n}"))) for n in range(6)])
    await w.queue.update_settings(QueueSettings(same_category_penalty=1000), actor=None)
    # one row: 4 candidates (all served, priority 0) first, then 16: the unserved one
    page = await w.queue.rank(epoch=1, category="food", limit=1)
    assert [(r.household_id, r.priority) for r in page.rows] == [(unserved, 400)]
    page = await w.queue.rank(epoch=1, category="food", limit=2, offset=1)
    assert [(r.household_id, r.priority) for r in page.rows] == [(served[0], 0), (served[1], 0)]


def expected_order(
    households: list[dict[str, Any]],
    allocations: list[dict[str, Any]],
    deliveries: list[dict[str, Any]],
    settings: QueueSettings,
    category: str | None,
) -> list[tuple[int, int]]:
    """The queue rule of the module docstring, written out plainly: (id, priority)."""
    since = days_ago(settings.window_days)

    def points(of: str) -> int:
        same = category is None or of == category
        return settings.same_category_penalty if same else settings.other_category_penalty

    ranked = []
    for h in households:
        if h["status"] != "active" or h["score"] is None:
            continue
        total = sum(
            points(a["category"])
            for a in allocations
            if h["ready"] == 1 and not h["weak"] and a["pseudonym"] == value(h["name"])
            and a["epoch"] == 1 and not a["voided"] and a["date"] >= since
        )  # fmt: skip
        total += sum(
            points(d["category"])
            for d in deliveries
            if d["household"] == h["id"] and d["state"] == "delivered" and d["date"] >= since
        )
        priority = h["score"] - min(total, h["score"] * settings.cap_pct // 100)
        ranked.append((-priority, -h["score"], h["registered_ms"], h["id"], priority))
    return [(row[3], row[4]) for row in sorted(ranked)]


@pytest.mark.parametrize(
    ("seed", "first_candidates", "per_household_max"),
    # first_candidates=1 forces the bounded rounds (and their widening); 200 computes
    # this small queue in one round, grouped (per_household_max=0) or looked up
    # household by household (20_000, the production default for a small scope).
    [(1, 1, 0), (2, 1, 0), (1, 200, 0), (2, 200, 0), (1, 200, 20_000), (2, 200, 20_000)],
)
async def test_rank_matches_the_rule_on_random_data(
    w: World,
    seed: int,
    first_candidates: int,
    per_household_max: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("node.ataa._queue._FIRST_CANDIDATES", first_candidates)
    monkeypatch.setattr("node.ataa._queue._PER_HOUSEHOLD_MAX", per_household_max)
    rnd = random.Random(seed)
    households = []
    for n in range(40):
        spec = {
            "name": f"h{n}",
            "score": rnd.choice([None, *range(0, 1001, 50)]),
            "weak": rnd.random() < 0.2,
            "ready": rnd.choice([1, 1, 1, 2, None]),
            "registered_ms": NOW + rnd.randint(0, 3),
            "status": rnd.choice(["active"] * 5 + ["archived"]),
            "district": rnd.choice([DISTRICT, OTHER_DISTRICT]),
        }
        spec["id"] = await household(
            w.db, score=spec["score"], name=spec["name"], weak=spec["weak"], ready=spec["ready"],
            registered_ms=spec["registered_ms"], status=spec["status"], district=spec["district"],
        )  # fmt: skip
        households.append(spec)
    feeds = [Feed(PEER_KEY), Feed(THIRD_KEY), Feed(KEY)]  # ours too: counted by delivery only
    allocations, wires = [], []
    for _ in range(120):
        feed = rnd.choice(feeds)
        spec = {
            "pseudonym": value(f"h{rnd.randrange(48)}"),
            "category": rnd.choice(["food", "cash", "shelter"]),
            "date": days_ago(rnd.randint(0, 45)),
            "epoch": rnd.choice([1, 1, 1, 2]),
            "voided": False,
            "own": feed.key is KEY,
        }
        entry = feed.append(allocation(spec["pseudonym"], category=spec["category"],
                                       date=spec["date"], epoch=spec["epoch"]))  # fmt: skip
        wires.append(entry.wire)
        if rnd.random() < 0.15:
            spec["voided"] = True
            void = protocol.AllocationVoid(allocation=entry.id, reason="returned")
            wires.append(feed.append(void).wire)
        if not spec["own"]:
            allocations.append(spec)
    results, error = await w.store.ingest_batch(wires, net=NET, now_ms=NOW)
    assert error is None and {r.status for r in results} == {"stored"}
    deliveries = []
    for d in range(3):
        category = rnd.choice(["food", "cash"])
        rows = []
        for spec in rnd.sample(households, 8):
            rows.append({"household": spec["id"], "category": category,
                         "state": rnd.choice(["delivered", "delivered", "voided", "planned"]),
                         "date": days_ago(rnd.randint(0, 45))})  # fmt: skip
        await w.db.write(insert_deliveries, d + 1, category, rows)
        deliveries += rows
    settings = QueueSettings(
        window_days=rnd.choice([10, 30]),
        same_category_penalty=300,
        other_category_penalty=rnd.choice([0, 100]),
        cap_pct=rnd.choice([60, 100]),
    )
    await w.queue.update_settings(settings, actor=None)

    for asked in ("food", None):
        want = expected_order(households, allocations, deliveries, settings, asked)
        for limit, offset in ((50, 0), (1, 0), (2, 2), (3, 30), (7, 0), (5, 9)):
            page = await w.queue.rank(epoch=1, category=asked, limit=limit, offset=offset)
            got = [(row.household_id, row.priority) for row in page.rows]
            assert got == want[offset : offset + limit], (asked, limit, offset)
            assert page.total == len(want)
            for row in page.rows:
                assert row.penalty == row.score - row.priority
                assert row.penalty <= sum(r.points for r in row.received)


def insert_deliveries(
    conn: Connection, distribution_id: int, category: str, rows: list[dict[str, Any]]
) -> None:
    conn.execute(
        ataa_distributions.insert().values(
            id=distribution_id, title="t", program="p", category=category, unit="kit",
            quantity=1, value_iqd=1, target_count=10, state="open", created_ms=NOW,
            updated_ms=NOW,
        )
    )  # fmt: skip
    for row in rows:
        conn.execute(
            ataa_dist_households.insert().values(
                distribution_id=distribution_id, household_id=row["household"], rank=1,
                priority=1, state=row["state"], delivered_date=row["date"], updated_ms=NOW,
            )
        )  # fmt: skip
