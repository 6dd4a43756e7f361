"""Blind indexes: exact search over encrypted households without storing what is searched.

A blind index is a keyed hash of a normalized value (CipherSweet's "blind index"
pattern): equal values give equal tokens, so the database can find a national ID, a
phone or a name by equality, while the table holds no value and a copy of it (a
backup, a stolen disk) cannot be brute-forced over the 12-digit ID space without the
key. The key is derived from the node's encryption secret with a fixed label::

    key   = BLAKE2b-256(encryption_secret, person="watan-blind-key")
    token = BLAKE2b-256(kind || 0x1f || UTF-8(value), key=key, person="watan-blind-v1")

(the same construction as the pseudonym cache key in ``node.oracle._client``, under
another label, so the two never coincide). ``kind`` separates the token families, so
a name that happens to equal a phone's digits never matches it. Data-key rotation does
not change blind tokens: they depend on the identity only.

What the tokens still reveal to whoever reads the tables: which households share a
value (two rows with one phone token share a phone), and how common a name token is.
That is inherent in any equality index and is what duplicate suggestions need.

Names are folded with :func:`protocol.oprf.normalize_arabic` (hamza carriers to their
letter, ة to ه, ى to ي, Kurdish and Persian letter forms, harakat and tatweel removed)
so that أحمد finds احمد and فاطمة finds فاطمه. A name part gives one *word* token per
word and one for the part with its spaces removed, so عبد الله, عبدالله and a search
for عبد or الله all match. Search is by whole words: no prefixes (a hash has none).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import protocol
from node.identity import Identity
from protocol import oprf

from ._record import HouseholdRecord, RecordError, normalize_phone

__all__ = ["BlindIndex", "NameTokens", "SearchQuery"]

_PERSON: Final = b"watan-blind-v1"
_KEY_PERSON: Final = b"watan-blind-key"
_SEPARATOR: Final = b"\x1f"
#: Token kinds (see the module docstring); never reuse a value for another meaning.
_NID: Final = b"nid"
_PHONE: Final = b"phone"
_WORD: Final = b"word"  # any word or whole part of the head's name or the mother's
_PART: Final = b"part"  # one of the head's four name parts, spaces removed
_PAIR: Final = b"pair"  # given name and father's name, in order
_MOTHER_YEAR: Final = b"mother-year"  # mother's name with the head's birth year

#: What staff type when a name is not known (SPEC §14.4's list, spaces removed): not
#: a name, so no token, or every "unknown" would look like a duplicate of every other.
_PLACEHOLDERS: Final = frozenset(
    {"مجهول", "غيرمعروف", "لايوجد", "بدون", "غيرمذكور", "unknown", "none", "na", "xxx", "x"}
)
_WORD_BREAK: Final = re.compile(r"[\s\-']+")
#: Most words a search uses; a longer query is a pasted paragraph, not a name.
_MAX_QUERY_WORDS: Final = 8


def _fold(text: str) -> str:
    """``normalize_arabic``, after dropping the characters it refuses (digits,
    punctuation, letters outside its alphabet): a name part like "م." still indexes."""
    try:
        return oprf.normalize_arabic(text)
    except protocol.ProtocolError:
        pass
    kept = []
    for char in text:
        try:
            oprf.normalize_arabic(char)
        except protocol.ProtocolError:
            kept.append(" ")
        else:
            kept.append(char)
    try:
        return oprf.normalize_arabic("".join(kept))
    except protocol.ProtocolError:  # pragma: no cover - every kept character passed
        return ""


def _words(text: str) -> list[str]:
    return [word for word in _WORD_BREAK.split(_fold(text)) if word]


def _joined(text: str) -> str:
    return "".join(_words(text))


@dataclass(frozen=True, slots=True, kw_only=True)
class NameTokens:
    """The name tokens of one household.

    Attributes:
        words: every search token (``ataa_name_index`` rows), including the others
            below.
        parts: the head's name parts (for the duplicate rule).
        pair: given + father's name, in order; None if either is a placeholder.
        mother_year: the mother's name with the head's birth year; None without a
            birth year.
    """

    words: frozenset[bytes]
    parts: frozenset[bytes]
    pair: bytes | None
    mother_year: bytes | None

    @property
    def rows(self) -> frozenset[bytes]:
        """Every token to store for the household."""
        extra = {t for t in (self.pair, self.mother_year) if t is not None}
        return self.words | self.parts | extra


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchQuery:
    """A typed query, classified.

    Attributes:
        nid: the national ID token, if the query reads as a National Card number.
        phone: the phone token, if it reads as an Iraqi mobile number.
        words: name tokens that must all match (empty for a number).
        pair: the given + father's token of the first two words: households whose
            name starts that way rank first.
    """

    nid: bytes | None = None
    phone: bytes | None = None
    words: tuple[bytes, ...] = ()
    pair: bytes | None = None

    @property
    def empty(self) -> bool:
        return self.nid is None and self.phone is None and not self.words


class BlindIndex:
    """Keyed tokens for one node (keyed by its identity).

    Args:
        identity: the node's keys; the index key is derived from its encryption
            secret (see the module docstring).
    """

    def __init__(self, identity: Identity) -> None:
        self._key = hashlib.blake2b(
            identity.encryption_secret, digest_size=32, person=_KEY_PERSON
        ).digest()

    def __repr__(self) -> str:  # never the key
        return "BlindIndex()"

    def _token(self, kind: bytes, *values: str) -> bytes:
        data = kind + _SEPARATOR + _SEPARATOR.join(v.encode("utf-8") for v in values)
        return hashlib.blake2b(data, key=self._key, digest_size=32, person=_PERSON).digest()

    def national_id(self, national_id: str) -> bytes:
        """The token of a national ID (normalized 12 digits, as in the record)."""
        return self._token(_NID, national_id)

    def phone(self, phone: str) -> bytes:
        """The token of a phone number (E.164, as in the record)."""
        return self._token(_PHONE, phone)

    def word(self, word: str) -> bytes:
        """The search token of one already-folded word."""
        return self._token(_WORD, word)

    def names(self, record: HouseholdRecord) -> NameTokens:
        """Every name token of ``record``."""
        words: set[bytes] = set()
        for text in (*record.name, record.mother_name):
            words.update(self.word(word) for word in _real([*_words(text), _joined(text)]))
        parts = {self._token(_PART, joined) for joined in _real(map(_joined, record.name))}
        given, father = _joined(record.name[0]), _joined(record.name[1])
        pair = self._token(_PAIR, given, father) if len(_real([given, father])) == 2 else None
        mother = _joined(record.mother_name)
        mother_year = None
        if record.birth_year is not None and _real([mother]):
            mother_year = self._token(_MOTHER_YEAR, mother, str(record.birth_year))
        return NameTokens(
            words=frozenset(words), parts=frozenset(parts), pair=pair, mother_year=mother_year
        )

    def query(self, text: str) -> SearchQuery:
        """Classify what staff typed into a search box.

        Text with a digit is a number: a national ID (12 digits, any digit script,
        spaces and dashes ignored) and/or an Iraqi mobile number (07XX..., +964...,
        00964...); both are tried, as ``964770123456`` reads either way. Anything
        else is a name: its words (up to eight), all of which must match.
        """
        if any(char.isdigit() for char in text):
            nid = phone = None
            try:
                nid = self.national_id(oprf.normalize_national_id(text))
            except protocol.ProtocolError:
                pass
            try:
                phone = self.phone(normalize_phone(text))
            except RecordError:
                pass
            return SearchQuery(nid=nid, phone=phone)
        words = list(dict.fromkeys(_words(text)))[:_MAX_QUERY_WORDS]
        pair = self._token(_PAIR, words[0], words[1]) if len(words) >= 2 else None
        return SearchQuery(words=tuple(self.word(w) for w in words), pair=pair)


def _real(words: Iterable[str]) -> list[str]:
    """The words of ``words`` that are names (not empty, not a placeholder)."""
    return [word for word in words if word and word not in _PLACEHOLDERS]
