"""The need-scoring error family: :class:`ScoringError` with a :class:`ScoringErrorCode`."""

from __future__ import annotations

import enum
from typing import Final

import protocol

__all__ = [
    "HouseholdError",
    "HouseholdErrorCode",
    "ScoringError",
    "ScoringErrorCode",
]


class ScoringErrorCode(enum.StrEnum):
    """Stable, machine-readable scoring error codes."""

    BAD_MODEL = "BAD_MODEL"  # a model (JSON or Python) breaks a rule; ``path`` says where
    BAD_FACTS = "BAD_FACTS"  # household facts out of range or inconsistent; ``path`` = field


class ScoringError(protocol.CodedError):
    """Every error raised by need scoring.

    Attributes:
        path: where the problem is: a JSON path into the model
            (``indicators[3].bands[1].points``; ``$`` for the whole document) or a
            :class:`HouseholdFacts` field name. The message starts with it.
    """

    code: ScoringErrorCode

    def __init__(self, message: str, *, code: ScoringErrorCode, path: str) -> None:
        super().__init__(message, code=code)
        self.path = path


def _bad_model(path: str, problem: str) -> ScoringError:
    path = path or _ROOT
    return ScoringError(f"{path}: {problem}", code=ScoringErrorCode.BAD_MODEL, path=path)


def _bad_facts(path: str, problem: str) -> ScoringError:
    return ScoringError(f"{path}: {problem}", code=ScoringErrorCode.BAD_FACTS, path=path)


_ROOT: Final = "$"  # the path of the whole JSON document


class HouseholdErrorCode(enum.StrEnum):
    """Stable, machine-readable household store error codes."""

    NOT_FOUND = "NOT_FOUND"  # no household (or duplicate suggestion) with that id
    DUPLICATE_NATIONAL_ID = "DUPLICATE_NATIONAL_ID"  # another household has that ID
    NOT_ACTIVE = "NOT_ACTIVE"  # archived or merged: the action needs an active one
    BAD_REQUEST = "BAD_REQUEST"  # an argument out of range (a reason code, a pair)
    CORRUPT = "CORRUPT"  # a stored blob or key does not open: tampering or a wrong key


class HouseholdError(protocol.CodedError):
    """Every error raised by the household store, data keys and duplicate review.

    Messages name household ids, never PII (they reach logs and import reports).

    Attributes:
        household_id: the household concerned, when there is one: for
            DUPLICATE_NATIONAL_ID, the household that already has the ID.
    """

    code: HouseholdErrorCode

    def __init__(
        self, message: str, *, code: HouseholdErrorCode, household_id: int | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.household_id = household_id
