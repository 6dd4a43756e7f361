"""Translation catalogs: extract the UI's strings, update the .po files, check them.

    python -m admin_ui.catalog extract [--prune]   # update locale/*/LC_MESSAGES/messages.po
    python -m admin_ui.catalog check               # exit 1 and list problems, if any

Strings come from ``templates/**/*.html`` (Jinja2's Babel extractor with the i18n
extension: ``_()``, ``gettext()``, ``ngettext()``, ``{% trans %}``) and ``**/*.py``
(calls named ``_``, ``gettext``, ``ngettext``, ``pgettext`` -- also as methods, e.g.
``locale.gettext("...")`` -- and the no-op marker ``N_`` from :mod:`admin_ui._i18n`).
Python is read with :mod:`ast` and only literal arguments count: Babel's tokenizing
extractor also takes string literals nested inside other expressions, so that
``locale.gettext(ERRORS["LOCKED"])`` would give a bogus msgid "LOCKED".

``extract`` keeps existing translations (``Catalog.update``; a changed msgid keeps its
old translation marked fuzzy) and writes entries sorted by msgid, with file names but
no line numbers, so that unrelated edits do not churn the .po files. Entries no longer
used are kept as obsolete (``#~``) for a translator to reuse unless ``--prune`` is given;
``check`` reports them, so they do not linger.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, Final

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract
from babel.messages.pofile import PoFileError, read_po, write_po
from jinja2.ext import babel_extract

from admin_ui._i18n import DOMAIN, LOCALE_DIR, LOCALES

__all__ = ["PACKAGE_DIR", "extract_messages", "main", "problems", "update_catalogs"]

PACKAGE_DIR: Final = Path(__file__).parent

KEYWORDS: Final = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "N_": None,
}
# silent=false: a template syntax error fails extraction instead of silently losing
# that template's strings (Jinja2's extractor ignores errors by default).
_JINJA_OPTIONS: Final = {
    "silent": "false",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
    "newstyle_gettext": "true",
}
_HEADER: Final = (
    "# Watan admin UI translations.\n"
    "# This file is distributed under the same license as the watan project.\n"
    "# Update with `python -m admin_ui.catalog extract`; check with `... check`.\n"
    "#"
)
_WIDTH: Final = 100


def extract_python(
    fileobj: Any, keywords: Mapping[str, Any], comment_tags: Collection[str], options: Any
) -> Iterator[tuple[int, str, tuple[str | None, ...], list[str]]]:
    """A Babel extraction method for Python source, by syntax tree.

    Yields ``(lineno, function name, positional arguments, [])`` for every call to a
    function or method named in *keywords*; an argument that is not a string literal
    is None, and Babel's :func:`~babel.messages.extract.extract` skips a call whose
    msgid (per the keyword's spec) is None.
    """
    tree = ast.parse(fileobj.read())
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if isinstance(name, str) and name in keywords:
            args = tuple(
                a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                for a in node.args
            )
            calls.append((node.lineno, node.col_offset, name, args))
    for lineno, _col, name, args in sorted(calls):
        yield lineno, name, args, []


def _sources(package_dir: Path) -> Iterator[tuple[Path, str]]:
    """(path, kind) for every source file, in a stable order."""
    for path in sorted((package_dir / "templates").rglob("*.html")):
        yield path, "jinja2"
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path, "python"


def extract_messages(package_dir: Path = PACKAGE_DIR) -> Catalog:
    """Collect every translatable string under *package_dir* into a template catalog.

    Raises:
        jinja2.TemplateSyntaxError: a template does not parse.
    """
    template = Catalog(domain=DOMAIN, project="watan", header_comment=_HEADER, fuzzy=False)
    for path, kind in _sources(package_dir):
        method: Any = babel_extract if kind == "jinja2" else extract_python
        options = _JINJA_OPTIONS if kind == "jinja2" else {}
        where = path.relative_to(package_dir).as_posix()
        with path.open("rb") as fp:
            for lineno, msgid, comments, context in extract(
                method, fp, keywords=KEYWORDS, options=options, comment_tags=("Translators:",)
            ):
                template.add(
                    msgid,
                    locations=[(where, lineno)],
                    auto_comments=comments,
                    context=context,
                )
    return template


def _po_path(locale_dir: Path, code: str) -> Path:
    return locale_dir / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def _read(path: Path, code: str) -> Catalog:
    with path.open("rb") as fp:
        return read_po(fp, locale=code, domain=DOMAIN, abort_invalid=True)


def _write(path: Path, catalog: Catalog, *, prune: bool) -> None:
    buf = BytesIO()
    write_po(
        buf,
        catalog,
        width=_WIDTH,
        sort_output=True,
        include_lineno=False,
        ignore_obsolete=prune,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def update_catalogs(
    package_dir: Path = PACKAGE_DIR,
    locale_dir: Path = LOCALE_DIR,
    locales: Sequence[str] = LOCALES,
    *,
    prune: bool = False,
) -> list[Path]:
    """Bring every locale's .po file in line with the sources; return the files written.

    Existing translations are kept. The header dates of an existing file are kept
    too, so running ``extract`` twice gives byte-identical files.
    """
    template = extract_messages(package_dir)
    written = []
    for code in locales:
        path = _po_path(locale_dir, code)
        if path.exists():
            catalog = _read(path, code)
            template.creation_date = catalog.creation_date
            catalog.update(template, update_creation_date=False)
        else:
            catalog = Catalog(
                locale=code,
                domain=DOMAIN,
                project="watan",
                header_comment=_HEADER,
                creation_date=template.creation_date,
                revision_date=template.creation_date,
                last_translator="Watan contributors",
                language_team=code,
                fuzzy=False,
            )
            catalog.update(template, update_creation_date=False)
        catalog.fuzzy = False  # the header itself; entries keep their own flags
        _write(path, catalog, prune=prune)
        written.append(path)
    return written


# %(name)s, %s, %d, %% ... (printf-style, as Python's % operator reads them), or {name}.
_PERCENT = re.compile(r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?P<conv>.?)")
_BRACE = re.compile(r"\{(\w*)[^{}]*\}")
_CONVERSIONS: Final = frozenset("diouxXeEfFgGcrsa")


def placeholders(text: str) -> frozenset[str]:
    """The placeholders of *text*: ``%(name)s``, ``%s``, ``{name}``; ``%?`` if a % is stray.

    Jinja2's newstyle gettext always applies ``%`` to the translated string, so a
    literal percent sign has to be written ``%%`` in both msgid and msgstr.
    """
    found: set[str] = set()
    for match in _PERCENT.finditer(text):
        conv, name = match.group("conv"), match.group("name")
        if conv == "%" and name is None:
            continue
        if conv not in _CONVERSIONS:
            found.add("%?")
        else:
            found.add(f"%({name}){conv}" if name is not None else f"%{conv}")
    found.update("{" + m.group(1) + "}" for m in _BRACE.finditer(text))
    return frozenset(found)


def _describe(message: Message) -> str:
    msgid = message.id if isinstance(message.id, str) else message.id[0]
    return f"{msgid!r}" + (f" (context {message.context!r})" if message.context else "")


def _strings(message: Message) -> list[str]:
    if isinstance(message.string, str):
        return [message.string]
    return list(message.string or ())


def _placeholder_problem(message: Message) -> str | None:
    """Why the msgstr's placeholders do not fit the msgid's, or None if they do."""
    forms = [s for s in _strings(message) if s]
    if not forms:
        return None
    if isinstance(message.id, str):
        expected = placeholders(message.id)
        if placeholders(forms[0]) != expected:
            return f"{sorted(expected)} in msgid, {sorted(placeholders(forms[0]))} in msgstr"
        return None
    # Plurals: a form may drop the count ("يوم واحد" for one day), but no form may use a
    # name the msgids do not supply, and together the forms must use all of them.
    allowed = frozenset().union(*(placeholders(i) for i in message.id))
    used = [placeholders(form) for form in forms]
    if any(not u <= allowed for u in used) or frozenset().union(*used) != allowed:
        return f"{sorted(allowed)} in msgid, {[sorted(u) for u in used]} in msgstr"
    return None


def _catalog_problems(code: str, catalog: Catalog, template: Catalog) -> Iterable[str]:
    for message in template:
        if message.id and catalog.get(message.id, context=message.context) is None:
            yield f"{code}: missing {_describe(message)}"
    for message in catalog:
        if not message.id:
            continue  # the header
        name = _describe(message)
        if template.get(message.id, context=message.context) is None:
            yield f"{code}: not used in the sources any more: {name}"
        if message.fuzzy:
            yield f"{code}: fuzzy (needs review, then remove the flag): {name}"
        if code == "ar" and not all(_strings(message)):
            yield f"{code}: untranslated {name}"
        problem = _placeholder_problem(message)
        if problem:
            yield f"{code}: placeholders differ in {name}: {problem}"
    for message in catalog.obsolete.values():
        yield f"{code}: obsolete entry (delete it, or run extract --prune): {_describe(message)}"


def problems(
    package_dir: Path = PACKAGE_DIR,
    locale_dir: Path = LOCALE_DIR,
    locales: Sequence[str] = LOCALES,
) -> list[str]:
    """Everything wrong with the catalogs, one line each; empty when all is well.

    Reported: msgids used in the sources but missing from a catalog; entries no longer
    used; obsolete and fuzzy entries; empty Arabic translations; and translations
    whose placeholders (``%(name)s``, ``%s``, ``{name}``, stray ``%``) differ from
    their msgid's.
    """
    template = extract_messages(package_dir)
    found: list[str] = []
    for code in locales:
        path = _po_path(locale_dir, code)
        try:
            catalog = _read(path, code)
        except (OSError, PoFileError) as exc:
            found.append(f"{code}: cannot read {path}: {exc}")
            continue
        found.extend(_catalog_problems(code, catalog, template))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m admin_ui.catalog", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    extract_cmd = commands.add_parser("extract", help="update the .po files from the sources")
    extract_cmd.add_argument("--prune", action="store_true", help="drop obsolete entries")
    commands.add_parser("check", help="list catalog problems; exit 1 if there are any")
    args = parser.parse_args(argv)

    if args.command == "extract":
        # Module globals read at call time (not default arguments), so tests can redirect.
        for path in update_catalogs(PACKAGE_DIR, LOCALE_DIR, prune=args.prune):
            print(f"updated {path}")
        return 0
    found = problems(PACKAGE_DIR, LOCALE_DIR)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{len(found)} catalog problem(s)", file=sys.stderr)
        return 1
    print("catalogs ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
