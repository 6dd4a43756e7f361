"""Synthetic but realistic households for the demo, benchmarks and privacy tests:
Iraqi four-part names, mothers' names, real governorates and districts, member rosters,
incomes around the poverty line. Deterministic for a seed; no real person's data.

National Card numbers are 12 digits that start with ``9`` followed by a serial, so
that they look real to every check but cannot be any actual card (the real series
start with 1 or 2, by birth century; see docs/pseudonyms.md).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Final

from node import geo
from node.ataa._facts import SHELTERS
from node.ataa._record import HouseholdRecord, Member, Sex

__all__ = ["MALE_NAMES", "households", "national_id", "record"]

MALE_NAMES: Final = (
    "محمد",
    "علي",
    "حسين",
    "حسن",
    "أحمد",
    "عباس",
    "جاسم",
    "كاظم",
    "مصطفى",
    "عمر",
    "حيدر",
    "كريم",
    "سعد",
    "ياسر",
    "مهدي",
    "صادق",
    "جعفر",
    "خالد",
    "عبدالله",
    "يوسف",
    "إبراهيم",
    "سلمان",
    "فاضل",
    "ناصر",
    "رعد",
    "قاسم",
    "هاشم",
    "طارق",
    "زيد",
    "منتظر",
    "مرتضى",
    "سجاد",
    "عادل",
    "ماجد",
    "نبيل",
    "وليد",
    "فراس",
    "باسم",
    "رياض",
    "سامي",
)
FEMALE_NAMES: Final = (
    "فاطمة",
    "زينب",
    "مريم",
    "نور",
    "سارة",
    "هدى",
    "زهراء",
    "رقية",
    "آمنة",
    "خديجة",
    "سعاد",
    "ليلى",
    "نادية",
    "إيمان",
    "رشا",
    "شيماء",
    "بتول",
    "سناء",
    "وفاء",
    "حنان",
    "أسماء",
    "رنا",
    "دعاء",
    "غفران",
    "تبارك",
    "ضحى",
    "هند",
    "منى",
    "سلوى",
    "عفاف",
)
FAMILY_NAMES: Final = (
    "الجبوري",
    "التميمي",
    "الربيعي",
    "الساعدي",
    "الخفاجي",
    "الشمري",
    "العبيدي",
    "الدليمي",
    "الزبيدي",
    "الموسوي",
    "الحسيني",
    "العزاوي",
    "الكعبي",
    "المالكي",
    "البياتي",
    "الجنابي",
    "السامرائي",
    "العنزي",
    "الطائي",
    "الكبيسي",
    "اللامي",
    "الحلفي",
    "السوداني",
    "الغراوي",
    "الأسدي",
    "الفتلاوي",
    "الياسري",
    "الحمداني",
)
DISPLACEMENT_WEIGHTS: Final = (
    ("none", 50),
    ("idp_in_camp", 12),
    ("idp_out_of_camp", 15),
    ("returnee", 15),
    ("host", 8),
)
#: Governorates the demo's NGOs work in (Baghdad, Nineveh, Anbar, Basra, Kirkuk).
AREAS: Final = ("IQG08", "IQG15", "IQG01", "IQG02", "IQG13")

_FIRST_SERIAL: Final = 900_000_000_000


def national_id(serial: int) -> str:
    """The ``serial``-th synthetic National Card number (12 digits, ``9…``)."""
    return str(_FIRST_SERIAL + serial)


def _member(rng: random.Random, age: int) -> Member:
    school = None
    if 5 <= age <= 17:
        school = rng.random() > 0.2
    return Member(
        age=age,
        sex=rng.choice((Sex.FEMALE, Sex.MALE)),
        disability=rng.random() < 0.08,
        chronic_illness=rng.random() < 0.12,
        in_school=school,
    )


def record(
    rng: random.Random, serial: int, *, governorates: tuple[str, ...] = AREAS, with_id: bool = True
) -> HouseholdRecord:
    """One household; ``serial`` makes its National Card number (if ``with_id``)."""
    female = rng.random() < 0.22
    given = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
    governorate = rng.choice(governorates)
    district = rng.choice(geo.districts(governorate)).pcode
    head_age = rng.randint(19, 78)
    members = [_member(rng, head_age)]
    members[0] = Member(
        age=head_age,
        sex=Sex.FEMALE if female else Sex.MALE,
        disability=members[0].disability,
        chronic_illness=members[0].chronic_illness,
    )
    for _ in range(rng.choice((0, 1, 2, 3, 3, 4, 4, 5, 6, 7))):
        members.append(
            _member(
                rng,
                rng.choice(
                    (
                        rng.randint(0, 4),
                        rng.randint(5, 17),
                        rng.randint(18, 59),
                        rng.randint(60, 85),
                    )
                ),
            )
        )
    displacement = rng.choices(
        [d for d, _ in DISPLACEMENT_WEIGHTS], [w for _, w in DISPLACEMENT_WEIGHTS]
    )[0]
    income = rng.choice((0, 0, 50_000, 100_000, 150_000, 250_000, 400_000, 600_000, 900_000))
    return HouseholdRecord(
        name=(
            given,
            rng.choice(MALE_NAMES),
            rng.choice(MALE_NAMES),
            rng.choice(FAMILY_NAMES),
        ),
        mother_name=rng.choice(FEMALE_NAMES),
        national_id=national_id(serial) if with_id else None,
        phone="07"
        + rng.choice("789")
        + str(rng.randint(0, 9))
        + f"{rng.randint(0, 9_999_999):07d}",
        birth_date=f"{2026 - head_age}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        head_sex=Sex.FEMALE if female else Sex.MALE,
        governorate=governorate,
        district=district,
        address=f"محلة {rng.randint(100, 999)} زقاق {rng.randint(1, 60)} دار {rng.randint(1, 120)}",
        displacement=displacement,
        shelter=rng.choice(SHELTERS),
        monthly_income_iqd=income,
        debt_iqd=rng.choice((0, 0, 0, 250_000, 1_000_000, 3_000_000)),
        members=tuple(members),
    )


def households(
    seed: int, count: int, *, first_serial: int = 0, governorates: tuple[str, ...] = AREAS
) -> Iterator[HouseholdRecord]:
    """``count`` households, serials ``first_serial``.. (so two NGOs given overlapping
    serial ranges share households, as real NGOs do)."""
    for serial in range(first_serial, first_serial + count):
        # one generator per serial: the same serial is the same household everywhere
        yield record(random.Random(f"{seed}:{serial}"), serial, governorates=governorates)
