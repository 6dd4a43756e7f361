"""Crash-safe writes of private files (keys, config) for boxes that lose power."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private_file"]


def write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` (mode 0600) so that a power cut leaves the old file
    or the new one, never a torn one: write a temporary file, fsync it, move it into
    place, fsync the directory (the rename itself lives in the directory).

    Args:
        overwrite: replace an existing file (``os.replace``); otherwise hard-link into
            place, which fails if ``path`` exists, so a key is never overwritten.

    Raises:
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        OSError: anything else the file system refuses; nothing was changed.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)  # left by a crash during an earlier write
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
