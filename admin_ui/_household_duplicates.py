"""Duplicate suggestions (Ata'a): pairs of households a person should look at, side by
side (names, area, score, why they were suggested), to merge (keeping one) or to mark
as different households. Both decisions are audited by ``node.ataa.Duplicates``.

Every role that sees households sees the pairs; only ``Permission.EDIT_HOUSEHOLDS``
(case workers) may decide, and the page shows the decision forms only to them.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.ataa import DUPLICATE_REASONS, HouseholdError
from node.web import current_account

from ._choices import ERRORS
from ._households import (
    ERROR_STATUS,
    HOUSEHOLD_ERRORS,
    MAX_ID,
    ataa_of,
    band_labels,
    done_flash,
    summary_row,
)
from ._i18n import N_
from ._page import locale_of, render

__all__ = ["REASON_LABELS", "dismiss_duplicate", "duplicates_page", "merge_duplicate"]

#: Duplicate pairs per review page (each pair shows two households side by side).
_PAIRS_PAGE: Final = 20
REASON_LABELS: Final = {
    "phone": N_("Same phone number"),
    "weak_pseudonym": N_(
        "Same four names, mother's name, birth year and governorate (no national ID)"
    ),
    "name": N_("Same mother's name and birth year, and at least two of the same names"),
}
if set(REASON_LABELS) != set(DUPLICATE_REASONS):
    raise RuntimeError("duplicate reason labels do not match node.ataa's reasons")
_DONE: Final = {
    "merged": N_("The two households were merged."),
    "dismissed": N_("The pair was marked as different households."),
}


async def duplicates_page(
    request: web.Request, *, status: int = 200, flash: list[tuple[str, str]] | None = None
) -> web.Response:
    """GET /households/duplicates: open pairs side by side, oldest first."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    try:
        page = max(1, min(int(request.query.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    offset = (page - 1) * _PAIRS_PAGE
    total = await ataa.duplicates.count_open()
    pairs = await ataa.duplicates.open_suggestions(limit=_PAIRS_PAGE, offset=offset)
    ids = sorted({i for p in pairs for i in (p.a, p.b)})
    _version, model = await ataa.scoring.active()
    bands = band_labels(model, locale)
    found = {s.id: summary_row(s, locale, bands) for s in await ataa.households.summaries(ids)}
    rows = [
        {
            "a": found[p.a],
            "b": found[p.b],
            "key": f"{p.a}-{p.b}",
            "reasons": [locale.gettext(REASON_LABELS[r]) for r in p.reasons],
            "created_ms": p.created_ms,
        }
        for p in pairs
        if p.a in found and p.b in found
    ]
    return render(
        request,
        "duplicates.html",
        locale.gettext(N_("Possible duplicates")),
        status=status,
        flash=flash if flash is not None else done_flash(request, locale, _DONE),
        pairs=rows,
        total=total,
        prev_href=f"/households/duplicates?page={page - 1}" if page > 1 else None,
        next_href=f"/households/duplicates?page={page + 1}"
        if offset + _PAIRS_PAGE < total
        else None,
    )


def _pair(text: str) -> tuple[int, int] | None:
    """``"a-b"`` as two household ids, or None."""
    a, _, b = text.partition("-")
    if not (a.isascii() and a.isdigit() and b.isascii() and b.isdigit()):
        return None
    if len(a) > 10 or len(b) > 10 or int(a) > MAX_ID or int(b) > MAX_ID:
        return None
    return int(a), int(b)


async def _decided(request: web.Request, error: HouseholdError | None) -> web.Response:
    locale = locale_of(request)
    if error is None:
        text, status = locale.gettext(ERRORS["INVALID"]), 422
    else:
        text = locale.gettext(HOUSEHOLD_ERRORS.get(error.code, ERRORS["INVALID"]))
        status = ERROR_STATUS.get(error.code, 422)
    return await duplicates_page(request, status=status, flash=[("error", text)])


async def merge_duplicate(request: web.Request) -> web.Response:
    """POST /households/duplicates/merge: ``pair`` (``a-b``) and ``keep`` (a or b);
    the other household becomes merged into the one kept (audited)."""
    ataa = ataa_of(request)
    form = await request.post()
    pair = _pair(str(form.get("pair", ""))[:24])
    keep = str(form.get("keep", ""))[:12]
    if pair is None or keep not in (str(pair[0]), str(pair[1])):
        return await _decided(request, None)
    kept = int(keep)
    dropped = pair[1] if kept == pair[0] else pair[0]
    try:
        await ataa.duplicates.merge(kept, dropped, actor=current_account(request).id)
    except HouseholdError as error:
        return await _decided(request, error)
    raise web.HTTPSeeOther("/households/duplicates?done=merged")


async def dismiss_duplicate(request: web.Request) -> web.Response:
    """POST /households/duplicates/dismiss: ``pair`` (``a-b``) are different households
    and are never suggested again (audited)."""
    ataa = ataa_of(request)
    form = await request.post()
    pair = _pair(str(form.get("pair", ""))[:24])
    if pair is None:
        return await _decided(request, None)
    try:
        await ataa.duplicates.dismiss(*pair, actor=current_account(request).id)
    except HouseholdError as error:
        return await _decided(request, error)
    raise web.HTTPSeeOther("/households/duplicates?done=dismissed")
