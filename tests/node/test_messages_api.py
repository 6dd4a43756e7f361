"""The JSON API for org-to-org messages (``/api/v1/messages``) between two real nodes of
one federation (``tests/integration/fed_helpers.py``), each serving its web application
on a loopback socket: a coordinator of node a sends through the API, the envelope goes
over real signed HTTP when a's outbox is delivered, a coordinator of node b reads it
through the API, and b's receipts travel back the same way. Also the refusals (with
their codes), who may call the routes, and the documented schemas."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.accounts import Account, Role
from node.clock import FakeClock
from node.daemon import FIRST_PASSWORD_FILE
from node.web import CSRF_HEADER, SERVICES, SESSION_COOKIE
from node.web._schema import check
from tests.integration.fed_helpers import FedNode, converge, federation, link

PASSWORD = "a long staff password 7"
TEXT = "اجتماع التنسيق يوم الأحد\nmeeting on Sunday"


@dataclass
class Caller:
    """A signed-in account of one node, calling its JSON API over HTTP."""

    fed: FedNode
    http: aiohttp.ClientSession
    token: str
    csrf: str

    async def call(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {CSRF_HEADER: self.csrf} if method != "GET" else {}
        response = await self.http.request(
            method,
            self.fed.server.make_url(path),
            json=body,
            headers=headers,
            cookies={SESSION_COOKIE: self.token},
            **kwargs,
        )
        async with response:
            return response.status, await response.json()


async def _staff(fed: FedNode, http: aiohttp.ClientSession, role: Role) -> Caller:
    """A signed-in account with ``role`` on ``fed`` (the first admin for ADMIN)."""
    accounts, now = fed.node.accounts, fed.node.federation.clock.now_ms()
    admin = await accounts.store.by_username("admin")
    assert admin is not None
    if admin.must_change_password:
        first = (fed.data / FIRST_PASSWORD_FILE).read_text().splitlines()[1]
        admin = await accounts.change_password(admin, first, PASSWORD, now_ms=now)
    account: Account = admin
    if role is not Role.ADMIN:
        account, one_time = await accounts.create_account(
            admin,
            username=f"{role.value.replace('_', '-')}-{secrets.token_hex(3)}",
            display_name=f"Staff {role.value}",
            role=role,
            random_bytes=secrets.token_bytes,
            now_ms=now,
        )
        account = await accounts.change_password(account, one_time, PASSWORD, now_ms=now)
    token, csrf = await accounts.start_session(
        account, now_ms=now, random_bytes=secrets.token_bytes
    )
    return Caller(fed, http, token, csrf)


@asynccontextmanager
async def _linked(tmp_path: Path) -> AsyncIterator[tuple[dict[str, FedNode], Caller, Caller]]:
    """Nodes a and b, approved to each other and holding each other's profile (the
    recipient's encryption key), with a coordinator signed in on each."""
    async with federation(tmp_path, ["a", "b"]) as nodes, aiohttp.ClientSession() as http:
        a, b = nodes["a"], nodes["b"]
        await link(a, b)
        await converge([a, b])
        yield (
            nodes,
            await _staff(a, http, Role.COORDINATOR),
            await _staff(b, http, Role.COORDINATOR),
        )


@pytest.fixture
async def linked(tmp_path: Path) -> AsyncIterator[tuple[dict[str, FedNode], Caller, Caller]]:
    async with _linked(tmp_path) as found:
        yield found


async def _schemas(caller: Caller) -> dict[tuple[str, str], dict[str, Any]]:
    """The documented success schema of each messages route, from the OpenAPI document."""
    status, document = await caller.call("GET", "/api/v1/openapi.json")
    assert status == 200
    found = {}
    for path, item in document["paths"].items():
        if path.startswith("/api/v1/messages"):
            for method, operation in item.items():
                ((spec,),) = [[v for s, v in operation["responses"].items() if s.startswith("2")]]
                found[(method.upper(), path)] = spec["content"]["application/json"]["schema"]
    assert set(found) == {
        ("GET", "/api/v1/messages"),
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/messages/{thread}"),
    }
    return found


async def test_a_message_travels_over_signed_http_and_its_receipts_come_back(
    linked: tuple[dict[str, FedNode], Caller, Caller],
) -> None:
    nodes, on_a, on_b = linked
    a, b = nodes["a"], nodes["b"]
    schema = await _schemas(on_a)
    listed = ("GET", "/api/v1/messages")
    one = ("GET", "/api/v1/messages/{thread}")

    status, body = await on_a.call(
        "POST", "/api/v1/messages", {"to": [b.id.hex()], "text": TEXT, "subject": "الاجتماع"}
    )
    assert status == 201, body
    check(schema[("POST", "/api/v1/messages")], body)
    (message_id,) = body["ids"]
    status, inbox = await on_a.call("GET", "/api/v1/messages")
    assert status == 200
    check(schema[listed], inbox)
    ((summary,),) = [inbox["threads"]]
    thread = summary["thread"]
    assert summary == {
        "thread": thread,
        "peers": [b.id.hex()],
        "subject": "الاجتماع",
        "last_ts": a.node.federation.clock.now_ms(),
        "unread": 0,
        "state": "queued",
    }
    assert inbox["unread"] == 0
    # nothing has left a yet
    assert await on_b.call("GET", "/api/v1/messages") == (200, {"unread": 0, "threads": []})

    # a's outbox: one envelope to b over signed HTTP (POST /fed/v1/messages)
    assert await a.node.federation.messages.deliver_due() == 1
    status, inbox = await on_b.call("GET", "/api/v1/messages")
    assert status == 200
    check(schema[listed], inbox)
    assert inbox == {
        "unread": 1,
        "threads": [
            {
                "thread": thread,
                "peers": [a.id.hex()],
                "subject": "الاجتماع",
                "last_ts": b.node.federation.clock.now_ms(),
                "unread": 1,
                "state": None,  # b never wrote in it
            }
        ],
    }
    status, body = await on_a.call("GET", f"/api/v1/messages/{thread}")
    assert status == 200
    check(schema[one], body)
    ((sent,),) = [body["messages"]]
    assert (sent["id"], sent["direction"], sent["peer"], sent["state"]) == (
        message_id,
        "out",
        b.id.hex(),
        "delivered",  # b's acknowledgement
    )
    assert sent["recipients"] == [
        {"peer": b.id.hex(), "id": message_id, "state": "delivered", "error": None}
    ]

    # b's coordinator opens the conversation: read, and a "read" receipt is queued
    status, body = await on_b.call("GET", f"/api/v1/messages/{thread}")
    assert status == 200
    check(schema[one], body)
    assert body["messages"] == [
        {
            "id": message_id,
            "direction": "in",
            "peer": a.id.hex(),
            "text": TEXT,
            "subject": "الاجتماع",
            "ts": sent["ts"],
            "state": "read",
            "recipients": [],
            "attachments": [],
        }
    ]
    status, inbox = await on_b.call("GET", "/api/v1/messages")
    assert (inbox["unread"], inbox["threads"][0]["unread"]) == (0, 0)

    # b's outbox: its "delivered" and "read" receipts travel back to a
    assert await b.node.federation.messages.deliver_due() == 2
    status, body = await on_a.call("GET", f"/api/v1/messages/{thread}")
    assert body["messages"][0]["state"] == "read"
    assert body["messages"][0]["recipients"][0]["state"] == "read"
    status, inbox = await on_a.call("GET", "/api/v1/messages")
    assert inbox["threads"][0]["state"] == "read"

    # a reply in the same conversation, from b to a, a minute later
    clock = a.node.federation.clock
    assert isinstance(clock, FakeClock)
    clock.advance(60_000)
    status, body = await on_b.call(
        "POST", "/api/v1/messages", {"to": [a.id.hex()], "text": "received", "thread": thread}
    )
    assert status == 201, body
    assert await b.node.federation.messages.deliver_due() == 1
    status, inbox = await on_a.call("GET", "/api/v1/messages")
    assert inbox["unread"] == 1
    assert [(t["thread"], t["unread"], t["subject"]) for t in inbox["threads"]] == [
        (thread, 1, "الاجتماع")
    ]
    status, body = await on_a.call("GET", f"/api/v1/messages/{thread}")
    assert [(m["direction"], m["text"], m["state"]) for m in body["messages"]] == [
        ("out", TEXT, "read"),
        ("in", "received", "read"),
    ]
    assert (await on_a.call("GET", "/api/v1/messages"))[1]["unread"] == 0


async def test_refusals_have_codes_and_only_coordinators_may_call(
    linked: tuple[dict[str, FedNode], Caller, Caller],
) -> None:
    nodes, on_a, _on_b = linked
    a, b = nodes["a"], nodes["b"]
    stranger = secrets.token_bytes(32).hex()
    refused: list[tuple[dict[str, Any], str]] = [
        ({"to": [stranger], "text": "hello"}, "NOT_A_PEER"),
        ({"to": [], "text": "hello"}, "NO_RECIPIENT"),
        ({"to": [a.id.hex()], "text": "hello"}, "NOT_A_PEER"),  # ourselves
        ({"to": [b.id.hex()], "text": "x" * 32_769}, "INVALID"),  # over maxLength
        ({"to": [b.id.hex()], "text": " \n "}, "INVALID"),
        ({"to": [b.id.hex()], "text": "hi", "subject": "two\nlines"}, "INVALID"),
        ({"to": [b.id.hex().upper()], "text": "hello"}, "INVALID"),
        ({"to": ["zz"], "text": "hello"}, "INVALID"),
        ({"to": [b.id.hex()], "text": "hello", "thread": "00"}, "INVALID"),
        ({"to": [b.id.hex()]}, "INVALID"),
        ({"to": [b.id.hex()], "text": "hello", "cc": []}, "INVALID"),
    ]
    for body, code in refused:
        status, answer = await on_a.call("POST", "/api/v1/messages", body)
        assert (status, answer["error"]["code"]) == (422, code), body
        assert answer["error"]["message"]
    # nothing was queued by any of them
    assert await on_a.call("GET", "/api/v1/messages") == (200, {"unread": 0, "threads": []})
    for thread in ("00" * 32, "not-a-thread", "AB" * 32):
        status, answer = await on_a.call("GET", f"/api/v1/messages/{thread}")
        assert (status, answer["error"]["code"]) == (404, "NOT_FOUND"), thread
    status, answer = await on_a.call("GET", "/api/v1/messages?limit=201")
    assert (status, answer["error"]["code"]) == (422, "INVALID")

    # other roles are refused by the access rules
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/v1/messages", None),
        ("GET", f"/api/v1/messages/{'00' * 32}", None),
        ("POST", "/api/v1/messages", {"to": [b.id.hex()], "text": "hello"}),
    ]
    for role in (Role.ADMIN, Role.CASE_WORKER, Role.AUDITOR):
        other = await _staff(a, on_a.http, role)
        for method, path, sent in calls:
            status, answer = await other.call(method, path, sent)
            assert (status, answer["error"]["code"]) == (403, "FORBIDDEN"), (role, path)

    # a node without messaging answers 503
    svc = a.server.app[SERVICES]
    messages, svc.messages = svc.messages, None
    try:
        for method, path, sent in calls:
            status, answer = await on_a.call(method, path, sent)
            assert (status, answer["error"]["code"]) == (503, "UNAVAILABLE"), path
    finally:
        svc.messages = messages


async def test_a_full_size_arabic_text_fits_the_request_body(
    linked: tuple[dict[str, FedNode], Caller, Caller],
) -> None:
    nodes, on_a, on_b = linked
    b = nodes["b"].id.hex()
    # 32 KiB of UTF-8, sent as aiohttp (like json.dumps) sends it: every letter "\u0639",
    # some 96 KiB of JSON, over the 64 KiB the other routes read
    text = "ع" * 16_384
    status, body = await on_a.call("POST", "/api/v1/messages", {"to": [b], "text": text})
    assert status == 201, body
    status, body = await on_a.call("POST", "/api/v1/messages", {"to": [b], "text": text + "ع"})
    assert (status, body["error"]["code"]) == (422, "TOO_LARGE")
    assert await nodes["a"].node.federation.messages.deliver_due() == 1
    status, inbox = await on_b.call("GET", "/api/v1/messages")
    status, body = await on_b.call("GET", f"/api/v1/messages/{inbox['threads'][0]['thread']}")
    assert [m["text"] for m in body["messages"]] == [text]
