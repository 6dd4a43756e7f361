"""Helpers for asyncio tasks whose caller may have gone."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["drop_outcome"]


def drop_outcome(task: asyncio.Future[Any]) -> None:
    """A done callback: retrieve the outcome of a task nobody awaits any more (a
    shielded write whose caller was cancelled, a prefetch no longer needed), so that
    asyncio does not log "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()
