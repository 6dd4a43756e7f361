"""Accounts: roles, first admin, login throttling, passwords, sessions, CSRF, and the
audit rows every change writes; store tests on both backends."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import unicodedata
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import select
from sqlalchemy.engine import Connection

from node.accounts import (
    FIRST_ADMIN,
    LOCKOUT_BASE_MS,
    LOCKOUT_MAX_MS,
    LOCKOUT_THRESHOLD,
    SESSION_ABSOLUTE_MS,
    SESSION_IDLE_MS,
    Account,
    AccountError,
    AccountErrorCode,
    AccountService,
    PasswordProblem,
    Permission,
    Role,
    allowed,
    authorize,
    check_csrf,
    check_password_policy,
    lockout_ms,
    production_hasher,
)
from node.audit import AuditLog
from node.storage import Database
from node.storage._schema import sessions

from .conftest import NOW

#: Tests hash with argon2id at its cheapest (8 KiB, 1 pass): the policy, not the
#: parameters, is under test here; the production parameters are tested once below.
CHEAP = PasswordHasher.from_parameters(CHEAPEST)
GOOD = "correct horse battery"
GOOD2 = "another long passphrase"
MINUTE = 60_000

A, C, W, R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR
#: The issue's role list, written out independently of node.accounts._roles.
EXPECTED: dict[Permission, set[Role]] = {
    Permission.MANAGE_ACCOUNTS: {A},
    Permission.EDIT_SETTINGS: {A},
    Permission.MANAGE_PEERS: {A},
    Permission.MANAGE_PROGRAMS: {C},
    Permission.MESSAGE: {C},
    Permission.VIEW_REPORTS: {C, R},
    Permission.EDIT_HOUSEHOLDS: {W},
    Permission.RECORD_DELIVERIES: {W},
    Permission.VIEW_HOUSEHOLDS: {C, W},
    Permission.VIEW_PII: {W},
    Permission.EDIT_SCORING: {C},
    Permission.OVERRIDE_DUPLICATE: {C},
    Permission.VIEW_AUDIT_LOG: {A, R},
    Permission.VIEW_DASHBOARD: {A, C, W, R},
}


def rng(seed: str = "") -> Callable[[int], bytes]:
    """Deterministic random bytes: a different value each call."""
    counter = itertools.count()
    return lambda n: hashlib.shake_256(f"{seed}:{next(counter)}".encode()).digest(n)


@pytest.fixture
async def svc(db: Database) -> AccountService:
    await db.upgrade()
    return AccountService(db, audit=AuditLog(db), hasher=CHEAP)


async def ready_admin(svc: AccountService) -> Account:
    """The first admin, logged in once with its one-time password changed to GOOD."""
    admin, otp = await svc.create_first_admin(rng("admin"), now_ms=NOW)
    return await svc.change_password(admin, otp, GOOD, now_ms=NOW)


async def make(
    svc: AccountService, admin: Account, username: str, role: Role = Role.CASE_WORKER
) -> Account:
    account, otp = await svc.create_account(
        admin,
        username=username,
        display_name=f"Name of {username}",
        role=role,
        random_bytes=rng(username),
        now_ms=NOW,
    )
    return await svc.change_password(account, otp, GOOD, now_ms=NOW)


async def codes(svc: AccountService) -> list[str]:
    return [r.action for r in reversed(await svc_audit(svc).query(limit=200))]


def svc_audit(svc: AccountService) -> AuditLog:
    return svc._audit


# -- roles ----------------------------------------------------------------------------


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_every_role_permission_pair(role: Role, permission: Permission) -> None:
    assert allowed(role, permission) is (role in EXPECTED[permission])


def test_the_table_covers_every_permission() -> None:
    assert set(EXPECTED) == set(Permission)


def test_authorize() -> None:
    base = Account(
        id=1,
        username="x",
        display_name="x",
        role=Role.AUDITOR,
        must_change_password=False,
        disabled=False,
        created_ms=0,
        updated_ms=0,
        failed_logins=0,
        locked_until_ms=None,
    )
    authorize(base, Permission.VIEW_AUDIT_LOG)
    cases = [
        (base, Permission.EDIT_SETTINGS, AccountErrorCode.FORBIDDEN),
        (
            dataclasses.replace(base, must_change_password=True),
            Permission.VIEW_DASHBOARD,
            AccountErrorCode.PASSWORD_CHANGE_REQUIRED,
        ),
        (
            dataclasses.replace(base, disabled=True),
            Permission.VIEW_DASHBOARD,
            AccountErrorCode.DISABLED,
        ),
    ]
    for account, permission, code in cases:
        with pytest.raises(AccountError) as info:
            authorize(account, permission)
        assert info.value.code is code


# -- passwords (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short pass", PasswordProblem.TOO_SHORT),
        ("x" * 257, PasswordProblem.TOO_LONG),
        ("Mohammed.Ali", PasswordProblem.SAME_AS_USERNAME),
        ("Password1234", PasswordProblem.TOO_COMMON),
        ("aaaaaaaaaaaaaaaa", PasswordProblem.TOO_COMMON),
        ("the old one is long", PasswordProblem.UNCHANGED),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, problem: PasswordProblem) -> None:
    with pytest.raises(AccountError) as info:
        check_password_policy(password, username="mohammed.ali", old="the old one is long")
    assert info.value.code is AccountErrorCode.WEAK_PASSWORD
    assert info.value.problem is problem


def test_arabic_passwords_are_allowed_and_normalized() -> None:
    decomposed = unicodedata.normalize("NFD", "كلمة سرّ طويلة جداً")
    result = check_password_policy(decomposed, username="user")
    assert result == unicodedata.normalize("NFC", decomposed)


def test_lockout_schedule() -> None:
    assert [lockout_ms(n) for n in range(LOCKOUT_THRESHOLD)] == [0] * LOCKOUT_THRESHOLD
    assert lockout_ms(LOCKOUT_THRESHOLD) == LOCKOUT_BASE_MS
    assert lockout_ms(LOCKOUT_THRESHOLD + 1) == 2 * LOCKOUT_BASE_MS
    assert lockout_ms(LOCKOUT_THRESHOLD + 3) == 8 * LOCKOUT_BASE_MS
    assert lockout_ms(LOCKOUT_THRESHOLD + 100) == LOCKOUT_MAX_MS


def test_production_parameters() -> None:
    hasher = production_hasher()
    stored = hasher.hash(GOOD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hasher.verify(stored, GOOD)
    assert not hasher.check_needs_rehash(stored)


# -- first admin and must-change ------------------------------------------------------


async def test_first_admin_only_once(svc: AccountService) -> None:
    admin, otp = await svc.create_first_admin(rng(), now_ms=NOW)
    assert (admin.username, admin.role, admin.must_change_password) == (
        FIRST_ADMIN,
        Role.ADMIN,
        True,
    )
    assert len(otp) == 24 and otp.count("-") == 4
    with pytest.raises(AccountError) as info:
        await svc.create_first_admin(rng("again"), now_ms=NOW)
    assert info.value.code is AccountErrorCode.CONFLICT
    assert len(await svc.store.all()) == 1


async def test_the_one_time_password_must_be_changed(svc: AccountService) -> None:
    admin, otp = await svc.create_first_admin(rng(), now_ms=NOW)
    account = await svc.authenticate("admin", otp, now_ms=NOW, source="web")
    assert account.must_change_password
    with pytest.raises(AccountError) as info:
        authorize(account, Permission.VIEW_DASHBOARD)
    assert info.value.code is AccountErrorCode.PASSWORD_CHANGE_REQUIRED
    with pytest.raises(AccountError) as info:  # admin powers wait for the change too
        await svc.create_account(
            account,
            username="bob",
            display_name="Bob",
            role="auditor",
            random_bytes=rng(),
            now_ms=NOW,
        )
    assert info.value.code is AccountErrorCode.PASSWORD_CHANGE_REQUIRED
    with pytest.raises(AccountError) as info:
        await svc.change_password(account, otp, otp, now_ms=NOW)
    assert info.value.problem is PasswordProblem.UNCHANGED
    changed = await svc.change_password(account, otp, GOOD, now_ms=NOW + 1)
    assert not changed.must_change_password
    authorize(changed, Permission.MANAGE_ACCOUNTS)
    with pytest.raises(AccountError) as info:
        await svc.authenticate("admin", otp, now_ms=NOW + 2, source="web")
    assert info.value.code is AccountErrorCode.BAD_CREDENTIALS
    assert (await svc.authenticate("ADMIN", GOOD, now_ms=NOW + 3, source="web")).id == admin.id


async def test_change_password_needs_the_old_one(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    with pytest.raises(AccountError) as info:
        await svc.change_password(admin, "not the password", GOOD2, now_ms=NOW)
    assert info.value.code is AccountErrorCode.BAD_CREDENTIALS
    assert (await svc.store.get(admin.id)).failed_logins == 1  # type: ignore[union-attr]


async def test_arabic_password_logs_in_from_either_normal_form(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    arabic = "كلمة سرّ طويلة جداً"
    await svc.change_password(admin, GOOD, unicodedata.normalize("NFD", arabic), now_ms=NOW)
    account = await svc.authenticate(
        "admin", unicodedata.normalize("NFC", arabic), now_ms=NOW, source="web"
    )
    assert account.id == admin.id


# -- creating accounts ----------------------------------------------------------------


async def test_create_account_rules(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    alice, otp = await svc.create_account(
        admin,
        username="Alice.W",
        display_name="  أليس  ",
        role="coordinator",
        random_bytes=rng("a"),
        now_ms=NOW,
    )
    assert (alice.username, alice.display_name, alice.role) == ("alice.w", "أليس", C)
    assert alice.must_change_password
    assert (await svc.authenticate("ALICE.w", otp, now_ms=NOW, source="web")).id == alice.id

    async def attempt(**kwargs: object) -> AccountErrorCode:
        args: dict[str, object] = {
            "username": "newuser",
            "display_name": "New",
            "role": "auditor",
            "random_bytes": rng("n"),
            "now_ms": NOW,
        }
        by = kwargs.pop("by", admin)
        args.update(kwargs)
        with pytest.raises(AccountError) as info:
            await svc.create_account(by, **args)  # type: ignore[arg-type]
        return info.value.code

    assert await attempt(username="ALICE.W") is AccountErrorCode.CONFLICT
    for bad in ("ab", "x" * 33, "has space", "عربي", "semi;colon"):
        assert await attempt(username=bad) is AccountErrorCode.INVALID
    for bad in ("", "   ", "x" * 101, "tab\there"):
        assert await attempt(display_name=bad) is AccountErrorCode.INVALID
    assert await attempt(role="root") is AccountErrorCode.INVALID
    worker = await make(svc, admin, "worker")
    assert await attempt(by=worker) is AccountErrorCode.FORBIDDEN


# -- authentication and throttling ----------------------------------------------------


async def test_wrong_password_and_unknown_user_look_the_same(svc: AccountService) -> None:
    await ready_admin(svc)
    errors = []
    for username in ("admin", "nobody"):
        with pytest.raises(AccountError) as info:
            await svc.authenticate(username, "wrong password!", now_ms=NOW, source="web")
        errors.append(info.value)
    assert [e.code for e in errors] == [AccountErrorCode.BAD_CREDENTIALS] * 2
    assert str(errors[0]) == str(errors[1])


async def test_disabled_account_is_only_revealed_to_the_right_password(
    svc: AccountService,
) -> None:
    admin = await ready_admin(svc)
    worker = await make(svc, admin, "worker")
    await svc.disable(admin, worker.id, now_ms=NOW)
    with pytest.raises(AccountError) as info:
        await svc.authenticate("worker", "wrong password!", now_ms=NOW, source="web")
    assert info.value.code is AccountErrorCode.BAD_CREDENTIALS
    with pytest.raises(AccountError) as info:
        await svc.authenticate("worker", GOOD, now_ms=NOW, source="web")
    assert info.value.code is AccountErrorCode.DISABLED
    await svc.enable(admin, worker.id, now_ms=NOW)
    assert (await svc.authenticate("worker", GOOD, now_ms=NOW, source="web")).id == worker.id


async def fail(svc: AccountService, username: str, now_ms: int) -> AccountError:
    with pytest.raises(AccountError) as info:
        await svc.authenticate(username, "wrong password!", now_ms=now_ms, source="web")
    return info.value


async def test_lockout_and_its_expiry(svc: AccountService) -> None:
    await ready_admin(svc)
    t = NOW
    for _ in range(LOCKOUT_THRESHOLD):
        assert (await fail(svc, "admin", t)).code is AccountErrorCode.BAD_CREDENTIALS
        t += 1000
    locked_at = t - 1000
    with pytest.raises(AccountError) as info:  # even the right password is refused
        await svc.authenticate("admin", GOOD, now_ms=t, source="web")
    assert info.value.code is AccountErrorCode.LOCKED
    assert info.value.retry_after_ms == locked_at + LOCKOUT_BASE_MS
    # One more failure after the lock ends doubles it.
    t = locked_at + LOCKOUT_BASE_MS
    assert (await fail(svc, "admin", t)).code is AccountErrorCode.BAD_CREDENTIALS
    assert (await fail(svc, "admin", t + 1)).retry_after_ms == t + 2 * LOCKOUT_BASE_MS
    # After that one, the right password works and clears the count.
    account = await svc.authenticate("admin", GOOD, now_ms=t + 2 * LOCKOUT_BASE_MS, source="web")
    assert (account.failed_logins, account.locked_until_ms) == (0, None)
    actions = await codes(svc)
    assert actions.count("login.lockout") == 2
    assert actions[-1] == "login.success"


async def test_unknown_usernames_lock_like_real_ones(svc: AccountService) -> None:
    await ready_admin(svc)
    for i in range(LOCKOUT_THRESHOLD):
        assert (await fail(svc, "ghost", NOW + i)).code is AccountErrorCode.BAD_CREDENTIALS
    locked = await fail(svc, "ghost", NOW + LOCKOUT_THRESHOLD)
    assert locked.code is AccountErrorCode.LOCKED
    assert locked.retry_after_ms == NOW + LOCKOUT_THRESHOLD - 1 + LOCKOUT_BASE_MS


async def test_an_admin_reset_clears_a_lockout(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    worker = await make(svc, admin, "worker")
    for i in range(LOCKOUT_THRESHOLD):
        await fail(svc, "worker", NOW + i)
    otp = await svc.reset_password(admin, worker.id, random_bytes=rng("r"), now_ms=NOW + 10)
    account = await svc.authenticate("worker", otp, now_ms=NOW + 11, source="web")
    assert account.must_change_password


async def test_recover_from_the_command_line(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    worker = await make(svc, admin, "worker")
    for i in range(LOCKOUT_THRESHOLD + 2):
        await fail(svc, "admin", NOW + i)
    token, _csrf = await svc.start_session(admin, now_ms=NOW, random_bytes=rng("s"))
    otp = await svc.recover("ADMIN", random_bytes=rng("rec"), now_ms=NOW + 100)
    with pytest.raises(AccountError) as gone:
        await svc.resume(token, now_ms=NOW + 101)
    assert gone.value.code is AccountErrorCode.EXPIRED  # its sessions ended
    account = await svc.authenticate("admin", otp, now_ms=NOW + 102, source="cli")
    assert account.must_change_password and not account.disabled  # lockout cleared
    (row,) = await AuditLog(svc._db).query(action="password.recover")
    assert row.actor is None and row.target == f"account:{admin.id}"
    for name, code in (
        ("worker", AccountErrorCode.INVALID),
        ("nobody", AccountErrorCode.NOT_FOUND),
    ):
        with pytest.raises(AccountError) as refused:
            await svc.recover(name, random_bytes=rng(), now_ms=NOW)
        assert refused.value.code is code
    assert (await svc.store.get(worker.id)) == worker


async def test_password_is_rehashed_when_parameters_change(db: Database) -> None:
    await db.upgrade()
    old = AccountService(db, audit=AuditLog(db), hasher=CHEAP)
    admin, otp = await old.create_first_admin(rng(), now_ms=NOW)
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    new = AccountService(db, audit=AuditLog(db), hasher=stronger)
    await new.authenticate("admin", otp, now_ms=NOW, source="cli")

    def stored(conn: Connection) -> str:
        from node.storage._schema import accounts

        return str(conn.execute(select(accounts.c.password_hash)).scalar_one())

    assert "m=16,t=2,p=1" in await db.read(stored)
    assert (await new.authenticate("admin", otp, now_ms=NOW, source="cli")).id == admin.id
    assert json.loads((await AuditLog(db).query(limit=2))[1].details)["rehashed"] is True


async def test_source_must_be_a_channel_label(svc: AccountService) -> None:
    with pytest.raises(ValueError):
        await svc.authenticate("admin", GOOD, now_ms=NOW, source="192.168.1.10")


# -- last admin -----------------------------------------------------------------------


async def test_the_last_enabled_admin_stays(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    for action in (
        svc.disable(admin, admin.id, now_ms=NOW),
        svc.set_role(admin, admin.id, Role.AUDITOR, now_ms=NOW),
    ):
        with pytest.raises(AccountError) as info:
            await action
        assert info.value.code is AccountErrorCode.CONFLICT
    second = await make(svc, admin, "second", Role.COORDINATOR)
    second = await svc.set_role(admin, second.id, Role.ADMIN, now_ms=NOW)
    await svc.disable(second, admin.id, now_ms=NOW)
    with pytest.raises(AccountError) as info:
        await svc.set_role(second, second.id, "auditor", now_ms=NOW)
    assert info.value.code is AccountErrorCode.CONFLICT
    with pytest.raises(AccountError) as info:  # a disabled admin has no powers
        await svc.enable(admin, admin.id, now_ms=NOW)
    assert info.value.code is AccountErrorCode.FORBIDDEN
    await svc.enable(second, admin.id, now_ms=NOW)
    demoted = await svc.set_role(admin, second.id, Role.AUDITOR, now_ms=NOW)
    assert demoted.role is Role.AUDITOR


async def test_admin_actions_on_a_missing_account(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    for action in (
        svc.disable(admin, 999, now_ms=NOW),
        svc.set_role(admin, 999, Role.AUDITOR, now_ms=NOW),
        svc.reset_password(admin, 999, random_bytes=rng(), now_ms=NOW),
    ):
        with pytest.raises(AccountError) as info:
            await action
        assert info.value.code is AccountErrorCode.NOT_FOUND


# -- sessions and CSRF ----------------------------------------------------------------


async def test_session_idle_expiry(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    token, csrf = await svc.start_session(admin, now_ms=NOW, random_bytes=rng())
    t = NOW
    for _ in range(4):  # activity keeps it alive past one idle period
        t += SESSION_IDLE_MS - MINUTE
        session = await svc.resume(token, now_ms=t)
        assert session.account.id == admin.id and session.csrf_token == csrf
    with pytest.raises(AccountError) as info:
        await svc.resume(token, now_ms=t + SESSION_IDLE_MS)
    assert info.value.code is AccountErrorCode.EXPIRED
    with pytest.raises(AccountError):  # and it is gone, not merely refused once
        await svc.resume(token, now_ms=t)


async def test_session_absolute_expiry(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    token, _ = await svc.start_session(admin, now_ms=NOW, random_bytes=rng())
    t = NOW
    while t + 20 * MINUTE < NOW + SESSION_ABSOLUTE_MS:
        t += 20 * MINUTE
        await svc.resume(token, now_ms=t)
    with pytest.raises(AccountError) as info:
        await svc.resume(token, now_ms=NOW + SESSION_ABSOLUTE_MS)
    assert info.value.code is AccountErrorCode.EXPIRED


async def test_only_the_token_hash_is_stored(db: Database, svc: AccountService) -> None:
    admin = await ready_admin(svc)
    token, _ = await svc.start_session(admin, now_ms=NOW, random_bytes=rng())

    def stored(conn: Connection) -> list[bytes]:
        return [bytes(h) for h in conn.execute(select(sessions.c.token_hash)).scalars()]

    assert await db.read(stored) == [hashlib.sha256(token.encode()).digest()]
    with pytest.raises(AccountError) as info:
        await svc.resume("not a token", now_ms=NOW)
    assert info.value.code is AccountErrorCode.EXPIRED


async def test_end_session_and_disable_end_sessions(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    worker = await make(svc, admin, "worker")
    first, _ = await svc.start_session(worker, now_ms=NOW, random_bytes=rng("1"))
    second, _ = await svc.start_session(worker, now_ms=NOW, random_bytes=rng("2"))
    await svc.end_session(await svc.resume(first, now_ms=NOW), now_ms=NOW)
    with pytest.raises(AccountError):
        await svc.resume(first, now_ms=NOW)
    await svc.resume(second, now_ms=NOW)
    await svc.disable(admin, worker.id, now_ms=NOW)
    with pytest.raises(AccountError) as info:
        await svc.resume(second, now_ms=NOW)
    assert info.value.code is AccountErrorCode.EXPIRED
    with pytest.raises(AccountError) as info:
        await svc.start_session(worker, now_ms=NOW, random_bytes=rng("3"))
    assert info.value.code is AccountErrorCode.DISABLED


async def test_password_change_keeps_only_the_current_session(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    here, _ = await svc.start_session(admin, now_ms=NOW, random_bytes=rng("here"))
    there, _ = await svc.start_session(admin, now_ms=NOW, random_bytes=rng("there"))
    current = await svc.resume(here, now_ms=NOW)
    await svc.change_password(admin, GOOD, GOOD2, now_ms=NOW, keep=current)
    await svc.resume(here, now_ms=NOW)
    with pytest.raises(AccountError):
        await svc.resume(there, now_ms=NOW)
    otp = await svc.reset_password(admin, admin.id, random_bytes=rng("r"), now_ms=NOW)
    assert otp
    with pytest.raises(AccountError):  # a reset ends every session
        await svc.resume(here, now_ms=NOW)


async def test_csrf(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    token, csrf = await svc.start_session(admin, now_ms=NOW, random_bytes=rng())
    session = await svc.resume(token, now_ms=NOW)
    check_csrf(session, csrf)
    for bad in (None, "", csrf[:-1], csrf + "x", token, "é" + csrf[1:]):
        with pytest.raises(AccountError) as info:
            check_csrf(session, bad)
        assert info.value.code is AccountErrorCode.CSRF


# -- the audit trail ------------------------------------------------------------------


async def test_every_change_is_audited_without_secrets(db: Database, svc: AccountService) -> None:
    admin, otp = await svc.create_first_admin(rng("admin"), now_ms=NOW)
    admin = await svc.change_password(admin, otp, GOOD, now_ms=NOW)
    secrets = [otp, GOOD, GOOD2, "wrong password!", "زيد حسن", "zaid.h", "ghost"]
    worker, worker_otp = await svc.create_account(
        admin,
        username="zaid.h",
        display_name="زيد حسن",
        role=Role.CASE_WORKER,
        random_bytes=rng("w"),
        now_ms=NOW,
    )
    secrets.append(worker_otp)
    await svc.authenticate("zaid.h", worker_otp, now_ms=NOW, source="web")
    await fail(svc, "zaid.h", NOW)
    await fail(svc, "ghost", NOW)
    worker = await svc.change_password(worker, worker_otp, GOOD2, now_ms=NOW)
    token, csrf = await svc.start_session(worker, now_ms=NOW, random_bytes=rng("s"))
    secrets += [token, csrf]
    await svc.set_role(admin, worker.id, Role.AUDITOR, now_ms=NOW)
    reset = await svc.reset_password(admin, worker.id, random_bytes=rng("x"), now_ms=NOW)
    secrets.append(reset)
    await svc.disable(admin, worker.id, now_ms=NOW)
    await svc.enable(admin, worker.id, now_ms=NOW)
    token2, _ = await svc.start_session(admin, now_ms=NOW, random_bytes=rng("t"))
    secrets.append(token2)
    await svc.end_session(await svc.resume(token2, now_ms=NOW), now_ms=NOW)

    assert await codes(svc) == [
        "account.create",
        "password.change",
        "account.create",
        "login.success",
        "login.failure",
        "login.failure",
        "password.change",
        "account.role",
        "password.reset",
        "account.disable",
        "account.enable",
        "session.end",
    ]
    rows = await svc_audit(svc).query(limit=200)
    for row in rows:
        text = f"{row.action} {row.target} {row.details}"
        for secret in secrets:
            assert secret not in text, (row, secret)
    assert json.loads(rows[4].details) == {"from": "case_worker", "to": "auditor"}
    assert json.loads(rows[6].details) == {"reason": "unknown_user", "source": "web"}
    assert rows[6].actor is None and rows[6].target is None
    report = await svc_audit(svc).verify()
    assert (report.ok, report.rows) == (True, 12)


async def test_a_failed_change_writes_no_audit_row(svc: AccountService) -> None:
    admin = await ready_admin(svc)
    before = await svc_audit(svc).head()
    with pytest.raises(AccountError):
        await svc.disable(admin, admin.id, now_ms=NOW)
    assert await svc_audit(svc).head() == before
