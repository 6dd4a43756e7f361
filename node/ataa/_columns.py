"""Columns and rows: which column holds which household field, and how one row's
cells become a :class:`HouseholdRecord` or a list of :class:`RowProblem`.

A *mapping* is a plain ``dict`` from a field name (:data:`FIELDS`, and
:data:`MEMBER_FIELDS` for a Kobo roster sheet) to a column header, suggested by
:func:`suggest_mapping` from Arabic and English header synonyms and edited by staff.
Cells are read by :mod:`node.ataa._cells`. A problem names the row, the field and a
code, never the cell's value: cells are PII and reports are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from node import geo

from . import _cells as cells
from ._cells import fold
from ._record import HouseholdRecord, Member, RecordError, RecordErrorCode, Sex
from ._sheets import INDEX_COLUMN, Cell, ImportFileError, ImportFileErrorCode, Row, Table, index_key

__all__ = [
    "DUPLICATE",
    "FIELDS",
    "MAX_CELL_CHARS",
    "MEMBER_FIELDS",
    "MEMBER_SYNONYMS",
    "NAME_PARTS",
    "SYNONYMS",
    "RowConverter",
    "RowProblem",
    "looks_like_roster",
    "suggest_mapping",
    "validate_mapping",
]

#: Longest cell a mapped column may hold: ten times the longest field (an address, 300
#: characters), so that no value parser ever works on a pasted document.
MAX_CELL_CHARS: Final = 1_000
#: The problem code of a national ID seen on an earlier row of the same file (the others
#: are :class:`RecordErrorCode` values).
DUPLICATE: Final = "DUPLICATE"

NAME_PARTS: Final = ("given_name", "father_name", "grandfather_name", "family_name")
#: Every household field a column can map to, in the order of the form. ``full_name``
#: is a column holding several name parts, split into those not mapped on their own.
FIELDS: Final = (
    *NAME_PARTS,
    "full_name",
    "mother_name",
    "national_id",
    "phone",
    "birth_date",
    "head_sex",
    "governorate",
    "district",
    "address",
    "displacement",
    "shelter",
    "monthly_income_iqd",
    "debt_iqd",
    "member_count",
    "children_under_5",
    "children_5_17",
    "elderly_60_plus",
    "members_with_disability",
    "members_with_chronic_illness",
    "children_out_of_school",
)
#: Roster fields: columns of the Kobo member sheet.
MEMBER_FIELDS: Final = (
    "members.age",
    "members.sex",
    "members.disability",
    "members.chronic_illness",
    "members.in_school",
)
_COUNTS: Final = FIELDS[-7:]
_REQUIRED: Final = ("mother_name", "governorate", "district")
_MEMBER_REQUIRED: Final = ("members.age", "members.sex")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one row was not imported: its number as a spreadsheet shows it, the mapping
    field (``members[2].age`` for a roster cell), a code (:class:`RecordErrorCode` or
    ``DUPLICATE``) and a message that never holds the cell's value."""

    row: int
    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- folding and synonyms ------------------------------------------------------------


def _header_key(header: str) -> str:
    # Kobo's group paths (household/head/given_name): the question name is the last part.
    if "/" in header and not any(c.isspace() for c in header):
        header = header.rsplit("/", 1)[-1]
    return fold(header)


_SYNONYMS_RAW: Final[Mapping[str, tuple[str, ...]]] = {
    "given_name": ("الاسم الأول", "اسم الأول", "الاسم الاول لرب الاسرة", "first name",
                   "given name", "fname", "first", "hoh first name", "head first name"),
    "father_name": ("اسم الأب", "اسم الاب لرب الاسرة", "father name", "father's name",
                    "fathers name", "father", "second name"),
    "grandfather_name": ("اسم الجد", "grandfather name", "grandfather's name",
                         "grandfathers name", "grandfather", "third name"),
    "family_name": ("اللقب", "اسم العائلة", "العائلة", "family name", "surname", "last name",
                    "lastname", "lname", "laqab", "tribe name"),
    "full_name": ("الاسم الرباعي", "الاسم الرباعي واللقب", "الاسم الكامل", "الاسم الثلاثي",
                  "full name", "fullname", "four part name", "hoh name"),
    "mother_name": ("اسم الأم", "اسم الام الثلاثي", "الأم", "mother name", "mother's name",
                    "mothers name", "mother", "mother full name"),
    "national_id": ("رقم البطاقة الوطنية", "البطاقة الوطنية", "رقم البطاقة الموحدة",
                    "البطاقة الموحدة", "رقم البطاقة", "الرقم الوطني", "رقم الهوية",
                    "national id", "nid", "national id number", "national card",
                    "national card number", "id number", "unified card number"),
    "phone": ("رقم الهاتف", "الهاتف", "رقم الموبايل", "الموبايل", "موبايل", "رقم الجوال",
              "الجوال", "رقم الهاتف النقال", "phone", "phone number", "mobile",
              "mobile number", "telephone", "tel", "contact number", "hoh phone"),
    "birth_date": ("تاريخ الميلاد", "تاريخ الولادة", "المواليد", "birth date", "date of birth",
                   "dob", "birthdate", "hoh dob"),
    "head_sex": ("الجنس", "جنس رب الأسرة", "sex", "gender", "head sex", "hoh sex",
                 "head gender", "hoh gender"),
    "governorate": ("المحافظة", "محافظة", "governorate", "province", "gov", "admin1",
                    "admin1 pcode", "governorate pcode"),
    "district": ("القضاء", "قضاء", "district", "admin2", "admin2 pcode", "district pcode"),
    "address": ("العنوان", "عنوان السكن", "العنوان الكامل", "أقرب نقطة دالة", "address",
                "home address", "street address", "full address"),
    "displacement": ("حالة النزوح", "النزوح", "الحالة", "displacement", "displacement status",
                     "idp status", "residency status", "population group"),
    "shelter": ("نوع السكن", "السكن", "المأوى", "نوع المأوى", "shelter", "shelter type",
                "housing", "housing type", "accommodation", "accommodation type"),
    "monthly_income_iqd": ("الدخل الشهري", "الدخل", "دخل الأسرة", "دخل الاسرة الشهري",
                           "monthly income", "income", "household income", "income iqd",
                           "monthly income iqd", "hh income"),
    "debt_iqd": ("الديون", "الدين", "مبلغ الدين", "مجموع الديون", "debt", "debts", "debt iqd",
                 "total debt", "household debt"),
    "member_count": ("عدد أفراد الأسرة", "عدد الأفراد", "حجم الأسرة", "household size",
                     "hh size", "family size", "members", "member count",
                     "number of members", "household members"),
    "children_under_5": ("أطفال دون 5", "الأطفال دون الخامسة", "أطفال دون الخامسة",
                         "children under 5", "under 5", "u5", "children u5"),
    "children_5_17": ("أطفال 5-17", "الأطفال من 5 الى 17", "أطفال من 5 الى 17",
                      "children 5-17", "children 5 to 17", "school age children"),
    "elderly_60_plus": ("كبار السن", "كبار السن فوق 60", "elderly", "elderly 60+",
                        "elderly 60 plus", "over 60", "60 plus"),
    "members_with_disability": ("ذوي الإعاقة", "عدد ذوي الإعاقة", "أفراد ذوي إعاقة",
                                "disabled members", "members with disability",
                                "persons with disability", "pwd"),
    "members_with_chronic_illness": ("أمراض مزمنة", "عدد المصابين بأمراض مزمنة",
                                     "chronic illness", "chronically ill",
                                     "members with chronic illness"),
    "children_out_of_school": ("أطفال خارج المدرسة", "المتسربين من المدرسة", "المتسربين",
                               "children out of school", "out of school"),
}  # fmt: skip
_MEMBER_SYNONYMS_RAW: Final[Mapping[str, tuple[str, ...]]] = {
    "members.age": ("العمر", "عمر", "عمر الفرد", "age", "member age", "age years"),
    "members.sex": ("الجنس", "جنس", "جنس الفرد", "sex", "gender", "member sex"),
    "members.disability": ("إعاقة", "الإعاقة", "ذوي إعاقة", "هل لديه إعاقة", "disability",
                           "disabled", "has disability", "member disability"),
    "members.chronic_illness": ("مرض مزمن", "أمراض مزمنة", "هل لديه مرض مزمن",
                                "chronic illness", "chronic", "chronically ill"),
    "members.in_school": ("في المدرسة", "ملتحق بالمدرسة", "يدرس", "هل يدرس", "in school",
                          "attends school", "school", "enrolled"),
}  # fmt: skip
#: Headers that say only "name": the given name beside a father's-name column, the
#: whole name otherwise.
_BARE_NAMES: Final = frozenset(
    fold(n) for n in ("name", "الاسم", "اسم", "اسم رب الأسرة", "head name", "اسم المستفيد")
)


def _folded(raw: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    # A field's own name (given_name -> "given name") is always a synonym.
    return {
        name: tuple(dict.fromkeys(fold(s) for s in (name.split(".")[-1], *synonyms)))
        for name, synonyms in raw.items()
    }


SYNONYMS: Final = _folded(_SYNONYMS_RAW)
MEMBER_SYNONYMS: Final = _folded(_MEMBER_SYNONYMS_RAW)


def _contains(words: list[str], part: list[str]) -> bool:
    n = len(part)
    return any(words[i : i + n] == part for i in range(len(words) - n + 1))


def _suggest(headers: Sequence[str], synonyms: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    keys = [(header, _header_key(header)) for header in headers]
    found: dict[str, str] = {}
    used: set[str] = set()
    for name, names in synonyms.items():  # 1. a header that is a synonym
        for header, key in keys:
            if header not in used and key in names:
                found[name] = header
                used.add(header)
                break
    # 2. a header that contains a synonym of two words or more, longest first: "اسم
    # الام الثلاثي" holds "اسم الام". One-word synonyms only match whole headers:
    # "disability" must not claim "disability type".
    pairs = sorted(
        ((name, s.split()) for name, names in synonyms.items() for s in names if " " in s),
        key=lambda pair: -len(pair[1]),
    )
    for name, words in pairs:
        if name in found:
            continue
        for header, key in keys:
            if header not in used and _contains(key.split(), words):
                found[name] = header
                used.add(header)
                break
    return found


def suggest_mapping(headers: Sequence[str], member_headers: Sequence[str] = ()) -> dict[str, str]:
    """Guess which column holds which field, from the headers alone.

    Matching folds case, spacing, punctuation and Arabic spelling variants (:func:`fold`)
    and uses the last part of a Kobo group path (``household/head/given_name``).

    Args:
        headers: the household sheet's headers.
        member_headers: the roster sheet's headers, if any (``members.*`` fields).

    Returns:
        ``{field: header}`` for the fields it could place, in :data:`FIELDS` order.
    """
    found = _suggest(headers, SYNONYMS)
    taken = set(found.values())
    for header in headers:
        if header not in taken and _header_key(header) in _BARE_NAMES:
            name = "given_name" if "father_name" in found else "full_name"
            if name not in found:
                found[name] = header
                taken.add(header)
    if all(part in found for part in NAME_PARTS):
        found.pop("full_name", None)
    if member_headers:
        found.update(_suggest(member_headers, MEMBER_SYNONYMS))
    return {name: found[name] for name in (*FIELDS, *MEMBER_FIELDS) if name in found}


def looks_like_roster(headers: Sequence[str]) -> bool:
    """Whether a sheet's headers have a member's age and sex (a Kobo repeat group of
    household members, not some other repeat)."""
    found = _suggest(headers, MEMBER_SYNONYMS)
    return all(name in found for name in _MEMBER_REQUIRED)


def _bad_mapping(message: str) -> ImportFileError:
    return ImportFileError(message, code=ImportFileErrorCode.BAD_MAPPING)


def _clean(mapping: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        raise _bad_mapping("a mapping is a dictionary from field to column header")
    out = {}
    for name, header in mapping.items():
        if header is None or header == "":
            continue  # a field the user left unmapped
        if not isinstance(name, str) or not isinstance(header, str):
            raise _bad_mapping("a mapping is a dictionary from field to column header")
        out[name] = header
    return out


def validate_mapping(
    mapping: Mapping[str, str], headers: Sequence[str], member_headers: Sequence[str] = ()
) -> tuple[str, ...]:
    """The required fields a mapping leaves unmapped (``()`` when it is complete).

    Required: the four name parts (or ``full_name``), ``mother_name``, ``governorate``
    and ``district``; with any roster field, ``members.age`` and ``members.sex``.
    Empty headers (``""``) mean unmapped.

    Raises:
        ImportFileError: BAD_MAPPING for an unknown field, a header the file does not
            have, or roster fields without a roster and ``_index`` column.
    """
    clean = _clean(mapping)
    for name, header in clean.items():
        if name in FIELDS:
            if header not in headers:
                raise _bad_mapping(f"{name}: the file has no such column")
        elif name in MEMBER_FIELDS:
            if header not in member_headers:
                raise _bad_mapping(f"{name}: the member sheet has no such column")
            if INDEX_COLUMN not in headers:
                raise _bad_mapping(f"{name}: a member sheet needs an {INDEX_COLUMN} column")
        else:
            raise _bad_mapping("the mapping names a field that does not exist")
    missing = []
    if "full_name" not in clean:
        missing += [part for part in NAME_PARTS if part not in clean]
    missing += [name for name in _REQUIRED if name not in clean]
    if any(name in clean for name in MEMBER_FIELDS):
        missing += [name for name in _MEMBER_REQUIRED if name not in clean]
    return tuple(missing)


# --- rows ----------------------------------------------------------------------------

_JOINERS: Final = frozenset(fold(w) for w in ("عبد", "أبو", "abd", "abdul", "abu"))


def _name_groups(text: str) -> list[str]:
    """The parts of a name: words, except that عبد and أبو bind to the next word
    (عبد الله is one name)."""
    words, groups = text.split(), []
    while words:
        word = words.pop(0)
        if fold(word) in _JOINERS and words:
            word += " " + words.pop(0)
        groups.append(word)
    return groups


class RowConverter:
    """Turns rows into records under one mapping, remembering the national IDs seen so
    far (a later row with the same ID is a ``DUPLICATE``). One per file and run.

    Raises:
        ImportFileError: BAD_MAPPING (at construction) if the mapping does not fit the
            table or leaves a required field unmapped.
    """

    def __init__(self, mapping: Mapping[str, str], table: Table) -> None:
        missing = validate_mapping(mapping, table.headers, table.member_headers)
        if missing:
            raise _bad_mapping("required fields are not mapped: " + ", ".join(missing))
        clean = _clean(mapping)
        self._columns = {n: table.headers.index(h) for n, h in clean.items() if n in FIELDS}
        self._member_columns = {
            n: table.member_headers.index(h) for n, h in clean.items() if n in MEMBER_FIELDS
        }
        self._index = table.headers.index(INDEX_COLUMN) if self._member_columns else None
        self._members = table.members
        self._split = [part for part in NAME_PARTS if part not in self._columns]
        self._seen: dict[str, int] = {}

    def convert(self, row: Row) -> HouseholdRecord | list[RowProblem]:
        """One row as a record, or every problem found in it."""
        number, household = row
        problems: list[RowProblem] = []
        values: dict[str, Any] = {}

        def read(
            name: str,
            parse: Callable[..., Any],
            *args: Any,
            source: Sequence[Cell] = household,
            label: str | None = None,
        ) -> Any:
            columns = self._columns if source is household else self._member_columns
            label = label or name
            value = source[columns[name]] if name in columns else None
            try:
                if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
                    problem = f"is longer than {MAX_CELL_CHARS} characters"
                    raise RecordError(label, problem, code=RecordErrorCode.BAD_VALUE)
                return parse(None if cells.empty(value) else value, label, *args)
            except RecordError as error:
                problems.append(_problem(number, error))
                return None

        name = [read(part, cells.text) or "" for part in NAME_PARTS]
        if self._split:
            self._split_name(read("full_name", cells.text) or "", name, number, problems)
        values["name"] = tuple(name)
        values["mother_name"] = read("mother_name", cells.text) or ""
        values["address"] = read("address", cells.text) or ""
        national_id = read("national_id", cells.national_id)
        if national_id is not None:
            if national_id in self._seen:
                message = f"has the same national ID as row {self._seen[national_id]}"
                problems.append(RowProblem(number, "national_id", DUPLICATE, message))
            else:
                self._seen[national_id] = number
        values["national_id"] = national_id
        values["phone"] = read("phone", cells.phone)
        values["birth_date"] = read("birth_date", cells.date)
        values["head_sex"] = read("head_sex", cells.sex)
        for choice in ("displacement", "shelter"):
            values[choice] = read(choice, cells.choice)
        for amount in ("monthly_income_iqd", "debt_iqd", *_COUNTS):
            values[amount] = read(amount, cells.whole)
        values["governorate"] = read("governorate", cells.governorate)
        values["district"] = read("district", cells.district, values["governorate"])
        _check_area(values["governorate"], values["district"], number, problems)
        required = (
            *zip(self._part_fields(), name, strict=True),
            ("mother_name", values["mother_name"]),
            ("governorate", values["governorate"]),
            ("district", values["district"]),
        )
        for field_name, value in required:
            _require(value, field_name, number, problems)
        if self._index is not None:
            self._roster(household, values, number, problems, read)
        if problems:
            return list(dict.fromkeys(problems))
        try:
            return HouseholdRecord(**values)
        except RecordError as error:
            return [_problem(number, error, self._part_fields())]

    def _part_fields(self) -> tuple[str, ...]:
        return tuple("full_name" if part in self._split else part for part in NAME_PARTS)

    def _split_name(
        self, full: str, name: list[str], number: int, problems: list[RowProblem]
    ) -> None:
        if not full:
            return  # reported as missing
        groups = _name_groups(full)
        targets = [NAME_PARTS.index(part) for part in self._split]
        if len(groups) < len(targets):
            message = f"needs {len(targets)} name parts or more"
            problems.append(RowProblem(number, "full_name", _MISSING, message))
            return
        for target, group in zip(targets[:-1], groups, strict=False):
            name[target] = group
        name[targets[-1]] = " ".join(groups[len(targets) - 1 :])

    def _roster(
        self,
        household: Sequence[Cell],
        values: dict[str, Any],
        number: int,
        problems: list[RowProblem],
        read: Callable[..., Any],
    ) -> None:
        """The household's members from the roster sheet, which replace the counts."""
        assert self._index is not None
        rows = self._members.get(index_key(household[self._index]) or "", ())
        if not rows:
            return  # no roster for this household: the count columns describe it
        members = []
        for i, (_, member) in enumerate(rows):
            got = {
                name: read(name, parse, source=member, label=f"members[{i}].{name[8:]}")
                for name, parse in _MEMBER_PARSERS.items()
            }
            _require(got["members.age"], f"members[{i}].age", number, problems)
            _require(got["members.sex"], f"members[{i}].sex", number, problems)
            members.append(
                Member(
                    age=got["members.age"] or 0,
                    sex=got["members.sex"] or Sex.FEMALE,
                    disability=bool(got["members.disability"]),
                    chronic_illness=bool(got["members.chronic_illness"]),
                    in_school=got["members.in_school"],
                )
            )
        given = values.pop("member_count")
        if given is not None and given != len(members):
            message = f"is not the {len(members)} members listed on the member sheet"
            problems.append(RowProblem(number, "member_count", _INCONSISTENT, message))
        for count in _COUNTS[1:]:
            values.pop(count)  # derived from the roster
        values["members"] = tuple(members)


_MEMBER_PARSERS: Final[Mapping[str, Callable[..., Any]]] = {
    "members.age": cells.whole,
    "members.sex": cells.sex,
    "members.disability": cells.yes_no,
    "members.chronic_illness": cells.yes_no,
    "members.in_school": cells.yes_no,
}
_MISSING: Final = RecordErrorCode.MISSING.value
_INCONSISTENT: Final = RecordErrorCode.INCONSISTENT.value
_BAD_VALUE: Final = RecordErrorCode.BAD_VALUE.value


def _check_area(
    governorate: str | None, district: str | None, number: int, problems: list[RowProblem]
) -> None:
    """What HouseholdRecord would say about the area, found together with the row's
    other problems rather than after them."""
    if governorate is not None and governorate not in cells.governorate_codes():
        problems.append(
            RowProblem(number, "governorate", _BAD_VALUE, "is not an Iraqi governorate P-code")
        )
        governorate = None
    if district is not None and not geo.is_district(district):
        problems.append(
            RowProblem(number, "district", _BAD_VALUE, "is not an Iraqi district P-code")
        )
    elif district is not None and governorate is not None:
        if not geo.district_in(district, governorate):
            message = "is not in the governorate given"
            problems.append(RowProblem(number, "district", _INCONSISTENT, message))


def _require(value: object, name: str, number: int, problems: list[RowProblem]) -> None:
    """A MISSING problem for an empty required field, unless its cell already has one."""
    if (value is None or value == "") and not any(p.field == name for p in problems):
        problems.append(RowProblem(number, name, _MISSING, "is required"))


_RECORD_PART: Final = re.compile(r"name\[(\d)\]")


def _problem(number: int, error: RecordError, parts: Sequence[str] = NAME_PARTS) -> RowProblem:
    name = error.field
    if found := _RECORD_PART.fullmatch(name):
        name = parts[int(found.group(1))]
    problem = error.message.split(": ", 1)[-1]
    return RowProblem(number, name, str(error.code), problem)
