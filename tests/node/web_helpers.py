"""A node's web application in process, for the web tests: real database (SQLite or
PostgreSQL), real services, fake clock, a cheap password hasher, and one signed-in
account per role."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from node.accounts import Account, Role
from node.clock import FakeClock
from node.daemon import Node, init_node
from node.web import CSRF_HEADER, SESSION_COOKIE, Services, load_ui, make_app

from .conftest import NOW

CHEAP = PasswordHasher.from_parameters(CHEAPEST)
PASSWORD = "a long staff password 7"
ROLE_NAMES = {
    Role.ADMIN: "admin",
    Role.COORDINATOR: "coord",
    Role.CASE_WORKER: "worker",
    Role.AUDITOR: "auditor",
}


@dataclass
class Staff:
    account: Account
    token: str
    csrf: str


@dataclass
class WebNode:
    node: Node
    clock: FakeClock
    services: Services
    client: TestClient[Any, Any]
    staff: dict[Role, Staff] = field(default_factory=dict)
    first_password: str = ""

    async def session(self, account: Account) -> Staff:
        """A fresh session for ``account`` (no password check: the service is tested
        elsewhere; this is about what the session may reach)."""
        token, csrf = await self.services.accounts.start_session(
            account, now_ms=self.clock.now_ms(), random_bytes=secrets.token_bytes
        )
        return Staff(account, token, csrf)

    async def request(
        self, method: str, path: str, staff: Staff | None = None, **kwargs: Any
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        cookies = dict(kwargs.pop("cookies", {}))
        if staff is not None:
            cookies[SESSION_COOKIE] = staff.token
            if method not in ("GET", "HEAD"):
                headers.setdefault(CSRF_HEADER, staff.csrf)
        self.client.session.cookie_jar.clear()
        return await self.client.request(
            method, path, headers=headers, cookies=cookies, allow_redirects=False, **kwargs
        )


@asynccontextmanager
async def web_node(
    data: Path, *, database_url: str | None = None, ui: bool = True, trust_proxy: bool = False
) -> AsyncIterator[WebNode]:
    clock = FakeClock(NOW)
    node, _ = await init_node(data, clock=clock, database_url=database_url, hasher=CHEAP)
    await node.ataa.start()  # as serve() does: the default scoring model, the index
    svc = node.services(clock, trust_proxy=trust_proxy)
    app = make_app(svc, ui=load_ui() if ui else None)
    try:
        async with TestClient(TestServer(app)) as client:
            web = WebNode(node, clock, svc, client, first_password=node.first_password or "")
            admin = await node.accounts.store.by_username("admin")
            assert admin is not None
            admin = await node.accounts.change_password(
                admin, web.first_password, PASSWORD, now_ms=clock.now_ms()
            )
            web.staff[Role.ADMIN] = await web.session(admin)
            for role, name in ROLE_NAMES.items():
                if role is Role.ADMIN:
                    continue
                account, one_time = await node.accounts.create_account(
                    admin,
                    username=name,
                    display_name=f"Staff {name}",
                    role=role,
                    random_bytes=secrets.token_bytes,
                    now_ms=clock.now_ms(),
                )
                account = await node.accounts.change_password(
                    account, one_time, PASSWORD, now_ms=clock.now_ms()
                )
                web.staff[role] = await web.session(account)
            yield web
    finally:
        await node.close()


def csrf_field(html: str) -> str:
    """The csrf_token hidden field's value in a page."""
    match = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert match is not None, "no csrf_token field"
    return match.group(1)
