"""The node needs the system libsodium for pseudonyms: without it, ``watan up`` says
so at once and creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from node import cli
from protocol import oprf


def test_up_without_libsodium_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oprf, "available", lambda: False)
    assert cli.main(["up", "--data", str(tmp_path / "node")]) == 2
    assert "apt-get install libsodium23" in capsys.readouterr().err
    assert not (tmp_path / "node").exists()


def test_libsodium_is_here() -> None:
    """CI installs it (tools/check.sh); the oracle tests rely on it."""
    assert oprf.available()
