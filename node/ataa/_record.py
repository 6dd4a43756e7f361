"""A household as staff record it: the validated, in-memory form of what a form or an
import row says. Everything here is PII except the area, displacement and need facts;
:mod:`node.ataa._households` encrypts all of it at rest.

Every check raises :class:`RecordError` with a ``field`` naming what is wrong, and a
message that never repeats the value typed (it may be a national ID or a name, and
error messages reach logs and import reports).
"""

from __future__ import annotations

import datetime
import enum
import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

import protocol
from node import geo
from protocol import oprf

from ._facts import DISPLACEMENTS, SHELTERS, HouseholdFacts

__all__ = [
    "MAX_ADDRESS",
    "MAX_NAME",
    "HouseholdRecord",
    "Member",
    "RecordError",
    "RecordErrorCode",
    "Sex",
    "normalize_phone",
]

MAX_NAME: Final = 64
MAX_ADDRESS: Final = 300
_MAX_MEMBERS: Final = 100
_MAX_AGE: Final = 130
_MAX_IQD: Final = 10**12
_MIN_BIRTH: Final = datetime.date(1900, 1, 1)

#: Iraqi mobile numbers: 07XX XXX XXXX nationally, +964 7XX XXX XXXX internationally.
_PHONE: Final = re.compile(r"7[0-9]{9}")


class RecordErrorCode(enum.StrEnum):
    MISSING = "MISSING"  # a required field is empty
    BAD_VALUE = "BAD_VALUE"  # present but not acceptable; the message says why
    INCONSISTENT = "INCONSISTENT"  # two fields contradict each other


class RecordError(protocol.CodedError):
    """A household record field is missing, malformed or contradicts another.

    Attributes:
        field: the :class:`HouseholdRecord` field (``name``, ``national_id``,
            ``members[2].age``, ...).
    """

    code: RecordErrorCode

    def __init__(self, field_name: str, problem: str, *, code: RecordErrorCode) -> None:
        super().__init__(f"{field_name}: {problem}", code=code)
        self.field = field_name


def _bad(field_name: str, problem: str) -> RecordError:
    return RecordError(field_name, problem, code=RecordErrorCode.BAD_VALUE)


class Sex(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"


def _digits(text: str) -> str:
    """Arabic-Indic and Persian digits to ASCII; spaces, dashes, dots, brackets and
    bidi marks dropped."""
    out = []
    for char in text:
        if char.isdigit():
            out.append(str(unicodedata.digit(char)))
        elif char == "+":
            out.append("+")
        elif char.isspace() or char in "-.()/\u200e\u200f\u061c\u202a\u202b\u202c":
            continue
        else:
            raise _bad("phone", "may only contain digits, spaces, dashes and a leading +")
    return "".join(out)


def normalize_phone(raw: str) -> str:
    """An Iraqi mobile number in E.164 (``+9647XXXXXXXXX``), from any usual spelling:
    ``0770 123 4567``, ``+964 770 123 4567``, ``00964...``, Arabic-Indic digits.

    Raises:
        RecordError: BAD_VALUE for anything that is not an Iraqi mobile number.
    """
    digits = _digits(raw)
    for prefix in ("+964", "00964", "964", "0"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    if _PHONE.fullmatch(digits) is None:
        raise _bad("phone", "is not an Iraqi mobile number (07XX XXX XXXX)")
    return "+964" + digits


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One household member (the head included, if listed)."""

    age: int
    sex: Sex
    disability: bool = False
    chronic_illness: bool = False
    #: Attends school; None when not asked (under 5, over 17) or unknown.
    in_school: bool | None = None

    def check(self, where: str) -> None:
        if type(self.age) is not int or not 0 <= self.age <= _MAX_AGE:
            raise _bad(f"{where}.age", f"must be a whole number 0..{_MAX_AGE}")
        if not isinstance(self.sex, Sex):
            raise _bad(f"{where}.sex", "must be female or male")
        for name in ("disability", "chronic_illness"):
            if type(getattr(self, name)) is not bool:
                raise _bad(f"{where}.{name}", "must be yes or no")
        if self.in_school is not None and type(self.in_school) is not bool:
            raise _bad(f"{where}.in_school", "must be yes, no or unknown")


def _clean_text(value: object, name: str, *, limit: int, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _bad(name, "must be text")
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text:
        if required:
            raise RecordError(name, "is required", code=RecordErrorCode.MISSING)
        return ""
    if len(text) > limit:
        raise _bad(name, f"is longer than {limit} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Cn") for c in text):
        raise _bad(name, "contains control or invisible characters")
    return text


def _optional_int(value: object, name: str, low: int, high: int) -> None:
    if value is not None and (type(value) is not int or not low <= value <= high):
        raise _bad(name, f"must be a whole number {low}..{high}")


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdRecord:
    """A household: its head's identity, where it lives, its members and its needs.

    Construct it with raw strings: ``__post_init__`` normalizes (whitespace, NFC, the
    national ID to 12 ASCII digits, the phone to E.164, P-codes to upper case) and
    validates. Either ``members`` (a roster) or the count fields describe the people;
    with a roster the counts are derived from it and must not be given.

    Raises:
        RecordError: the first problem found, ``field`` naming it.
    """

    #: The head's four-part name: given, father's, grandfather's, family (laqab).
    name: tuple[str, str, str, str] = field(repr=False)
    mother_name: str = field(repr=False)
    national_id: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    #: ISO date ``YYYY-MM-DD``.
    birth_date: str | None = field(default=None, repr=False)
    head_sex: Sex | None = None
    governorate: str
    district: str
    address: str = field(default="", repr=False)
    displacement: str | None = None
    shelter: str | None = None
    monthly_income_iqd: int | None = None
    debt_iqd: int | None = None
    members: tuple[Member, ...] = ()
    # Counts, when there is no roster (a survey that counted rather than listed).
    member_count: int | None = None
    children_under_5: int | None = None
    children_5_17: int | None = None
    elderly_60_plus: int | None = None
    members_with_disability: int | None = None
    members_with_chronic_illness: int | None = None
    children_out_of_school: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, (tuple, list)) or len(self.name) != 4:
            raise _bad("name", "needs four parts: given, father's, grandfather's, family")
        parts = tuple(
            _clean_text(part, f"name[{index}]", limit=MAX_NAME, required=True)
            for index, part in enumerate(self.name)
        )
        set_(self, "name", parts)
        set_(
            self,
            "mother_name",
            _clean_text(self.mother_name, "mother_name", limit=MAX_NAME, required=True),
        )
        if self.national_id is not None and str(self.national_id).strip():
            try:
                set_(self, "national_id", oprf.normalize_national_id(str(self.national_id)))
            except protocol.ProtocolError:
                raise _bad("national_id", "must be the 12 digits of the National Card") from None
        else:
            set_(self, "national_id", None)
        if self.phone is not None and str(self.phone).strip():
            set_(self, "phone", normalize_phone(str(self.phone)))
        else:
            set_(self, "phone", None)
        self._check_birth_date()
        if self.head_sex is not None:
            try:
                set_(self, "head_sex", Sex(self.head_sex))
            except ValueError:
                raise _bad("head_sex", "must be female or male") from None
        self._check_area()
        set_(
            self, "address", _clean_text(self.address, "address", limit=MAX_ADDRESS, required=False)
        )
        if self.displacement is not None and self.displacement not in DISPLACEMENTS:
            raise _bad("displacement", "must be one of " + ", ".join(DISPLACEMENTS))
        if self.shelter is not None and self.shelter not in SHELTERS:
            raise _bad("shelter", "must be one of " + ", ".join(SHELTERS))
        _optional_int(self.monthly_income_iqd, "monthly_income_iqd", 0, _MAX_IQD)
        _optional_int(self.debt_iqd, "debt_iqd", 0, _MAX_IQD)
        self._check_people()

    def _check_birth_date(self) -> None:
        if self.birth_date is None or not str(self.birth_date).strip():
            object.__setattr__(self, "birth_date", None)
            return
        try:
            born = datetime.date.fromisoformat(str(self.birth_date).strip())
        except ValueError:
            raise _bad("birth_date", "must be a date YYYY-MM-DD") from None
        if born < _MIN_BIRTH:
            raise _bad("birth_date", "is before 1900")
        object.__setattr__(self, "birth_date", born.isoformat())

    def _check_area(self) -> None:
        try:
            governorate = geo.normalize_pcode(str(self.governorate or ""))
            geo.area(governorate)
        except geo.GeoError:
            raise _bad("governorate", "is not an Iraqi governorate P-code (IQG01..IQG19)") from None
        try:
            district = geo.normalize_pcode(str(self.district or ""))
            known = geo.is_district(district)
        except geo.GeoError:
            known = False
        if not known:
            raise _bad("district", "is not an Iraqi district P-code (IQGnnQmm)")
        if not geo.district_in(district, governorate):
            raise RecordError(
                "district",
                "is not in the governorate given",
                code=RecordErrorCode.INCONSISTENT,
            )
        object.__setattr__(self, "governorate", governorate)
        object.__setattr__(self, "district", district)

    def _check_people(self) -> None:
        counts = (
            "member_count",
            "children_under_5",
            "children_5_17",
            "elderly_60_plus",
            "members_with_disability",
            "members_with_chronic_illness",
            "children_out_of_school",
        )
        members = tuple(self.members)
        object.__setattr__(self, "members", members)
        if len(members) > _MAX_MEMBERS:
            raise _bad("members", f"more than {_MAX_MEMBERS} members")
        for index, member in enumerate(members):
            if not isinstance(member, Member):
                raise _bad(f"members[{index}]", "must be a member")
            member.check(f"members[{index}]")
        low = {"member_count": 1}
        for name in counts:
            _optional_int(getattr(self, name), name, low.get(name, 0), _MAX_MEMBERS)
        if members and any(getattr(self, name) is not None for name in counts):
            given = next(name for name in counts if getattr(self, name) is not None)
            raise RecordError(
                given,
                "counts come from the member list when there is one; leave them empty",
                code=RecordErrorCode.INCONSISTENT,
            )
        try:
            self.facts(datetime.date(2000, 1, 1))  # consistency of the counts
        except protocol.CodedError as error:
            raise RecordError(
                getattr(error, "path", "members"),
                error.message.split(": ", 1)[-1],
                code=RecordErrorCode.INCONSISTENT,
            ) from None

    # -- derived ---------------------------------------------------------------------

    @property
    def birth_year(self) -> int | None:
        return int(self.birth_date[:4]) if self.birth_date else None

    def pseudonym_input(self) -> oprf.PseudonymInput | None:
        """The federation pseudonym's input: strong from the national ID, otherwise
        weak from names, birth year and governorate; None without either."""
        if self.national_id is not None:
            return oprf.PseudonymInput.from_national_id(self.national_id)
        if self.birth_year is None:
            return None
        try:
            return oprf.PseudonymInput.from_fallback(
                name=self.name,
                mother_name=self.mother_name,
                birth_year=self.birth_year,
                governorate=self.governorate,
            )
        except protocol.ProtocolError:
            return None  # names outside the fallback alphabet: no pseudonym

    def facts(self, today: datetime.date) -> HouseholdFacts:
        """The need facts for scoring, as of ``today`` (ages move on)."""
        head_age = None
        if self.birth_date is not None:
            born = datetime.date.fromisoformat(self.birth_date)
            head_age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
            head_age = max(0, min(head_age, _MAX_AGE))
        head_female = None if self.head_sex is None else self.head_sex is Sex.FEMALE
        common: dict[str, Any] = {
            "head_female": head_female,
            "head_age": head_age,
            "monthly_income_iqd": self.monthly_income_iqd,
            "debt_iqd": self.debt_iqd,
            "shelter": self.shelter,
            "displacement": self.displacement,
        }
        if self.members:
            people = self.members
            return HouseholdFacts(
                **common,
                members=len(people),
                children_under_5=sum(m.age < 5 for m in people),
                children_5_17=sum(5 <= m.age <= 17 for m in people),
                elderly_60_plus=sum(m.age >= 60 for m in people),
                members_with_disability=sum(m.disability for m in people),
                members_with_chronic_illness=sum(m.chronic_illness for m in people),
                children_out_of_school=sum(
                    5 <= m.age <= 17 and m.in_school is False for m in people
                ),
            )
        return HouseholdFacts(
            **common,
            members=self.member_count,
            children_under_5=self.children_under_5,
            children_5_17=self.children_5_17,
            elderly_60_plus=self.elderly_60_plus,
            members_with_disability=self.members_with_disability,
            members_with_chronic_illness=self.members_with_chronic_illness,
            children_out_of_school=self.children_out_of_school,
        )

    # -- (de)serialization for the encrypted column ----------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (for msgpack inside the encrypted ``pii`` column)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "members":
                value = [
                    {
                        "age": m.age,
                        "sex": m.sex.value,
                        "disability": m.disability,
                        "chronic_illness": m.chronic_illness,
                        "in_school": m.in_school,
                    }
                    for m in value
                ]
            elif f.name == "name":
                value = list(value)
            elif isinstance(value, Sex):
                value = value.value
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HouseholdRecord:
        """The inverse of :meth:`to_dict` (validates again)."""
        data = dict(data)
        data["name"] = tuple(data["name"])
        data["members"] = tuple(
            Member(
                age=m["age"],
                sex=Sex(m["sex"]),
                disability=m["disability"],
                chronic_illness=m["chronic_illness"],
                in_school=m["in_school"],
            )
            for m in data.get("members", ())
        )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_changes(self, **changes: Any) -> HouseholdRecord:
        return replace(self, **changes)
