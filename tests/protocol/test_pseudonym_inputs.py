"""Pseudonym inputs (SPEC §14): what must collide, what must not, errors, exact bytes.

Names are real-looking Iraqi names as staff type them on Arabic, Kurdish and Persian
keyboards and on phones. The worked examples are the ones printed in SPEC §14.6; their
hex is asserted here byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ErrorCode, LocalProtocolError
from protocol.oprf._inputs import (
    FALLBACK_PREFIX,
    NATIONAL_ID_PREFIX,
    PseudonymInput,
    fallback_input,
    national_id_input,
    normalize_arabic,
    normalize_national_id,
)

from .conftest import raises_code

PROPERTY = settings(max_examples=300, deadline=None)

RLM = "\u200f"
LRM = "\u200e"
ALM = "\u061c"
NBSP = "\u00a0"
ZWNJ = "\u200c"
TATWEEL = "\u0640"
LAM_ALEF = "\ufefb"  # ﻻ ARABIC LIGATURE LAM WITH ALEF ISOLATED FORM

HOUSEHOLD: dict[str, Any] = {
    "name": ("علي", "حسن", "محمد", "الجبوري"),
    "mother_name": "زينب",
    "birth_year": 1979,
    "governorate": "IQG08",
}


def fallback(**changes: Any) -> bytes:
    return fallback_input(**{**HOUSEHOLD, **changes})


# --- Worked examples (SPEC §14.6): the draft prints exactly these bytes. -------------

EXAMPLES: list[tuple[str, Any, str]] = [
    (
        "A: card number in Arabic-Indic digits with spaces",
        lambda: national_id_input("١٩٨٥ ٠١٢٣ ٤٥٦٧"),
        "49512d4e49443a313938353031323334353637",
    ),
    (
        "B: harakat, tatweel, spaced compound, lam-alef ligature, ta marbuta",
        lambda: fallback_input(
            name=("أَحْمَـــد", "عبد الله", "حسين", "الس\ufefbمي"),
            mother_name="فاطمة",
            birth_year=1985,
            governorate="IQG08",
        ),
        "49512d46414c4c4241434b2d313ad8a7d8add985d8af1fd8b9d8a8d8afd8a7d984d984d9871f"
        "d8add8b3d98ad9861fd8a7d984d8b3d984d8a7d985d98a1fd981d8a7d8b7d985d9871f"
        "313938351f4951473038",
    ),
    (
        "C: Kurdish (Sorani) keyboard",
        lambda: fallback_input(
            name=("ئاکۆ", "کەریم", "ڕەسووڵ", "بەرزنجی"),
            mother_name="گەلاوێژ",
            birth_year=1990,
            governorate="IQG06",
        ),
        "49512d46414c4c4241434b2d313ad8a7d983d9881fd983d987d8b1d98ad9851f"
        "d8b1d987d8b3d988d988d9841fd8a8d987d8b1d8b2d986d8acd98a1f"
        "daafd987d984d8a7d988d98ada981f313939301f4951473036",
    ),
    (
        "D: Latin script (Turkmen spelling)",
        lambda: fallback_input(
            name=("İbrahim", "Ömer", "Şakir", "Bayatlı"),
            mother_name="Gülşen",
            birth_year=1968,
            governorate="IQG13",
        ),
        "49512d46414c4c4241434b2d313a6962726168696d1f6f6d65721f73616b69721f"
        "62617961746c691f67756c73656e1f313936381f4951473133",
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"), [e[1:] for e in EXAMPLES], ids=[e[0] for e in EXAMPLES]
)
def test_worked_examples(build: Any, expected: str) -> None:
    assert build().hex() == expected


def test_worked_example_fields() -> None:
    """The readable form of the examples, as the draft shows them next to the hex."""
    fields = [bytes.fromhex(e[2]).decode("utf-8") for e in EXAMPLES]
    assert fields[0] == "IQ-NID:198501234567"
    assert fields[1].split("\x1f") == [
        "IQ-FALLBACK-1:احمد", "عبدالله", "حسين", "السلامي", "فاطمه", "1985", "IQG08"
    ]  # fmt: skip
    assert fields[2].split("\x1f") == [
        "IQ-FALLBACK-1:اكو", "كهريم", "رهسوول", "بهرزنجي", "گهلاويژ", "1990", "IQG06"
    ]  # fmt: skip
    assert fields[3].split("\x1f") == [
        "IQ-FALLBACK-1:ibrahim", "omer", "sakir", "bayatli", "gulsen", "1968", "IQG13"
    ]  # fmt: skip


# --- National Card numbers --------------------------------------------------------------

CARD = "198501234567"


@pytest.mark.parametrize(
    "typed",
    [
        "198501234567",
        "١٩٨٥ ٠١٢٣ ٤٥٦٧",  # Arabic-Indic, spaces
        "۱۹۸۵-۰۱۲۳-۴۵۶۷",  # Persian, dashes
        RLM + "١٩٨٥٠١٢٣٤٥٦٧" + RLM,  # pasted out of right-to-left text
        LRM + "1985" + ALM + "0123\u2066" + "4567\u2069",
        f"1985{NBSP}0123{NBSP}4567",
        " 1985\t0123\u2013 4567 \n",  # en dash, tab, newline
        "1985\u20120123\u22124567",  # figure dash, minus sign
        "١٩٨٥0123۴۵۶۷",  # three scripts in one number
        "\ufeff1985\u200b0123\u200d4567",  # BOM and zero-width characters
    ],
)
def test_card_number_variants_collide(typed: str) -> None:
    assert normalize_national_id(typed) == CARD
    assert national_id_input(typed) == b"IQ-NID:" + CARD.encode()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("19850123456", "11 digits, need 12"),
        ("١٩٨٥٠١٢٣٤٥٦٧٨", "13 digits, need 12"),
        ("", "0 digits, need 12"),
        ("   ", "0 digits, need 12"),
        ("1985O1234567", "contains a character other than digits, spaces, dashes"),  # letter O
        ("IQ198501234567", "contains a character other than digits, spaces, dashes"),
        ("1985.0123.4567", "contains a character other than digits, spaces, dashes"),
        ("１９８５０１２３４５６７", "contains a character other than digits, spaces, dashes"),
        ("1985_0123_4567", "contains a character other than digits, spaces, dashes"),
        ("000000000000", "a placeholder, not a card number"),
        ("111111111111", "a placeholder, not a card number"),
        ("٩٩٩٩ ٩٩٩٩ ٩٩٩٩", "a placeholder, not a card number"),
        ("۰۰۰۰-۰۰۰۰-۰۰۰۰", "a placeholder, not a card number"),
    ],
)
def test_bad_card_numbers(typed: str, message: str) -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_NATIONAL_ID) as info:
        normalize_national_id(typed)
    assert info.value.message == message
    with raises_code(LocalProtocolError, ErrorCode.BAD_NATIONAL_ID):
        PseudonymInput.from_national_id(typed)


def test_every_placeholder_is_refused_and_near_placeholders_are_not() -> None:
    for digit in "0123456789":
        with raises_code(LocalProtocolError, ErrorCode.BAD_NATIONAL_ID):
            normalize_national_id(digit * 12)
        near = digit * 11 + ("4" if digit == "5" else "5")
        assert normalize_national_id(near) == near


def test_card_number_must_be_str() -> None:
    with raises_code(LocalProtocolError, ErrorCode.WRONG_TYPE):
        normalize_national_id(198501234567)  # type: ignore[arg-type]
    with raises_code(LocalProtocolError, ErrorCode.WRONG_TYPE):
        national_id_input(None)  # type: ignore[arg-type]


# --- Names: what must collide ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        (["أحمد", "احمد", "إحمد", "آحمد", "أَحْمَد", "أحـــمد", "أَحْمَـــد", "ٱحمد"], "احمد"),
        (["فاطمة", "فاطمه", "فاطِمَة", "فاطمـة"], "فاطمه"),
        (["مصطفى", "مصطفي", "مُصْطَفَى"], "مصطفي"),
        (["علی", "علي", "عَلِيّ", "على"], "علي"),
        (["کریم", "كريم", "ڪريم", "كريـم"], "كريم"),
        (["رسول", "ڕسول", "رسوڵ"], "رسول"),  # Kurdish heavy r and l
        (["هاشم", "ھاشم"], "هاشم"),  # heh doachashmee from Kurdish/Urdu layouts
        (["نۆری", "نوري", "نۇري"], "نوري"),
        (["عبد الله", "عبد  الله", f"عبد{NBSP}الله", " عبد الله\t"], "عبد الله"),
        (["عبد الله", f"عبد {RLM}ال{ZWNJ}له{LRM}", "\u202bعبد الله\u202c"], "عبد الله"),
        (["ئازاد", "آزاد", "ازاد", "أزاد"], "ازاد"),  # Kurdish initial-vowel seat
        (["ئیمان", "ايمان", "إيمان"], "ايمان"),
        (["علی-ئازاد", "علي-آزاد", "علي\u2010ازاد"], "علي-ازاد"),  # a word starts after -
        (["هيئة", "هيئه"], "هييه"),  # ئ inside a word is ي
        (["مسؤول", "مسوول", "مسؤُول"], "مسوول"),
        (["ابراهيم", "إبراهيم", "إبراهيـــم", "اِبْرَاهِيم"], "ابراهيم"),
        (["Ahmed", "AHMED", "ahmed", "Ahmèd"], "ahmed"),
        (["O'Neil", "O\u2019Neil", "o\u02bcneil"], "o'neil"),
        (["Al-Jubouri", "AL\u2010JUBOURI", "al\u2013jubouri"], "al-jubouri"),
    ],
)
def test_name_variants_collide(variants: list[str], expected: str) -> None:
    assert {normalize_arabic(v) for v in variants} == {expected}


def test_presentation_forms_fold_to_letters() -> None:
    assert normalize_arabic("الس" + LAM_ALEF + "مي") == normalize_arabic("السلامي")
    assert normalize_arabic("ﺳﻼﻡ") == "سلام"  # initial seen, final lam-alef, isolated meem
    assert normalize_arabic("ﻋﻠﻲ") == "علي"
    assert normalize_arabic("عبد" + "\ufdf2") == "عبدالله"  # U+FDF2 ligature Allah


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("علي", "حسن", "محمد", "الجبوري"), ("علی", "حسن", "محمد", "الجبوري")),
        (("علي", "عبد الله", "محمد", "الجبوري"), ("علي", "عبدالله", "محمد", "الجبوري")),
        (("عبد الرحمن", "حسن", "محمد", "الجبوري"), ("عبدالرحمن", "حسن", "محمد", "الجبوري")),
        (("علي", "حسن", "محمد", "ال جبوري"), ("علي", "حسن", "محمد", "الجبوري")),
        (("علي", "حسن", "محمد", "آل جبر"), ("علي", "حسن", "محمد", "الجبر")),
        (("کریم", "حسن", "محمد", "الجبوري"), ("كريم", "حسن", "محمد", "الجبوري")),
        (("مصطفى", "حسن", "محمد", "الجبوري"), ("مصطفي", "حسن", "محمد", "الجبوري")),
        (("أَحْمَد", "حسن", "محمد", "الجبوري"), ("أحـــمد", "حسن", "محمد", "الجبوري")),
        (("علي", "حسن", "محمد", "الجبوري-التميمي"), ("علي", "حسن", "محمد", "الجبوري التميمي")),
    ],
)
def test_fallback_variants_collide(one: tuple[str, ...], other: tuple[str, ...]) -> None:
    assert fallback(name=one) == fallback(name=other)


def test_fallback_mother_name_variants_collide() -> None:
    assert fallback(mother_name="فاطمة عبد الله") == fallback(mother_name="فاطمه عبدالله")
    assert fallback(mother_name="زينب") == fallback(mother_name=" زَيْنَب ")


def test_national_id_and_fallback_from_the_same_typing_are_stable() -> None:
    assert national_id_input("١٩٨٥ ٠١٢٣ ٤٥٦٧") == national_id_input("198501234567")
    assert PseudonymInput.from_national_id("۱۹۸۵-۰۱۲۳-۴۵۶۷") == PseudonymInput(
        b"IQ-NID:198501234567", weak=False
    )


# --- Names: what must not collide ---------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("محمد", "محمود"),
        ("حسن", "حسين"),
        ("علي", "عالي"),
        ("سعد", "سعيد"),
        ("گاطع", "كاطع"),  # gaf is its own letter in Iraqi names
        ("جبار", "چبار"),
        ("زينب", "ژينب"),
        ("كريم", "كريمه"),
        ("عمر", "عمار"),
        ("ahmed", "ahmad"),
    ],
)
def test_similar_names_stay_apart(one: str, other: str) -> None:
    assert normalize_arabic(one) != normalize_arabic(other)
    assert fallback(name=(one, "حسن", "محمد", "الجبوري")) != fallback(
        name=(other, "حسن", "محمد", "الجبوري")
    )


@pytest.mark.parametrize(
    "change",
    [
        {"mother_name": "فاطمة"},
        {"mother_name": "زينب كاظم"},
        {"birth_year": 1980},
        {"governorate": "IQG09"},
        {"name": ("حسن", "علي", "محمد", "الجبوري")},  # same parts, other order
        {"name": ("علي", "حسن", "محمد", "التميمي")},
    ],
)
def test_other_fields_keep_households_apart(change: dict[str, Any]) -> None:
    assert fallback(**change) != fallback()


def test_parts_shifted_between_fields_differ_or_fail() -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_NAME):
        fallback(name=("علي", "حسن محمد", "", "الجبوري"))
    shifted = [
        ("علي", "حسن محمد", "كاظم", "الجبوري"),
        ("علي", "حسن", "محمد كاظم", "الجبوري"),
        ("علي حسن", "محمد", "كاظم", "الجبوري"),
        ("علي", "حسن", "محمد", "كاظم الجبوري"),
    ]
    assert len({fallback(name=name) for name in shifted}) == len(shifted)
    # A name part cannot borrow the mother's name either: the separator sits between.
    assert fallback(name=("علي", "حسن", "محمد", "الجبوريزينب"), mother_name="ا") != fallback()


def test_strong_and_weak_inputs_never_collide() -> None:
    strong = PseudonymInput.from_national_id(CARD)
    weak = PseudonymInput.from_fallback(**HOUSEHOLD)
    assert (strong.weak, weak.weak) == (False, True)
    assert strong.data.startswith(NATIONAL_ID_PREFIX) and weak.data.startswith(FALLBACK_PREFIX)
    assert not weak.data.startswith(NATIONAL_ID_PREFIX)
    assert not strong.data.startswith(FALLBACK_PREFIX)
    assert not NATIONAL_ID_PREFIX.startswith(FALLBACK_PREFIX)
    assert not FALLBACK_PREFIX.startswith(NATIONAL_ID_PREFIX)
    assert strong != weak and strong.data != weak.data
    # A weak input whose name fields look like a card number is still refused: no digits.
    with raises_code(LocalProtocolError, ErrorCode.BAD_NAME):
        fallback(name=(CARD, "حسن", "محمد", "الجبوري"))


def test_pseudonym_input_repr_holds_no_pii() -> None:
    value = PseudonymInput.from_fallback(**HOUSEHOLD)
    assert repr(value) == "PseudonymInput(weak=True)"
    assert CARD not in repr(PseudonymInput.from_national_id(CARD))


@pytest.mark.parametrize(
    ("data", "weak", "code"),
    [
        (b"IQ-NID:198501234567", True, ErrorCode.BAD_VALUE),
        (b"IQ-FALLBACK-1:x", False, ErrorCode.BAD_VALUE),
        (b"IQ-NID:19850123456", False, ErrorCode.BAD_VALUE),
        (b"IQ-NID:1985012345678", False, ErrorCode.BAD_VALUE),
        (b"IQ-NID:19850123456x", False, ErrorCode.BAD_VALUE),
        (b"198501234567", False, ErrorCode.BAD_VALUE),
        ("IQ-NID:198501234567", False, ErrorCode.WRONG_TYPE),
        (b"IQ-NID:198501234567", 0, ErrorCode.WRONG_TYPE),
    ],
)
def test_pseudonym_input_checks_itself(data: Any, weak: Any, code: ErrorCode) -> None:
    with raises_code(LocalProtocolError, code):
        PseudonymInput(data, weak=weak)


def test_pseudonym_input_is_frozen() -> None:
    value = PseudonymInput.from_national_id(CARD)
    with pytest.raises(AttributeError):
        value.weak = True  # type: ignore[misc]


# --- Names: errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("علي2", "name: contains a digit"),
        ("علي٢", "name: contains a digit"),
        ("علي۲", "name: contains a digit"),
        ("علي.", "name: contains punctuation or a symbol"),
        ("علي، حسن", "name: contains punctuation or a symbol"),
        ("علي (ابو حسن)", "name: contains punctuation or a symbol"),
        ("علي@", "name: contains punctuation or a symbol"),
        ("Ἀλέξανδρος", "name: contains a letter outside the Arabic and Latin alphabets"),
        ("Иван", "name: contains a letter outside the Arabic and Latin alphabets"),
        ("ٹیپو", "name: contains a letter outside the Arabic and Latin alphabets"),
        ("علي\x1fحسن", "name: contains a control, format or unassigned character"),
        ("علي\x00", "name: contains a control, format or unassigned character"),
        ("علي\u2063", "name: contains a control, format or unassigned character"),
        ("علي\U000e0001", "name: contains a control, format or unassigned character"),
    ],
)
def test_bad_names(text: str, message: str) -> None:
    with raises_code(LocalProtocolError, ErrorCode.BAD_NAME) as info:
        normalize_arabic(text)
    assert info.value.message == message


def test_empty_and_separator_only_names_normalize_to_empty() -> None:
    assert normalize_arabic("") == ""
    assert normalize_arabic(f" {TATWEEL}{RLM} ") == ""
    assert normalize_arabic(" - ") == "-"


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"name": ("علي", "حسن", "محمد")}, ErrorCode.BAD_NAME, "name: 3 parts, need 4"),
        (
            {"name": ("علي", "حسن", "محمد", "كاظم", "الجبوري")},
            ErrorCode.BAD_NAME,
            "name: 5 parts, need 4",
        ),
        ({"name": ()}, ErrorCode.BAD_NAME, "name: 0 parts, need 4"),
        ({"name": ("علي", "", "محمد", "الجبوري")}, ErrorCode.BAD_NAME, "name part 2: empty"),
        ({"name": ("علي", "حسن", "َ ـ", "الجبوري")}, ErrorCode.BAD_NAME, "name part 3: empty"),
        ({"name": ("علي", "حسن", "محمد", "-")}, ErrorCode.BAD_NAME, "name part 4: empty"),
        (
            {"name": ("علي3", "حسن", "محمد", "الجبوري")},
            ErrorCode.BAD_NAME,
            "name part 1: contains a digit",
        ),
        ({"mother_name": ""}, ErrorCode.BAD_NAME, "mother's name: empty"),
        ({"mother_name": "زينب ٣"}, ErrorCode.BAD_NAME, "mother's name: contains a digit"),
        ({"birth_year": 1899}, ErrorCode.BAD_VALUE, "birth year: must be in 1900..2100"),
        ({"birth_year": 2101}, ErrorCode.BAD_VALUE, "birth year: must be in 1900..2100"),
        ({"birth_year": -1979}, ErrorCode.BAD_VALUE, "birth year: must be in 1900..2100"),
        (
            {"governorate": "IQG20"},
            ErrorCode.BAD_VALUE,
            "governorate: must be a P-code IQG01..IQG19",
        ),
        (
            {"governorate": "IQG00"},
            ErrorCode.BAD_VALUE,
            "governorate: must be a P-code IQG01..IQG19",
        ),
        (
            {"governorate": "iqg08"},
            ErrorCode.BAD_VALUE,
            "governorate: must be a P-code IQG01..IQG19",
        ),
        (
            {"governorate": "IQG8"},
            ErrorCode.BAD_VALUE,
            "governorate: must be a P-code IQG01..IQG19",
        ),
        (
            {"governorate": "IQG08\n"},
            ErrorCode.BAD_VALUE,
            "governorate: must be a P-code IQG01..IQG19",
        ),
        (
            {"governorate": "بغداد"},
            ErrorCode.BAD_VALUE,
            "governorate: must be a P-code IQG01..IQG19",
        ),
        (
            {"name": "علي حسن محمد الجبوري"},
            ErrorCode.WRONG_TYPE,
            "name: expected a sequence of 4 parts",
        ),
        ({"name": None}, ErrorCode.WRONG_TYPE, "name: expected a sequence of 4 parts"),
        (
            {"name": ("علي", 7, "محمد", "الجبوري")},
            ErrorCode.WRONG_TYPE,
            "name part 2: expected str, got int",
        ),
        ({"birth_year": "1979"}, ErrorCode.WRONG_TYPE, "birth year: expected int"),
        ({"birth_year": 1979.0}, ErrorCode.WRONG_TYPE, "birth year: expected int"),
        ({"birth_year": True}, ErrorCode.WRONG_TYPE, "birth year: expected int"),
        ({"governorate": None}, ErrorCode.WRONG_TYPE, "governorate: expected str, got NoneType"),
    ],
)
def test_bad_fallback_fields(changes: dict[str, Any], code: ErrorCode, message: str) -> None:
    with raises_code(LocalProtocolError, code) as info:
        fallback(**changes)
    assert info.value.message == message
    with raises_code(LocalProtocolError, code):
        PseudonymInput.from_fallback(**{**HOUSEHOLD, **changes})


def test_field_length_is_counted_after_normalization() -> None:
    longest = "ب" * 64
    assert fallback(name=("علي", "حسن", "محمد", longest))
    # Marks, tatweel and spaces do not count: they are gone before the length check.
    assert fallback(name=("علي", "حسن", "محمد", "ـ َ".join(longest)))
    with raises_code(LocalProtocolError, ErrorCode.BAD_NAME) as info:
        fallback(name=("علي", "حسن", "محمد", longest + "ب"))
    assert info.value.message == "name part 4: 65 letters, at most 64"
    with raises_code(LocalProtocolError, ErrorCode.BAD_NAME):
        fallback(mother_name="ز" * 65)


def test_birth_year_bounds_are_inclusive() -> None:
    assert fallback(birth_year=1900).endswith(b"\x1f1900\x1fIQG08")
    assert fallback(birth_year=2100).endswith(b"\x1f2100\x1fIQG08")
    assert fallback(governorate="IQG01") != fallback(governorate="IQG19")


# --- No PII in errors --------------------------------------------------------------------

PII_CASES: list[tuple[Any, str]] = [
    (lambda: normalize_national_id("19850123456"), "19850123456"),
    (lambda: normalize_national_id("١٩٨٥٠١٢٣٤٥٦٧٨"), "١٩٨٥٠١٢٣٤٥٦٧٨"),
    (lambda: normalize_national_id("1985A1234567"), "1985A1234567"),
    (lambda: normalize_national_id("777777777777"), "777777777777"),
    (lambda: normalize_arabic("Hussein2"), "Hussein"),
    (lambda: normalize_arabic("حسين!"), "حسين"),
    (lambda: fallback(name=("Mohammed", "Kadhim", "", "Jubouri")), "Mohammed"),
    (lambda: fallback(name=("علي", "حسن", "محمد", "ب" * 65)), "بب"),
    (lambda: fallback(mother_name="Zainab7"), "Zainab"),
    (lambda: fallback(birth_year=1776), "1776"),
    (lambda: fallback(governorate="Baghdad"), "Baghdad"),
    (lambda: PseudonymInput(b"IQ-NID:19850123456", weak=False), "19850123456"),
]


@pytest.mark.parametrize(("call", "secret"), PII_CASES)
def test_error_messages_never_contain_the_input(call: Any, secret: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        call()
    error = info.value
    for shown in (error.message, str(error), repr(error), *map(str, error.args)):
        assert secret not in shown
        assert shown.isascii()  # English only: no Arabic name can be in it
        assert re.search(r"[0-9]{5}", shown) is None  # no run of a card number
    assert error.__cause__ is None and error.__context__ is None


# --- Properties --------------------------------------------------------------------------

ARABIC_LETTERS = [chr(cp) for cp in range(0x0620, 0x064B)] + [
    chr(cp) for cp in range(0x0671, 0x06D4)
]
INTERESTING = st.sampled_from(
    ARABIC_LETTERS
    + [chr(cp) for cp in range(0x064B, 0x0660)]  # harakat, hamza and madda marks
    + [chr(cp) for cp in range(0x06D4, 0x06EE)]  # Quranic marks
    + [chr(cp) for cp in range(0xFB50, 0xFDFF)]  # presentation forms A
    + [chr(cp) for cp in range(0xFE70, 0xFEFF)]  # presentation forms B
    + [chr(cp) for cp in range(0x0300, 0x0370)]  # Latin combining marks
    + list("AaİıIßÉéŞşÖöÜü'-’ʼ‐–\u2212 \t\n")
    + [TATWEEL, RLM, LRM, ALM, NBSP, ZWNJ, "\u200b", "\u200d", "\ufeff", "\u2066", "\u3000"]
)
#: Everything a normalized name may contain (SPEC §14.3.2), written out independently.
ALPHABET = set("ابتثجحخدذرزسشصضطظعغفقكلمنهوي" + "پچژڤگ" + "abcdefghijklmnopqrstuvwxyz" + " -'")
NAME_TEXT = st.text(INTERESTING, max_size=30) | st.text(max_size=30)


@PROPERTY
@given(NAME_TEXT)
def test_normalize_arabic_is_idempotent_and_raises_only_protocol_errors(text: str) -> None:
    try:
        once = normalize_arabic(text)
    except LocalProtocolError as error:
        assert error.code is ErrorCode.BAD_NAME
        return
    assert normalize_arabic(once) == once
    assert once == once.strip() and "  " not in once
    assert set(once) <= ALPHABET


@PROPERTY
@given(st.text(max_size=30))
def test_normalize_arabic_on_arbitrary_text(text: str) -> None:
    try:
        once = normalize_arabic(text)
    except LocalProtocolError as error:
        assert error.code is ErrorCode.BAD_NAME
    else:
        assert normalize_arabic(once) == once


@PROPERTY
@given(st.lists(NAME_TEXT, min_size=4, max_size=4), NAME_TEXT, st.integers(1800, 2200))
def test_fallback_input_is_injective_or_refuses(parts: list[str], mother: str, year: int) -> None:
    try:
        data = fallback_input(name=parts, mother_name=mother, birth_year=year, governorate="IQG11")
    except LocalProtocolError as error:
        assert error.code in (ErrorCode.BAD_NAME, ErrorCode.BAD_VALUE)
        return
    fields = data.removeprefix(FALLBACK_PREFIX).decode("utf-8").split("\x1f")
    assert len(fields) == 7 and all(fields)
    assert fields[5:] == [str(year), "IQG11"]
    assert all(" " not in f and len(f) <= 64 for f in fields[:5])


DIGIT_TEXT = st.text(st.sampled_from("0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹ -–\u200f\u00a0x.")) | st.text()


@PROPERTY
@given(DIGIT_TEXT)
def test_normalize_national_id_returns_12_ascii_digits_or_refuses(text: str) -> None:
    try:
        digits = normalize_national_id(text)
    except LocalProtocolError as error:
        assert error.code is ErrorCode.BAD_NATIONAL_ID
        return
    assert re.fullmatch(r"[0-9]{12}", digits) and len(set(digits)) > 1


SEPARATORS = st.sampled_from(["", "", "", " ", "-", "\u2013", RLM, LRM, NBSP, "\u200b", " - "])


@PROPERTY
@given(st.data(), st.text("0123456789", min_size=12, max_size=12).filter(lambda d: len(set(d)) > 1))
def test_card_numbers_in_any_script_normalize_back(data: st.DataObject, card: str) -> None:
    typed = ""
    for digit in card:
        offset = data.draw(st.sampled_from([0x30, 0x660, 0x6F0]))
        typed += data.draw(SEPARATORS) + chr(offset + int(digit))
    typed += data.draw(SEPARATORS)
    assert normalize_national_id(typed) == card
    assert national_id_input(typed) == NATIONAL_ID_PREFIX + card.encode()


@pytest.mark.parametrize("placeholder", ["مجهول", "غير معروف", "لا يوجد", "Unknown", "N-A", "xxx"])
def test_placeholder_names_are_refused(placeholder: str) -> None:
    """Households typed as "unknown" must not collide with each other."""
    parts = ["علي", "حسن", "محمد", placeholder]
    with pytest.raises(LocalProtocolError) as info:
        fallback_input(name=parts, mother_name="زينب", birth_year=1980, governorate="IQG08")
    assert info.value.code is ErrorCode.BAD_NAME
    assert "placeholder" in info.value.message
