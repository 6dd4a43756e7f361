"""Distributions (``node.ataa._distributions``): planning, picking from the queue, manual
include/exclude with reasons, the duplicate warning and its override, deliveries that
append exactly one minimal allocation entry (or wait for the pseudonym), voids, and the
audit rows of each."""

from __future__ import annotations

import dataclasses

import pytest

import protocol
from node.ataa import (
    AllocationError,
    AllocationErrorCode,
    DistributionPlan,
    Received,
)
from node.storage import Database

from .allocation_helpers import (
    OTHER_DISTRICT,
    OTHER_GOVERNORATE,
    TODAY,
    Feed,
    World,
    allocation,
    household,
    ingest,
    ready_pseudonym,
    value,
    world,
)
from .conftest import AUTHOR, NET, PEER, PEER_KEY

PLAN = DistributionPlan(
    title="Food baskets, May",
    program="food-may-2026",
    category="food",
    unit="basket",
    quantity=1,
    value_iqd=60_000,
    governorate="IQG08",
    district=None,
    target_count=2,
)
REASON = "Family of Ahmed, visited at home"  # staff's words: must stay out of audit rows


@pytest.fixture
async def w(db: Database) -> World:
    return await world(db)


async def own_entries(w: World) -> list[protocol.Entry]:
    head = await w.store.head(AUTHOR)
    wires = await w.store.range(AUTHOR, 0, 100) if head else []
    return [protocol.verify_entry(wire, net=NET, now_ms=None) for wire in wires]


async def audit_actions(w: World) -> list[tuple[str, str]]:
    records = await w.audit.query(limit=200)
    return [(r.action, r.details) for r in reversed(records)]


async def test_create_checks_the_plan_and_is_audited(w: World) -> None:
    made = await w.dist.create(PLAN, actor=3)
    assert (made.plan, made.state, made.created_by) == (PLAN, "draft", 3)
    assert made.counts == {"planned": 0, "excluded": 0, "delivered": 0, "voided": 0}
    assert await w.dist.list_all() == [made]
    assert await audit_actions(w) == [
        ("ataa.distribution.create", '{"category":"food","program":"food-may-2026","target":2}')
    ]
    for change in (
        {"program": "p199012345678"},  # a national ID number smuggled into a program
        {"program": ""},
        {"category": "gold"},
        {"unit": "tonne"},
        {"quantity": 0},
        {"value_iqd": -1},
        {"title": " padded "},
        {"governorate": "IQG99"},
        {"district": "IQG15Q05"},  # Mosul is not in Baghdad
        {"target_count": 0},
    ):
        with pytest.raises(AllocationError) as info:
            await w.dist.create(dataclasses.replace(PLAN, **change), actor=3)
        assert info.value.code is AllocationErrorCode.INVALID, change
    with pytest.raises(AllocationError) as info:
        await w.dist.get(99)
    assert info.value.code is AllocationErrorCode.NOT_FOUND


async def test_pick_takes_the_top_of_the_queue_once(w: World) -> None:
    top = await household(w.db, score=900, name="top")
    second = await household(w.db, score=800, name="second")
    third = await household(w.db, score=700, name="third")
    await household(w.db, score=950, district=OTHER_DISTRICT, governorate=OTHER_GOVERNORATE)
    made = await w.dist.create(PLAN, actor=3)

    assert await w.dist.pick(made.id, actor=3) == 2
    rows = await w.dist.households(made.id)
    assert [(r.household_id, r.rank, r.priority, r.state) for r in rows] == [
        (top, 1, 900, "planned"),
        (second, 2, 800, "planned"),
    ]
    assert await w.dist.pick(made.id, actor=3) == 0  # idempotent

    await w.dist.exclude(made.id, second, REASON, actor=4)
    assert await w.dist.pick(made.id, actor=3) == 1  # tops up, skipping the excluded one
    rows = await w.dist.households(made.id)
    assert [(r.household_id, r.state) for r in rows] == [
        (top, "planned"),
        (second, "excluded"),
        (third, "planned"),
    ]
    assert rows[1].reason == REASON
    assert (await w.dist.get(made.id)).counts["excluded"] == 1

    actions = await audit_actions(w)
    assert [a for a, _ in actions] == [
        "ataa.distribution.create",
        "ataa.distribution.pick",
        "ataa.distribution.exclude",
        "ataa.distribution.pick",
    ]
    assert actions[1][1] == '{"added":2}'
    assert actions[2][1] == f'{{"household":{second}}}'
    assert all("Ahmed" not in details for _, details in actions)


async def test_include_and_exclude_need_a_reason(w: World) -> None:
    extra = await household(w.db, score=100, name="extra")
    archived = await household(w.db, score=900, status="archived")
    made = await w.dist.create(PLAN, actor=3)
    for bad in ("", "   ", "x" * 501, "tab\x00"):
        with pytest.raises(AllocationError) as info:
            await w.dist.include(made.id, extra, bad, actor=4)
        assert info.value.code is AllocationErrorCode.INVALID
    with pytest.raises(AllocationError) as info:
        await w.dist.include(made.id, archived, REASON, actor=4)
    assert info.value.code is AllocationErrorCode.BAD_STATE
    with pytest.raises(AllocationError) as info:
        await w.dist.include(made.id, 999, REASON, actor=4)
    assert info.value.code is AllocationErrorCode.NOT_FOUND

    row = await w.dist.include(made.id, extra, "  " + REASON + " ", actor=4)
    assert (row.rank, row.priority, row.state, row.reason) == (0, 100, "planned", REASON)
    assert await w.dist.include(made.id, extra, REASON, actor=4) == row  # no change
    excluded = await w.dist.exclude(made.id, extra, "moved away", actor=4)
    assert (excluded.state, excluded.reason) == ("excluded", "moved away")
    assert [a for a, _ in await audit_actions(w)][-2:] == [
        "ataa.distribution.include",
        "ataa.distribution.exclude",
    ]


async def test_delivery_appends_one_minimal_entry(w: World) -> None:
    target = await household(w.db, score=900, name="target", district="IQG08Q01")
    made = await w.dist.create(PLAN, actor=3)
    await w.dist.pick(made.id, actor=3)

    row = await w.dist.deliver(made.id, target, actor=5)
    assert (row.state, row.delivered_by, row.delivered_date, row.entry_seq) == (
        "delivered", 5, TODAY, 1,
    )  # fmt: skip
    assert row.published
    [entry] = await own_entries(w)
    assert entry.kind == "ataa.allocation/1"
    assert set(entry.content) == {
        "category", "date", "district", "epoch", "program", "pseudonym", "quantity", "unit",
        "value_iqd",
    }  # fmt: skip
    assert entry.content == {
        "category": "food",
        "date": TODAY,
        "district": "IQG08Q01",  # the household's district
        "epoch": 1,
        "program": "food-may-2026",
        "pseudonym": value("target"),
        "quantity": 1,
        "unit": "basket",
        "value_iqd": 60_000,
    }
    assert w.appended == [1]

    assert await w.dist.deliver(made.id, target, actor=6) == row  # twice: once
    assert len(await own_entries(w)) == 1
    assert w.appended == [1]
    assert (await w.dist.get(made.id)).state == "open"
    details = [d for a, d in await audit_actions(w) if a == "ataa.delivery"]
    assert details == [f'{{"entry_seq":1,"household":{target}}}']

    # our own delivery counts in the queue, once (not again through the pseudonym)
    queued = await w.queue.row(target, epoch=1, category="food")
    assert queued is not None
    assert (queued.priority, [r.author for r in queued.received]) == (500, [AUTHOR])


async def test_duplicate_warning_blocks_until_overridden(w: World) -> None:
    target = await household(w.db, score=900, name="target")
    made = await w.dist.create(PLAN, actor=3)
    await w.dist.pick(made.id, actor=3)
    peer = Feed(PEER_KEY)
    await ingest(
        w.store,
        peer.append(allocation(value("target"), date="2026-05-20")),
        peer.append(allocation(value("target"), category="cash", unit="transfer")),
    )
    warning = await w.dist.duplicate_warning(made.id, target)
    assert warning == [
        Received(author=PEER, category="food", value_iqd=50_000, quantity=2, unit="basket",
                 date="2026-05-20", program="winter-2026", weak_match=False, points=400)
    ]  # fmt: skip

    with pytest.raises(AllocationError) as info:
        await w.dist.deliver(made.id, target, actor=5)
    assert info.value.code is AllocationErrorCode.DUPLICATE_ASSISTANCE
    assert await own_entries(w) == []
    assert (await w.dist.households(made.id))[0].state == "planned"

    with pytest.raises(AllocationError) as info:
        await w.dist.override(made.id, target, "", actor=2)
    assert info.value.code is AllocationErrorCode.INVALID
    overridden = await w.dist.override(made.id, target, REASON, actor=2)
    assert (overridden.override_by, overridden.override_reason) == (2, REASON)
    delivered = await w.dist.deliver(made.id, target, actor=5)
    assert delivered.entry_seq == 1
    override_audit = [d for a, d in await audit_actions(w) if a == "ataa.delivery.override"]
    assert override_audit == [f'{{"household":{target},"warnings":1}}']


async def test_weak_and_own_matches_do_not_warn(w: World) -> None:
    weak = await household(w.db, score=900, name="weak", weak=True)
    strong = await household(w.db, score=800, name="strong")
    made = await w.dist.create(PLAN, actor=3)
    await w.dist.pick(made.id, actor=3)
    await ingest(w.store, Feed(PEER_KEY).append(allocation(value("weak"))))
    assert await w.dist.duplicate_warning(made.id, weak) == []
    await w.dist.deliver(made.id, weak, actor=5)
    await w.dist.deliver(made.id, strong, actor=5)  # our own earlier entries never warn
    second = await w.dist.create(PLAN, actor=3)
    await w.dist.include(second.id, strong, "second round", actor=3)
    assert await w.dist.duplicate_warning(second.id, strong) == []
    weak_entry = (await own_entries(w))[0]
    assert weak_entry.content["pseudonym"] == value("weak")  # weak ones are published too


async def test_pending_pseudonym_is_published_later(w: World) -> None:
    later = await household(w.db, score=900, name="later", ready=None)
    made = await w.dist.create(PLAN, actor=3)
    await w.dist.pick(made.id, actor=3)
    row = await w.dist.deliver(made.id, later, actor=5, date="2026-05-26")
    assert (row.state, row.entry_seq, row.published) == ("delivered", None, False)
    assert await own_entries(w) == [] and w.appended == []
    assert await w.dist.publish_pending() == 0  # still not ready

    await ready_pseudonym(w.db, "later", epoch=1)
    assert await w.dist.publish_pending() == 1
    [entry] = await own_entries(w)
    assert (entry.content["date"], entry.content["pseudonym"]) == ("2026-05-26", value("later"))
    assert (await w.dist.households(made.id))[0].entry_seq == 1
    assert await w.dist.publish_pending() == 0
    assert w.appended == [1]
    published = [(r.actor, r.details) for r in await w.audit.query(action="ataa.delivery.publish")]
    assert published == [(None, f'{{"entry_seq":1,"household":{later}}}')]


async def test_without_oracles_or_after_a_restore_deliveries_wait(w: World) -> None:
    one = await household(w.db, score=900, name="one")
    two = await household(w.db, score=800, name="two")
    three = await household(w.db, score=700, name="three")
    made = await w.dist.create(dataclasses.replace(PLAN, target_count=3), actor=3)
    await w.dist.pick(made.id, actor=3)
    w.epochs.epoch = None
    assert (await w.dist.deliver(made.id, one, actor=5)).entry_seq is None
    w.epochs.epoch = 1
    await w.store.set_head_unconfirmed("restored")
    assert (await w.dist.deliver(made.id, two, actor=5)).entry_seq is None
    assert await w.dist.publish_pending() == 0
    voided = await w.dist.void(made.id, one, "returned", actor=5)  # never published: no entry
    assert (voided.state, voided.entry_seq) == ("voided", None)

    await w.store.set_head_unconfirmed(None)
    assert await w.dist.publish_pending() == 1  # two; the voided one never
    assert [e.content["pseudonym"] for e in await own_entries(w)] == [value("two")]

    await w.dist.deliver(made.id, three, actor=5)
    await w.store.set_head_unconfirmed("restored again")
    with pytest.raises(AllocationError) as info:
        await w.dist.void(made.id, three, "returned", actor=5)
    assert info.value.code is AllocationErrorCode.HEAD_UNCONFIRMED
    assert (await w.dist.households(made.id, state="delivered"))[-1].household_id == three


async def test_void_appends_a_void_and_frees_the_household(w: World) -> None:
    target = await household(w.db, score=900, name="target")
    made = await w.dist.create(PLAN, actor=3)
    await w.dist.pick(made.id, actor=3)
    with pytest.raises(AllocationError) as info:
        await w.dist.void(made.id, target, "returned", actor=5)
    assert info.value.code is AllocationErrorCode.BAD_STATE  # nothing delivered yet
    await w.dist.deliver(made.id, target, actor=5)
    with pytest.raises(AllocationError) as info:
        await w.dist.void(made.id, target, "because", actor=5)
    assert info.value.code is AllocationErrorCode.INVALID

    row = await w.dist.void(made.id, target, "not_delivered", actor=5)
    assert (row.state, row.reason) == ("voided", "not_delivered")
    first, void = await own_entries(w)
    assert (void.kind, void.content) == (
        "ataa.allocation_void/1",
        {"allocation": first.id, "reason": "not_delivered"},
    )
    assert await w.dist.void(made.id, target, "not_delivered", actor=5) == row  # idempotent
    assert len(await own_entries(w)) == 2
    assert w.appended == [1, 1]
    queued = await w.queue.row(target, epoch=1, category="food")
    assert queued is not None and (queued.priority, queued.received) == (900, ())
    voids = [d for a, d in await audit_actions(w) if a == "ataa.delivery.void"]
    assert voids == [f'{{"household":{target},"reason":"not_delivered","void_seq":2}}']

    # a voided household can be planned and delivered again
    await w.dist.include(made.id, target, "delivered after all", actor=3)
    again = await w.dist.deliver(made.id, target, actor=5)
    assert again.entry_seq == 3


async def test_delivery_states_dates_and_closing(w: World) -> None:
    one = await household(w.db, score=900, name="one")
    two = await household(w.db, score=800, name="two")
    made = await w.dist.create(PLAN, actor=3)
    await w.dist.pick(made.id, actor=3)
    for bad in ("2026-05-29", "2026-02-30", "28/05/2026"):
        with pytest.raises(AllocationError) as info:
            await w.dist.deliver(made.id, one, actor=5, date=bad)
        assert info.value.code is AllocationErrorCode.INVALID
    await w.dist.exclude(made.id, two, REASON, actor=3)
    with pytest.raises(AllocationError) as info:
        await w.dist.deliver(made.id, two, actor=5)
    assert info.value.code is AllocationErrorCode.BAD_STATE
    stranger = await household(w.db, score=100)
    with pytest.raises(AllocationError) as info:
        await w.dist.deliver(made.id, stranger, actor=5)
    assert info.value.code is AllocationErrorCode.NOT_FOUND

    await w.dist.deliver(made.id, one, actor=5, date="2026-05-27")
    with pytest.raises(AllocationError) as info:
        await w.dist.exclude(made.id, one, REASON, actor=3)
    assert info.value.code is AllocationErrorCode.BAD_STATE
    closed = await w.dist.close(made.id, actor=3)
    assert (closed.state, closed.counts["delivered"], closed.counts["excluded"]) == (
        "closed", 1, 1,
    )  # fmt: skip
    for attempt in (
        w.dist.pick(made.id, actor=3),
        w.dist.include(made.id, two, REASON, actor=3),
    ):
        with pytest.raises(AllocationError) as info:
            await attempt
        assert info.value.code is AllocationErrorCode.BAD_STATE
    assert (await w.dist.void(made.id, one, "returned", actor=5)).state == "voided"
