"""Catalog extraction and checks, on the real catalogs and on throwaway ones."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from admin_ui import catalog
from admin_ui.catalog import extract_messages, placeholders, problems, update_catalogs


def test_real_catalogs_have_no_problems() -> None:
    assert problems() == []


def test_real_sources_are_extracted() -> None:
    ids = {m.id for m in extract_messages() if m.id}
    assert {"Skip to main content", "Sign out", "Main menu"} <= ids


@pytest.fixture
def package(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text(
        '<p>{{ _("Hello %(name)s", name=user) }}</p>\n'
        '<p>{{ ngettext("%(num)d case", "%(num)d cases", n) }}</p>\n'
        "{% trans %}Welcome{% endtrans %}\n",
        encoding="utf-8",
    )
    (tmp_path / "handlers.py").write_text(
        'from admin_ui._i18n import N_\n\nSAVED = N_("Saved.")\nOTHER = "not marked"\n',
        encoding="utf-8",
    )
    return tmp_path


def _po(locale_dir: Path, code: str) -> Path:
    return locale_dir / code / "LC_MESSAGES" / "messages.po"


def _translate(locale_dir: Path, code: str, strings: dict[str, str | tuple[str, ...]]) -> None:
    path = _po(locale_dir, code)
    with path.open("rb") as fp:
        cat = read_po(fp, locale=code)
    for message in cat:
        key = message.id if isinstance(message.id, str) else message.id[0]
        if key in strings:
            message.string = strings[key]
    buf = BytesIO()
    write_po(buf, cat)
    path.write_bytes(buf.getvalue())


ARABIC: dict[str, str | tuple[str, ...]] = {
    "Hello %(name)s": "مرحباً %(name)s",
    "%(num)d case": (
        "لا حالات",
        "حالة واحدة",
        "حالتان",
        "%(num)d حالات",
        "%(num)d حالة",
        "%(num)d حالة",
    ),
    "Welcome": "أهلاً",
    "Saved.": "تم الحفظ.",
}


def test_extract_finds_templates_and_python_markers(package: Path) -> None:
    ids = {m.id for m in extract_messages(package) if m.id}
    assert ids == {"Hello %(name)s", ("%(num)d case", "%(num)d cases"), "Welcome", "Saved."}


def test_new_catalogs_report_untranslated_arabic_only(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    found = problems(package, locale_dir)
    assert len(found) == 4
    assert all(line.startswith("ar: untranslated") for line in found)


def test_translated_catalogs_pass_and_extract_is_stable(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    _translate(locale_dir, "ar", ARABIC)
    update_catalogs(package, locale_dir)
    assert problems(package, locale_dir) == []
    first = _po(locale_dir, "ar").read_bytes()
    update_catalogs(package, locale_dir)
    assert _po(locale_dir, "ar").read_bytes() == first
    assert "مرحباً %(name)s".encode() in first


def test_missing_msgid_is_reported(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    _translate(locale_dir, "ar", ARABIC)
    (package / "templates" / "new.html").write_text('{{ _("Brand new") }}', encoding="utf-8")
    found = problems(package, locale_dir)
    assert "ar: missing 'Brand new'" in found
    assert "en: missing 'Brand new'" in found


def test_unused_and_obsolete_entries_are_reported(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    _translate(locale_dir, "ar", ARABIC)
    (package / "handlers.py").write_text("", encoding="utf-8")
    assert "ar: not used in the sources any more: 'Saved.'" in problems(package, locale_dir)
    update_catalogs(package, locale_dir)
    found = problems(package, locale_dir)
    assert any(line.startswith("ar: obsolete entry") and "Saved." in line for line in found)
    update_catalogs(package, locale_dir, prune=True)
    assert problems(package, locale_dir) == []


def test_placeholder_mismatch_is_reported(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    _translate(locale_dir, "ar", {**ARABIC, "Hello %(name)s": "مرحباً %(nom)s"})
    found = problems(package, locale_dir)
    assert len(found) == 1
    assert found[0].startswith("ar: placeholders differ in 'Hello %(name)s'")


def test_plural_placeholders(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    # Forms may drop the count (one case, two cases) ...
    _translate(locale_dir, "ar", ARABIC)
    assert problems(package, locale_dir) == []
    # ... but none may use a name the msgid lacks.
    bad = ("لا حالات", "حالة واحدة", "حالتان", "%(n)d حالات", "%(num)d حالة", "%(num)d حالة")
    _translate(locale_dir, "ar", {"%(num)d case": bad})
    found = problems(package, locale_dir)
    assert len(found) == 1
    assert found[0].startswith("ar: placeholders differ in '%(num)d case'")


def test_fuzzy_entries_are_reported(package: Path, tmp_path: Path) -> None:
    locale_dir = tmp_path / "locale"
    update_catalogs(package, locale_dir)
    _translate(locale_dir, "ar", ARABIC)
    # A reworded msgid keeps its old translation, marked fuzzy for review.
    page = package / "templates" / "page.html"
    page.write_text(page.read_text().replace("Hello %(name)s", "Hello, %(name)s"))
    update_catalogs(package, locale_dir)
    found = problems(package, locale_dir)
    assert any(line.startswith("ar: fuzzy") and "Hello, %(name)s" in line for line in found)


def test_unreadable_catalog_is_a_problem(package: Path, tmp_path: Path) -> None:
    found = problems(package, tmp_path / "nowhere")
    assert len(found) == 2
    assert all("cannot read" in line for line in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", set()),
        ("%(name)s and %(n)d", {"%(name)s", "%(n)d"}),
        ("%s of %d", {"%s", "%d"}),
        ("100%% sure", set()),
        ("50%.", {"%?"}),
        ("100% sure", {"%s"}),  # "% s" is a conversion (space flag) to Python's % too
        ("trailing %", {"%?"}),
        ("{name} and {0}", {"{name}", "{0}"}),
    ],
)
def test_placeholders(text: str, expected: set[str]) -> None:
    assert placeholders(text) == expected


def test_cli_check_and_extract(
    package: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    locale_dir = tmp_path / "locale"
    monkeypatch.setattr(catalog, "PACKAGE_DIR", package)
    monkeypatch.setattr(catalog, "LOCALE_DIR", locale_dir)
    assert catalog.main(["check"]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert catalog.main(["extract"]) == 0
    assert _po(locale_dir, "en").exists()
    _translate(locale_dir, "ar", ARABIC)
    assert catalog.main(["check"]) == 0
    assert "catalogs ok" in capsys.readouterr().out


def test_python_extraction_takes_only_literal_arguments(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "ERRORS = {'LOCKED': N_('Locked.')}\n"
        "a = locale.gettext(ERRORS['LOCKED'])\n"
        "b = locale.gettext('Direct.')\n"
        "c = locale.ngettext('%(n)s day', '%(n)s days', n)\n"
        "d = locale.pgettext('menu', 'Open')\n"
        "e = _(f'not {a} literal')\n"
        "f = other('Not marked.')\n",
        encoding="utf-8",
    )
    found = {(m.id, m.context) for m in extract_messages(tmp_path) if m.id}
    assert found == {
        ("Locked.", None),
        ("Direct.", None),
        (("%(n)s day", "%(n)s days"), None),
        ("Open", "menu"),
    }
