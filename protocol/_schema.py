"""Small, fast field checks and the :class:`Body` base for kind schemas (SPEC §5).

A kind's content is a frozen dataclass that checks itself in ``__post_init__`` (STYLE
§4), so the same rules hold for a body we build and for one we receive. Checks raise
:class:`LocalProtocolError`; :meth:`Body.from_content` re-raises them as
:class:`RemoteProtocolError`, because there the bytes came from outside.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NoReturn, Self, TypeVar

from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = [
    "Body",
    "Check",
    "bin_exact",
    "bin_max",
    "check_map",
    "date_str",
    "list_of",
    "one_of",
    "pattern",
    "text",
    "uint",
]

_B = TypeVar("_B", bound="type[Body]")

#: A check gets the field name (for the message) and the value; it raises or returns.
Check = Callable[[str, Any], None]


def fail(code: ErrorCode, message: str) -> NoReturn:
    raise LocalProtocolError(message, code=code)


def wrong_type(name: str, value: object, expected: str) -> NoReturn:
    """Report a type mismatch; floats and ext values get their own code."""
    if isinstance(value, float):
        fail(ErrorCode.FORBIDDEN_TYPE, f"{name}: float is not allowed")
    got = type(value).__name__
    if value is not None and not isinstance(value, (bool, int, str, bytes, list, dict)):
        fail(ErrorCode.FORBIDDEN_TYPE, f"{name}: {got} is not in the encoding profile")
    fail(ErrorCode.WRONG_TYPE, f"{name}: expected {expected}, got {got}")


def bin_exact(size: int) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not bytes:
            wrong_type(name, value, "bin")
        if len(value) != size:
            fail(ErrorCode.BAD_VALUE, f"{name}: must be {size} bytes, got {len(value)}")

    return _fast(check, f"type({{v}}) is bytes and len({{v}}) == {size}")


def bin_max(size: int) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not bytes:
            wrong_type(name, value, "bin")
        if len(value) > size:
            fail(ErrorCode.BAD_VALUE, f"{name}: longer than {size} bytes")

    return _fast(check, f"type({{v}}) is bytes and len({{v}}) <= {size}")


def uint(minimum: int, maximum: int) -> Check:
    def check(name: str, value: Any) -> None:
        if type(value) is not int:
            wrong_type(name, value, "int")
        if not minimum <= value <= maximum:
            fail(ErrorCode.BAD_VALUE, f"{name}: must be in {minimum}..{maximum}")

    return _fast(check, f"type({{v}}) is int and {minimum} <= {{v}} <= {maximum}")


def one_of(choices: Iterable[str]) -> Check:
    allowed = frozenset(choices)

    def check(name: str, value: Any) -> None:
        if type(value) is not str:
            wrong_type(name, value, "str")
        if value not in allowed:
            fail(ErrorCode.BAD_VALUE, f"{name}: {value[:40]!r} is not one of the allowed values")

    return _fast(check, "type({v}) is str and {v} in {g}", allowed)


# C0 and C1 controls; the bidirectional embedding/override/isolate controls that can
# make text display differently from what it contains (CVE-2021-42574, "Trojan Source"),
# which Arabic text never needs (the bidi algorithm orders it correctly alone); the
# line and paragraph separators U+2028/9 (a line break is LF, once); and U+FEFF (a byte
# order mark is not text). Zero-width (non-)joiners stay allowed: Kurdish and Persian
# spelling needs them. Multi-line text allows LF and TAB; UIs turn CR LF into LF.
_FORBIDDEN_SINGLE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]"
)
_FORBIDDEN_MULTI_LINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]"
)


def text(max_bytes: int, *, min_chars: int = 1, multi_line: bool = False) -> Check:
    """Human text: UTF-8 length bounded; no control or bidi-override characters."""
    forbidden = _FORBIDDEN_MULTI_LINE if multi_line else _FORBIDDEN_SINGLE_LINE

    def check(name: str, value: Any) -> None:
        if type(value) is not str:
            wrong_type(name, value, "str")
        if len(value) < min_chars or (value and value.strip() != value and not multi_line):
            fail(ErrorCode.BAD_VALUE, f"{name}: empty, or surrounded by whitespace")
        if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
            fail(ErrorCode.BAD_VALUE, f"{name}: longer than {max_bytes} UTF-8 bytes")
        if forbidden.search(value):
            fail(ErrorCode.BAD_VALUE, f"{name}: contains a control or bidi-override character")

    return check


def pattern(regex: str, description: str) -> Check:
    compiled = re.compile(regex)

    def check(name: str, value: Any) -> None:
        if type(value) is not str:
            wrong_type(name, value, "str")
        if compiled.fullmatch(value) is None:
            fail(ErrorCode.BAD_VALUE, f"{name}: must be {description}")

    return _fast(check, "type({v}) is str and {g}({v}) is not None", compiled.fullmatch)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _fast(check: Check, expression: str, constant: object = None) -> Check:
    """Note a Python expression over ``{v}`` (and one constant ``{g}``) true exactly
    when ``check`` passes, so :func:`finish` can compile a one-pass test for a kind."""
    check.fast = (expression, constant)  # type: ignore[attr-defined]
    return check


def date_str(name: str, value: Any) -> None:
    """A calendar date ``YYYY-MM-DD`` (proleptic Gregorian, years 2000-2199)."""
    if type(value) is not str:
        wrong_type(name, value, "str")
    if not _is_date(value):
        fail(ErrorCode.BAD_VALUE, f"{name}: must be a date YYYY-MM-DD in 2000..2199")


@functools.lru_cache(maxsize=4096)
def _is_date(value: str) -> bool:
    # Cached: a feed's allocations share few dates, and this is on the hot path.
    if _DATE.fullmatch(value) is None or not "2000" <= value[:4] <= "2199":
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


date_str.fast = ("type({v}) is str and {g}({v})", _is_date)  # type: ignore[attr-defined]


def list_of(
    item: Check, *, min_items: int = 0, max_items: int, sorted_unique: bool = False
) -> Check:
    """An array. ``sorted_unique`` makes a set have exactly one encoding."""

    def check(name: str, value: Any) -> None:
        if type(value) is not list:
            wrong_type(name, value, "array")
        if not min_items <= len(value) <= max_items:
            fail(ErrorCode.BAD_VALUE, f"{name}: needs {min_items}..{max_items} items")
        for index, element in enumerate(value):
            item(f"{name}[{index}]", element)
        if len(set(value)) != len(value):
            fail(ErrorCode.BAD_VALUE, f"{name}: items must be unique")
        if sorted_unique and value != sorted(value):
            fail(ErrorCode.NON_CANONICAL, f"{name}: items must be sorted")

    return check


def check_keys(
    name: str, keys: list[Any], required: tuple[str, ...], known: tuple[str, ...]
) -> None:
    """Raise unless a map's keys are str, a sorted subset of ``known``, and include
    every ``required`` one; the error names the first rule broken."""
    for key in keys:
        if type(key) is not str:
            fail(ErrorCode.FORBIDDEN_TYPE, f"{name}: map key is not a str")
    unknown = sorted(set(keys) - set(known))
    if unknown:
        fail(ErrorCode.UNKNOWN_FIELD, f"{name}: unknown field {unknown[0][:40]!r}")
    missing = [key for key in required if key not in keys]
    if missing:
        fail(ErrorCode.MISSING_FIELD, f"{name}: missing field {missing[0]!r}")
    if keys != sorted(keys):
        fail(ErrorCode.NON_CANONICAL, f"{name}: keys are not sorted by UTF-8 bytes")


def check_map(name: str, value: Any, checks: Mapping[str, Check]) -> dict[str, Any]:
    """Check a received fixed-shape map (envelope, message payload, fork proof) with
    the same rules and codes as a kind's content: every field required.

    Raises:
        RemoteProtocolError: WRONG_TYPE, UNKNOWN_FIELD, MISSING_FIELD, BAD_VALUE...
    """
    try:
        if type(value) is not dict:
            wrong_type(name, value, "map")
        known = tuple(sorted(checks))
        check_keys(name, list(value), known, known)
        for field, check in checks.items():
            check(f"{name}.{field}", value[field])
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message, code=exc.code) from None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    """Base of every kind's content. Subclasses declare fields and ``CHECKS``.

    A field whose default is ``None`` is optional: absent from the encoding when None
    (never encoded as nil, so each body has exactly one encoding).
    """

    KIND: ClassVar[str]
    CHECKS: ClassVar[Mapping[str, Check]]
    _REQUIRED: ClassVar[tuple[str, ...]]
    _REQUIRED_KEYS: ClassVar[list[str]]  # the same, as a list for a fast comparison
    _CHECKS: ClassVar[dict[str, Check]]  # CHECKS as a plain dict (faster than a proxy)
    # All fields present and valid, in one compiled expression; None if not compilable.
    _ALL_VALID: ClassVar[Callable[[dict[str, Any]], bool] | None]
    _KNOWN: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        for name, check in self.CHECKS.items():
            value = getattr(self, name)
            if value is not None or name in self._REQUIRED:
                check(name, value)

    @classmethod
    def _prepare(cls, content: dict[str, Any]) -> dict[str, Any]:
        """Turn nested received maps into their bodies; subclasses override."""
        return content

    def to_content(self) -> dict[str, Any]:
        """The content map, keys sorted, optional fields omitted when None."""
        out: dict[str, Any] = {}
        for name in self._KNOWN:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_content(cls, content: Any) -> Self:
        """Parse received content.

        Raises:
            RemoteProtocolError: with the first rule the content breaks.
        """
        return cls.build(cls.check_content(content))

    @classmethod
    def check_content(cls, content: Any) -> dict[str, Any]:
        """Check received content against the schema without building a body.

        Returns:
            The content, with nested bodies (if any) already parsed, for :meth:`build`.

        Raises:
            RemoteProtocolError: with the first rule the content breaks.
        """
        try:
            if type(content) is not dict:
                wrong_type("content", content, "map")
            keys = list(content)
            if keys == cls._REQUIRED_KEYS and cls._ALL_VALID is not None:
                if cls._ALL_VALID(content):
                    return content  # the common case: every field present and valid
            if keys != cls._REQUIRED_KEYS:  # the common case needs no further look
                check_keys(cls.KIND, keys, cls._REQUIRED, cls._KNOWN)
            content = cls._prepare(content)
            checks = cls._CHECKS
            for name, value in content.items():
                if value is None:
                    fail(ErrorCode.WRONG_TYPE, f"{cls.KIND}: {name} is nil; omit it instead")
                checks[name](name, value)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(exc.message, code=exc.code) from None
        checked: dict[str, Any] = content
        return checked

    @classmethod
    def build(cls, checked: dict[str, Any]) -> Self:
        """Build a body from content that :meth:`check_content` accepted (no re-check)."""
        body = object.__new__(cls)
        for name in cls._KNOWN:
            object.__setattr__(body, name, checked.get(name))
        return body


def finish(cls: _B) -> _B:
    """Class decorator, after ``@dataclass``: note which fields exist and are required."""
    cls._KNOWN = tuple(sorted(cls.CHECKS))
    cls._REQUIRED = tuple(sorted(f.name for f in fields(cls) if f.default is not None))
    cls._REQUIRED_KEYS = list(cls._REQUIRED)
    cls._CHECKS = dict(cls.CHECKS)
    cls._ALL_VALID = _compile_all_valid(cls)
    return cls


def _compile_all_valid(cls: type[Body]) -> Callable[[dict[str, Any]], bool] | None:
    """Compile the fields' fast expressions into one function, as ``dataclasses``
    compiles ``__init__``: about twice as fast as calling each check in turn, and this
    runs for every received entry. Only for kinds whose fields are all required and
    all have fast expressions; any False falls back to the checks, which explain."""
    if cls._REQUIRED != cls._KNOWN or cls._prepare.__func__ is not Body._prepare.__func__:  # type: ignore[attr-defined]
        return None
    terms, constants = [], {}
    for index, name in enumerate(cls._KNOWN):
        fast = getattr(cls.CHECKS[name], "fast", None)
        if fast is None:
            return None
        expression, constant = fast
        constants[f"g{index}"] = constant
        term = expression.format(v=f"c[{name!r}]", g=f"g{index}")
        terms.append(f"({term})")
    source = "def all_valid(c):\n    return " + " and ".join(terms) + "\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{cls.KIND} fast check>", "exec"), constants, namespace)
    return namespace["all_valid"]  # type: ignore[no-any-return]
