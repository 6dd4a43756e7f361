"""Household import (``node.ataa._import``): reading CSV and XLSX (encodings,
delimiters, Kobo rosters, hostile files), column mapping, cell values, per-row problems
without PII, and the import run with progress and re-import, on both backends.

Test files are generated here: several hundred households with realistic Iraqi names,
and bad rows whose cells are canaries that must never reach a report or the audit log.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import importlib.util
import io
import itertools
import json
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import geo
from node.ataa import _cells, _columns, _sheets
from node.ataa._columns import (
    FIELDS,
    MEMBER_FIELDS,
    RowConverter,
    RowProblem,
    suggest_mapping,
    validate_mapping,
)
from node.ataa._import import ImportService, dry_run, preview
from node.ataa._record import HouseholdRecord, RecordError, RecordErrorCode, Sex
from node.ataa._sheets import ImportFileError, ImportFileErrorCode, read_table
from node.audit import AuditLog
from node.clock import FakeClock
from node.storage import Database, StorageError, StorageErrorCode

from .conftest import NOW

PROPERTY = settings(max_examples=150, deadline=None)
STAFF = 7
Code = ImportFileErrorCode

# --- generated households ------------------------------------------------------------

#: Given names, fathers' and grandfathers' names, and family names (laqab) in Iraq.
MALE = tuple(
    "محمد، أحمد، علي، حسين، حسن، عباس، كريم، جاسم، عبد الله، مصطفى، عمر، ياسر، حيدر، سعد، "
    "قاسم، مهدي، رعد، فلاح، عبد الرحمن، ستار".split("، ")
)
FEMALE = tuple(
    "فاطمة، زينب، مريم، نور، سارة، هدى، رقية، زهراء، أمل، سعاد، خديجة، رباب، وفاء، سناء، "
    "إيمان".split("، ")
)
FAMILY = tuple(
    "الجبوري، الدليمي، العبيدي، الموسوي، الحسيني، التميمي، الخزرجي، الساعدي، الربيعي، "
    "الشمري، الزبيدي، العزاوي، الكعبي، الجنابي، البياتي".split("، ")
)
DISPLACEMENT = ("نازح خارج المخيم", "نازح في مخيم", "عائد", "مقيم", "returnee", "host")
SHELTER = ("إيجار", "ملك", "خيمة", "مستضاف", "بناية غير مكتملة", "rented", "tent")  # fmt: skip

HEADERS_AR = ("الاسم الأول", "اسم الأب", "اسم الجد", "اللقب", "اسم الأم", "رقم البطاقة الوطنية",
              "رقم الهاتف", "تاريخ الميلاد", "الجنس", "المحافظة", "القضاء", "العنوان",
              "حالة النزوح", "نوع السكن", "الدخل الشهري", "عدد أفراد الأسرة",
              "أطفال دون 5")  # fmt: skip
MAPPING_AR = dict(zip((*_columns.NAME_PARTS, "mother_name", "national_id", "phone",
                       "birth_date", "head_sex", "governorate", "district", "address",
                       "displacement", "shelter", "monthly_income_iqd", "member_count",
                       "children_under_5"), HEADERS_AR, strict=True))  # fmt: skip

#: Bad rows: data index -> (field, code). The sheet row is the index + 2 (header = 1).
BAD = {
    10: ("mother_name", "MISSING"),
    20: ("national_id", "BAD_VALUE"),  # 11 digits
    30: ("district", "INCONSISTENT"),  # a district of another governorate
    40: ("phone", "BAD_VALUE"),  # 12345
    60: ("national_id", "DUPLICATE"),  # the ID of data row 5
    70: ("birth_date", "BAD_VALUE"),  # 31/02/1980
    80: ("governorate", "BAD_VALUE"),  # not a governorate
}
ARABIC_DIGITS = 50  # a valid row typed in Arabic-Indic digits
#: Invented given names for the bad rows (they occur nowhere else).
CANARY_NAMES = ("قنبرزاد", "دعبلون", "زمهريش", "شهرزانة", "خيزران", "سمسمون", "قرنفلان")


@dataclass
class Dataset:
    rows: list[list[Any]]
    pii: list[str] = field(default_factory=list)  # every PII cell, as typed

    @property
    def valid(self) -> int:
        return len(self.rows) - sum(index < len(self.rows) for index in BAD)


def households(n: int = 300, *, seed: int = 1, xlsx: bool = False) -> Dataset:
    """``n`` household rows under HEADERS_AR, with the BAD rows planted. For XLSX the
    birth dates are Excel date cells and some IDs and phones are number cells."""
    rng = random.Random(seed)
    districts = geo.districts()
    ids: set[str] = set()
    data = Dataset(rows=[])
    for i in range(n):
        female = rng.random() < 0.3
        nid = ""
        while not nid or nid in ids:
            nid = str(rng.randrange(10**11, 10**12))
        ids.add(nid)
        district = rng.choice(districts)
        gov = geo.area(district.parent or "")
        born = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(20000))
        members = rng.randrange(1, 12)
        row: list[Any] = [
            rng.choice(FEMALE if female else MALE),
            rng.choice(MALE),
            rng.choice(MALE),
            rng.choice(FAMILY),
            f"{rng.choice(FEMALE)} {rng.choice(MALE)}",
            nid,
            "07" + rng.choice("3456789") + str(rng.randrange(10**7, 10**8)),
            born if xlsx else born.strftime("%d/%m/%Y" if i % 2 else "%Y-%m-%d"),
            "أنثى" if female else rng.choice(("ذكر", "male")),
            rng.choice((gov.name_ar, gov.name_en, gov.pcode)),
            rng.choice((district.name_ar, district.name_en, district.pcode)),
            f"حي {rng.choice(FAMILY)[2:]} زقاق {rng.randrange(1, 90)} دار {rng.randrange(1, 60)}",
            rng.choice(DISPLACEMENT),
            rng.choice(SHELTER),
            f"{rng.randrange(0, 1500) * 1000:,}",
            members,
            rng.randrange(0, min(members, 3) + 1) if members > 1 else 0,
        ]
        if xlsx and i % 3 == 0:
            row[5], row[6] = int(row[5]), int(row[6])  # number cells: 7701234567
        data.rows.append(row)
    for index, (field_name, _) in BAD.items():
        if index >= n:
            continue
        row = data.rows[index]
        row[0] = CANARY_NAMES[list(BAD).index(index)]
        if field_name == "mother_name":
            row[4] = ""
        elif field_name == "national_id" and index == 20:
            row[5] = "27491836502"
        elif field_name == "national_id":
            row[5] = data.rows[5][5]
        elif field_name == "district":
            row[9], row[10] = "بغداد", "الموصل"
        elif field_name == "phone":
            row[6] = "12345"
        elif field_name == "birth_date":
            row[7] = "31/02/1980"
        elif field_name == "governorate":
            row[9] = "أطلانطس"
    if ARABIC_DIGITS < n:
        row = data.rows[ARABIC_DIGITS]
        row[5] = str(row[5]).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        row[6] = "٠٧٧٠ ١٢٣ ٤٥٦٧"
        row[14] = "٢٥٠٬٠٠٠"
    for row in data.rows:
        data.pii += [str(c) for c in (*row[:7], row[11]) if len(str(c)) >= 4]
        data.pii.append(str(row[7]))
    return data


def expected_problems() -> list[tuple[int, str, str]]:
    return sorted((index + 2, name, code) for index, (name, code) in BAD.items())


def to_csv(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    bom: bool = False,
) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    data = out.getvalue().encode(encoding)
    return (codecs.BOM_UTF8 if bom else b"") + data


def to_xlsx(sheets: dict[str, tuple[Sequence[Any], Sequence[Sequence[Any]]]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, (headers, rows) in sheets.items():
        sheet = workbook.create_sheet(title)
        sheet.append(list(headers))
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def rezip(
    data: bytes, replace: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    """The same archive with some parts' contents replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", compression) as z:
        for info in source.infolist():
            z.writestr(info.filename, replace.get(info.filename, source.read(info.filename)))
    return out.getvalue()


def refused(data: bytes, filename: str = "upload.xlsx") -> ImportFileErrorCode:
    with pytest.raises(ImportFileError) as caught:
        preview(data, filename)
    return caught.value.code


# --- reading -------------------------------------------------------------------------

SMALL_ROWS = [["أحمد", "٠٧٧٠١٢٣٤٥٦٧", "250,000"], ["زينب", "", "١٠٠"]]
SMALL_HEADERS = ["الاسم الأول", "رقم الهاتف", "الدخل"]
ASCII_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")


@pytest.mark.parametrize(
    ("encoding", "delimiter", "bom"),
    [
        ("utf-8", ",", False),
        ("utf-8", ",", True),  # Excel "CSV UTF-8"
        ("utf-8", ";", True),  # Excel in locales with a decimal comma; Kobo's default
        ("utf-8", "\t", False),
        ("utf-16", "\t", False),  # Excel "Unicode Text": UTF-16 with a BOM
        ("utf-16-be", ";", False),
        ("cp1256", ",", False),  # Excel "CSV" on Arabic Windows
    ],
)
def test_csv_encodings_and_delimiters(encoding: str, delimiter: str, bom: bool) -> None:
    rows = SMALL_ROWS
    if encoding == "cp1256":  # it has no Arabic-Indic digits
        rows = [[c.translate(ASCII_DIGITS) for c in row] for row in rows]
    data = to_csv(SMALL_HEADERS, rows, encoding=encoding, delimiter=delimiter, bom=bom)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    table = read_table(data, "x.csv")
    assert table.format == "csv"
    assert table.headers == tuple(SMALL_HEADERS)
    assert table.rows == tuple(
        (number, tuple(c or None for c in row)) for number, row in enumerate(rows, start=2)
    )


def test_csv_sep_line_blank_rows_and_blank_headers() -> None:
    data = "sep=;\r\nالاسم الأول;;اللقب\r\n;;\r\nأحمد;x;الجبوري\r\n\r\n;;\r\nعلي;;\r\n".encode()
    table = read_table(data, "x.csv")
    assert table.headers == ("الاسم الأول", "اللقب")
    assert table.rows == ((3, ("أحمد", "الجبوري")), (6, ("علي", None)))


def test_xlsx_first_sheet_cells_and_dates() -> None:
    born = datetime.datetime(1985, 3, 12)
    data = to_xlsx(
        {
            "households": (
                ["name", "nid", "born", None, "income"],
                [["علي", 199012345678, born, "x", 2.5e5]],
            ),
            "other": (["a"], [[1]]),
        }
    )
    table = read_table(data, "survey.xlsx")
    assert (table.format, table.headers, table.sheets) == (
        "xlsx",
        ("name", "nid", "born", "income"),
        ("households", "other"),
    )
    assert table.rows == ((2, ("علي", 199012345678, born, 250000.0)),)
    assert table.member_sheet is None


def test_duplicate_headers_and_empty_files() -> None:
    assert refused(b"a,b,a\n1,2,3\n", "x.csv") is Code.BAD_HEADER
    assert refused(b"", "x.csv") is Code.EMPTY
    assert refused(b"\xef\xbb\xbf\r\n , \r\n", "x.csv") is Code.EMPTY
    assert refused(to_xlsx({"empty": ([], [])}), "x.xlsx") is Code.EMPTY
    assert refused(("h" * 201 + ",b\n1,2\n").encode(), "x.csv") is Code.BAD_HEADER


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert refused(b"a" * (_sheets.MAX_FILE_BYTES + 1), "x.csv") is Code.TOO_LARGE
    assert refused(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old.xls") is Code.UNSUPPORTED
    assert refused(b"a,b\n1,2\n", "looks.xlsx") is Code.UNREADABLE
    assert refused(b"a,b\x00\n", "x.csv") is Code.UNREADABLE
    assert refused(b"a\n" + b"x" * 200_000, "x.csv") is Code.UNREADABLE  # csv's field limit
    wide = ",".join(f"c{i}" for i in range(_sheets.MAX_COLUMNS + 1)).encode()
    assert refused(wide + b"\n", "x.csv") is Code.TOO_MANY_COLUMNS
    wide_xlsx = to_xlsx({"s": ([f"c{i}" for i in range(_sheets.MAX_COLUMNS + 1)], [])})
    assert refused(wide_xlsx) is Code.TOO_MANY_COLUMNS
    monkeypatch.setattr(_sheets, "MAX_ROWS", 3)
    assert len(read_table(b"a\n1\n2\n3\n", "x.csv").rows) == 3
    assert refused(b"a\n1\n2\n3\n4\n", "x.csv") is Code.TOO_MANY_ROWS
    assert refused(to_xlsx({"s": (["a"], [[1], [2], [3], [4]])})) is Code.TOO_MANY_ROWS


def test_a_zip_bomb_is_refused_before_openpyxl_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    good = to_xlsx({"s": (["a"], [[1]])})
    # 64 MB of one byte deflates to ~64 KB: a ratio of ~1,000.
    bomb = rezip(good, {"xl/worksheets/sheet1.xml": b"<" * (64 * 2**20)})
    assert len(bomb) < 1_000_000
    opened: list[Any] = []
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: opened.append(a))
    assert refused(bomb) is Code.TOO_LARGE
    assert opened == []
    monkeypatch.undo()
    # Under the ratio but over the total: the sum of declared sizes counts.
    monkeypatch.setattr(_sheets, "MAX_UNCOMPRESSED_BYTES", 4_000)
    assert refused(good) is Code.TOO_LARGE
    monkeypatch.setattr(_sheets, "MAX_UNCOMPRESSED_BYTES", 10**9)
    monkeypatch.setattr(_sheets, "MAX_ZIP_ENTRIES", 3)
    assert refused(good) is Code.TOO_LARGE


def test_an_xml_entity_bomb_is_refused() -> None:
    good = to_xlsx({"s": (["a"], [[1]])})
    entities = "".join(
        f'<!ENTITY e{i} "{"".join(f"&e{i - 1};" for _ in range(10))}">' for i in range(1, 10)
    )
    sheet = (
        f'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY e0 "laugh">{entities}]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&e9;</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    bomb = rezip(good, {"xl/worksheets/sheet1.xml": sheet.encode()})
    assert refused(bomb) is Code.UNREADABLE


def test_hostile_row_numbers_and_columns_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    good = to_xlsx({"s": (["a"], [[1]])})
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    sheet = (
        f'<worksheet xmlns="{ns}"><dimension ref="A1:A1"/><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>h</t></is></c></row>'
        '<row r="2"><c r="ZZZ2"><v>1</v></c></row>'
        '<row r="2000000000"><c r="A2000000000"><v>1</v></c></row>'
        "</sheetData></worksheet>"
    )
    monkeypatch.setattr(_sheets, "MAX_SHEET_ROWS", 5_000)
    assert refused(rezip(good, {"xl/worksheets/sheet1.xml": sheet.encode()})) is Code.TOO_MANY_ROWS


@PROPERTY
@given(st.binary(max_size=3000), st.sampled_from(["x.csv", "x.xlsx", "x.txt"]))
def test_arbitrary_bytes_raise_only_import_errors(data: bytes, filename: str) -> None:
    try:
        shown = preview(data, filename)
        dry_run(data, filename, MAPPING_AR)
    except ImportFileError:
        return
    assert shown.row_count >= 0


@PROPERTY
@given(st.text(max_size=2000), st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_arbitrary_text_raises_only_import_errors(text: str, encoding: str) -> None:
    try:
        preview(text.encode(encoding, "surrogatepass"), "x.csv")
    except ImportFileError:
        pass


XLSX_SAMPLE = to_xlsx({"s": (list(HEADERS_AR), households(5, xlsx=True).rows)})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(XLSX_SAMPLE) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(XLSX_SAMPLE)))  # fmt: skip
def test_damaged_xlsx_raises_only_import_errors(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(XLSX_SAMPLE[: max(cut, 30)])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    try:
        dry_run(bytes(data), "x.xlsx", MAPPING_AR)
    except ImportFileError:
        pass


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["xl/worksheets/sheet1.xml", "xl/workbook.xml", "xl/styles.xml",
                     "[Content_Types].xml", "xl/_rels/workbook.xml.rels"]),
    st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)),
)  # fmt: skip
def test_xlsx_with_arbitrary_parts_raises_only_import_errors(part: str, body: bytes) -> None:
    try:
        dry_run(rezip(XLSX_SAMPLE, {part: body}), "x.xlsx", MAPPING_AR)
    except ImportFileError:
        pass


# --- Kobo ----------------------------------------------------------------------------

KOBO_MAIN = [
    "start",
    "household/head/given_name",
    "household/head/father_name",
    "household/head/grandfather_name",
    "household/head/family_name",
    "household/head/mother_name",
    "household/head/national_id",
    "household/head/phone",
    "household/location/governorate",
    "household/location/district",
    "household/hh_size",
    "_id",
    "_uuid",
    "_index",
]
KOBO_MEMBERS = ["household/members/age", "household/members/sex",
                "household/members/disability", "household/members/chronic_illness",
                "household/members/in_school", "_index", "_parent_table_name",
                "_parent_index", "_submission__id"]  # fmt: skip


def kobo_workbook(*, hh_size: Sequence[Any] = (5, 2, 4)) -> bytes:
    main = [
        [
            "2026-01-05",
            "حسين",
            "علي",
            "كاظم",
            "الساعدي",
            "زهراء جاسم",
            "199012345678",
            "07701234567",
            "iqg08",
            "IQG08Q06",
            hh_size[0],
            101,
            "u1",
            1,
        ],
        [
            "2026-01-05",
            "فاطمة",
            "عبد الله",
            "محمد",
            "العبيدي",
            "سعاد حسن",
            "198712345670",
            "07801234567",
            "Ninewa",
            "Al-Mosul",
            hh_size[1],
            102,
            "u2",
            2,
        ],
        [
            "2026-01-06",
            "عباس",
            "رعد",
            "ستار",
            "الكعبي",
            "أمل مهدي",
            "197512345671",
            "07501234567",
            "البصرة",
            "الزبير",
            hh_size[2],
            103,
            "u3",
            3,
        ],
    ]
    members = [
        [40, "male", "no", "no", None, 1, "main", 1, 101],
        [35, "female", "no", "yes", None, 2, "main", 1, 101],
        [10, "male", "no", "no", "no", 3, "main", 1, 101],
        [3, "female", "no", "no", None, 4, "main", 1, 101],
        [70, "male", "yes", "yes", None, 5, "main", 1.0, 101],
        [33, "female", "نعم", "لا", None, 6, "main", "2", 102],
        [12, "انثى", "لا", "لا", "نعم", 7, "main", 2, 102],
    ]
    assistance = [["food", 1, "main", 1]]
    return to_xlsx(
        {
            "hh_survey": (KOBO_MAIN, main),
            "assistance": (
                ["household/aid/kind", "_index", "_parent_table_name", "_parent_index"],
                assistance,
            ),
            "members": (KOBO_MEMBERS, members),
        }
    )  # fmt: skip


def test_kobo_roster_is_joined_by_parent_index() -> None:
    shown = preview(kobo_workbook(), "kobo.xlsx")
    assert shown.sheets == ("hh_survey", "assistance", "members")
    assert (shown.member_sheet, shown.row_count, shown.member_row_count) == ("members", 3, 7)
    assert shown.missing == ()
    mapping = shown.suggested_mapping
    assert mapping["given_name"] == "household/head/given_name"
    assert mapping["member_count"] == "household/hh_size"
    assert {k: v for k, v in mapping.items() if k.startswith("members.")} == {
        "members.age": "household/members/age",
        "members.sex": "household/members/sex",
        "members.disability": "household/members/disability",
        "members.chronic_illness": "household/members/chronic_illness",
        "members.in_school": "household/members/in_school",
    }
    table = read_table(kobo_workbook(), "kobo.xlsx", is_roster=_columns.looks_like_roster)
    converter = RowConverter(mapping, table)
    first, second, third = (converter.convert(row) for row in table.rows)
    assert isinstance(first, HouseholdRecord) and isinstance(second, HouseholdRecord)
    assert isinstance(third, HouseholdRecord)
    facts = first.facts(datetime.date(2026, 1, 5))
    assert (facts.members, facts.children_under_5, facts.children_5_17) == (5, 1, 1)
    assert (facts.elderly_60_plus, facts.members_with_disability) == (1, 1)
    assert (facts.members_with_chronic_illness, facts.children_out_of_school) == (2, 1)
    assert (first.governorate, first.district) == ("IQG08", "IQG08Q06")
    assert [m.sex for m in second.members] == [Sex.FEMALE, Sex.FEMALE]
    assert [m.in_school for m in second.members] == [None, True]
    assert second.members[0].disability is True
    assert (second.governorate, second.district) == ("IQG15", "IQG15Q05")
    # No roster rows: the count column describes the household.
    assert (third.members, third.member_count, third.district) == ((), 4, "IQG02Q06")


def test_kobo_roster_that_disagrees_with_the_count_is_a_problem() -> None:
    data = kobo_workbook(hh_size=(4, 2, 4))
    problems = dry_run(data, "kobo.xlsx", preview(data, "kobo.xlsx").suggested_mapping)
    assert [(p.row, p.field, p.code) for p in problems] == [(2, "member_count", "INCONSISTENT")]


def test_roster_fields_need_a_roster_and_an_index() -> None:
    with pytest.raises(ImportFileError) as caught:
        validate_mapping({"members.age": "age"}, ["a"], ["age"])
    assert caught.value.code is Code.BAD_MAPPING
    assert validate_mapping({"members.age": "age"}, ["_index"], ["age"])[-1] == "members.sex"


# --- mapping -------------------------------------------------------------------------


def test_arabic_headers_with_variant_spellings() -> None:
    headers = ["م", "الإسمُ الأوّل", "إسم الأب", "اسم  الجد", "اللقب", "اسم الأم الثلاثي",
               "رقم البطاقة الوطنية الموحدة", "رقم الهاتف", "تاريخ الميلاد", "الجنس",
               "المحافظة", "القضاء", "العنوان", "حالة النزوح", "نوع السكن",
               "الدخل الشهري (دينار)", "الديون", "عدد أفراد الأسرة", "كبار السن",
               "ملاحظات"]  # fmt: skip
    assert suggest_mapping(headers) == {
        "given_name": "الإسمُ الأوّل",
        "father_name": "إسم الأب",
        "grandfather_name": "اسم  الجد",
        "family_name": "اللقب",
        "mother_name": "اسم الأم الثلاثي",
        "national_id": "رقم البطاقة الوطنية الموحدة",
        "phone": "رقم الهاتف",
        "birth_date": "تاريخ الميلاد",
        "head_sex": "الجنس",
        "governorate": "المحافظة",
        "district": "القضاء",
        "address": "العنوان",
        "displacement": "حالة النزوح",
        "shelter": "نوع السكن",
        "monthly_income_iqd": "الدخل الشهري (دينار)",
        "debt_iqd": "الديون",
        "member_count": "عدد أفراد الأسرة",
        "elderly_60_plus": "كبار السن",
    }


def test_english_headers() -> None:
    headers = ["ID", "First Name", "Father's Name", "Grandfather Name", "Surname",
               "Mother Name", "National ID", "Mobile", "Date of Birth", "Gender",
               "Governorate", "District", "Address", "Displacement Status", "Shelter Type",
               "Monthly Income", "Total Debt", "Household Size", "Children under 5",
               "Children 5-17", "Elderly 60+", "Members with disability", "Chronic illness",
               "Out of school", "Comments"]  # fmt: skip
    assert suggest_mapping(headers) == dict(
        zip(
            [f for f in FIELDS if f != "full_name"],
            headers[1:-1],
            strict=True,
        )
    )


def test_full_name_columns_and_the_bare_name_header() -> None:
    assert suggest_mapping(["الاسم الرباعي", "اسم الام", "المحافظة", "القضاء"]) == {
        "full_name": "الاسم الرباعي",
        "mother_name": "اسم الام",
        "governorate": "المحافظة",
        "district": "القضاء",
    }
    assert suggest_mapping(["الاسم", "اسم الاب", "اسم الجد", "اللقب"]) == {
        "given_name": "الاسم",
        "father_name": "اسم الاب",
        "grandfather_name": "اسم الجد",
        "family_name": "اللقب",
    }
    assert suggest_mapping(["Name", "Mother"]) == {"full_name": "Name", "mother_name": "Mother"}
    headers = ["الاسم الثلاثي", "اللقب", "اسم الام", "المحافظة", "القضاء"]
    rows = [["عبد الله محمد علي", "الجبوري", "فاطمة", "بغداد", "الكرخ"],
            ["أبو بكر عمر عبد الرحمن جاسم", "", "هدى", "IQG08", "IQG08Q03"],
            ["محمد علي", "التميمي", "سارة", "بغداد", "الكرخ"]]  # fmt: skip
    data = to_csv(headers, rows)
    mapping = suggest_mapping(headers)
    assert validate_mapping(mapping, headers) == ()
    table = read_table(data, "x.csv")
    converter = RowConverter(mapping, table)
    first = converter.convert(table.rows[0])
    assert isinstance(first, HouseholdRecord)
    assert first.name == ("عبد الله", "محمد", "علي", "الجبوري")
    second, third = converter.convert(table.rows[1]), converter.convert(table.rows[2])
    assert isinstance(second, list) and isinstance(third, list)
    assert [(p.field, p.code) for p in second] == [("family_name", "MISSING")]
    assert [(p.field, p.code) for p in third] == [("full_name", "MISSING")]


def test_synonyms_are_unambiguous() -> None:
    for table in (_columns.SYNONYMS, _columns.MEMBER_SYNONYMS):
        seen: dict[str, str] = {}
        for name, synonyms in table.items():
            for synonym in synonyms:
                assert seen.setdefault(synonym, name) == name, synonym
    assert set(_columns.SYNONYMS) == set(FIELDS)
    assert set(_columns.MEMBER_SYNONYMS) == set(MEMBER_FIELDS)


def test_validate_mapping() -> None:
    headers = ["a", "b", "c"]
    assert validate_mapping({"given_name": "a", "governorate": "b", "district": ""}, headers) == (
        "father_name",
        "grandfather_name",
        "family_name",
        "mother_name",
        "district",
    )
    for bad in ({"given_name": "zzz"}, {"no_such_field": "a"}, {"members.age": "a"}, {1: "a"}):
        with pytest.raises(ImportFileError) as caught:
            validate_mapping(bad, headers)  # type: ignore[arg-type]
        assert caught.value.code is Code.BAD_MAPPING
        assert "zzz" not in caught.value.message


# --- values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("250000", 250000), ("250,000", 250000), ("٢٥٠٬٠٠٠", 250000), ("250 000", 250000),
        ("250000.0", 250000), ("1.250.000", 1250000), ("250,000 IQD", 250000),
        ("٣٠٠ ألف", None), ("250.000", None), ("2.5", None), ("-5", None), ("1 2", None),
        (7.0, 7), (7.5, None), (True, None), (12, 12), (datetime.date(2020, 1, 1), None),
    ],
)  # fmt: skip
def test_whole_numbers(cell: Any, value: int | None) -> None:
    if value is None:
        with pytest.raises(RecordError) as caught:
            _cells.whole(cell, "debt_iqd")
        assert caught.value.field == "debt_iqd" and str(cell) not in caught.value.message
    else:
        assert _cells.whole(cell, "debt_iqd") == value


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1985-03-12", "1985-03-12"), ("12/03/1985", "1985-03-12"), ("2/3/1985", "1985-03-02"),
        ("١٢/٠٣/١٩٨٥", "1985-03-12"), ("1985-03-12T00:00:00.000+03:00", "1985-03-12"),
        ("12.03.1985", "1985-03-12"), (datetime.datetime(1985, 3, 12, 0, 0), "1985-03-12"),
        (datetime.date(1985, 3, 12), "1985-03-12"), ("31/02/1980", None), ("1985", None),
        ("03/13/1985", None), (31120.0, None),
    ],
)  # fmt: skip
def test_dates(cell: Any, value: str | None) -> None:
    if value is None:
        with pytest.raises(RecordError):
            _cells.date(cell, "birth_date")
    else:
        assert _cells.date(cell, "birth_date") == value


def test_yes_no_sex_and_choices() -> None:
    for cell in ("نعم", "Yes", " YES ", "1", 1, True, "true", "صح"):
        assert _cells.yes_no(cell, "x") is True
    for cell in ("لا", "no", "0", 0, False, "FALSE", "كلا"):
        assert _cells.yes_no(cell, "x") is False
    for cell in ("female", "F", "أنثى", "انثى", "انثي"):
        assert _cells.sex(cell, "x") is Sex.FEMALE
    for cell in ("male", "M", "ذكر"):
        assert _cells.sex(cell, "x") is Sex.MALE
    for parse, cell in ((_cells.yes_no, "ربما"), (_cells.yes_no, 2), (_cells.sex, "x")):
        with pytest.raises(RecordError):
            parse(cell, "x")
    assert _cells.choice("نازح في مخيم", "displacement") == "idp_in_camp"
    assert _cells.choice("IDP out of camp", "displacement") == "idp_out_of_camp"
    assert _cells.choice("idp_in_camp", "displacement") == "idp_in_camp"
    assert _cells.choice("إيجار", "shelter") == "rented"
    assert _cells.choice("Collective Centre", "shelter") == "collective_centre"
    assert _cells.choice("خيمة", "shelter") == "tent"
    with pytest.raises(RecordError):
        _cells.choice("قصر", "shelter")


def test_every_area_resolves_by_its_names_and_code() -> None:
    for gov in geo.governorates():
        for cell in (gov.name_ar, gov.name_en, gov.pcode.lower(), f" {gov.name_en.upper()} "):
            assert _cells.governorate(cell, "governorate") == gov.pcode, cell
        for district in geo.districts(gov.pcode):
            for cell in (district.name_ar, district.name_en, district.pcode):
                assert _cells.district(cell, "district", gov.pcode) == district.pcode, cell
    for cell, code in (
        ("Anbar", "IQG01"),
        ("الأنبار", "IQG01"),
        ("Nineveh", "IQG15"),
        ("Basra", "IQG02"),
        ("الديوانية", "IQG05"),
        ("Thi-Qar", "IQG17"),
        ("Salahuddin", "IQG16"),
        ("صلاح الدين", "IQG16"),
        ("ديالي", "IQG10"),
    ):
        assert _cells.governorate(cell, "governorate") == code, cell  # fmt: skip
    assert _cells.district("Mosul", "district", "IQG15") == "IQG15Q05"
    assert _cells.district("الموصل", "district", "IQG08") == "IQG15Q05"  # record: INCONSISTENT
    with pytest.raises(RecordError):
        _cells.governorate("Atlantis", "governorate")


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=17, max_size=17))
def test_arbitrary_cells_give_problems_or_a_record(cells: list[str | None]) -> None:
    table = _sheets.Table(format="csv", headers=HEADERS_AR, rows=((2, tuple(cells)),))
    result = RowConverter(MAPPING_AR, table).convert(table.rows[0])
    if isinstance(result, list):
        assert result
        for problem in result:
            assert problem.field in FIELDS and problem.row == 2
            assert problem.code in ("MISSING", "BAD_VALUE", "INCONSISTENT")
    else:
        assert isinstance(result, HouseholdRecord)


# --- per-row problems ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_dry_run_finds_exactly_the_bad_rows(kind: str) -> None:
    data = households(xlsx=kind == "xlsx")
    file = (
        to_csv(HEADERS_AR, data.rows, bom=True)
        if kind == "csv"
        else to_xlsx({"الاستمارة": (HEADERS_AR, data.rows)})
    )
    assert preview(file, f"x.{kind}").suggested_mapping == MAPPING_AR
    problems = dry_run(file, f"x.{kind}", MAPPING_AR, limit=len(data.rows))
    assert sorted((p.row, p.field, p.code) for p in problems) == expected_problems()
    assert dry_run(file, f"x.{kind}", MAPPING_AR, limit=15) == [
        RowProblem(12, "mother_name", "MISSING", "is required")
    ]
    report = json.dumps([p.to_dict() for p in problems], ensure_ascii=False)
    for value in data.pii:
        assert value not in report


# --- the run -------------------------------------------------------------------------


@dataclass
class FakeSink:
    """Households by national ID, like HouseholdService.upsert (no ID: always new)."""

    stored: dict[Any, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[int | None, int | None]] = field(default_factory=list)
    fail_at: int | None = None
    on_upsert: Any = None

    async def upsert(
        self, record: HouseholdRecord, *, actor: int | None, import_id: int | None
    ) -> str:
        self.calls.append((actor, import_id))
        if self.on_upsert is not None:
            await self.on_upsert()
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise StorageError("database gone", code=StorageErrorCode.UNREACHABLE)
        key = record.national_id or len(self.stored)
        body = record.to_dict()
        if key not in self.stored:
            self.stored[key] = body
            return "created"
        if self.stored[key] == body:
            return "unchanged"
        self.stored[key] = body
        return "updated"


async def make_service(db: Database, sink: Any, **kwargs: Any) -> ImportService:
    await db.upgrade()
    return ImportService(db, sink=sink, audit=AuditLog(db), clock=FakeClock(NOW), **kwargs)


def csv_file(data: Dataset) -> bytes:
    return to_csv(HEADERS_AR, data.rows, bom=True)


async def test_import_counts_reports_and_audits(db: Database) -> None:
    sink = FakeSink()
    service = await make_service(db, sink)
    data = households()
    file = csv_file(data)
    import_id = await service.start(
        file, filename="C:\\المسح\\hh.csv", mapping=MAPPING_AR, actor=STAFF
    )
    started = await service.status(import_id)
    assert (started.state, started.total, started.processed, started.filename) == (
        "running", 300, 0, "hh.csv"
    )  # fmt: skip
    final = await service.run(import_id, file, MAPPING_AR, STAFF)
    assert (final.state, final.error, final.finished_ms) == ("done", None, NOW)
    assert (final.processed, final.created, final.updated) == (300, data.valid, 0)
    assert (final.rejected, final.unchanged, final.problems_omitted) == (len(BAD), 0, 0)
    assert sorted((p.row, p.field, p.code) for p in final.problems) == expected_problems()
    assert set(sink.calls) == {(STAFF, import_id)}
    assert "٢" not in json.dumps(list(sink.stored))  # Arabic-Indic ID stored as ASCII
    # Nothing typed in the file is in the stored report or the audit log.
    audit = await AuditLog(db).query()
    stored = json.dumps([(a.action, a.target, a.details) for a in audit], ensure_ascii=False)
    stored += (await service.status(import_id)).__repr__()
    stored += json.dumps([p.to_dict() for p in final.problems], ensure_ascii=False)
    for value in data.pii:
        assert value not in stored
    assert [(a.action, json.loads(a.details)) for a in reversed(audit)] == [
        ("ataa.import.start", {"rows": 300, "format": "csv"}),
        ("ataa.import.done", {"state": "done", "error": None, "processed": 300,
                              "created": data.valid, "updated": 0, "rejected": len(BAD)}),
    ]  # fmt: skip
    assert [s.id for s in await service.recent()] == [import_id]


async def test_progress_is_monotone_and_final(db: Database) -> None:
    sink = FakeSink()
    service = await make_service(db, sink, chunk_rows=40)
    file = csv_file(households())
    import_id = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=STAFF)
    seen: list[tuple[int, int, int, int]] = []

    async def snapshot() -> None:
        status = await service.status(import_id)
        assert status.state == "running"
        seen.append((status.processed, status.created, status.rejected, len(status.problems)))

    sink.on_upsert = snapshot
    final = await service.run(import_id, file, MAPPING_AR, STAFF)
    assert len(set(seen)) == 300 // 40 + 1  # one value per chunk, and the start
    for before, after in itertools.pairwise(seen):
        assert all(b >= a for a, b in zip(before, after, strict=True))
    assert seen[0] == (0, 0, 0, 0)
    assert seen[-1][0] == 280
    assert (final.processed, final.created + final.rejected) == (300, 300)


async def test_reimport_creates_nothing_new(db: Database) -> None:
    sink = FakeSink()
    service = await make_service(db, sink)
    data = households()
    file = csv_file(data)
    first = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=STAFF)
    await service.run(first, file, MAPPING_AR, STAFF)
    again = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=STAFF)
    second = await service.run(again, file, MAPPING_AR, STAFF)
    assert (second.created, second.updated, second.unchanged) == (0, 0, data.valid)
    assert len(sink.stored) == data.valid
    data.rows[3][14] = "1,000"  # one household's income changed
    file = csv_file(data)
    third_id = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=STAFF)
    third = await service.run(third_id, file, MAPPING_AR, STAFF)
    assert (third.created, third.updated, third.unchanged) == (0, 1, data.valid - 1)
    # A finished import runs once.
    assert (await service.run(third_id, file, MAPPING_AR, STAFF)).updated == 1
    assert len(sink.calls) == 3 * data.valid
    assert [s.id for s in await service.recent(2)] == [third_id, again]


async def test_a_storage_failure_fails_the_run_and_keeps_what_was_imported(db: Database) -> None:
    sink = FakeSink(fail_at=101)
    service = await make_service(db, sink, chunk_rows=30)
    file = csv_file(households())
    import_id = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=None)
    final = await service.run(import_id, file, MAPPING_AR, None)
    assert (final.state, final.error, final.created) == ("failed", "UNREACHABLE", 100)
    assert final.finished_ms == NOW and len(sink.stored) == 100
    (done,) = await AuditLog(db).query(action="ataa.import.done")
    assert json.loads(done.details)["state"] == "failed"


async def test_a_bug_in_the_sink_fails_the_run_and_is_raised(db: Database) -> None:
    class Broken:
        async def upsert(self, record: HouseholdRecord, **_: Any) -> str:
            return "maybe"

    service = await make_service(db, Broken())
    file = csv_file(households(20))
    import_id = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=None)
    with pytest.raises(ValueError):
        await service.run(import_id, file, MAPPING_AR, None)
    status = await service.status(import_id)
    assert (status.state, status.error) == ("failed", "INTERNAL")


async def test_row_errors_from_the_sink_are_reported(db: Database) -> None:
    class Refusing(FakeSink):
        async def upsert(self, record: HouseholdRecord, **kwargs: Any) -> str:
            if record.national_id and record.national_id.endswith("7"):
                raise RecordError("national_id", "is archived", code=RecordErrorCode.INCONSISTENT)
            return await super().upsert(record, **kwargs)

    service = await make_service(db, Refusing())
    file = csv_file(households(40))
    import_id = await service.start(file, filename="hh.csv", mapping=MAPPING_AR, actor=None)
    final = await service.run(import_id, file, MAPPING_AR, None)
    refused_rows = [p for p in final.problems if p.message == "is archived"]
    assert refused_rows and {p.code for p in refused_rows} == {"INCONSISTENT"}
    assert final.rejected == 3 + len(refused_rows)  # BAD rows 10, 20 and 30, and these
    assert final.state == "done"


async def test_start_refuses_bad_files_and_mappings_and_records_nothing(db: Database) -> None:
    service = await make_service(db, FakeSink())
    file = csv_file(households(10))
    for data, mapping, code in (
        (b"\x00\x01", MAPPING_AR, Code.UNREADABLE),
        (file, {**MAPPING_AR, "mother_name": ""}, Code.BAD_MAPPING),
        (file, {**MAPPING_AR, "phone": "no such column"}, Code.BAD_MAPPING),
    ):
        with pytest.raises(ImportFileError) as caught:
            await service.start(data, filename="x.csv", mapping=mapping, actor=STAFF)
        assert caught.value.code is code
    assert await service.recent() == []
    with pytest.raises(ImportFileError) as caught:
        await service.status(404)
    assert caught.value.code is Code.NOT_FOUND


async def test_a_different_file_at_run_time_fails_cleanly(db: Database) -> None:
    service = await make_service(db, FakeSink())
    file = csv_file(households(10))
    import_id = await service.start(file, filename="x.csv", mapping=MAPPING_AR, actor=STAFF)
    final = await service.run(import_id, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", MAPPING_AR, STAFF)
    assert (final.state, final.error, final.processed) == ("failed", "UNSUPPORTED", 0)


async def test_the_report_is_capped(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from node.ataa import _import

    monkeypatch.setattr(_import, "MAX_REPORT_PROBLEMS", 3)
    service = await make_service(db, FakeSink(), chunk_rows=7)
    data = households(100)
    for row in data.rows[:20]:
        row[4] = ""  # no mother's name
        row[6] = "12"  # and a bad phone
    file = csv_file(data)
    import_id = await service.start(file, filename="x.csv", mapping=MAPPING_AR, actor=STAFF)
    final = await service.run(import_id, file, MAPPING_AR, STAFF)
    assert [(p.row, p.field) for p in final.problems] == [
        (2, "phone"),
        (2, "mother_name"),
        (3, "phone"),
    ]
    # 20 rows x 2 and the BAD rows after them: all counted.
    assert final.problems_omitted == 40 + sum(index >= 20 for index in BAD) - 3


async def test_interrupted_imports_are_failed_at_start_up(db: Database) -> None:
    service = await make_service(db, FakeSink())
    file = csv_file(households(5))
    import_id = await service.start(file, filename="x.csv", mapping=MAPPING_AR, actor=STAFF)
    assert await service.interrupt_running() == 1
    assert await service.interrupt_running() == 0
    status = await service.status(import_id)
    assert (status.state, status.error, status.finished_ms) == ("failed", "INTERRUPTED", NOW)
    assert (await service.run(import_id, file, MAPPING_AR, STAFF)).processed == 0


@pytest.mark.skipif(
    importlib.util.find_spec("node.ataa._households") is None,
    reason="node.ataa._households (HouseholdService.upsert) is not built yet",
)
async def test_reimport_through_the_real_household_service(db: Database) -> None:
    from node.ataa import BlindIndex, DataKeys, HouseholdService, ScoringStore
    from node.identity import Identity

    from .conftest import KEY

    await db.upgrade()
    clock, audit = FakeClock(NOW), AuditLog(db)
    rng = random.Random(3).randbytes
    identity = Identity(signing_key=KEY, encryption_secret=bytes(range(100, 132)))
    keys = DataKeys(db, identity, clock, rng, audit=audit)
    households_ = HouseholdService(
        db,
        keys=keys,
        blind=BlindIndex(identity),
        audit=audit,
        clock=clock,
        pseudonyms=None,
        scoring=ScoringStore(db, audit, clock, keys=keys),
    )
    service = ImportService(db, sink=households_, audit=audit, clock=clock, chunk_rows=25)
    data = households(60)
    file = to_xlsx({"s": (HEADERS_AR, data.rows)})
    runs = []
    for _ in range(2):
        import_id = await service.start(file, filename="x.xlsx", mapping=MAPPING_AR, actor=STAFF)
        runs.append(await service.run(import_id, file, MAPPING_AR, STAFF))
    valid = data.valid
    assert (runs[0].created, runs[0].rejected) == (valid, 60 - valid)
    assert (runs[1].created, runs[1].updated, runs[1].unchanged) == (0, 0, valid)
    assert await households_.count() == valid
