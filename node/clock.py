"""The node's clock, injected so that tests can control time (STYLE §8, Synapse ``Clock``).

``protocol`` never reads the time; the node passes ``now_ms`` from a :class:`Clock`.
Services take a clock argument; production uses :class:`SystemClock`, tests a
:class:`FakeClock` they advance by hand.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Something that tells the time in Unix milliseconds."""

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time (``time.time_ns``), in whole milliseconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that moves only when told to.

    Args:
        start_ms: the time it reads until :meth:`advance` is called.
    """

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms`` milliseconds (never backward)."""
        if ms < 0:
            raise ValueError("a fake clock only moves forward; use a new one to go back")
        self._now_ms += ms
