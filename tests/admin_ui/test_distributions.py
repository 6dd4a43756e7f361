"""The distribution pages in process (aiohttp test client, real node services, fake
clock): who may reach each route and see each action; planning with an error per
field (422, nothing stored) and planning done (audited); picking from the queue in
its order and area; including and excluding by hand with a reason; a case worker's
delivery appending a signed ``ataa.allocation/1`` to the node's feed (or waiting for
the pseudonym); the duplicate assistance warning (the case worker refused with 409 and
the other NGO's aid shown, the coordinator's override with a reason, then the
delivery); voiding with a reason code; closing; and no reason or name in audit rows.

Tests marked "needs the merged catalog" check Arabic text and pass only once the new
msgids are in ``admin_ui/locale/ar`` (see /work/briefs/ar_queue.json).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.accounts import Role
from node.ataa import DistributionPlan
from node.storage import stored_content
from node.web import CSRF_HEADER, SESSION_COOKIE
from tests.node.web_helpers import WebNode, web_node

from .test_queue import (
    DISTRICT,
    GOVERNORATE,
    OTHER_DISTRICT,
    OTHER_GOVERNORATE,
    TODAY,
    Peer,
    add_household,
    audit,
    errors,
    get,
    make_ready,
    post,
    pseudonym,
    text,
    use_epoch,
)

A, C, W, R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "node") as node:
        yield node


def plan_form(**changes: str) -> dict[str, str]:
    form = {
        "title": "Winter food baskets",
        "program": "winter-2026",
        "category": "food",
        "unit": "basket",
        "quantity": "2",
        "value_iqd": "50,000",
        "governorate": GOVERNORATE,
        "district": DISTRICT,
        "target_count": "2",
    }
    form.update(changes)
    return form


async def plan(web: WebNode, target: int = 2, **changes: Any) -> int:
    fields: dict[str, Any] = {
        "title": "Winter food baskets",
        "program": "winter-2026",
        "category": "food",
        "unit": "basket",
        "quantity": 2,
        "value_iqd": 50_000,
        "target_count": target,
    }
    fields.update(changes)
    made = await web.node.ataa.distributions.create(DistributionPlan(**fields), actor=None)
    return made.id


def row(html: str, hid: int) -> str:
    """The text of one household's card on a distribution page."""
    match = re.search(
        rf'<li class="dist-row[^"]*" id="household-{hid}".*?\n    </li>\n', html, re.S
    )
    assert match, f"household {hid} not on the page"
    return match.group(0)


def row_text(html: str, hid: int) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", row(html, hid))).split())


async def own_allocations(web: WebNode, kind: str = "ataa.allocation/1") -> list[dict[str, Any]]:
    own = web.node.identity.node_id
    return [
        stored_content(wire)
        for author, _seq, wire in await web.node.feeds.all_of_kind(kind)
        if author == own
    ]


async def states(web: WebNode, distribution: int) -> dict[int, str]:
    rows = await web.node.ataa.distributions.households(distribution)
    return {r.household_id: r.state for r in rows}


# -- access ---------------------------------------------------------------------------------


async def test_who_may_reach_each_route(web: WebNode) -> None:
    hid = await add_household(web, "سعد", 700)
    did = await plan(web, target=1)
    pages = {"/distributions": {C, W}, f"/distributions/{did}": {C, W}}
    for path, allowed in pages.items():
        for role in (A, C, W, R):
            status, _html = await get(web, path, role)
            assert status == (200 if role in allowed else 403), (path, role)
    posts = {
        "/distributions": {C},
        f"/distributions/{did}/pick": {C},
        f"/distributions/{did}/include": {C},
        f"/distributions/{did}/exclude": {C},
        f"/distributions/{did}/override": {C},
        f"/distributions/{did}/deliver": {W},
        f"/distributions/{did}/void": {W},
        f"/distributions/{did}/close": {C},
    }
    for path, allowed in posts.items():
        for role in (A, C, W, R):
            if role in allowed:
                continue
            response = await post(web, path, {"household": str(hid), "reason": "x"}, role)
            assert response.status == 403, (path, role)
    assert await states(web, did) == {}
    assert (await web.node.ataa.distributions.get(did)).state == "draft"
    # Each role sees only its own actions.
    await web.node.ataa.distributions.pick(did, actor=None)
    _status, html = await get(web, f"/distributions/{did}", W)
    assert f'action="/distributions/{did}/deliver"' in html
    assert f'action="/distributions/{did}/pick"' not in html
    assert f'action="/distributions/{did}/exclude"' not in html
    _status, html = await get(web, f"/distributions/{did}", C)
    assert f'action="/distributions/{did}/deliver"' not in html
    assert f'action="/distributions/{did}/pick"' in html
    assert f'action="/distributions/{did}/exclude"' in html
    assert f'action="/distributions/{did}/close"' in html
    _status, html = await get(web, "/distributions", W)
    assert 'action="/distributions"' not in html
    # unknown distributions: 404, for pages and actions alike
    assert (await get(web, "/distributions/999", C))[0] == 404
    assert (await get(web, "/distributions/99999999999", C))[0] == 404
    response = await post(web, "/distributions/999/deliver", {"household": str(hid)}, W)
    assert response.status == 404


# -- planning -------------------------------------------------------------------------------


async def test_create_refused_per_field(web: WebNode) -> None:
    form = plan_form(
        title="  ",
        program="1234567",
        category="gold",
        unit="",
        quantity="0",
        value_iqd="-5",
        governorate=OTHER_GOVERNORATE,
        district=DISTRICT,
        target_count="100001",
    )
    response = await post(web, "/distributions", form)
    assert response.status == 422
    html = await response.text()
    assert errors(html) == {
        "title": "Required: one line of at most 200 characters.",
        "program": "Not a valid programme id: see the rule above.",
        "category": "Choose one of the options.",
        "unit": "Choose one of the options.",
        "quantity": "A whole number from 1 to 1,000,000,000.",
        "value_iqd": "A whole number from 0 to 1,000,000,000,000.",
        "district": "This district is not in the chosen governorate.",
        "target_count": "A whole number from 1 to 100,000.",
    }
    assert 'value="1234567"' in html  # what was typed comes back
    # A program id that could carry a national ID is refused.
    response = await post(web, "/distributions", plan_form(program="id198501234567"))
    assert response.status == 422
    assert set(errors(await response.text())) == {"program"}
    # control characters in the title: the service's own rule, shown on the field
    response = await post(web, "/distributions", plan_form(title="a\u202eb"))
    assert response.status == 422
    assert set(errors(await response.text())) == {"title"}
    assert await web.node.ataa.distributions.list_all() == []
    assert await audit(web, "ataa.distribution.create") == []


async def test_create_and_list(web: WebNode) -> None:
    response = await post(web, "/distributions", plan_form(value_iqd="٥٠٬٠٠٠", district=""))
    assert response.status == 303
    match = re.fullmatch(r"/distributions/(\d+)\?done=created", response.headers["Location"])
    assert match
    did = int(match.group(1))
    made = await web.node.ataa.distributions.get(did)
    assert made.plan == DistributionPlan(
        title="Winter food baskets",
        program="winter-2026",
        category="food",
        unit="basket",
        quantity=2,
        value_iqd=50_000,
        governorate=GOVERNORATE,
        district=None,
        target_count=2,
    )
    (row_audit,) = await audit(web, "ataa.distribution.create")
    assert row_audit["actor"] == web.staff[C].account.id
    assert row_audit["target"] == f"distribution:{did}"
    _status, html = await get(web, f"/distributions/{did}?done=created")
    assert "The distribution was created." in text(html)
    assert "Pick 2 households from the queue" in text(html)
    _status, html = await get(web, "/distributions", W)
    listed = text(html)
    assert "Winter food baskets" in listed and "winter-2026" in listed
    assert "Food · 2 (basket) · 50,000 IQD" in listed
    assert "Target: 2" in listed and "Delivered: 0" in listed
    assert f'href="/distributions/{did}"' in html


# -- choosing households --------------------------------------------------------------------


async def test_pick_include_exclude(web: WebNode) -> None:
    first = await add_household(web, "سعد", 700)
    second = await add_household(web, "حيدر", 650)
    third = await add_household(web, "كريم", 600)
    mosul = await add_household(
        web, "زيد", 900, district=OTHER_DISTRICT, governorate=OTHER_GOVERNORATE
    )
    did = await plan(web, target=2, district=DISTRICT)
    response = await post(web, f"/distributions/{did}/pick", {})
    assert response.status == 303
    assert response.headers["Location"] == f"/distributions/{did}?done=picked&added=2"
    _status, html = await get(web, f"/distributions/{did}?done=picked&added=2")
    assert "Households added from the queue: 2." in text(html)
    assert await states(web, did) == {first: "planned", second: "planned"}  # not Mosul
    assert "No. 1 in the queue" in row_text(html, first)
    assert "No. 2 in the queue" in row_text(html, second)
    assert "Priority 650" in row_text(html, second)
    assert "Every place is taken" in text(html)
    # full: picking again adds nothing, and says so
    response = await post(web, f"/distributions/{did}/pick", {})
    assert response.headers["Location"].endswith("added=0")
    # exclude needs a reason; then the next one in the queue takes the place
    response = await post(web, f"/distributions/{did}/exclude", {"household": str(second)})
    assert response.status == 422
    html = await response.text()
    assert f'id="reason-exclude-{second}-error"' in html
    assert await states(web, did) == {first: "planned", second: "planned"}
    reason = "Moved to Erbil last week"
    response = await post(
        web, f"/distributions/{did}/exclude", {"household": str(second), "reason": reason}
    )
    assert response.status == 303
    assert response.headers["Location"] == (
        f"/distributions/{did}?done=excluded#household-{second}"
    )
    await post(web, f"/distributions/{did}/pick", {})
    assert await states(web, did) == {first: "planned", second: "excluded", third: "planned"}
    # include by hand: the Mosul household, with a reason; unknown numbers refused
    response = await post(web, f"/distributions/{did}/include", {"household": "abc", "reason": "x"})
    assert response.status == 422
    assert errors(await response.text()) == {"household": "No household has this number."}
    response = await post(
        web, f"/distributions/{did}/include", {"household": "4242", "reason": "x"}
    )
    assert response.status == 422
    assert errors(await response.text()) == {"household": "No household has this number."}
    response = await post(
        web, f"/distributions/{did}/include", {"household": str(mosul), "reason": ""}
    )
    assert response.status == 422
    assert set(errors(await response.text())) == {"reason"}
    response = await post(
        web,
        f"/distributions/{did}/include",
        {"household": str(mosul), "reason": "Referred by the protection team"},
    )
    assert response.status == 303
    assert (await states(web, did))[mosul] == "planned"
    _status, html = await get(web, f"/distributions/{did}")
    assert "Added by hand" in row_text(html, mosul)
    assert "Reason: Referred by the protection team" in row_text(html, mosul)
    assert f"Reason: {reason}" in row_text(html, second)
    # the state filter
    _status, html = await get(web, f"/distributions/{did}?state=excluded")
    assert re.findall(r'id="household-(\d+)"', html) == [str(second)]
    # audit rows name households by id, never the reasons typed
    rows = await audit(web, "ataa.distribution.exclude") + await audit(
        web, "ataa.distribution.include"
    )
    assert {r["household"] for r in rows} == {second, mosul}
    assert all(reason not in str(r) and "protection" not in str(r) for r in rows)


# -- deliveries -----------------------------------------------------------------------------


async def test_deliver_appends_an_allocation(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    use_epoch(monkeypatch, web)
    ready = await add_household(web, "سعد", 700, national_id="900000000101")
    waiting = await add_household(web, "حيدر", 650, national_id="900000000102")
    await make_ready(web, ready, pseudonym("ready"))
    did = await plan(web, target=2)
    await web.node.ataa.distributions.pick(did, actor=None)
    _status, html = await get(web, f"/distributions/{did}", W)
    assert 'class="button button-big">Mark as delivered' in row(html, ready)
    response = await post(web, f"/distributions/{did}/deliver", {"household": str(ready)}, W)
    assert response.status == 303
    assert response.headers["Location"] == f"/distributions/{did}?done=delivered#household-{ready}"
    (content,) = await own_allocations(web)
    assert content == {
        "category": "food",
        "date": TODAY,
        "district": DISTRICT,
        "epoch": 1,
        "program": "winter-2026",
        "pseudonym": pseudonym("ready"),
        "quantity": 2,
        "unit": "basket",
        "value_iqd": 50_000,
    }
    # delivering twice changes nothing
    response = await post(web, f"/distributions/{did}/deliver", {"household": str(ready)}, W)
    assert response.status == 303 and len(await own_allocations(web)) == 1
    # a household whose pseudonym is pending is delivered; its entry waits
    response = await post(web, f"/distributions/{did}/deliver", {"household": str(waiting)}, W)
    assert response.status == 303
    assert len(await own_allocations(web)) == 1
    _status, html = await get(web, f"/distributions/{did}?done=delivered", W)
    assert "The delivery was recorded." in text(html)
    assert "Delivered on 28 May 2026" in row_text(html, ready)
    assert "Shared with the federation" in row_text(html, ready)
    assert "once the household's pseudonym is ready" in row_text(html, waiting)
    assert "Delivering" in text(html)
    (entry_audit, _other) = await audit(web, "ataa.delivery")
    assert entry_audit["actor"] == web.staff[W].account.id
    # a household not in the distribution, or a bad number
    response = await post(web, f"/distributions/{did}/deliver", {"household": "77"}, W)
    assert response.status == 404
    assert response.headers["X-Watan-Error"] == "NOT_FOUND"
    response = await post(web, f"/distributions/{did}/deliver", {"household": "x"}, W)
    assert response.status == 422


async def test_duplicate_warning_flow(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    use_epoch(monkeypatch, web)
    peer = Peer(web)
    await peer.profile()
    hid = await add_household(web, "سعد", 700, national_id="900000000201")
    await make_ready(web, hid, pseudonym("served"))
    await peer.allocation(pseudonym("served"), date="2026-05-25", value_iqd=60_000)
    # cash from the same NGO is no duplicate of food
    await peer.allocation(pseudonym("served"), category="cash")
    did = await plan(web, target=1)
    await web.node.ataa.distributions.include(did, hid, "Referred", actor=None)

    # The case worker sees the warning and no Delivered button ...
    _status, html = await get(web, f"/distributions/{did}", W)
    card = row_text(html, hid)
    assert "Possible duplicate assistance" in card
    assert "Received food worth 60,000 IQD from Hope Relief on 25 May 2026" in card
    assert "cash" not in card
    assert "until a coordinator records an override" in card
    assert f'action="/distributions/{did}/deliver"' not in row(html, hid)
    assert f'action="/distributions/{did}/override"' not in html
    # ... and posting anyway is refused with the warning shown.
    response = await post(web, f"/distributions/{did}/deliver", {"household": str(hid)}, W)
    assert response.status == 409
    assert response.headers["X-Watan-Error"] == "DUPLICATE_ASSISTANCE"
    html = await response.text()
    assert "Not delivered: another organisation gave this household" in text(html)
    assert "from Hope Relief on 25 May 2026" in row_text(html, hid)
    assert await own_allocations(web) == []
    assert (await states(web, did))[hid] == "planned"

    # The coordinator overrides: a reason is required.
    _status, html = await get(web, f"/distributions/{did}", C)
    assert f'action="/distributions/{did}/override"' in row(html, hid)
    response = await post(web, f"/distributions/{did}/override", {"household": str(hid)})
    assert response.status == 422
    assert f'id="reason-override-{hid}-error"' in await response.text()
    reason = "Their basket was for a different family member"
    response = await post(
        web, f"/distributions/{did}/override", {"household": str(hid), "reason": reason}
    )
    assert response.status == 303
    (override_audit,) = await audit(web, "ataa.delivery.override")
    assert override_audit["actor"] == web.staff[C].account.id
    assert override_audit["household"] == hid and override_audit["warnings"] == 1
    assert reason not in str(override_audit)

    # Now the case worker delivers.
    _status, html = await get(web, f"/distributions/{did}", W)
    assert f"A coordinator allowed this delivery: {reason}" in row_text(html, hid)
    response = await post(web, f"/distributions/{did}/deliver", {"household": str(hid)}, W)
    assert response.status == 303
    (content,) = await own_allocations(web)
    assert content["pseudonym"] == pseudonym("served") and content["category"] == "food"


async def test_void(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    use_epoch(monkeypatch, web)
    hid = await add_household(web, "سعد", 700, national_id="900000000301")
    await make_ready(web, hid, pseudonym("void"))
    did = await plan(web, target=1)
    await web.node.ataa.distributions.pick(did, actor=None)
    # only a delivery is voided
    response = await post(
        web, f"/distributions/{did}/void", {"household": str(hid), "reason": "returned"}, W
    )
    assert response.status == 409
    await post(web, f"/distributions/{did}/deliver", {"household": str(hid)}, W)
    _status, html = await get(web, f"/distributions/{did}", W)
    assert f'action="/distributions/{did}/void"' in row(html, hid)
    assert '<option value="not_delivered">Not actually delivered</option>' in html
    response = await post(
        web, f"/distributions/{did}/void", {"household": str(hid), "reason": "because"}, W
    )
    assert response.status == 422
    assert f'id="void-{hid}-error"' in await response.text()
    response = await post(
        web, f"/distributions/{did}/void", {"household": str(hid), "reason": "not_delivered"}, W
    )
    assert response.status == 303
    assert (await states(web, did))[hid] == "voided"
    # the void entry names our allocation entry (id = SHA-256 of its wire)
    ((allocation_wire),) = [
        wire
        for author, _seq, wire in await web.node.feeds.all_of_kind("ataa.allocation/1")
        if author == web.node.identity.node_id
    ]
    (void,) = await own_allocations(web, "ataa.allocation_void/1")
    assert void == {
        "allocation": hashlib.sha256(allocation_wire).digest(),
        "reason": "not_delivered",
    }
    _status, html = await get(web, f"/distributions/{did}?done=voided", W)
    assert "The delivery was voided." in text(html)
    assert "Reason: Not actually delivered" in row_text(html, hid)
    assert "Voided" in row_text(html, hid)


async def test_close(web: WebNode) -> None:
    hid = await add_household(web, "سعد", 700)
    did = await plan(web, target=1)
    await web.node.ataa.distributions.pick(did, actor=None)
    response = await post(web, f"/distributions/{did}/close", {})
    assert response.status == 303
    assert (await web.node.ataa.distributions.get(did)).state == "closed"
    _status, html = await get(web, f"/distributions/{did}", W)
    assert "Closed" in text(html)
    assert f'action="/distributions/{did}/deliver"' not in html
    response = await post(web, f"/distributions/{did}/deliver", {"household": str(hid)}, W)
    assert response.status == 409
    assert response.headers["X-Watan-Error"] == "BAD_STATE"
    response = await post(web, f"/distributions/{did}/pick", {})
    assert response.status == 409
    assert (await states(web, did))[hid] == "planned"


async def test_distribution_in_arabic(web: WebNode) -> None:
    # Needs the merged catalog (the Arabic msgstrs of /work/briefs/ar_queue.json).
    hid = await add_household(web, "سعد", 700)
    did = await plan(web, target=1)
    await web.node.ataa.distributions.pick(did, actor=None)
    status, html = await get(web, f"/distributions/{did}", W, lang="ar")
    assert status == 200 and '<html lang="ar" dir="rtl">' in html
    assert "تأكيد التسليم" in row_text(html, hid)
    assert "٢ (سلة)" in text(html) and "الغذاء" in text(html)
    assert "بانتظار التسليم" in row_text(html, hid)


# -- CSRF and privacy -----------------------------------------------------------------------


async def test_deliveries_need_the_csrf_token(web: WebNode) -> None:
    hid = await add_household(web, "سعد", 700)
    did = await plan(web, target=1)
    await web.node.ataa.distributions.pick(did, actor=None)
    staff = web.staff[W]
    path = f"/distributions/{did}/deliver"
    wrong = await web.request(
        "POST", path, staff, data={"household": str(hid)}, headers={CSRF_HEADER: "x" * 43}
    )
    assert wrong.status == 403 and wrong.headers["X-Watan-Error"] == "CSRF"
    web.client.session.cookie_jar.clear()
    missing = await web.client.post(
        path, data={"household": str(hid)}, cookies={SESSION_COOKIE: staff.token}
    )
    assert missing.status == 403 and missing.headers["X-Watan-Error"] == "CSRF"
    assert (await states(web, did))[hid] == "planned"
    # the token of the page's own form is what a browser sends
    _status, html = await get(web, f"/distributions/{did}", W)
    token = re.search(r'name="csrf_token" value="([^"]+)"', row(html, hid))
    assert token is not None
    web.client.session.cookie_jar.clear()
    ok = await web.client.post(
        path,
        data={"household": str(hid), "csrf_token": token.group(1)},
        cookies={SESSION_COOKIE: staff.token},
        allow_redirects=False,
    )
    assert ok.status == 303
    assert (await states(web, did))[hid] == "delivered"


async def test_no_name_or_reason_in_logs(
    web: WebNode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    use_epoch(monkeypatch, web)
    peer = Peer(web)
    await peer.profile()
    hid = await add_household(web, "مرتضى", 700, national_id="900000000501")
    await make_ready(web, hid, pseudonym("logged"))
    await peer.allocation(pseudonym("logged"))
    did = await plan(web, target=1)
    reason = "سبب خاص بالأسرة"
    await post(web, f"/distributions/{did}/include", {"household": str(hid), "reason": reason})
    await post(web, f"/distributions/{did}/deliver", {"household": str(hid)}, W)
    await post(web, f"/distributions/{did}/override", {"household": str(hid), "reason": reason})
    await post(web, f"/distributions/{did}/deliver", {"household": str(hid)}, W)
    for path in (f"/distributions/{did}", "/queue", "/reports"):
        await get(web, path, C)
    assert (await states(web, did))[hid] == "delivered"
    # The database driver's own DEBUG lines print SQL parameters, the stored reason
    # among them (node/logs.py keeps the root at INFO); everything else must not.
    logged = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name != "aiosqlite"
    )
    assert "/distributions" in logged  # the requests were logged ...
    for secret in ("مرتضى", "التميمي", reason, "900000000501"):
        assert secret not in logged, secret  # ... without a name, ID or reason
