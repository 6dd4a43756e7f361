"""Staff accounts: roles and permissions, argon2id passwords, login throttling,
sessions with CSRF tokens; every change audited (``node.audit``).

>>> audit = AuditLog(db)
>>> accounts = AccountService(db, audit=audit)
>>> admin, one_time = await accounts.create_first_admin(secrets.token_bytes, now_ms=now)
>>> account = await accounts.authenticate("admin", one_time, now_ms=now, source="web")
>>> token, csrf = await accounts.start_session(account, now_ms=now, random_bytes=...)

Every failure is an :class:`AccountError` with an :class:`AccountErrorCode` (storage
failures stay ``StorageError``).
"""

from ._errors import AccountError, AccountErrorCode, PasswordProblem
from ._passwords import (
    COMMON_PASSWORDS,
    MAX_PASSWORD,
    MIN_PASSWORD,
    check_password_policy,
    one_time_password,
    production_hasher,
)
from ._roles import PERMISSIONS, Permission, Role, allowed
from ._service import (
    FIRST_ADMIN,
    LOCKOUT_BASE_MS,
    LOCKOUT_MAX_MS,
    LOCKOUT_THRESHOLD,
    SESSION_ABSOLUTE_MS,
    SESSION_IDLE_MS,
    AccountService,
    RandomBytes,
    Session,
    authorize,
    check_csrf,
    lockout_ms,
    normalize_username,
)
from ._store import Account, AccountStore

__all__ = [
    "COMMON_PASSWORDS",
    "FIRST_ADMIN",
    "LOCKOUT_BASE_MS",
    "LOCKOUT_MAX_MS",
    "LOCKOUT_THRESHOLD",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "PERMISSIONS",
    "SESSION_ABSOLUTE_MS",
    "SESSION_IDLE_MS",
    "Account",
    "AccountError",
    "AccountErrorCode",
    "AccountService",
    "AccountStore",
    "PasswordProblem",
    "Permission",
    "RandomBytes",
    "Role",
    "Session",
    "allowed",
    "authorize",
    "check_csrf",
    "check_password_policy",
    "lockout_ms",
    "normalize_username",
    "one_time_password",
    "production_hasher",
]
