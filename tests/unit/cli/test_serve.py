"""``dicomhub serve`` refuses impossible worker settings with a clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomhub.cli.main import app


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DICOMHUB_WORKERS": "2", "DICOMHUB_DICOM_PORT": "0"}, "fixed dicom_port"),
        ({"DICOMHUB_WORKERS": "2", "DICOMHUB_ENGINE": "pynetdicom"}, "asyncio engine"),
    ],
)
def test_workers_need_asyncio_and_fixed_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path / "data"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert message in result.output


def test_unreachable_database_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(
        "DICOMHUB_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "cannot open the index" in result.output
