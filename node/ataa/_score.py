"""Scoring a household under a model: the total, its need band and the breakdown."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ._facts import HouseholdFacts, Value
from ._model import NeedBand, ScoringModel

__all__ = [
    "Score",
    "ScoreLine",
    "score",
]


# --- scoring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreLine:
    """One rule's part of a score: what a UI shows to say why a household ranks here.

    Attributes:
        indicator: the rule's indicator (labels: ``model.rule(indicator)``).
        value: the indicator's value (a fact or a derived quantity), None if unknown.
        points: 0..100 before weighting.
        weighted: ``points * weight / 10`` rounded half up: this line's share of the total.
        missing: True if the value was unknown (``points`` is then the model's
            ``missing_points``).
    """

    indicator: str
    value: Value | None
    points: int
    weighted: int
    missing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """A household's need score under one model version.

    Compact, because a node scores every household it knows: the per-rule values and
    points are kept as tuples and :attr:`breakdown` builds the lines when asked.

    Attributes:
        total: 0..1000, the sum of the breakdown's ``weighted``.
        band: the need band of ``total``.
        values: per rule, in the model's order: the indicator's value, None if unknown.
        points: per rule: 0..100 before weighting.
        model: the model that produced the score (:attr:`model_id`, :attr:`model_version`).
    """

    total: int
    band: NeedBand
    values: tuple[Value | None, ...]
    points: tuple[int, ...]
    model: ScoringModel = field(repr=False)

    @property
    def model_id(self) -> str:
        """The id of the model that produced this score."""
        return self.model.id

    @property
    def model_version(self) -> int:
        """The version of the model that produced this score."""
        return self.model.version

    @property
    def breakdown(self) -> tuple[ScoreLine, ...]:
        """One line per rule, in the model's order: why the household ranks here."""
        return tuple(
            ScoreLine(
                indicator=rule.indicator,
                value=value,
                points=points,
                weighted=_weighted(points, rule.weight),
                missing=value is None,
            )
            for rule, value, points in zip(
                self.model.indicators, self.values, self.points, strict=True
            )
        )

    @property
    def missing(self) -> tuple[str, ...]:
        """The indicators the survey did not answer."""
        rules = self.model.indicators
        return tuple(
            rule.indicator for rule, v in zip(rules, self.values, strict=True) if v is None
        )


def _weighted(points: int, weight: int) -> int:
    return (points * weight + 5) // 10  # points * weight / 10, rounded half up


def score(model: ScoringModel, facts: HouseholdFacts) -> Score:
    """Score a household. Pure and deterministic; never raises for valid facts.

    Args:
        model: the scoring model (its id and version go into the score).
        facts: the household's indicator values; an unknown one earns
            ``model.missing_points`` and is reported missing.

    Returns:
        The total (0..1000), its need band and what the breakdown is built from.
    """
    values: list[Value | None] = []
    points: list[int] = []
    total = 0
    missing_points = model.missing_points
    for get, scorer, weight in model._steps:  # the hot loop: inlined, no object per rule
        value = get(facts)
        earned = missing_points if value is None else scorer(value)
        values.append(value)
        points.append(earned)
        total += (earned * weight + 5) // 10
    return Score(
        total=total,
        band=model._bands[bisect.bisect_right(model._cuts, total)].band,
        values=tuple(values),
        points=tuple(points),
        model=model,
    )
