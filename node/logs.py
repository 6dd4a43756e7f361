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
from typing import Any, Final, TextIO

__all__ = ["FORMATS", "JsonFormatter", "configure_logging"]

FORMATS: Final = ("text", "json")

#: Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


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
