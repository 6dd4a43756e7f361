"""The household form: labels and choices, what a posted form becomes (a
:class:`HouseholdRecord`, or an error per field), and a record as form values again.

Every check is :class:`HouseholdRecord`'s own; this module only turns form text into its
arguments (numbers in any digit script, a roster of fixed rows, empty rows ignored) and
its :class:`RecordError` back into a message for the form field it names. To report
every field's problem at once rather than the first, a field found wrong is replaced by
a harmless value and the record is built again (at most once per field).

Messages name the field and what is expected, never the value typed (DESIGN §5: it may
be a national ID). Nothing here logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from node import geo
from node.ataa import (
    DISPLACEMENTS,
    SHELTERS,
    HouseholdRecord,
    Member,
    RecordError,
    RecordErrorCode,
    Sex,
)

from ._i18n import N_, Locale

__all__ = [
    "COUNT_FIELDS",
    "DIGITS",
    "DISPLACEMENT_LABELS",
    "FIELD_LABELS",
    "MAX_ROSTER_ROWS",
    "NAME_FIELDS",
    "ROSTER_ROWS",
    "SEX_LABELS",
    "SHELTER_LABELS",
    "FormResult",
    "area_name",
    "district_groups",
    "governorate_options",
    "parse_household",
    "parse_whole",
    "problem_text",
    "roster_rows",
    "translate_errors",
    "values_of",
]

#: Empty roster rows shown on a new form: most Iraqi households have about six members
#: (CSO 2017/18); a larger one gets more rows on its edit form (``roster_rows``).
ROSTER_ROWS: Final = 10
#: Roster rows read from a post: the record's own limit on members.
MAX_ROSTER_ROWS: Final = 100
#: Rows left empty below a listed roster on the edit form, for members to add.
_SPARE_ROWS: Final = 3
#: Longest text read from any field: the longest the record keeps (an address, 300
#: characters) with room to tell the typist it is too long, not to cut it silently.
_MAX_TEXT: Final = 400

NAME_FIELDS: Final = ("given_name", "father_name", "grandfather_name", "family_name")
COUNT_FIELDS: Final = (
    "member_count",
    "children_under_5",
    "children_5_17",
    "elderly_60_plus",
    "members_with_disability",
    "members_with_chronic_illness",
    "children_out_of_school",
)
_TEXT_FIELDS: Final = (*NAME_FIELDS, "mother_name", "national_id", "phone", "birth_date")
_MEMBER_FIELDS: Final = ("age", "sex", "disability", "chronic_illness", "in_school")

#: Form fields and import mapping fields, by the name the record (and import) uses.
FIELD_LABELS: Final = {
    "given_name": N_("Given name"),
    "father_name": N_("Father's name"),
    "grandfather_name": N_("Grandfather's name"),
    "family_name": N_("Family name (laqab)"),
    "full_name": N_("Full name (several parts in one column)"),
    "mother_name": N_("Mother's full name"),
    "national_id": N_("National ID"),
    "phone": N_("Mobile phone"),
    "birth_date": N_("Birth date of the head of household"),
    "head_sex": N_("Sex of the head of household"),
    "governorate": N_("Governorate"),
    "district": N_("District"),
    "address": N_("Address"),
    "displacement": N_("Displacement status"),
    "shelter": N_("Shelter type"),
    "monthly_income_iqd": N_("Monthly household income (IQD)"),
    "debt_iqd": N_("Household debt (IQD)"),
    "member_count": N_("Number of members"),
    "children_under_5": N_("Children under 5"),
    "children_5_17": N_("Children aged 5 to 17"),
    "elderly_60_plus": N_("Members aged 60 or more"),
    "members_with_disability": N_("Members with a disability"),
    "members_with_chronic_illness": N_("Members with a chronic illness"),
    "children_out_of_school": N_("Children aged 5 to 17 not in school"),
    "members.age": N_("Member's age"),
    "members.sex": N_("Member's sex"),
    "members.disability": N_("Member has a disability"),
    "members.chronic_illness": N_("Member has a chronic illness"),
    "members.in_school": N_("Member attends school"),
}
SEX_LABELS: Final = {"female": N_("Female"), "male": N_("Male")}
SHELTER_LABELS: Final = {
    "owned": N_("Owned home"),
    "rented": N_("Rented home"),
    "hosted": N_("Hosted by another family"),
    "informal_settlement": N_("Informal settlement"),
    "tent": N_("Tent"),
    "unfinished_building": N_("Unfinished building"),
    "damaged": N_("Damaged building"),
    "collective_centre": N_("Collective centre"),
}
DISPLACEMENT_LABELS: Final = {
    "none": N_("Not displaced"),
    "idp_in_camp": N_("Displaced, in a camp"),
    "idp_out_of_camp": N_("Displaced, outside camps"),
    "returnee": N_("Returnee"),
    "host": N_("Host community"),
}
if set(SHELTER_LABELS) != set(SHELTERS) or set(DISPLACEMENT_LABELS) != set(DISPLACEMENTS):
    raise RuntimeError("shelter or displacement labels do not match node.ataa's choices")

# -- messages per field and code ---------------------------------------------------------

_REQUIRED: Final = N_("Required.")
_WHOLE: Final = N_("A whole number from 0 to 100.")
_BAD: Final = {
    "name": N_("At most 64 characters, without invisible or control characters."),
    "national_id": N_("The 12 digits of the National Card."),
    "phone": N_("An Iraqi mobile number, such as 0770 123 4567."),
    "birth_date": N_("A date after 1 January 1900."),
    "head_sex": N_("Choose female or male."),
    "governorate": N_("Choose a governorate."),
    "district": N_("Choose a district."),
    "address": N_("At most 300 characters, without invisible or control characters."),
    "displacement": N_("Choose one of the options."),
    "shelter": N_("Choose one of the options."),
    "monthly_income_iqd": N_("A whole number of dinars, 0 or more."),
    "debt_iqd": N_("A whole number of dinars, 0 or more."),
    "member_count": N_("A whole number from 1 to 100."),
    "member.age": N_("An age in whole years, from 0 to 130."),
    "member.sex": N_("Choose female or male."),
    "member.in_school": N_("Choose one of the options."),
    "people": N_("At most 100 members."),
}
_INCONSISTENT: Final = {
    "district": N_("This district is not in the governorate chosen."),
    "counts": N_(
        "The counts do not add up: no count may exceed the number of members, and "
        "children and elderly together may not either."
    ),
}
_OTHER: Final = N_("This does not agree with the other answers.")
#: Import report codes besides RecordErrorCode (``node.ataa._columns.DUPLICATE``).
_SAME_ID_CODE: Final = "DUPLICATE"
_SAME_ID: Final = N_("The same national ID as an earlier row of this file.")
_NOT_REGISTERED: Final = N_("This row could not be registered.")


def _message(key: str, code: str) -> str:
    """The message (a msgid) for a problem of ``code`` in form field ``key``."""
    base = "member." + key.split("_", 1)[1] if re.fullmatch(r"m\d+_\w+", key) else key
    if base in NAME_FIELDS or base in ("full_name", "mother_name"):
        base = "name"
    if code == RecordErrorCode.MISSING:
        return _REQUIRED
    if code == RecordErrorCode.INCONSISTENT:
        return _INCONSISTENT.get("counts" if base in COUNT_FIELDS else base, _OTHER)
    if base in COUNT_FIELDS and base != "member_count":
        return _WHOLE
    return _BAD.get(base, _OTHER)


# -- choices ------------------------------------------------------------------------------


def area_name(pcode: str | None, locale: Locale) -> str:
    """A governorate's or district's name in the UI's language (the code if unknown)."""
    if not pcode:
        return ""
    try:
        found = geo.area(pcode)
    except geo.GeoError:
        return pcode
    return found.name_ar if locale.code == "ar" else found.name_en


def governorate_options(locale: Locale) -> list[tuple[str, str]]:
    """``(P-code, name)`` of every governorate, in P-code order."""
    return [(g.pcode, area_name(g.pcode, locale)) for g in geo.governorates()]


def district_groups(locale: Locale) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """``(governorate P-code, its name, [(district P-code, name)])`` for a select with
    one option group per governorate (no script needed to narrow it down)."""
    return [
        (
            g.pcode,
            area_name(g.pcode, locale),
            [(d.pcode, area_name(d.pcode, locale)) for d in geo.districts(g.pcode)],
        )
        for g in geo.governorates()
    ]


# -- parsing ------------------------------------------------------------------------------

#: Digits staff may type (ASCII, Arabic-Indic, Persian), and the thousands separators
#: (",", Arabic "٬", spaces) dropped: "250,000" and "٢٥٠٬٠٠٠" are both 250000.
DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789", ",٬ \u00a0")
#: Digits of the largest amount any form accepts (10^12 IQD): longer input is refused
#: before converting it.
_MAX_DIGITS: Final = 13


@dataclass(slots=True)
class FormResult:
    """A posted household form.

    Attributes:
        values: what to show in the form again (text as typed).
        record: the household, when every field is acceptable.
        errors: ``{form field: msgid}``, untranslated.
        duplicate_of: the household that already has the national ID typed, if the
            store said so (set by the handler).
    """

    values: dict[str, Any]
    record: HouseholdRecord | None = None
    errors: dict[str, str] = field(default_factory=dict)
    duplicate_of: int | None = None


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def parse_whole(text: str, low: int, high: int) -> int | None:
    """A whole number typed in any digit script, if within ``low..high``; else None."""
    plain = text.strip().translate(DIGITS)
    if not plain.isascii() or not plain.isdigit() or len(plain) > _MAX_DIGITS:
        return None
    value = int(plain)
    return value if low <= value <= high else None


def _number(text: str) -> int | None:
    """A whole number typed in any digit script, or None if it is not one."""
    return parse_whole(text, 0, 10**_MAX_DIGITS)


def _member_values(form: Mapping[str, Any], row: int) -> dict[str, Any]:
    return {
        "age": _text(form, f"m{row}_age").strip(),
        "sex": _text(form, f"m{row}_sex"),
        "disability": _text(form, f"m{row}_disability") == "yes",
        "chronic_illness": _text(form, f"m{row}_chronic_illness") == "yes",
        "in_school": _text(form, f"m{row}_in_school"),
    }


def _roster_length(form: Mapping[str, Any]) -> int:
    """How many roster rows the form had (its ``rows`` field, within bounds)."""
    count = _number(_text(form, "rows")) or ROSTER_ROWS
    return max(ROSTER_ROWS, min(count, MAX_ROSTER_ROWS))


def roster_rows(members: int) -> int:
    """Roster rows to show for a household of ``members`` listed members."""
    return max(ROSTER_ROWS, min(members + _SPARE_ROWS, MAX_ROSTER_ROWS))


def _is_empty(row: Mapping[str, Any]) -> bool:
    return not (
        row["age"] or row["sex"] or row["disability"] or row["chronic_illness"] or row["in_school"]
    )


class _Builder:
    """Turns form values into record arguments, noting the problems found on the way."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.errors: dict[str, str] = {}
        self.rows: list[int] = []  # roster row of each member passed to the record

    def fail(self, key: str, code: str) -> None:
        self.errors.setdefault(key, _message(key, code))

    def amount(self, name: str) -> int | None:
        text = str(self.values[name]).strip()
        if not text:
            return None
        number = _number(text)
        if number is None:
            self.fail(name, RecordErrorCode.BAD_VALUE)
        return number

    def arguments(self) -> dict[str, Any]:
        v = self.values
        args: dict[str, Any] = {
            "name": tuple(v[n] for n in NAME_FIELDS),
            "mother_name": v["mother_name"],
            "national_id": v["national_id"] or None,
            "phone": v["phone"] or None,
            "birth_date": v["birth_date"] or None,
            "head_sex": v["head_sex"] or None,
            "governorate": v["governorate"],
            "district": v["district"],
            "address": v["address"],
            "displacement": v["displacement"] or None,
            "shelter": v["shelter"] or None,
            "monthly_income_iqd": self.amount("monthly_income_iqd"),
            "debt_iqd": self.amount("debt_iqd"),
        }
        if v["people"] == "counts":
            args.update({name: self.amount(name) for name in COUNT_FIELDS})
        else:
            args["members"] = tuple(self._members())
        return args

    def _members(self) -> list[Member]:
        members = []
        for row, member in enumerate(self.values["roster"]):
            if _is_empty(member):
                continue
            age = _number(member["age"]) if member["age"] else None
            if age is None:
                code = RecordErrorCode.BAD_VALUE if member["age"] else RecordErrorCode.MISSING
                self.fail(f"m{row}_age", code)
            if member["sex"] not in SEX_LABELS:
                self.fail(f"m{row}_sex", RecordErrorCode.MISSING)
            school = {"yes": True, "no": False}.get(member["in_school"])
            members.append(
                Member(
                    age=0 if age is None else age,
                    sex=Sex(member["sex"]) if member["sex"] in SEX_LABELS else Sex.FEMALE,
                    disability=member["disability"],
                    chronic_illness=member["chronic_illness"],
                    in_school=school,
                )
            )
            self.rows.append(row)
        return members

    def key_of(self, record_field: str) -> str:
        """The form field a :class:`RecordError` names."""
        if found := re.fullmatch(r"name\[(\d)\]", record_field):
            return NAME_FIELDS[int(found.group(1))]
        if found := re.fullmatch(r"members\[(\d+)\]\.(\w+)", record_field):
            index, attr = int(found.group(1)), found.group(2)
            if index < len(self.rows) and attr in _MEMBER_FIELDS:
                return f"m{self.rows[index]}_{attr}"
            return "people"
        if record_field == "members":
            return "member_count" if self.values["people"] == "counts" else "people"
        return record_field


def _first_district(governorate: str) -> str:
    return geo.districts(governorate)[0].pcode


def _neutral(args: dict[str, Any], record_field: str) -> bool:
    """Replace the argument a RecordError names by one the record accepts, so that the
    next attempt finds the next problem. False if there is nothing to replace."""
    if found := re.fullmatch(r"name\[(\d)\]", record_field):
        parts = list(args["name"])
        parts[int(found.group(1))] = "x"
        args["name"] = tuple(parts)
    elif found := re.fullmatch(r"members\[(\d+)\]\.\w+", record_field):
        members = list(args.get("members", ()))
        index = int(found.group(1))
        if index >= len(members):
            return False
        members[index] = Member(age=0, sex=Sex.FEMALE)
        args["members"] = tuple(members)
    elif record_field == "mother_name":
        args[record_field] = "x"
    elif record_field == "address":
        args[record_field] = ""
    elif record_field == "governorate":
        district = str(args["district"] or "")
        valid = geo.is_district(district) if district else False
        args["governorate"] = geo.area(district).parent if valid else "IQG08"
    elif record_field == "district":
        args["district"] = _first_district(geo.normalize_pcode(str(args["governorate"])))
    elif record_field == "members" and "member_count" in args:
        args["member_count"] = None
    elif record_field in args and record_field not in ("name", "members"):
        args[record_field] = None
    else:
        return False
    return True


def _build(builder: _Builder) -> HouseholdRecord | None:
    args = builder.arguments()
    for _attempt in range(len(args) + MAX_ROSTER_ROWS * len(_MEMBER_FIELDS)):
        try:
            record = HouseholdRecord(**args)
        except RecordError as error:
            builder.fail(builder.key_of(error.field), str(error.code))
            if not _neutral(args, error.field):
                return None
            continue
        return None if builder.errors else record
    return None


def parse_household(form: Mapping[str, Any]) -> FormResult:
    """A posted household form as a record, or with an error per field.

    Args:
        form: the posted fields (``request.post()``).
    """
    values: dict[str, Any] = {name: _text(form, name).strip() for name in _TEXT_FIELDS}
    for name in ("head_sex", "governorate", "district", "displacement", "shelter"):
        values[name] = _text(form, name)
    values["address"] = _text(form, "address")
    for name in ("monthly_income_iqd", "debt_iqd", *COUNT_FIELDS):
        values[name] = _text(form, name)
    values["people"] = "counts" if _text(form, "people") == "counts" else "roster"
    values["roster"] = [_member_values(form, row) for row in range(_roster_length(form))]
    builder = _Builder(values)
    record = _build(builder)
    return FormResult(values=values, record=record, errors=builder.errors)


def _shown(value: int | None) -> str:
    return "" if value is None else str(value)


def values_of(record: HouseholdRecord | None) -> dict[str, Any]:
    """Form values for ``record`` (an empty form for None)."""
    if record is None:
        empty: dict[str, Any] = {name: "" for name in (*_TEXT_FIELDS, *COUNT_FIELDS)}
        empty.update(
            head_sex="",
            governorate="",
            district="",
            address="",
            displacement="",
            shelter="",
            monthly_income_iqd="",
            debt_iqd="",
            people="roster",
            roster=[_blank_member() for _ in range(ROSTER_ROWS)],
        )
        return empty
    values: dict[str, Any] = dict(zip(NAME_FIELDS, record.name, strict=True))
    values.update(
        mother_name=record.mother_name,
        national_id=record.national_id or "",
        phone=_local_phone(record.phone),
        birth_date=record.birth_date or "",
        head_sex=record.head_sex.value if record.head_sex else "",
        governorate=record.governorate,
        district=record.district,
        address=record.address,
        displacement=record.displacement or "",
        shelter=record.shelter or "",
        monthly_income_iqd=_shown(record.monthly_income_iqd),
        debt_iqd=_shown(record.debt_iqd),
    )
    values.update({name: _shown(getattr(record, name)) for name in COUNT_FIELDS})
    values["people"] = "counts" if not record.members and record.member_count else "roster"
    roster = [
        {
            "age": str(m.age),
            "sex": m.sex.value,
            "disability": m.disability,
            "chronic_illness": m.chronic_illness,
            "in_school": {True: "yes", False: "no", None: ""}[m.in_school],
        }
        for m in record.members
    ]
    roster += [_blank_member() for _ in range(roster_rows(len(roster)) - len(roster))]
    values["roster"] = roster
    return values


def _blank_member() -> dict[str, Any]:
    return {"age": "", "sex": "", "disability": False, "chronic_illness": False, "in_school": ""}


def _local_phone(phone: str | None) -> str:
    """``+9647701234567`` as staff write it: ``07701234567``."""
    if not phone:
        return ""
    return "0" + phone.removeprefix("+964") if phone.startswith("+964") else phone


def translate_errors(errors: Mapping[str, str], gettext: Callable[[str], str]) -> dict[str, str]:
    """``errors`` with every message translated."""
    return {key: gettext(text) for key, text in errors.items()}


def problem_text(field_name: str, code: str) -> str:
    """What an import report's problem (a mapping field, a code) asks for: the form's
    message for that field (a msgid)."""
    if code == _SAME_ID_CODE:
        return _SAME_ID
    if code not in tuple(RecordErrorCode):
        return _NOT_REGISTERED
    key = field_name
    if found := re.fullmatch(r"members\[(\d+)\]\.(\w+)", field_name):
        key = f"m{found.group(1)}_{found.group(2)}"
    return _message(key, code)
