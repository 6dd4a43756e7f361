"""Locales for the admin UI: translation catalogs, digits, numbers and dates (ar, en).

Arabic is the default; English is the alternative. Source strings (msgids) are English,
so the ``en`` catalog may leave every msgstr empty and fall back to the msgid.

Catalogs are the ``.po`` files under ``locale/``: they are compiled in memory on first
use (Babel ``read_po`` -> ``write_mo`` -> :class:`babel.support.Translations`), so no
binary ``.mo`` file is committed and the ``.po`` file is the only source of truth.
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Final, Literal

from babel import dates as _dates
from babel import numbers as _numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from hijridate import Gregorian

__all__ = [
    "DEFAULT_LOCALE",
    "LOCALES",
    "LOCALE_DIR",
    "N_",
    "TIMEZONE",
    "Locale",
    "get_locale",
    "load_translations",
    "negotiate",
]

LOCALES: Final = ("ar", "en")
DEFAULT_LOCALE: Final = "ar"

# Iraq time. Asia/Baghdad has been UTC+3 all year since Iraq dropped daylight saving
# time in 2008 (IANA tzdata, "Asia/Baghdad"). A fixed offset is used instead of
# zoneinfo because slim container images often ship without tzdata, and the UI only
# shows current-era timestamps (nodes did not exist before 2008).
TIMEZONE: Final = _dt.timezone(_dt.timedelta(hours=3))

LOCALE_DIR: Final = Path(__file__).parent / "locale"
DOMAIN: Final = "messages"

# Babel/CLDR locale used for formatting: ar_IQ gives the month names used in Iraq
# (تشرين الثاني, not نوفمبر as in plain "ar").
_BABEL_LOCALE: Final = {"ar": "ar_IQ", "en": "en"}
# CLDR's ar_IQ default numbering system is "arab", but Babel only swaps the symbols
# (٬ for grouping, the Arabic letter mark before "-") and always writes ASCII digits,
# so the digits themselves are converted by _ARABIC_INDIC below.
_NUMBERING: Final = {"ar": "arab", "en": "latn"}
_ARABIC_INDIC: Final = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
# "d MMMM y" is the common form in both languages: "23 November 2026",
# "23 تشرين الثاني 2026" (digits converted afterwards).
_HIJRI_LANGUAGE: Final[dict[str, Literal["ar", "en"]]] = {"ar": "ar", "en": "en"}
_DATE_PATTERN: Final = "d MMMM y"
_TIME_PATTERN: Final = "HH:mm"
_DATETIME_SEPARATOR: Final = {"ar": "، ", "en": ", "}


def N_(msgid: str) -> str:
    """Mark a string for extraction without translating it (translate at render time).

    Handlers use it for strings defined at import time, e.g. flash messages or labels
    in module-level tables; ``python -m admin_ui.catalog extract`` picks them up.
    """
    return msgid


@dataclass(frozen=True)
class Locale:
    """One UI language: its translations and its way of writing numbers and dates.

    Get instances from :func:`get_locale`; they are cached and immutable.
    """

    code: str
    direction: str  # "rtl" or "ltr": the value of <html dir>
    translations: Translations = field(repr=False, compare=False)

    # -- translation ---------------------------------------------------------------

    def gettext(self, msgid: str) -> str:
        """Return the translation of *msgid*, or *msgid* itself when untranslated."""
        return self.translations.gettext(msgid)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """Return the plural form for *n* (Arabic has six; see the catalog header)."""
        return self.translations.ngettext(singular, plural, n)

    def pgettext(self, context: str, msgid: str) -> str:
        """Return the translation of *msgid* in *context* (``msgctxt``)."""
        return str(self.translations.pgettext(context, msgid))

    # -- digits and numbers --------------------------------------------------------

    def digits(self, text: str) -> str:
        """Write the ASCII digits of *text* in this locale's digits.

        In Arabic every 0-9 becomes ٠-٩, including the digits inside hex strings:
        callers decide what to pass (sequence numbers yes, hex ids no).
        """
        if self.code == "ar":
            return text.translate(_ARABIC_INDIC)
        return text

    def number(self, n: int) -> str:
        """Format an integer with this locale's grouping, sign and digits.

        ``1234567`` -> ``"1,234,567"`` (en), ``"١٬٢٣٤٬٥٦٧"`` (ar).
        """
        text = _numbers.format_decimal(
            n, locale=_BABEL_LOCALE[self.code], numbering_system=_NUMBERING[self.code]
        )
        return self.digits(text)

    # -- dates and times (ms since the Unix epoch, shown in Iraq time) ---------------

    def date(self, ms: int) -> str:
        """Gregorian date: ``"23 November 2026"``, ``"٢٣ تشرين الثاني ٢٠٢٦"``.

        Returns ``""`` for a timestamp outside what :mod:`datetime` can represent.
        """
        moment = _local(ms)
        if moment is None:
            return ""
        text = _dates.format_date(moment.date(), _DATE_PATTERN, locale=_BABEL_LOCALE[self.code])
        return self.digits(text)

    def time(self, ms: int) -> str:
        """24-hour time in Iraq: ``"15:00"``, ``"١٥:٠٠"`` (``""`` if out of range)."""
        moment = _local(ms)
        if moment is None:
            return ""
        text = _dates.format_time(moment.time(), _TIME_PATTERN, locale=_BABEL_LOCALE[self.code])
        return self.digits(text)

    def datetime(self, ms: int) -> str:
        """Gregorian date and 24-hour time: ``"23 November 2026, 15:00"``."""
        day, clock = self.date(ms), self.time(ms)
        if not day:
            return ""
        return day + _DATETIME_SEPARATOR[self.code] + clock

    def hijri(self, ms: int) -> str:
        """Hijri (Umm al-Qura) date: ``"13 Jumada al-Akhirah 1448 AH"``.

        In Arabic: ``"١٣ جمادى الآخرة ١٤٤٨ هـ"``.

        The day is the Iraq-time Gregorian day converted with :mod:`hijridate`. Umm
        al-Qura tables cover 1343-1500 AH (1924-08-01 to 2077-11-16); outside them,
        and for timestamps :mod:`datetime` cannot hold, this returns ``""``.
        """
        moment = _local(ms)
        if moment is None:
            return ""
        try:
            day = Gregorian.fromdate(moment.date()).to_hijri()
        except (OverflowError, ValueError):
            return ""
        language = _HIJRI_LANGUAGE[self.code]
        text = f"{day.day} {day.month_name(language)} {day.year} {day.notation(language)}"
        return self.digits(text)


_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _local(ms: int) -> _dt.datetime | None:
    """The Iraq-time datetime for *ms* (exact integer arithmetic), or None if unrepresentable."""
    try:
        return (_EPOCH + _dt.timedelta(milliseconds=ms)).astimezone(TIMEZONE)
    except (OverflowError, ValueError):
        return None


def load_translations(code: str, locale_dir: Path = LOCALE_DIR) -> Translations:
    """Compile ``locale_dir/<code>/LC_MESSAGES/messages.po`` in memory.

    Untranslated and fuzzy entries are left out (``write_mo`` skips them), so gettext
    falls back to the English msgid for them.

    Raises:
        OSError: the .po file is missing or unreadable.
        babel.messages.pofile.PoFileError: the .po file is malformed.
    """
    path = locale_dir / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as fp:
        catalog = read_po(fp, locale=code, domain=DOMAIN, abort_invalid=True)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


@functools.cache
def _load(code: str) -> Locale:
    direction = "rtl" if code == "ar" else "ltr"
    return Locale(code=code, direction=direction, translations=load_translations(code))


def get_locale(code: str) -> Locale:
    """The :class:`Locale` for *code*; unknown codes give the default (Arabic)."""
    return _load(code if code in LOCALES else DEFAULT_LOCALE)


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """Choose the UI language of a request. Pure: no I/O.

    Precedence: the ``lang`` query parameter (the visible toggle), then the cookie
    that remembers it, then the browser's Accept-Language (RFC 9110 §12.5.4, by
    q-value, earlier entries winning ties), then Arabic. Only codes in
    :data:`LOCALES` are ever returned.
    """
    for explicit in (query, cookie):
        if explicit is not None and explicit.strip().lower() in LOCALES:
            return explicit.strip().lower()
    return _from_accept_language(accept_language or "")


def _from_accept_language(header: str) -> str:
    best, best_q = DEFAULT_LOCALE, 0.0
    for item in header.split(",")[:32]:  # a real browser sends a handful; bound the work
        tag, _, params = item.partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LOCALES:
            continue
        q = _quality(params)
        if q > best_q:  # strictly: an earlier entry wins a tie; q=0 means "not this"
            best, best_q = primary, q
    return best


def _quality(params: str) -> float:
    """The q-value of one Accept-Language item: 1 when absent, 0 when malformed."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0
