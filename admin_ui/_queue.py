"""The priority queue page (Ata'a): the neediest households first, each row saying why
it stands where it does (score, penalty, and every allocation that counted, from this
organisation or another one), and the queue's settings (coordinators edit them).

Also the labels and helpers the distribution and report pages share: allocation
categories, units and void reasons by their protocol codes, the epoch in force, dates
of allocations (``YYYY-MM-DD``) shown in both calendars.

The rule itself is ``node.ataa._queue``'s (docs/ataa-queue.md); this page only shows it.
Households appear by display name (``Permission.VIEW_HOUSEHOLDS`` allows names, no
other PII) and link to their own page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

import protocol
from node import geo
from node.ataa import AllocationError, NeedBand, QueueRow, QueueSettings, Received
from node.oracle import OracleError
from node.web import current_account, services

from ._choices import ERRORS
from ._household_forms import area_name, district_groups, governorate_options, parse_whole
from ._households import ataa_of, band_labels
from ._i18n import N_, Locale
from ._names import Names
from ._page import locale_of, render

__all__ = [
    "CATEGORY_LABELS",
    "EPOCH_PROBLEMS",
    "PAGE_SIZE",
    "UNIT_LABELS",
    "VOID_LABELS",
    "NgoNames",
    "current_epoch",
    "day_ms",
    "label",
    "options",
    "queue_page",
    "received_lines",
    "save_settings",
]

#: Rows per queue page: a phone screen or two of cards.
PAGE_SIZE: Final = 25
#: The deepest page a link may ask for (10,000 pages of 25: far beyond any node's
#: households; a larger number is a typo, shown as the first page).
_MAX_PAGE: Final = 10_000

#: Allocation categories (``protocol.ALLOCATION_CATEGORIES``), as staff call them.
CATEGORY_LABELS: Final = {
    "assistive_devices": N_("Assistive devices"),
    "cash": N_("Cash"),
    "education": N_("Education"),
    "food": N_("Food"),
    "health": N_("Health"),
    "livelihoods": N_("Livelihoods"),
    "nfi": N_("Household items (non-food)"),
    "protection": N_("Protection"),
    "shelter": N_("Shelter"),
    "wash": N_("Water, sanitation and hygiene"),
    "winterization": N_("Winter supplies"),
}
#: Units of quantity (``protocol.ALLOCATION_UNITS``).
UNIT_LABELS: Final = {
    "basket": N_("basket"),
    "item": N_("item"),
    "kg": N_("kg"),
    "kit": N_("kit"),
    "litre": N_("litre"),
    "month": N_("month"),
    "session": N_("session"),
    "transfer": N_("transfer"),
    "voucher": N_("voucher"),
}
#: Why a delivery is voided (``protocol.VOID_REASONS``): codes, never free text, as
#: they travel in the void entry.
VOID_LABELS: Final = {
    "duplicate": N_("Recorded twice"),
    "entered_in_error": N_("Entered in error"),
    "not_delivered": N_("Not actually delivered"),
    "returned": N_("Returned by the household"),
}
assert tuple(CATEGORY_LABELS) == protocol.ALLOCATION_CATEGORIES
assert tuple(UNIT_LABELS) == protocol.ALLOCATION_UNITS
assert tuple(VOID_LABELS) == protocol.VOID_REASONS


#: Queue settings: (field, label, hint, (low, high)), in the order the form shows them;
#: the ranges are ``QueueSettings``' own.
_SETTINGS: Final = (
    (
        "window_days",
        N_("Window (days)"),
        N_("Aid given within this many days lowers priority. 1 to 366."),
        (1, 366),
    ),
    (
        "same_category_penalty",
        N_("Points per allocation of the same category"),
        N_("For each allocation of the category the queue is for. 0 to 1,000 (the score scale)."),
        (0, 1000),
    ),
    (
        "other_category_penalty",
        N_("Points per allocation of another category"),
        N_("For each allocation of any other category. 0 up to the same-category points."),
        (0, 1000),
    ),
    (
        "cap_pct",
        N_("Largest penalty (percent of the score)"),
        N_("The penalty never takes more than this share of a household's score. 0 to 100."),
        (0, 100),
    ),
)
_OTHER_ABOVE_SAME: Final = N_("At most the points per allocation of the same category.")
_WHOLE_RANGE: Final = N_("A whole number from %(low)s to %(high)s.")
_DONE: Final = {"settings": N_("The queue settings were saved.")}
#: Why no pseudonym matches count, by the code of the epoch lookup.
EPOCH_PROBLEMS: Final = {
    "NO_FEDERATION": N_(
        "This node is not part of a federation: only this organisation's own deliveries "
        "lower priorities."
    ),
    "NO_CONFIG": N_(
        "No pseudonym oracle configuration is in force yet, so aid from other "
        "organisations cannot be matched: only this organisation's own deliveries lower "
        "priorities for now."
    ),
    "CONFIG_CONFLICT": N_(
        "Two oracle configurations conflict, so aid from other organisations cannot be "
        "matched: only this organisation's own deliveries lower priorities for now."
    ),
}


# -- shared with the distribution and report pages -------------------------------------------


def label(table: Mapping[str, str], code: str | None, locale: Locale) -> str:
    """``code``'s label in ``table``, translated (the code itself if unknown: a newer
    peer may use a code this version does not know)."""
    if code is None:
        return ""
    return locale.gettext(table[code]) if code in table else code


def options(table: Mapping[str, str], locale: Locale) -> list[tuple[str, str]]:
    return [(code, locale.gettext(text)) for code, text in table.items()]


def day_ms(day: str) -> int:
    """Noon UTC of a ``YYYY-MM-DD`` day: the same date in Iraq (UTC+3), for the date
    filters (``date``, ``hijri``)."""
    date = dt.date.fromisoformat(day)
    return int(dt.datetime(date.year, date.month, date.day, 12, tzinfo=dt.UTC).timestamp() * 1000)


async def current_epoch(request: web.Request) -> tuple[int | None, str | None]:
    """The pseudonym epoch in force, or None and why (a key of ``EPOCH_PROBLEMS``)."""
    fed = services(request).federation
    if fed is None or fed.pseudonyms is None:
        return None, "NO_FEDERATION"
    try:
        return (await fed.pseudonyms.config()).epoch, None
    except OracleError as error:
        code = error.code.value
        return None, code if code in EPOCH_PROBLEMS else "NO_CONFIG"


class NgoNames:
    """Organisation names of allocation authors, read once per page (``Names``), or
    fingerprints on a node without federation."""

    def __init__(self, request: web.Request, locale: Locale) -> None:
        svc = services(request)
        self._own = svc.identity.node_id
        self._locale = locale
        self._names = None if svc.federation is None else Names(svc.federation, locale)

    async def label(self, author: bytes) -> str:
        if self._names is not None:
            return await self._names.label(author)
        return self._locale.digits(protocol.fingerprint(author))

    def is_own(self, author: bytes) -> bool:
        return author == self._own


async def received_lines(
    received: Sequence[Received], names: NgoNames, locale: Locale
) -> list[dict[str, Any]]:
    """What a household received, as the explanation lines show it."""
    lines = []
    for item in received:
        ms = day_ms(item.date)
        category = label(CATEGORY_LABELS, item.category, locale)
        if locale.code == "en":  # inside a sentence: "received food worth ..."
            category = category[:1].lower() + category[1:]
        lines.append(
            {
                "category": category,
                "value": locale.number(item.value_iqd),
                "quantity": locale.number(item.quantity),
                "unit": label(UNIT_LABELS, item.unit, locale),
                "ngo": await names.label(item.author),
                "own": names.is_own(item.author),
                "date": locale.date(ms),
                "hijri": locale.hijri(ms),
                "points": locale.number(item.points),
                "weak": item.weak_match,
                "program": item.program,
            }
        )
    return lines


# -- the page -----------------------------------------------------------------------------


def _filters(query: Mapping[str, str]) -> dict[str, Any]:
    """The filters of a query string; unknown values are dropped (a stale link still
    shows a queue)."""
    category = query.get("category", "")
    governorate = query.get("governorate", "")
    district = query.get("district", "")
    band = query.get("band", "")
    page = parse_whole(query.get("page", "1"), 1, _MAX_PAGE) or 1
    return {
        "category": category if category in CATEGORY_LABELS else "",
        "governorate": governorate if governorate in {g.pcode for g in geo.governorates()} else "",
        "district": district if district and geo.is_district(district) else "",
        "band": band if band in tuple(NeedBand) else "",
        "page": page,
    }


def _href(filters: Mapping[str, Any], page: int) -> str:
    params = {k: v for k, v in filters.items() if v and k != "page"}
    if page > 1:
        params["page"] = page
    return "/queue" + ("?" + urlencode(params) if params else "")


def _settings_values(settings: QueueSettings) -> dict[str, str]:
    return {name: str(getattr(settings, name)) for name, *_ in _SETTINGS}


async def _rows(
    request: web.Request, rows: Sequence[QueueRow], first: int, bands: dict[str, str]
) -> list[dict[str, Any]]:
    ataa = ataa_of(request)
    locale = locale_of(request)
    names = NgoNames(request, locale)
    found = {s.id: s for s in await ataa.households.summaries([r.household_id for r in rows])}
    out = []
    for rank, row in enumerate(rows, start=first):
        summary = found.get(row.household_id)
        out.append(
            {
                "rank": rank,
                "id": row.household_id,
                "name": summary.display_name if summary is not None else "",
                "district": area_name(summary.district, locale) if summary is not None else "",
                "score": row.score,
                "band": row.band,
                "band_label": bands.get(row.band or "", row.band or ""),
                "priority": row.priority,
                "penalty": row.penalty,
                "pseudonym": row.pseudonym_state,
                "weak": row.weak,
                "lines": await received_lines(row.received, names, locale),
            }
        )
    return out


async def queue_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    form: dict[str, Any] | None = None,
) -> web.Response:
    """GET /queue, and the settings form's re-render with its errors.

    Args:
        form: ``{"values": {field: text}, "errors": {field: translated message}}``.
    """
    ataa = ataa_of(request)
    locale = locale_of(request)
    filters = _filters(request.query)
    epoch, problem = await current_epoch(request)
    offset = (filters["page"] - 1) * PAGE_SIZE
    page = await ataa.queue.rank(
        epoch=epoch,
        category=filters["category"] or None,
        governorate=filters["governorate"] or None,
        district=filters["district"] or None,
        band=filters["band"] or None,
        limit=PAGE_SIZE,
        offset=offset,
    )
    _version, model = await ataa.scoring.active()
    bands = band_labels(model, locale)
    settings = await ataa.queue.settings()
    key = request.query.get("done", "")
    done = [("success", locale.gettext(_DONE[key]))] if key in _DONE else []
    notices = list(flash if flash is not None else done)
    if problem is not None:
        notices.append(("info", locale.gettext(EPOCH_PROBLEMS[problem])))
    more = offset + PAGE_SIZE < page.total
    return render(
        request,
        "queue.html",
        locale.gettext(N_("Priority queue")),
        status=status,
        flash=notices,
        rows=await _rows(request, page.rows, offset + 1, bands),
        total=page.total,
        first=offset + 1,
        filters=filters,
        categories=options(CATEGORY_LABELS, locale),
        governorates=governorate_options(locale),
        district_groups=district_groups(locale),
        bands=list(bands.items()),
        settings=settings,
        settings_fields=[
            (name, locale.gettext(text), locale.gettext(hint), low, high)
            for name, text, hint, (low, high) in _SETTINGS
        ],
        form=form or {"values": _settings_values(settings), "errors": {}},
        prev_href=_href(filters, filters["page"] - 1) if filters["page"] > 1 else None,
        next_href=_href(filters, filters["page"] + 1) if more else None,
    )


async def save_settings(request: web.Request) -> web.Response:
    """POST /queue/settings: new queue settings (audited by the queue as
    ``ataa.queue.settings``); 422 with an error per field, nothing saved."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    posted = await request.post()
    values = {name: str(posted.get(name, ""))[:40] for name, *_ in _SETTINGS}
    errors: dict[str, str] = {}
    parsed: dict[str, int] = {}
    for name, _text, _hint, (low, high) in _SETTINGS:
        number = parse_whole(values[name], low, high)
        if number is None:
            errors[name] = locale.gettext(_WHOLE_RANGE) % {
                "low": locale.number(low),
                "high": locale.number(high),
            }
        else:
            parsed[name] = number
    if not errors and parsed["other_category_penalty"] > parsed["same_category_penalty"]:
        errors["other_category_penalty"] = locale.gettext(_OTHER_ABOVE_SAME)
    if not errors:
        try:
            settings = QueueSettings(**parsed)
        except AllocationError:  # its own checks, the same as ours
            errors["window_days"] = locale.gettext(ERRORS["INVALID"])
        else:
            await ataa.queue.update_settings(settings, actor=current_account(request).id)
            raise web.HTTPSeeOther("/queue?done=settings#settings-heading")
    return await queue_page(
        request,
        status=422,
        flash=[("error", locale.gettext(ERRORS["INVALID"]))],
        form={"values": values, "errors": errors},
    )
