"""The Peers page in process: a standalone node's explanation, a federated node's
federation box, invites with their QR code, approving (only with the fingerprint box
ticked), blocking (only with a reason; a refused form keeps what was typed), the
blocklist's CSV export and import (a bad file names its line), lag, forks and the
restore guard, in Arabic and English."""

from __future__ import annotations

import dataclasses
import hashlib
import html as htmllib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

import protocol
from node.accounts import Role
from node.clock import FakeClock
from node.daemon import FIRST_PASSWORD_FILE
from node.web import load_ui, make_app
from tests.integration.fed_helpers import NOTE_KIND, NOW, FedNode, federation, link
from tests.node.web_helpers import PASSWORD, WebNode, web_node

A = Role.ADMIN
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@asynccontextmanager
async def fed_web(tmp_path: Path) -> AsyncIterator[tuple[WebNode, dict[str, FedNode]]]:
    """Nodes a and b of one federation; a also serves the admin UI, its admin
    signed in (the helper's own servers have no UI)."""
    clock = FakeClock(NOW)
    async with federation(tmp_path, ["a", "b"], clock=clock) as nodes:
        node = nodes["a"].node
        svc = node.services(clock)
        async with TestClient(TestServer(make_app(svc, ui=load_ui()))) as client:
            web = WebNode(node, clock, svc, client)
            admin = await node.accounts.store.by_username("admin")
            assert admin is not None
            first = (nodes["a"].data / FIRST_PASSWORD_FILE).read_text().splitlines()[1]
            admin = await node.accounts.change_password(
                admin, first, PASSWORD, now_ms=clock.now_ms()
            )
            web.staff[A] = await web.session(admin)
            yield web, nodes


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[tuple[WebNode, dict[str, FedNode]]]:
    async with fed_web(tmp_path) as pair:
        yield pair


@pytest.fixture
async def alone(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "alone") as node:
        yield node


async def _get(web: WebNode, path: str, lang: str = "en") -> tuple[int, str]:
    response = await web.request("GET", path, web.staff[A], cookies={"watan_lang": lang})
    return response.status, await response.text()


async def _post(web: WebNode, path: str, data: Any, lang: str = "en") -> Any:
    return await web.request("POST", path, web.staff[A], data=data, cookies={"watan_lang": lang})


def _main(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def _text(html: str) -> str:
    """The visible text of the main content (markup and <code> dropped)."""
    main = re.sub(r"<code[^>]*>.*?</code>|<svg.*?</svg>", " ", _main(html), flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", main))


def _no_english(html: str, allowed: set[str]) -> list[str]:
    words = re.findall(r"\b[A-Za-z]{4,}\b", _text(html))
    return [w for w in words if w not in allowed]


# -- a standalone node ----------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_a_standalone_node_explains_how_to_join(alone: WebNode, lang: str) -> None:
    status, html = await _get(alone, "/peers", lang)
    assert status == 200
    assert f'<html lang="{lang}"' in html
    main = _main(html)
    assert "<code>watan federation create --data DIR NAME</code>" in main
    assert "<code>watan invite accept --data DIR TOKEN</code>" in main
    assert 'action="/peers/invites"' not in main  # no invite form
    if lang == "ar":
        assert "لم تنضم هذه العقدة إلى اتحاد بعد" in main
        # CSV column names stay as they are in the file; nothing else is English
        assert _no_english(html, {"author", "reason", "blocked", "CSV", "UTF"}) == []
    else:
        assert "has not joined a federation yet" in main
    # an invite is refused, translated
    response = await _post(alone, "/peers/invites", {"url": "http://10.0.0.5:8470"}, lang)
    assert response.status == 409
    text = await response.text()
    assert ("لم تنضم هذه العقدة إلى اتحاد بعد" if lang == "ar" else "not joined") in text
    assert (await alone.node.federation.peers.all()) == []


async def test_the_nav_links_the_page_for_admins_only(alone: WebNode) -> None:
    _status, html = await _get(alone, "/dashboard")
    nav = re.findall(r'<li><a href="([^"]+)"', html)
    assert nav == [
        "/dashboard",
        "/accounts",
        "/audit",
        "/settings",
        "/peers",
        "/oracles",
        "/password",
    ]
    response = await alone.request("GET", "/dashboard", alone.staff[Role.COORDINATOR])
    assert 'href="/peers"' not in await response.text()
    _status, html = await _get(alone, "/peers")
    assert '<a href="/peers" aria-current="page">Peers</a>' in html
    response = await alone.request("GET", "/peers", alone.staff[Role.AUDITOR])
    assert response.status == 403


async def test_without_a_federation_service_the_page_is_unavailable(alone: WebNode) -> None:
    svc = dataclasses.replace(alone.services, federation=None)
    async with TestClient(TestServer(make_app(svc, ui=load_ui()))) as client:
        staff = alone.staff[A]
        for lang, words in (("en", "Federation is not available"), ("ar", "الاتحاد غير متاح")):
            response = await client.get(
                "/peers", cookies={"watan_session": staff.token, "watan_lang": lang}
            )
            assert response.status == 503
            assert response.headers["X-Watan-Error"] == "UNAVAILABLE"
            assert words in await response.text()


# -- a federated node: the federation box and invites --------------------------------------


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_federation_box_and_invite_form(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str
) -> None:
    web, nodes = fed
    status, html = await _get(web, "/peers", lang)
    assert status == 200
    main = _main(html)
    assert "Test hub" in main
    assert web.node.config.net.hex()[:16] + "…" in main
    fingerprint = protocol.fingerprint(nodes["a"].id)
    assert (fingerprint.translate(ARABIC_INDIC) if lang == "ar" else fingerprint) in main
    # the address field is prefilled with the node's public URL, without /fed/v1
    base = nodes["a"].url.removesuffix("/fed/v1")
    assert f'name="url" type="url" value="{base}"' in main
    assert 'name="ttl_hours" type="number" value="72"' in main
    if lang == "ar":
        assert "دعوة عقدة" in main
        allowed = {"Test", "author", "reason", "blocked", "CSV", "UTF", "http"}
        assert _no_english(html, allowed) == []


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_creating_an_invite_shows_the_token_once_with_a_qr_code(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    web, nodes = fed
    response = await _post(
        web, "/peers/invites", {"url": "http://10.0.0.5:8470/", "ttl_hours": "5"}, lang
    )
    assert response.status == 201
    html = await response.text()
    token = re.search(r'<textarea id="invite-token"[^>]*readonly[^>]*>([^<]+)</textarea>', html)
    assert token is not None
    invite = protocol.parse_invite(token.group(1))
    assert invite.node == nodes["a"].id
    assert invite.url == "http://10.0.0.5:8470/fed/v1"
    assert invite.expires == web.clock.now_ms() + 5 * 3600 * 1000
    label = "رمز QR لرمز الدعوة" if lang == "ar" else "QR code of the invite token"
    svg = re.search(r"<svg [^>]*>", html)
    assert svg is not None
    assert 'role="img"' in svg.group(0) and f'aria-label="{label}"' in svg.group(0)
    assert "viewBox" in svg.group(0)
    fingerprint = protocol.fingerprint(nodes["a"].id)
    assert (fingerprint.translate(ARABIC_INDIC) if lang == "ar" else fingerprint) in html
    assert response.headers["Cache-Control"] == "no-store"
    # the node keeps the invite (hashed) and an audit row, never the token
    (row,) = await web.node.audit.query(action="invite.create")
    assert row.actor == web.staff[A].account.id
    assert token.group(1) not in row.details
    assert all(token.group(1) not in record.getMessage() for record in caplog.records)
    # and the page is not stored: a reload shows no token
    _status, again = await _get(web, "/peers", lang)
    assert token.group(1) not in again


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"url": "10.0.0.5:8470", "ttl_hours": "72"}, "url"),
        ({"url": "http://a b", "ttl_hours": "72"}, "url"),
        ({"url": "http://10.0.0.5:8470", "ttl_hours": "0"}, "ttl_hours"),
        ({"url": "http://10.0.0.5:8470", "ttl_hours": "721"}, "ttl_hours"),
        ({"url": "http://10.0.0.5:8470", "ttl_hours": "x"}, "ttl_hours"),
    ],
)
async def test_a_bad_invite_form_is_shown_again_with_its_values(
    fed: tuple[WebNode, dict[str, FedNode]], form: dict[str, str], field: str
) -> None:
    web, _nodes = fed
    response = await _post(web, "/peers/invites", form)
    assert response.status == 422
    html = await response.text()
    assert f'id="f-{field}-error"' in html
    assert f'value="{htmllib.escape(form[field])}"' in html
    assert "invite-token" not in html
    assert await web.node.audit.query(action="invite.create") == []


# -- approving, blocking, unblocking --------------------------------------------------------


async def _propose(web: WebNode, node: FedNode) -> None:
    await web.node.federation.peers.propose(node.id, url=node.url, source="lan")


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_approving_needs_the_fingerprint_box(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str
) -> None:
    web, nodes = fed
    b = nodes["b"]
    await _propose(web, b)
    _status, html = await _get(web, "/peers", lang)
    card = html[html.index(f'id="peer-{b.id.hex()}"') :]
    assert ("منظمة غير معروفة" if lang == "ar" else "Unknown organisation") in card[:200]
    assert ("بانتظار الموافقة" if lang == "ar" else "Waiting for approval") in card
    assert ("عبر الشبكة المحلية" if lang == "ar" else "local network") in card
    refused = await _post(web, f"/peers/{b.id.hex()}/approve", {}, lang)
    assert refused.status == 422
    text = await refused.text()
    assert f'id="confirm-{b.id.hex()}-error"' in text
    assert ("ضع علامة" if lang == "ar" else "tick the box") in text
    peer = await web.node.federation.peers.get(b.id)
    assert peer is not None and peer.state == "proposed"
    done = await _post(web, f"/peers/{b.id.hex()}/approve", {"confirm": "yes"}, lang)
    assert (done.status, done.headers["Location"]) == (303, "/peers?done=approve")
    peer = await web.node.federation.peers.get(b.id)
    assert peer is not None and peer.state == "approved"
    (row,) = await web.node.audit.query(action="peer.approve")
    assert row.actor == web.staff[A].account.id
    _status, html = await _get(web, "/peers?done=approve", lang)
    assert ("تمت الموافقة على العقدة" if lang == "ar" else "The node was approved") in html
    # approving twice is refused (it is no longer waiting)
    again = await _post(web, f"/peers/{b.id.hex()}/approve", {"confirm": "yes"}, lang)
    assert again.status == 409


async def test_an_approved_peer_shows_its_name_lag_and_progress(
    fed: tuple[WebNode, dict[str, FedNode]],
) -> None:
    web, nodes = fed
    a, b = nodes["a"], nodes["b"]
    await link(a, b)
    await b.append_notes(3, web.clock)
    assert await a.sync() == [True]
    _status, html = await _get(web, "/peers", "en")
    assert "Org b" in html and "Up to date" in html
    _status, html = await _get(web, "/peers", "ar")
    assert "منظمة b" in html
    # seven approved nodes, each announcing more than we hold: five are listed
    others = [secrets.token_bytes(32) for _ in range(7)]
    for node_id in others:
        await web.node.federation.peers.set_state(node_id, "approved", actor=None)
    state = web.node.federation.replicator.state(b.id)
    state.heads = {node_id: 10 + i for i, node_id in enumerate(others)}
    state.heads[b.id] = await a.seq_of(b)  # not behind on b itself
    state.heads[secrets.token_bytes(32)] = 99  # out of our scope: never counted
    state.breaker_open = True
    _status, html = await _get(web, "/peers", "en")
    card = html[html.index(f'id="peer-{b.id.hex()}"') :]
    card = card[: card.index("</article>")]
    assert card.count("behind by") == 5
    assert "behind by 16" in card and "behind by 12" in card and "behind by 11" not in card
    assert "and 2 more feeds" in card
    assert "Circuit open" in card
    _status, html = await _get(web, "/peers", "ar")
    card = html[html.index(f'id="peer-{b.id.hex()}"') :]
    assert "متأخرون بمقدار ١٦" in card and "و٢ سجلات أخرى" in card


@pytest.mark.parametrize("lang", ["ar", "en"])
async def test_blocking_needs_a_reason_and_keeps_what_was_typed(
    fed: tuple[WebNode, dict[str, FedNode]], lang: str
) -> None:
    web, nodes = fed
    b = nodes["b"]
    await _propose(web, b)
    path = f"/peers/{b.id.hex()}/block"
    for reason in ("", "   ", "x" * 501, "two\nlines"):
        response = await _post(web, path, {"reason": reason}, lang)
        assert response.status == 422, reason
        html = await response.text()
        assert f'id="reason-{b.id.hex()}-error"' in html
        assert ("سبب" if lang == "ar" else "Give a reason") in html
        if reason.strip():
            value = htmllib.escape(reason)
            assert f'value="{value}"' in html
    peer = await web.node.federation.peers.get(b.id)
    assert peer is not None and peer.state == "proposed"
    done = await _post(web, path, {"reason": "sent forged entries"}, lang)
    assert (done.status, done.headers["Location"]) == (303, "/peers?done=block")
    peer = await web.node.federation.peers.get(b.id)
    assert peer is not None and peer.state == "blocked" and peer.reason == "sent forged entries"
    _status, html = await _get(web, "/peers", lang)
    table = html[html.index('id="blocklist-heading"') :]
    assert "sent forged entries" in table and f"/peers/{b.id.hex()}/unblock" in table
    unblocked = await _post(web, f"/peers/{b.id.hex()}/unblock", {}, lang)
    assert unblocked.status == 303
    peer = await web.node.federation.peers.get(b.id)
    assert peer is not None and peer.state == "proposed"
    assert await web.node.federation.peers.blocks() == []
    assert (await _post(web, f"/peers/{b.id.hex()}/unblock", {}, lang)).status == 409


@pytest.mark.parametrize(
    "path",
    [
        "/peers/" + "0" * 64 + "/approve",  # unknown
        "/peers/" + "0" * 64 + "/block",
        "/peers/xyz/approve",
        "/peers/" + "0" * 64 + "/promote",
    ],
)
async def test_actions_on_nothing_are_404(
    fed: tuple[WebNode, dict[str, FedNode]], path: str
) -> None:
    web, _nodes = fed
    response = await _post(web, path, {"confirm": "yes", "reason": "r"})
    assert response.status == 404


async def test_block_by_id(fed: tuple[WebNode, dict[str, FedNode]]) -> None:
    web, nodes = fed
    author = secrets.token_bytes(32)
    refused = await _post(web, "/peers/block", {"node_id": "abc", "reason": "spam"}, "ar")
    assert refused.status == 422
    html = await refused.text()
    assert 'id="f-node_id-error"' in html and 'value="abc"' in html and 'value="spam"' in html
    self_block = await _post(web, "/peers/block", {"node_id": nodes["a"].id.hex(), "reason": "x"})
    assert self_block.status == 422
    assert "this node&#39;s own id" in await self_block.text()
    done = await _post(web, "/peers/block", {"node_id": author.hex().upper(), "reason": "spam"})
    assert (done.status, done.headers["Location"]) == (303, "/peers?done=block")
    (block,) = await web.node.federation.peers.blocks()
    assert (block.author, block.reason) == (author, "spam")
    assert await web.node.federation.peers.get(author) is None  # blocked, not a peer
    # and it is lifted from the blocklist's own button
    response = await _post(web, f"/peers/{author.hex()}/unblock", {})
    assert response.status == 303
    assert await web.node.federation.peers.blocks() == []


# -- the blocklist as CSV ---------------------------------------------------------------------


def _upload(text: str | bytes, name: str = "blocklist.csv") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode() if isinstance(text, str) else text, filename=name)
    return form


async def test_blocklist_export_and_import(fed: tuple[WebNode, dict[str, FedNode]]) -> None:
    web, _nodes = fed
    first, second = secrets.token_bytes(32), secrets.token_bytes(32)
    await web.node.federation.peers.block_author(first, reason="spam, twice", actor=None)
    response = await web.request("GET", "/peers/blocklist.csv", web.staff[A])
    assert response.status == 200
    assert response.content_type == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="watan-blocklist-\d{4}-\d\d-\d\d\.csv"', disposition)
    exported = await response.text()
    assert exported.splitlines()[0] == "author,reason,blocked_at_ms"
    assert f'{first.hex()},"spam, twice",{NOW}' in exported
    # another node imports it, plus one row of its own (BOM and CRLF as spreadsheets write)
    text = "\ufeff" + exported.replace("\n", "\r\n") + f"{second.hex()},fake NGO\r\n"
    await web.node.federation.peers.unblock_author(first, actor=None)
    done = await _post(web, "/peers/blocklist", _upload(text))
    assert (done.status, done.headers["Location"]) == (303, "/peers?done=import&n=2")
    assert {b.author for b in await web.node.federation.peers.blocks()} == {first, second}
    _status, html = await _get(web, "/peers?done=import&n=2", "ar")
    assert "تم استيراد قائمة الحظر" in html and "٢" in html
    (row, *_rest) = await web.node.audit.query(action="blocklist.import")
    assert row.actor == web.staff[A].account.id


@pytest.mark.parametrize(
    ("text", "en", "ar"),
    [
        (
            "author,reason\n" + "ab" * 32 + ",ok\nnot-an-id,spam\n",
            "Nothing was imported. Line 3: the author is not a node id of 64 hexadecimal",
            "لم يُستورد شيء. السطر ٣:",
        ),
        (
            "id,why\n",
            "Line 1: the first line must be the header author,reason[,blocked_at_ms]",
            "السطر ١:",
        ),
        (
            "author,reason\n" + "cd" * 32 + ",\n",
            "Line 2: the reason is missing",
            "السطر ٢: السبب مفقود",
        ),
        (
            'author,reason\n"' + "ef" * 32 + ",unclosed\n",
            "Nothing was imported: not CSV",  # an English reason kept inside our sentence
            "لم يُستورد شيء: not CSV",
        ),
    ],
)
async def test_a_bad_csv_names_its_line_and_imports_nothing(
    fed: tuple[WebNode, dict[str, FedNode]], text: str, en: str, ar: str
) -> None:
    web, _nodes = fed
    for lang, expected in (("en", en), ("ar", ar)):
        response = await _post(web, "/peers/blocklist", _upload(text), lang)
        assert response.status == 422
        html = htmllib.unescape(await response.text())
        assert expected in html, (lang, _text(html)[:2000])
        assert 'id="f-file-error"' in html
    assert await web.node.federation.peers.blocks() == []


async def test_an_import_that_is_not_a_utf8_file_is_refused(
    fed: tuple[WebNode, dict[str, FedNode]],
) -> None:
    web, _nodes = fed
    response = await _post(web, "/peers/blocklist", _upload(b"author,reason\n\xff\xfe,x\n"))
    assert response.status == 422
    assert "not UTF-8" in await response.text()
    response = await _post(web, "/peers/blocklist", {"file": "just text"})
    assert response.status == 422
    assert "Choose a CSV file" in await response.text()


# -- forks and the restore guard ------------------------------------------------------------


async def test_forks_are_reported(fed: tuple[WebNode, dict[str, FedNode]]) -> None:
    web, nodes = fed
    a, b = nodes["a"], nodes["b"]
    await link(a, b)
    await b.append_notes(1, web.clock)
    await a.sync()
    head = await a.node.feeds.head(b.id)
    assert head is not None
    before = await a.node.feeds.get(b.id, head.seq - 1)
    assert before is not None
    prev = protocol.FeedHead(
        author=b.id, seq=head.seq - 1, id=hashlib.sha256(before).digest(), ts=head.ts, key=b.id
    )
    twin = protocol.append(
        prev,
        {"evil": True},
        key=b.node.identity.signing_key,
        net=b.node.config.net,
        now_ms=web.clock.now_ms(),
        kind=NOTE_KIND,
    )
    result = await a.node.feeds.ingest(twin.wire, net=a.node.config.net, now_ms=NOW)
    assert result.status == "fork"
    for lang, words in (
        ("en", "signed two different entries at the same position"),
        ("ar", "قيدين مختلفين في الموضع نفسه"),
    ):
        _status, html = await _get(web, "/peers", lang)
        section = html[html.index('id="forks-heading"') : html.index('id="blocklist-heading"')]
        assert words in section
        assert ("Org b" if lang == "en" else "منظمة b") in section
        seq = str(head.seq)
        assert (seq.translate(ARABIC_INDIC) if lang == "ar" else seq) in section


async def test_the_restore_guard_warns_on_peers_and_dashboard(
    fed: tuple[WebNode, dict[str, FedNode]],
) -> None:
    web, _nodes = fed
    for path in ("/peers", "/dashboard"):
        _status, html = await _get(web, path)
        assert "restored from a backup" not in html
    await web.node.feeds.set_head_unconfirmed("restored from a backup")
    for path in ("/peers", "/dashboard"):
        for lang, words in (("en", "restored from a backup"), ("ar", "استُعيدت هذه العقدة")):
            _status, html = await _get(web, path, lang)
            assert words in html, (path, lang)
            assert "<code>watan feed confirm-head --data DIR --reason ...</code>" in html
    _status, html = await _get(web, "/dashboard")
    assert "Test hub · <code" in html  # the federation's name on the dashboard
