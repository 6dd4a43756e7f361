"""The priority queue page and its JSON API in process (aiohttp test client, real node
services, fake clock): who may reach them; the order (need score minus what each
household received, from this node or another NGO by strong pseudonym) and the
explanation of every row (another NGO's aid with its name, our own deliveries, a
name-based match shown but not counted, a pending pseudonym); filters and pages; the
notice when no oracle configuration is in force; the settings form (422 per field and
nothing saved, or saved and audited); the API's documented shape, with no name in it.

Also the helpers the distribution and report tests share: households registered
through the service with a chosen score, pseudonyms made ready, and a peer NGO whose
signed profile and allocations are ingested as replication would.

Tests marked "needs the merged catalog" check Arabic text and pass only once the new
msgids are in ``admin_ui/locale/ar`` (see /work/briefs/ar_queue.json).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

import protocol
from node.accounts import Role
from node.ataa import DistributionPlan, HouseholdRecord
from node.storage._schema import ataa_households, pseudonyms
from node.web._schema import check
from tests.node.conftest import PEER_KEY
from tests.node.web_helpers import WebNode, web_node

A, C, W, R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR
#: The fake clock's day in Iraq (tests/node/allocation_helpers.py).
TODAY = "2026-05-28"
DISTRICT, GOVERNORATE = "IQG08Q01", "IQG08"
OTHER_DISTRICT, OTHER_GOVERNORATE = "IQG15Q05", "IQG15"
PEER_NAME = {"ar": "منظمة الأمل", "en": "Hope Relief"}
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "node") as node:
        yield node


# -- shared helpers -------------------------------------------------------------------------


async def get(web: WebNode, path: str, role: Role = C, lang: str = "en") -> tuple[int, str]:
    response = await web.request("GET", path, web.staff[role], cookies={"watan_lang": lang})
    return response.status, await response.text()


async def post(
    web: WebNode, path: str, data: dict[str, str], role: Role = C, lang: str = "en"
) -> Any:
    staff = web.staff[role]
    return await web.request(
        "POST", path, staff, data={**data, "csrf_token": staff.csrf}, cookies={"watan_lang": lang}
    )


def main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def text(html: str) -> str:
    """The visible text of the main content."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", main(html))).split())


def errors(html: str) -> dict[str, str]:
    found = re.findall(r'<p class="error" id="f-([^"]+)-error">([^<]*)</p>', html)
    return {name: htmllib.unescape(message) for name, message in found}


def band_of(score: int) -> str:
    """The default model's band of a score (node/ataa/scoring_default.json)."""
    return (
        "critical"
        if score >= 600
        else "high"
        if score >= 400
        else "moderate"
        if score >= 200
        else "low"
    )


async def add_household(
    web: WebNode,
    given: str,
    score: int,
    *,
    national_id: str | None = None,
    district: str = DISTRICT,
    governorate: str = GOVERNORATE,
) -> int:
    """Register a household through the service, then give it ``score`` (the queue
    orders by the stored score; the scoring model is tested elsewhere)."""
    record = HouseholdRecord(
        name=(given, "علي", "حسين", "التميمي"),
        mother_name="فاطمة كاظم",
        national_id=national_id,
        birth_date="1980-03-02",  # without a national ID: a weak pseudonym from names
        governorate=governorate,
        district=district,
        member_count=4,
    )
    hid = await web.node.ataa.households.create(record, actor=None)

    def set_score(conn: Connection) -> None:
        conn.execute(
            update(ataa_households)
            .where(ataa_households.c.id == hid)
            .values(score=score, band=band_of(score))
        )

    await web.node.db.write(set_score)
    return hid


def pseudonym(name: str) -> bytes:
    """A 32-byte pseudonym value (what the oracles would compute) named for a test."""
    return hashlib.sha256(b"pseudonym " + name.encode()).digest()


async def make_ready(web: WebNode, hid: int, value: bytes, *, epoch: int = 1) -> None:
    """Make the household's pseudonym ready in ``epoch`` with ``value``."""

    def insert(conn: Connection) -> None:
        row = conn.execute(
            select(ataa_households.c.pseudonym_mac, ataa_households.c.weak).where(
                ataa_households.c.id == hid
            )
        ).one()
        assert row.pseudonym_mac is not None
        conn.execute(
            pseudonyms.insert().values(
                mac=row.pseudonym_mac,
                epoch=epoch,
                weak=bool(row.weak),
                value=value,
                sealed_input=None,
                attempts=0,
                next_ms=0,
                created_ms=web.clock.now_ms(),
                updated_ms=web.clock.now_ms(),
            )
        )

    await web.node.db.write(insert)


def use_epoch(monkeypatch: pytest.MonkeyPatch, web: WebNode, epoch: int = 1) -> None:
    """An oracle configuration in force with ``epoch`` (dealing one is tested in
    tests/admin_ui/test_oracles.py; here only its epoch matters)."""

    async def config() -> Any:
        return SimpleNamespace(epoch=epoch)

    monkeypatch.setattr(web.node.federation.pseudonyms, "config", config)


class Peer:
    """Another NGO: its signed profile and allocations, ingested as replication would."""

    def __init__(self, web: WebNode, key: protocol.SigningKey = PEER_KEY) -> None:
        self.web = web
        self.key = key
        self.head: protocol.FeedHead | None = None

    @property
    def author(self) -> bytes:
        return protocol.public_key(self.key)

    async def append(self, body: protocol.Body) -> protocol.Entry:
        entry = protocol.append(
            self.head,
            body,
            key=self.key,
            net=self.web.node.federation.net,
            now_ms=self.web.clock.now_ms(),
        )
        self.head = protocol.head_after(self.head, entry)
        result = await self.web.node.feeds.ingest(
            entry.wire, net=self.web.node.federation.net, now_ms=self.web.clock.now_ms()
        )
        assert result.status == "stored"
        return entry

    async def profile(self, name: dict[str, str] = PEER_NAME) -> None:
        await self.append(
            protocol.Profile(
                enc_key=bytes(32),
                endpoints=[],
                governorate=GOVERNORATE,
                name_ar=name["ar"],
                name_en=name["en"],
                registration="NGO-1",
                role="ngo",
                sectors=["food_security"],
            )
        )

    async def allocation(self, value: bytes, **changes: Any) -> protocol.Entry:
        fields: dict[str, Any] = {
            "category": "food",
            "date": TODAY,
            "district": DISTRICT,
            "epoch": 1,
            "program": "winter-2026",
            "pseudonym": value,
            "quantity": 2,
            "unit": "basket",
            "value_iqd": 50_000,
        }
        fields.update(changes)
        return await self.append(protocol.Allocation(**fields))


async def audit(web: WebNode, action: str) -> list[dict[str, Any]]:
    rows = await web.node.audit.query(action=action, limit=100)
    return [{**json.loads(r.details), "actor": r.actor, "target": r.target} for r in rows]


def queue_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'class="queue-item" id="queue-(\d+)"', html)]


def item(html: str, hid: int) -> str:
    """The text of one household's card."""
    match = re.search(rf'id="queue-{hid}".*?</li>\s*(?=<li class="queue-item"|</ol>)', html, re.S)
    assert match, f"household {hid} not in the page"
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", match.group(0))).split())


# -- access ---------------------------------------------------------------------------------


async def test_who_may_reach_the_queue(web: WebNode) -> None:
    await add_household(web, "أحمد", 500)
    for role in (A, C, W, R):
        status, _html = await get(web, "/queue", role)
        assert status == (200 if role in (C, W) else 403), role
        response = await web.request("GET", "/api/v1/ataa/queue", web.staff[role])
        assert response.status == (200 if role in (C, W) else 403), role
    # only coordinators may change the settings, and see the form
    form = {"window_days": "10", "same_category_penalty": "300"}
    for role in (A, W, R):
        response = await post(web, "/queue/settings", form, role)
        assert response.status == 403, role
    _status, html = await get(web, "/queue", W)
    assert 'action="/queue/settings"' not in html
    _status, html = await get(web, "/queue", C)
    assert 'action="/queue/settings"' in html
    assert (await web.node.ataa.queue.settings()).window_days == 30
    # signed out: to the sign-in page
    response = await web.request("GET", "/queue")
    assert response.status == 303 and response.headers["Location"].startswith("/login")


# -- order and explanations -------------------------------------------------------------------


async def test_order_and_explanations(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    use_epoch(monkeypatch, web)
    peer = Peer(web)
    await peer.profile()
    served = await add_household(web, "سعد", 700, national_id="900000000001")
    neediest = await add_household(web, "حيدر", 650, national_id="900000000002")
    weak = await add_household(web, "كريم", 600)  # no national ID: a name-based pseudonym
    other = await add_household(web, "عمر", 400, national_id="900000000003")
    pending = await add_household(web, "مهدي", 300, national_id="900000000004")
    await make_ready(web, served, pseudonym("served"))
    await make_ready(web, neediest, pseudonym("neediest"))
    await make_ready(web, weak, pseudonym("weak"))
    await make_ready(web, other, pseudonym("other"))
    # food for "served" (same category: 400 points), cash for "other" (100 points),
    # food for "weak" (a possible match only), and an older one outside the window
    await peer.allocation(pseudonym("served"), date="2026-05-20")
    await peer.allocation(pseudonym("other"), category="cash", value_iqd=100_000)
    await peer.allocation(pseudonym("weak"))
    await peer.allocation(pseudonym("neediest"), date="2026-04-01")  # 57 days ago

    status, html = await get(web, "/queue?category=food")
    assert status == 200
    # 700 - 400 = 300 drops below 650, 600, and 400 - 100 = 300 (registered earlier)
    assert queue_ids(html) == [neediest, weak, served, other, pending]
    assert f'href="/households/{served}"' in html
    served_text = item(html, served)
    assert "No. 3" in served_text and "Priority 300" in served_text
    assert "Score 700 − penalty 400 = priority 300" in served_text
    assert (
        "Received food worth 50,000 IQD from Hope Relief on 20 May 2026 (−400 points)"
        in served_text
    )
    assert "Received cash worth 100,000 IQD from Hope Relief on 28 May 2026 (−100 points)" in item(
        html, other
    )
    weak_text = item(html, weak)
    assert "Priority 600" in weak_text and "penalty" not in weak_text
    assert (
        "Possible match (name-based), not counted: food worth 50,000 IQD from Hope Relief "
        "on 28 May 2026" in weak_text
    )
    assert "Name-based" in weak_text
    assert "Received" not in item(html, neediest)  # April is outside the 30-day window
    assert "No aid recorded" in item(html, neediest)
    assert "Pseudonym pending" in item(html, pending)
    assert "will count once it is ready" in item(html, pending)
    # the district's name, and nothing about pseudonym configuration
    assert "Al-Adhamiya" in served_text or "Adhamiya" in served_text
    assert "No pseudonym oracle configuration" not in text(html)

    # Without a category every allocation counts fully: cash costs "other" 400 too.
    _status, html = await get(web, "/queue")
    assert "Score 400 − penalty 400 = priority 0" in item(html, other)
    assert queue_ids(html)[-1] == other


async def test_own_deliveries_count_without_oracles(web: WebNode) -> None:
    first = await add_household(web, "سعد", 700, national_id="900000000011")
    second = await add_household(web, "حيدر", 500, national_id="900000000012")
    service = web.node.ataa.distributions
    plan = DistributionPlan(
        title="Food",
        program="food-2026",
        category="food",
        unit="basket",
        quantity=1,
        value_iqd=75_000,
        target_count=1,
    )
    distribution = await service.create(plan, actor=None)
    assert await service.pick(distribution.id, actor=None) == 1
    await service.deliver(distribution.id, first, actor=None)
    status, html = await get(web, "/queue?category=food")
    assert status == 200
    assert queue_ids(html) == [second, first]
    profile = await web.services.profiles.current()
    assert profile is not None
    assert (
        f"Received food worth 75,000 IQD from {profile.name_en} on 28 May 2026 (−400 points)"
        in item(html, first)
    )
    # no oracle configuration: said once, as a notice
    assert text(html).count("No pseudonym oracle configuration is in force yet") == 1


async def test_filters_and_pages(web: WebNode) -> None:
    mosul = await add_household(
        web, "زيد", 900, district=OTHER_DISTRICT, governorate=OTHER_GOVERNORATE
    )
    baghdad = [await add_household(web, f"علي{'ي' * n}", 800 - n) for n in range(27)]
    _status, html = await get(web, "/queue")
    assert queue_ids(html) == [mosul, *baghdad[:24]]
    assert "1 to 25 of 28" in text(html)
    assert 'href="/queue?page=2"' in html
    _status, html = await get(web, "/queue?page=2")
    assert queue_ids(html) == baghdad[24:]
    assert "26 to 28 of 28" in text(html)
    assert 'rel="prev" href="/queue"' in html
    _status, html = await get(web, f"/queue?governorate={OTHER_GOVERNORATE}")
    assert queue_ids(html) == [mosul]
    _status, html = await get(web, f"/queue?district={DISTRICT}&band=critical")
    assert queue_ids(html) == baghdad[:25] and "1 to 25 of 27" in text(html)
    _status, html = await get(web, f"/queue?district={DISTRICT}&band=low")
    assert queue_ids(html) == []
    # a stale or hostile link shows the whole queue rather than failing
    status, html = await get(web, "/queue?category=gold&district=x&band=%3Cb%3E&page=abc")
    assert status == 200 and queue_ids(html)[0] == mosul
    # the category filter keeps the other filters in the page links
    _status, html = await get(web, f"/queue?category=food&district={DISTRICT}")
    assert f'href="/queue?category=food&amp;district={DISTRICT}&amp;page=2"' in html


# -- settings -------------------------------------------------------------------------------


async def test_settings_refused_per_field(web: WebNode) -> None:
    form = {
        "window_days": "0",
        "same_category_penalty": "abc",
        "other_category_penalty": "50",
        "cap_pct": "101",
    }
    response = await post(web, "/queue/settings", form)
    assert response.status == 422
    html = await response.text()
    found = errors(html)
    assert found == {
        "window_days": "A whole number from 1 to 366.",
        "same_category_penalty": "A whole number from 0 to 1,000.",
        "cap_pct": "A whole number from 0 to 100.",
    }
    assert 'value="abc"' in html  # what was typed comes back
    # other above same
    form = {
        "window_days": "7",
        "same_category_penalty": "100",
        "other_category_penalty": "200",
        "cap_pct": "50",
    }
    response = await post(web, "/queue/settings", form)
    assert response.status == 422
    assert errors(await response.text()) == {
        "other_category_penalty": "At most the points per allocation of the same category."
    }
    assert await audit(web, "ataa.queue.settings") == []
    assert (await web.node.ataa.queue.settings()).window_days == 30


async def test_settings_saved_and_audited(web: WebNode) -> None:
    form = {
        "window_days": "١٤",  # Arabic-Indic digits, as a phone keyboard types them
        "same_category_penalty": "250",
        "other_category_penalty": "50",
        "cap_pct": "80",
    }
    response = await post(web, "/queue/settings", form)
    assert response.status == 303
    assert response.headers["Location"] == "/queue?done=settings#settings-heading"
    settings = await web.node.ataa.queue.settings()
    assert (settings.window_days, settings.same_category_penalty) == (14, 250)
    assert (settings.other_category_penalty, settings.cap_pct) == (50, 80)
    (row,) = await audit(web, "ataa.queue.settings")
    assert row["actor"] == web.staff[C].account.id and row["window_days"] == 14
    _status, html = await get(web, "/queue?done=settings")
    assert "The queue settings were saved." in text(html)
    assert '<dd id="setting-window_days">14</dd>' in html


async def test_queue_in_arabic(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    # Needs the merged catalog (the Arabic msgstrs of /work/briefs/ar_queue.json).
    use_epoch(monkeypatch, web)
    peer = Peer(web)
    await peer.profile()
    hid = await add_household(web, "سعد", 700, national_id="900000000021")
    await make_ready(web, hid, pseudonym("served"))
    await peer.allocation(pseudonym("served"))
    status, html = await get(web, "/queue?category=food", lang="ar")
    assert status == 200
    assert '<html lang="ar" dir="rtl">' in html
    line = item(html, hid)
    assert "الأولوية ٣٠٠" in line
    assert (
        "تلقّت مساعدة من فئة «الغذاء» بقيمة ٥٠٬٠٠٠ دينار من منظمة الأمل في ٢٨ أيار ٢٠٢٦ (−٤٠٠ نقطة)"
        in line
    )


# -- the JSON API ---------------------------------------------------------------------------


async def test_api_shape_and_no_names(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    use_epoch(monkeypatch, web)
    peer = Peer(web)
    await peer.profile()
    served = await add_household(web, "سعد", 700, national_id="900000000031")
    other = await add_household(web, "حيدر", 650, national_id="900000000032")
    await make_ready(web, served, pseudonym("served"))
    await peer.allocation(pseudonym("served"))
    response = await web.request(
        "GET", "/api/v1/ataa/queue?category=food&limit=1&offset=1", web.staff[W]
    )
    assert response.status == 200
    body = await response.json()
    document = await (await web.request("GET", "/api/v1/openapi.json")).json()
    schema = document["paths"]["/api/v1/ataa/queue"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    check(schema, body)
    assert body["epoch"] == 1 and body["total"] == 2 and body["offset"] == 1
    assert body["settings"] == {
        "window_days": 30,
        "same_category_penalty": 400,
        "other_category_penalty": 100,
        "cap_pct": 100,
    }
    (row,) = body["rows"]
    assert row == {
        "rank": 2,
        "household_id": served,
        "score": 700,
        "band": "critical",
        "priority": 300,
        "penalty": 400,
        "pseudonym_state": "ready",
        "weak": False,
        "received": [
            {
                "author": peer.author.hex(),
                "category": "food",
                "value_iqd": 50_000,
                "quantity": 2,
                "unit": "basket",
                "date": TODAY,
                "program": "winter-2026",
                "weak_match": False,
                "points": 400,
            }
        ],
    }
    raw = await (await web.request("GET", "/api/v1/ataa/queue", web.staff[C])).text()
    assert [r["household_id"] for r in json.loads(raw)["rows"]] == [other, served]
    assert "سعد" not in raw and "التميمي" not in raw and "900000000031" not in raw
    for query in ("category=gold", "limit=0", "limit=501", "offset=-1", "limit=x"):
        response = await web.request("GET", f"/api/v1/ataa/queue?{query}", web.staff[C])
        assert response.status == 422, query
        assert (await response.json())["error"]["code"] == "INVALID", query
