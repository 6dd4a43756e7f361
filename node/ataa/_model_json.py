"""A model's JSON: loading with exact error paths, the canonical form, the digest and
the default model."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

from ._errors import ScoringError, _bad_model
from ._model import (
    BandsRule,
    ChoiceRule,
    CountRule,
    FlagRule,
    NeedBandRule,
    Rule,
    ScoringModel,
    Threshold,
    _choice_path,
)

__all__ = [
    "FORMAT",
    "MAX_MODEL_CHARS",
    "default_model",
    "dump_model",
    "load_model",
    "model_digest",
]

#: The JSON format marker; a future incompatible format gets ``/2``.
FORMAT: Final = "ataa.scoring-model/1"
#: A model has at most one rule per indicator (17) with at most 20 bands each: a few
#: tens of KB. The cap bounds parsing time when a model arrives from a peer or a form.
MAX_MODEL_CHARS: Final = 256 * 1024


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _within(prefix: str, build: Callable[[], Any]) -> Any:
    """Call ``build``; an error it raises gets ``prefix`` put in front of its path."""
    try:
        return build()
    except ScoringError as exc:
        problem = exc.message.removeprefix(f"{exc.path}: ")
        raise _bad_model(_join(prefix, exc.path), problem) from None


# --- JSON --------------------------------------------------------------------------------


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers its first duplicate key, so that the error
    can name its path (``json`` itself keeps the last value silently)."""

    duplicate: str | None = None


def _object_hook(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        counts = collections.Counter(key for key, _ in pairs)
        obj.duplicate = next(key for key, n in counts.items() if n > 1)
    return obj


def _object(doc: object, path: str, *, keyed: Callable[[str], str]) -> _Object:
    if not isinstance(doc, _Object):
        raise _bad_model(path, "must be a JSON object")
    if doc.duplicate is not None:
        raise _bad_model(keyed(doc.duplicate), "duplicate key")
    return doc


def _fields(
    doc: object, path: str, required: tuple[str, ...], optional: Mapping[str, Any]
) -> dict[str, Any]:
    """The members of a JSON object, checked: no duplicate, unknown or missing key."""
    doc = _object(doc, path, keyed=lambda key: _join(path, key))
    for key in doc:
        if key not in required and key not in optional:
            raise _bad_model(
                _join(path, key), f"unknown key; expected {', '.join((*required, *optional))}"
            )
    for key in required:
        if key not in doc:
            raise _bad_model(_join(path, key), "required")
    return {**optional, **doc}


def _array(value: object, path: str) -> list[Any]:
    if type(value) is not list:
        raise _bad_model(path, "must be a JSON array")
    return value


_COMMON: Final = ("indicator", "kind", "weight", "label_ar", "label_en")
_KINDS: Final[Mapping[str, tuple[type[Rule], tuple[str, ...]]]] = MappingProxyType(
    {
        "flag": (FlagRule, ("points",)),
        "count": (CountRule, ("points_per_unit", "max_points")),
        "bands": (BandsRule, ("bands", "otherwise")),
        "choice": (ChoiceRule, ("choices",)),
    }
)


def _rule_from(doc: object, path: str) -> Rule:
    kind = _object(doc, path, keyed=lambda key: _join(path, key)).get("kind")
    if type(kind) is not str or kind not in _KINDS:
        raise _bad_model(_join(path, "kind"), f"must be one of {', '.join(_KINDS)}")
    cls, extra = _KINDS[kind]
    f = _fields(doc, path, (*_COMMON, *extra), {"note": ""})
    del f["kind"]
    if cls is BandsRule:
        f["bands"] = _thresholds_from(f["bands"], _join(path, "bands"))
    if cls is ChoiceRule:
        f["choices"] = _choices_from(f["choices"], _join(path, "choices"))
    rule: Rule = _within(path, lambda: cls(**f))
    return rule


def _thresholds_from(value: object, path: str) -> tuple[Threshold, ...]:
    items = _array(value, path)
    return tuple(_threshold_from(item, f"{path}[{i}]") for i, item in enumerate(items))


def _threshold_from(doc: object, path: str) -> Threshold:
    f = _fields(doc, path, ("below", "points"), {})
    threshold: Threshold = _within(path, lambda: Threshold(**f))
    return threshold


def _choices_from(doc: object, path: str) -> tuple[tuple[str, Any], ...]:
    keyed = _object(doc, path, keyed=lambda key: _choice_path(path, key))
    return tuple(keyed.items())


def _need_band_from(doc: object, path: str) -> NeedBandRule:
    f = _fields(doc, path, ("band", "min_score", "label_ar", "label_en"), {})
    band: NeedBandRule = _within(path, lambda: NeedBandRule(**f))
    return band


_MODEL_REQUIRED: Final = (
    "format",
    "id",
    "version",
    "name_ar",
    "name_en",
    "indicators",
    "need_bands",
)


def _model_from(doc: object) -> ScoringModel:
    f = _fields(doc, "", _MODEL_REQUIRED, {"missing_points": 0, "note": ""})
    if f.pop("format") != FORMAT:
        raise _bad_model("format", f"must be {FORMAT!r}")
    rules = _array(f["indicators"], "indicators")
    f["indicators"] = tuple(_rule_from(r, f"indicators[{i}]") for i, r in enumerate(rules))
    bands = _array(f["need_bands"], "need_bands")
    f["need_bands"] = tuple(_need_band_from(b, f"need_bands[{i}]") for i, b in enumerate(bands))
    model: ScoringModel = _within("", lambda: ScoringModel(**f))
    return model


def load_model(text: str) -> ScoringModel:
    """Parse and check a model's JSON text (any key order, any whitespace).

    Raises:
        ScoringError: BAD_MODEL, the message starting with the JSON path of the problem
            (``indicators[3].bands[1].points: must be an integer 0..100``; ``$`` for the
            document as a whole). Nothing else, whatever the input.
    """
    if type(text) is not str:
        raise _bad_model("", "must be JSON text (str)")
    if len(text) > MAX_MODEL_CHARS:
        raise _bad_model("", f"longer than {MAX_MODEL_CHARS} characters")
    try:
        doc = json.loads(text, object_pairs_hook=_object_hook)
    except json.JSONDecodeError as exc:
        raise _bad_model(
            "", f"not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError):  # an integer of > 4300 digits; nesting too deep
        raise _bad_model(
            "", "not JSON this parser accepts (too deep or too long a number)"
        ) from None
    return _model_from(doc)


def _model_json(model: ScoringModel) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "id": model.id,
        "version": model.version,
        "name_ar": model.name_ar,
        "name_en": model.name_en,
        "note": model.note,
        "missing_points": model.missing_points,
        "indicators": [rule._json() for rule in model.indicators],
        "need_bands": [
            {
                "band": str(b.band),
                "min_score": b.min_score,
                "label_ar": b.label_ar,
                "label_en": b.label_en,
            }
            for b in model.need_bands
        ],
    }


def dump_model(model: ScoringModel) -> str:
    """The model's canonical JSON: every field written, keys sorted, two-space indent,
    UTF-8 text as is (Arabic stays readable), one final newline.

    ``load_model(dump_model(m)) == m`` and ``dump_model(load_model(t))`` is the same
    text for every text ``t`` of the same model.
    """
    return json.dumps(_model_json(model), ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def model_digest(model: ScoringModel) -> str:
    """SHA-256 (hex) of the UTF-8 of :func:`dump_model`: equal digests, same model."""
    return hashlib.sha256(dump_model(model).encode("utf-8")).hexdigest()


@functools.cache
def default_model() -> ScoringModel:
    """The default model for Iraq (``scoring_default.json``; see ``docs/scoring.md``)."""
    text = (
        resources.files(__name__.rpartition(".")[0])
        .joinpath("scoring_default.json")
        .read_text("utf-8")
    )
    return load_model(text)
