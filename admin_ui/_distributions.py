"""Distributions (Ata'a): the list and the plan form; one distribution's page with its
households; the coordinator's actions (pick from the queue, include, exclude, close,
override the duplicate warning) and the case worker's (deliver, void).

The services do not check permissions: each route here declares its own
(``admin_ui.setup``), and the page shows each action only to the roles whose routes
allow it. Every POST is CSRF-checked by the pipeline, then redirects (POST-redirect-GET,
``?done=``), or re-renders the page with the error and a 4xx status.

Reasons staff type stay on this node (``node.ataa._distributions``); household rows
show display names only (``Permission.VIEW_HOUSEHOLDS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

import protocol
from node import geo
from node.ataa import (
    MAX_REASON,
    MAX_TARGET,
    AllocationError,
    AllocationErrorCode,
    Ataa,
    DistHousehold,
    Distribution,
    DistributionPlan,
)
from node.web import current_account

from ._choices import ERRORS
from ._household_forms import area_name, district_groups, governorate_options, parse_whole
from ._households import MAX_ID, ataa_of, id_in_path
from ._i18n import N_, Locale
from ._page import locale_of, render
from ._queue import (
    CATEGORY_LABELS,
    UNIT_LABELS,
    VOID_LABELS,
    NgoNames,
    day_ms,
    label,
    options,
    received_lines,
)

__all__ = [
    "DELIVERY_LABELS",
    "STATE_LABELS",
    "close",
    "create",
    "deliver",
    "distribution_page",
    "distributions_page",
    "exclude",
    "include",
    "override",
    "pick",
    "void",
]

#: Households per page of a distribution: one phone screen of cards per few scrolls,
#: and a duplicate check per planned row on it.
PAGE_SIZE: Final = 50
_MAX_PAGE: Final = 10_000
_MAX_TITLE: Final = 200
_MAX_QUANTITY: Final = 10**9  # protocol.Allocation's own limits
_MAX_VALUE: Final = 10**12

STATE_LABELS: Final = {
    "draft": N_("Planned, nothing delivered yet"),
    "open": N_("Delivering"),
    "closed": N_("Closed"),
}
DELIVERY_LABELS: Final = {
    "planned": N_("To deliver"),
    "delivered": N_("Aid delivered"),  # "Delivered" alone is a message's state
    "excluded": N_("Excluded"),
    "voided": N_("Voided"),
}
_DONE: Final = {
    "created": N_("The distribution was created. Pick households from the queue next."),
    "included": N_("The household was added to the distribution."),
    "excluded": N_("The household was excluded from the distribution."),
    "closed": N_("The distribution was closed."),
    "delivered": N_("The delivery was recorded."),
    "overridden": N_("The override was recorded: the household can now receive this aid."),
    "voided": N_("The delivery was voided."),
}
_PICKED: Final = N_("Households added from the queue: %(n)s.")
_NONE_PICKED: Final = N_(
    "No household was added: the distribution is full, or no other household in the "
    "queue matches its area."
)
_STATUS: Final = {
    AllocationErrorCode.NOT_FOUND: 404,
    AllocationErrorCode.INVALID: 422,
    AllocationErrorCode.BAD_STATE: 409,
    AllocationErrorCode.DUPLICATE_ASSISTANCE: 409,
    AllocationErrorCode.HEAD_UNCONFIRMED: 409,
}
_REFUSALS: Final = {
    AllocationErrorCode.NOT_FOUND: N_("That household is not in this distribution."),
    AllocationErrorCode.INVALID: ERRORS["INVALID"],
    AllocationErrorCode.BAD_STATE: N_(
        "This cannot be done now: the distribution may be closed, or the household "
        "already delivered, excluded, or no longer active."
    ),
    AllocationErrorCode.DUPLICATE_ASSISTANCE: N_(
        "Not delivered: another organisation gave this household the same kind of aid "
        "recently (see below). A coordinator must record an override with a reason first."
    ),
    AllocationErrorCode.HEAD_UNCONFIRMED: N_(
        "This node was restored from a backup and cannot add to its feed until a peer "
        "confirms its latest entry. Try again later."
    ),
}
_NO_HOUSEHOLD: Final = N_("No household has this number.")
_HOUSEHOLD_NUMBER: Final = N_("The household's number, as on its page.")
_REASON_REQUIRED: Final = N_("Write a reason (at most %(n)s characters).")
_CHOOSE: Final = N_("Choose one of the options.")
_BAD_FORM: Final = N_("Some answers need correcting: see the fields marked below.")
_WHOLE_RANGE: Final = N_("A whole number from %(low)s to %(high)s.")
_PLAN_ERRORS: Final = {
    "title": N_("Required: one line of at most 200 characters."),
    "program": N_("Not a valid programme id: see the rule above."),
    "district": N_("This district is not in the chosen governorate."),
}
PROGRAM_HINT: Final = N_(
    "1 to 64 Latin letters, digits, dots, dashes or underscores, starting with a letter, "
    "for example winter-2026. No run of 7 or more digits, so that no ID or phone number "
    "can be written here: it is shared with other organisations."
)
_PLAN_FIELDS: Final = (
    "title",
    "program",
    "category",
    "unit",
    "quantity",
    "value_iqd",
    "governorate",
    "district",
    "target_count",
)


# -- helpers --------------------------------------------------------------------------------


async def _get(ataa: Ataa, distribution_id: int) -> Distribution:
    try:
        return await ataa.distributions.get(distribution_id)
    except AllocationError as error:
        if error.code is AllocationErrorCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        raise


def _text(form: Mapping[str, Any], name: str, limit: int = 2000) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def _household(form: Mapping[str, Any]) -> int | None:
    return parse_whole(_text(form, "household", 20), 1, MAX_ID)


def _view(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Which page of which households is shown (from the query, or a posted form's
    hidden fields, to come back to the same view)."""
    state = _text(fields, "state", 20)
    return {
        "state": state if state in DELIVERY_LABELS else "",
        "page": parse_whole(_text(fields, "page", 20) or "1", 1, _MAX_PAGE) or 1,
    }


def _href(distribution_id: int, view: Mapping[str, Any], **extra: Any) -> str:
    params = {k: v for k, v in {**view, **extra}.items() if v and not (k == "page" and v == 1)}
    return f"/distributions/{distribution_id}" + ("?" + urlencode(params) if params else "")


def _done(request: web.Request, locale: Locale) -> list[tuple[str, str]]:
    key = request.query.get("done", "")
    if key == "picked":
        added = parse_whole(request.query.get("added", "0"), 0, MAX_TARGET) or 0
        text = _PICKED if added else _NONE_PICKED
        return [
            ("success" if added else "info", locale.gettext(text) % {"n": locale.number(added)})
        ]
    return [("success", locale.gettext(_DONE[key]))] if key in _DONE else []


def _plan_view(d: Distribution, locale: Locale) -> dict[str, Any]:
    plan = d.plan
    active = d.counts["planned"] + d.counts["delivered"]
    return {
        "id": d.id,
        "title": plan.title,
        "program": plan.program,
        "category": label(CATEGORY_LABELS, plan.category, locale),
        "unit": label(UNIT_LABELS, plan.unit, locale),
        "quantity": plan.quantity,
        "value_iqd": plan.value_iqd,
        "governorate": area_name(plan.governorate, locale),
        "district": area_name(plan.district, locale),
        "target": plan.target_count,
        "state": d.state,
        "state_label": label(STATE_LABELS, d.state, locale),
        "counts": d.counts,
        "open_places": max(0, plan.target_count - active),
        "created_ms": d.created_ms,
    }


# -- the list and the plan form -------------------------------------------------------------


def _blank_plan() -> dict[str, str]:
    return dict.fromkeys(_PLAN_FIELDS, "")


async def distributions_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    form: dict[str, Any] | None = None,
) -> web.Response:
    """GET /distributions: every distribution, newest first, and (for coordinators)
    the form to plan one; also that form's re-render with its errors."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    found = await ataa.distributions.list_all()
    return render(
        request,
        "distributions.html",
        locale.gettext(N_("Distributions")),
        status=status,
        flash=flash if flash is not None else [],
        distributions=[_plan_view(d, locale) for d in found],
        form=form or {"values": _blank_plan(), "errors": {}},
        categories=options(CATEGORY_LABELS, locale),
        units=options(UNIT_LABELS, locale),
        governorates=governorate_options(locale),
        district_groups=district_groups(locale),
        program_hint=locale.gettext(PROGRAM_HINT),
        quantity_hint=locale.gettext(_WHOLE_RANGE)
        % {"low": locale.number(1), "high": locale.number(_MAX_QUANTITY)},
        value_hint=locale.gettext(_WHOLE_RANGE)
        % {"low": locale.number(0), "high": locale.number(_MAX_VALUE)},
        target_hint=locale.gettext(_WHOLE_RANGE)
        % {"low": locale.number(1), "high": locale.number(MAX_TARGET)},
    )


def _parse_plan(
    form: Mapping[str, Any], locale: Locale
) -> tuple[DistributionPlan | None, dict[str, str], dict[str, str]]:
    """The plan a posted form describes, or None; the values to show again, and a
    translated error per field."""
    values = {name: _text(form, name, 400) for name in _PLAN_FIELDS}
    values["title"] = values["title"].strip()
    values["program"] = values["program"].strip()
    gettext = locale.gettext
    errors: dict[str, str] = {}

    def whole(name: str, low: int, high: int) -> int:
        number = parse_whole(values[name], low, high)
        if number is None:
            errors[name] = gettext(_WHOLE_RANGE) % {
                "low": locale.number(low),
                "high": locale.number(high),
            }
            return low
        return number

    if not 1 <= len(values["title"]) <= _MAX_TITLE:
        errors["title"] = gettext(_PLAN_ERRORS["title"])
    try:
        protocol.Allocation.CHECKS["program"]("program", values["program"])
    except protocol.ProtocolError:
        errors["program"] = gettext(_PLAN_ERRORS["program"])
    for name, table in (("category", CATEGORY_LABELS), ("unit", UNIT_LABELS)):
        if values[name] not in table:
            errors[name] = gettext(_CHOOSE)
    quantity = whole("quantity", 1, _MAX_QUANTITY)
    value_iqd = whole("value_iqd", 0, _MAX_VALUE)
    target = whole("target_count", 1, MAX_TARGET)
    governorate, district = values["governorate"] or None, values["district"] or None
    if governorate is not None and governorate not in {g.pcode for g in geo.governorates()}:
        errors["governorate"] = gettext(_CHOOSE)
    if district is not None and not geo.is_district(district):
        errors["district"] = gettext(_CHOOSE)
    elif district is not None and governorate is not None and "governorate" not in errors:
        if not geo.district_in(district, governorate):
            errors["district"] = gettext(_PLAN_ERRORS["district"])
    if errors:
        return None, values, errors
    plan = DistributionPlan(
        title=values["title"],
        program=values["program"],
        category=values["category"],
        unit=values["unit"],
        quantity=quantity,
        value_iqd=value_iqd,
        governorate=governorate,
        district=district,
        target_count=target,
    )
    try:
        plan.check()  # the service's own rules (e.g. control characters in the title)
    except AllocationError as error:
        name = error.message.partition(":")[0]
        errors[name if name in values else "title"] = gettext(
            _PLAN_ERRORS.get(name, ERRORS["INVALID"])
        )
        return None, values, errors
    return plan, values, errors


async def create(request: web.Request) -> web.Response:
    """POST /distributions: plan a distribution (audited by the service); 422 with an
    error per field and nothing stored."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    plan, values, errors = _parse_plan(await request.post(), locale)
    if plan is None:
        return await distributions_page(
            request,
            status=422,
            flash=[("error", locale.gettext(_BAD_FORM))],
            form={"values": values, "errors": errors},
        )
    created = await ataa.distributions.create(plan, actor=current_account(request).id)
    raise web.HTTPSeeOther(f"/distributions/{created.id}?done=created")


# -- one distribution -------------------------------------------------------------------------


async def _row_views(
    request: web.Request, ataa: Ataa, d: Distribution, rows: list[DistHousehold]
) -> list[dict[str, Any]]:
    locale = locale_of(request)
    names = NgoNames(request, locale)
    found = {s.id: s for s in await ataa.households.summaries([r.household_id for r in rows])}
    views = []
    for row in rows:
        summary = found.get(row.household_id)
        warnings: list[dict[str, Any]] = []
        if row.state == "planned" and d.state != "closed":
            received = await ataa.distributions.duplicate_warning(d.id, row.household_id)
            warnings = await received_lines(received, names, locale)
        delivered = row.delivered_date
        views.append(
            {
                "id": row.household_id,
                "name": summary.display_name if summary is not None else "",
                "district": area_name(summary.district, locale) if summary is not None else "",
                "rank": row.rank,
                "priority": row.priority,
                "state": row.state,
                "state_label": label(DELIVERY_LABELS, row.state, locale),
                "reason": label(VOID_LABELS, row.reason, locale)
                if row.state == "voided"
                else row.reason,
                "override": row.override_by is not None,
                "override_reason": row.override_reason,
                "delivered_date": locale.date(day_ms(delivered)) if delivered else "",
                "delivered_hijri": locale.hijri(day_ms(delivered)) if delivered else "",
                "published": row.published,
                "warnings": warnings,
                "blocked": bool(warnings) and row.override_by is None,
            }
        )
    return views


async def distribution_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    view: dict[str, Any] | None = None,
    problem: dict[str, Any] | None = None,
    include_form: dict[str, Any] | None = None,
) -> web.Response:
    """GET /distributions/{id}, and the re-render of one of its forms with an error.

    Args:
        view: the page and state filter (default: the query's).
        problem: ``{"household", "action", "error"}``: the row form that failed (its
            fold is shown open with the error).
        include_form: ``{"values", "errors"}`` of the include form.
    """
    ataa = ataa_of(request)
    locale = locale_of(request)
    distribution_id = id_in_path(request)
    d = await _get(ataa, distribution_id)
    view = view or _view(request.query)
    rows = await ataa.distributions.households(distribution_id, state=view["state"] or None)
    offset = (view["page"] - 1) * PAGE_SIZE
    shown = rows[offset : offset + PAGE_SIZE]
    more = offset + PAGE_SIZE < len(rows)
    return render(
        request,
        "distribution.html",
        d.plan.title,
        status=status,
        flash=flash if flash is not None else _done(request, locale),
        d=_plan_view(d, locale),
        rows=await _row_views(request, ataa, d, shown),
        total=len(rows),
        first=offset + 1,
        view=view,
        states=[("", locale.gettext(N_("All")), sum(d.counts.values()))]
        + [(k, locale.gettext(v), d.counts[k]) for k, v in DELIVERY_LABELS.items()],
        state_hrefs={k: _href(d.id, {"state": k}) for k in ("", *DELIVERY_LABELS)},
        void_reasons=options(VOID_LABELS, locale),
        problem=problem or {"household": None, "action": "", "error": ""},
        include_form=include_form or {"values": {"household": "", "reason": ""}, "errors": {}},
        max_reason=MAX_REASON,
        reason_hint=locale.gettext(_REASON_REQUIRED) % {"n": locale.number(MAX_REASON)},
        household_hint=locale.gettext(_HOUSEHOLD_NUMBER),
        prev_href=_href(d.id, view, page=view["page"] - 1) if view["page"] > 1 else None,
        next_href=_href(d.id, view, page=view["page"] + 1) if more else None,
    )


async def _refused(
    request: web.Request,
    error: AllocationError,
    view: dict[str, Any],
    household: int | None,
    action: str,
) -> web.Response:
    """The page again, with why the service refused (STYLE §5: by code)."""
    locale = locale_of(request)
    text = locale.gettext(_REFUSALS.get(error.code, ERRORS["INVALID"]))
    response = await distribution_page(
        request,
        status=_STATUS.get(error.code, 422),
        flash=[("error", text)],
        view=view,
        problem={"household": household, "action": action, "error": text},
    )
    response.headers["X-Watan-Error"] = error.code.value
    return response


async def _invalid(
    request: web.Request,
    form: Mapping[str, Any],
    action: str,
    household: int | None,
    field: str,
    text: str,
) -> web.Response:
    """The page again with the field error of the form posted (422): a row's fold
    opened with it, or the include form at the top with what was typed."""
    locale = locale_of(request)
    include = None
    if action == "include" and form.get("from") != "row":
        typed = {"household": _text(form, "household", 20), "reason": _text(form, "reason")}
        include = {"values": typed, "errors": {field: text}}
    return await distribution_page(
        request,
        status=422,
        flash=[("error", locale.gettext(_BAD_FORM))],
        view=_view(form),
        problem={"household": household, "action": action, "error": text},
        include_form=include,
    )


async def _row_action(request: web.Request, action: str) -> web.Response:
    """A POST acting on one household of a distribution (all but pick and close)."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    distribution_id = id_in_path(request)
    await _get(ataa, distribution_id)  # 404 first, whatever the form says
    form = await request.post()
    household = _household(form)
    if household is None:
        return await _invalid(
            request, form, action, None, "household", locale.gettext(_NO_HOUSEHOLD)
        )
    reason = _text(form, "reason", MAX_REASON * 4)
    actor = current_account(request).id
    service = ataa.distributions
    try:
        if action == "deliver":
            await service.deliver(distribution_id, household, actor=actor)
        elif action == "void":
            await service.void(distribution_id, household, reason, actor=actor)
        elif action == "include":
            await service.include(distribution_id, household, reason, actor=actor)
        elif action == "exclude":
            await service.exclude(distribution_id, household, reason, actor=actor)
        else:
            await service.override(distribution_id, household, reason, actor=actor)
    except AllocationError as error:
        if error.code is AllocationErrorCode.INVALID and action != "deliver":
            text = locale.gettext(_CHOOSE if action == "void" else _REASON_REQUIRED)
            text %= {"n": locale.number(MAX_REASON)}
            return await _invalid(request, form, action, household, "reason", text)
        if error.code is AllocationErrorCode.NOT_FOUND and action == "include":
            text = locale.gettext(_NO_HOUSEHOLD)
            return await _invalid(request, form, action, household, "household", text)
        return await _refused(request, error, _view(form), household, action)
    done = {
        "deliver": "delivered",
        "void": "voided",
        "include": "included",
        "exclude": "excluded",
        "override": "overridden",
    }[action]
    location = _href(distribution_id, _view(form), done=done) + f"#household-{household}"
    raise web.HTTPSeeOther(location)


async def deliver(request: web.Request) -> web.Response:
    """POST /distributions/{id}/deliver: record a delivery (case workers); refused
    with 409 while another NGO's recent aid of the same category is not overridden."""
    return await _row_action(request, "deliver")


async def void(request: web.Request) -> web.Response:
    """POST /distributions/{id}/void: void a delivery with a reason code."""
    return await _row_action(request, "void")


async def include(request: web.Request) -> web.Response:
    """POST /distributions/{id}/include: add a household by hand, with a reason."""
    return await _row_action(request, "include")


async def exclude(request: web.Request) -> web.Response:
    """POST /distributions/{id}/exclude: leave a household out, with a reason."""
    return await _row_action(request, "exclude")


async def override(request: web.Request) -> web.Response:
    """POST /distributions/{id}/override: allow a delivery despite the duplicate
    warning, with a reason (coordinators; audited)."""
    return await _row_action(request, "override")


async def pick(request: web.Request) -> web.Response:
    """POST /distributions/{id}/pick: fill the open places from the top of the queue."""
    ataa = ataa_of(request)
    distribution_id = id_in_path(request)
    await _get(ataa, distribution_id)
    view = _view(await request.post())
    try:
        added = await ataa.distributions.pick(distribution_id, actor=current_account(request).id)
    except AllocationError as error:
        return await _refused(request, error, view, None, "pick")
    raise web.HTTPSeeOther(_href(distribution_id, view, done="picked", added=added or "0"))


async def close(request: web.Request) -> web.Response:
    """POST /distributions/{id}/close: no more picks or deliveries (voids stay possible)."""
    ataa = ataa_of(request)
    distribution_id = id_in_path(request)
    await _get(ataa, distribution_id)
    view = _view(await request.post())
    try:
        await ataa.distributions.close(distribution_id, actor=current_account(request).id)
    except AllocationError as error:
        return await _refused(request, error, view, None, "close")
    raise web.HTTPSeeOther(_href(distribution_id, view, done="closed"))
