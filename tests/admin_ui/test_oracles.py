"""The Pseudonym oracles page and its JSON API in process, on real nodes of one
federation (``tests/integration/fed_helpers.py``): who may see it, a standalone node,
no configuration (how to deal), two configurations in conflict, a dealt 2-of-2
configuration with this node as oracle 1 (epoch, threshold, oracles, answers, share,
quota, use today and the last 7 days), the reachability codes translated, changing the
quota (audited; bad values refused, translated, changing nothing), and the API's
documented shapes and refusals, in Arabic and English."""

from __future__ import annotations

import dataclasses
import html as htmllib
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

import protocol
from node.accounts import Role
from node.oracle import (
    DEFAULT_DAILY_QUOTA,
    OracleAnswer,
    OracleServer,
    PseudonymService,
    deal,
    dealers_of,
    founder_of,
    import_share,
    utc_day,
)
from node.web import CSRF_HEADER, load_ui, make_app
from node.web._schema import check
from protocol import oprf
from tests.admin_ui.test_peers import fed_web
from tests.integration.fed_helpers import FedNode, converge, link
from tests.node.web_helpers import WebNode, web_node

A = Role.ADMIN
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
DEAL = "watan oracle deal --data DIR --threshold 2 --oracles ID1,ID2,ID3"
IMPORT = "watan oracle import --data DIR FILE"
#: English words an Arabic page may show: command words are inside <code>, dropped.
ALLOWED = {"Test", "UTC"}


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[tuple[WebNode, dict[str, FedNode]]]:
    async with fed_web(tmp_path) as pair:
        yield pair


@pytest.fixture
async def alone(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "alone") as node:
        yield node


async def _get(web: WebNode, path: str, lang: str = "en", role: Role = A) -> tuple[int, str]:
    response = await web.request("GET", path, web.staff[role], cookies={"watan_lang": lang})
    return response.status, await response.text()


async def _post(web: WebNode, path: str, data: Any, lang: str = "en", **kwargs: Any) -> Any:
    return await web.request(
        "POST", path, web.staff[A], data=data, cookies={"watan_lang": lang}, **kwargs
    )


def _main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def _text(html: str) -> str:
    """The visible text of the main content (markup and <code> dropped)."""
    main = re.sub(r"<code[^>]*>.*?</code>", " ", _main(html), flags=re.S)
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def _english(html: str) -> list[str]:
    words = re.findall(r"\b[A-Za-z]{3,}\b", _text(html))
    return [w for w in words if w not in ALLOWED]


def _digits(text: str, lang: str) -> str:
    return text.translate(ARABIC_INDIC) if lang == "ar" else text


def _server(fed: FedNode) -> OracleServer:
    server = fed.node.federation.oracle
    assert server is not None
    return server


def _pseudonyms(fed: FedNode) -> PseudonymService:
    service = fed.node.federation.pseudonyms
    assert service is not None
    return service


async def _deal(web: WebNode, dealer: FedNode, oracles: list[FedNode], **kw: Any) -> Any:
    return await deal(
        feeds=dealer.node.feeds,
        audit=dealer.node.audit,
        identity=dealer.node.identity,
        net=dealer.node.config.net,
        clock=web.clock,
        shares=_server(dealer).shares,
        threshold=kw.pop("threshold", 2),
        oracles=[node.id for node in oracles],
        random_bytes=os.urandom,
        founder=founder_of(dealer.node.config),
        **kw,
    )


async def _dealt(web: WebNode, nodes: dict[str, FedNode]) -> None:
    """a and b approve each other; a deals epoch 1 to itself (share 1) and b (share 2),
    and b imports its share."""
    a, b = nodes["a"], nodes["b"]
    await link(a, b)
    await converge([a, b])  # a needs b's profile (its encryption key) to deal
    dealt = await _deal(web, a, [a, b])
    await converge([a, b])
    await import_share(
        dealt.files[b.id],
        feeds=b.node.feeds,
        scope=dealers_of(b.node.config),
        audit=b.node.audit,
        identity=b.node.identity,
        net=b.node.config.net,
        clock=web.clock,
        shares=_server(b).shares,
    )


async def _schema(web: WebNode, path: str, method: str) -> dict[str, Any]:
    document = await (await web.request("GET", "/api/v1/openapi.json")).json()
    responses = document["paths"][path][method]["responses"]
    ((spec,),) = [[v for s, v in responses.items() if s.startswith("2")]]
    return spec["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


async def _api(web: WebNode) -> dict[str, Any]:
    response = await web.request("GET", "/api/v1/oracle", web.staff[A])
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    check(await _schema(web, "/api/v1/oracle", "get"), body)
    return body


# -- who may see it ------------------------------------------------------------------------


async def test_admins_only_and_linked_from_the_nav_and_peers(alone: WebNode) -> None:
    _status, html = await _get(alone, "/dashboard")
    nav = re.findall(r'<li><a href="([^"]+)"', html)
    assert nav.index("/oracles") == nav.index("/peers") + 1
    status, html = await _get(alone, "/oracles")
    assert status == 200
    assert '<a href="/oracles" aria-current="page">Pseudonym oracles</a>' in html
    for role in (Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR):
        _status, html = await _get(alone, "/dashboard", role=role)
        assert 'href="/oracles"' not in html
        for method, path in (("GET", "/oracles"), ("POST", "/oracles/quota")):
            response = await alone.request(method, path, alone.staff[role], data={"quota": "9"})
            assert response.status == 403, (role, path)
            assert response.headers["X-Watan-Error"] == "FORBIDDEN"
        for method, path, body in (
            ("GET", "/api/v1/oracle", None),
            ("PUT", "/api/v1/oracle/quota", {"quota": 9}),
        ):
            response = await alone.request(method, path, alone.staff[role], json=body)
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "FORBIDDEN"
    response = await alone.request("GET", "/api/v1/oracle")
    assert response.status == 401
    assert await _server_quota(alone) == DEFAULT_DAILY_QUOTA


async def _server_quota(web: WebNode) -> int:
    server = web.node.federation.oracle
    assert server is not None
    return await server.quota()


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_a_standalone_node_says_to_join_first(alone: WebNode, lang: str) -> None:
    status, html = await _get(alone, "/oracles", lang)
    assert status == 200
    assert f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">' in html
    main = _main(html)
    assert DEAL not in main and 'action="/oracles/quota"' not in main
    assert 'href="/peers"' in main
    assert f'id="pseudonyms-ready">{_digits("0", lang)}<' in main
    if lang == "ar":
        assert "لم تنضم هذه العقدة إلى اتحاد بعد" in main
        assert "الاسم المستعار قيد الانتظار" in main
        assert _english(html) == []
    else:
        assert "has not joined a federation yet" in main


async def test_without_a_federation_service_the_page_is_unavailable(alone: WebNode) -> None:
    svc = dataclasses.replace(alone.services, federation=None)
    async with TestClient(TestServer(make_app(svc, ui=load_ui()))) as client:
        staff = alone.staff[A]
        cookies = {"watan_session": staff.token}
        for lang, words in (("en", "not available"), ("ar", "غير متاحة")):
            response = await client.get("/oracles", cookies={**cookies, "watan_lang": lang})
            assert response.status == 503
            assert response.headers["X-Watan-Error"] == "UNAVAILABLE"
            assert words in await response.text()
        response = await client.get("/api/v1/oracle", cookies=cookies)
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "UNAVAILABLE"


# -- no configuration, a conflict -----------------------------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_no_configuration_explains_how_to_deal(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str
) -> None:
    web, _nodes = fed
    status, html = await _get(web, "/oracles", lang)
    assert status == 200
    main = _main(html)
    assert f"<code>{DEAL}</code>" in main and f"<code>{IMPORT}</code>" in main
    assert 'class="oracle"' not in main and 'action="/oracles/quota"' not in main
    if lang == "ar":
        assert "لا يوجد إعداد نافذ لعقد الأسماء المستعارة بعد" in main
        assert _english(html) == []
    else:
        assert "No oracle configuration is in force yet" in main
    body = await _api(web)
    assert body["config"] is None and body["error"] == "NO_CONFIG"
    assert body["oracles"] == [] and body["share"] is None
    assert body["pseudonyms"] == {"ready": 0, "pending": 0}
    assert body["quota"] == DEFAULT_DAILY_QUOTA and body["usage_today"] == []
    assert body["today"] == utc_day(web.clock.now_ms())


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_two_configurations_of_one_epoch_are_a_conflict(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str
) -> None:
    web, nodes = fed
    a, b = nodes["a"], nodes["b"]
    await link(a, b)
    await converge([a, b])
    await _deal(web, a, [a, b])
    # the founder publishes a second, different epoch 1 (deal() itself refuses that)
    second = protocol.OracleConfig(
        epoch=1,
        keys=[oprf.derive_key_pair(bytes([i]) * 32, b"k")[1] for i in (1, 2)],
        oracles=[b.id, a.id],
        suite=oprf.SUITE,
        threshold=2,
    )
    key, net, now = a.node.identity.signing_key, a.node.config.net, web.clock.now_ms()
    await a.node.feeds.append_own(
        lambda head: protocol.append(head, second, key=key, net=net, now_ms=now), now_ms=now
    )
    await converge([a, b])
    status, html = await _get(web, "/oracles", lang)
    assert status == 200
    main = _main(html)
    words = "إعدادان مختلفان" if lang == "ar" else "Two different oracle configurations"
    assert words in main
    assert f"<code>{DEAL}</code>" in main
    assert 'class="oracle"' not in main
    if lang == "ar":
        assert _english(html) == []
    body = await _api(web)
    assert body["config"] is None and body["error"] == "CONFIG_CONFLICT"
    assert body["share"] is not None and body["share"]["epoch"] == 1  # a's own share


# -- a dealt configuration -------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_a_dealt_configuration_its_oracles_share_and_use(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str
) -> None:
    web, nodes = fed
    a, b = nodes["a"], nodes["b"]
    await _dealt(web, nodes)
    status, html = await _get(web, "/oracles", lang)
    assert status == 200
    main = _main(html)
    facts = main[main.index('id="config-heading"') : main.index("</dl>")]
    assert f"<dd>{_digits('1', lang)}</dd>" in facts  # the epoch
    assert _digits("2 of 2" if lang == "en" else "2 من أصل 2", lang) in facts
    rows = re.findall(r'<dd class="oracle" id="oracle-(\d)">(.*?)</dd>', main, flags=re.S)
    assert [index for index, _row in rows] == ["1", "2"]
    (_, first), (_, second) = rows
    assert ("هذه العقدة" if lang == "ar" else "This node") in first
    assert ("منظمة b" if lang == "ar" else "Org b") in second
    assert _digits(protocol.fingerprint(b.id), lang) in second
    not_asked = "لم تُسأل بعد" if lang == "ar" else "Not asked yet"
    assert not_asked in first and not_asked in second
    share = main[main.index('id="share-heading"') :]
    assert f'id="share-index">{_digits("1", lang)}<' in share
    quota = main[main.index('id="quota-value"') :]
    assert _digits("50,000" if lang == "en" else "50٬000", lang) in quota[: quota.index("</p>")]
    assert (
        'action="/oracles/quota"' in share and 'name="quota" type="number" value="50000"' in share
    )
    if lang == "ar":
        assert _english(html) == []

    # a computes one pseudonym (both oracles answer), b one (a counts it for b)
    item = oprf.PseudonymInput.from_national_id("198501234567")
    assert (await _pseudonyms(a).resolve(item, timeout_s=30)).state == "ready"
    assert (await _pseudonyms(b).resolve(item, timeout_s=30)).state == "ready"
    _status, html = await _get(web, "/oracles", lang)
    main = _main(html)
    answered = "استجابت" if lang == "ar" else "Answered"
    rows = re.findall(r'<dd class="oracle" id="oracle-\d">(.*?)</dd>', main, flags=re.S)
    assert all(answered in row and "badge-ok" in row for row in rows)
    assert f'id="pseudonyms-ready">{_digits("1", lang)}<' in main
    assert f'id="pseudonyms-pending">{_digits("0", lang)}<' in main
    today = main[main.index('id="usage-today-heading"') : main.index('id="usage-days-heading"')]
    used = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td[^>]*>(.*?)</td>", today, re.S)
    assert len(used) == 2  # a itself and b, one each
    assert {count for _who, count, _pct in used} == {_digits("1", lang)}
    assert {pct for _who, _count, pct in used} == {"أقل من ١٪" if lang == "ar" else "under 1%"}
    days = main[main.index('id="usage-days-heading"') :]
    totals = re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td></tr>", days)
    assert totals == [_digits(n, lang) for n in ("2", "0", "0", "0", "0", "0", "0")]

    body = await _api(web)
    assert body["error"] is None
    assert body["config"] == {
        "epoch": 1,
        "threshold": 2,
        "oracle_count": 2,
        "dealer": a.id.hex(),
    }
    assert [(o["index"], o["node_id"], o["self"]) for o in body["oracles"]] == [
        (1, a.id.hex(), True),
        (2, b.id.hex(), False),
    ]
    assert body["oracles"][1]["peer_state"] == "approved"
    assert all(o["answer"]["ok"] and o["answer"]["code"] is None for o in body["oracles"])
    assert body["share"] == {
        "epoch": 1,
        "index": 1,
        "threshold": 2,
        "dealer": a.id.hex(),
        "imported_ms": web.clock.now_ms(),
    }
    assert body["pseudonyms"] == {"ready": 1, "pending": 0}
    assert sorted((u["requester"], u["count"]) for u in body["usage_today"]) == sorted(
        [(a.id.hex(), 1), (b.id.hex(), 1)]
    )


@pytest.mark.parametrize(
    ("code", "en", "ar"),
    [
        ("TIMEOUT", "did not answer in time", "لم تستجب في الوقت المحدد"),
        ("NOT_A_PEER", "not an approved peer of this node", "ليست عقدة نظيرة معتمدة"),
        ("UNKNOWN_SIGNER", "does not know this node", "لا تعرف هذه العقدة"),
        ("NOT_APPROVED", "has not approved this node", "لم يوافق مسؤولها"),
        ("QUOTA_EXCEEDED", "used its daily quota there", "استنفدت هذه العقدة حدها اليومي"),
        ("BAD_PROOF", "failed verification", "لم تجتز إجابتها التحقق"),
        ("UNREACHABLE", "could not be reached", "تعذّر الوصول إليها"),
        ("BAD_RESPONSE", "refused or failed. Error code: BAD_RESPONSE", "رمز الخطأ: BAD_RESPONSE"),
    ],
)
async def test_an_oracle_that_did_not_answer_says_why(
    fed: tuple[WebNode, dict[str, FedNode]], code: str, en: str, ar: str
) -> None:
    web, nodes = fed
    await _dealt(web, nodes)
    b = nodes["b"]
    answers = _pseudonyms(nodes["a"]).answers
    answers[2] = OracleAnswer(index=2, node_id=b.id, ok=False, code=code, at_ms=web.clock.now_ms())
    for lang, words in (("en", en), ("ar", ar)):
        _status, html = await _get(web, "/oracles", lang)
        row = re.search(r'<dd class="oracle" id="oracle-2">(.*?)</dd>', html, flags=re.S)
        assert row is not None
        text = " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", row.group(1))).split())
        assert words in text, (lang, text)
        assert "badge-bad" in row.group(1)
    (_, second) = (await _api(web))["oracles"]
    assert second["answer"] == {"ok": False, "code": code, "at_ms": web.clock.now_ms()}
    # an answer noted for another node at that index (an older epoch) is not shown
    answers[2] = dataclasses.replace(answers[2], node_id=bytes(32))
    _status, html = await _get(web, "/oracles")
    assert "Not asked yet" in html


# -- the quota -----------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "typed"), [("en", "1234"), ("ar", "١٬٢٣٤")])
async def test_changing_the_quota_is_audited(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str, typed: str
) -> None:
    web, nodes = fed
    await _dealt(web, nodes)
    response = await _post(web, "/oracles/quota", {"quota": typed}, lang)
    assert (response.status, response.headers["Location"]) == (303, "/oracles?done=quota")
    assert await _server(nodes["a"]).quota() == 1234
    (row,) = await web.node.audit.query(action="oracle.quota")
    assert row.actor == web.staff[A].account.id
    assert json.loads(row.details) == {"quota": 1234}
    _status, html = await _get(web, "/oracles?done=quota", lang)
    assert ("حُفظ الحد اليومي" if lang == "ar" else "The daily quota was saved") in html
    quota = html[html.index('id="quota-value"') :]
    assert _digits("1,234" if lang == "en" else "1٬234", lang) in quota[: quota.index("</p>")]
    assert 'name="quota" type="number" value="1234"' in html


@pytest.mark.parametrize("typed", ["0", "10000001", "-5", "12.5", "abc", "", "1e3"])
async def test_a_bad_quota_is_refused_translated_and_changes_nothing(
    fed: tuple[WebNode, dict[str, FedNode]], typed: str
) -> None:
    web, nodes = fed
    await _dealt(web, nodes)
    for lang, words in (
        ("en", "A whole number from 1 to 10,000,000."),
        ("ar", "عدد صحيح من ١ إلى ١٠٬٠٠٠٬٠٠٠."),
    ):
        response = await _post(web, "/oracles/quota", {"quota": typed}, lang)
        assert response.status == 422
        html = await response.text()
        error = re.search(r'<p class="error" id="f-quota-error">([^<]+)</p>', html)
        assert error is not None and error.group(1) == words
        assert f'value="{htmllib.escape(typed)}"' in html
        assert "flash-error" in html
    assert await _server(nodes["a"]).quota() == DEFAULT_DAILY_QUOTA
    assert await web.node.audit.query(action="oracle.quota") == []


async def test_the_quota_form_needs_the_csrf_token(
    fed: tuple[WebNode, dict[str, FedNode]],
) -> None:
    web, nodes = fed
    response = await _post(web, "/oracles/quota", {"quota": "7"}, headers={CSRF_HEADER: "x"})
    assert response.status == 403
    assert response.headers["X-Watan-Error"] == "CSRF"
    assert await _server(nodes["a"]).quota() == DEFAULT_DAILY_QUOTA


# -- the API -----------------------------------------------------------------------------------


async def test_api_sets_the_quota_and_refuses_bad_input(
    fed: tuple[WebNode, dict[str, FedNode]],
) -> None:
    web, nodes = fed
    admin = web.staff[A]
    path = "/api/v1/oracle/quota"
    response = await web.request("PUT", path, admin, json={"quota": 20_000})
    assert response.status == 200
    body = await response.json()
    assert body == {"quota": 20_000}
    check(await _schema(web, path, "put"), body)
    assert await _server(nodes["a"]).quota() == 20_000
    (row,) = await web.node.audit.query(action="oracle.quota")
    assert row.actor == admin.account.id
    assert (await _api(web))["quota"] == 20_000
    for bad in ({}, {"quota": 0}, {"quota": 10_000_001}, {"quota": "5"}, {"quota": 1.5},
                {"quota": True}, {"quota": 5, "extra": 1}):  # fmt: skip
        response = await web.request("PUT", path, admin, json=bad)
        assert response.status == 422, bad
        error = (await response.json())["error"]
        assert error["code"] == "INVALID" and error["message"], bad
    response = await web.request(
        "PUT", path, admin, data=b"{", headers={"Content-Type": "application/json"}
    )
    assert (response.status, (await response.json())["error"]["code"]) == (400, "BAD_REQUEST")
    response = await web.request("PUT", path, admin, data={"quota": "5"})
    assert response.status == 415
    response = await web.request("PUT", path, admin, json={"quota": 5}, headers={CSRF_HEADER: "x"})
    assert (response.status, (await response.json())["error"]["code"]) == (403, "CSRF")
    assert await _server(nodes["a"]).quota() == 20_000
    assert len(await web.node.audit.query(action="oracle.quota")) == 1
