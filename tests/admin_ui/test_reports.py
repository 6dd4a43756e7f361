"""The reports page and its CSV files in process (aiohttp test client, real node
services, fake clock): who may reach them; this node's totals by programme, district,
category and month (voided deliveries left out) and the federation's by organisation,
with names; the date range (and a bad one refused per field); the bar charts
(``role="img"`` with a title, mirrored right to left); CSV attachments with a byte
order mark, CRLF lines, and a peer's formula-like name defused.

Tests marked "needs the merged catalog" check Arabic text and pass only once the new
msgids are in ``admin_ui/locale/ar`` (see /work/briefs/ar_queue.json).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import protocol
from node.accounts import Role
from node.ataa import DistributionPlan
from tests.node.web_helpers import WebNode, web_node

from .test_queue import (
    OTHER_DISTRICT,
    OTHER_GOVERNORATE,
    PEER_NAME,
    Peer,
    add_household,
    errors,
    get,
    main,
    make_ready,
    pseudonym,
    text,
    use_epoch,
)

A, C, W, R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR
THIRD_KEY = protocol.signing_key(bytes(range(96, 128)))


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebNode]:
    async with web_node(tmp_path / "node") as node:
        yield node


async def seed(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> Peer:
    """Our deliveries: food (winter-2026, 2 baskets, 50,000 IQD) to two Baghdad
    households on 28 May, one of them also on 15 April; cash (relief-cash, 1 transfer,
    100,000) to a Mosul household on 28 May, voided. Hope Relief: food to someone
    else, 30,000 IQD, on 20 May."""
    use_epoch(monkeypatch, web)
    first = await add_household(web, "سعد", 700, national_id="900000000401")
    second = await add_household(web, "حيدر", 650, national_id="900000000402")
    mosul = await add_household(
        web,
        "زيد",
        600,
        national_id="900000000403",
        district=OTHER_DISTRICT,
        governorate=OTHER_GOVERNORATE,
    )
    for hid, name in ((first, "first"), (second, "second"), (mosul, "mosul")):
        await make_ready(web, hid, pseudonym(name))
    service = web.node.ataa.distributions
    food = await service.create(
        DistributionPlan(
            title="Food",
            program="winter-2026",
            category="food",
            unit="basket",
            quantity=2,
            value_iqd=50_000,
            target_count=2,
        ),
        actor=None,
    )
    april = await service.create(
        DistributionPlan(
            title="Food in April",
            program="winter-2026",
            category="food",
            unit="basket",
            quantity=2,
            value_iqd=50_000,
            target_count=1,
        ),
        actor=None,
    )
    cash = await service.create(
        DistributionPlan(
            title="Cash",
            program="relief-cash",
            category="cash",
            unit="transfer",
            quantity=1,
            value_iqd=100_000,
            target_count=1,
        ),
        actor=None,
    )
    for hid in (first, second):
        await service.include(food.id, hid, "planned", actor=None)
        await service.deliver(food.id, hid, actor=None)
    await service.include(april.id, first, "planned", actor=None)
    await service.deliver(april.id, first, actor=None, date="2026-04-15")
    await service.include(cash.id, mosul, "planned", actor=None)
    await service.deliver(cash.id, mosul, actor=None)
    await service.void(cash.id, mosul, "entered_in_error", actor=None)
    peer = Peer(web)
    await peer.profile()
    await peer.allocation(pseudonym("someone"), date="2026-05-20", value_iqd=30_000)
    return peer


def table(html: str, section: str) -> list[list[str]]:
    """The body rows of one report table, as cell texts."""
    start = html.index(f'id="{section}"')
    body = html[html.index("<tbody>", start) : html.index("</tbody>", start)]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        rows.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return rows


async def test_who_may_reach_reports(web: WebNode) -> None:
    for role in (A, C, W, R):
        allowed = role in (C, R)
        status, _html = await get(web, "/reports", role)
        assert status == (200 if allowed else 403), role
        response = await web.request("GET", "/reports.csv?view=own&by=program", web.staff[role])
        assert response.status == (200 if allowed else 403), role


async def test_totals(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = await seed(web, monkeypatch)
    status, html = await get(web, "/reports", R)
    assert status == 200
    # (group, unit, allocations, households, quantity, value): the voided cash is left out
    assert table(html, "own-program") == [["winter-2026", "basket", "3", "2", "6", "150,000"]]
    assert table(html, "own-category") == [["Food", "basket", "3", "2", "6", "150,000"]]
    assert table(html, "own-month") == [
        ["April 2026", "basket", "1", "1", "2", "50,000"],
        ["May 2026", "basket", "2", "2", "4", "100,000"],
    ]
    assert table(html, "own-district")[0][1:] == ["basket", "3", "2", "6", "150,000"]
    assert "Adhamiya" in table(html, "own-district")[0][0]
    profile = await web.services.profiles.current()
    assert profile is not None
    federation = table(html, "federation-author")
    assert sorted(federation) == sorted(
        [
            [f"{profile.name_en} This organisation", "basket", "3", "2", "6", "150,000"],
            ["Hope Relief", "basket", "1", "1", "2", "30,000"],
        ]
    )
    assert peer.author.hex() not in html
    # a chart per table, accessible, drawn from the same rows
    charts = re.findall(r'<svg class="bar-chart" role="img" aria-labelledby="([^"]+)"', html)
    assert "own-month-chart-title" in charts and len(charts) == 5
    assert (
        '<title id="own-month-chart-title">Chart: value in IQD, By month. '
        "The table below has the numbers.</title>" in html
    )
    month_chart = html[html.index('aria-labelledby="own-month-chart-title"') :]
    month_chart = month_chart[: month_chart.index("</svg>")]
    widths = [
        float(w)
        for w in re.findall(r'<rect class="bar" x="[^"]+" y="\d+" width="([^"]+)%"', month_chart)
    ]
    assert widths == [35.0, 70.0]  # 50,000 and 100,000: the largest bar takes 70%
    # left to right: bars start at the left edge, each number just after its bar
    assert 'direction="ltr"' in month_chart
    assert re.findall(r'<rect class="bar" x="([^"]+)"', month_chart) == ["0%", "0%"]
    assert re.findall(r'class="bar-value" x="([^"]+)"', month_chart) == ["36.0%", "71.0%"]
    assert ">50,000</text>" in month_chart and ">April 2026 · basket</text>" in month_chart
    # the date range
    _status, html = await get(web, "/reports?since=2026-05-01&until=2026-05-31", C)
    assert table(html, "own-program") == [["winter-2026", "basket", "2", "2", "4", "100,000"]]
    assert (
        'href="/reports.csv?view=own&amp;by=program&amp;since=2026-05-01&amp;until=2026-05-31"'
        in html
    )
    _status, html = await get(web, "/reports?until=2026-04-30", C)
    assert table(html, "own-month") == [["April 2026", "basket", "1", "1", "2", "50,000"]]
    assert table(html, "federation-author") == [
        [f"{profile.name_en} This organisation", "basket", "1", "1", "2", "50,000"]
    ]
    _status, html = await get(web, "/reports?since=2026-06-01", C)
    assert main(html).count("No allocation in this period.") == 5


async def test_bad_dates(web: WebNode) -> None:
    status, html = await get(web, "/reports?since=2026-13-01&until=yesterday", C)
    assert status == 422
    assert errors(html) == {
        "since": "A date, or nothing for no limit.",
        "until": "A date, or nothing for no limit.",
    }
    assert "Correct the dates to see the totals." in text(html)
    assert "<table" not in main(html)
    status, html = await get(web, "/reports?since=2026-05-02&until=2026-05-01", C)
    assert status == 422
    assert errors(html) == {"since": "The start must not be after the end."}


async def test_csv(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed(web, monkeypatch)
    formula = Peer(web, THIRD_KEY)
    await formula.profile({"ar": '=HYPERLINK("x")', "en": '=HYPERLINK("x")'})
    await formula.allocation(pseudonym("other"), category="shelter", unit="kit", value_iqd=0)
    response = await web.request(
        "GET", "/reports.csv?view=own&by=month&since=2026-04-01", web.staff[C]
    )
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="ataa-own-month-2026-04-01.csv"'
    )
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8")[1:] == (
        "month,unit,count,households,quantity,value_iqd\r\n"
        "2026-04,basket,1,1,2,50000\r\n"
        "2026-05,basket,2,2,4,100000\r\n"
    )
    response = await web.request("GET", "/reports.csv?view=federation&by=author", web.staff[R])
    assert response.status == 200
    body = (await response.read()).decode("utf-8")
    assert body.startswith("\ufeffauthor,organisation,unit,")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0] == [
        "author",
        "organisation",
        "unit",
        "count",
        "households",
        "quantity",
        "value_iqd",
    ]
    by_author = {r[0]: r for r in rows[1:]}
    assert by_author[formula.author.hex()][1:] == ['\'=HYPERLINK("x")', "kit", "1", "1", "2", "0"]
    # names in the UI's language (Arabic: no language chosen)
    hope = [PEER_NAME["ar"], "basket", "1", "1", "2", "30000"]
    assert by_author[Peer(web).author.hex()][1:] == hope
    # federation by category too; bad parameters refused
    response = await web.request("GET", "/reports.csv?view=federation&by=category", web.staff[C])
    assert response.status == 200
    assert "shelter,kit,1,1,2,0" in (await response.read()).decode("utf-8")
    for query in ("view=own&by=author", "view=all&by=program", "by=colour", "since=May"):
        response = await web.request("GET", f"/reports.csv?{query}", web.staff[C])
        assert response.status == 422, query


async def test_reports_in_arabic(web: WebNode, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed(web, monkeypatch)
    status, html = await get(web, "/reports", C, lang="ar")
    assert status == 200 and '<html lang="ar" dir="rtl">' in html
    month_chart = html[html.index('aria-labelledby="own-month-chart-title"') :]
    month_chart = month_chart[: month_chart.index("</svg>")]
    # mirrored: bars start at the right edge and grow to the left
    assert 'direction="rtl"' in month_chart
    assert re.findall(r'<rect class="bar" x="([^"]+)"', month_chart) == ["65.0%", "30.0%"]
    assert re.findall(r'class="bar-value" x="([^"]+)"', month_chart) == ["64.0%", "29.0%"]
    assert re.findall(r'class="bar-label" x="([^"]+)"', month_chart) == ["100%", "100%"]
    assert ["نيسان ٢٠٢٦", "سلة", "١", "١", "٢", "٥٠٬٠٠٠"] in table(html, "own-month")
    # Needs the merged catalog (the Arabic msgstrs of /work/briefs/ar_queue.json).
    assert "حسب الشهر" in text(html)
