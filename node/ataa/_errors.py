"""The need-scoring error family: :class:`ScoringError` with a :class:`ScoringErrorCode`."""

from __future__ import annotations

import enum
from typing import Final

import protocol

__all__ = [
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
