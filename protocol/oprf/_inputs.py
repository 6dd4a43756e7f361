"""Pseudonym inputs: the exact bytes a household's OPRF pseudonym is computed from (SPEC §14).

A household is known to the federation only by ``OPRF(key, input)``. Two NGOs that
register the same household must build the *same* input from what their staff typed,
on different phones and keyboards, so this module normalizes before it encodes:

- the Iraqi National Card number (12 digits, in any of three digit scripts, with the
  spaces, dashes and invisible marks that phones insert) gives a *strong* input;
- a household without a card gets a *weak* input from the four-part name, the mother's
  name, the birth year and the governorate.

Everything here is pure (STYLE §1). Errors are :class:`LocalProtocolError`: the node
calls these functions on its own staff's input and shows a translated message chosen
by the code. Messages say what is wrong, never what was typed: the input is PII and
error messages reach logs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NoReturn, Self

from .._errors import ErrorCode, LocalProtocolError

__all__ = [
    "FALLBACK_PREFIX",
    "MAX_FIELD_CHARS",
    "MAX_YEAR",
    "MIN_YEAR",
    "NATIONAL_ID_DIGITS",
    "NATIONAL_ID_PREFIX",
    "PseudonymInput",
    "fallback_input",
    "national_id_input",
    "normalize_arabic",
    "normalize_national_id",
]

#: Prefix of a strong input. Neither prefix is a prefix of the other, so a strong and
#: a weak input never have the same bytes.
NATIONAL_ID_PREFIX: Final = b"IQ-NID:"
#: Prefix of a weak input; the ``1`` versions the field layout.
FALLBACK_PREFIX: Final = b"IQ-FALLBACK-1:"
#: The National Card number printed on the card front is 12 decimal digits. No check
#: digit or internal structure is published: the card's ICAO 9303 machine-readable zone
#: carries check digits over its own fields, not one inside this number. So only the
#: count is checked here; inventing a checksum would reject real cards.
NATIONAL_ID_DIGITS: Final = 12
#: Longest name field (code points, after normalization): Iraqi given and family names
#: are far shorter; the bound only keeps a pasted paragraph out of a key.
MAX_FIELD_CHARS: Final = 64
MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2100

_SEPARATOR: Final = "\x1f"  # U+001F UNIT SEPARATOR; rejected inside any field
_GOVERNORATE: Final = re.compile(r"IQG(0[1-9]|1[0-9])")  # OCHA P-codes IQG01..IQG19

# Unicode White_Space (PropList.txt), listed so that every implementation agrees.
_WHITESPACE: Final = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(map(chr, range(0x2000, 0x200B)))
)
# Left-to-right, right-to-left and Arabic letter marks; embeddings and overrides;
# isolates. Phones add them when copying a number out of right-to-left text.
_BIDI: Final = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Invisible characters with no meaning in a number or a name: zero width space,
# non-joiner, joiner (Kurdish and Persian keyboards put ZWNJ inside words), soft
# hyphen, word joiner, and the byte order mark.
_INVISIBLE: Final = frozenset("\u200b\u200c\u200d\u00ad\u2060\ufeff")
_DASHES: Final = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")

_DIGITS: Final = {
    **{chr(0x30 + d): str(d) for d in range(10)},  # ASCII
    **{chr(0x660 + d): str(d) for d in range(10)},  # Arabic-Indic ٠..٩
    **{chr(0x6F0 + d): str(d) for d in range(10)},  # Eastern Arabic-Indic (Persian) ۰..۹
}
_ID_IGNORED: Final = _WHITESPACE | _DASHES | _BIDI | _INVISIBLE


def _ranges(*spans: tuple[int, int]) -> list[int]:
    return [cp for first, last in spans for cp in range(first, last + 1)]


# Removed from names (after NFKD and case folding): Latin combining accents U+0300-036F
# (José = jose, like the harakat below: staff often omit both), Arabic marks U+0610-061A,
# harakat U+064B-065F except U+0654 (hamza above, removed later, see _SEAT), superscript
# alef U+0670, Quranic marks U+06D6-06ED, tatweel U+0640, the lone hamzas ء U+0621 and
# ٴ U+0674, and the invisible and bidi characters. NFKD has already split the hamza or
# madda off أ إ آ ؤ ئ ۀ ۂ, so removing the marks folds them to ا ا ا و ي ە ہ: spellings
# with and without hamza are the commonest variant between registries (احمد/أحمد,
# مسؤول/مسئول), so carriers become their base letter and a lone hamza goes.
_REMOVED: Final = [
    cp
    for cp in _ranges((0x0300, 0x036F), (0x0610, 0x061A), (0x064B, 0x065F), (0x06D6, 0x06ED))
    if cp != 0x0654
] + [0x0621, 0x0640, 0x0670, 0x0674, *map(ord, _BIDI | _INVISIBLE)]
# Letter folds. Kurdish and Persian keyboards type their own code points for k, y, h,
# o, r, l. گ (U+06AF, g) stays: in Iraqi names it is a letter of its own (گاطع is not
# كاطع), as are پ چ ژ ڤ. Dashes and typographic apostrophes (phones "smarten" ') fold
# to ASCII; dotless ı (Turkmen names in Latin script) folds to i.
_FOLD: Final = {
    "\u0671": "\u0627",  # ٱ -> ا (alef wasla has no decomposition)
    "\u0629": "\u0647",  # ة -> ه
    "\u0649": "\u064a",  # ى -> ي
    **dict.fromkeys("\u06a9\u06aa", "\u0643"),  # ک ڪ -> ك
    **dict.fromkeys("\u06cc\u06ce\u06d0", "\u064a"),  # ی ێ ې -> ي
    **dict.fromkeys("\u06d5\u06c1\u06be", "\u0647"),  # ە ہ ھ -> ه
    **dict.fromkeys("\u06c6\u06c7", "\u0648"),  # ۆ ۇ -> و
    "\u0695": "\u0631",  # ڕ -> ر
    "\u06b5": "\u0644",  # ڵ -> ل
    **dict.fromkeys(_DASHES, "-"),
    **dict.fromkeys("\u2018\u2019\u02bc", "'"),
    "\u0131": "i",
}
_TABLE: Final = {**dict.fromkeys(_REMOVED), **{ord(k): v for k, v in _FOLD.items()}}
# ئ (NFKD: ي + U+0654) at the start of a word is the seat Kurdish spelling puts before
# an initial vowel (ئازاد, ئارام, ئاکۆ); Arabic never starts a word with it and writes
# أ/آ/ا there. It becomes ا (ئا: one ا), so ئازاد = آزاد = ازاد; elsewhere ئ is ي.
_SEAT: Final = re.compile(
    "(?<![^" + re.escape("".join(sorted(_WHITESPACE))) + "'-])\u064a\u0654\u0627?"
)

#: Letters a normalized name may contain: the 28 Arabic letters (after folding), پ چ ژ
#: ڤ گ, and ASCII a-z; plus space, hyphen-minus and apostrophe. An explicit list, not
#: "Unicode letters", so that implementations on other Unicode versions agree.
_ARABIC: Final = frozenset(
    map(chr, [0x0627, 0x0628, *range(0x062A, 0x063B), *range(0x0641, 0x0649), 0x064A])
) | frozenset("\u067e\u0686\u0698\u06a4\u06af")
_ALLOWED: Final = _ARABIC | frozenset("abcdefghijklmnopqrstuvwxyz -'\u0654") | _WHITESPACE
_NAME_SEPARATORS: Final = str.maketrans("", "", " -'")


def _fail(code: ErrorCode, message: str) -> NoReturn:
    # ``from None``: no chained exception may carry the input into a traceback.
    raise LocalProtocolError(message, code=code) from None


def _require_str(value: object, what: str) -> str:
    if type(value) is not str:
        _fail(ErrorCode.WRONG_TYPE, f"{what}: expected str, got {type(value).__name__}")
    return value


def normalize_national_id(raw: str) -> str:
    """Return the 12 ASCII digits of an Iraqi National Card number as typed.

    ASCII, Arabic-Indic (U+0660-0669) and Persian (U+06F0-06F9) digits are accepted,
    mixed freely; whitespace, dashes, bidi marks and zero-width characters are ignored.

    Raises:
        LocalProtocolError: ``BAD_NATIONAL_ID`` for any other character, a digit count
            other than 12, or one digit repeated 12 times (a placeholder staff type
            when the card is missing, which would merge unrelated households);
            ``WRONG_TYPE`` if ``raw`` is not a str.
    """
    digits = []
    for char in _require_str(raw, "national ID"):
        if char in _DIGITS:
            digits.append(_DIGITS[char])
        elif char not in _ID_IGNORED:
            _fail(
                ErrorCode.BAD_NATIONAL_ID, "contains a character other than digits, spaces, dashes"
            )
    if len(digits) != NATIONAL_ID_DIGITS:
        _fail(ErrorCode.BAD_NATIONAL_ID, f"{len(digits)} digits, need {NATIONAL_ID_DIGITS}")
    if len(set(digits)) == 1:
        _fail(ErrorCode.BAD_NATIONAL_ID, "a placeholder, not a card number")
    return "".join(digits)


def national_id_input(raw: str) -> bytes:
    """Return the strong input ``IQ-NID:`` + 12 ASCII digits (SPEC §14.2).

    Raises:
        LocalProtocolError: as :func:`normalize_national_id`.
    """
    return NATIONAL_ID_PREFIX + normalize_national_id(raw).encode("ascii")


def normalize_arabic(text: str) -> str:
    """Return a name in the one spelling that every keyboard's variant maps to.

    Steps (SPEC §14.3): NFKD; full case folding; remove marks, tatweel, hamza and
    invisible characters; fold letter variants; check every character is an allowed
    letter, whitespace, ``-`` or ``'``; collapse whitespace runs to one space and strip.
    Idempotent: the result contains only allowed characters, which no step changes.

    Raises:
        LocalProtocolError: ``BAD_NAME`` for a digit, punctuation, a symbol or a
            letter outside the allowed Arabic and Latin letters; ``WRONG_TYPE`` if
            ``text`` is not a str.
    """
    return _normalize(_require_str(text, "name"), "name")


def _normalize(text: str, what: str) -> str:
    folded = unicodedata.normalize("NFKD", text).casefold().translate(_TABLE)
    for char in folded:
        if char not in _ALLOWED:
            _fail(ErrorCode.BAD_NAME, f"{what}: contains {_describe(char)}")
    seated = _SEAT.sub("\u0627", folded).replace("\u0654", "")
    return " ".join(seated.split())  # after the check: split() also cuts at U+001C-1F


def _describe(char: str) -> str:
    category = unicodedata.category(char)
    if category[0] == "N":
        return "a digit"
    if category[0] in "PS":
        return "punctuation or a symbol"
    if category[0] in "LM":
        return "a letter outside the Arabic and Latin alphabets"
    return "a control, format or unassigned character"


#: What staff type when a name is not known, after normalization and with spaces
#: removed (SPEC §14.4). They are not names: two households "unknown" must not collide.
PLACEHOLDER_NAMES: Final = frozenset(
    {"مجهول", "غيرمعروف", "لايوجد", "بدون", "غيرمذكور", "unknown", "none", "na", "xxx", "x"}
)


def _field(text: str, what: str) -> str:
    # Spaces (and hyphens, apostrophes) inside a field are spelling, not structure:
    # عبد الله / عبدالله, عبد الرحمن / عبدالرحمن, ال جبوري / الجبوري must collide.
    value = _normalize(_require_str(text, what), what).translate(_NAME_SEPARATORS)
    if not value:
        _fail(ErrorCode.BAD_NAME, f"{what}: empty")
    if len(value) > MAX_FIELD_CHARS:
        _fail(ErrorCode.BAD_NAME, f"{what}: {len(value)} letters, at most {MAX_FIELD_CHARS}")
    if value in PLACEHOLDER_NAMES:
        _fail(ErrorCode.BAD_NAME, f"{what}: a placeholder, not a name")
    return value


def fallback_input(
    *, name: Sequence[str], mother_name: str, birth_year: int, governorate: str
) -> bytes:
    """Return the weak input for a household without a National Card (SPEC §14.4).

    Args:
        name: the four-part name: given name, father's, grandfather's, and the
            family or tribe name (laqab).
        mother_name: the mother's given name, optionally followed by her father's.
        birth_year: the household head's year of birth, 1900..2100.
        governorate: an OCHA P-code ``IQG01``..``IQG19``.

    Returns:
        ``IQ-FALLBACK-1:`` + UTF-8 of the seven fields joined by U+001F.

    Raises:
        LocalProtocolError: ``BAD_NAME`` for a part count other than 4 or a name field
            empty, longer than 64 letters or not letters; ``BAD_VALUE`` for the year or
            governorate; ``WRONG_TYPE`` for an argument of the wrong type.
    """
    if isinstance(name, str) or not isinstance(name, Sequence):
        _fail(ErrorCode.WRONG_TYPE, "name: expected a sequence of 4 parts")
    if len(name) != 4:
        _fail(ErrorCode.BAD_NAME, f"name: {len(name)} parts, need 4")
    parts = [_field(part, f"name part {index}") for index, part in enumerate(name, 1)]
    mother = _field(mother_name, "mother's name")
    if type(birth_year) is not int:
        _fail(ErrorCode.WRONG_TYPE, "birth year: expected int")
    if not MIN_YEAR <= birth_year <= MAX_YEAR:
        _fail(ErrorCode.BAD_VALUE, f"birth year: must be in {MIN_YEAR}..{MAX_YEAR}")
    if _GOVERNORATE.fullmatch(_require_str(governorate, "governorate")) is None:
        _fail(ErrorCode.BAD_VALUE, "governorate: must be a P-code IQG01..IQG19")
    fields = [*parts, mother, str(birth_year), governorate]
    return FALLBACK_PREFIX + _SEPARATOR.join(fields).encode("utf-8")


@dataclass(frozen=True, slots=True)
class PseudonymInput:
    """The bytes a pseudonym is computed from, and how far to trust a match on them.

    A *strong* input (``weak=False``) comes from a National Card number: equal inputs
    are the same household. A *weak* input (``weak=True``) comes from names, year and
    governorate: equal inputs only ever raise a duplicate *suggestion* for a human to
    review, never an automatic match, because two people can share all of them and one
    person's name can be spelled in ways normalization does not catch. Strong and weak
    inputs never collide: their prefixes differ (``IQ-NID:``, ``IQ-FALLBACK-1:``).

    ``data`` holds a card number or names in the clear, so it is left out of ``repr``:
    logging this value must not log PII.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` if ``data`` does not start with the prefix
            that ``weak`` calls for (a strong input must also be exactly 12 digits).
    """

    data: bytes = field(repr=False)
    weak: bool

    def __post_init__(self) -> None:
        if type(self.data) is not bytes or type(self.weak) is not bool:
            _fail(ErrorCode.WRONG_TYPE, "PseudonymInput: data must be bytes, weak a bool")
        if self.weak:
            ok = self.data.startswith(FALLBACK_PREFIX)
        else:
            digits = self.data.removeprefix(NATIONAL_ID_PREFIX)
            ok = digits != self.data and len(digits) == NATIONAL_ID_DIGITS and digits.isdigit()
        if not ok:
            _fail(ErrorCode.BAD_VALUE, "PseudonymInput: data does not match its strength")

    @classmethod
    def from_national_id(cls, raw: str) -> Self:
        """A strong input from a National Card number (see :func:`national_id_input`)."""
        return cls(national_id_input(raw), weak=False)

    @classmethod
    def from_fallback(
        cls, *, name: Sequence[str], mother_name: str, birth_year: int, governorate: str
    ) -> Self:
        """A weak input from names, year and governorate (see :func:`fallback_input`)."""
        data = fallback_input(
            name=name, mother_name=mother_name, birth_year=birth_year, governorate=governorate
        )
        return cls(data, weak=True)
