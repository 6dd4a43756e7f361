"""Locales: digits, numbers, Gregorian and Hijri dates, negotiation, catalogs."""

from __future__ import annotations

import datetime as dt

import pytest
from babel.messages.pofile import read_po

from admin_ui._i18n import (
    DEFAULT_LOCALE,
    LOCALE_DIR,
    LOCALES,
    N_,
    TIMEZONE,
    get_locale,
    negotiate,
)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Milliseconds since the epoch for a UTC datetime."""
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).timestamp()) * 1000


NOON_UTC = ms(2026, 11, 23, 12, 0)  # 15:00 in Baghdad
AR = get_locale("ar")
EN = get_locale("en")


def test_locales_and_directions() -> None:
    assert LOCALES == ("ar", "en")
    assert DEFAULT_LOCALE == "ar"
    assert (AR.code, AR.direction) == ("ar", "rtl")
    assert (EN.code, EN.direction) == ("en", "ltr")
    assert TIMEZONE.utcoffset(None) == dt.timedelta(hours=3)


@pytest.mark.parametrize("code", ["fr", "", "AR", "ar-IQ", "en_US"])
def test_unknown_locale_falls_back_to_arabic(code: str) -> None:
    assert get_locale(code) is AR


def test_get_locale_is_cached() -> None:
    assert get_locale("en") is get_locale("en")


def test_digits() -> None:
    assert AR.digits("seq 0123456789") == "seq ٠١٢٣٤٥٦٧٨٩"
    assert EN.digits("seq 0123456789") == "seq 0123456789"
    assert AR.digits("") == ""


@pytest.mark.parametrize(
    ("n", "ar", "en"),
    [
        (0, "٠", "0"),
        (7, "٧", "7"),
        (999, "٩٩٩", "999"),
        (1234, "١٬٢٣٤", "1,234"),
        (1234567, "١٬٢٣٤٬٥٦٧", "1,234,567"),
        (-1234, "-١٬٢٣٤", "-1,234"),
    ],
)
def test_number(n: int, ar: str, en: str) -> None:
    # CLDR may put an Arabic letter mark before the minus; what matters is the rest.
    assert AR.number(n).replace("\u061c", "") == ar
    assert EN.number(n) == en


def test_gregorian_date() -> None:
    assert AR.date(NOON_UTC) == "٢٣ تشرين الثاني ٢٠٢٦"
    assert EN.date(NOON_UTC) == "23 November 2026"
    assert EN.date(ms(2026, 1, 5, 12)) == "5 January 2026"
    assert AR.date(ms(2026, 1, 5, 12)) == "٥ كانون الثاني ٢٠٢٦"


def test_time_and_datetime_are_iraq_time() -> None:
    assert EN.time(NOON_UTC) == "15:00"
    assert AR.time(NOON_UTC) == "١٥:٠٠"
    assert EN.datetime(NOON_UTC) == "23 November 2026, 15:00"
    assert AR.datetime(NOON_UTC) == "٢٣ تشرين الثاني ٢٠٢٦، ١٥:٠٠"
    # 22:30 UTC is already the next day in Baghdad.
    late = ms(2026, 11, 23, 22, 30)
    assert EN.datetime(late) == "24 November 2026, 01:30"


def test_hijri_known_dates() -> None:
    # 1 Ramadan 1444 fell on 23 March 2023 (Umm al-Qura; hijridate's tables).
    start_of_ramadan = ms(2023, 3, 23, 12)
    assert EN.hijri(start_of_ramadan) == "1 Ramadan 1444 AH"
    assert AR.hijri(start_of_ramadan) == "١ رمضان ١٤٤٤ هـ"
    assert EN.hijri(NOON_UTC) == "13 Jumada al-Akhirah 1448 AH"
    assert AR.hijri(NOON_UTC) == "١٣ جمادى الآخرة ١٤٤٨ هـ"


def test_hijri_uses_the_iraq_day() -> None:
    assert EN.hijri(ms(2023, 3, 22, 22, 0)) == "1 Ramadan 1444 AH"  # 01:00 on the 23rd


@pytest.mark.parametrize("when", [ms(1900, 1, 1), ms(2100, 1, 1), 10**20, -(10**20)])
def test_out_of_range_dates_never_raise(when: int) -> None:
    for locale in (AR, EN):
        assert locale.hijri(when) == ""
        assert isinstance(locale.date(when), str)
        assert isinstance(locale.datetime(when), str)


def test_unrepresentable_timestamp_gives_empty_strings() -> None:
    assert EN.date(10**20) == EN.time(10**20) == EN.datetime(10**20) == ""


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "ar"),
        ("en", "ar", "ar", "en"),
        ("ar", "en", "en", "ar"),
        (" EN ", None, None, "en"),
        ("fr", "en", None, "en"),
        (None, "en", "ar", "en"),
        (None, "de", "en-GB,en;q=0.9", "en"),
        (None, None, "en-US,en;q=0.9,ar;q=0.8", "en"),
        (None, None, "fr;q=1, ar;q=0.5, en;q=0.7", "en"),
        (None, None, "en;q=0.5, ar;q=0.5", "en"),
        (None, None, "en;q=0, fr", "ar"),
        (None, None, "de, fr", "ar"),
        (None, None, "en;q=bogus", "ar"),
        (None, None, "en;q=2", "ar"),
        (None, None, "*", "ar"),
        (None, None, "", "ar"),
        ("", "", "", "ar"),
    ],
)
def test_negotiate(
    query: str | None, cookie: str | None, accept: str | None, expected: str
) -> None:
    assert negotiate(query, cookie, accept) == expected


def test_translations_apply_and_english_falls_back_to_msgid() -> None:
    assert AR.gettext("Sign out") == "تسجيل الخروج"
    assert EN.gettext("Sign out") == "Sign out"
    assert AR.gettext("No such message") == "No such message"
    assert AR.pgettext("ctx", "No such message") == "No such message"
    assert EN.ngettext("%(n)s day", "%(n)s days", 1) == "%(n)s day"
    assert EN.ngettext("%(n)s day", "%(n)s days", 2) == "%(n)s days"


def test_arabic_plural_forms_follow_gnu_gettext_order() -> None:
    plural = AR.translations.plural
    assert [plural(n) for n in (0, 1, 2, 3, 10, 11, 99, 100, 102, 103, 111)] == [
        0, 1, 2, 3, 3, 4, 4, 5, 5, 3, 4,
    ]  # fmt: skip


def test_every_arabic_msgstr_is_translated() -> None:
    with (LOCALE_DIR / "ar" / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        catalog = read_po(fp, locale="ar")
    messages = [m for m in catalog if m.id]
    assert messages
    for message in messages:
        strings = [message.string] if isinstance(message.string, str) else message.string or ()
        assert all(strings), message.id
        assert not message.fuzzy, message.id


def test_n_marks_without_translating() -> None:
    assert N_("Sign out") == "Sign out"
