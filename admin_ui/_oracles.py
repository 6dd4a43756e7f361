"""The Pseudonym oracles page (admins): the oracle configuration in force and how each
oracle answered this node's latest evaluation; this node's pseudonyms (ready, pending);
and, when this node is an oracle itself, its key share, its daily quota per requesting
node (a form to change it, audited by the oracle server) and who used it.

Households are known to the federation only by a pseudonym that a threshold of oracles
compute together (DESIGN §5, SPEC §13). Nothing here shows a pseudonym or its input.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from aiohttp import web

import protocol
from node.federation import FederationService
from node.oracle import (
    DEFAULT_DAILY_QUOTA,
    ActiveConfig,
    OracleAnswer,
    OracleError,
    OracleServer,
    PseudonymService,
    UsageRow,
    utc_day,
)
from node.web import current_account, services

from ._choices import ERRORS
from ._i18n import N_, Locale
from ._names import Names
from ._page import locale_of, render, unavailable
from ._peers import STATES

__all__ = ["ANSWERS", "QUOTA_RANGE", "oracles_page", "set_quota"]

#: The daily quota an admin may set: ``OracleServer.set_quota``'s own range (one
#: element a day is the least that keeps a peer working; ten million is 200 times the
#: default, which already covers an NGO registering 1,000 households a day 50 times).
QUOTA_RANGE: Final = (1, 10_000_000)
#: Days of usage totals shown (today and the six before it, UTC days).
_USAGE_DAYS: Final = 7
#: Digits an admin may type: ASCII, Arabic-Indic and Eastern Arabic-Indic (Persian
#: keyboards, common in Kurdistan), and the grouping separators they may add.
_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789", ",٬ ")

#: Why an oracle gave no usable answer in this node's latest evaluation, by the code
#: ``PseudonymService`` noted (ours, or the one the oracle sent back).
ANSWERS: Final = {
    "TIMEOUT": N_("It did not answer in time."),
    "NOT_A_PEER": N_("It is not an approved peer of this node: approve it on the Peers page."),
    "UNKNOWN_SIGNER": N_(
        "It does not know this node: its administrator has to add and approve this node."
    ),
    "NOT_APPROVED": N_("Its administrator has not approved this node as a peer yet."),
    "QUOTA_EXCEEDED": N_(
        "This node has used its daily quota there; it starts again at midnight UTC."
    ),
    "BAD_PROOF": N_(
        "Its answer failed verification (it does not match its published key) and was ignored."
    ),
    "UNREACHABLE": N_("It could not be reached over the network."),
}
_OTHER_ANSWER: Final = N_("It refused or failed. Error code:")
_DONE: Final = {"quota": N_("The daily quota was saved.")}
_UNAVAILABLE: Final = N_("Pseudonym oracles are not available on this node.")


def _quota_hint(locale: Locale) -> str:
    low, high = QUOTA_RANGE
    return locale.gettext(N_("A whole number from %(low)s to %(high)s.")) % {
        "low": locale.number(low),
        "high": locale.number(high),
    }


def _percent(locale: Locale, count: int, quota: int) -> str:
    """``count`` as a whole percentage of ``quota`` (never "0%" for a count above 0)."""
    share = count * 100 // quota
    if count and not share:
        return locale.gettext(N_("under 1%%")) % {}
    return locale.gettext(N_("%(percent)s%%")) % {"percent": locale.number(share)}


def _day_ms(day: str) -> int:
    """Noon UTC of a ``YYYY-MM-DD`` day: the same date in Iraq time (UTC+3)."""
    date = dt.date.fromisoformat(day)
    return int(dt.datetime(date.year, date.month, date.day, 12, tzinfo=dt.UTC).timestamp() * 1000)


def _days_back(today: str, count: int) -> list[str]:
    """``today`` and the ``count - 1`` days before it, newest first."""
    date = dt.date.fromisoformat(today)
    return [(date - dt.timedelta(days=n)).isoformat() for n in range(count)]


# -- reading ------------------------------------------------------------------------------


async def _config(pseudonyms: PseudonymService) -> tuple[ActiveConfig | None, str | None]:
    """The configuration in force, or None and why (NO_CONFIG, CONFIG_CONFLICT)."""
    try:
        return await pseudonyms.config(), None
    except OracleError as error:
        return None, error.code.value


async def _oracle_views(
    config: ActiveConfig,
    fed: FederationService,
    answers: dict[int, OracleAnswer],
    names: Names,
    own: bytes,
    locale: Locale,
) -> list[dict[str, Any]]:
    """Each oracle of ``config``: who it is and how it answered this node last."""
    views = []
    for index, node_id in sorted(config.oracles().items()):
        answer = answers.get(index)
        if answer is not None and answer.node_id != node_id:
            answer = None  # noted for an older configuration
        peer = None if node_id == own else await fed.peers.get(node_id)
        reach = None
        if answer is not None:
            code = answer.code or ""
            reach = {
                "ok": answer.ok,
                "known": code in ANSWERS,
                "text": locale.gettext(ANSWERS.get(code, _OTHER_ANSWER)),
                "code": code,
                "at_ms": answer.at_ms,
            }
        views.append(
            {
                "index": index,
                "hex": node_id.hex(),
                "name": await names.of(node_id),
                "fingerprint": protocol.fingerprint(node_id),
                "is_self": node_id == own,
                "peer_state": None if peer is None else peer.state,
                "reach": reach,
            }
        )
    return views


async def _share_view(
    oracle: OracleServer, config: ActiveConfig | None, names: Names, own: bytes
) -> dict[str, Any] | None:
    """The share this node holds of the epoch in force, else its newest one."""
    epochs = await oracle.shares.epochs()
    if not epochs:
        return None
    epoch = config.epoch if config is not None and config.epoch in epochs else max(epochs)
    held = await oracle.shares.get(epoch)
    if held is None:
        return None
    return {
        "epoch": held.epoch,
        "index": held.share.index,
        "threshold": held.threshold,
        "dealer": await names.label(held.dealer),
        "dealer_is_self": held.dealer == own,
        "imported_ms": held.imported_ms,
        "in_force": config is not None and config.epoch == held.epoch,
        "epochs": epochs,
    }


async def _usage_views(
    rows: list[UsageRow], days: list[str], quota: int, names: Names, own: bytes, locale: Locale
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Today's use per requesting node (largest first) and each day's total."""
    today: dict[bytes, int] = {}
    totals = dict.fromkeys(days, 0)
    for row in rows:
        if row.day in totals:
            totals[row.day] += row.count
        if row.day == days[0]:
            today[row.requester] = today.get(row.requester, 0) + row.count
    by_requester = [
        {
            "name": await names.of(requester),
            "fingerprint": protocol.fingerprint(requester),
            "is_self": requester == own,
            "count": count,
            "percent": _percent(locale, count, quota),
        }
        for requester, count in sorted(today.items(), key=lambda item: (-item[1], item[0]))
    ]
    per_day = [{"day_ms": _day_ms(day), "total": totals[day]} for day in days]
    return by_requester, per_day


def _unavailable(request: web.Request) -> web.Response:
    return unavailable(request, _UNAVAILABLE)


def _done(request: web.Request, locale: Locale) -> list[tuple[str, str]]:
    key = request.query.get("done")
    return [("success", locale.gettext(_DONE[key]))] if key in _DONE else []


async def oracles_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    form: dict[str, Any] | None = None,
) -> web.Response:
    """GET /oracles, and the quota form's re-render with its error.

    Args:
        form: ``{"values": {"quota": text}, "errors": {"quota": translated message}}``.
    """
    svc = services(request)
    fed = svc.federation
    if fed is None or fed.oracle is None or fed.pseudonyms is None:
        return _unavailable(request)
    locale = locale_of(request)
    own = svc.identity.node_id
    names = Names(fed, locale)
    config, problem = await _config(fed.pseudonyms)
    quota = await fed.oracle.quota()
    days = _days_back(utc_day(svc.now_ms()), _USAGE_DAYS)
    rows = await fed.oracle.usage(since_day=days[-1])
    usage_today, usage_days = await _usage_views(rows, days, quota, names, own, locale)
    return render(
        request,
        "oracles.html",
        locale.gettext(N_("Pseudonym oracles")),
        status=status,
        flash=flash if flash is not None else _done(request, locale),
        standalone=fed.standalone,
        config=config,
        problem=problem,
        dealer=None if config is None else await names.label(config.dealer),
        dealer_is_self=config is not None and config.dealer == own,
        oracles=[]
        if config is None
        else await _oracle_views(config, fed, fed.pseudonyms.answers, names, own, locale),
        counts=await fed.pseudonyms.counts(),
        share=await _share_view(fed.oracle, config, names, own),
        quota=quota,
        default_quota=DEFAULT_DAILY_QUOTA,
        usage_today=usage_today,
        usage_days=usage_days,
        form=form or {"values": {"quota": str(quota)}, "errors": {}},
        quota_range=QUOTA_RANGE,
        quota_hint=_quota_hint(locale),
        states={key: locale.gettext(label) for key, label in STATES.items()},
    )


# -- the quota ------------------------------------------------------------------------------


async def set_quota(request: web.Request) -> web.Response:
    """POST /oracles/quota: the daily quota per requesting node (audited as
    ``oracle.quota`` by the oracle server)."""
    fed = services(request).federation
    if fed is None or fed.oracle is None:
        return _unavailable(request)
    locale = locale_of(request)
    form = await request.post()
    typed = str(form.get("quota", "")).strip()[:40]
    text = typed.translate(_DIGITS)
    low, high = QUOTA_RANGE
    if text.isascii() and text.isdigit() and low <= int(text) <= high:
        try:
            await fed.oracle.set_quota(int(text), actor=current_account(request).id)
        except OracleError:  # its own range check, the same as ours
            pass
        else:
            raise web.HTTPSeeOther("/oracles?done=quota")
    return await oracles_page(
        request,
        status=422,
        flash=[("error", locale.gettext(ERRORS["INVALID"]))],
        form={"values": {"quota": typed}, "errors": {"quota": _quota_hint(locale)}},
    )
