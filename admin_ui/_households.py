"""Households (Ata'a): the list with search and filters, registration and editing, one
household's page, archiving, and the review of duplicate suggestions.

Who sees what (``node.ataa._households``): lists and search show the head's name and
non-personal columns to every role with ``Permission.VIEW_HOUSEHOLDS`` and are not
audited; a household's full record is shown only to ``Permission.VIEW_PII`` through
``HouseholdService.get``, which writes an audit row for every view (and for the edit
form, which shows the record too). A coordinator opening a household gets its summary
and score instead, and no audit row. Nothing here logs a name or any other field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from node import geo
from node.accounts import Permission, allowed
from node.ataa import (
    ARCHIVE_REASONS,
    Ataa,
    HouseholdError,
    HouseholdErrorCode,
    HouseholdSummary,
    HouseholdView,
    NeedBand,
    ScoringModel,
    StoredScore,
)
from node.web import current_account, services

from ._choices import ERRORS
from ._household_forms import (
    COUNT_FIELDS,
    DISPLACEMENT_LABELS,
    FIELD_LABELS,
    NAME_FIELDS,
    SEX_LABELS,
    SHELTER_LABELS,
    FormResult,
    area_name,
    district_groups,
    governorate_options,
    parse_household,
    translate_errors,
    values_of,
)
from ._i18n import N_, Locale
from ._page import locale_of, render

__all__ = [
    "ARCHIVE_LABELS",
    "ERROR_STATUS",
    "HOUSEHOLD_ERRORS",
    "MAX_ID",
    "PAGE_SIZE",
    "archive",
    "ataa_of",
    "band_labels",
    "create_household",
    "done_flash",
    "edit_form",
    "household_page",
    "households_page",
    "id_in_path",
    "new_form",
    "score_lines",
    "search",
    "summary_row",
    "update_household",
]

#: Households per list page: a phone screen or two of cards, and 25 names decrypted.
PAGE_SIZE: Final = 25
#: Search results looked at (the store's own page limit): enough to page through and
#: to filter by area, band or status afterwards.
_SEARCH_LIMIT: Final = 200
#: Largest household id a path may name: the ``ataa_households.id`` column is a 32-bit
#: integer on PostgreSQL, and a larger value would be a database error, not a 404.
MAX_ID: Final = 2**31 - 1

ARCHIVE_LABELS: Final = {
    "moved": N_("Moved away from the area"),
    "deceased": N_("Deceased"),
    "ineligible": N_("No longer eligible"),
    "withdrew": N_("Withdrew from the programme"),
    "other": N_("Another reason"),
}
assert tuple(ARCHIVE_LABELS) == ARCHIVE_REASONS
STATUS_LABELS: Final = {
    "active": N_("Active"),
    "archived": N_("Archived"),
    "merged": N_("Merged"),
}
_DONE: Final = {
    "created": N_("The household was registered."),
    "updated": N_("The household was saved."),
    "archived": N_("The household was archived."),
}
_UNAVAILABLE: Final = N_("Households are not available on this node.")
_DUPLICATE_ID: Final = N_("Another household already has this national ID.")
_BAD_FORM: Final = N_("Some answers need correcting: see the fields marked below.")
HOUSEHOLD_ERRORS: Final = {
    HouseholdErrorCode.NOT_FOUND: N_("That household no longer exists."),
    HouseholdErrorCode.NOT_ACTIVE: N_(
        "That household is no longer active (archived or merged), so this cannot be done."
    ),
    HouseholdErrorCode.BAD_REQUEST: N_("Choose one of the options."),
    HouseholdErrorCode.DUPLICATE_NATIONAL_ID: _DUPLICATE_ID,
}
ERROR_STATUS: Final = {
    HouseholdErrorCode.NOT_FOUND: 404,
    HouseholdErrorCode.NOT_ACTIVE: 409,
    HouseholdErrorCode.BAD_REQUEST: 422,
    HouseholdErrorCode.DUPLICATE_NATIONAL_ID: 409,
}


# -- shared with the import and scoring pages -----------------------------------------------


def ataa_of(request: web.Request) -> Ataa:
    """The node's Ata'a services (503 on a node built without them)."""
    ataa = services(request).ataa
    if ataa is None:
        raise web.HTTPServiceUnavailable(reason=_UNAVAILABLE)
    return ataa


def id_in_path(request: web.Request, name: str = "id") -> int:
    """The id in the path: 1-10 ASCII digits within the id column's range, else 404."""
    text = request.match_info[name]
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > MAX_ID:
        raise web.HTTPNotFound()
    return int(text)


def done_flash(
    request: web.Request, locale: Locale, table: dict[str, str]
) -> list[tuple[str, str]]:
    key = request.query.get("done")
    return [("success", locale.gettext(table[key]))] if key in table else []


def _label(locale: Locale, ar: str, en: str) -> str:
    return ar if locale.code == "ar" else en


def band_labels(model: ScoringModel, locale: Locale) -> dict[str, str]:
    """The model's need band labels in the UI's language, by band value."""
    return {str(b.band): _label(locale, b.label_ar, b.label_en) for b in model.need_bands}


def _value(locale: Locale, value: bool | int | str | None) -> str:
    """A breakdown value as words or a number (never PII: indicator values only)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return locale.gettext(N_("Yes") if value else N_("No"))
    if isinstance(value, int):
        return locale.number(value)
    label = SHELTER_LABELS.get(value) or DISPLACEMENT_LABELS.get(value)
    return locale.gettext(label) if label else value


def score_lines(model: ScoringModel, score: StoredScore, locale: Locale) -> list[dict[str, Any]]:
    """The breakdown of ``score`` as rows to show, labelled by ``model`` (its version)."""
    rows = []
    for line in score.breakdown:
        rule = model.rule(line.indicator)
        rows.append(
            {
                "indicator": line.indicator,
                "label": _label(locale, rule.label_ar, rule.label_en) if rule else line.indicator,
                "value": _value(locale, line.value),
                "points": line.points,
                "weight": line.weight,
                "weighted": line.weighted,
                "missing": line.missing,
            }
        )
    return rows


def summary_row(s: HouseholdSummary, locale: Locale, bands: dict[str, str]) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.display_name,
        "governorate": area_name(s.governorate, locale),
        "district": area_name(s.district, locale),
        "members": s.members,
        "score": s.score,
        "band": s.band,
        "band_label": bands.get(s.band or "", s.band or ""),
        "pseudonym": s.pseudonym,
        "weak": s.weak,
        "error": None,  # why a pseudonym is pending: only the audited view knows
        "status": s.status,
        "status_label": locale.gettext(STATUS_LABELS.get(s.status, s.status)),
        "merged_into": s.merged_into,
        "registered_ms": s.registered_ms,
    }


# -- the list -------------------------------------------------------------------------------


def _filters(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The list's filters from a query string or a posted search form (unknown values
    are dropped rather than refused: a stale link still shows a list)."""

    def get(name: str, default: str = "") -> str:
        value = fields.get(name, default)
        return value if isinstance(value, str) else default

    governorate, district, band, status = (
        get("governorate"),
        get("district"),
        get("band"),
        get("status", "active"),
    )
    try:
        page = max(1, min(int(get("page", "1")), 10_000))
    except ValueError:
        page = 1
    return {
        "q": get("q").strip()[:200],
        "governorate": governorate if governorate in {g.pcode for g in geo.governorates()} else "",
        "district": district if district and geo.is_district(district) else "",
        "band": band if band in tuple(NeedBand) else "",
        "status": status if status in STATUS_LABELS else "active",
        "page": page,
    }


def _page_href(filters: dict[str, Any], page: int) -> str:
    params = {k: v for k, v in filters.items() if v and k not in ("page", "q")}
    if params.get("status") == "active":
        del params["status"]
    if page > 1:
        params["page"] = page
    return "/households" + ("?" + urlencode(params) if params else "")


def _matches(s: HouseholdSummary, filters: dict[str, Any]) -> bool:
    wanted = (
        (filters["governorate"], s.governorate),
        (filters["district"], s.district),
        (filters["band"], s.band),
    )
    return s.status == filters["status"] and all(not w or w == v for w, v in wanted)


async def households_page(request: web.Request) -> web.Response:
    """GET /households: a page of households by need, highest first, filtered by
    area, band and status (a search is posted: :func:`search`)."""
    ataa = ataa_of(request)
    filters = dict(_filters(request.query), q="")
    offset = (filters["page"] - 1) * PAGE_SIZE
    area = {
        "status": filters["status"],
        "governorate": filters["governorate"] or None,
        "district": filters["district"] or None,
        "band": filters["band"] or None,
    }
    total = await ataa.households.count(**area)
    rows = await ataa.households.list(**area, limit=PAGE_SIZE, offset=offset)
    return await _list_page(request, ataa, filters, rows, total)


async def search(request: web.Request) -> web.Response:
    """POST /households/search: households matching a name, national ID or phone
    number, best match first, within the filters.

    Posted, not a query string: what staff type here is PII, and a URL is kept in
    the phone's history and in the logs of any proxy in front of the node.
    """
    ataa = ataa_of(request)
    filters = _filters(await request.post())
    if not filters["q"]:
        raise web.HTTPSeeOther(_page_href(filters, 1))
    found = await ataa.households.search(
        filters["q"], limit=_SEARCH_LIMIT, include_inactive=filters["status"] != "active"
    )
    matching = [s for s in found if _matches(s, filters)]
    offset = (filters["page"] - 1) * PAGE_SIZE
    return await _list_page(
        request, ataa, filters, matching[offset : offset + PAGE_SIZE], len(matching)
    )


async def _list_page(
    request: web.Request,
    ataa: Ataa,
    filters: dict[str, Any],
    rows: list[HouseholdSummary],
    total: int,
) -> web.Response:
    locale = locale_of(request)
    page = filters["page"]
    offset = (page - 1) * PAGE_SIZE
    _version, model = await ataa.scoring.active()
    bands = band_labels(model, locale)
    more = offset + PAGE_SIZE < total
    return render(
        request,
        "households.html",
        locale.gettext(N_("Households")),
        flash=done_flash(request, locale, _DONE),
        rows=[summary_row(s, locale, bands) for s in rows],
        total=total,
        first=offset + 1,
        filters=filters,
        governorates=governorate_options(locale),
        district_groups=district_groups(locale),
        bands=list(bands.items()),
        statuses=[(k, locale.gettext(v)) for k, v in STATUS_LABELS.items()],
        duplicates=await ataa.duplicates.count_open(),
        prev_page=page - 1 if page > 1 else None,
        next_page=page + 1 if more else None,
        prev_href=_page_href(filters, page - 1) if page > 1 else None,
        next_href=_page_href(filters, page + 1) if more else None,
    )


# -- one household --------------------------------------------------------------------------


async def _score_context(
    ataa: Ataa, household: int, version: int | None, locale: Locale
) -> dict[str, Any]:
    """The current score's breakdown and the score under every model version."""
    history = await ataa.scoring.scores(household)
    current = next((s for s in history if s.model_version == version), None)
    _active, active_model = await ataa.scoring.active()
    bands = band_labels(active_model, locale)
    lines: list[dict[str, Any]] = []
    if current is not None:
        lines = score_lines(await ataa.scoring.model(current.model_version), current, locale)
    return {
        "score": current,
        "band_label": bands.get(current.band, current.band) if current else "",
        "lines": lines,
        "missing": [line["label"] for line in lines if line["missing"]],
        "history": [
            {
                "version": s.model_version,
                "score": s.score,
                "band": s.band,
                "band_label": bands.get(s.band, s.band),
                "computed_ms": s.computed_ms,
            }
            for s in history
        ],
    }


def _record_facts(view: HouseholdView, locale: Locale) -> dict[str, Any]:
    """The full record's fields as the page shows them (only from the audited view)."""
    record = view.record
    gettext = locale.gettext

    def choice(table: dict[str, str], value: str | None) -> str:
        return gettext(table[value]) if value in table else ""

    return {
        "mother_name": record.mother_name,
        "national_id": record.national_id or "",
        "phone": record.phone or "",
        "birth_date": record.birth_date or "",
        "head_sex": choice(SEX_LABELS, record.head_sex.value if record.head_sex else None),
        "address": record.address,
        "displacement": choice(DISPLACEMENT_LABELS, record.displacement),
        "shelter": choice(SHELTER_LABELS, record.shelter),
        "monthly_income_iqd": record.monthly_income_iqd,
        "debt_iqd": record.debt_iqd,
        "members": [
            {
                "age": m.age,
                "sex": gettext(SEX_LABELS[m.sex.value]),
                "disability": m.disability,
                "chronic_illness": m.chronic_illness,
                "in_school": m.in_school,
            }
            for m in record.members
        ],
        "counts": [
            (gettext(FIELD_LABELS[name]), getattr(record, name))
            for name in COUNT_FIELDS
            if getattr(record, name) is not None
        ],
    }


async def household_page(
    request: web.Request, *, status: int = 200, flash: list[tuple[str, str]] | None = None
) -> web.Response:
    """GET /households/{id}: the full record (audited) for staff who may see PII, the
    summary and score for the others."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    account = current_account(request)
    hid = id_in_path(request)
    full = allowed(account.role, Permission.VIEW_PII)
    try:
        if full:
            view = await ataa.households.get(hid, actor=account.id, purpose="view")
            summary = await ataa.households.summary(hid)
        else:
            view, summary = None, await ataa.households.summary(hid)
    except HouseholdError as error:
        if error.code is HouseholdErrorCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        raise
    _version, model = await ataa.scoring.active()
    household = summary_row(summary, locale, band_labels(model, locale))
    if view is not None:  # the state in the epoch in force, as ``get`` found it
        household.update(pseudonym=view.pseudonym, weak=view.weak, error=view.pseudonym_error)
    pairs = []
    if summary.status == "active":
        pairs = await ataa.duplicates.open_suggestions(household_id=hid, limit=20)
    return render(
        request,
        "household.html",
        household["name"],
        status=status,
        flash=flash if flash is not None else done_flash(request, locale, _DONE),
        household=household,
        facts=_record_facts(view, locale) if view is not None else None,
        duplicates=[p.b if p.a == hid else p.a for p in pairs],
        archive_reasons=[(k, locale.gettext(v)) for k, v in ARCHIVE_LABELS.items()],
        **await _score_context(ataa, hid, summary.model_version, locale),
    )


async def archive(request: web.Request) -> web.Response:
    """POST /households/{id}/archive: off lists, search and the queue (audited with
    the reason code)."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    hid = id_in_path(request)
    form = await request.post()
    reason = str(form.get("reason", ""))[:32]
    try:
        await ataa.households.archive(hid, actor=current_account(request).id, reason=reason)
    except HouseholdError as error:
        if error.code is HouseholdErrorCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        text = locale.gettext(HOUSEHOLD_ERRORS.get(error.code, ERRORS["INVALID"]))
        return await household_page(
            request, status=ERROR_STATUS.get(error.code, 422), flash=[("error", text)]
        )
    raise web.HTTPSeeOther(f"/households/{hid}?done=archived")


# -- registration and editing ---------------------------------------------------------------


def _form_page(
    request: web.Request,
    form: FormResult,
    *,
    status: int = 200,
    household: int | None = None,
) -> web.Response:
    locale = locale_of(request)
    errors = translate_errors(form.errors, locale.gettext)
    if form.duplicate_of is not None:
        errors["national_id"] = locale.gettext(_DUPLICATE_ID)
    gettext = locale.gettext
    return render(
        request,
        "household_form.html",
        gettext(N_("Edit household") if household else N_("Register a household")),
        status=status,
        flash=[("error", gettext(_BAD_FORM))] if errors else [],
        values=form.values,
        errors=errors,
        household=household,
        duplicate_of=form.duplicate_of,
        action=f"/households/{household}/edit" if household else "/households",
        labels={name: gettext(text) for name, text in FIELD_LABELS.items()},
        name_fields=NAME_FIELDS,
        count_fields=COUNT_FIELDS,
        governorates=governorate_options(locale),
        district_groups=district_groups(locale),
        sexes=[(k, gettext(v)) for k, v in SEX_LABELS.items()],
        shelters=[(k, gettext(v)) for k, v in SHELTER_LABELS.items()],
        displacements=[(k, gettext(v)) for k, v in DISPLACEMENT_LABELS.items()],
    )


async def new_form(request: web.Request) -> web.Response:
    """GET /households/new: an empty registration form."""
    ataa_of(request)
    return _form_page(request, FormResult(values=values_of(None)))


async def create_household(request: web.Request) -> web.Response:
    """POST /households: register the household the form describes."""
    ataa = ataa_of(request)
    form = parse_household(await request.post())
    if form.record is None:
        return _form_page(request, form, status=422)
    try:
        hid = await ataa.households.create(form.record, actor=current_account(request).id)
    except HouseholdError as error:
        if error.code is not HouseholdErrorCode.DUPLICATE_NATIONAL_ID:
            raise
        form.duplicate_of = error.household_id
        return _form_page(request, form, status=409)
    raise web.HTTPSeeOther(f"/households/{hid}?done=created")


async def edit_form(request: web.Request) -> web.Response:
    """GET /households/{id}/edit: the record in the form (audited: purpose ``edit``)."""
    ataa = ataa_of(request)
    hid = id_in_path(request)
    try:
        view = await ataa.households.get(hid, actor=current_account(request).id, purpose="edit")
    except HouseholdError as error:
        if error.code is HouseholdErrorCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        raise
    return _form_page(request, FormResult(values=values_of(view.record)), household=hid)


async def update_household(request: web.Request) -> web.Response:
    """POST /households/{id}/edit: save the edited record (re-scored, re-indexed)."""
    ataa = ataa_of(request)
    hid = id_in_path(request)
    form = parse_household(await request.post())
    if form.record is None:
        return _form_page(request, form, status=422, household=hid)
    try:
        await ataa.households.update(hid, form.record, actor=current_account(request).id)
    except HouseholdError as error:
        if error.code is HouseholdErrorCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        if error.code is not HouseholdErrorCode.DUPLICATE_NATIONAL_ID:
            raise
        form.duplicate_of = error.household_id
        return _form_page(request, form, status=409, household=hid)
    raise web.HTTPSeeOther(f"/households/{hid}?done=updated")
