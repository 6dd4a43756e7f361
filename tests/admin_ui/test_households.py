"""The household pages in process (aiohttp test client, real node services, fake
clock): who may reach each route; the audited full record for case workers and the
unaudited summary for coordinators; registration and editing with an error per field
(nothing stored), a national ID already held (a link to its holder); search with
Arabic spelling variants, by national ID and by phone in Arabic-Indic digits; filters
and pages; archiving; duplicate suggestions merged and dismissed; the scoring model
refused with its JSON path, or saved as a new version and every household re-scored;
data keys rotated; CSRF; and no personal detail in any log line.

Tests marked "needs the merged catalog" check Arabic text and pass only once the new
msgids are in ``admin_ui/locale/ar`` (see /work/briefs/ar_households.json).
"""

from __future__ import annotations

import html as htmllib
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.accounts import Role
from node.ataa import default_model, dump_model
from node.web import CSRF_HEADER, SESSION_COOKIE
from tests.node.web_helpers import WebNode, web_node

A, C, W, R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR
NATIONAL_ID = "198501234567"
#: Latin words an Arabic page may show: names of staff and of file formats and tools.
LATIN_OK = {"Staff", "coord", "admin", "Excel", "xlsx", "KoboToolbox", "JSON", "docs", "scoring"}
PHONE = "07701234567"


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "node") as node:
        yield node


def household(**changes: str) -> dict[str, str]:
    """A valid registration form: a family of four, listed one by one."""
    form = {
        "given_name": "أحمد",
        "father_name": "علي",
        "grandfather_name": "حسين",
        "family_name": "التميمي",
        "mother_name": "فاطمة كاظم جواد",
        "national_id": NATIONAL_ID,
        "phone": PHONE,
        "birth_date": "1985-03-02",
        "head_sex": "male",
        "governorate": "IQG08",
        "district": "IQG08Q01",
        "address": "حي الأعظمية، شارع 20",
        "displacement": "idp_out_of_camp",
        "shelter": "rented",
        "monthly_income_iqd": "250,000",
        "debt_iqd": "1000000",
        "people": "roster",
        "rows": "10",
        "m0_age": "40",
        "m0_sex": "male",
        "m1_age": "35",
        "m1_sex": "female",
        "m1_chronic_illness": "yes",
        "m2_age": "9",
        "m2_sex": "female",
        "m2_in_school": "no",
        "m3_age": "3",
        "m3_sex": "male",
        "m3_disability": "yes",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


async def get(web: WebNode, path: str, role: Role = W, lang: str = "en") -> tuple[int, str]:
    response = await web.request("GET", path, web.staff[role], cookies={"watan_lang": lang})
    return response.status, await response.text()


async def post(
    web: WebNode, path: str, data: dict[str, str], role: Role = W, lang: str = "en"
) -> Any:
    staff = web.staff[role]
    return await web.request(
        "POST",
        path,
        staff,
        data={**data, "csrf_token": staff.csrf},
        cookies={"watan_lang": lang},
    )


async def register(web: WebNode, **changes: str) -> int:
    response = await post(web, "/households", household(**changes))
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    match = re.fullmatch(r"/households/(\d+)\?done=created", location)
    assert match, location
    return int(match.group(1))


def main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def text(html: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", main(html))).split())


def errors(html: str) -> dict[str, str]:
    """The field errors shown: {field name: message}."""
    found = re.findall(r'<p class="error" id="f-([^"]+)-error">([^<]*)</p>', html)
    return {name: htmllib.unescape(message) for name, message in found}


async def audit(web: WebNode, action: str) -> list[dict[str, Any]]:
    rows = await web.node.audit.query(action=action, limit=100)
    return [{"actor": r.actor, "target": r.target, **json.loads(r.details)} for r in rows]


# -- access -------------------------------------------------------------------------------


async def test_who_may_reach_each_page(web: WebNode) -> None:
    hid = await register(web)
    pages = {
        "/households": {C, W},
        f"/households/{hid}": {C, W},
        "/households/duplicates": {C, W},
        "/scoring": {C, W},
        "/households/new": {W},
        f"/households/{hid}/edit": {W},
        "/households/import": {W},
        "/settings/data-keys": {A},
    }
    for path, allowed in pages.items():
        for role in (A, C, W, R):
            status, _html = await get(web, path, role)
            assert status == (200 if role in allowed else 403), (path, role, status)
    # Forms that change things: only case workers (scoring: coordinators; keys: admins).
    posts = {
        "/households": W,
        f"/households/{hid}/edit": W,
        f"/households/{hid}/archive": W,
        "/households/duplicates/merge": W,
        "/households/duplicates/dismiss": W,
        "/households/import": W,
        "/households/import/check": W,
        "/scoring": C,
        "/settings/data-keys/rotate": A,
    }
    for path, only in posts.items():
        for role in (A, C, W, R):
            if role is only:
                continue
            response = await post(web, path, {}, role)
            assert response.status == 403, (path, role, response.status)
            assert response.headers["X-Watan-Error"] == "FORBIDDEN"
    # The household's record was never changed by any of those.
    assert (await web.node.ataa.households.summary(hid)).status == "active"


async def test_case_worker_sees_the_full_record_and_each_view_is_audited(web: WebNode) -> None:
    hid = await register(web)
    assert await audit(web, "ataa.household.view_pii") == []
    status, html = await get(web, f"/households/{hid}")
    assert status == 200
    page = text(html)
    assert "أحمد علي حسين التميمي" in html and "فاطمة كاظم جواد" in page
    assert re.search(rf'id="national-id">{NATIONAL_ID}<', html)
    assert 'id="phone">+9647701234567<' in html
    assert "Opening this record is recorded in the audit log." in page
    members = re.search(r'<caption id="members-caption">.*?</table>', html, re.S)
    assert members is not None and members.group(0).count("<tr>") == 5  # header + 4
    viewed = await audit(web, "ataa.household.view_pii")
    worker = web.staff[W].account.id
    assert viewed == [
        {"actor": worker, "target": f"household:{hid}", "household": hid, "purpose": "view"}
    ]
    await get(web, f"/households/{hid}/edit")  # the edit form shows the record too
    purposes = [row["purpose"] for row in await audit(web, "ataa.household.view_pii")]
    assert purposes == ["edit", "view"]


async def test_coordinator_gets_a_summary_without_pii_and_no_audit_row(web: WebNode) -> None:
    hid = await register(web)
    status, html = await get(web, f"/households/{hid}", C)
    assert status == 200
    assert "أحمد علي حسين التميمي" in html  # the name, as on every list
    for pii in (NATIONAL_ID, "+9647701234567", "1985-03-02", "فاطمة", "شارع"):
        assert pii not in html, pii
    assert 'id="summary"' in html and 'id="record"' not in html
    assert 'id="breakdown-caption"' in html  # the score and why
    assert "/edit" not in html and "/archive" not in html
    assert await audit(web, "ataa.household.view_pii") == []


async def test_unknown_and_malformed_ids_are_404(web: WebNode) -> None:
    for path in ("/households/99", "/households/99/edit", "/households/99999999999"):
        status, _html = await get(web, path)
        assert status == 404, path
    response = await post(web, "/households/99/archive", {"reason": "moved"})
    assert response.status == 404
    response = await post(web, "/households/99/edit", household())
    assert response.status == 404
    assert await web.node.ataa.households.count() == 0


# -- registration and editing ---------------------------------------------------------------


async def test_register_then_open_the_household(web: WebNode) -> None:
    hid = await register(web)
    status, html = await get(web, f"/households/{hid}?done=created")
    assert status == 200 and "The household was registered." in html
    view = await web.node.ataa.households.get(hid, actor=None)
    record = view.record
    assert record.name == ("أحمد", "علي", "حسين", "التميمي")
    assert record.national_id == NATIONAL_ID and record.phone == "+9647701234567"
    assert record.monthly_income_iqd == 250_000 and record.debt_iqd == 1_000_000
    assert [(m.age, m.sex.value) for m in record.members] == [
        (40, "male"),
        (35, "female"),
        (9, "female"),
        (3, "male"),
    ]
    assert record.members[3].disability and record.members[1].chronic_illness
    assert record.members[2].in_school is False and record.members[0].in_school is None
    assert view.score is not None and view.score.score > 0
    # The breakdown names each indicator with the model's label, value and weight.
    for rule in default_model().indicators:
        assert rule.label_en in html, rule.indicator


async def test_field_errors_are_shown_and_nothing_is_stored(web: WebNode) -> None:
    bad = household(
        given_name="",
        national_id="12345",
        phone="0123",
        governorate="IQG01",  # Anbar, with a Baghdad district
        monthly_income_iqd="a lot",
        m1_age="",
        m2_age="200",
        m2_sex="",
    )
    response = await post(web, "/households", bad)
    assert response.status == 422
    html = await response.text()
    assert errors(html) == {
        "given_name": "Required.",
        "national_id": "The 12 digits of the National Card.",
        "phone": "An Iraqi mobile number, such as 0770 123 4567.",
        "district": "This district is not in the governorate chosen.",
        "monthly_income_iqd": "A whole number of dinars, 0 or more.",
        "m1_age": "Required.",
        "m2_age": "An age in whole years, from 0 to 130.",
        "m2_sex": "Required.",
    }
    assert 'aria-invalid="true"' in html
    # What was typed is kept, so nothing has to be typed again.
    assert 'value="12345"' in html and 'value="a lot"' in html
    assert await web.node.ataa.households.count() == 0


async def test_counts_instead_of_a_roster(web: WebNode) -> None:
    counts = household(people="counts", member_count="3", children_under_5="5")
    response = await post(web, "/households", counts)
    assert response.status == 422
    assert errors(await response.text())["children_under_5"].startswith("The counts do not add")
    hid = await register(web, people="counts", member_count="7", children_under_5="2")
    record = (await web.node.ataa.households.get(hid, actor=None)).record
    assert record.members == () and record.member_count == 7 and record.children_under_5 == 2


async def test_numbers_in_arabic_indic_digits(web: WebNode) -> None:
    hid = await register(web, national_id="١٩٨٥٠١٢٣٤٥٦٧", monthly_income_iqd="٢٥٠٬٠٠٠", m0_age="٤٠")
    record = (await web.node.ataa.households.get(hid, actor=None)).record
    assert record.national_id == NATIONAL_ID and record.monthly_income_iqd == 250_000
    assert record.members[0].age == 40


async def test_a_national_id_already_held_links_to_its_household(web: WebNode) -> None:
    first = await register(web)
    response = await post(web, "/households", household(given_name="محمد", phone=""))
    assert response.status == 409
    html = await response.text()
    assert errors(html)["national_id"] == "Another household already has this national ID."
    assert f'<a href="/households/{first}">' in html
    assert await web.node.ataa.households.count() == 1


async def test_edit_a_household(web: WebNode) -> None:
    hid = await register(web)
    status, html = await get(web, f"/households/{hid}/edit")
    assert status == 200
    assert 'value="أحمد"' in html and 'value="07701234567"' in html
    assert '<option value="IQG08Q01" selected>' in html
    assert re.search(r'id="f-m3_disability" name="m3_disability" value="yes" checked', html)
    bad = await post(web, f"/households/{hid}/edit", household(district="IQG15Q05"))
    assert bad.status == 422
    assert errors(await bad.text()) == {
        "district": "This district is not in the governorate chosen."
    }
    record = (await web.node.ataa.households.get(hid, actor=None)).record
    assert record.district == "IQG08Q01"  # unchanged
    response = await post(
        web, f"/households/{hid}/edit", household(shelter="tent", m4_age="70", m4_sex="female")
    )
    assert (response.status, response.headers["Location"]) == (
        303,
        f"/households/{hid}?done=updated",
    )
    record = (await web.node.ataa.households.get(hid, actor=None)).record
    assert record.shelter == "tent" and len(record.members) == 5
    updates = await audit(web, "ataa.household.update")
    assert [row["household"] for row in updates] == [hid]


async def test_a_large_roster_keeps_every_member_on_edit(web: WebNode) -> None:
    rows = {f"m{i}_{k}": v for i in range(12) for k, v in (("age", str(20 + i)), ("sex", "male"))}
    hid = await register(web, rows="15", **rows)
    assert len((await web.node.ataa.households.get(hid, actor=None)).record.members) == 12
    _status, html = await get(web, f"/households/{hid}/edit")
    assert 'name="rows" value="15"' in html and 'id="f-m11_age"' in html


# -- search, filters, pages -----------------------------------------------------------------


async def test_search_by_name_national_id_and_phone(web: WebNode) -> None:
    hid = await register(web)
    other = await register(
        web,
        given_name="زينب",
        father_name="حسن",
        national_id="199001234560",
        phone="07801234567",
        head_sex="female",
    )
    cases = {
        "احمد": {hid},  # أحمد without its hamza
        "أحمد علي": {hid},
        "زينب": {other},
        "التميمي": {hid, other},
        NATIONAL_ID: {hid},
        "١٩٨٥٠١٢٣٤٥٦٧": {hid},  # in Arabic-Indic digits
        "+964 780 123 4567": {other},
        "٠٧٧٠ ١٢٣ ٤٥٦٧": {hid},
        "نور": set(),
    }
    for query, expected in cases.items():
        for role in (C, W):
            response = await post(web, "/households/search", {"q": query}, role)
            assert response.status == 200
            html = await response.text()
            assert shown(html) == expected, (query, role)
            assert not expected or f'value="{query}"' in html  # the box keeps the query
    response = await post(web, "/households/search", {"q": "نور"})
    assert "No household matches this search." in await response.text()
    # Within filters: both are in Baghdad, none in Ninewa.
    response = await post(web, "/households/search", {"q": "التميمي", "governorate": "IQG15"})
    assert shown(await response.text()) == set()
    # An empty search is the list, by link (filters are not PII).
    response = await post(web, "/households/search", {"q": " ", "band": "critical"})
    assert (response.status, response.headers["Location"]) == (303, "/households?band=critical")
    # A query string never searches: searches stay out of URLs and logs.
    _status, html = await get(web, "/households?q=" + NATIONAL_ID)
    assert shown(html) == {hid, other} and NATIONAL_ID not in main(html)


def shown(html: str) -> set[int]:
    """The households a list page shows."""
    found = re.findall(r'<h3 class="household-name"><a href="/households/(\d+)"', html)
    return {int(i) for i in found}


async def test_filters_and_pages(web: WebNode) -> None:
    # 27 households in Baghdad, 1 in Ninewa: two pages of Baghdad.
    ids = []
    for i in range(28):
        mosul = i == 27
        ids.append(
            await register(
                web,
                national_id=f"1985{i:08d}",
                phone="",
                governorate="IQG15" if mosul else "IQG08",
                district="IQG15Q05" if mosul else "IQG08Q01",
            )
        )
    status, html = await get(web, "/households?governorate=IQG08")
    assert status == 200 and html.count('class="household-item"') == 25
    assert "1 to 25 of 27" in text(html)
    assert 'href="/households?governorate=IQG08&amp;page=2"' in html
    _status, html = await get(web, "/households?governorate=IQG08&page=2")
    assert html.count('class="household-item"') == 2 and "26 to 27 of 27" in text(html)
    _status, html = await get(web, "/households?district=IQG15Q05")
    assert re.findall(r'href="/households/(\d+)"', html) == [str(ids[27])]
    assert "Al-Mosul" in html
    band = (await web.node.ataa.households.summary(ids[0])).band
    assert band is not None
    _status, html = await get(web, f"/households?band={band}")
    assert "of 28" in text(html)
    other = next(b for b in ("critical", "high", "moderate", "low") if b != band)
    _status, html = await get(web, f"/households?band={other}")
    assert "No households here yet." in html
    # Nonsense filters are ignored rather than failing.
    status, html = await get(web, "/households?governorate=XX&band=huge&page=zero&status=gone")
    assert status == 200 and "of 28" in text(html)


# -- archiving ------------------------------------------------------------------------------


async def test_archive_a_household(web: WebNode) -> None:
    hid = await register(web)
    bad = await post(web, f"/households/{hid}/archive", {"reason": "because I said so"})
    assert bad.status == 422
    assert (await web.node.ataa.households.summary(hid)).status == "active"
    response = await post(web, f"/households/{hid}/archive", {"reason": "moved"})
    assert (response.status, response.headers["Location"]) == (
        303,
        f"/households/{hid}?done=archived",
    )
    assert (await web.node.ataa.households.summary(hid)).status == "archived"
    [row] = await audit(web, "ataa.household.archive")
    assert row["reason"] == "moved" and row["household"] == hid
    again = await post(web, f"/households/{hid}/archive", {"reason": "moved"})
    assert again.status == 409
    assert "no longer active" in await again.text()
    _status, html = await get(web, "/households")
    assert f'href="/households/{hid}"' not in html
    _status, html = await get(web, "/households?status=archived")
    assert f'href="/households/{hid}"' in html and "Archived" in html


# -- duplicates -----------------------------------------------------------------------------


async def test_duplicates_are_merged_or_dismissed(web: WebNode) -> None:
    # Two pairs sharing a phone, no national IDs (and different mothers: the same
    # mother, birth year and two names would pair them all).
    a = await register(web, national_id="", phone="07711111111", mother_name="مريم")
    b = await register(web, national_id="", phone="07711111111", mother_name="خديجة")
    c = await register(web, national_id="", phone="07722222222", mother_name="زينب")
    d = await register(web, national_id="", phone="07722222222", mother_name="سارة")
    _status, html = await get(web, "/households")
    assert 'id="duplicates-link"' in html and "Possible duplicates to review: 2" in html
    for role in (C, W):
        status, html = await get(web, "/households/duplicates", role)
        assert status == 200
        assert f'id="pair-{a}-{b}"' in html and f'id="pair-{c}-{d}"' in html
        assert "Same phone number" in html
        assert ('action="/households/duplicates/merge"' in html) is (role is W)
    bad = await post(web, "/households/duplicates/merge", {"pair": f"{a}-{b}", "keep": str(c)})
    assert bad.status == 422
    response = await post(web, "/households/duplicates/merge", {"pair": f"{a}-{b}", "keep": str(a)})
    assert (response.status, response.headers["Location"]) == (
        303,
        "/households/duplicates?done=merged",
    )
    merged = await web.node.ataa.households.summary(b)
    assert (merged.status, merged.merged_into) == ("merged", a)
    response = await post(web, "/households/duplicates/dismiss", {"pair": f"{c}-{d}"})
    assert response.status == 303
    _status, html = await get(web, "/households/duplicates?done=dismissed")
    assert "No possible duplicates to review." in html and "Pairs to review: 0" in html
    assert [(r["keep"], r["drop"]) for r in await audit(web, "ataa.household.merge")] == [(a, b)]
    assert [(r["a"], r["b"]) for r in await audit(web, "ataa.duplicate.dismiss")] == [(c, d)]
    # The merged household points to the one kept.
    _status, html = await get(web, f"/households/{b}")
    assert f'<a href="/households/{a}">' in html
    again = await post(web, "/households/duplicates/merge", {"pair": f"{a}-{b}", "keep": str(a)})
    assert again.status == 409


# -- the scoring model ----------------------------------------------------------------------


async def test_scoring_page_for_each_role(web: WebNode) -> None:
    for role in (C, W):
        status, html = await get(web, "/scoring", role)
        assert status == 200
        assert default_model().name_en in html
        assert 'id="active-version">1<' in html
        for rule in default_model().indicators:
            assert rule.label_en in html
        assert ('action="/scoring"' in html) is (role is C)
    _status, html = await get(web, "/scoring", W)
    assert "&#34;format&#34;: &#34;ataa.scoring-model/1&#34;" in html  # the JSON, read-only


async def test_a_bad_model_is_refused_with_its_path(web: WebNode) -> None:
    doc = json.loads(dump_model(default_model()))
    doc["indicators"][0]["bands"][1]["points"] = 250
    response = await post(web, "/scoring", {"model": json.dumps(doc)}, C)
    assert response.status == 422
    html = await response.text()
    assert re.search(r"Problem at: <code>indicators\[0\]\.bands\[1\]\.points</code>", html)
    assert "250" in html  # the text typed is kept in the form
    response = await post(web, "/scoring", {"model": "{not json"}, C)
    assert response.status == 422 and "<code>$</code>" in await response.text()
    assert len(await web.node.ataa.scoring.versions()) == 1


async def test_a_new_model_rescores_every_household(web: WebNode) -> None:
    hid = await register(web, shelter="", monthly_income_iqd="")  # two facts unknown
    before = await web.node.ataa.households.summary(hid)
    doc = json.loads(dump_model(default_model()))
    doc["version"] = 2
    doc["missing_points"] = 50  # unknown answers now count as half the most need
    same = await post(web, "/scoring", {"model": dump_model(default_model())}, C)
    assert same.headers["Location"] == "/scoring?done=unchanged"
    response = await post(web, "/scoring", {"model": json.dumps(doc)}, C)
    assert (response.status, response.headers["Location"]) == (303, "/scoring?done=saved")
    await web.node.ataa.scoring.start_rescore()  # the run the page started, or a new one
    after = await web.node.ataa.households.summary(hid)
    assert after.model_version == 2 and after.score is not None
    assert before.score is not None and after.score > before.score
    _status, html = await get(web, "/scoring", C)
    assert 'id="active-version">2<' in html and "1 of 1 households" in text(html)
    assert "Staff coord" in html  # who saved version 2
    [row] = await audit(web, "ataa.scoring.model")
    assert row["version"] == 2 and row["actor"] == web.staff[C].account.id
    _status, html = await get(web, f"/households/{hid}")
    history = re.search(r'<caption id="history-caption">.*?</table>', html, re.S)
    assert history is not None and history.group(0).count("<tr>") == 3  # header + v2 + v1


# -- data keys ------------------------------------------------------------------------------


async def test_data_keys_rotate(web: WebNode) -> None:
    hid = await register(web)
    status, html = await get(web, "/settings/data-keys", A)
    assert status == 200 and html.count("<tr>") == 2  # header + one key
    response = await post(web, "/settings/data-keys/rotate", {}, A)
    assert (response.status, response.headers["Location"]) == (
        303,
        "/settings/data-keys?done=rotated",
    )
    keys = await web.node.ataa.keys.keys()
    assert [k.households for k in keys] == [0, 1] and keys[0].retired_ms is not None
    [row] = await audit(web, "ataa.datakey.rotate")
    assert row["reencrypted"] == 1 and row["actor"] == web.staff[A].account.id
    # Still readable under the new key.
    record = (await web.node.ataa.households.get(hid, actor=None)).record
    assert record.national_id == NATIONAL_ID


# -- CSRF and privacy -----------------------------------------------------------------------


async def test_forms_need_the_csrf_token(web: WebNode) -> None:
    staff = web.staff[W]
    wrong = await web.request(
        "POST", "/households", staff, data=household(), headers={CSRF_HEADER: "x" * 43}
    )
    assert wrong.status == 403 and wrong.headers["X-Watan-Error"] == "CSRF"
    web.client.session.cookie_jar.clear()
    missing = await web.client.post(
        "/households", data=household(), cookies={SESSION_COOKIE: staff.token}
    )
    assert missing.status == 403 and missing.headers["X-Watan-Error"] == "CSRF"
    assert await web.node.ataa.households.count() == 0
    # The token from the page's own form is what a browser sends.
    _status, html = await get(web, "/households/new")
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None
    web.client.session.cookie_jar.clear()
    ok = await web.client.post(
        "/households",
        data={**household(), "csrf_token": token.group(1)},
        cookies={SESSION_COOKIE: staff.token},
        allow_redirects=False,
    )
    assert ok.status == 303
    assert await web.node.ataa.households.count() == 1


async def test_no_personal_detail_reaches_the_logs(
    web: WebNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hid = await register(web)
    await post(web, "/households", household(given_name=""))  # a refused form
    await post(web, "/households", household())  # a national ID already held
    await get(web, f"/households/{hid}")
    await get(web, f"/households/{hid}", C)
    await post(web, "/households/search", {"q": NATIONAL_ID})
    await post(web, "/households/search", {"q": "أحمد"})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "/households" in logged  # the requests were logged...
    for pii in (NATIONAL_ID, "7701234567", "أحمد", "فاطمة", "التميمي", "1985-03-02"):
        assert pii not in logged, pii  # ...without what they carried


# -- Arabic -----------------------------------------------------------------------------------


async def test_arabic_pages(web: WebNode) -> None:
    # Needs the merged catalog (the Arabic msgstrs of /work/briefs/ar_households.json).
    hid = await register(web)
    for path, role in (
        ("/households", W),
        ("/households/new", W),
        (f"/households/{hid}", W),
        (f"/households/{hid}", C),
        ("/households/duplicates", W),
        ("/households/import", W),
        ("/scoring", C),
        ("/settings/data-keys", A),
    ):
        status, html = await get(web, path, role, lang="ar")
        assert status == 200 and '<html lang="ar" dir="rtl">' in html, path
        shown = re.sub(
            r'<code[^>]*>.*?</code>|<(p|pre|textarea)[^>]*lang="en"[^>]*>.*?</\1>'
            r"|<[^>]+>|&[a-z#0-9]+;",
            " ",
            main(html),
            flags=re.S,
        )
        words = [w for w in re.findall(r"\b[A-Za-z]{4,}\b", shown) if w not in LATIN_OK]
        assert not words, (path, words)
    _status, html = await get(web, "/households/new", lang="ar")
    assert "تسجيل أسرة" in html
    response = await post(web, "/households", household(given_name=""), lang="ar")
    assert errors(await response.text())["given_name"] == "مطلوب."
