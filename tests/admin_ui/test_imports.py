"""The household import pages in process: a CSV (Arabic headers) and an XLSX (English
headers, with a Kobo-style member sheet) taken end to end through upload, the
suggested mapping, the check of the first rows, the start, progress and the report
(row, column and problem translated, never a cell's value); a required field left
unmapped; unreadable files; an upload that expired or belongs to another account; the
page refreshing itself only while an import runs; and the in-memory upload cache's
limits."""

from __future__ import annotations

import asyncio
import csv
import html as htmllib
import io
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp import FormData

from admin_ui._imports import UPLOAD_TTL_MS, UPLOADS, Upload, UploadCache
from node.accounts import Role
from tests.node.web_helpers import PASSWORD, WebNode, web_node

W, C = Role.CASE_WORKER, Role.COORDINATOR

#: Arabic headers as an Iraqi NGO's spreadsheet has them; one row per household.
CSV_HEADERS = [
    "الاسم الأول",
    "اسم الأب",
    "اسم الجد",
    "اللقب",
    "اسم الأم",
    "رقم البطاقة الوطنية",
    "رقم الهاتف",
    "المحافظة",
    "القضاء",
    "عدد أفراد الأسرة",
    "الدخل الشهري",
    "ملاحظات",
]
CSV_ROWS = [
    ["أحمد", "علي", "حسين", "التميمي", "فاطمة", "198501234567", "07701234567", "بغداد",
     "الأعظمية", "5", "250000", ""],
    ["زينب", "حسن", "كاظم", "الجبوري", "مريم", "199001234560", "", "IQG08", "IQG08Q01", "3",
     "", "x"],
    ["محمد", "جواد", "عباس", "الربيعي", "", "12345", "", "IQG08", "IQG08Q01", "4", "", ""],
    ["علي", "كريم", "صالح", "الساعدي", "هدى", "199201234561", "", "IQG08", "IQG15Q05", "2", "",
     ""],
]  # fmt: skip


def csv_bytes(rows: list[list[str]] = CSV_ROWS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADERS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx_bytes() -> bytes:
    """A KoboToolbox-like export: households, and their members on a second sheet
    joined by ``_index`` / ``_parent_index``."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "households"
    sheet.append(["First name", "Father name", "Grandfather name", "Surname", "Mother name",
                  "National ID", "Governorate", "District", "Shelter", "_index"])  # fmt: skip
    sheet.append(["Noor", "Salim", "Jabbar", "Al-Obaidi", "Huda", "198801234562", "IQG15",
                  "IQG15Q05", "tent", 1])  # fmt: skip
    sheet.append(["Sara", "Kamal", "Hadi", "Al-Zubaidi", "Amal", "198901234563", "IQG08",
                  "IQG08Q01", "rented", 2])  # fmt: skip
    members = book.create_sheet("members")
    members.append(["age", "sex", "disability", "_parent_index"])
    for row in ([34, "female", "no", 1], [6, "male", "yes", 1], [2, "female", "no", 1],
                [41, "female", "no", 2], [70, "child", "no", 2]):  # fmt: skip
        members.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "node") as node:
        yield node


async def upload(web: WebNode, data: bytes, filename: str, role: Role = W) -> Any:
    staff = web.staff[role]
    form = FormData()
    form.add_field("csrf_token", staff.csrf)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return await web.request(
        "POST", "/households/import", staff, data=form, cookies={"watan_lang": "en"}
    )


def selected(html: str) -> dict[str, str]:
    """The mapping form's choices: {field: header chosen}."""
    out = {}
    for name, body in re.findall(
        r'<select id="f-map\.([^"]+)" name="[^"]+"[^>]*>(.*?)</select>', html, re.S
    ):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        out[name] = htmllib.unescape(chosen.group(1)) if chosen else ""
    return out


async def get(web: WebNode, path: str, **kwargs: Any) -> Any:
    return await web.request("GET", path, web.staff[W], cookies={"watan_lang": "en"}, **kwargs)


def token_of(html: str) -> str:
    match = re.search(r'name="token" value="([0-9a-f]+)"', html)
    assert match, "no upload token"
    return match.group(1)


async def check(
    web: WebNode, token: str, mapping: dict[str, str], action: str, role: Role = W
) -> Any:
    staff = web.staff[role]
    data = {"csrf_token": staff.csrf, "token": token, "action": action}
    data.update({f"map.{k}": v for k, v in mapping.items()})
    return await web.request(
        "POST", "/households/import/check", staff, data=data, cookies={"watan_lang": "en"}
    )


async def finish_imports(web: WebNode) -> None:
    """Wait for the background import tasks the start step launched."""
    await asyncio.gather(*list(web.node.ataa._imports))


def problems(html: str) -> list[tuple[str, str, str, str]]:
    """The report's rows: (row, column, problem text, code)."""
    rows = re.findall(
        r'<tr class="problem" data-code="([^"]+)">\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>'
        r"\s*<td>([^<]*)</td>",
        html,
    )
    return [(r, htmllib.unescape(f), htmllib.unescape(t), code) for code, r, f, t in rows]


async def test_csv_end_to_end(web: WebNode) -> None:
    data = csv_bytes()
    response = await upload(web, data, "survey.csv")
    assert response.status == 200
    html = await response.text()
    assert 'id="row-count">4<' in html
    mapping = selected(html)
    assert (
        mapping["given_name"] == "الاسم الأول" and mapping["national_id"] == "رقم البطاقة الوطنية"
    )
    assert mapping["district"] == "القضاء" and mapping["member_count"] == "عدد أفراد الأسرة"
    assert mapping["address"] == "" and "members.age" not in mapping  # no member sheet
    token = token_of(html)
    # The check: rows 4 (no mother, a short ID) and 5 (a Ninewa district) have problems.
    response = await check(web, token, mapping, "check")
    assert response.status == 200
    found = problems(await response.text())
    assert ("4", "Mother's full name", "Required.", "MISSING") in found
    assert ("4", "National ID", "The 12 digits of the National Card.", "BAD_VALUE") in found
    assert (
        "5",
        "District",
        "This district is not in the governorate chosen.",
        "INCONSISTENT",
    ) in found
    assert {row for row, *_ in found} == {"4", "5"}
    assert await web.node.ataa.households.count() == 0  # checking registers no one
    # Start: the import runs in the background; its page shows progress, then the report.
    response = await check(web, token, mapping, "start")
    assert response.status == 303
    location = response.headers["Location"]
    import_id = int(location.rsplit("/", 1)[1])
    await finish_imports(web)
    status = await web.request("GET", location, web.staff[W], cookies={"watan_lang": "en"})
    assert status.status == 200 and "Refresh" not in status.headers
    html = await status.text()
    assert 'id="import-state">Finished<' in html
    counts = dict(re.findall(r'<dd id="count-(\w+)">(\d+)</dd>', html))
    assert counts == {"created": "2", "updated": "0", "unchanged": "0", "rejected": "2"}
    report = problems(html)
    assert {(row, column) for row, column, *_ in report} == {
        ("4", "Mother's full name"),
        ("4", "National ID"),
        ("5", "District"),
    }
    for cell in ("12345", "محمد", "الساعدي", "IQG15Q05"):  # the report never shows a cell
        assert cell not in "".join(map(str, report)), cell
    assert f'href="/households/import/{import_id}">survey.csv<' in html  # recent imports
    names = {s.display_name for s in await web.node.ataa.households.list()}
    assert names == {"أحمد علي حسين التميمي", "زينب حسن كاظم الجبوري"}
    # The upload is forgotten once started.
    again = await check(web, token, mapping, "start")
    assert again.status == 410
    # The same file again registers no one twice.
    response = await upload(web, data, "survey.csv")
    response = await check(web, token_of(await response.text()), mapping, "start")
    await finish_imports(web)
    html = await (await get(web, response.headers["Location"])).text()
    counts = dict(re.findall(r'<dd id="count-(\w+)">(\d+)</dd>', html))
    assert counts == {"created": "0", "updated": "0", "unchanged": "2", "rejected": "2"}
    assert await web.node.ataa.households.count() == 2
    starts = await web.node.audit.query(action="ataa.import.start")
    assert len(starts) == 2 and starts[0].actor == web.staff[W].account.id


async def test_xlsx_with_a_member_sheet(web: WebNode) -> None:
    response = await upload(web, xlsx_bytes(), "kobo.xlsx")
    assert response.status == 200
    html = await response.text()
    assert 'id="row-count">2<' in html and "members: 5 members" in html
    mapping = selected(html)
    assert mapping["family_name"] == "Surname" and mapping["shelter"] == "Shelter"
    assert mapping["members.age"] == "age" and mapping["members.sex"] == "sex"
    response = await check(web, token_of(html), mapping, "start")
    assert response.status == 303
    await finish_imports(web)
    html = await (await get(web, response.headers["Location"])).text()
    counts = dict(re.findall(r'<dd id="count-(\w+)">(\d+)</dd>', html))
    assert counts == {"created": "1", "updated": "0", "unchanged": "0", "rejected": "1"}
    # Row 3's second member has no valid sex: named by member, not by value.
    assert problems(html) == [
        ("3", "Member's sex (member 2)", "Choose female or male.", "BAD_VALUE")
    ]
    [household] = await web.node.ataa.households.list()
    record = (await web.node.ataa.households.get(household.id, actor=None)).record
    assert record.name == ("Noor", "Salim", "Jabbar", "Al-Obaidi") and record.shelter == "tent"
    assert [(m.age, m.sex.value, m.disability) for m in record.members] == [
        (34, "female", False),
        (6, "male", True),
        (2, "female", False),
    ]


async def test_a_required_field_left_unmapped(web: WebNode) -> None:
    html = await (await upload(web, csv_bytes(), "survey.csv")).text()
    mapping = dict(selected(html), mother_name="", district="")
    response = await check(web, token_of(html), mapping, "start")
    assert response.status == 422
    html = await response.text()
    errors = dict(re.findall(r'<p class="error" id="f-map\.([^"]+)-error">([^<]*)</p>', html))
    assert errors == {
        "mother_name": "Required: choose the column that holds it.",
        "district": "Required: choose the column that holds it.",
    }
    assert 'value="" selected' in html  # the choices made are kept
    # A header the file does not have (a tampered form) is refused, not imported.
    response = await check(
        web, token_of(html), dict(mapping, mother_name="nope", district="القضاء"), "start"
    )
    assert response.status == 422
    assert "The columns chosen do not match this file" in await response.text()
    assert await web.node.audit.query(action="ataa.import.start") == []


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "empty.csv", "Choose a CSV or XLSX file."),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls", "Old Excel files"),
        (b"PK\x03\x04 not really a zip", "broken.xlsx", "could not be read as CSV or XLSX"),
        (b"a,a\n1,2\n", "twice.csv", "Two columns have the same header"),
    ],
)
async def test_files_that_cannot_be_read(
    web: WebNode, data: bytes, filename: str, message: str
) -> None:
    if data:
        response = await upload(web, data, filename)
    else:
        staff = web.staff[W]
        response = await web.request(
            "POST",
            "/households/import",
            staff,
            data={"csrf_token": staff.csrf},
            cookies={"watan_lang": "en"},
        )
    assert response.status == 422
    assert message in await response.text()
    assert len(web.client.app[UPLOADS]) == 0  # nothing held


async def test_an_upload_expires_and_belongs_to_its_uploader(web: WebNode) -> None:
    html = await (await upload(web, csv_bytes(), "survey.csv")).text()
    token, mapping = token_of(html), selected(html)
    # Another case worker cannot use this upload.
    admin = web.staff[Role.ADMIN].account
    other, one_time = await web.node.accounts.create_account(
        admin,
        username="worker2",
        display_name="Worker 2",
        role=W,
        random_bytes=secrets.token_bytes,
        now_ms=web.clock.now_ms(),
    )
    other = await web.node.accounts.change_password(
        other, one_time, PASSWORD, now_ms=web.clock.now_ms()
    )
    web.staff[Role.AUDITOR] = await web.session(other)  # a spare slot for the second worker
    response = await check(web, token, mapping, "check", Role.AUDITOR)
    assert response.status == 410
    assert "no longer held" in await response.text()
    # After 30 minutes the uploader cannot either.
    web.clock.advance(UPLOAD_TTL_MS)
    web.staff[W] = await web.session(web.staff[W].account)  # a session younger than that
    response = await check(web, token, mapping, "check")
    assert response.status == 410


async def test_the_status_page_refreshes_only_while_running(web: WebNode) -> None:
    # A started import that has not run yet (started through the service, not run).
    html = await (await upload(web, csv_bytes(), "survey.csv")).text()
    mapping = selected(html)
    import_id = await web.node.ataa.imports.start(
        csv_bytes(), filename="survey.csv", mapping=mapping, actor=web.staff[W].account.id
    )
    path = f"/households/import/{import_id}"
    response = await web.request("GET", path, web.staff[W], cookies={"watan_lang": "en"})
    assert response.headers["Refresh"] == "2"
    html = await response.text()
    assert 'id="import-state">In progress<' in html and "Stop refreshing" in html
    response = await web.request("GET", path + "?auto=0", web.staff[W])
    assert "Refresh" not in response.headers
    await web.node.ataa.imports.run(import_id, csv_bytes(), mapping, None)
    response = await web.request("GET", path, web.staff[W])
    assert "Refresh" not in response.headers
    assert (await web.request("GET", "/households/import/999", web.staff[W])).status == 404


def test_upload_cache_limits() -> None:
    cache = UploadCache(ttl_ms=1000, max_bytes=10)

    def up(token: str, account: int, size: int) -> Upload:
        return Upload(token=token, account=account, filename="f.csv", data=b"x" * size)

    cache.put(up("a", 1, 4), now_ms=0)
    cache.put(up("b", 2, 4), now_ms=100)
    assert cache.get("a", 1, now_ms=500) is not None
    assert cache.get("a", 2, now_ms=500) is None  # bound to its account
    cache.put(up("c", 1, 4), now_ms=200)  # replaces account 1's earlier upload
    assert cache.get("a", 1, now_ms=500) is None and len(cache) == 2
    cache.put(up("d", 3, 4), now_ms=300)  # 12 > 10 bytes: the oldest (b) gives way
    assert cache.get("b", 2, now_ms=500) is None and cache.size == 8
    assert cache.get("c", 1, now_ms=1199) is not None
    assert cache.get("c", 1, now_ms=1200) is None  # expired
    cache.drop("d")
    assert len(cache) == 0


async def test_coordinators_cannot_import(web: WebNode) -> None:
    response = await upload(web, csv_bytes(), "survey.csv", C)
    assert response.status == 403
