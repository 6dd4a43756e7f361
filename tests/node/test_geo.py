"""node.geo: the packaged Iraq P-code table against its source, and the lookups.

Source of every expected value here: OCHA COD-AB Iraq, ``irq_admbnda_adm2_cso_20190603``
(ADM1_*/ADM2_* properties), read from the GeoJSON committed in the public repository
lawenhunar/map-visualization at 68fd55ce, path
``map shapefiles/irq_admbnda_adm2_cso_20190603.geojson`` (101 features); cross-checked
against open-admin-data/iraq-administrative-divisions ``data/all-flat.csv`` and the
per-governorate table in its README (18 governorates, 101 districts). See docs/geodata.md.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import re
import unicodedata

import pytest

import protocol
from node.geo import (
    GeoError,
    GeoErrorCode,
    area,
    district_in,
    districts,
    governorates,
    is_district,
    normalize_pcode,
)

# Districts per governorate in irq_admbnda_adm2_cso_20190603 (same counts in the
# open-admin-data README table).
EXPECTED_DISTRICTS = {
    "IQG01": 7,  # Al-Anbar
    "IQG02": 7,  # Al-Basrah
    "IQG03": 4,  # Al-Muthanna
    "IQG04": 3,  # Al-Najaf
    "IQG05": 4,  # Al-Qadissiya
    "IQG06": 10,  # Al-Sulaymaniyah (includes Halabcha, IQG06Q05)
    "IQG07": 4,  # Babil
    "IQG08": 7,  # Baghdad
    "IQG09": 4,  # Duhok
    "IQG10": 6,  # Diyala
    "IQG11": 6,  # Erbil
    "IQG12": 3,  # Kerbala
    "IQG13": 4,  # Kirkuk
    "IQG14": 6,  # Maysan
    "IQG15": 9,  # Ninewa
    "IQG16": 7,  # Salah Al-Din
    "IQG17": 5,  # Thi Qar
    "IQG18": 5,  # Wassit
}

_ARABIC_LETTERS = re.compile(r"[\u0621-\u064A]")


def _rows() -> list[dict[str, str]]:
    text = importlib.resources.files("node.geo").joinpath("iraq_admin.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_parses_with_the_documented_columns_sorted_by_pcode() -> None:
    rows = _rows()
    assert list(rows[0]) == ["level", "pcode", "parent_pcode", "name_en", "name_ar", "source"]
    assert len(rows) == 18 + 101
    pcodes = [r["pcode"] for r in rows]
    assert pcodes == sorted(pcodes)
    assert {r["source"] for r in rows} == {"cod-ab-irq-20190603"}
    assert all(r == {k: v.strip() for k, v in r.items()} for r in rows)


def test_every_pcode_is_unique() -> None:
    pcodes = [r["pcode"] for r in _rows()]
    assert len(pcodes) == len(set(pcodes))


def test_pcode_formats_are_the_cod_ones() -> None:
    # Governorates IQGnn, districts IQGnnQmm: NOT the IQD + 3 digits the protocol expects.
    for gov in governorates():
        assert re.fullmatch(r"IQG\d{2}", gov.pcode)
    for d in districts():
        assert re.fullmatch(r"IQG\d{2}Q\d{2}", d.pcode)
        assert d.pcode.startswith(d.parent or "?")
        assert not re.fullmatch(r"IQD[0-9]{3}", d.pcode)


def test_every_district_has_a_known_governorate_as_parent() -> None:
    govs = {g.pcode for g in governorates()}
    for d in districts():
        assert d.level == 2
        assert d.parent in govs


def test_governorates_are_the_18_of_the_source_and_halabja_is_a_district() -> None:
    assert [g.pcode for g in governorates()] == [f"IQG{n:02d}" for n in range(1, 19)]
    # The project's GOVERNORATES also list IQG19 Halabja; COD-AB 2019 has no such code:
    # Halabja is the district IQG06Q05 of Al-Sulaymaniyah.
    with pytest.raises(GeoError) as caught:
        area("IQG19")
    assert caught.value.code is GeoErrorCode.UNKNOWN_PCODE
    halabja = area("IQG06Q05")
    assert (halabja.name_en, halabja.name_ar, halabja.parent) == ("Halabcha", "حلبجة", "IQG06")


def test_district_counts_per_governorate_match_the_source() -> None:
    assert {g.pcode: len(districts(g.pcode)) for g in governorates()} == EXPECTED_DISTRICTS
    assert len(districts()) == sum(EXPECTED_DISTRICTS.values()) == 101


def test_every_name_is_present_and_arabic_names_are_in_arabic_script() -> None:
    for a in [*governorates(), *districts()]:
        assert a.name_en and a.name_en.isascii()
        assert a.name_ar
        letters = [c for c in a.name_ar if c.isalpha()]
        assert letters and all(_ARABIC_LETTERS.fullmatch(c) for c in letters), a
        assert all(unicodedata.bidirectional(c) in ("AL", "WS") for c in a.name_ar), a


@pytest.mark.parametrize(
    ("pcode", "name_en", "name_ar", "parent"),
    [
        ("IQG08", "Baghdad", "بغداد", None),
        ("IQG08Q01", "Al-Adhamiya", "الاعظمية", "IQG08"),
        ("IQG08Q02", "Al-Kadhmiyah", "الكاظمية", "IQG08"),
        ("IQG08Q07", "Al-Thawra", "الثورة", "IQG08"),
        ("IQG02", "Al-Basrah", "البصرة", None),
        ("IQG02Q06", "Al-Zubair", "الزبير", "IQG02"),
        ("IQG15", "Ninewa", "نينوى", None),
        ("IQG15Q05", "Al-Mosul", "الموصل", "IQG15"),
        ("IQG15Q07", "Sinjar", "سنجار", "IQG15"),
        ("IQG11Q02", "Erbil", "اربيل", "IQG11"),
        ("IQG16Q07", "Tooz Khurmato", "طوز خورماتو", "IQG16"),
        # The source gives this district the Arabic name of Mandali; kept as published.
        ("IQG10Q03", "Baladruz", "مندلي", "IQG10"),
        # The source has a leading space here (" المناذرة"); the table strips it.
        ("IQG04Q02", "Al-Manathera", "المناذرة", "IQG04"),
    ],
)
def test_spot_checks_against_the_source(
    pcode: str, name_en: str, name_ar: str, parent: str | None
) -> None:
    found = area(pcode)
    assert (found.pcode, found.name_en, found.name_ar, found.parent) == (
        pcode,
        name_en,
        name_ar,
        parent,
    )
    assert found.level == (1 if parent is None else 2)


def test_baghdad_districts_are_the_seven_of_the_source() -> None:
    # COD-AB 2019 has no Abu Ghraib district: Baghdad has these seven.
    assert [d.name_en for d in districts("IQG08")] == [
        "Al-Adhamiya",
        "Al-Kadhmiyah",
        "Al-Karkh",
        "Al-Mada'in",
        "Al-Mahmoudiya",
        "Al-Risafa",
        "Al-Thawra",
    ]


def test_normalize_pcode_handles_arabic_indic_digits_case_and_spaces() -> None:
    assert normalize_pcode(" iqg٠٨q٠١\t") == "IQG08Q01"
    assert normalize_pcode("IQG۱۵Q۰۵") == "IQG15Q05"  # Extended Arabic-Indic (Persian) digits
    assert normalize_pcode("IQG15Q05") == "IQG15Q05"
    assert area("iqg١٥q٠٥").name_ar == "الموصل"


def test_is_district_and_district_in() -> None:
    assert is_district("IQG02Q06")
    assert is_district(" iqg٠٢q٠٦ ")
    assert not is_district("IQG02")  # a governorate
    assert not is_district("IQD001")  # the protocol's pattern, absent from the COD
    assert not is_district("")
    assert district_in("IQG15Q07", "IQG15")
    assert district_in("iqg١٥q٠٧", "iqg١٥")
    assert not district_in("IQG15Q07", "IQG08")
    assert not district_in("IQG15", "IQG15")
    assert not district_in("IQG99Q01", "IQG99")


def test_unknown_codes_raise_geo_error_not_key_error() -> None:
    for bad in ("IQG99", "IQD001", "", "IQG08Q99"):
        with pytest.raises(GeoError) as caught:
            area(bad)
        assert caught.value.code is GeoErrorCode.UNKNOWN_PCODE
        assert not isinstance(caught.value, KeyError)
    with pytest.raises(GeoError) as caught:
        districts("IQG99")
    assert caught.value.code is GeoErrorCode.UNKNOWN_PCODE
    with pytest.raises(GeoError):
        districts("IQG08Q01")  # a district is not a governorate
    assert str(caught.value).startswith("UNKNOWN_PCODE: ")


def test_areas_are_frozen() -> None:
    found = area("IQG08")
    with pytest.raises(AttributeError):
        found.name_en = "x"  # type: ignore[misc]


def test_the_protocol_accepts_every_district_and_no_governorate_as_a_district() -> None:
    """Allocation records carry these codes (SPEC §5.6): the protocol's pattern and the
    shipped table must agree."""
    base = {
        "category": "food",
        "date": "2026-05-27",
        "epoch": 1,
        "program": "winter-2026",
        "pseudonym": bytes(32),
        "quantity": 1,
        "unit": "basket",
        "value_iqd": 1,
    }

    def content(pcode: str) -> dict[str, object]:
        return dict(sorted({**base, "district": pcode}.items()))

    for district in districts():
        protocol.Allocation.from_content(content(district.pcode))
    for governorate in governorates():
        with pytest.raises(protocol.RemoteProtocolError):
            protocol.Allocation.from_content(content(governorate.pcode))
