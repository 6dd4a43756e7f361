"""The oracle family of errors (one machine-readable code each, STYLE §5)."""

from __future__ import annotations

import enum

import protocol

__all__ = ["OracleError", "OracleErrorCode"]


class OracleErrorCode(enum.StrEnum):
    NOT_AN_ORACLE = "NOT_AN_ORACLE"  # we hold no share of that epoch
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"  # the requester's daily quota is spent
    BAD_REQUEST = "BAD_REQUEST"  # an evaluate body that is not {epoch, elements}
    NO_CONFIG = "NO_CONFIG"  # no oracle.config/1 in the feeds we replicate
    CONFIG_CONFLICT = "CONFIG_CONFLICT"  # two different configs claim the newest epoch
    TOO_FEW_ORACLES = "TOO_FEW_ORACLES"  # fewer than threshold oracles answered validly
    NO_PROFILE = "NO_PROFILE"  # an oracle whose profile (encryption key) we do not hold
    BAD_DEAL = "BAD_DEAL"  # deal arguments out of range
    NOT_FOUNDER = "NOT_FOUNDER"  # only the federation's founder deals
    BAD_SHARE_FILE = "BAD_SHARE_FILE"  # not a share file, or not for this node or net
    SHARE_MISMATCH = "SHARE_MISMATCH"  # the share does not match the published config
    SHARE_EXISTS = "SHARE_EXISTS"  # a different share of that epoch is already held


class OracleError(protocol.CodedError):
    """An oracle operation refused; ``message`` is one line, safe to show and log."""

    code: OracleErrorCode

    def __init__(self, message: str, *, code: OracleErrorCode) -> None:
        super().__init__(message, code=code)
