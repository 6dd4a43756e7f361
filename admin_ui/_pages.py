"""The dashboard, staff accounts, the audit log and the organisation settings."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

from aiohttp import web

from node.accounts import Account, AccountError, Role
from node.profile import ProfileError
from node.web import current_account, node_summary, path_id, services

from ._auth import account_error_text
from ._choices import ACTIONS, ERRORS, GOVERNORATES, ROLES, SECTORS
from ._i18n import N_, TIMEZONE, Locale
from ._page import locale_of, render

__all__ = [
    "account_action",
    "account_page",
    "accounts_page",
    "audit_page",
    "create_account",
    "dashboard",
    "save_settings",
    "settings_page",
]

_DONE: Final = {
    "password": N_("Your password was changed."),
    "role": N_("The role was changed."),
    "disable": N_("The account was disabled; its sessions were ended."),
    "enable": N_("The account was enabled."),
    "settings": N_("The organisation profile was saved and signed into the node's feed."),
}
_AUDIT_PAGE: Final = 50


def _done(request: web.Request, locale: Locale) -> list[tuple[str, str]]:
    key = request.query.get("done")
    return [("success", locale.gettext(_DONE[key]))] if key in _DONE else []


def _choices(locale: Locale, table: dict[str, str]) -> list[tuple[str, str]]:
    return [(value, locale.gettext(label)) for value, label in table.items()]


async def dashboard(request: web.Request) -> web.Response:
    locale = locale_of(request)
    summary = await node_summary(request)
    profile = await services(request).profiles.current()
    return render(
        request,
        "dashboard.html",
        locale.gettext(N_("Dashboard")),
        flash=_done(request, locale),
        node=summary,
        profile=profile,
        governorate=locale.gettext(GOVERNORATES.get(profile.governorate, "")) if profile else "",
        provisional=profile is not None and profile.registration == "PENDING",
    )


def _accounts_context(locale: Locale) -> dict[str, Any]:
    return {"roles": _choices(locale, ROLES), "role_labels": dict(_choices(locale, ROLES))}


async def accounts_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    created: tuple[Account, str] | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    locale = locale_of(request)
    accounts = await services(request).accounts.store.all()
    return render(
        request,
        "accounts.html",
        locale.gettext(N_("Staff accounts")),
        status=status,
        flash=flash if flash is not None else _done(request, locale),
        accounts=accounts,
        created=created,
        form=form or {"username": "", "display_name": "", "role": Role.CASE_WORKER.value},
        **_accounts_context(locale),
    )


async def create_account(request: web.Request) -> web.Response:
    svc = services(request)
    locale = locale_of(request)
    form = await request.post()
    values = {key: str(form.get(key, ""))[:200] for key in ("username", "display_name", "role")}
    try:
        created = await svc.accounts.create_account(
            current_account(request),
            username=values["username"],
            display_name=values["display_name"],
            role=values["role"],
            random_bytes=svc.random_bytes,
            now_ms=svc.now_ms(),
        )
    except AccountError as error:
        return await accounts_page(
            request,
            status=422 if error.code.value == "INVALID" else 409,
            flash=[("error", account_error_text(locale, error))],
            form=values,
        )
    return await accounts_page(request, status=201, flash=[], created=created)


async def account_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    one_time: str | None = None,
) -> web.Response:
    locale = locale_of(request)
    account = await services(request).accounts.store.get(path_id(request))
    if account is None:
        raise web.HTTPNotFound()
    return render(
        request,
        "account.html",
        account.display_name,
        status=status,
        flash=flash if flash is not None else _done(request, locale),
        account=account,
        one_time=one_time,
        is_self=account.id == current_account(request).id,
        **_accounts_context(locale),
    )


async def account_action(request: web.Request) -> web.Response:
    """POST /accounts/{id}/{action}: role, disable, enable or reset."""
    svc = services(request)
    locale = locale_of(request)
    by, target, now = current_account(request), path_id(request), svc.now_ms()
    action = request.match_info["action"]
    form = await request.post()
    try:
        if action == "role":
            await svc.accounts.set_role(by, target, str(form.get("role", ""))[:32], now_ms=now)
        elif action == "disable":
            await svc.accounts.disable(by, target, now_ms=now)
        elif action == "enable":
            await svc.accounts.enable(by, target, now_ms=now)
        elif action == "reset":
            one_time = await svc.accounts.reset_password(
                by, target, random_bytes=svc.random_bytes, now_ms=now
            )
            return await account_page(request, flash=[], one_time=one_time)
        else:
            raise web.HTTPNotFound()
    except AccountError as error:
        return await account_page(
            request, status=409, flash=[("error", account_error_text(locale, error))]
        )
    raise web.HTTPSeeOther(f"/accounts/{target}?done={action}")


def _day_ms(text: str | None, *, end: bool = False) -> int | None:
    """A date field (YYYY-MM-DD, Iraq time) as Unix ms; the day after it for ``end``."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    if end:
        day += dt.timedelta(days=1)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=TIMEZONE)
    return int(start.timestamp() * 1000)


def _int(text: str | None) -> int | None:
    if text and text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


async def audit_page(request: web.Request) -> web.Response:
    svc = services(request)
    locale = locale_of(request)
    q = request.query
    action = q.get("action") if q.get("action") in ACTIONS else None
    actor = _int(q.get("actor"))
    since, until = q.get("from", "")[:10], q.get("to", "")[:10]
    records = await svc.audit.query(
        action=action,
        actor=actor,
        since_ms=_day_ms(since),
        until_ms=_day_ms(until, end=True),
        before_seq=_int(q.get("before")),
        limit=_AUDIT_PAGE,
    )
    accounts = {a.id: a for a in await svc.accounts.store.all()}
    report = await svc.audit.verify() if q.get("verify") == "1" else None
    next_href = None
    if len(records) == _AUDIT_PAGE:
        params = {k: v for k, v in q.items() if k not in ("before", "verify") and v}
        params["before"] = str(records[-1].seq)
        next_href = "/audit?" + "&".join(f"{k}={v}" for k, v in params.items())
    return render(
        request,
        "audit.html",
        locale.gettext(N_("Audit log")),
        records=records,
        accounts=accounts,
        actions=_choices(locale, ACTIONS),
        actors=[(str(a.id), a.display_name) for a in accounts.values()],
        action_labels=dict(_choices(locale, ACTIONS)),
        filters={"action": action or "", "actor": actor, "from": since, "to": until},
        report=report,
        next_href=next_href,
    )


def _settings_values(profile: Any) -> dict[str, Any]:
    if profile is None:
        return {
            "name_ar": "",
            "name_en": "",
            "registration": "",
            "governorate": "IQG08",
            "sectors": (),
        }
    return {
        "name_ar": profile.name_ar,
        "name_en": profile.name_en,
        "registration": profile.registration,
        "governorate": profile.governorate,
        "sectors": profile.sectors,
    }


_REGISTRATION: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9/-]{1,31}")


def _settings_errors(values: dict[str, Any]) -> dict[str, str]:
    """Field errors, checked here to name the field in the user's language (the
    protocol checks the same rules again when the profile is signed)."""
    errors = {}
    for name in ("name_ar", "name_en"):
        text = values[name].strip()
        if not 1 <= len(text) <= 200:
            errors[name] = N_("Required, at most 200 characters.")
    if not _REGISTRATION.fullmatch(values["registration"].strip()):
        errors["registration"] = N_("2 to 32 Latin letters, digits, '/' or '-'.")
    if values["governorate"] not in GOVERNORATES:
        errors["governorate"] = N_("Choose a governorate.")
    return errors


async def settings_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    locale = locale_of(request)
    profile = await services(request).profiles.current()
    return render(
        request,
        "settings.html",
        locale.gettext(N_("Organisation")),
        status=status,
        flash=flash if flash is not None else _done(request, locale),
        values=values or _settings_values(profile),
        errors=errors or {},
        profile=profile,
        governorates=_choices(locale, GOVERNORATES),
        sectors=_choices(locale, SECTORS),
    )


async def save_settings(request: web.Request) -> web.Response:
    svc = services(request)
    locale = locale_of(request)
    form = await request.post()
    values: dict[str, Any] = {
        key: str(form.get(key, ""))[:300]
        for key in ("name_ar", "name_en", "registration", "governorate")
    }
    values["sectors"] = [str(s) for s in form.getall("sectors", []) if str(s) in SECTORS]
    errors = _settings_errors(values)
    if errors:
        return await settings_page(
            request,
            status=422,
            flash=[("error", locale.gettext(ERRORS["INVALID"]))],
            values=values,
            errors={name: locale.gettext(text) for name, text in errors.items()},
        )
    try:
        await svc.profiles.update(current_account(request), **values)
    except ProfileError:  # a rule the form does not know of (a newer protocol)
        return await settings_page(
            request, status=422, flash=[("error", locale.gettext(ERRORS["INVALID"]))], values=values
        )
    raise web.HTTPSeeOther("/settings?done=settings")
