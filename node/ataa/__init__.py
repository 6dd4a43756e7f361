"""Ata'a (عطاء), NGO aid management: need scoring so far.

>>> model = default_model()
>>> result = score(model, HouseholdFacts(members=5, monthly_income_iqd=0, shelter="tent"))
>>> result.total, result.band, [(line.indicator, line.weighted) for line in result.breakdown]

Every failure is a :class:`ScoringError` with a :class:`ScoringErrorCode`. The model
format, the scale and the default model are described in ``docs/scoring.md``.
"""

from ._errors import ScoringError, ScoringErrorCode
from ._facts import (
    DEBT_RATIO_CAP,
    DISPLACEMENTS,
    INDICATORS,
    SHELTERS,
    HouseholdFacts,
    Indicator,
    IndicatorType,
    Value,
)
from ._model import (
    SCALE_MAX,
    BandsRule,
    ChoiceRule,
    CountRule,
    FlagRule,
    NeedBand,
    NeedBandRule,
    Rule,
    RuleKind,
    ScoringModel,
    Threshold,
)
from ._model_json import (
    FORMAT,
    MAX_MODEL_CHARS,
    default_model,
    dump_model,
    load_model,
    model_digest,
)
from ._score import Score, ScoreLine, score

__all__ = [
    "DEBT_RATIO_CAP",
    "DISPLACEMENTS",
    "FORMAT",
    "INDICATORS",
    "MAX_MODEL_CHARS",
    "SCALE_MAX",
    "SHELTERS",
    "BandsRule",
    "ChoiceRule",
    "CountRule",
    "FlagRule",
    "HouseholdFacts",
    "Indicator",
    "IndicatorType",
    "NeedBand",
    "NeedBandRule",
    "Rule",
    "RuleKind",
    "Score",
    "ScoreLine",
    "ScoringError",
    "ScoringErrorCode",
    "ScoringModel",
    "Threshold",
    "Value",
    "default_model",
    "dump_model",
    "load_model",
    "model_digest",
    "score",
]
