"""The need-scoring model page, and the data keys page of the settings.

Scoring: the active model shown readably (each rule's indicator, weight and points;
the need bands) and as its canonical JSON, every stored version, and how far
re-scoring under the active version got. Coordinators (``Permission.EDIT_SCORING``)
edit the JSON; an invalid model is refused with the JSON path of the problem and
changes nothing; a valid one becomes a new version (audited by ``ScoringStore``) and
every household is re-scored in the background. Case workers read it.

Data keys (admins): the keys households' PII is encrypted with at rest, how many
households each holds, and a rotation (``DataKeys.rotate``, audited) for when a key
may have leaked. Never the keys themselves.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from node.ataa import (
    BandsRule,
    ChoiceRule,
    CountRule,
    FlagRule,
    HouseholdError,
    Rule,
    ScoringError,
    ScoringModel,
    dump_model,
)
from node.web import current_account, services

from ._household_forms import DISPLACEMENT_LABELS, SHELTER_LABELS
from ._households import ataa_of, band_labels
from ._i18n import N_, Locale
from ._page import locale_of, render

__all__ = ["data_keys_page", "rotate_keys", "save_model", "scoring_page"]

_KINDS: Final = {
    "flag": N_("Yes or no"),
    "count": N_("Per member"),
    "bands": N_("By range"),
    "choice": N_("By answer"),
}
_DONE: Final = {
    "saved": N_("The model was saved as a new version. Households are being scored again."),
    "unchanged": N_("This is the model already in use: nothing changed."),
}
_KEYS_DONE: Final = {
    "rotated": N_("Every household is now encrypted with a new data key."),
}
_BAD_MODEL: Final = N_("The model was not saved: it is not valid. Nothing changed.")


def _done(request: web.Request, locale: Locale, table: dict[str, str]) -> list[tuple[str, str]]:
    key = request.query.get("done")
    return [("success", locale.gettext(table[key]))] if key in table else []


def _points(locale: Locale, points: int) -> str:
    return locale.gettext(N_("%(n)s points")) % {"n": locale.number(points)}


def _rule_details(locale: Locale, rule: Rule) -> list[str]:
    """What a rule gives, one line per case."""
    gettext, number = locale.gettext, locale.number
    if isinstance(rule, FlagRule):
        return [gettext(N_("%(points)s when yes")) % {"points": _points(locale, rule.points)}]
    if isinstance(rule, CountRule):
        text = gettext(N_("%(points)s per member counted, at most %(most)s"))
        return [
            text
            % {"points": _points(locale, rule.points_per_unit), "most": number(rule.max_points)}
        ]
    if isinstance(rule, BandsRule):
        below = gettext(N_("Under %(limit)s: %(points)s"))
        lines = [
            below % {"limit": number(b.below), "points": _points(locale, b.points)}
            for b in rule.bands
        ]
        otherwise = gettext(N_("Otherwise: %(points)s"))
        return [*lines, otherwise % {"points": _points(locale, rule.otherwise)}]
    assert isinstance(rule, ChoiceRule)
    labels = {**SHELTER_LABELS, **DISPLACEMENT_LABELS}
    answer = gettext(N_("%(answer)s: %(points)s"))
    return [
        answer
        % {
            "answer": gettext(labels[value]) if value in labels else value,
            "points": _points(locale, points),
        }
        for value, points in rule.choices
    ]


def _model_view(model: ScoringModel, locale: Locale) -> dict[str, Any]:
    ar = locale.code == "ar"
    return {
        "name": model.name_ar if ar else model.name_en,
        "id": model.id,
        "version": model.version,
        "note": model.note,
        "missing_points": model.missing_points,
        "rules": [
            {
                "indicator": rule.indicator,
                "label": rule.label_ar if ar else rule.label_en,
                "kind": locale.gettext(_KINDS[str(rule.kind)]),
                "weight": rule.weight,
                "details": _rule_details(locale, rule),
                "note": rule.note,
            }
            for rule in model.indicators
        ],
        "bands": [
            {"band": str(b.band), "label": b.label_ar if ar else b.label_en, "min": b.min_score}
            for b in model.need_bands
        ],
    }


async def scoring_page(
    request: web.Request,
    *,
    status: int = 200,
    flash: list[tuple[str, str]] | None = None,
    text: str | None = None,
    error: ScoringError | None = None,
) -> web.Response:
    """GET /scoring: the active model, its versions and re-scoring progress; the
    edit form for coordinators (and its re-render with the error's JSON path)."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    version, model = await ataa.scoring.active()
    done, total = await ataa.scoring.progress()
    names = {a.id: a.display_name for a in await services(request).accounts.store.all()}
    canonical = dump_model(model)
    return render(
        request,
        "scoring.html",
        locale.gettext(N_("Need scoring model")),
        status=status,
        flash=flash if flash is not None else _done(request, locale, _DONE),
        active=version,
        model=_model_view(model, locale),
        bands=band_labels(model, locale),
        json=canonical,
        text=canonical if text is None else text,
        error=None if error is None else {"path": error.path, "message": error.message},
        versions=[
            {
                "version": v.version,
                "model_id": v.model_id,
                "digest": v.digest,
                "active": v.active,
                "by": names.get(v.created_by) if v.created_by is not None else None,
                "created_ms": v.created_ms,
            }
            for v in await ataa.scoring.versions()
        ],
        done=done,
        total=total,
    )


async def save_model(request: web.Request) -> web.Response:
    """POST /scoring: make the JSON in ``model`` the active model (a new version,
    audited), then re-score every household in the background."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    form = await request.post()
    value = form.get("model", "")
    text = value if isinstance(value, str) else ""
    before, _model = await ataa.scoring.active()
    try:
        version = await ataa.scoring.set_model(text, actor=current_account(request).id)
    except ScoringError as error:
        return await scoring_page(
            request,
            status=422,
            flash=[("error", locale.gettext(_BAD_MODEL))],
            text=text,
            error=error,
        )
    if version == before:
        raise web.HTTPSeeOther("/scoring?done=unchanged")
    ataa.scoring.start_rescore()
    raise web.HTTPSeeOther("/scoring?done=saved")


# -- data keys ------------------------------------------------------------------------------


async def data_keys_page(request: web.Request) -> web.Response:
    """GET /settings/data-keys: the data keys and the rotation form (admins)."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    return render(
        request,
        "household_data_keys.html",
        locale.gettext(N_("Data keys")),
        flash=_done(request, locale, _KEYS_DONE),
        keys=await ataa.keys.keys(),
    )


async def rotate_keys(request: web.Request) -> web.Response:
    """POST /settings/data-keys/rotate: re-encrypt every household under a new key and
    retire the old ones (audited as ``ataa.datakey.rotate``; resumable)."""
    ataa = ataa_of(request)
    try:
        await ataa.keys.rotate(actor=current_account(request).id)
    except HouseholdError:  # CORRUPT: a row that does not open; the page shows the keys
        raise web.HTTPConflict() from None
    raise web.HTTPSeeOther("/settings/data-keys?done=rotated")
