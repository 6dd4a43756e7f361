"""Need scoring (``node.ataa``): rule kinds, the scale, the default model, JSON checking
with exact paths, canonical form and digest, and properties over generated households
and models."""

from __future__ import annotations

import copy
import dataclasses
import json
import unicodedata
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.ataa import (
    DEBT_RATIO_CAP,
    DISPLACEMENTS,
    FORMAT,
    INDICATORS,
    MAX_MODEL_CHARS,
    SCALE_MAX,
    SHELTERS,
    BandsRule,
    ChoiceRule,
    CountRule,
    FlagRule,
    HouseholdFacts,
    IndicatorType,
    NeedBand,
    NeedBandRule,
    Rule,
    ScoringError,
    ScoringErrorCode,
    ScoringModel,
    Threshold,
    default_model,
    dump_model,
    load_model,
    model_digest,
    score,
)

PROPERTY = settings(max_examples=200, deadline=None)
DEFAULT_JSON = Path(__file__).parents[2] / "node" / "ataa" / "scoring_default.json"
#: Pinned: a change to the default model must be deliberate (and get a new version).
DEFAULT_DIGEST = "413e42ab2d916f9472c71260b3868e4db5e8185bcf8a04dbf81526dcfd9343a5"

LABELS = {"label_ar": "تسمية", "label_en": "Label"}
NEED_BANDS: list[dict[str, Any]] = [
    {"band": "critical", "min_score": 600, "label_ar": "حرجة", "label_en": "Critical"},
    {"band": "high", "min_score": 400, "label_ar": "عالية", "label_en": "High"},
    {"band": "moderate", "min_score": 200, "label_ar": "متوسطة", "label_en": "Moderate"},
    {"band": "low", "min_score": 0, "label_ar": "منخفضة", "label_en": "Low"},
]
#: One rule of each kind; weights 20 + 30 + 35 + 15 = 100.
SMALL: dict[str, Any] = {
    "format": FORMAT,
    "id": "test-model",
    "version": 3,
    "name_ar": "نموذج اختبار",
    "name_en": "Test model",
    "indicators": [
        {"indicator": "head_female", "kind": "flag", "weight": 20, "points": 100, **LABELS},
        {
            "indicator": "members_with_disability",
            "kind": "count",
            "weight": 30,
            "points_per_unit": 40,
            "max_points": 100,
            **LABELS,
        },
        {
            "indicator": "income_per_capita_iqd",
            "kind": "bands",
            "weight": 35,
            "bands": [{"below": 50_000, "points": 100}, {"below": 100_000, "points": 60}],
            "otherwise": 10,
            **LABELS,
        },
        {
            "indicator": "shelter",
            "kind": "choice",
            "weight": 15,
            "choices": {"tent": 100, "rented": 50},
            **LABELS,
        },
    ],
    "need_bands": NEED_BANDS,
}


def small(**changes: Any) -> ScoringModel:
    return load_model(json.dumps({**SMALL, **changes}, ensure_ascii=False))


def line(result: Any, indicator: str) -> Any:
    return next(x for x in result.breakdown if x.indicator == indicator)


# --- rule kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize(("head_female", "points", "weighted"), [(True, 100, 200), (False, 0, 0)])
def test_flag_rule_gives_its_points_when_true(
    head_female: bool, points: int, weighted: int
) -> None:
    got = line(score(small(), HouseholdFacts(head_female=head_female)), "head_female")
    assert (got.value, got.points, got.weighted, got.missing) == (
        head_female,
        points,
        weighted,
        False,
    )


@pytest.mark.parametrize(
    ("count", "points"), [(0, 0), (1, 40), (2, 80), (3, 100), (7, 100)]
)  # 40 per unit, capped at 100
def test_count_rule_gives_points_per_unit_up_to_its_cap(count: int, points: int) -> None:
    facts = HouseholdFacts(members=10, members_with_disability=count)
    got = line(score(small(), facts), "members_with_disability")
    assert (got.points, got.weighted) == (points, points * 3)  # weight 30: points * 30 / 10


@pytest.mark.parametrize(
    ("income", "points"),
    [
        (0, 100),
        (49_999, 100),
        (50_000, 60),  # exactly at a threshold: not below it, so the next band
        (99_999, 60),
        (100_000, 10),  # exactly at the last threshold: ``otherwise``
        (10**9, 10),
    ],
)
def test_bands_rule_takes_the_first_band_the_value_is_below(income: int, points: int) -> None:
    facts = HouseholdFacts(members=1, monthly_income_iqd=income)
    got = line(score(small(), facts), "income_per_capita_iqd")
    assert (got.value, got.points) == (income, points)


@pytest.mark.parametrize(("shelter", "points"), [("tent", 100), ("rented", 50), ("owned", 0)])
def test_choice_rule_gives_the_listed_points_and_0_for_others(shelter: str, points: int) -> None:
    assert line(score(small(), HouseholdFacts(shelter=shelter)), "shelter").points == points


def test_choices_are_kept_sorted_so_order_does_not_matter() -> None:
    a = ChoiceRule(indicator="shelter", weight=100, choices=(("tent", 9), ("owned", 1)), **LABELS)
    b = ChoiceRule(indicator="shelter", weight=100, choices=(("owned", 1), ("tent", 9)), **LABELS)
    assert a == b
    assert a.choices == (("owned", 1), ("tent", 9))


@given(
    st.lists(st.integers(1, 10**6), min_size=1, max_size=6, unique=True).map(sorted),
    st.lists(st.integers(0, 100), min_size=7, max_size=7),
    st.integers(0, 2 * 10**6),
)
@PROPERTY
def test_bands_scorer_matches_the_first_band_below(
    belows: list[int], points: list[int], value: int
) -> None:
    bands = tuple(Threshold(below=b, points=p) for b, p in zip(belows, points, strict=False))
    rule = BandsRule(indicator="debt_iqd", weight=100, bands=bands, otherwise=points[-1], **LABELS)
    expected = next((t.points for t in bands if value < t.below), points[-1])
    assert rule.scorer()(value) == expected


# --- weights and the scale ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "weight", "weighted"),
    [(1, 14, 1), (1, 15, 2), (3, 15, 5), (7, 5, 4), (100, 100, 1000), (0, 100, 0), (99, 1, 10)],
)  # points * weight / 10, rounded half up: 1.4 -> 1, 1.5 -> 2, 4.5 -> 5, 3.5 -> 4
def test_weighted_points_are_points_times_weight_over_10_rounded_half_up(
    points: int, weight: int, weighted: int
) -> None:
    rules: list[Rule] = [FlagRule(indicator="head_female", weight=weight, points=points, **LABELS)]
    if weight < 100:
        rules.append(
            CountRule(
                indicator="members", weight=100 - weight, points_per_unit=0, max_points=0, **LABELS
            )
        )
    model = dataclasses.replace(small(), indicators=tuple(rules))
    result = score(model, HouseholdFacts(head_female=True, members=1))
    assert result.breakdown[0].weighted == weighted
    assert result.total == weighted


def test_every_rule_at_100_points_is_the_top_of_the_scale() -> None:
    facts = HouseholdFacts(
        head_female=True, members=3, members_with_disability=3, monthly_income_iqd=0, shelter="tent"
    )
    result = score(small(), facts)
    assert result.total == SCALE_MAX == 1000
    assert result.points == (100, 100, 100, 100)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "low"),
        (199, "low"),
        (200, "moderate"),  # exactly at a band's min_score: that band
        (399, "moderate"),
        (400, "high"),
        (599, "high"),
        (600, "critical"),
        (1000, "critical"),
        (-1, "low"),  # outside the scale (score() never makes these): the nearest band
        (1001, "critical"),
    ],
)
def test_need_band_edges(total: int, band: str) -> None:
    assert small().band_of(total).band == band


def test_a_score_falls_in_the_band_of_its_total_at_the_edge() -> None:
    # head_female (20 % of 100) + 1 disabled (40 points * 30 % = 120) + rented (50 * 15 % = 75)
    # = 200 + 120 + 75 = 395; a second disabled member adds another 120: 515 -> high.
    facts = HouseholdFacts(head_female=True, members=4, members_with_disability=1, shelter="rented")
    assert (score(small(), facts).total, score(small(), facts).band) == (395, NeedBand.MODERATE)
    at_edge = dataclasses.replace(small(), need_bands=_bands(395, 300, 100))
    assert score(at_edge, facts).band == NeedBand.CRITICAL


def _bands(critical: int, high: int, moderate: int) -> tuple[NeedBandRule, ...]:
    mins = (critical, high, moderate, 0)
    return tuple(
        NeedBandRule(band=band, min_score=m, label_ar="ع", label_en="e")
        for band, m in zip(NeedBand, mins, strict=True)
    )


# --- missing values ------------------------------------------------------------------------


def test_unknown_facts_earn_nothing_and_are_reported_missing() -> None:
    result = score(small(), HouseholdFacts())
    assert (result.total, result.band) == (0, NeedBand.LOW)
    assert result.missing == (
        "head_female",
        "members_with_disability",
        "income_per_capita_iqd",
        "shelter",
    )
    assert all(x.missing and x.value is None and x.points == 0 for x in result.breakdown)


def test_a_derived_indicator_is_missing_when_any_input_is() -> None:
    result = score(small(), HouseholdFacts(monthly_income_iqd=10, shelter="tent"))
    assert result.missing == ("head_female", "members_with_disability", "income_per_capita_iqd")
    assert line(result, "shelter").missing is False


def test_missing_points_are_configurable() -> None:
    result = score(small(missing_points=50), HouseholdFacts(shelter="owned"))
    # 50 points on three missing rules: 50*20/10 + 50*30/10 + 50*35/10 = 100 + 150 + 175;
    # owned is known and earns 0.
    assert result.total == 425
    assert result.points == (50, 50, 50, 0)


# --- derived quantities --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "young", "school_age", "old", "ratio"),
    [
        (5, 2, 2, 0, 400),  # 4 dependents, 1 working-age member
        (4, 2, 2, 0, 400),  # no working-age member: divided by max(1, 0) = 1
        (6, 1, 1, 1, 100),
        (7, 0, 2, 0, 40),
        (3, 1, 0, 0, 50),
        (5, 0, 0, 0, 0),
        (5, None, 2, 0, None),
        (None, 1, 1, 1, None),
        (5, 1, 1, None, None),
    ],
)
def test_dependency_ratio_pct(
    members: int | None,
    young: int | None,
    school_age: int | None,
    old: int | None,
    ratio: int | None,
) -> None:
    facts = HouseholdFacts(
        members=members, children_under_5=young, children_5_17=school_age, elderly_60_plus=old
    )
    assert _derived(facts, "dependency_ratio_pct") == ratio


@pytest.mark.parametrize(
    ("income", "members", "per_capita"),
    [(100_001, 2, 50_000), (0, 5, 0), (None, 3, None), (9, None, None)],
)
def test_income_per_capita_rounds_down(
    income: int | None, members: int | None, per_capita: int | None
) -> None:
    facts = HouseholdFacts(monthly_income_iqd=income, members=members)
    assert _derived(facts, "income_per_capita_iqd") == per_capita


@pytest.mark.parametrize(
    ("debt", "income", "ratio"),
    [
        (150, 100, 150),
        (1, 3, 33),
        (0, 0, 0),
        (1, 0, DEBT_RATIO_CAP),  # debt and no income: the cap
        (10**12, 1, DEBT_RATIO_CAP),
        (None, 10, None),
        (10, None, None),
    ],
)
def test_debt_to_income_pct(debt: int | None, income: int | None, ratio: int | None) -> None:
    facts = HouseholdFacts(debt_iqd=debt, monthly_income_iqd=income)
    assert _derived(facts, "debt_to_income_pct") == ratio


@pytest.mark.parametrize(
    ("head_female", "young", "school_age", "expected"),
    [
        (True, 1, 0, True),
        (True, 0, 2, True),
        (True, None, 1, True),
        (True, 0, 0, False),
        (True, 0, None, None),
        (False, 3, 3, False),
        (False, None, None, False),
        (None, 3, 3, None),
    ],
)
def test_female_headed_with_children(
    head_female: bool | None, young: int | None, school_age: int | None, expected: bool | None
) -> None:
    facts = HouseholdFacts(
        head_female=head_female, children_under_5=young, children_5_17=school_age
    )
    assert _derived(facts, "female_headed_with_children") == expected


def _derived(facts: HouseholdFacts, indicator: str) -> object:
    """The value a rule on ``indicator`` sees (through a one-rule model)."""
    kind = {IndicatorType.FLAG: "flag", IndicatorType.AMOUNT: "bands"}[INDICATORS[indicator].type]
    rule: dict[str, Any] = {"indicator": indicator, "kind": kind, "weight": 100, **LABELS}
    rule |= (
        {"points": 1} if kind == "flag" else {"bands": [{"below": 1, "points": 0}], "otherwise": 0}
    )
    return score(small(indicators=[rule]), facts).values[0]


# --- household facts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"head_female": 1}, "head_female: must be true, false or unknown"),
        ({"head_age": -1}, "head_age: must be an integer 0..130 or unknown"),
        ({"members": 0}, "members: must be an integer 1..100 or unknown"),
        ({"members": True}, "members: must be an integer 1..100 or unknown"),
        ({"children_5_17": 2.0}, "children_5_17: must be an integer 0..100 or unknown"),
        (
            {"monthly_income_iqd": -5},
            "monthly_income_iqd: must be an integer 0..1000000000000 or unknown",
        ),
        ({"debt_iqd": 10**13}, "debt_iqd: must be an integer 0..1000000000000 or unknown"),
        ({"shelter": "palace"}, "shelter: must be one of " + ", ".join(SHELTERS) + " or unknown"),
        (
            {"displacement": "refugee"},
            "displacement: must be one of " + ", ".join(DISPLACEMENTS) + " or unknown",
        ),
        (
            {"members": 2, "members_with_disability": 3},
            "members_with_disability: 3 is more than the 2 members",
        ),
        (
            {"members": 4, "children_under_5": 2, "children_5_17": 2, "elderly_60_plus": 1},
            "members: 4 is fewer than the 5 children and elderly",
        ),
        (
            {"children_5_17": 1, "children_out_of_school": 2},
            "children_out_of_school: 2 is more than the 1 children aged 5-17",
        ),
    ],
)
def test_facts_check_themselves(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ScoringError) as caught:
        HouseholdFacts(**fields)
    assert caught.value.code is ScoringErrorCode.BAD_FACTS
    assert caught.value.message == message
    assert caught.value.path == message.split(":")[0]
    assert str(caught.value) == f"BAD_FACTS: {message}"


def test_facts_with_unknown_members_are_not_cross_checked_against_it() -> None:
    facts = HouseholdFacts(children_under_5=9, members_with_disability=40)
    assert facts.members is None


# --- a hand-computed household under the default model -------------------------------------

#: A woman heading an IDP family in a camp tent: 5 members (2 under 5, 2 aged 5-17, no
#: elderly), one member with a disability, one child out of school, no income, 300,000 IQD
#: of debt.
TENT_FAMILY = HouseholdFacts(
    head_female=True,
    head_age=34,
    members=5,
    children_under_5=2,
    children_5_17=2,
    elderly_60_plus=0,
    members_with_disability=1,
    members_with_chronic_illness=0,
    children_out_of_school=1,
    monthly_income_iqd=0,
    debt_iqd=300_000,
    shelter="tent",
    displacement="idp_in_camp",
)


def test_hand_computed_household() -> None:
    # weighted = points * weight / 10, rounded half up (weights in percent)
    # income_per_capita_iqd   0 // 5 = 0 < 45,000            -> 100 pts * 25 = 2500 -> 250
    # dependency_ratio_pct    (2+2+0)*100 // max(1, 5-4) = 400; not below 400
    #                                                          -> 100 pts * 10 = 1000 -> 100
    # shelter                 tent                           -> 100 pts * 12 = 1200 -> 120
    # displacement            idp_in_camp                    ->  80 pts * 10 =  800 ->  80
    # members_with_disability 1 * 50                         ->  50 pts * 12 =  600 ->  60
    # members_with_chronic    0                              ->   0 pts *  8        ->   0
    # head_female             true                           -> 100 pts *  8 =  800 ->  80
    # debt_to_income_pct      debt and no income = 1,000,000 -> 100 pts *  6 =  600 ->  60
    # children_out_of_school  1 * 50                         ->  50 pts *  5 =  250 ->  25
    # elderly_60_plus         0                              ->   0 pts *  4        ->   0
    # total = 250 + 100 + 120 + 80 + 60 + 0 + 80 + 60 + 25 + 0 = 775 >= 600: critical
    result = score(default_model(), TENT_FAMILY)
    assert result.total == 775
    assert result.band is NeedBand.CRITICAL
    assert (result.model_id, result.model_version) == ("iraq-default", 1)
    assert [(x.indicator, x.value, x.points, x.weighted) for x in result.breakdown] == [
        ("income_per_capita_iqd", 0, 100, 250),
        ("dependency_ratio_pct", 400, 100, 100),
        ("shelter", "tent", 100, 120),
        ("displacement", "idp_in_camp", 80, 80),
        ("members_with_disability", 1, 50, 60),
        ("members_with_chronic_illness", 0, 0, 0),
        ("head_female", True, 100, 80),
        ("debt_to_income_pct", DEBT_RATIO_CAP, 100, 60),
        ("children_out_of_school", 1, 50, 25),
        ("elderly_60_plus", 0, 0, 0),
    ]
    assert sum(x.weighted for x in result.breakdown) == result.total
    assert result.missing == ()


def test_default_model_ranks_realistic_households_in_order() -> None:
    common = {"members_with_disability": 0, "children_out_of_school": 0}
    households = {
        "tent_family": TENT_FAMILY,
        # 7 members, 450,000 IQD a month (64,285 per person), 2,000,000 debt, damaged house
        "returnee_damaged_home": HouseholdFacts(
            head_female=False, members=7, children_under_5=1, children_5_17=3, elderly_60_plus=1,
            members_with_chronic_illness=1, monthly_income_iqd=450_000, debt_iqd=2_000_000,
            shelter="damaged", displacement="returnee", **{**common, "children_out_of_school": 1},
        ),
        # 6 members renting out of camp on 600,000 IQD (100,000 per person)
        "idp_renting": HouseholdFacts(
            head_female=False, members=6, children_under_5=1, children_5_17=3, elderly_60_plus=0,
            members_with_chronic_illness=0, monthly_income_iqd=600_000, debt_iqd=500_000,
            shelter="rented", displacement="idp_out_of_camp", **common,
        ),
        # a widow of 66 and her sick brother in their own house, 350,000 IQD pension
        "widow_owner": HouseholdFacts(
            head_female=True, head_age=66, members=2, children_under_5=0, children_5_17=0,
            elderly_60_plus=1, members_with_chronic_illness=1, monthly_income_iqd=350_000,
            debt_iqd=0, shelter="owned", displacement="none", **common,
        ),
        # two earners, 1,500,000 IQD a month, own house, two school children
        "two_earner_owners": HouseholdFacts(
            head_female=False, members=4, children_under_5=0, children_5_17=2, elderly_60_plus=0,
            members_with_chronic_illness=0, monthly_income_iqd=1_500_000, debt_iqd=0,
            shelter="owned", displacement="none", **common,
        ),
    }  # fmt: skip
    scores = {name: score(default_model(), facts) for name, facts in households.items()}
    ranked = sorted(scores, key=lambda name: -scores[name].total)
    assert ranked == list(households)
    assert [scores[name].band.value for name in ranked] == [
        "critical",
        "high",
        "moderate",
        "low",  # above the poverty line in her own house: her flags alone are not enough
        "low",
    ]
    assert scores["two_earner_owners"].total == 0


# --- JSON: validation with exact paths -----------------------------------------------------


def _mutated(path: str, value: Any) -> dict[str, Any]:
    """SMALL with the value at a dotted path (list indices as numbers) replaced;
    ``value=...`` deletes it."""
    doc = copy.deepcopy(SMALL)
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return doc


#: Each case: ``path = value`` (a dotted path into SMALL, list indices as numbers; the new
#: value as JSON, or DELETE), then the whole message on the next line.
BAD_MODEL_TABLE = """
indicators.2.bands.1.points = 101
    indicators[2].bands[1].points: must be an integer 0..100
indicators.2.bands.1.points = 60.0
    indicators[2].bands[1].points: must be an integer 0..100
indicators.2.bands.1.below = 50000
    indicators[2].bands[1].below: must be greater than the band before (50000)
indicators.2.bands.0.below = 0
    indicators[2].bands[0].below: must be an integer 1..1000000000000
indicators.2.bands.0 = []
    indicators[2].bands[0]: must be a JSON object
indicators.2.bands = []
    indicators[2].bands: must hold 1..20 bands
indicators.2.bands = {}
    indicators[2].bands: must be a JSON array
indicators.2.otherwise = -1
    indicators[2].otherwise: must be an integer 0..100
indicators.0.weight = "20"
    indicators[0].weight: must be an integer 1..100
indicators.0.weight = 25
    indicators: the weights must sum to 100, not 105
indicators.0.points = true
    indicators[0].points: must be an integer 0..100
indicators.1.indicator = "income"
    indicators[1].indicator: unknown indicator 'income'
indicators.1.indicator = 7
    indicators[1].indicator: unknown indicator 7
indicators.1.kind = "counter"
    indicators[1].kind: must be one of flag, count, bands, choice
indicators.1.kind = DELETE
    indicators[1].kind: must be one of flag, count, bands, choice
indicators.1.max_points = DELETE
    indicators[1].max_points: required
indicators.1.points_per_unit = 101
    indicators[1].points_per_unit: must be an integer 0..100
indicators.3.choices.tent = 100.5
    indicators[3].choices["tent"]: must be an integer 0..100
indicators.3.choices = {}
    indicators[3].choices: must hold at least one (value, points) pair
indicators.3.choices = ["tent"]
    indicators[3].choices: must be a JSON object
indicators.0.label_ar = "  "
    indicators[0].label_ar: must not be empty
indicators.0.label_en = null
    indicators[0].label_en: must be a string
indicators.0.label_en = "Cafe\u0301"
    indicators[0].label_en: must be NFC-normalized Unicode
indicators.0.note = 3
    indicators[0].note: must be a string
indicators.0 = 5
    indicators[0]: must be a JSON object
indicators = []
    indicators: must hold at least one rule
indicators = {}
    indicators: must be a JSON array
need_bands.1.min_score = 600
    need_bands[1].min_score: must be below the band before (600)
need_bands.3.min_score = 10
    need_bands[3].min_score: must be 0, so every total has a band
need_bands.0.min_score = 1001
    need_bands[0].min_score: must be an integer 0..1000
need_bands.0.band = "urgent"
    need_bands[0].band: must be one of critical, high, moderate, low
need_bands.0.band = "high"
    need_bands[0]: must be the critical band (critical, high, moderate, low)
need_bands.0.label_ar = ""
    need_bands[0].label_ar: must not be empty
need_bands.2.colour = "red"
    need_bands[2].colour: unknown key; expected band, min_score, label_ar, label_en
need_bands.3 = DELETE
    need_bands: must hold 4 bands
need_bands = null
    need_bands: must be a JSON array
id = "Test Model"
    id: must be a slug: a-z, 0-9 and single '-', 1..64
id = "a--b"
    id: must be a slug: a-z, 0-9 and single '-', 1..64
version = 0
    version: must be an integer 1..2147483647
version = true
    version: must be an integer 1..2147483647
name_en = DELETE
    name_en: required
name_ar = 5
    name_ar: must be a string
missing_points = 101
    missing_points: must be an integer 0..100
format = "ataa.scoring-model/2"
    format: must be 'ataa.scoring-model/1'
"""
_lines = BAD_MODEL_TABLE.strip().splitlines()
BAD_MODELS: list[tuple[str, Any, str]] = [
    (path, ... if value == "DELETE" else json.loads(value), message.strip())
    for (path, value), message in zip(
        (line.split(" = ", 1) for line in _lines[0::2]), _lines[1::2], strict=True
    )
]
BAD_MODELS += [
    (
        "indicators.3.indicator",
        "members",
        "indicators[3].kind: a choice rule does not fit members (indicator type count);"
        " use count or bands",
    ),
    (
        "indicators.0.pionts",
        5,
        "indicators[0].pionts: unknown key;"
        " expected indicator, kind, weight, label_ar, label_en, points, note",
    ),
    (
        "indicators.3.choices.palace",
        5,
        'indicators[3].choices["palace"]: not a shelter value; one of ' + ", ".join(SHELTERS),
    ),
    (
        "extra",
        1,
        "extra: unknown key; expected format, id, version, name_ar, name_en, indicators,"
        " need_bands, missing_points, note",
    ),
    ("indicators.0.label_en", "x" * 201, "indicators[0].label_en: must be at most 200 characters"),
    ("note", "x" * 2001, "note: must be at most 2000 characters"),
    ("id", "a" * 65, "id: must be a slug: a-z, 0-9 and single '-', 1..64"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_MODELS)
def test_malformed_models_name_the_json_path(path: str, value: Any, message: str) -> None:
    text = json.dumps(_mutated(path, value), ensure_ascii=False)
    _assert_bad(text, message)


def test_a_rule_listed_twice_names_both_places() -> None:
    doc = copy.deepcopy(SMALL)
    doc["indicators"][0]["weight"] = 10
    doc["indicators"].append({**doc["indicators"][0]})
    _assert_bad(
        json.dumps(doc), "indicators[4].indicator: head_female already has a rule (indicators[0])"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "$: must be a JSON object"),
        ("", "$: not JSON: Expecting value (line 1 column 1)"),
        (
            '{"id": 1,}',
            "$: not JSON: Expecting property name enclosed in double quotes (line 1 column 10)",
        ),
        ("[" * 100_000, "$: not JSON this parser accepts (too deep or too long a number)"),
        (
            '{"version": ' + "9" * 5000 + "}",
            "$: not JSON this parser accepts (too deep or too long a number)",
        ),
        (" " * (MAX_MODEL_CHARS + 1), f"$: longer than {MAX_MODEL_CHARS} characters"),
        ('{"id": "a", "id": "b"}', "id: duplicate key"),
        (
            json.dumps(SMALL).replace('"version": 3', '"version": NaN'),
            "version: must be an integer 1..2147483647",
        ),
        (
            json.dumps(SMALL).replace('"points_per_unit": 40', '"points_per_unit": 1e400'),
            "indicators[1].points_per_unit: must be an integer 0..100",
        ),
    ],
)
def test_malformed_json_text(text: str, message: str) -> None:
    _assert_bad(text, message)


def test_duplicate_keys_are_found_at_any_depth() -> None:
    text = json.dumps(SMALL, ensure_ascii=False)
    _assert_bad(
        text.replace('"tent": 100', '"tent": 100, "tent": 90'),
        'indicators[3].choices["tent"]: duplicate key',
    )
    _assert_bad(
        text.replace('"below": 50000', '"below": 50000, "below": 1'),
        "indicators[2].bands[0].below: duplicate key",
    )
    _assert_bad(
        text.replace('"kind": "flag"', '"kind": "flag", "kind": "flag"'),
        "indicators[0].kind: duplicate key",
    )


def test_load_model_takes_only_text() -> None:
    _assert_bad(json.dumps(SMALL).encode(), "$: must be JSON text (str)")  # type: ignore[arg-type]


def _assert_bad(text: str, message: str) -> None:
    with pytest.raises(ScoringError) as caught:
        load_model(text)
    assert caught.value.code is ScoringErrorCode.BAD_MODEL
    assert caught.value.message == message
    assert caught.value.path == message.split(": ")[0]


@given(st.text(max_size=200))
@PROPERTY
def test_load_model_raises_only_scoring_errors(text: str) -> None:
    try:
        load_model(text)
    except ScoringError as exc:
        assert exc.code is ScoringErrorCode.BAD_MODEL


@given(st.data())
@PROPERTY
def test_a_mutated_default_model_raises_only_scoring_errors(data: st.DataObject) -> None:
    text = DEFAULT_JSON.read_text("utf-8")
    at = data.draw(st.integers(0, len(text) - 1))
    junk = data.draw(st.text(max_size=5))
    cut = data.draw(st.integers(0, 5))
    try:
        load_model(text[:at] + junk + text[at + cut :])
    except ScoringError as exc:
        assert exc.code is ScoringErrorCode.BAD_MODEL


# --- Python construction (checks that JSON cannot reach) -----------------------------------


def test_models_built_in_python_check_themselves() -> None:
    model = small()
    flag = model.indicators[0]
    bad: Any = cast(Any, None)  # values of the wrong type, on purpose
    cases: list[tuple[Any, str]] = [
        (
            lambda: dataclasses.replace(model, indicators=cast(Any, list(model.indicators))),
            "indicators: must hold at least one rule",
        ),
        (
            lambda: dataclasses.replace(model, indicators=cast(Any, (object(),))),
            "indicators[0]: must be a FlagRule, CountRule, BandsRule or ChoiceRule",
        ),
        (
            lambda: dataclasses.replace(model, need_bands=cast(Any, list(model.need_bands))),
            "need_bands: must hold 4 bands",
        ),
        (
            lambda: dataclasses.replace(model, need_bands=(bad, *model.need_bands[1:])),
            "need_bands[0]: must be the critical band (critical, high, moderate, low)",
        ),
        (
            lambda: dataclasses.replace(model, id=bad),
            "id: must be a slug: a-z, 0-9 and single '-', 1..64",
        ),
        (
            lambda: BandsRule(
                indicator="debt_iqd",
                weight=1,
                bands=cast(Any, [Threshold(below=1, points=1)]),
                otherwise=0,
                **LABELS,
            ),
            "bands: must hold 1..20 bands",
        ),
        (
            lambda: BandsRule(
                indicator="debt_iqd",
                weight=1,
                bands=cast(Any, ({"below": 1, "points": 1},)),
                otherwise=0,
                **LABELS,
            ),
            "bands[0]: must be a Threshold",
        ),
        (
            lambda: ChoiceRule(
                indicator="shelter", weight=1, choices=cast(Any, [("tent", 1)]), **LABELS
            ),
            "choices: must hold at least one (value, points) pair",
        ),
        (
            lambda: ChoiceRule(
                indicator="shelter", weight=1, choices=cast(Any, (("tent",),)), **LABELS
            ),
            "choices: must hold (value, points) pairs",
        ),
        (
            lambda: ChoiceRule(
                indicator="shelter", weight=1, choices=cast(Any, ((1, 2),)), **LABELS
            ),
            "choices: must hold (value, points) pairs",
        ),
        (
            lambda: ChoiceRule(
                indicator="shelter", weight=1, choices=(("tent", 1), ("tent", 2)), **LABELS
            ),
            "choices: lists a value twice",
        ),
        (lambda: dataclasses.replace(flag, weight=0), "weight: must be an integer 1..100"),
        (
            lambda: FlagRule(indicator="members", weight=1, points=1, **LABELS),
            "kind: a flag rule does not fit members (indicator type count); use count or bands",
        ),
        (
            lambda: CountRule(
                indicator="monthly_income_iqd", weight=1, points_per_unit=1, max_points=1, **LABELS
            ),
            "kind: a count rule does not fit monthly_income_iqd (indicator type amount); use bands",
        ),
        (
            lambda: NeedBandRule(band=bad, min_score=0, label_ar="ع", label_en="e"),
            "band: must be one of critical, high, moderate, low",
        ),
    ]
    for build, message in cases:
        with pytest.raises(ScoringError) as caught:
            build()
        assert caught.value.message == message


def test_python_values_normalize_like_json() -> None:
    band = NeedBandRule(band="low", min_score=0, label_ar="ع", label_en="e")  # type: ignore[arg-type]
    assert band.band is NeedBand.LOW
    assert dataclasses.replace(small(), need_bands=small().need_bands) == small()


def test_rule_lookup_and_score_model() -> None:
    model = small()
    assert model.rule("shelter") is model.indicators[3]
    assert model.rule("displacement") is None
    result = score(model, HouseholdFacts())
    assert result.model is model
    assert "total=0" in repr(result) and "indicators" not in repr(result)


def test_scoring_error_repr_names_the_code() -> None:
    error = ScoringError("x: bad", code=ScoringErrorCode.BAD_MODEL, path="x")
    assert repr(error) == "ScoringError('x: bad', code=BAD_MODEL)"


# --- canonical form and digest --------------------------------------------------------------


def test_the_shipped_default_model_is_canonical_and_pinned() -> None:
    text = DEFAULT_JSON.read_text("utf-8")
    model = default_model()
    assert dump_model(model) == text
    assert load_model(text) == model
    assert model_digest(model) == DEFAULT_DIGEST
    assert default_model() is model  # loaded once
    assert sum(rule.weight for rule in model.indicators) == 100


def test_dump_is_canonical_whatever_the_input_layout() -> None:
    doc = copy.deepcopy(SMALL)
    doc["indicators"][3]["choices"] = {"rented": 50, "tent": 100}  # another order
    shuffled = json.dumps(dict(reversed(doc.items())), separators=(",", ":"))
    assert dump_model(load_model(shuffled)) == dump_model(small())
    assert model_digest(load_model(shuffled)) == model_digest(small())
    assert load_model(shuffled) == small()


def test_dump_writes_defaults_explicitly_and_sorted() -> None:
    text = dump_model(small())
    doc = json.loads(text)
    assert (doc["missing_points"], doc["note"], doc["indicators"][0]["note"]) == (0, "", "")
    assert list(doc) == sorted(doc)
    assert text.endswith("}\n") and "نموذج اختبار" in text  # UTF-8, not \u escapes


def test_digest_changes_with_any_change() -> None:
    base = small()
    digests = {
        model_digest(base),
        model_digest(dataclasses.replace(base, version=4)),
        model_digest(dataclasses.replace(base, missing_points=1)),
        model_digest(small(name_en="Test model.")),
    }
    assert len(digests) == 4
    assert model_digest(base) == model_digest(small())  # stable
    assert len(model_digest(base)) == 64


# --- properties -----------------------------------------------------------------------------

_maybe = st.none()


@st.composite
def household_facts(draw: st.DrawFn) -> HouseholdFacts:
    """Valid facts: any field may be unknown; known counts are consistent."""
    members = draw(_maybe | st.integers(1, 15))
    room = 15 if members is None else members

    def count(limit: int) -> int | None:
        return draw(_maybe | st.integers(0, limit))

    young = count(room)
    school_age = count(room - (young or 0))
    old = count(room - (young or 0) - (school_age or 0))
    amount = _maybe | st.integers(0, 2_000_000) | st.integers(0, 10**12)
    return HouseholdFacts(
        head_female=draw(_maybe | st.booleans()),
        head_age=draw(_maybe | st.integers(0, 130)),
        members=members,
        children_under_5=young,
        children_5_17=school_age,
        elderly_60_plus=old,
        members_with_disability=count(room),
        members_with_chronic_illness=count(room),
        children_out_of_school=count(room if school_age is None else school_age),
        monthly_income_iqd=draw(amount),
        debt_iqd=draw(amount),
        shelter=draw(_maybe | st.sampled_from(SHELTERS)),
        displacement=draw(_maybe | st.sampled_from(DISPLACEMENTS)),
    )


@given(household_facts())
@PROPERTY
def test_any_household_scores_within_the_scale(facts: HouseholdFacts) -> None:
    model = default_model()
    result = score(model, facts)
    assert 0 <= result.total <= SCALE_MAX
    assert result.total == sum(x.weighted for x in result.breakdown)
    assert result.band is model.band_of(result.total).band
    assert all(0 <= x.points <= 100 for x in result.breakdown)
    assert score(model, facts) == result  # deterministic


_wild = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 120),
    st.sampled_from((*SHELTERS, *DISPLACEMENTS, "", 1.5)),
)


@given(st.fixed_dictionaries({name: _wild for name in HouseholdFacts.__dataclass_fields__}))
@PROPERTY
def test_arbitrary_fact_values_either_fail_cleanly_or_score(fields: dict[str, Any]) -> None:
    try:
        facts = HouseholdFacts(**fields)
    except ScoringError as exc:
        assert exc.code is ScoringErrorCode.BAD_FACTS
        assert exc.path in HouseholdFacts.__dataclass_fields__
        return
    assert 0 <= score(default_model(), facts).total <= SCALE_MAX


def _worse(facts: HouseholdFacts, change: str, amount: int) -> HouseholdFacts:
    """``facts`` with one vulnerability added and the household's make-up unchanged."""

    def more(name: str) -> int:
        return (getattr(facts, name) or 0) + 1

    table: dict[str, dict[str, Any]] = {
        "head_female": {"head_female": True},
        "disability": {"members_with_disability": more("members_with_disability")},
        "chronic": {"members_with_chronic_illness": more("members_with_chronic_illness")},
        "out_of_school": {"children_out_of_school": more("children_out_of_school")},
        "turns_60": {"elderly_60_plus": more("elderly_60_plus")},
        "less_income": {"monthly_income_iqd": max(0, (facts.monthly_income_iqd or 0) - amount)},
        "more_debt": {"debt_iqd": (facts.debt_iqd or 0) + amount},
    }
    return dataclasses.replace(facts, **table[change])


@given(
    household_facts(),
    st.sampled_from(
        [
            "head_female",
            "disability",
            "chronic",
            "out_of_school",
            "turns_60",
            "less_income",
            "more_debt",
        ]
    ),
    st.integers(0, 10**6),
)
@PROPERTY
def test_adding_a_vulnerability_never_lowers_the_default_score(
    facts: HouseholdFacts, change: str, amount: int
) -> None:
    try:
        worse = _worse(facts, change, amount)
    except ScoringError:  # e.g. a member more with a disability than there are members
        return
    model = default_model()
    assert score(model, worse).total >= score(model, facts).total


@given(household_facts(), st.sampled_from(sorted(HouseholdFacts.__dataclass_fields__)))
@PROPERTY
def test_forgetting_a_fact_never_raises_the_default_score(facts: HouseholdFacts, name: str) -> None:
    # With missing_points 0, an unknown answer can only lower a household's place: an
    # incomplete survey never jumps the queue.
    model = default_model()
    forgotten = dataclasses.replace(facts, **{name: None})
    assert score(model, forgotten).total <= score(model, facts).total


_text = (
    st.text(min_size=1, max_size=20)
    .map(lambda s: unicodedata.normalize("NFC", s))
    .filter(lambda s: bool(s.strip()) and len(s) <= 200)
)
_points = st.integers(0, 100)


def _rule(name: str, weight: int) -> st.SearchStrategy[Rule]:
    common = {
        "indicator": st.just(name),
        "weight": st.just(weight),
        "label_ar": _text,
        "label_en": _text,
        "note": st.just("") | _text,
    }
    kind = INDICATORS[name].type
    flag = st.builds(FlagRule, points=_points, **common)
    count = st.builds(CountRule, points_per_unit=_points, max_points=_points, **common)
    thresholds = st.lists(st.integers(1, 10**12), min_size=1, max_size=5, unique=True).flatmap(
        lambda belows: st.tuples(
            *(st.builds(Threshold, below=st.just(b), points=_points) for b in sorted(belows))
        )
    )
    bands = st.builds(BandsRule, bands=thresholds, otherwise=_points, **common)
    pairs = st.lists(
        st.tuples(st.sampled_from(INDICATORS[name].choices or ("-",)), _points),
        min_size=1,
        unique_by=lambda p: p[0],
    )
    choice = st.builds(ChoiceRule, choices=pairs.map(tuple), **common)
    return {
        IndicatorType.FLAG: flag,
        IndicatorType.COUNT: count | bands,
        IndicatorType.AMOUNT: bands,
        IndicatorType.CHOICE: choice,
    }[kind]


@st.composite
def scoring_models(draw: st.DrawFn) -> ScoringModel:
    names = draw(st.lists(st.sampled_from(sorted(INDICATORS)), min_size=1, max_size=8, unique=True))
    cuts = sorted(
        draw(
            st.lists(
                st.integers(1, 99), min_size=len(names) - 1, max_size=len(names) - 1, unique=True
            )
        )
    )
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    mins = sorted(
        draw(st.lists(st.integers(1, SCALE_MAX), min_size=3, max_size=3, unique=True)), reverse=True
    )
    return ScoringModel(
        id=draw(st.from_regex(r"[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,3}", fullmatch=True)),
        version=draw(st.integers(1, 2**31 - 1)),
        name_ar=draw(_text),
        name_en=draw(_text),
        note=draw(st.just("") | _text),
        missing_points=draw(_points),
        indicators=tuple(draw(_rule(n, w)) for n, w in zip(names, weights, strict=True)),
        need_bands=tuple(
            NeedBandRule(band=band, min_score=m, label_ar=draw(_text), label_en=draw(_text))
            for band, m in zip(NeedBand, (*mins, 0), strict=True)
        ),
    )  # fmt: skip


@given(scoring_models())
@PROPERTY
def test_generated_models_round_trip(model: ScoringModel) -> None:
    text = dump_model(model)
    assert load_model(text) == model
    assert dump_model(load_model(text)) == text
    assert model_digest(load_model(text)) == model_digest(model)


@given(scoring_models(), household_facts())
@PROPERTY
def test_generated_models_score_any_household_within_the_scale(
    model: ScoringModel, facts: HouseholdFacts
) -> None:
    result = score(model, facts)
    assert 0 <= result.total <= SCALE_MAX
    assert [x.indicator for x in result.breakdown] == [r.indicator for r in model.indicators]
    assert all(x.points == model.missing_points for x in result.breakdown if x.missing)
