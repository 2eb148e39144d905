"""The ``dicomhub`` command: import, verify, config, db and peers, on a real data folder."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.storage.filesystem import FilesystemBlobStore
from tests.factories import make_dataset, write_file


def _blobs(data: Path) -> list[str]:
    return sorted(FilesystemBlobStore(data / "storage").all_keys())


def test_import_folder_with_summary(env: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    first = make_dataset(sop_uid="1.2.826.0.1.3680043.10.3.1")
    write_file(first, source / "a" / "one.dcm")
    write_file(make_dataset(), source / "a" / "b" / "two.dcm")
    write_file(first, source / "again.dcm")
    (source / "notes.txt").write_text("not dicom")
    result = CliRunner().invoke(app, ["import", str(source)])
    assert result.exit_code == 1, result.output
    assert "2 stored, 1 duplicate, 0 replaced, 1 rejected" in result.output
    assert "notes.txt: not a DICOM Part 10 file" in result.output
    assert "(0xC000)" in result.output
    assert len(_blobs(env)) == 2
    result = CliRunner().invoke(app, ["import", str(source / "a")])
    assert result.exit_code == 0
    assert "0 stored, 2 duplicate" in result.output


def test_import_missing_path(env: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_verify_finds_corrupt_missing_and_orphaned(env: Path, tmp_path: Path) -> None:
    for index in range(3):
        write_file(make_dataset(), tmp_path / "in" / f"{index}.dcm")
    assert CliRunner().invoke(app, ["import", str(tmp_path / "in")]).exit_code == 0
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "verified 3 instances: 0 missing, 0 corrupt, 0 orphaned" in result.output
    store = FilesystemBlobStore(env / "storage")
    blobs = [store.path_for(key) for key in _blobs(env)]  # imports are stored as files
    data = bytearray(blobs[0].read_bytes())
    data[-1] ^= 0xFF
    blobs[0].write_bytes(bytes(data))
    blobs[1].unlink()
    stray = env / "storage" / "ff" / "ff" / ("f" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 1
    assert "verified 3 instances: 1 missing, 1 corrupt, 1 orphaned" in result.output
    assert f"orphaned: {'f' * 32}" in result.output


def test_config_db_and_peers(env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0
    assert 'ae_title = "DICOMHUB"' in result.output
    assert "# Maximum number of simultaneous inbound associations." in result.output
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0
    assert "empty -> 0008" in result.output
    assert runner.invoke(app, ["db", "current"]).output.startswith("0008")
    result = runner.invoke(
        app,
        ["peers", "add", "ct", "CT1", "127.0.0.1", "104", "-s", "storage", "-s", "verification"],
    )
    assert result.exit_code == 0, result.output
    listing = runner.invoke(app, ["peers", "list"]).output
    assert "ct\tCT1\t127.0.0.1:104\tstorage,verification\tdatabase" in listing
    assert runner.invoke(app, ["peers", "add", "x", "BAD\\AE", "h", "1"]).exit_code == 2
    assert runner.invoke(app, ["peers", "remove", "ct"]).exit_code == 0
    assert runner.invoke(app, ["peers", "remove", "ct"]).exit_code == 1


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("dicom_port = 'abc'")
    result = CliRunner().invoke(app, ["--config", str(config), "config"])
    assert result.exit_code == 2
    assert "invalid configuration" in result.output
