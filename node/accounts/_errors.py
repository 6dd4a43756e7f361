"""The accounts error family (STYLE §5)."""

from __future__ import annotations

import enum

import protocol

__all__ = ["AccountError", "AccountErrorCode", "PasswordProblem"]


class AccountErrorCode(enum.StrEnum):
    """Stable, machine-readable account error codes."""

    BAD_CREDENTIALS = "BAD_CREDENTIALS"  # wrong password OR unknown user: never says which
    LOCKED = "LOCKED"  # too many failures; retry after ``retry_after_ms``
    DISABLED = "DISABLED"  # the password was right but the account is disabled
    FORBIDDEN = "FORBIDDEN"  # the role does not allow it
    WEAK_PASSWORD = "WEAK_PASSWORD"  # see ``problem``
    PASSWORD_CHANGE_REQUIRED = "PASSWORD_CHANGE_REQUIRED"  # one-time password in use
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"  # username taken, last admin, first admin exists
    EXPIRED = "EXPIRED"  # the session is unknown, ended or expired: log in again
    CSRF = "CSRF"  # the form's CSRF token does not match the session
    INVALID = "INVALID"  # a malformed username, display name or role


class PasswordProblem(enum.StrEnum):
    """Why a new password was refused (WEAK_PASSWORD)."""

    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    SAME_AS_USERNAME = "SAME_AS_USERNAME"
    TOO_COMMON = "TOO_COMMON"
    UNCHANGED = "UNCHANGED"


class AccountError(protocol.CodedError):
    """Base of every error raised by ``node.accounts``; never holds a password or PII.

    Attributes:
        problem: for WEAK_PASSWORD, which rule the password broke.
        retry_after_ms: for LOCKED, when the lock ends (our clock).
    """

    code: AccountErrorCode

    def __init__(
        self,
        message: str,
        *,
        code: AccountErrorCode,
        problem: PasswordProblem | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.problem = problem
        self.retry_after_ms = retry_after_ms
