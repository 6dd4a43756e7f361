"""Need scoring: a transparent, versioned points model that ranks households by need.

A :class:`ScoringModel` is data, kept as canonical JSON (``docs/scoring.md``). Each rule
turns one indicator of a household into 0..100 **points**: a ``flag`` gives its points
when true, a ``count`` gives points per unit up to a cap, ``bands`` give the points of
the first threshold the value is below, a ``choice`` gives the points listed for the
value. Rule weights are integer percents that sum to 100.

Scale (exact integer arithmetic; no floats anywhere):

- a rule's **weighted points** are ``points * weight / 10`` rounded half up, so a rule
  weighing ``w`` percent adds at most ``10 * w``;
- the **total** is the sum of the weighted points: 0..1000. 1000 would be a household at
  100 points on every rule; 0 one with no need the model can see;
- the model's ``need_bands`` cut the total into critical / high / moderate / low.

An unknown fact (``None``) never raises: the rule earns the model's ``missing_points``
(0 in the default model) and its breakdown line says ``missing=True``, so a case worker
sees what the survey still lacks.

A score names the model ``id`` and ``version`` that produced it. A coordinator who
changes the model publishes a new version; :func:`model_digest` lets every node check
that "iraq-default v1" is byte for byte the same model everywhere.
"""

from __future__ import annotations

import bisect
import enum
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Final

from ._errors import _bad_model
from ._facts import _GETTERS, _MAX_IQD, INDICATORS, IndicatorType, _Getter

__all__ = [
    "SCALE_MAX",
    "BandsRule",
    "ChoiceRule",
    "CountRule",
    "FlagRule",
    "NeedBand",
    "NeedBandRule",
    "Rule",
    "RuleKind",
    "ScoringModel",
    "Threshold",
]

#: The highest possible total: every rule at 100 points, weights summing to 100 percent.
SCALE_MAX: Final = 1000
_MAX_POINTS: Final = 100
_MAX_BANDS: Final = 20  # a UI must be able to show every band of a rule at once
_MAX_LABEL: Final = 200
_MAX_NOTE: Final = 2000
_MAX_VERSION: Final = 2**31 - 1
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAX_SLUG: Final = 64


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- rule kinds --------------------------------------------------------------------------


class RuleKind(enum.StrEnum):
    """How a rule turns a value into points."""

    FLAG = "flag"
    COUNT = "count"
    BANDS = "bands"
    CHOICE = "choice"


_FITS: Final[Mapping[IndicatorType, tuple[RuleKind, ...]]] = MappingProxyType(
    {
        IndicatorType.FLAG: (RuleKind.FLAG,),
        IndicatorType.COUNT: (RuleKind.COUNT, RuleKind.BANDS),
        IndicatorType.AMOUNT: (RuleKind.BANDS,),
        IndicatorType.CHOICE: (RuleKind.CHOICE,),
    }
)


# --- model values ------------------------------------------------------------------------


def _check_int(value: object, path: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise _bad_model(path, f"must be an integer {low}..{high}")


def _check_text(value: object, path: str, *, limit: int, empty_ok: bool = False) -> None:
    if type(value) is not str:
        raise _bad_model(path, "must be a string")
    if not empty_ok and not value.strip():
        raise _bad_model(path, "must not be empty")
    if len(value) > limit:
        raise _bad_model(path, f"must be at most {limit} characters")
    if not unicodedata.is_normalized("NFC", value):
        # One text, one encoding: otherwise two equal-looking models differ in digest.
        raise _bad_model(path, "must be NFC-normalized Unicode")


@dataclass(frozen=True, slots=True, kw_only=True)
class _RuleBase:
    """Fields every rule has. A rule scores one indicator, 0..100 points."""

    kind: ClassVar[RuleKind]
    indicator: str
    weight: int  # percent; the model's weights sum to 100
    label_ar: str
    label_en: str
    note: str = ""  # why the rule is there, for the coordinator who adapts it

    def __post_init__(self) -> None:
        spec = INDICATORS.get(self.indicator) if type(self.indicator) is str else None
        if spec is None:
            raise _bad_model("indicator", f"unknown indicator {_show(self.indicator)}")
        allowed = _FITS[spec.type]
        if self.kind not in allowed:
            raise _bad_model(
                "kind",
                f"a {self.kind} rule does not fit {spec.name} (indicator type {spec.type});"
                f" use {' or '.join(allowed)}",
            )
        _check_int(self.weight, "weight", 1, 100)
        _check_text(self.label_ar, "label_ar", limit=_MAX_LABEL)
        _check_text(self.label_en, "label_en", limit=_MAX_LABEL)
        _check_text(self.note, "note", limit=_MAX_NOTE, empty_ok=True)
        self._check()

    def _check(self) -> None:
        raise NotImplementedError

    def _json(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator,
            "kind": str(self.kind),
            "weight": self.weight,
            "label_ar": self.label_ar,
            "label_en": self.label_en,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagRule(_RuleBase):
    """``points`` when the indicator is true, 0 when false."""

    kind: ClassVar[RuleKind] = RuleKind.FLAG
    points: int

    def _check(self) -> None:
        _check_int(self.points, "points", 0, _MAX_POINTS)

    def scorer(self) -> Callable[[bool], int]:
        """The function from a known value to points (built once per model)."""
        points = self.points
        return lambda value: points if value else 0

    def _json(self) -> dict[str, Any]:
        return {**_RuleBase._json(self), "points": self.points}


@dataclass(frozen=True, slots=True, kw_only=True)
class CountRule(_RuleBase):
    """``points_per_unit`` for each member counted, at most ``max_points``."""

    kind: ClassVar[RuleKind] = RuleKind.COUNT
    points_per_unit: int
    max_points: int

    def _check(self) -> None:
        _check_int(self.points_per_unit, "points_per_unit", 0, _MAX_POINTS)
        _check_int(self.max_points, "max_points", 0, _MAX_POINTS)

    def scorer(self) -> Callable[[int], int]:
        """The function from a known value to points (built once per model)."""
        cap, per_unit = self.max_points, self.points_per_unit
        return lambda value: min(cap, value * per_unit)

    def _json(self) -> dict[str, Any]:
        return {
            **_RuleBase._json(self),
            "points_per_unit": self.points_per_unit,
            "max_points": self.max_points,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """One band of a :class:`BandsRule`: values below ``below`` (and not below the
    previous band's) earn ``points``."""

    below: int
    points: int

    def __post_init__(self) -> None:
        _check_int(self.below, "below", 1, _MAX_IQD)
        _check_int(self.points, "points", 0, _MAX_POINTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class BandsRule(_RuleBase):
    """The points of the first band whose ``below`` the value is under; ``otherwise``
    when it is under none. ``below`` strictly increases from band to band."""

    kind: ClassVar[RuleKind] = RuleKind.BANDS
    bands: tuple[Threshold, ...]
    otherwise: int

    def _check(self) -> None:
        if type(self.bands) is not tuple or not 1 <= len(self.bands) <= _MAX_BANDS:
            raise _bad_model("bands", f"must hold 1..{_MAX_BANDS} bands")
        previous = 0
        for i, band in enumerate(self.bands):
            if type(band) is not Threshold:
                raise _bad_model(f"bands[{i}]", "must be a Threshold")
            if band.below <= previous:
                raise _bad_model(
                    f"bands[{i}].below", f"must be greater than the band before ({previous})"
                )
            previous = band.below
        _check_int(self.otherwise, "otherwise", 0, _MAX_POINTS)

    def scorer(self) -> Callable[[int], int]:
        """The function from a known value to points (built once per model)."""
        belows = tuple(band.below for band in self.bands)
        points = (*(band.points for band in self.bands), self.otherwise)
        # bisect_right finds the first band whose ``below`` is greater than the value.
        return lambda value: points[bisect.bisect_right(belows, value)]

    def _json(self) -> dict[str, Any]:
        bands = [{"below": b.below, "points": b.points} for b in self.bands]
        return {**_RuleBase._json(self), "bands": bands, "otherwise": self.otherwise}


def _choice_path(path: str, value: str) -> str:
    return f"{path}[{json.dumps(value, ensure_ascii=False)}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceRule(_RuleBase):
    """The points listed for the value; a value not listed earns 0.

    ``choices`` are ``(value, points)`` pairs; they are kept sorted by value, so two
    rules listing the same pairs in another order are equal.
    """

    kind: ClassVar[RuleKind] = RuleKind.CHOICE
    choices: tuple[tuple[str, int], ...]

    def _check(self) -> None:
        if type(self.choices) is not tuple or not self.choices:
            raise _bad_model("choices", "must hold at least one (value, points) pair")
        allowed = INDICATORS[self.indicator].choices
        for pair in self.choices:
            if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str:
                raise _bad_model("choices", "must hold (value, points) pairs")
            path = _choice_path("choices", pair[0])
            if pair[0] not in allowed:
                raise _bad_model(path, f"not a {self.indicator} value; one of {', '.join(allowed)}")
            _check_int(pair[1], path, 0, _MAX_POINTS)
        ordered = tuple(sorted(self.choices))
        if len({value for value, _ in ordered}) != len(ordered):
            raise _bad_model("choices", "lists a value twice")
        object.__setattr__(self, "choices", ordered)

    def scorer(self) -> Callable[[str], int]:
        """The function from a known value to points (built once per model)."""
        table = dict(self.choices)
        return lambda value: table.get(value, 0)

    def _json(self) -> dict[str, Any]:
        return {**_RuleBase._json(self), "choices": dict(self.choices)}


Rule = FlagRule | CountRule | BandsRule | ChoiceRule
_RULE_TYPES: Final = (FlagRule, CountRule, BandsRule, ChoiceRule)


class NeedBand(enum.StrEnum):
    """The need band of a total, from most to least needy."""

    CRITICAL = "critical"
    HIGH = "high"
    MODERATE = "moderate"
    LOW = "low"


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedBandRule:
    """Totals from ``min_score`` up (to the next band's) fall in ``band``."""

    band: NeedBand
    min_score: int
    label_ar: str
    label_en: str

    def __post_init__(self) -> None:
        if self.band not in tuple(NeedBand):
            raise _bad_model("band", f"must be one of {', '.join(NeedBand)}")
        object.__setattr__(self, "band", NeedBand(self.band))
        _check_int(self.min_score, "min_score", 0, SCALE_MAX)
        _check_text(self.label_ar, "label_ar", limit=_MAX_LABEL)
        _check_text(self.label_en, "label_en", limit=_MAX_LABEL)


#: One compiled rule: (getter, points function, weight).
_Step = tuple[_Getter, Callable[[Any], int], int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringModel:
    """A need-scoring model: rules over the indicator vocabulary, and need bands.

    Self-checking: constructing one that breaks a rule raises ScoringError(BAD_MODEL)
    whose ``path`` is the JSON path of the offending value.

    Attributes:
        id: a slug (``iraq-default``); with ``version`` it names the model in scores.
        version: 1, 2, ... A changed model gets a new version; scores keep the old one.
        indicators: at most one rule per indicator; weights sum to 100.
        need_bands: critical, high, moderate, low, in that order, ``min_score``
            decreasing, low from 0, so every total has a band.
        missing_points: what a rule earns when its indicator is unknown (0..100).
    """

    id: str
    version: int
    name_ar: str
    name_en: str
    indicators: tuple[Rule, ...]
    need_bands: tuple[NeedBandRule, ...]
    missing_points: int = 0
    note: str = ""
    _steps: tuple[_Step, ...] = field(init=False, repr=False, compare=False)
    _cuts: tuple[int, ...] = field(init=False, repr=False, compare=False)  # ascending
    _bands: tuple[NeedBandRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.id) is not str or len(self.id) > _MAX_SLUG or not _SLUG.fullmatch(self.id):
            raise _bad_model("id", f"must be a slug: a-z, 0-9 and single '-', 1..{_MAX_SLUG}")
        _check_int(self.version, "version", 1, _MAX_VERSION)
        _check_text(self.name_ar, "name_ar", limit=_MAX_LABEL)
        _check_text(self.name_en, "name_en", limit=_MAX_LABEL)
        _check_text(self.note, "note", limit=_MAX_NOTE, empty_ok=True)
        _check_int(self.missing_points, "missing_points", 0, _MAX_POINTS)
        self._check_rules()
        self._check_need_bands()
        steps = tuple((_GETTERS[r.indicator], r.scorer(), r.weight) for r in self.indicators)
        object.__setattr__(self, "_steps", steps)
        ascending = tuple(reversed(self.need_bands))
        object.__setattr__(self, "_cuts", tuple(b.min_score for b in ascending))
        # _bands[bisect_right(_cuts, total)] is the band of total; index 0 (a total below
        # 0, which score() never makes) is the low band again.
        object.__setattr__(self, "_bands", (ascending[0], *ascending))

    def _check_rules(self) -> None:
        if type(self.indicators) is not tuple or not self.indicators:
            raise _bad_model("indicators", "must hold at least one rule")
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.indicators):
            if type(rule) not in _RULE_TYPES:
                raise _bad_model(
                    f"indicators[{i}]", "must be a FlagRule, CountRule, BandsRule or ChoiceRule"
                )
            if rule.indicator in seen:
                raise _bad_model(
                    f"indicators[{i}].indicator",
                    f"{rule.indicator} already has a rule (indicators[{seen[rule.indicator]}])",
                )
            seen[rule.indicator] = i
        weights = sum(rule.weight for rule in self.indicators)
        if weights != 100:
            raise _bad_model("indicators", f"the weights must sum to 100, not {weights}")

    def _check_need_bands(self) -> None:
        if type(self.need_bands) is not tuple or len(self.need_bands) != len(NeedBand):
            raise _bad_model("need_bands", f"must hold {len(NeedBand)} bands")
        previous = SCALE_MAX + 1
        for i, (rule, expected) in enumerate(zip(self.need_bands, NeedBand, strict=True)):
            if type(rule) is not NeedBandRule or rule.band != expected:
                raise _bad_model(
                    f"need_bands[{i}]", f"must be the {expected} band ({', '.join(NeedBand)})"
                )
            if rule.min_score >= previous:
                raise _bad_model(
                    f"need_bands[{i}].min_score", f"must be below the band before ({previous})"
                )
            previous = rule.min_score
        if previous != 0:
            raise _bad_model("need_bands[3].min_score", "must be 0, so every total has a band")

    def rule(self, indicator: str) -> Rule | None:
        """The rule scoring ``indicator``, if the model has one."""
        return next((r for r in self.indicators if r.indicator == indicator), None)

    def band_of(self, total: int) -> NeedBandRule:
        """The need band a total falls in (below 0: low; above 1000: critical)."""
        return self._bands[bisect.bisect_right(self._cuts, total)]
