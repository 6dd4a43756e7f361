"""Error bodies and the one place that maps error codes to HTTP statuses (STYLE §5).

Every API error is ``{"error": {"code": CODE, "message": TEXT}}``, plus
``locked_until_ms`` for LOCKED (with a ``Retry-After`` header) and ``problem`` for
WEAK_PASSWORD. Messages are short English for developers; the UI shows its own
translated text chosen by ``code``.
Storage failures never pass their text on (it may name the database host): a full
disk is 507 STORAGE_FULL (RFC 4918 §11.5, "Insufficient Storage": the operator must
free space, retrying alone will not help), any other storage failure 503 UNAVAILABLE.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

import protocol
from node.accounts import AccountError, AccountErrorCode
from node.federation import FederationError, FederationErrorCode, MessageError
from node.profile import ProfileError
from node.storage import StorageError, StorageErrorCode

__all__ = ["ApiError", "error_body", "error_of", "http_error_code"]

_ACCOUNT_STATUS: Final = {
    AccountErrorCode.BAD_CREDENTIALS: 401,
    AccountErrorCode.LOCKED: 429,
    AccountErrorCode.DISABLED: 403,
    AccountErrorCode.FORBIDDEN: 403,
    AccountErrorCode.WEAK_PASSWORD: 422,
    AccountErrorCode.PASSWORD_CHANGE_REQUIRED: 403,
    AccountErrorCode.NOT_FOUND: 404,
    AccountErrorCode.CONFLICT: 409,
    AccountErrorCode.EXPIRED: 401,
    AccountErrorCode.CSRF: 403,
    AccountErrorCode.INVALID: 422,
}

#: Federation refusals; any code not listed is a conflict with the current state (409).
_FEDERATION_STATUS: Final = {
    FederationErrorCode.UNKNOWN_PEER: 404,
    FederationErrorCode.BAD_REASON: 422,
    FederationErrorCode.SELF: 422,
}

#: Codes for plain HTTP failures (no service error behind them).
_HTTP_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID",
    429: "LOCKED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    507: "STORAGE_FULL",
}


class ApiError(Exception):
    """A request the handler refuses: ``status``, a stable ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def http_error_code(status: int) -> str:
    """The code of a plain HTTP failure with ``status``."""
    return _HTTP_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an API error."""
    return {"error": {"code": code, "message": message, **extra}}


def error_of(error: Exception) -> tuple[int, dict[str, Any]] | None:
    """``(status, body)`` for a service error, or None if ``error`` is not one."""
    if isinstance(error, ApiError):
        return error.status, error_body(error.code, error.message)
    if isinstance(error, AccountError):
        extra: dict[str, Any] = {}
        if error.retry_after_ms is not None:  # the service's value is a time, not a span
            extra["locked_until_ms"] = error.retry_after_ms
        if error.problem is not None:
            extra["problem"] = error.problem.value
        return _ACCOUNT_STATUS[error.code], error_body(error.code.value, error.message, **extra)
    if isinstance(error, FederationError):
        status = _FEDERATION_STATUS.get(error.code, 409)
        return status, error_body(error.code.value, error.message)
    if isinstance(error, ProfileError):
        return 422, error_body(error.code.value, error.message)
    if isinstance(error, MessageError):  # nothing was stored; the code says why
        return 422, error_body(error.code.value, error.message)
    if isinstance(error, StorageError):
        if error.code is StorageErrorCode.FULL:
            message = "the node's storage is full; its operator must free disk space"
            return 507, error_body("STORAGE_FULL", message)
        return 503, error_body("UNAVAILABLE", "the node's database is unavailable; try again")
    if isinstance(error, protocol.ProtocolError):
        return 422, error_body(error.code.value, error.message)
    if isinstance(error, web.HTTPException) and error.status >= 400:
        return error.status, error_body(http_error_code(error.status), error.reason)
    return None
