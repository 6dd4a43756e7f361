"""Household facts: the indicator vocabulary, the facts a survey records and the
quantities derived from them."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ._errors import _bad_facts

__all__ = [
    "DEBT_RATIO_CAP",
    "DISPLACEMENTS",
    "INDICATORS",
    "SHELTERS",
    "HouseholdFacts",
    "Indicator",
    "IndicatorType",
    "Value",
]

#: Debt-to-income (percent) when there is debt and no income, and the ceiling otherwise:
#: 10,000 months of income. Higher values rank no differently and would only be noise.
DEBT_RATIO_CAP: Final = 1_000_000

# Limits on facts. They are typo guards, not statements about households: Iraqi
# households average about 6 people (CSO 2017/18, see docs/scoring.md); 100 leaves room
# for a large extended family recorded as one household.
_MAX_MEMBERS: Final = 100
_MAX_AGE: Final = 130
#: 10^12 IQD, a typo guard far above any household's monthly income or debt.
_MAX_IQD: Final = 10**12

#: What a breakdown line reports: a fact or a derived quantity, never PII.
Value = bool | int | str


# --- the indicator vocabulary ------------------------------------------------------------


class IndicatorType(enum.StrEnum):
    """What kind of value an indicator has, and so which rule kinds fit it."""

    FLAG = "flag"  # a bool
    COUNT = "count"  # a number of household members
    AMOUNT = "amount"  # another non-negative integer: an age, IQD, a ratio in percent
    CHOICE = "choice"  # one of a fixed set of strings


SHELTERS: Final = (
    "owned",
    "rented",
    "hosted",
    "informal_settlement",
    "tent",
    "unfinished_building",
    "damaged",
    "collective_centre",
)
DISPLACEMENTS: Final = ("none", "idp_in_camp", "idp_out_of_camp", "returnee", "host")


@dataclass(frozen=True, slots=True, kw_only=True)
class Indicator:
    """One name a rule may score: a :class:`HouseholdFacts` field or a derived quantity."""

    name: str
    type: IndicatorType
    derived: bool
    doc: str
    choices: tuple[str, ...] = ()


def _fact(name: str, type_: IndicatorType, doc: str, choices: tuple[str, ...] = ()) -> Indicator:
    return Indicator(name=name, type=type_, derived=False, doc=doc, choices=choices)


def _derived(name: str, type_: IndicatorType, doc: str) -> Indicator:
    return Indicator(name=name, type=type_, derived=True, doc=doc)


_F, _C, _A = IndicatorType.FLAG, IndicatorType.COUNT, IndicatorType.AMOUNT
#: The vocabulary, in the order of the survey.
INDICATORS: Final[Mapping[str, Indicator]] = MappingProxyType(
    {
        i.name: i
        for i in (
            _fact("head_female", _F, "the head of household is a woman"),
            _fact("head_age", _A, "age of the head of household, in years"),
            _fact("members", _C, "people in the household (at least 1)"),
            _fact("children_under_5", _C, "members aged 0-4"),
            _fact("children_5_17", _C, "members aged 5-17"),
            _fact("elderly_60_plus", _C, "members aged 60 or more"),
            _fact("members_with_disability", _C, "members with a disability"),
            _fact("members_with_chronic_illness", _C, "members with a chronic illness"),
            _fact("children_out_of_school", _C, "members aged 5-17 not attending school"),
            _fact("monthly_income_iqd", _A, "household income per month, IQD"),
            _fact("debt_iqd", _A, "household debt outstanding, IQD"),
            _fact("shelter", IndicatorType.CHOICE, "type of shelter", SHELTERS),
            _fact("displacement", IndicatorType.CHOICE, "displacement status", DISPLACEMENTS),
            _derived(
                "female_headed_with_children",
                _F,
                "head_female and at least one member under 18",
            ),
            _derived(
                "dependency_ratio_pct",
                _A,
                "100 * (children_under_5 + children_5_17 + elderly_60_plus)"
                " // max(1, members - those dependents)",
            ),
            _derived("income_per_capita_iqd", _A, "monthly_income_iqd // members, IQD per person"),
            _derived(
                "debt_to_income_pct",
                _A,
                f"100 * debt_iqd // monthly_income_iqd, at most {DEBT_RATIO_CAP}"
                f" ({DEBT_RATIO_CAP} when there is debt and no income)",
            ),
        )
    }
)


# --- household facts ---------------------------------------------------------------------

_COUNTS: Final = (
    "children_under_5",
    "children_5_17",
    "elderly_60_plus",
    "members_with_disability",
    "members_with_chronic_illness",
    "children_out_of_school",
)
_AGE_GROUPS: Final = ("children_under_5", "children_5_17", "elderly_60_plus")


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdFacts:
    """What a survey knows about a household's need; ``None`` means unknown.

    Only indicator values: no name, ID, phone, address or diagnosis. Counts are of
    household members and may not exceed ``members``; ``children_out_of_school`` may not
    exceed ``children_5_17``.

    Raises:
        ScoringError: BAD_FACTS, ``path`` naming the field, if a value has the wrong
            type, is out of range, or contradicts another.
    """

    head_female: bool | None = None
    head_age: int | None = None
    members: int | None = None
    children_under_5: int | None = None
    children_5_17: int | None = None
    elderly_60_plus: int | None = None
    members_with_disability: int | None = None
    members_with_chronic_illness: int | None = None
    children_out_of_school: int | None = None
    monthly_income_iqd: int | None = None
    debt_iqd: int | None = None
    shelter: str | None = None
    displacement: str | None = None

    def __post_init__(self) -> None:
        if self.head_female is not None and type(self.head_female) is not bool:
            raise _bad_facts("head_female", "must be true, false or unknown")
        _check_fact_int(self.head_age, "head_age", 0, _MAX_AGE)
        _check_fact_int(self.members, "members", 1, _MAX_MEMBERS)
        for name in _COUNTS:
            _check_fact_int(getattr(self, name), name, 0, _MAX_MEMBERS)
        _check_fact_int(self.monthly_income_iqd, "monthly_income_iqd", 0, _MAX_IQD)
        _check_fact_int(self.debt_iqd, "debt_iqd", 0, _MAX_IQD)
        _check_fact_choice(self.shelter, "shelter", SHELTERS)
        _check_fact_choice(self.displacement, "displacement", DISPLACEMENTS)
        self._check_consistent()

    def _check_consistent(self) -> None:
        if self.members is not None:
            for name in _COUNTS:
                count = getattr(self, name)
                if count is not None and count > self.members:
                    raise _bad_facts(name, f"{count} is more than the {self.members} members")
            grouped = sum(getattr(self, name) or 0 for name in _AGE_GROUPS)
            if grouped > self.members:
                raise _bad_facts(
                    "members",
                    f"{self.members} is fewer than the {grouped} children and elderly",
                )
        school, aged = self.children_out_of_school, self.children_5_17
        if school is not None and aged is not None and school > aged:
            raise _bad_facts(
                "children_out_of_school", f"{school} is more than the {aged} children aged 5-17"
            )


def _check_fact_int(value: object, name: str, low: int, high: int) -> None:
    if value is not None and (type(value) is not int or not low <= value <= high):
        raise _bad_facts(name, f"must be an integer {low}..{high} or unknown")


def _check_fact_choice(value: object, name: str, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise _bad_facts(name, f"must be one of {', '.join(allowed)} or unknown")


def _female_headed_with_children(facts: HouseholdFacts) -> bool | None:
    if facts.head_female is None or not facts.head_female:
        return facts.head_female
    young, school_age = facts.children_under_5, facts.children_5_17
    if young or school_age:
        return True
    return None if young is None or school_age is None else False


def _dependency_ratio_pct(facts: HouseholdFacts) -> int | None:
    members, young, school_age, old = (
        facts.members,
        facts.children_under_5,
        facts.children_5_17,
        facts.elderly_60_plus,
    )
    if members is None or young is None or school_age is None or old is None:
        return None
    dependents = young + school_age + old
    # floor(100 * r) < n exactly when r < n for an integer threshold n: bands stay exact.
    return dependents * 100 // max(1, members - dependents)


def _income_per_capita_iqd(facts: HouseholdFacts) -> int | None:
    if facts.monthly_income_iqd is None or facts.members is None:
        return None
    return facts.monthly_income_iqd // facts.members


def _debt_to_income_pct(facts: HouseholdFacts) -> int | None:
    debt, income = facts.debt_iqd, facts.monthly_income_iqd
    if debt is None or income is None:
        return None
    if income == 0:
        return DEBT_RATIO_CAP if debt else 0
    return min(DEBT_RATIO_CAP, debt * 100 // income)


_Getter = Callable[[HouseholdFacts], Value | None]
_GETTERS: Final[Mapping[str, _Getter]] = MappingProxyType(
    {
        **{name: operator.attrgetter(name) for name, i in INDICATORS.items() if not i.derived},
        "female_headed_with_children": _female_headed_with_children,
        "dependency_ratio_pct": _dependency_ratio_pct,
        "income_per_capita_iqd": _income_per_capita_iqd,
        "debt_to_income_pct": _debt_to_income_pct,
    }
)
