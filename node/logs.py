"""Logging set-up: human-readable lines for a terminal, or one JSON object per line
(``--log-format json``) for log shippers.

What the node logs is chosen not to hold personal data: requests are logged by route
template, status and account id (never paths, query strings, usernames, IP addresses
or bodies); services log ids and error codes. ``tests/node/test_web.py`` signs in,
works and fails, and scans every captured log line for the names and passwords used.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

from node.storage import StorageError, StorageErrorCode

__all__ = ["FORMATS", "OUTAGE_LOG_EVERY_S", "JsonFormatter", "OutageLogFilter", "configure_logging"]

FORMATS: Final = ("text", "json")

#: Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


#: While the database is down or full, a background loop's failure is logged (as one
#: line) at most this often: every round would be every 2-15 s for hours.
OUTAGE_LOG_EVERY_S: Final = 300.0
#: Storage failures whose cause lies outside the code, where a traceback says nothing.
_OUTAGE_CODES: Final = frozenset({StorageErrorCode.UNREACHABLE, StorageErrorCode.FULL})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (ISO 8601 UTC), ``level``, ``logger``,
    ``msg``, the ``extra=`` fields, and ``exc`` for an exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        value: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, item in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                value[key] = (
                    item if isinstance(item, str | int | float | bool | None) else str(item)
                )
        if record.exc_info:
            value["exc"] = self.formatException(record.exc_info)
        return json.dumps(value, ensure_ascii=False)


class OutageLogFilter(logging.Filter):
    """A handler filter for database outages. The node's background loops (sync,
    message delivery, publishing deliveries, pseudonyms) log a failed round with
    ``logger.exception``: right for a bug, but while PostgreSQL is down or the disk
    is full every round fails the same way. A record whose exception is a
    :class:`StorageError` UNREACHABLE or FULL becomes a one-line warning that names
    the code (no traceback), and the same message from the same logger passes at
    most once per ``OUTAGE_LOG_EVERY_S``; every other record passes unchanged.
    :func:`configure_logging` installs it on the node's log handler.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._monotonic = monotonic
        self._last: dict[tuple[str, str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, StorageError) or error.code not in _OUTAGE_CODES:
            return True
        key = (record.name, str(record.msg), error.code.value)
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < OUTAGE_LOG_EVERY_S:
            return False
        self._last[key] = now
        record.msg = (
            f"{record.getMessage()}: database {error.code.value}: {error.message} "
            f"(again within {OUTAGE_LOG_EVERY_S:.0f} s: not logged)"
        )
        record.args = ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(
    fmt: str = "text", *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send the node's logs to ``stream`` (stderr) in ``fmt`` ("text" or "json").

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler.addFilter(OutageLogFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's own access log would print paths and client addresses: ours replaces it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # APScheduler logs every job run at INFO: a line per second of noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Database drivers log statements with their parameters at DEBUG, and parameters
    # carry what staff typed (reasons, search terms): never, even when debugging.
    for driver in ("aiosqlite", "asyncpg", "sqlalchemy.engine"):
        logging.getLogger(driver).setLevel(logging.WARNING)
