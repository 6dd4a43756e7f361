"""RFC 8941 Structured Field Values: the parser and serializer HTTP signatures need.

Only Dictionaries are parsed at the top level (``Signature-Input``, ``Signature`` and
``Content-Digest`` are all Dictionaries); members are Items or Inner Lists with
Parameters, and bare items are every RFC 8941 type: Integer, Decimal, String, Token,
Byte Sequence and Boolean. Parsing follows RFC 8941 §4.2 step by step, with two
deliberate departures, both stricter:

- a key that repeats is kept, not silently overwritten (§4.2.2 step 2.4, §4.2.3.2
  step 2.5): callers must see a second ``watan`` member or ``keyid`` and refuse it,
  because which of two a peer meant is exactly the ambiguity an attacker uses;
- a Byte Sequence must be canonical base64 with padding (§4.2.7 lets parsers accept
  neither padding nor zero pad bits), so one value has one spelling.

Every failure raises :class:`SFError`; callers translate it into a protocol error code
at their boundary (STYLE §6). Values are immutable; ``bool`` is checked before
``int`` everywhere, since in Python ``True == 1``.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BareItem",
    "InnerList",
    "Item",
    "Member",
    "Params",
    "SFError",
    "Token",
    "parse_dictionary",
    "serialize_bare",
    "serialize_dictionary",
    "serialize_inner_list",
    "serialize_item",
    "serialize_member",
]


class SFError(ValueError):
    """Text that is not a valid structured field, or a value that cannot be one."""


@dataclass(frozen=True, slots=True)
class Token:
    """An RFC 8941 Token (§3.3.4): distinct from a String, which is a plain ``str``."""

    value: str


BareItem = bool | int | decimal.Decimal | str | Token | bytes
Params = tuple[tuple[str, BareItem], ...]


@dataclass(frozen=True, slots=True)
class Item:
    value: BareItem
    params: Params = ()


@dataclass(frozen=True, slots=True)
class InnerList:
    items: tuple[Item, ...]
    params: Params = ()


Member = Item | InnerList

_LCALPHA: Final = frozenset(string.ascii_lowercase)
_ALPHA: Final = frozenset(string.ascii_letters)
_DIGIT: Final = frozenset(string.digits)
_KEY_FIRST: Final = _LCALPHA | {"*"}
_KEY: Final = _LCALPHA | _DIGIT | frozenset("_-.*")
_TOKEN_FIRST: Final = _ALPHA | {"*"}
_TOKEN: Final = _ALPHA | _DIGIT | frozenset("!#$%&'*+-.^_`|~:/")  # tchar, ":" and "/"
_B64: Final = _ALPHA | _DIGIT | frozenset("+/=")
#: RFC 8941 §3.3.1 and §3.3.2: 15 integer digits; 12 before a decimal point, 3 after.
_MAX_INTEGER: Final = 999_999_999_999_999


def _fail(message: str) -> SFError:
    return SFError(message)


class _Parser:
    """A cursor over ASCII text. ``peek()`` returns "" at the end, which is in no set."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def skip(self, chars: str) -> None:
        while not self.done() and self.text[self.pos] in chars:
            self.pos += 1

    # §4.2.2
    def dictionary(self) -> list[tuple[str, Member]]:
        members: list[tuple[str, Member]] = []
        while not self.done():
            key = self.key()
            member: Member
            if self.peek() == "=":
                self.pos += 1
                member = self.inner_list() if self.peek() == "(" else self.item()
            else:
                member = Item(True, self.params())
            members.append((key, member))
            self.skip(" \t")
            if self.done():
                break
            if self.take() != ",":
                raise _fail("expected ',' between dictionary members")
            self.skip(" \t")
            if self.done():
                raise _fail("trailing ',' in a dictionary")
        return members

    # §4.2.1.2
    def inner_list(self) -> InnerList:
        self.pos += 1  # "("
        items: list[Item] = []
        while not self.done():
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise _fail("expected ' ' or ')' in an inner list")
        raise _fail("unterminated inner list")

    # §4.2.3
    def item(self) -> Item:
        return Item(self.bare_item(), self.params())

    # §4.2.3.1
    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char in _DIGIT:
            return self.number()
        if char == '"':
            return self.string()
        if char in _TOKEN_FIRST:
            return self.token()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        raise _fail("not the start of a bare item")

    # §4.2.3.2
    def params(self) -> Params:
        params: list[tuple[str, BareItem]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            name = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params.append((name, value))
        return tuple(params)

    # §4.2.3.3
    def key(self) -> str:
        if self.peek() not in _KEY_FIRST:
            raise _fail("a key starts with a lowercase letter or '*'")
        start = self.pos
        while self.peek() in _KEY:
            self.pos += 1
        return self.text[start : self.pos]

    # §4.2.4
    def number(self) -> int | decimal.Decimal:
        negative = self.peek() == "-"
        if negative:
            self.pos += 1
        if self.peek() not in _DIGIT:
            raise _fail("a number needs a digit")
        start = self.pos
        point = -1
        while True:
            char = self.peek()
            if char in _DIGIT:
                self.pos += 1
            elif char == "." and point < 0:
                if self.pos - start > 12:
                    raise _fail("a decimal has at most 12 integer digits")
                point = self.pos
                self.pos += 1
            else:
                break
            if self.pos - start > (15 if point < 0 else 16):
                raise _fail("number too long")
        text = self.text[start : self.pos]
        if point < 0:
            return -int(text) if negative else int(text)
        if not 1 <= self.pos - point - 1 <= 3:
            raise _fail("a decimal has 1 to 3 fractional digits")
        return -decimal.Decimal(text) if negative else decimal.Decimal(text)

    # §4.2.5
    def string(self) -> str:
        self.pos += 1  # DQUOTE
        out: list[str] = []
        while not self.done():
            char = self.take()
            if char == "\\":
                char = self.take()
                if char not in ('"', "\\"):
                    raise _fail("only '\"' and '\\' may be escaped")
                out.append(char)
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise _fail("a string holds printable ASCII only")
            else:
                out.append(char)
        raise _fail("unterminated string")

    # §4.2.6
    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self.peek() in _TOKEN:
            self.pos += 1
        return Token(self.text[start : self.pos])

    # §4.2.7
    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise _fail("unterminated byte sequence")
        encoded = self.text[self.pos + 1 : end]
        self.pos = end + 1
        if not set(encoded) <= _B64:
            raise _fail("a byte sequence is base64")
        try:
            value = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise _fail("a byte sequence is base64 with padding") from None
        if base64.b64encode(value).decode("ascii") != encoded:
            raise _fail("a byte sequence is canonical base64 (pad bits zero)")
        return value

    # §4.2.8
    def boolean(self) -> bool:
        self.pos += 1  # "?"
        char = self.take()
        if char not in ("0", "1"):
            raise _fail("a boolean is ?0 or ?1")
        return char == "1"


def parse_dictionary(text: str) -> list[tuple[str, Member]]:
    """Parse a Dictionary field value (RFC 8941 §4.2, with the departures above).

    Returns:
        The members in order, duplicates included.

    Raises:
        SFError: the text is not a Dictionary (including any non-ASCII character).
    """
    if not text.isascii():
        raise _fail("a structured field is ASCII")
    parser = _Parser(text)
    parser.skip(" ")
    members = parser.dictionary()
    # dictionary() stops only at the end of the text or by raising.
    return members


def _key(name: str) -> str:
    if not name or name[0] not in _KEY_FIRST or not set(name) <= _KEY:
        raise _fail(f"not a structured field key: {name!r}")
    return name


def serialize_bare(value: BareItem) -> str:
    """RFC 8941 §4.1.3.1 (with §4.1.4 to §4.1.9).

    Raises:
        SFError: the value has no serialization (out of range, a character a String
            cannot hold, a malformed Token).
    """
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if not -_MAX_INTEGER <= value <= _MAX_INTEGER:
            raise _fail("integer out of range")
        return str(value)
    if isinstance(value, decimal.Decimal):
        rounded = value.quantize(decimal.Decimal("0.001"), rounding=decimal.ROUND_HALF_EVEN)
        if abs(rounded) >= 10**12:
            raise _fail("decimal out of range")
        whole, _, fraction = f"{rounded:f}".partition(".")
        return f"{whole}.{fraction.rstrip('0') or '0'}"
    if isinstance(value, str):
        if not all(" " <= char <= "~" for char in value):
            raise _fail("a string holds printable ASCII only")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Token):
        text = value.value
        if not text or text[0] not in _TOKEN_FIRST or not set(text) <= _TOKEN:
            raise _fail(f"not a token: {text!r}")
        return text
    return ":" + base64.b64encode(value).decode("ascii") + ":"


def _serialize_params(params: Params) -> str:
    # §4.1.1.2: a parameter whose value is Boolean true is written as its key alone.
    return "".join(
        f";{_key(name)}" if value is True else f";{_key(name)}={serialize_bare(value)}"
        for name, value in params
    )


def serialize_item(item: Item) -> str:
    """RFC 8941 §4.1.3: the bare item, then its parameters."""
    return serialize_bare(item.value) + _serialize_params(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """RFC 8941 §4.1.1.1: ``(item item ...)``, then the list's parameters."""
    return (
        "("
        + " ".join(serialize_item(i) for i in inner.items)
        + ")"
        + _serialize_params(inner.params)
    )


def serialize_member(member: Member) -> str:
    """A Dictionary member's value as it follows ``key=`` (RFC 8941 §4.1.2)."""
    if isinstance(member, InnerList):
        return serialize_inner_list(member)
    return serialize_item(member)


def serialize_dictionary(members: Sequence[tuple[str, Member]]) -> str:
    """RFC 8941 §4.1.2. A member that is Boolean true is written as its key alone."""
    out = []
    for name, member in members:
        if isinstance(member, Item) and member.value is True:
            out.append(_key(name) + _serialize_params(member.params))
        else:
            out.append(f"{_key(name)}={serialize_member(member)}")
    return ", ".join(out)
