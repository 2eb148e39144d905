"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder for the ``dicomhub`` command (no configuration file, wide
    output); a test module may define its own ``env``."""
    data = tmp_path / "data"
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(data))
    monkeypatch.setenv("DICOMHUB_LOG_LEVEL", "WARNING")
    monkeypatch.delenv("DICOMHUB_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return data
