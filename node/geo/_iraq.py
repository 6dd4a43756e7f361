"""Iraq's administrative areas by OCHA P-code: governorates (admin 1) and districts
(admin 2, قضاء), read once from the packaged ``iraq_admin.csv``.

The table is OCHA's Common Operational Dataset for Iraq (COD-AB, ``irq_admbnda_*_cso_
20190603``; see ``docs/geodata.md``). Its codes are ``IQG01``..``IQG18`` for the 18
governorates and ``IQGnnQmm`` for districts: a district's code starts with its
governorate's. The 2019 COD has no separate Halabja governorate; the Halabja district
is ``IQG06Q05`` under Sulaymaniyah.
"""

from __future__ import annotations

import csv
import enum
import functools
import importlib.resources
import io
from dataclasses import dataclass

import protocol

__all__ = [
    "Area",
    "GeoError",
    "GeoErrorCode",
    "area",
    "district_in",
    "districts",
    "governorates",
    "is_district",
    "normalize_pcode",
]

_CSV = "iraq_admin.csv"
_COLUMNS = ("level", "pcode", "parent_pcode", "name_en", "name_ar", "source")

# Arabic-Indic (U+0660..) and Extended Arabic-Indic / Persian (U+06F0..) digits to ASCII.
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


class GeoErrorCode(enum.StrEnum):
    UNKNOWN_PCODE = "UNKNOWN_PCODE"  # not a P-code in the packaged table
    BAD_DATA = "BAD_DATA"  # the packaged table is malformed (a build error, not input)


class GeoError(protocol.CodedError):
    """A geography lookup refused; ``message`` is one line, safe to show and log."""

    code: GeoErrorCode

    def __init__(self, message: str, *, code: GeoErrorCode) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True, slots=True)
class Area:
    """One administrative area.

    Attributes:
        pcode: the OCHA P-code, e.g. ``IQG08`` (Baghdad) or ``IQG08Q01`` (Al-Adhamiya).
        level: 1 for a governorate, 2 for a district.
        parent: the governorate's P-code for a district; ``None`` for a governorate.
        name_en: the English name as the source spells it.
        name_ar: the Arabic name as the source spells it.
    """

    pcode: str
    level: int
    parent: str | None
    name_en: str
    name_ar: str


@functools.cache
def _table() -> dict[str, Area]:
    """The packaged table by P-code, in P-code order (loaded on first use, then cached)."""
    text = importlib.resources.files("node.geo").joinpath(_CSV).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise GeoError(f"{_CSV} has columns {reader.fieldnames}", code=GeoErrorCode.BAD_DATA)
    areas: dict[str, Area] = {}
    for row in reader:
        level = int(row["level"])
        parent = row["parent_pcode"] or None
        if level not in (1, 2) or (parent is None) != (level == 1) or row["pcode"] in areas:
            raise GeoError(f"{_CSV}: bad row {row['pcode']!r}", code=GeoErrorCode.BAD_DATA)
        areas[row["pcode"]] = Area(row["pcode"], level, parent, row["name_en"], row["name_ar"])
    for a in areas.values():
        if a.parent is not None and (a.parent not in areas or areas[a.parent].level != 1):
            raise GeoError(f"{_CSV}: {a.pcode} has no governorate", code=GeoErrorCode.BAD_DATA)
    return dict(sorted(areas.items()))


def normalize_pcode(text: str) -> str:
    """Canonical form of a typed P-code: trimmed, upper-case, ASCII digits.

    >>> normalize_pcode(" iqg٠٨q٠١ ")
    'IQG08Q01'

    It does not check that the code exists; see :func:`area`.
    """
    return text.strip().translate(_DIGITS).upper()


def governorates() -> list[Area]:
    """Every governorate (level 1), in P-code order."""
    return [a for a in _table().values() if a.level == 1]


def districts(governorate: str | None = None) -> list[Area]:
    """The districts (level 2) in P-code order: all of them, or one governorate's.

    Args:
        governorate: a governorate P-code (normalized first); ``None`` for every district.

    Raises:
        GeoError: ``UNKNOWN_PCODE`` if ``governorate`` is not a known governorate.
    """
    if governorate is None:
        return [a for a in _table().values() if a.level == 2]
    gov = area(governorate)
    if gov.level != 1:
        raise GeoError(f"{gov.pcode} is not a governorate", code=GeoErrorCode.UNKNOWN_PCODE)
    return [a for a in _table().values() if a.parent == gov.pcode]


def area(pcode: str) -> Area:
    """The area with this P-code (normalized first).

    Raises:
        GeoError: ``UNKNOWN_PCODE`` if the table has no such code.
    """
    found = _table().get(normalize_pcode(pcode))
    if found is None:
        raise GeoError(f"unknown P-code {pcode!r}", code=GeoErrorCode.UNKNOWN_PCODE)
    return found


def is_district(pcode: str) -> bool:
    """Whether ``pcode`` (normalized first) is a known district."""
    found = _table().get(normalize_pcode(pcode))
    return found is not None and found.level == 2


def district_in(pcode: str, governorate: str) -> bool:
    """Whether ``pcode`` is a known district of the governorate ``governorate``.

    Both are normalized first; unknown codes give ``False`` rather than an error.
    """
    found = _table().get(normalize_pcode(pcode))
    return found is not None and found.level == 2 and found.parent == normalize_pcode(governorate)
