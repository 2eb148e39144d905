"""``dicomhub worklist``: add from files and from flags, list, show, cancel (both backends)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.errors import InvalidWorklistItem
from dicomhub.index import migrate
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.worklist import WorklistRepository, WorklistStatus, step_of
from dicomhub.worklist_items import parse_start
from tests.worklist_factories import worklist_item


@pytest.fixture
def env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI's settings: a data folder and the parametrized index."""
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DICOMHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("DICOMHUB_LOG_LEVEL", "WARNING")
    monkeypatch.delenv("DICOMHUB_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return database_url


def _items(url: str) -> list[Dataset]:
    db = IndexDatabase(url)
    migrate.upgrade(db)
    try:
        return [i.dataset for i in reversed(WorklistRepository(db).list())]
    finally:
        db.dispose()


def _statuses(url: str) -> dict[int, WorklistStatus]:
    db = IndexDatabase(url)
    migrate.upgrade(db)
    try:
        return {i.id: i.status for i in WorklistRepository(db).list()}
    finally:
        db.dispose()


def _wl_file(ds: Dataset, path: Path) -> Path:
    """A worklist file as DCMTK's dump2dcm writes them (Part 10, Explicit VR Little)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"  # type: ignore[assignment]
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_add_from_dicom_and_json_files(env: str, tmp_path: Path) -> None:
    wl = _wl_file(worklist_item(patient_id="P1", charset="ISO_IR 100"), tmp_path / "a.wl")
    items = [worklist_item(patient_id=p).to_json_dict() for p in ("P2", "P3")]
    (tmp_path / "b.json").write_text(json.dumps(items))
    single = tmp_path / "c.dcmjson"
    single.write_text(json.dumps(worklist_item(patient_id="P4").to_json_dict()))

    result = CliRunner().invoke(
        app, ["worklist", "add", str(wl), str(tmp_path / "b.json"), str(single)]
    )

    assert result.exit_code == 0, result.output
    assert result.output.count("added worklist item") == 4
    assert "a.wl: added worklist item 1: DOE^JANE (P1), CT, at 2024-01-05 10:30, for CT1" in (
        result.output
    )
    stored = _items(env)
    assert [d.PatientID for d in stored] == ["P1", "P2", "P3", "P4"]
    assert stored[0].SpecificCharacterSet == "ISO_IR 100"
    assert "MediaStorageSOPClassUID" not in stored[0]


def test_add_reports_refused_items_and_keeps_the_others(env: str, tmp_path: Path) -> None:
    bad = worklist_item(patient_id="P9")
    del bad.PatientName
    good = _wl_file(worklist_item(patient_id="P1"), tmp_path / "good.wl")
    refused = _wl_file(bad, tmp_path / "bad.wl")

    result = CliRunner().invoke(app, ["worklist", "add", str(refused), str(good)])

    assert result.exit_code == 1
    assert "bad.wl: a worklist item needs PatientName" in result.output
    assert [d.PatientID for d in _items(env)] == ["P1"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"plain text, not DICOM", "neither a DICOM file nor DICOM JSON"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "item 1 is not a DICOM JSON object"),
    ],
)
def test_add_unreadable_file_changes_nothing(
    env: str, tmp_path: Path, content: bytes, words: str
) -> None:
    good = _wl_file(worklist_item(), tmp_path / "good.wl")
    odd = tmp_path / "odd.wl"
    odd.write_bytes(content)

    result = CliRunner().invoke(app, ["worklist", "add", str(good), str(odd)])

    assert result.exit_code == 2
    assert words in result.output
    assert _items(env) == []


def test_add_from_flags(env: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "worklist",
            "add",
            "--patient-name",
            "ÅSTRÖM^ÅSA",
            "--patient-id",
            "P77",
            "--modality",
            "mr",
            "--station-ae",
            "MR1",
            "--start",
            "20240105 1030",
            "--accession",
            "A77",
            "--procedure",
            "MR KNEE",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "added worklist item 1: ÅSTRÖM^ÅSA (P77), MR, at 2024-01-05 10:30, for MR1" in (
        result.output
    )
    (item,) = _items(env)
    assert item.SpecificCharacterSet == "ISO_IR 192"
    assert (item.AccessionNumber, item.RequestedProcedureDescription) == ("A77", "MR KNEE")
    assert item.StudyInstanceUID
    step = step_of(item)
    assert step is not None
    assert (step.Modality, step.ScheduledStationAETitle) == ("MR", "MR1")
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20240105",
        "1030",
    )
    assert step.ScheduledProcedureStepDescription == "MR KNEE"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ([], 2, "give worklist files"),
        (["--patient-name", "A^B", "x.wl"], 2, "not both"),
        (
            ["--patient-name", "A^B", "--patient-id", "1", "--start", "tomorrow"],
            2,
            "start 'tomorrow'",
        ),
        (["--patient-name", "A^B"], 1, "needs PatientID"),
        (["missing.wl"], 2, "cannot read missing.wl"),
    ],
)
def test_add_usage_errors(env: str, args: list[str], code: int, words: str) -> None:
    result = CliRunner().invoke(app, ["worklist", "add", *args])

    assert result.exit_code == code, result.output
    assert words in result.output
    assert _items(env) == []


def test_add_with_an_order_key_replaces_the_orders_item(env: str) -> None:
    runner = CliRunner()
    base = ["worklist", "add", "--patient-name", "A^B", "--patient-id", "1", "--order-key", "O1"]

    assert runner.invoke(app, [*base, "--modality", "CT"]).exit_code == 0
    assert runner.invoke(app, [*base, "--modality", "MR"]).exit_code == 0

    (item,) = _items(env)
    step = step_of(item)
    assert step is not None and step.Modality == "MR"


def test_list_show_and_cancel(env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    for patient in ("P1", "P2", "P3"):
        wl = _wl_file(worklist_item(patient_id=patient), tmp_path / f"{patient}.wl")
        assert runner.invoke(app, ["worklist", "add", str(wl)]).exit_code == 0

    listed = runner.invoke(app, ["worklist", "list"])
    cancelled = runner.invoke(app, ["worklist", "cancel", "2", "2", "99"])
    only_cancelled = runner.invoke(app, ["worklist", "list", "--status", "cancelled"])
    shown = runner.invoke(app, ["worklist", "show", "2"])
    missing = runner.invoke(app, ["worklist", "show", "99"])

    assert listed.exit_code == 0
    for words in ("P1", "P2", "P3", "SCHEDULED", "DOE^JANE", "2024-01-05 10:30", "CT1"):
        assert words in listed.output
    assert listed.output.index("P3") < listed.output.index("P1"), "newest first"
    assert cancelled.exit_code == 1
    assert "cancelled worklist item 2" in cancelled.output
    assert "worklist item 2 is CANCELLED already" in cancelled.output
    assert "there is no worklist item 99" in cancelled.output
    assert "P2" in only_cancelled.output and "P1" not in only_cancelled.output
    assert shown.exit_code == 0
    assert "worklist item 2: CANCELLED" in shown.output
    assert "Scheduled Procedure Step Sequence" in shown.output
    assert missing.exit_code == 1
    assert _statuses(env)[2] is WorklistStatus.CANCELLED
    assert "no worklist items" in runner.invoke(app, ["worklist", "list", "-s", "completed"]).output


def test_parse_start() -> None:
    assert parse_start("20240105 1030") == ("20240105", "1030")
    assert parse_start("2024-01-05 10:30:15") == ("20240105", "103015")
    assert parse_start("20240105") == ("20240105", "")
    date, time = parse_start("now")
    assert len(date) == 8 and len(time) == 6
    for wrong in ("20241305 1030", "tomorrow", "2024"):
        with pytest.raises(InvalidWorklistItem):
            parse_start(wrong)
