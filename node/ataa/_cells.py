"""Cell values: what a spreadsheet cell says, as a household field's value.

Read leniently, the way Iraqi survey files are written: Arabic-Indic digits, thousands
separators, ``DD/MM/YYYY`` dates and Excel date cells, yes/no and sex in Arabic or
English, displacement and shelter as labels or codes, governorates and districts as
P-codes or names (through :mod:`node.geo`). Each parser takes a cell (``None`` when
empty) and the field's name, and returns the value or raises :class:`RecordError`
naming that field, with a message that never holds the cell (it is PII).
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Final

import protocol
from node import geo
from protocol import oprf

from ._facts import DISPLACEMENTS, SHELTERS
from ._record import RecordError, RecordErrorCode, Sex, normalize_phone
from ._sheets import Cell

__all__ = [
    "choice",
    "date",
    "district",
    "empty",
    "fold",
    "governorate",
    "governorate_codes",
    "national_id",
    "phone",
    "sex",
    "text",
    "whole",
    "yes_no",
]

_LETTERS: Final = str.maketrans({"ة": "ه", "ى": "ي", "ٱ": "ا", "ء": None, "ـ": None})


def fold(value: str) -> str:
    """Text in the form headers and labels are compared in: NFKD, case-folded, marks
    (harakat, hamza above and below) removed, ة→ه ى→ي, digits in ASCII, every run of
    other non-alphanumerics one space. ``"الاسم الأول"`` and ``"الاسم  الاول"`` fold
    alike, as do ``"Given_Name"`` and ``"given name"``."""
    chars = []
    for char in unicodedata.normalize("NFKD", value).casefold().translate(_LETTERS):
        if unicodedata.category(char) == "Mn":
            continue
        if char.isdigit():
            chars.append(str(unicodedata.digit(char, 0)))
        else:
            chars.append(char if char.isalnum() else " ")
    return " ".join("".join(chars).split())


# --- numbers, dates, yes/no ----------------------------------------------------------


def _bad(name: str, problem: str) -> RecordError:
    return RecordError(name, problem, code=RecordErrorCode.BAD_VALUE)


def empty(value: Cell) -> bool:
    """Whether a cell is empty: nothing, or only spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


def text(value: Cell, name: str) -> str:
    """A text cell; a number cell as its digits (an ID typed into a number column)."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (datetime.date, datetime.time)):
        raise _bad(name, "must be text")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹٬٫", "01234567890123456789,.")
_CURRENCY: Final = re.compile(r"iqd|د\.?\s?ع|دينار(\s*عراقي)?")
_SPACED: Final = re.compile(r"\d{1,3}(?: \d{3})+(?:\.\d+)?")  # 250 000
_WHOLE: Final = re.compile(r"(\d+|\d{1,3}(?:,\d{3})+)(?:\.(\d+))?")
_DOTTED: Final = re.compile(r"\d{1,3}(?:\.\d{3}){2,}")  # 1.250.000: dots as thousands


def whole(value: Cell, name: str) -> int | None:
    """A whole number: ``250000``, ``250,000``, ``٢٥٠٬٠٠٠``, ``250000.0``, ``1.250.000``,
    ``250,000 IQD``. ``250.000`` is refused: a dot before three digits is a thousands
    separator in some files and a decimal point in others."""
    if empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad(name, "must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _bad(name, "must be a whole number")
        return int(value)
    typed = " ".join(_CURRENCY.sub(" ", value.translate(_DIGITS).casefold()).split())
    if _SPACED.fullmatch(typed):
        typed = typed.replace(" ", "")
    if _DOTTED.fullmatch(typed):
        return int(typed.replace(".", ""))
    found = _WHOLE.fullmatch(typed)
    if found is None:
        raise _bad(name, "must be a whole number")
    fraction = found.group(2)
    if fraction is not None and (fraction.strip("0") or len(fraction) == 3):
        raise _bad(name, "must be a whole number, without a decimal point")
    return int(found.group(1).replace(",", ""))


_ISO: Final = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ][0-9:.+\-Z]*)?")
_DMY: Final = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")


def date(value: Cell, name: str) -> str | None:
    """``YYYY-MM-DD`` from ISO text, ``DD/MM/YYYY`` (Iraqi order; ``.`` and ``-`` too)
    or an Excel date cell."""
    if empty(value):
        return None
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.translate(_DIGITS).strip()
        try:
            if found := _ISO.fullmatch(text):
                year, month, day = found.groups()
                return datetime.date(int(year), int(month), int(day)).isoformat()
            if found := _DMY.fullmatch(text):
                day, month, year = found.groups()
                return datetime.date(int(year), int(month), int(day)).isoformat()
        except ValueError:
            pass
    raise _bad(name, "must be a date: YYYY-MM-DD or DD/MM/YYYY")


_YES: Final = frozenset(fold(w) for w in ("yes", "y", "true", "1", "نعم", "اي", "ايه", "صح"))
_NO: Final = frozenset(fold(w) for w in ("no", "n", "false", "0", "لا", "كلا", "خطأ"))
_FEMALE: Final = frozenset(fold(w) for w in ("female", "f", "woman", "أنثى", "انثى", "امرأة"))
_MALE: Final = frozenset(fold(w) for w in ("male", "m", "man", "ذكر", "رجل"))


def yes_no(value: Cell, name: str) -> bool | None:
    if empty(value):
        return None
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and len(value) <= 40:
        key = fold(value)
        if key in _YES or key in _NO:
            return key in _YES
    raise _bad(name, "must be yes or no (نعم/لا)")


def sex(value: Cell, name: str) -> Sex | None:
    if empty(value):
        return None
    if isinstance(value, str) and len(value) <= 40:
        key = fold(value)
        if key in _FEMALE:
            return Sex.FEMALE
        if key in _MALE:
            return Sex.MALE
    raise _bad(name, "must be female or male (أنثى/ذكر)")


_CHOICE_LABELS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "displacement": {
        "none": ("not displaced", "resident", "non displaced", "مقيم", "غير نازح", "لا"),
        "idp_in_camp": ("idp in camp", "in camp", "camp", "نازح في مخيم", "نازح داخل المخيم",
                        "داخل المخيم", "مخيم"),
        "idp_out_of_camp": ("idp out of camp", "out of camp", "idp", "نازح خارج المخيم",
                            "نازح خارج مخيم", "خارج المخيم", "نازح"),
        "returnee": ("returned", "return", "عائد", "عائدة", "عائدون"),
        "host": ("host community", "مجتمع مضيف", "مضيف", "مجتمع مضيف"),
    },
    "shelter": {
        "owned": ("own", "owner", "own house", "ملك", "مملوك", "ملك صرف"),
        "rented": ("rent", "renting", "ايجار", "إيجار", "مستأجر", "مؤجر"),
        "hosted": ("with relatives", "host family", "مستضاف", "عند أقارب", "لدى أقارب"),
        "informal_settlement": ("informal", "عشوائيات", "تجاوز", "سكن عشوائي", "مجمع عشوائي"),
        "tent": ("خيمة", "كرفان", "caravan"),
        "unfinished_building": ("unfinished", "بناية غير مكتملة", "مبنى غير مكتمل", "هيكل"),
        "damaged": ("damaged house", "damaged building", "منزل متضرر", "متضرر", "مدمر"),
        "collective_centre": ("collective center", "مركز جماعي", "مركز إيواء جماعي",
                              "مركز ايواء"),
    },
}  # fmt: skip


@functools.cache
def _choices(name: str) -> dict[str, str]:
    return {
        fold(label): code
        for code, labels in _CHOICE_LABELS[name].items()
        for label in (code, *labels)
    }


def choice(value: Cell, name: str) -> str | None:
    if empty(value):
        return None
    if isinstance(value, str) and len(value) <= 100:
        found = _choices(name).get(fold(value))
        if found is not None:
            return found
    allowed = DISPLACEMENTS if name == "displacement" else SHELTERS
    raise _bad(name, "must be one of " + ", ".join(allowed))


# --- places --------------------------------------------------------------------------

_PCODE: Final = re.compile(r"IQG\d{2}(Q\d{2})?")
#: Other spellings in common use (OCHA, UN and NGO lists, and the old names), beside
#: the COD-AB names node.geo ships.
_GOVERNORATE_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "IQG02": ("Basra",),
    "IQG03": ("Muthana",),
    "IQG05": ("Qadisiyah", "Qadisiya", "Diwaniyah", "Diwaniya", "الديوانية"),
    "IQG06": ("Sulaimaniyah", "Sulaimaniya", "Sulaymaniya", "Slemani"),
    "IQG07": ("Babylon", "Babel"),
    "IQG09": ("Dohuk", "Dahuk"),
    "IQG11": ("Arbil", "Irbil", "Hawler", "هولير"),
    "IQG12": ("Karbala",),
    "IQG14": ("Missan",),
    "IQG15": ("Nineveh", "Ninawa", "Nineva"),
    "IQG16": ("Salah ad-Din", "Salahuddin", "Salahaddin", "Saladin"),
    "IQG17": ("Dhi Qar", "Thiqar"),
    "IQG18": ("Wasit",),
}


def _place_key(typed: str) -> str | None:
    """A place name for comparison: normalized as names are (``normalize_arabic``),
    without the article (Al-Anbar = Anbar, الانبار = انبار) and without spaces."""
    try:
        name = oprf.normalize_arabic(re.sub(r"[^\w\s'-]|[\d_]", " ", typed))
    except protocol.ProtocolError:
        return None
    words = []
    for word in re.split(r"[\s'-]+", name):
        if word in ("al", "el", "ال"):
            continue
        words.append(word[2:] if word.startswith("ال") and len(word) > 3 else word)
    return "".join(words) or None


@functools.cache
def _governorate_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for gov in geo.governorates():
        for name in (gov.name_en, gov.name_ar, *_GOVERNORATE_ALIASES.get(gov.pcode, ())):
            if (key := _place_key(name)) is not None:
                names.setdefault(key, gov.pcode)
    return names


@functools.cache
def _district_names(governorate: str | None) -> dict[str, str]:
    names: dict[str, str] = {}
    for district in geo.districts(governorate):
        for name in (district.name_en, district.name_ar):
            if (key := _place_key(name)) is not None:
                names.setdefault(key, district.pcode)
    return names


def _pcode(typed: str) -> str | None:
    code = geo.normalize_pcode(typed)
    return code if _PCODE.fullmatch(code) else None


def governorate(value: Cell, name: str) -> str | None:
    """A governorate's P-code, from its P-code, Arabic or English name, or an alias."""
    if value is None:
        return None
    typed = text(value, name)
    if (code := _pcode(typed)) is not None:
        return code  # HouseholdRecord checks that it exists
    found = _governorate_names().get(_place_key(typed) or "")
    if found is None:
        raise _bad(name, "is not an Iraqi governorate's name or P-code")
    return found


def district(value: Cell, name: str, governorate: str | None) -> str | None:
    """A district's P-code, from its P-code or name: looked up in ``governorate`` first,
    then anywhere (a district of another governorate is reported by the caller)."""
    if value is None:
        return None
    typed = text(value, name)
    if (code := _pcode(typed)) is not None:
        return code
    key = _place_key(typed) or ""
    if governorate is not None and geo.normalize_pcode(governorate) in governorate_codes():
        if (found := _district_names(governorate).get(key)) is not None:
            return found
    # A district of another governorate: HouseholdRecord reports the inconsistency.
    found = _district_names(None).get(key)
    if found is None:
        raise _bad(name, "is not an Iraqi district's name or P-code")
    return found


@functools.cache
def governorate_codes() -> frozenset[str]:
    """Every governorate's P-code."""
    return frozenset(gov.pcode for gov in geo.governorates())


def national_id(value: Cell, name: str) -> str | None:
    """The 12 ASCII digits of a National Card number (any digit script, spaces)."""
    if value is None:
        return None
    try:
        return oprf.normalize_national_id(text(value, name))
    except protocol.ProtocolError:
        raise _bad(name, "must be the 12 digits of the National Card") from None


def phone(value: Cell, name: str) -> str | None:
    """An Iraqi mobile number in E.164 (``normalize_phone``)."""
    return None if value is None else normalize_phone(text(value, name))
