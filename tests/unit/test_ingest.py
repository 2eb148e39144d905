"""The ingest path against real index databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit
from sqlalchemy import func, select

from dicomhub.config import Settings
from dicomhub.errors import (
    CannotUnderstand,
    DicomhubError,
    DuplicateSOPInstance,
    IndexFailure,
    OutOfResources,
)
from dicomhub.index.schema import attachments, changes, instances, patients, series, studies
from dicomhub.ingest import Ingest, IngestRequest, StoreResult, StoreStatus
from dicomhub.runtime import Runtime, open_runtime
from tests.factories import make_dataset, write_file
from tests.faults import flush_fails


def _count(runtime: Runtime, table: object) -> int:
    with runtime.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _blob_files(runtime: Runtime) -> list[str]:
    """Live blobs plus anything left in the staging area."""
    return sorted(runtime.blobs.all_keys()) + [p.name for p in runtime.blobs.staged_files()]


def _request(path: Path) -> IngestRequest:
    return IngestRequest(path=path, take=False, source="test", calling_ae_title="ME")


def test_store_indexes_every_level(runtime: Runtime, tmp_path: Path) -> None:
    ds = make_dataset(patient_name="Müller^Jörg", charset="ISO_IR 100")
    path = write_file(ds, tmp_path / "a.dcm")
    result = runtime.ingest.store(_request(path))
    assert result.status is StoreStatus.STORED
    assert result.transfer_syntax_uid == ExplicitVRLittleEndian
    stored = runtime.repository.get_instance(str(ds.SOPInstanceUID))
    assert stored is not None
    with runtime.blobs.open(stored.blob_key) as blob:
        assert blob.read() == path.read_bytes()
    with runtime.db.read() as conn:
        patient = conn.execute(select(patients)).one()
        study = conn.execute(select(studies)).one()
        header = conn.execute(select(instances.c.header)).scalar_one()
    assert patient.patient_name == "Müller^Jörg"
    assert patient.specific_character_set == "ISO_IR 100"
    assert study.modalities_in_study == "CT"
    assert study.number_of_study_related_instances == 1
    assert "7FE00010" not in header
    assert header["00100010"]["Value"] == [{"Alphabetic": "Müller^Jörg"}]
    assert [c["change_type"] for c in runtime.repository.changes_since(0)] == ["stored"]


def test_counts_and_lists_follow_inserts(runtime: Runtime, tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.10.1.1"
    for index, (modality, series_uid) in enumerate(
        [("CT", "1.2.3.1"), ("CT", "1.2.3.1"), ("MR", "1.2.3.2"), ("SR", "1.2.3.3")]
    ):
        sop_class = "1.2.840.10008.5.1.4.1.1.88.11" if modality == "SR" else None
        ds = make_dataset(
            study_uid=study,
            series_uid=series_uid,
            modality=modality,
            sop_class=sop_class or "1.2.840.10008.5.1.4.1.1.2",
        )
        runtime.ingest.store(_request(write_file(ds, tmp_path / f"{index}.dcm")))
    with runtime.db.read() as conn:
        row = conn.execute(select(studies)).one()
        patient = conn.execute(select(patients)).one()
        series_counts = conn.execute(
            select(
                series.c.series_instance_uid, series.c.number_of_series_related_instances
            ).order_by(series.c.series_instance_uid)
        ).all()
    assert row.modalities_in_study == "CT\\MR\\SR"
    assert row.sop_classes_in_study == "1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.88.11"
    assert row.number_of_study_related_series == 3
    assert row.number_of_study_related_instances == 4
    assert (
        patient.number_of_patient_related_studies,
        patient.number_of_patient_related_series,
        patient.number_of_patient_related_instances,
    ) == (1, 3, 4)
    assert [tuple(r) for r in series_counts] == [("1.2.3.1", 2), ("1.2.3.2", 1), ("1.2.3.3", 1)]


def test_identical_resend_is_success_without_second_copy(runtime: Runtime, tmp_path: Path) -> None:
    ds = make_dataset()
    first = write_file(ds, tmp_path / "a.dcm")
    runtime.ingest.store(_request(first))
    # Same data set, different file meta (another implementation wrote it).
    ds.file_meta.ImplementationVersionName = "OTHER_1"
    second = tmp_path / "b.dcm"
    ds.save_as(second, enforce_file_format=True)
    assert second.read_bytes() != first.read_bytes()
    assert runtime.ingest.store(_request(second)).status is StoreStatus.DUPLICATE
    assert _count(runtime, instances) == 1
    assert len(_blob_files(runtime)) == 1


def test_conflicting_duplicate_rejected_by_default(runtime: Runtime, tmp_path: Path) -> None:
    ds = make_dataset(sop_uid="1.2.3.4.5")
    runtime.ingest.store(_request(write_file(ds, tmp_path / "a.dcm")))
    ds.PatientName = "OTHER^NAME"
    with pytest.raises(DuplicateSOPInstance, match="already stored with different content"):
        runtime.ingest.store(_request(write_file(ds, tmp_path / "b.dcm")))
    assert len(_blob_files(runtime)) == 1
    with runtime.db.read() as conn:
        assert conn.execute(select(patients.c.patient_name)).scalar_one() == "DOE^JOHN"


def test_conflicting_duplicate_replaced_when_configured(settings: Settings, tmp_path: Path) -> None:
    runtime = open_runtime(settings.model_copy(update={"duplicate_policy": "replace"}))
    try:
        ds = make_dataset(sop_uid="1.2.3.4.5")
        runtime.ingest.store(_request(write_file(ds, tmp_path / "a.dcm")))
        ds.StudyDescription = "CORRECTED"
        result = runtime.ingest.store(_request(write_file(ds, tmp_path / "b.dcm")))
        assert result.status is StoreStatus.REPLACED
        assert len(_blob_files(runtime)) == 1
        stored = runtime.repository.get_instance("1.2.3.4.5")
        assert stored is not None
        with runtime.blobs.open(stored.blob_key) as blob:
            assert blob.read() == (tmp_path / "b.dcm").read_bytes()
        assert [c["change_type"] for c in runtime.repository.changes_since(0)] == [
            "stored",
            "replaced",
        ]
        assert _count(runtime, studies) == 1
        with runtime.db.read() as conn:
            assert (
                conn.execute(select(studies.c.number_of_study_related_instances)).scalar_one() == 1
            )
    finally:
        runtime.close()


def test_rejected_object_leaves_nothing(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "bad.dcm"
    good = write_file(make_dataset(rows=32), tmp_path / "good.dcm").read_bytes()
    path.write_bytes(good[:-10])
    with pytest.raises(CannotUnderstand, match="truncated"):
        runtime.ingest.store(_request(path))
    assert _blob_files(runtime) == []
    assert _count(runtime, instances) == 0
    assert path.exists()  # import never removes the user's file


def test_staging_file_is_consumed_even_when_rejected(runtime: Runtime, tmp_path: Path) -> None:
    writer = runtime.blobs.new_staging_file()
    writer.write(b"not dicom at all")
    writer.finish()
    with pytest.raises(CannotUnderstand):
        runtime.ingest.store(IngestRequest(path=Path(writer.name), take=True, source="test"))
    assert _blob_files(runtime) == []


def test_index_failure_removes_blob(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(runtime.repository, "add_instances", broken)
    with pytest.raises(IndexFailure):
        runtime.ingest.store(_request(write_file(make_dataset(), tmp_path / "a.dcm")))
    assert _blob_files(runtime) == []


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, JPEGBaseline8Bit])
def test_transfer_syntax_recorded(runtime: Runtime, tmp_path: Path, syntax: str) -> None:
    ds = make_dataset()
    if syntax == JPEGBaseline8Bit:
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([b"\xff\xd8" + b"\0" * 30 + b"\xff\xd9"])
        ds["PixelData"].VR = "OB"
    write_file(ds, tmp_path / "a.dcm", syntax)
    runtime.ingest.store(_request(tmp_path / "a.dcm"))
    with runtime.db.read() as conn:
        assert conn.execute(select(attachments.c.transfer_syntax_uid)).scalar_one() == syntax


def test_remove_instance_cascades_and_logs(runtime: Runtime, tmp_path: Path) -> None:
    ds = make_dataset(sop_uid="1.2.9.1")
    runtime.ingest.store(_request(write_file(ds, tmp_path / "a.dcm")))
    other = make_dataset(sop_uid="1.2.9.2", study_uid=str(ds.StudyInstanceUID), modality="MR")
    runtime.ingest.store(_request(write_file(other, tmp_path / "b.dcm")))
    assert runtime.repository.remove_instance("1.2.9.2", "test") is not None
    with runtime.db.read() as conn:
        study = conn.execute(select(studies)).one()
    assert study.modalities_in_study == "CT"
    assert study.number_of_study_related_series == 1
    runtime.repository.remove_instance("1.2.9.1", "test")
    for table in (patients, studies, series, instances, attachments):
        assert _count(runtime, table) == 0
    assert _count(runtime, changes) == 4


def test_ingest_with_memory_store(runtime: Runtime, tmp_path: Path) -> None:
    from dicomhub.storage.memory import MemoryBlobStore

    memory = MemoryBlobStore()
    ingest = Ingest(runtime.repository, memory)
    ds = make_dataset()
    path = write_file(ds, tmp_path / "a.dcm")
    assert ingest.store(_request(path)).status is StoreStatus.STORED
    assert list(memory.blobs.values()) == [path.read_bytes()]


def _in_memory(path: Path) -> IngestRequest:
    return IngestRequest(path=None, take=True, source="test", content=bytearray(path.read_bytes()))


def test_failed_flush_refuses_the_batch_and_keeps_nothing(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index is written while the segment is flushed; a flush that fails takes the
    whole batch back: no index row, no record, and the next object is stored as usual."""

    requests = [_in_memory(write_file(make_dataset(), tmp_path / f"{n}.dcm")) for n in range(3)]
    prepared = [runtime.ingest._prepare(request) for request in requests]
    flush_fails(monkeypatch)
    results = runtime.ingest._commit(prepared)
    assert all(isinstance(r, OutOfResources) for r in results), results
    assert "flush failed: Input/output error" in str(results[0])
    with pytest.raises(OutOfResources):
        runtime.ingest.store(_in_memory(write_file(make_dataset(), tmp_path / "lone.dcm")))
    assert runtime.repository.count_instances() == 0
    assert _blob_files(runtime) == []
    monkeypatch.undo()
    assert runtime.ingest.store(requests[0]).status is StoreStatus.STORED
    assert runtime.repository.count_instances() == 1
    assert len(_blob_files(runtime)) == 1


def test_commit_calls_back_with_the_outcome(runtime: Runtime, tmp_path: Path) -> None:
    """The event loop's way in: prepare, then commit with a callback, never waiting."""
    outcomes: list[StoreResult | DicomhubError] = []
    finished = threading.Event()

    def done(outcome: StoreResult | DicomhubError) -> None:
        outcomes.append(outcome)
        finished.set()

    path = write_file(make_dataset(), tmp_path / "a.dcm")
    prepared = runtime.ingest.prepare(_in_memory(path), hash_later=True)
    assert prepared.memory is not None and prepared.memory.content_sha256 == ""
    runtime.ingest.commit(prepared, done)
    assert finished.wait(30)
    assert isinstance(outcomes[0], StoreResult) and outcomes[0].status is StoreStatus.STORED
    stored = runtime.repository.get_instance(outcomes[0].sop_instance_uid)
    offset = prepared.parsed.dataset_offset
    assert stored is not None
    assert stored.content_sha256 == hashlib.sha256(path.read_bytes()[offset:]).hexdigest()
    finished.clear()
    conflicting = make_dataset(sop_uid=outcomes[0].sop_instance_uid, patient_id="OTHER")
    request = _in_memory(write_file(conflicting, tmp_path / "b.dcm"))
    runtime.ingest.commit(runtime.ingest.prepare(request), done)
    assert finished.wait(30)
    assert isinstance(outcomes[1], DuplicateSOPInstance)
    finished.clear()
    known = runtime.ingest.prepare(_request(path))  # the same file again: nothing to write
    runtime.ingest.commit(known, done)
    assert finished.is_set()  # at once, in the caller's thread
    assert isinstance(outcomes[2], StoreResult) and outcomes[2].status is StoreStatus.DUPLICATE
    assert runtime.repository.count_instances() == 1
