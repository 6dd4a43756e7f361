"""Reports (Ata'a): totals of this organisation's allocations by programme, district,
category and month, and of every allocation this node holds by organisation (the
federation view), for a date range; as tables, simple bar charts drawn on the server
(SVG, no script), and CSV files for spreadsheets.

Totals are the report service's (``node.ataa._reports``): published, non-voided
allocations only. The table is the data; each chart repeats its table's first rows
as bars, so it carries ``role="img"`` and a title naming what it shows, and mirrors
itself on right-to-left pages.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web
from babel import dates as babel_dates

from node.ataa import AllocationError, Dimension, ReportRow, to_csv

from ._household_forms import area_name
from ._households import ataa_of
from ._i18n import N_, Locale
from ._page import locale_of, render
from ._queue import CATEGORY_LABELS, UNIT_LABELS, NgoNames, label

__all__ = ["OWN_DIMENSIONS", "chart", "report_csv", "reports_page"]

#: The own view's groupings, in the order the page shows them.
OWN_DIMENSIONS: Final[tuple[Dimension, ...]] = ("program", "district", "category", "month")
_HEADINGS: Final = {
    "program": N_("By programme"),
    "district": N_("By district"),
    "category": N_("By category"),
    "month": N_("By month"),
    "author": N_("By organisation"),
}
_COLUMN: Final = {
    "program": N_("Programme"),
    "district": N_("District"),
    "category": N_("Category"),
    "month": N_("Month"),
    "author": N_("Organisation"),
}
#: Bars one chart draws: a phone screen's worth; the table below it has every row.
_MAX_BARS: Final = 20
#: Characters of a bar's label (a longer one is cut, with an ellipsis): one line of a
#: phone's width; the table has the full label.
_MAX_LABEL: Final = 40
#: px per bar: a line of 13 px text, then the 16 px bar, with air.
_ROW_HEIGHT: Final = 44
#: The longest bar, in percent of the width: the rest holds its number.
_BAR_SPAN: Final = 70
_BAD_DATE: Final = N_("A date, or nothing for no limit.")
_BAD_RANGE: Final = N_("The start must not be after the end.")
_BABEL_LOCALE: Final = {"ar": "ar_IQ", "en": "en"}
#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection"),
#: the same rule as ``node.ataa.to_csv``: such a cell gets a leading apostrophe.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _dates(query: Mapping[str, str], locale: Locale) -> tuple[dict[str, str], dict[str, str]]:
    """The range's ``since``/``until`` (``YYYY-MM-DD`` or empty) and an error per field."""
    values = {name: query.get(name, "").strip()[:20] for name in ("since", "until")}
    errors = {}
    for name, text in values.items():
        if not text:
            continue
        try:
            parsed = dt.date.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is None or parsed.isoformat() != text:
            errors[name] = locale.gettext(_BAD_DATE)
    if not errors and values["since"] and values["until"] and values["since"] > values["until"]:
        errors["since"] = locale.gettext(_BAD_RANGE)
    return values, errors


def _month(text: str | None, locale: Locale) -> str:
    if not text:
        return ""
    try:
        day = dt.date.fromisoformat(text + "-01")
    except ValueError:
        return text
    return locale.digits(babel_dates.format_date(day, "MMMM y", locale=_BABEL_LOCALE[locale.code]))


async def _key(row: ReportRow, dim: Dimension, locale: Locale, names: NgoNames) -> str:
    """The group a row is about, as staff read it."""
    if dim == "author":
        return await names.label(row.author) if row.author is not None else ""
    if dim == "district":
        return area_name(row.district, locale)
    if dim == "category":
        return label(CATEGORY_LABELS, row.category, locale)
    if dim == "month":
        return _month(row.month, locale)
    return row.program or ""


async def _table(
    rows: Sequence[ReportRow], dim: Dimension, locale: Locale, names: NgoNames
) -> list[dict[str, Any]]:
    return [
        {
            "key": await _key(row, dim, locale, names),
            "own": dim == "author" and row.author is not None and names.is_own(row.author),
            "ltr": dim == "program",
            "unit": label(UNIT_LABELS, row.unit, locale),
            "count": row.count,
            "households": row.households,
            "quantity": row.quantity,
            "value_iqd": row.value_iqd,
        }
        for row in rows
    ]


def chart(table: Sequence[Mapping[str, Any]], locale: Locale) -> dict[str, Any]:
    """Bars for a table's first rows: ``{metric, bars [{label, value, x, width,
    value_x, y}], start, height, truncated}``, x and widths in percent of the chart's
    width, mirrored for right-to-left.

    Each row is a label on a line of its own, then its bar from the start edge (left,
    or right on an Arabic page) and the number after it: a phone's width holds a long
    label. The SVG carries the page's direction, so text anchors are logical: every
    text is anchored at its ``start``.

    The metric is the value in dinars, or the number of allocations when every value
    is 0 (in-kind aid recorded without a value)."""
    metric = "value_iqd" if any(row["value_iqd"] for row in table) else "count"
    shown = table[:_MAX_BARS]
    top = max((row[metric] for row in shown), default=0) or 1
    rtl = locale.direction == "rtl"
    bars = []
    for index, row in enumerate(shown):
        width = round(row[metric] * _BAR_SPAN / top, 2)
        text = f"{row['key']} · {row['unit']}"
        if len(text) > _MAX_LABEL:
            text = text[: _MAX_LABEL - 1] + "…"
        bars.append(
            {
                "label": text,
                "value": locale.number(row[metric]),
                "x": round(100 - width, 2) if rtl else 0,
                "width": width,
                "value_x": round(99 - width, 2) if rtl else round(width + 1, 2),
                "y": index * _ROW_HEIGHT,
            }
        )
    return {
        "metric": metric,
        "bars": bars,
        "start": 100 if rtl else 0,
        "height": len(bars) * _ROW_HEIGHT + 4,
        "truncated": len(table) > _MAX_BARS,
    }


def _csv_href(view: str, by: Dimension, dates: Mapping[str, str]) -> str:
    params = {"view": view, "by": by, **{k: v for k, v in dates.items() if v}}
    return "/reports.csv?" + urlencode(params)


async def reports_page(request: web.Request) -> web.Response:
    """GET /reports: the own totals by each grouping and the federation's by
    organisation, for the date range asked (422 with an error per field for a bad one,
    and no totals)."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    dates, errors = _dates(request.query, locale)
    names = NgoNames(request, locale)
    sections = []
    if not errors:
        since, until = dates["since"] or None, dates["until"] or None
        reports = ataa.reports
        for view, dim in [("own", d) for d in OWN_DIMENSIONS] + [("federation", "author")]:
            if view == "own":
                rows = await reports.own_totals(since=since, until=until, by=(dim,))
            else:
                rows = await reports.federation_totals(since=since, until=until, by=(dim,))
            table = await _table(rows, dim, locale, names)
            sections.append(
                {
                    "id": f"{view}-{dim}",
                    "view": view,
                    "heading": locale.gettext(_HEADINGS[dim]),
                    "column": locale.gettext(_COLUMN[dim]),
                    "rows": table,
                    "chart": chart(table, locale),
                    "csv": _csv_href(view, dim, dates),
                }
            )
    return render(
        request,
        "reports.html",
        locale.gettext(N_("Reports")),
        status=422 if errors else 200,
        flash=[("error", locale.gettext(N_("Correct the dates to see the totals.")))]
        if errors
        else [],
        dates=dates,
        errors=errors,
        own=[s for s in sections if s["view"] == "own"],
        federation=[s for s in sections if s["view"] == "federation"],
    )


# -- CSV ------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


async def _federation_csv(rows: Sequence[ReportRow], names: NgoNames) -> str:
    """``to_csv``'s format with the organisation's name beside its id: names come from
    peers' profiles, so they are escaped like any text cell."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    columns = ["author", "organisation", "unit", "count", "households", "quantity", "value_iqd"]
    writer.writerow(columns)
    for row in rows:
        author = row.author or b""
        writer.writerow(
            [
                _cell(author.hex()),
                _cell(await names.label(author)),
                *(_cell(getattr(row, name)) for name in columns[2:]),
            ]
        )
    return out.getvalue()


async def report_csv(request: web.Request) -> web.Response:
    """GET /reports.csv?view=own|federation&by=...&since=&until=: one table as a CSV
    attachment (UTF-8 with a byte order mark, for Excel)."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    view = request.query.get("view", "own")
    by = request.query.get("by", "program")
    allowed: dict[str, Dimension] = {dim: dim for dim in OWN_DIMENSIONS}
    if view == "federation":
        allowed["author"] = "author"
    dates, errors = _dates(request.query, locale)
    if view not in ("own", "federation") or by not in allowed or errors:
        raise web.HTTPUnprocessableEntity()
    dim = allowed[by]
    since, until = dates["since"] or None, dates["until"] or None
    try:
        if view == "own":
            rows = await ataa.reports.own_totals(since=since, until=until, by=(dim,))
        else:
            rows = await ataa.reports.federation_totals(since=since, until=until, by=(dim,))
    except AllocationError:  # its own checks, the same as ours
        raise web.HTTPUnprocessableEntity() from None
    if dim == "author":
        text = await _federation_csv(rows, NgoNames(request, locale))
    else:
        text = to_csv(rows, columns=[dim, "unit", "count", "households", "quantity", "value_iqd"])
    span = "-".join(v for v in (dates["since"], dates["until"]) if v) or "all"
    filename = f"ataa-{view}-{dim}-{span}.csv"
    return web.Response(
        body=text.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
