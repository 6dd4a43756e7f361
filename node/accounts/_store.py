"""The accounts store: rows of ``accounts`` and ``sessions``, read and written within a
caller's transaction (``*_txn``), so that :class:`AccountService` can change an
account and append its audit row in one ``Database.write``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from ..storage import Database
from ..storage._schema import accounts, sessions
from ._roles import Role

__all__ = ["Account", "AccountStore", "SessionRow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A staff account, without its password hash."""

    id: int
    username: str
    display_name: str
    role: Role
    must_change_password: bool
    disabled: bool
    created_ms: int
    updated_ms: int
    failed_logins: int
    locked_until_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    """A stored session (the token itself is never stored)."""

    token_hash: bytes
    account_id: int
    csrf_secret: bytes
    created_ms: int
    last_seen_ms: int
    expires_ms: int


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        must_change_password=bool(row.must_change_password),
        disabled=bool(row.disabled),
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        failed_logins=row.failed_logins,
        locked_until_ms=row.locked_until_ms,
    )


class AccountStore:
    """Accounts and sessions. Public async methods are read transactions; ``*_txn``
    methods run inside a caller's transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reads, each one transaction --------------------------------------------

    async def get(self, account_id: int) -> Account | None:
        """The account with ``account_id``, or None."""
        return await self._db.read(self.get_txn, account_id)

    async def by_username(self, username: str) -> Account | None:
        """The account named ``username`` (any case), or None."""
        return await self._db.read(self.by_username_txn, username.lower())

    async def all(self) -> list[Account]:
        """Every account, by id."""
        return await self._db.read(self._list_txn)

    async def count(self) -> int:
        """How many accounts exist."""
        return await self._db.read(self.count_txn)

    # -- within a transaction -------------------------------------------------------

    def get_txn(self, conn: Connection, account_id: int, *, lock: bool = False) -> Account | None:
        query = select(accounts).where(accounts.c.id == account_id)
        row = conn.execute(query.with_for_update() if lock else query).one_or_none()
        return None if row is None else _account(row)

    def by_username_txn(self, conn: Connection, username: str) -> Account | None:
        row = conn.execute(select(accounts).where(accounts.c.username == username)).one_or_none()
        return None if row is None else _account(row)

    def password_hash_txn(self, conn: Connection, account_id: int) -> str | None:
        query = select(accounts.c.password_hash).where(accounts.c.id == account_id)
        return conn.execute(query).scalar_one_or_none()

    def _list_txn(self, conn: Connection) -> list[Account]:
        return [_account(row) for row in conn.execute(select(accounts).order_by(accounts.c.id))]

    def count_txn(self, conn: Connection) -> int:
        return conn.execute(select(func.count()).select_from(accounts)).scalar_one()

    def enabled_admins_txn(self, conn: Connection) -> list[int]:
        """Ids of enabled admins, rows locked (PostgreSQL) until the transaction ends."""
        query = (
            select(accounts.c.id)
            .where(accounts.c.role == Role.ADMIN.value, accounts.c.disabled.is_(False))
            .with_for_update()
        )
        return list(conn.execute(query).scalars())

    def insert_txn(
        self,
        conn: Connection,
        *,
        username: str,
        display_name: str,
        role: Role,
        password_hash: str,
        must_change_password: bool,
        now_ms: int,
    ) -> Account:
        account_id = conn.execute(
            insert(accounts)
            .values(
                username=username,
                display_name=display_name,
                role=role.value,
                password_hash=password_hash,
                must_change_password=must_change_password,
                disabled=False,
                created_ms=now_ms,
                updated_ms=now_ms,
                failed_logins=0,
                locked_until_ms=None,
            )
            .returning(accounts.c.id)
        ).scalar_one()
        account = self.get_txn(conn, account_id)
        assert account is not None
        return account

    def update_txn(self, conn: Connection, account_id: int, **values: Any) -> None:
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))

    def insert_session_txn(self, conn: Connection, row: SessionRow) -> None:
        conn.execute(
            insert(sessions).values(
                token_hash=row.token_hash,
                account_id=row.account_id,
                csrf_secret=row.csrf_secret,
                created_ms=row.created_ms,
                last_seen_ms=row.last_seen_ms,
                expires_ms=row.expires_ms,
            )
        )

    def session_txn(self, conn: Connection, token_hash: bytes) -> SessionRow | None:
        row = conn.execute(
            select(sessions).where(sessions.c.token_hash == token_hash)
        ).one_or_none()
        if row is None:
            return None
        return SessionRow(
            token_hash=bytes(row.token_hash),
            account_id=row.account_id,
            csrf_secret=bytes(row.csrf_secret),
            created_ms=row.created_ms,
            last_seen_ms=row.last_seen_ms,
            expires_ms=row.expires_ms,
        )

    def touch_session_txn(self, conn: Connection, token_hash: bytes, now_ms: int) -> None:
        conn.execute(
            update(sessions).where(sessions.c.token_hash == token_hash).values(last_seen_ms=now_ms)
        )

    def delete_session_txn(self, conn: Connection, token_hash: bytes) -> bool:
        result = conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
        return bool(result.rowcount)

    def delete_sessions_txn(
        self, conn: Connection, account_id: int, *, keep: bytes | None = None
    ) -> int:
        query = delete(sessions).where(sessions.c.account_id == account_id)
        if keep is not None:
            query = query.where(sessions.c.token_hash != keep)
        return int(conn.execute(query).rowcount)
