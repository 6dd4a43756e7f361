"""Account rules: creation, login with throttling, passwords, roles, sessions, CSRF.

Every state change runs in one ``Database.write`` that first takes the audit log's lock
(``AuditLog.lock_txn``), changes the account rows, and appends the audit row: a change
and its audit row exist together or not at all, and changes that check several rows
(the first admin, the last enabled admin) serialize on both backends. Argon2 runs in a
worker thread, outside every transaction, so the write lock is never held while hashing.

Login throttling. After ``LOCKOUT_THRESHOLD`` (5) consecutive failures an account is
locked for ``LOCKOUT_BASE_MS`` (1 min), doubling with each further failure up to
``LOCKOUT_MAX_MS`` (1 h); a success or an admin's password reset clears it. Five free
tries cover typing mistakes (Arabic/Latin keyboard layout slips are common); past them an
online guesser gets about 24 tries a day, far under NIST SP 800-63B §5.2.2's ceiling of
100 consecutive failures; the 1 h cap bounds how long an attacker can lock a colleague
out. While locked, passwords are not even checked. Unknown usernames get the same
treatment from an in-memory table (``_PHANTOM_MAX`` names), so neither LOCKED nor
BAD_CREDENTIALS nor the time taken (a dummy hash is verified) tells whether a username
exists; DISABLED is only said to someone who gave the right password.

Sessions. A session ends ``SESSION_ABSOLUTE_MS`` (12 h: one working day, so staff log in
once per shift) after login, and after ``SESSION_IDLE_MS`` (30 min, the upper end OWASP's
Session Management Cheat Sheet suggests for low-risk applications) without a request:
office computers are shared, and a forgotten session closes itself. The cookie value is
the token; only its SHA-256 is stored. CSRF uses the synchronizer-token pattern: one
random secret per session, compared in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy.engine import Connection

from ..audit import AuditLog, DetailValue
from ..storage import Database, StorageError, StorageErrorCode
from ._errors import AccountError, AccountErrorCode
from ._passwords import (
    check_password_policy,
    normalize_password,
    one_time_password,
    production_hasher,
    verify_hash,
)
from ._roles import Permission, Role, allowed
from ._store import Account, AccountStore, SessionRow

__all__ = [
    "LOCKOUT_BASE_MS",
    "LOCKOUT_MAX_MS",
    "LOCKOUT_THRESHOLD",
    "SESSION_ABSOLUTE_MS",
    "SESSION_IDLE_MS",
    "AccountService",
    "RandomBytes",
    "Session",
    "check_csrf",
    "lockout_ms",
]

RandomBytes = Callable[[int], bytes]

LOCKOUT_THRESHOLD: Final = 5
LOCKOUT_BASE_MS: Final = 60_000
LOCKOUT_MAX_MS: Final = 3_600_000
SESSION_ABSOLUTE_MS: Final = 12 * 3_600_000
SESSION_IDLE_MS: Final = 30 * 60_000
#: ``last_seen_ms`` is written at most once a minute: each write is an fsync on SQLite
#: (``synchronous=FULL``), and idle expiry does not need finer resolution.
_TOUCH_EVERY_MS: Final = 60_000
#: 32 random bytes (256 bits) per token and CSRF secret (OWASP: at least 64 bits).
_TOKEN_BYTES: Final = 32
#: Unknown usernames whose failures we track; the oldest is forgotten first.
_PHANTOM_MAX: Final = 10_000
_USERNAME: Final = re.compile(r"[a-z0-9._-]{3,32}")
_SOURCE: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_MAX_DISPLAY_NAME: Final = 100
FIRST_ADMIN: Final = "admin"


def lockout_ms(failures: int) -> int:
    """How long an account is locked after ``failures`` consecutive failures."""
    if failures < LOCKOUT_THRESHOLD:
        return 0
    return min(LOCKOUT_BASE_MS << min(failures - LOCKOUT_THRESHOLD, 32), LOCKOUT_MAX_MS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A live session and its (freshly read) account."""

    account: Account
    token_hash: bytes
    csrf_token: str
    created_ms: int
    last_seen_ms: int
    expires_ms: int


def check_csrf(session: Session, submitted: str | None) -> None:
    """Check a state-changing form's CSRF token against the session's.

    Raises:
        AccountError: CSRF if it is missing or differs.
    """
    expected = session.csrf_token.encode("ascii")
    given = (submitted or "").encode("utf-8", "replace")
    if not hmac.compare_digest(expected, given):
        raise AccountError("the form's CSRF token does not match", code=AccountErrorCode.CSRF)


def authorize(account: Account, permission: Permission) -> None:
    """Check that ``account`` may do ``permission`` now.

    Raises:
        AccountError: DISABLED, PASSWORD_CHANGE_REQUIRED (a one-time password is still
            in use: only the password change is allowed) or FORBIDDEN.
    """
    if account.disabled:
        raise AccountError("the account is disabled", code=AccountErrorCode.DISABLED)
    if account.must_change_password:
        raise AccountError(
            "change the password first", code=AccountErrorCode.PASSWORD_CHANGE_REQUIRED
        )
    if not allowed(account.role, permission):
        raise AccountError(f"role may not {permission.value}", code=AccountErrorCode.FORBIDDEN)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


def _random(random_bytes: RandomBytes, n: int) -> bytes:
    raw = random_bytes(n)
    if type(raw) is not bytes or len(raw) != n:
        raise ValueError("random_bytes returned the wrong length")
    return raw


def _target(account_id: int) -> str:
    return f"account:{account_id}"


def _err(message: str, code: AccountErrorCode) -> AccountError:
    return AccountError(message, code=code)


def normalize_username(username: str) -> str:
    """The stored form of ``username``.

    Raises:
        AccountError: INVALID unless it is 3-32 of ``a-z 0-9 . _ -`` (any case).
    """
    norm = username.lower()
    if not _USERNAME.fullmatch(norm):
        raise _err("a username is 3-32 of a-z, 0-9, '.', '_', '-'", AccountErrorCode.INVALID)
    return norm


def _display_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(name) <= _MAX_DISPLAY_NAME or any(
        unicodedata.category(ch) == "Cc" for ch in name
    ):
        raise _err(
            f"a display name is 1-{_MAX_DISPLAY_NAME} printable characters",
            AccountErrorCode.INVALID,
        )
    return name


class AccountService:
    """Staff accounts and their sessions. One instance per node.

    Args:
        db: the node's database, upgraded.
        audit: the node's audit log (same database).
        hasher: argon2 hasher; :func:`production_hasher` unless a test passes a cheap one.
    """

    def __init__(
        self, db: Database, *, audit: AuditLog, hasher: PasswordHasher | None = None
    ) -> None:
        self._db = db
        self._audit = audit
        self._store = AccountStore(db)
        self._hasher = hasher if hasher is not None else production_hasher()
        self._dummy_hash: str | None = None
        self._phantoms: dict[str, tuple[int, int]] = {}  # name -> (failures, locked_until)

    @property
    def store(self) -> AccountStore:
        """The accounts store (reads for pages)."""
        return self._store

    # -- helpers ------------------------------------------------------------------

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, normalize_password(password))

    async def _verify(self, stored: str, password: str) -> bool:
        return await asyncio.to_thread(verify_hash, self._hasher, stored, password)

    def _audit_txn(
        self,
        conn: Connection,
        actor: int | None,
        action: str,
        target: str | None,
        now_ms: int,
        **details: DetailValue,
    ) -> None:
        self._audit.record_txn(conn, actor, action, target, details, now_ms=now_ms)

    def _admin_txn(self, conn: Connection, by: Account) -> Account:
        actor = self._store.get_txn(conn, by.id)
        if actor is None or actor.disabled or actor.role is not Role.ADMIN:
            raise _err("only an enabled admin may do this", AccountErrorCode.FORBIDDEN)
        if actor.must_change_password:
            raise _err("change the password first", AccountErrorCode.PASSWORD_CHANGE_REQUIRED)
        return actor

    def _target_txn(self, conn: Connection, account_id: int) -> Account:
        account = self._store.get_txn(conn, account_id, lock=True)
        if account is None:
            raise _err("no such account", AccountErrorCode.NOT_FOUND)
        return account

    def _keep_an_admin_txn(self, conn: Connection, target: Account) -> None:
        if target.role is Role.ADMIN and not target.disabled:
            admins = self._store.enabled_admins_txn(conn)
            if admins == [target.id]:
                raise _err("the last enabled admin must stay", AccountErrorCode.CONFLICT)

    # -- creation -----------------------------------------------------------------

    async def create_first_admin(
        self, random_bytes: RandomBytes, *, now_ms: int
    ) -> tuple[Account, str]:
        """On first run, create the admin ``admin`` with a one-time password.

        Returns:
            The account and its one-time password: show it once, never store or log it.
            The account must change it at first login.

        Raises:
            AccountError: CONFLICT if any account exists already.
        """
        password = one_time_password(random_bytes)
        password_hash = await self._hash(password)
        account = await self._db.write(self._first_admin_txn, password_hash, now_ms)
        return account, password

    def _first_admin_txn(self, conn: Connection, password_hash: str, now_ms: int) -> Account:
        self._audit.lock_txn(conn)
        if self._store.count_txn(conn):
            raise _err("an account exists already", AccountErrorCode.CONFLICT)
        account = self._store.insert_txn(
            conn,
            username=FIRST_ADMIN,
            display_name="Administrator",
            role=Role.ADMIN,
            password_hash=password_hash,
            must_change_password=True,
            now_ms=now_ms,
        )
        self._audit_txn(conn, None, "account.create", _target(account.id), now_ms, role="admin")
        return account

    async def create_account(
        self,
        by_admin: Account,
        *,
        username: str,
        display_name: str,
        role: Role | str,
        random_bytes: RandomBytes,
        now_ms: int,
    ) -> tuple[Account, str]:
        """Create an account with a one-time password (changed at first login).

        Raises:
            AccountError: FORBIDDEN (not an enabled admin), INVALID (username, display
                name or role), CONFLICT (username taken, in any case).
        """
        norm = normalize_username(username)
        name = _display_name(display_name)
        try:
            role = Role(role)
        except ValueError:
            raise _err("unknown role", AccountErrorCode.INVALID) from None
        password = one_time_password(random_bytes)
        password_hash = await self._hash(password)
        try:
            account = await self._db.write(
                self._create_txn, by_admin, norm, name, role, password_hash, now_ms
            )
        except StorageError as error:
            if error.code is StorageErrorCode.CONFLICT:
                raise _err("username taken", AccountErrorCode.CONFLICT) from None
            raise
        return account, password

    def _create_txn(
        self,
        conn: Connection,
        by: Account,
        username: str,
        name: str,
        role: Role,
        password_hash: str,
        now_ms: int,
    ) -> Account:
        self._audit.lock_txn(conn)
        self._admin_txn(conn, by)
        if self._store.by_username_txn(conn, username) is not None:
            raise _err("username taken", AccountErrorCode.CONFLICT)
        account = self._store.insert_txn(
            conn,
            username=username,
            display_name=name,
            role=role,
            password_hash=password_hash,
            must_change_password=True,
            now_ms=now_ms,
        )
        self._audit_txn(conn, by.id, "account.create", _target(account.id), now_ms, role=role.value)
        return account

    # -- login --------------------------------------------------------------------

    async def authenticate(
        self, username: str, password: str, *, now_ms: int, source: str
    ) -> Account:
        """Check a login; on success clear the failure count (and re-hash the password
        if the hasher's parameters changed).

        Args:
            source: the channel, such as ``web`` or ``cli`` (audited; not an IP address,
                which is personal data).

        Returns:
            The account; if ``must_change_password``, only a password change is allowed.

        Raises:
            AccountError: BAD_CREDENTIALS (wrong password or unknown username: the same
                error, message and work), LOCKED (with ``retry_after_ms``), DISABLED
                (only after a right password).
        """
        if not _SOURCE.fullmatch(source):
            raise ValueError("source is a short channel label such as 'web'")
        norm = username.lower()
        found = await self._db.read(self._login_lookup_txn, norm)
        if found is None:
            return await self._unknown_login(norm, password, now_ms=now_ms, source=source)
        account, stored = found
        if account.locked_until_ms is not None and now_ms < account.locked_until_ms:
            await self._db.write(
                self._note_txn, account.id, "login.failure", now_ms, reason="locked", source=source
            )
            raise self._locked(account.locked_until_ms)
        if not await self._verify(stored, password):
            await self._db.write(self._failure_txn, account.id, now_ms, source)
            raise _err("wrong username or password", AccountErrorCode.BAD_CREDENTIALS)
        if account.disabled:
            await self._db.write(
                self._note_txn,
                account.id,
                "login.failure",
                now_ms,
                reason="disabled",
                source=source,
            )
            raise _err("the account is disabled", AccountErrorCode.DISABLED)
        new_hash = None
        if self._hasher.check_needs_rehash(stored):
            new_hash = await self._hash(password)
        return await self._db.write(self._success_txn, account.id, new_hash, now_ms, source)

    def _login_lookup_txn(self, conn: Connection, norm: str) -> tuple[Account, str] | None:
        account = self._store.by_username_txn(conn, norm)
        if account is None:
            return None
        stored = self._store.password_hash_txn(conn, account.id)
        assert stored is not None
        return account, stored

    @staticmethod
    def _locked(until_ms: int) -> AccountError:
        return AccountError(
            "too many failed logins; try again later",
            code=AccountErrorCode.LOCKED,
            retry_after_ms=until_ms,
        )

    async def _unknown_login(
        self, norm: str, password: str, *, now_ms: int, source: str
    ) -> Account:
        failures, until = self._phantoms.get(norm, (0, 0))
        if now_ms < until:
            await self._db.write(
                self._note_txn, None, "login.failure", now_ms, reason="locked", source=source
            )
            raise self._locked(until)
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash("dummy password for unknown users")
        await self._verify(self._dummy_hash, password)
        failures += 1
        self._phantoms.pop(norm, None)
        if len(self._phantoms) >= _PHANTOM_MAX:
            self._phantoms.pop(next(iter(self._phantoms)))
        lock = lockout_ms(failures)
        self._phantoms[norm] = (failures, now_ms + lock if lock else 0)
        # The typed name is not audited: it may be a password typed in the wrong box.
        await self._db.write(
            self._note_txn, None, "login.failure", now_ms, reason="unknown_user", source=source
        )
        raise _err("wrong username or password", AccountErrorCode.BAD_CREDENTIALS)

    def _note_txn(
        self, conn: Connection, /, account_id: int | None, action: str, now_ms: int, **details: str
    ) -> None:
        target = None if account_id is None else _target(account_id)
        self._audit_txn(conn, account_id, action, target, now_ms, **details)

    def _failure_txn(self, conn: Connection, account_id: int, now_ms: int, source: str) -> None:
        self._audit.lock_txn(conn)
        account = self._target_txn(conn, account_id)
        failures = account.failed_logins + 1
        lock = lockout_ms(failures)
        until = now_ms + lock if lock else account.locked_until_ms
        self._store.update_txn(conn, account_id, failed_logins=failures, locked_until_ms=until)
        target = _target(account_id)
        self._audit_txn(
            conn, account_id, "login.failure", target, now_ms,
            reason="bad_password", source=source, failures=failures,
        )  # fmt: skip
        if lock:
            self._audit_txn(
                conn, account_id, "login.lockout", target, now_ms, until_ms=until, failures=failures
            )

    def _success_txn(
        self, conn: Connection, account_id: int, new_hash: str | None, now_ms: int, source: str
    ) -> Account:
        self._audit.lock_txn(conn)
        values: dict[str, object] = {"failed_logins": 0, "locked_until_ms": None}
        if new_hash is not None:
            values["password_hash"] = new_hash
        self._store.update_txn(conn, account_id, **values)
        self._audit_txn(
            conn, account_id, "login.success", _target(account_id), now_ms,
            source=source, rehashed=new_hash is not None,
        )  # fmt: skip
        return self._target_txn(conn, account_id)

    # -- passwords ----------------------------------------------------------------

    async def change_password(
        self,
        account: Account,
        old: str,
        new: str,
        *,
        now_ms: int,
        keep: Session | None = None,
    ) -> Account:
        """Change one's own password; ends the account's other sessions.

        Args:
            keep: the session making the change, which stays open.

        Raises:
            AccountError: BAD_CREDENTIALS (``old`` is wrong; counts as a failed login),
                WEAK_PASSWORD (with ``problem``), NOT_FOUND.
        """
        stored = await self._db.read(self._store.password_hash_txn, account.id)
        if stored is None:
            raise _err("no such account", AccountErrorCode.NOT_FOUND)
        if not await self._verify(stored, old):
            await self._db.write(self._failure_txn, account.id, now_ms, "password_change")
            raise _err("wrong password", AccountErrorCode.BAD_CREDENTIALS)
        new = check_password_policy(new, username=account.username, old=old)
        new_hash = await self._hash(new)
        keep_hash = keep.token_hash if keep is not None else None
        return await self._db.write(self._change_txn, account.id, new_hash, keep_hash, now_ms)

    def _change_txn(
        self, conn: Connection, account_id: int, new_hash: str, keep: bytes | None, now_ms: int
    ) -> Account:
        self._audit.lock_txn(conn)
        self._target_txn(conn, account_id)
        self._store.update_txn(
            conn, account_id, password_hash=new_hash, must_change_password=False, updated_ms=now_ms
        )
        ended = self._store.delete_sessions_txn(conn, account_id, keep=keep)
        self._audit_txn(
            conn, account_id, "password.change", _target(account_id), now_ms, sessions_ended=ended
        )
        return self._target_txn(conn, account_id)

    async def reset_password(
        self, by_admin: Account, account_id: int, *, random_bytes: RandomBytes, now_ms: int
    ) -> str:
        """Give an account a new one-time password (it must change it at next login),
        clear its lockout and end its sessions.

        Returns:
            The one-time password: show it once to the admin, never store or log it.

        Raises:
            AccountError: FORBIDDEN, NOT_FOUND.
        """
        password = one_time_password(random_bytes)
        password_hash = await self._hash(password)
        await self._db.write(self._reset_txn, by_admin, account_id, password_hash, now_ms)
        return password

    def _reset_txn(
        self, conn: Connection, by: Account, account_id: int, password_hash: str, now_ms: int
    ) -> None:
        self._audit.lock_txn(conn)
        self._admin_txn(conn, by)
        self._target_txn(conn, account_id)
        self._store.update_txn(
            conn,
            account_id,
            password_hash=password_hash,
            must_change_password=True,
            failed_logins=0,
            locked_until_ms=None,
            updated_ms=now_ms,
        )
        ended = self._store.delete_sessions_txn(conn, account_id)
        self._audit_txn(
            conn, by.id, "password.reset", _target(account_id), now_ms, sessions_ended=ended
        )

    async def recover(self, username: str, *, random_bytes: RandomBytes, now_ms: int) -> str:
        """Give an admin account a new one-time password from the node's own command
        line (``watan accounts recover``), for when no admin can sign in: the first
        admin's password was lost, or every admin forgot theirs. Whoever can run
        commands on the node's box already holds its keys and database, so this grants
        nothing new; it is audited (actor: the node) and re-enables the account.

        Raises:
            AccountError: NOT_FOUND (no such account), INVALID (not an admin: other
                roles are reset by an admin, in the UI).
        """
        norm = normalize_username(username)
        password = one_time_password(random_bytes)
        password_hash = await self._hash(password)
        await self._db.write(self._recover_txn, norm, password_hash, now_ms)
        return password

    def _recover_txn(self, conn: Connection, norm: str, password_hash: str, now_ms: int) -> None:
        self._audit.lock_txn(conn)
        account = self._store.by_username_txn(conn, norm)
        if account is None:
            raise _err("no such account", AccountErrorCode.NOT_FOUND)
        if account.role is not Role.ADMIN:
            raise _err("only admin accounts are recovered this way", AccountErrorCode.INVALID)
        self._store.update_txn(
            conn,
            account.id,
            password_hash=password_hash,
            must_change_password=True,
            disabled=False,
            failed_logins=0,
            locked_until_ms=None,
            updated_ms=now_ms,
        )
        ended = self._store.delete_sessions_txn(conn, account.id)
        self._audit_txn(
            conn, None, "password.recover", _target(account.id), now_ms, sessions_ended=ended
        )

    # -- status and role ------------------------------------------------------------

    async def disable(self, by_admin: Account, account_id: int, *, now_ms: int) -> Account:
        """Disable an account and end its sessions; a no-op if already disabled.

        Raises:
            AccountError: FORBIDDEN, NOT_FOUND, CONFLICT (the last enabled admin).
        """
        return await self._db.write(self._disabled_txn, by_admin, account_id, True, now_ms)

    async def enable(self, by_admin: Account, account_id: int, *, now_ms: int) -> Account:
        """Enable a disabled account; a no-op if already enabled.

        Raises:
            AccountError: FORBIDDEN, NOT_FOUND.
        """
        return await self._db.write(self._disabled_txn, by_admin, account_id, False, now_ms)

    def _disabled_txn(
        self, conn: Connection, by: Account, account_id: int, disabled: bool, now_ms: int
    ) -> Account:
        self._audit.lock_txn(conn)
        self._admin_txn(conn, by)
        target = self._target_txn(conn, account_id)
        if target.disabled == disabled:
            return target
        if disabled:
            self._keep_an_admin_txn(conn, target)
        self._store.update_txn(conn, account_id, disabled=disabled, updated_ms=now_ms)
        ended = self._store.delete_sessions_txn(conn, account_id)
        action = "account.disable" if disabled else "account.enable"
        self._audit_txn(conn, by.id, action, _target(account_id), now_ms, sessions_ended=ended)
        return self._target_txn(conn, account_id)

    async def set_role(
        self, by_admin: Account, account_id: int, role: Role | str, *, now_ms: int
    ) -> Account:
        """Change an account's role (effective at its next request).

        Raises:
            AccountError: FORBIDDEN, NOT_FOUND, INVALID (unknown role), CONFLICT
                (demoting the last enabled admin).
        """
        try:
            role = Role(role)
        except ValueError:
            raise _err("unknown role", AccountErrorCode.INVALID) from None
        return await self._db.write(self._role_txn, by_admin, account_id, role, now_ms)

    def _role_txn(
        self, conn: Connection, by: Account, account_id: int, role: Role, now_ms: int
    ) -> Account:
        self._audit.lock_txn(conn)
        self._admin_txn(conn, by)
        target = self._target_txn(conn, account_id)
        if target.role is role:
            return target
        self._keep_an_admin_txn(conn, target)
        self._store.update_txn(conn, account_id, role=role.value, updated_ms=now_ms)
        self._audit_txn(
            conn, by.id, "account.role", _target(account_id), now_ms,
            **{"from": target.role.value, "to": role.value},
        )  # fmt: skip
        return self._target_txn(conn, account_id)

    # -- sessions -----------------------------------------------------------------

    async def start_session(
        self, account: Account, *, now_ms: int, random_bytes: RandomBytes
    ) -> tuple[str, str]:
        """Open a session for an authenticated account.

        Returns:
            ``(token, csrf_token)``: the cookie value (send it HttpOnly, SameSite=Lax or
            Strict, Secure behind TLS) and the token every state-changing form carries.

        Raises:
            AccountError: NOT_FOUND, DISABLED.
        """
        token = _b64(_random(random_bytes, _TOKEN_BYTES))
        csrf_secret = _random(random_bytes, _TOKEN_BYTES)
        row = SessionRow(
            token_hash=_token_hash(token),
            account_id=account.id,
            csrf_secret=csrf_secret,
            created_ms=now_ms,
            last_seen_ms=now_ms,
            expires_ms=now_ms + SESSION_ABSOLUTE_MS,
        )
        await self._db.write(self._start_txn, row)
        return token, _b64(csrf_secret)

    def _start_txn(self, conn: Connection, row: SessionRow) -> None:
        account = self._store.get_txn(conn, row.account_id)
        if account is None:
            raise _err("no such account", AccountErrorCode.NOT_FOUND)
        if account.disabled:
            raise _err("the account is disabled", AccountErrorCode.DISABLED)
        self._store.insert_session_txn(conn, row)

    async def resume(self, token: str, *, now_ms: int) -> Session:
        """The session for a cookie's token, its idle timer restarted.

        Raises:
            AccountError: EXPIRED (unknown, ended, past its absolute or idle limit, or
                its account disabled: the session row is then removed).
        """
        session = await self._db.write(self._resume_txn, _token_hash(token), now_ms)
        if session is None:
            raise _err("the session has ended; log in again", AccountErrorCode.EXPIRED)
        return session

    def _resume_txn(self, conn: Connection, token_hash: bytes, now_ms: int) -> Session | None:
        row = self._store.session_txn(conn, token_hash)
        if row is None:
            return None
        account = self._store.get_txn(conn, row.account_id)
        if (
            account is None
            or account.disabled
            or now_ms >= row.expires_ms
            or now_ms >= row.last_seen_ms + SESSION_IDLE_MS
        ):
            self._store.delete_session_txn(conn, token_hash)
            return None  # committed: the expired row is gone
        last_seen = row.last_seen_ms
        if now_ms - last_seen >= _TOUCH_EVERY_MS:
            self._store.touch_session_txn(conn, token_hash, now_ms)
            last_seen = now_ms
        return Session(
            account=account,
            token_hash=token_hash,
            csrf_token=_b64(row.csrf_secret),
            created_ms=row.created_ms,
            last_seen_ms=last_seen,
            expires_ms=row.expires_ms,
        )

    async def end_session(self, session: Session, *, now_ms: int) -> None:
        """Log out: remove the session (audited); a no-op if it has already ended."""
        await self._db.write(self._end_txn, session, now_ms)

    def _end_txn(self, conn: Connection, session: Session, now_ms: int) -> None:
        if self._store.delete_session_txn(conn, session.token_hash):
            account_id = session.account.id
            self._audit_txn(conn, account_id, "session.end", _target(account_id), now_ms)
