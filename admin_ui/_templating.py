"""Jinja2 environments for the admin UI: one per locale, translations installed.

Each locale gets its own :class:`jinja2.Environment`, so ``_()``/``ngettext()`` and
the ``num``/``digits``/``date``/``hijri``/``datetime``/``time`` filters are bound
once at start-up and a render never has to be told its language twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import jinja2

from admin_ui._i18n import DEFAULT_LOCALE, LOCALES, Locale, get_locale

__all__ = ["TEMPLATE_DIR", "Renderer"]

TEMPLATE_DIR: Final = Path(__file__).parent / "templates"


class Renderer:
    """Renders the admin UI's templates in either locale.

    Args:
        template_dir: templates to use before the package's own (``base.html`` and
            ``_macros.html`` are still found in the package when it lacks them);
            None for the package's templates only.
    """

    def __init__(self, template_dir: Path | None = None) -> None:
        loader: jinja2.BaseLoader = jinja2.FileSystemLoader(TEMPLATE_DIR)
        if template_dir is not None:
            loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(template_dir), loader])
        self._environments = {code: _environment(get_locale(code), loader) for code in LOCALES}

    def environment(self, locale: str) -> jinja2.Environment:
        """The environment for *locale* (unknown codes give the default locale's)."""
        return self._environments.get(locale, self._environments[DEFAULT_LOCALE])

    def render(self, name: str, locale: str, **context: Any) -> str:
        """Render template *name* in *locale* with *context*.

        Raises:
            jinja2.TemplateNotFound: no such template.
            jinja2.UndefinedError: the template uses a variable *context* lacks.
        """
        return self.environment(locale).get_template(name).render(**context)


def _environment(locale: Locale, loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(("html",)),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # newstyle: _("Hello %(name)s", name=x) escapes x and formats; a literal % is %%.
    env.install_gettext_translations(locale.translations, newstyle=True)  # type: ignore[attr-defined]
    filters: dict[str, Callable[..., str]] = {
        "num": locale.number,
        "digits": lambda value: locale.digits(str(value)),
        "date": locale.date,
        "hijri": locale.hijri,
        "datetime": locale.datetime,
        "time": locale.time,
    }
    env.filters.update(filters)
    env.globals["locale"] = locale
    return env
