"""Ata'a (عطاء), NGO aid management: need scoring so far.

>>> model = default_model()
>>> result = score(model, HouseholdFacts(members=5, monthly_income_iqd=0, shelter="tent"))
>>> result.total, result.band, [(line.indicator, line.weighted) for line in result.breakdown]

Every failure is a :class:`ScoringError` with a :class:`ScoringErrorCode`. The model
format, the scale and the default model are described in ``docs/scoring.md``.
"""

from ._allocations import (
    ALLOCATION_KINDS,
    AllocationError,
    AllocationErrorCode,
    backfill,
    index_entries,
    index_row,
    install,
)
from ._blind import BlindIndex, NameTokens, SearchQuery
from ._columns import FIELDS as IMPORT_FIELDS
from ._columns import MEMBER_FIELDS as IMPORT_MEMBER_FIELDS
from ._columns import RowProblem, suggest_mapping, validate_mapping
from ._datakeys import ROTATE_BATCH, DataKeyInfo, DataKeys, RotationResult
from ._dist_rows import (
    MAX_REASON,
    MAX_TARGET,
    DeliveryState,
    DistHousehold,
    Distribution,
    DistributionPlan,
    DistributionState,
    EpochSource,
)
from ._distributions import DistributionService
from ._duplicates import REASONS as DUPLICATE_REASONS
from ._duplicates import Duplicates, Suggestion
from ._errors import HouseholdError, HouseholdErrorCode, ScoringError, ScoringErrorCode
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
from ._household_views import (
    MAX_PAGE,
    HouseholdStatus,
    HouseholdSummary,
    HouseholdView,
    PseudonymState,
)
from ._households import ARCHIVE_REASONS, HouseholdService, PseudonymLookup, UpsertResult
from ._import import ImportService, ImportStatus, ImportSummary, Preview, dry_run, preview
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
from ._queue import (
    IRAQ_TZ,
    MAX_QUEUE_PAGE,
    PriorityQueue,
    QueuePage,
    QueueRow,
    QueueSettings,
    Received,
    iraq_today,
)
from ._record import HouseholdRecord, Member, RecordError, RecordErrorCode, Sex, normalize_phone
from ._reports import DIMENSIONS, Dimension, ReportRow, ReportService, to_csv
from ._score import Score, ScoreLine, score
from ._scoring_store import RESCORE_BATCH, BreakdownLine, ModelVersion, ScoringStore, StoredScore
from ._service import Ataa, ataa_status, build_ataa
from ._sheets import ImportFileError, ImportFileErrorCode

__all__ = [
    "ALLOCATION_KINDS",
    "ARCHIVE_REASONS",
    "DEBT_RATIO_CAP",
    "DIMENSIONS",
    "DISPLACEMENTS",
    "DUPLICATE_REASONS",
    "FORMAT",
    "IMPORT_FIELDS",
    "IMPORT_MEMBER_FIELDS",
    "INDICATORS",
    "IRAQ_TZ",
    "MAX_MODEL_CHARS",
    "MAX_PAGE",
    "MAX_QUEUE_PAGE",
    "MAX_REASON",
    "MAX_TARGET",
    "RESCORE_BATCH",
    "ROTATE_BATCH",
    "SCALE_MAX",
    "SHELTERS",
    "AllocationError",
    "AllocationErrorCode",
    "Ataa",
    "BandsRule",
    "BlindIndex",
    "BreakdownLine",
    "ChoiceRule",
    "CountRule",
    "DataKeyInfo",
    "DataKeys",
    "DeliveryState",
    "Dimension",
    "DistHousehold",
    "Distribution",
    "DistributionPlan",
    "DistributionService",
    "DistributionState",
    "Duplicates",
    "EpochSource",
    "FlagRule",
    "HouseholdError",
    "HouseholdErrorCode",
    "HouseholdFacts",
    "HouseholdRecord",
    "HouseholdService",
    "HouseholdStatus",
    "HouseholdSummary",
    "HouseholdView",
    "ImportFileError",
    "ImportFileErrorCode",
    "ImportService",
    "ImportStatus",
    "ImportSummary",
    "Indicator",
    "IndicatorType",
    "Member",
    "ModelVersion",
    "NameTokens",
    "NeedBand",
    "NeedBandRule",
    "Preview",
    "PriorityQueue",
    "PseudonymLookup",
    "PseudonymState",
    "QueuePage",
    "QueueRow",
    "QueueSettings",
    "Received",
    "RecordError",
    "RecordErrorCode",
    "ReportRow",
    "ReportService",
    "RotationResult",
    "RowProblem",
    "Rule",
    "RuleKind",
    "Score",
    "ScoreLine",
    "ScoringError",
    "ScoringErrorCode",
    "ScoringModel",
    "ScoringStore",
    "SearchQuery",
    "Sex",
    "StoredScore",
    "Suggestion",
    "Threshold",
    "UpsertResult",
    "Value",
    "ataa_status",
    "backfill",
    "build_ataa",
    "default_model",
    "dry_run",
    "dump_model",
    "index_entries",
    "index_row",
    "install",
    "iraq_today",
    "load_model",
    "model_digest",
    "normalize_phone",
    "preview",
    "score",
    "suggest_mapping",
    "to_csv",
    "validate_mapping",
]
