"""Settings: environment over TOML over defaults; peers; derived access rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhub.config import ConfigError, Service, load_settings, render_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DICOMHUB_AE_TITLE", "DICOMHUB_DICOM_PORT", "DICOMHUB_CONFIG", "DICOMHUB_BIND"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.ae_title, settings.dicom_port, settings.bind, settings.http_port) == (
        "DICOMHUB",
        11112,
        "127.0.0.1",
        8042,
    )
    assert settings.data_dir == Path("./dicomhub-data")
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("dicomhub-data/index.sqlite")
    assert settings.effective_allow_unknown_calling_ae is True
    assert settings.effective_check_called_ae is False


def test_environment_wins_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        'ae_title = "FROMFILE"\ndicom_port = 4242\nbind = "0.0.0.0"\n'
        '[peers.ct]\nae_title = "CT1"\nhost = "10.0.0.5"\nport = 104\n'
        'services = ["storage", "query"]\n'
    )
    monkeypatch.setenv("DICOMHUB_DICOM_PORT", "5555")
    settings = load_settings(config)
    assert settings.ae_title == "FROMFILE"
    assert settings.dicom_port == 5555
    assert settings.peers["ct"].services == [Service.STORAGE, Service.QUERY]
    assert settings.effective_allow_unknown_calling_ae is False
    assert settings.effective_check_called_ae is True
    monkeypatch.setenv("DICOMHUB_CONFIG", str(config))
    assert load_settings().ae_title == "FROMFILE"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ae_title = "WAY_TOO_LONG_AE_TITLE"', "invalid AE title"),
        ('ae_title = "A\\\\B"', "invalid AE title"),
        ("dicom_port = 70000", "dicom_port"),
        ("unknown_setting = 1", "unknown_setting"),
        ('duplicate_policy = "overwrite"', "duplicate_policy"),
        ("ae_title = ", "not valid TOML"),
    ],
)
def test_invalid_configuration(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_render_is_commented_valid_toml(tmp_path: Path) -> None:
    import tomllib

    settings = load_settings(None, database_url="postgresql+psycopg://u:secret@h/db")
    text = render_settings(settings)
    assert "secret" not in text
    assert "# AE title dicomhub answers to." in text
    parsed = tomllib.loads(text)
    assert parsed["ae_title"] == "DICOMHUB"
    config = tmp_path / "round.toml"
    config.write_text(text)
    reloaded = load_settings(config)
    assert reloaded.database_url == "postgresql+psycopg://u:***@h/db"
    assert reloaded.model_dump(exclude={"database_url"}) == settings.model_dump(
        exclude={"database_url"}
    )
