"""Indexing batches: the prepared-statement path and the general path write the same rows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import MRImageStorage, SecondaryCaptureImageStorage, generate_uid
from sqlalchemy import select

from dicomhub.errors import DicomhubError, DuplicateSOPInstance
from dicomhub.header import read_header
from dicomhub.index.schema import attachments, changes, instances, patients, series, studies
from dicomhub.index.times import as_utc
from dicomhub.index.writer import AddOutcome, AddResult, NewInstance
from dicomhub.runtime import Runtime
from dicomhub.storage.base import BlobInfo, InMemoryObject
from tests.factories import make_dataset, write_file

STUDY = "1.2.826.0.1.3680043.10.9.1"


def _item(tmp_path: Path, **fields: Any) -> NewInstance:
    fields.setdefault("study_uid", STUDY)
    path = write_file(make_dataset(**fields), tmp_path / f"{generate_uid()}.dcm")
    data = path.read_bytes()
    parsed = read_header(data)
    memory = InMemoryObject.hashed(data, parsed.dataset_offset)
    blob = memory.info(generate_uid())
    return NewInstance(parsed, blob, "test", "SCU", False, "HUB")


def _snapshot(runtime: Runtime) -> dict[str, Any]:
    """Everything the indexing wrote, without keys and times."""
    with runtime.db.read() as conn:
        study = conn.execute(select(studies)).one()._mapping
        patient = conn.execute(select(patients)).one()._mapping
        series_rows = {
            r.series_instance_uid: r.number_of_series_related_instances
            for r in conn.execute(select(series))
        }
        headers = {
            r.sop_instance_uid: (r.header, r.calling_ae_title, as_utc(r.received_at) is not None)
            for r in conn.execute(select(instances))
        }
        blobs = sorted(tuple(r)[2:-1] for r in conn.execute(select(attachments)))
        log = sorted((r.change_type, r.uid) for r in conn.execute(select(changes)))
    return {
        "study": (
            study["modalities_in_study"],
            study["sop_classes_in_study"],
            study["number_of_study_related_instances"],
            study["number_of_study_related_series"],
        ),
        "patient": (
            patient["number_of_patient_related_instances"],
            patient["number_of_patient_related_series"],
            patient["number_of_patient_related_studies"],
        ),
        "series": series_rows,
        "instances": headers,
        "attachments": blobs,
        "changes": log,
    }


def _study(tmp_path: Path) -> list[NewInstance]:
    """Two CT series, an MR series and a Secondary Capture: new series and known ones."""
    items = []
    for modality, sop_class, series_uid, count in [
        ("CT", "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.10.9.2", 5),
        ("MR", MRImageStorage, "1.2.826.0.1.3680043.10.9.3", 3),
        ("CT", "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.10.9.4", 4),
        ("OT", SecondaryCaptureImageStorage, "1.2.826.0.1.3680043.10.9.5", 2),
    ]:
        for _ in range(count):
            items.append(
                _item(tmp_path, modality=modality, sop_class=sop_class, series_uid=series_uid)
            )
    return items


def _ok(results: list[AddResult | DicomhubError]) -> list[AddOutcome]:
    outcomes = []
    for result in results:
        assert isinstance(result, AddResult), result
        outcomes.append(result.outcome)
    return outcomes


def test_batches_write_what_single_objects_write(runtime: Runtime, tmp_path: Path) -> None:
    items = _study(tmp_path)
    snapshots = []
    for batch_size in (1, 3, 14):
        with runtime.db.write() as conn:  # a clean slate for each way of batching
            for table in (changes, attachments, instances, series, studies, patients):
                conn.execute(table.delete())
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            outcomes = _ok(runtime.repository.add_instances(batch))
            assert outcomes == [AddOutcome.STORED] * len(batch)
        snapshots.append(_snapshot(runtime))
    assert snapshots[0] == snapshots[1] == snapshots[2]
    study = snapshots[0]["study"]
    assert study == ("CT\\MR\\OT", "\\".join(sorted({i.sop_class_uid for i in items})), 14, 4)
    assert snapshots[0]["patient"] == (14, 4, 1)
    assert sorted(snapshots[0]["series"].values()) == [2, 3, 4, 5]
    assert len(snapshots[0]["changes"]) == 14
    header, calling, has_time = snapshots[0]["instances"][items[0].sop_instance_uid]
    assert header == items[0].header and calling == "SCU" and has_time


def test_duplicates_and_conflicts_in_a_batch(runtime: Runtime, tmp_path: Path) -> None:
    first = _item(tmp_path, series_uid="1.2.3.7")
    assert _ok(runtime.repository.add_instances([first])) == [AddOutcome.STORED]
    same = NewInstance(first.parsed, BlobInfo("other", 1, "0" * 64, first.blob.content_sha256), "t")
    conflicting = _item(tmp_path, series_uid="1.2.3.7", sop_uid=first.sop_instance_uid)
    fresh = _item(tmp_path, series_uid="1.2.3.7")
    results = runtime.repository.add_instances([same, conflicting, fresh])
    assert isinstance(results[0], AddResult) and results[0].outcome is AddOutcome.DUPLICATE
    assert isinstance(results[1], DuplicateSOPInstance)
    assert isinstance(results[2], AddResult) and results[2].outcome is AddOutcome.STORED
    with runtime.db.read() as conn:
        count = conn.execute(select(series.c.number_of_series_related_instances)).scalar_one()
    assert count == 2


def test_lone_conflict_is_returned_not_raised(runtime: Runtime, tmp_path: Path) -> None:
    first = _item(tmp_path)
    runtime.repository.add_instances([first])
    (result,) = runtime.repository.add_instances([_item(tmp_path, sop_uid=first.sop_instance_uid)])
    assert isinstance(result, DuplicateSOPInstance)
    assert runtime.repository.count_instances() == 1


def test_replace_in_a_known_series(runtime: Runtime, tmp_path: Path) -> None:
    first = _item(tmp_path, series_uid="1.2.3.8")
    runtime.repository.add_instances([first, _item(tmp_path, series_uid="1.2.3.8")])
    newer = _item(tmp_path, series_uid="1.2.3.8", sop_uid=first.sop_instance_uid)
    replacing = NewInstance(newer.parsed, newer.blob, "t", replace=True)
    (result,) = runtime.repository.add_instances([replacing])
    assert isinstance(result, AddResult)
    assert result.outcome is AddOutcome.REPLACED
    assert result.obsolete_blob_key == first.blob.key
    stored = runtime.repository.get_instance(first.sop_instance_uid)
    assert stored is not None and stored.blob_key == newer.blob.key
    with runtime.db.read() as conn:
        count = conn.execute(select(series.c.number_of_series_related_instances)).scalar_one()
    assert count == 2


def test_series_under_another_study_takes_the_general_path(
    runtime: Runtime, tmp_path: Path
) -> None:
    runtime.repository.add_instances([_item(tmp_path, series_uid="1.2.3.9")])
    stray = _item(tmp_path, series_uid="1.2.3.9", study_uid="1.2.3.10")
    (result,) = runtime.repository.add_instances([stray])
    assert isinstance(result, AddResult) and result.outcome is AddOutcome.STORED
    with runtime.db.read() as conn:
        uids = sorted(conn.execute(select(studies.c.study_instance_uid)).scalars())
    assert uids == ["1.2.3.10", STUDY]


def test_after_commit_runs_once_per_transaction(runtime: Runtime, tmp_path: Path) -> None:
    calls: list[int] = []
    runtime.repository.writer.after_commit = lambda: calls.append(1)
    runtime.repository.add_instances([_item(tmp_path), _item(tmp_path)])
    runtime.repository.add_instances([_item(tmp_path)])
    assert calls == [1, 1]


def test_rows_are_prepared_before_the_writer_lock(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock other processes queue for is held for the statements only: each object's
    row and change-log details are ready before it is taken, and one reception time stamps
    the objects of a batch that join a known series."""
    known = "1.2.826.0.1.3680043.10.9.6"
    runtime.repository.add_instances([_item(tmp_path, series_uid=known)])
    items = [_item(tmp_path, series_uid=known) for _ in range(3)]
    ready_at_lock: list[bool] = []
    lock = runtime.db._write_lock

    @contextlib.contextmanager
    def watched() -> Iterator[None]:
        ready_at_lock.append(all({"image_row", "details_json"} <= set(vars(i)) for i in items))
        with lock:
            yield

    monkeypatch.setattr(runtime.db, "_write_lock", watched())
    assert _ok(runtime.repository.add_instances(items)) == [AddOutcome.STORED] * 3
    assert ready_at_lock == [True]
    uids = [i.sop_instance_uid for i in items]
    with runtime.db.read() as conn:
        rows = conn.execute(select(instances).where(instances.c.sop_instance_uid.in_(uids)))
        times = {r.received_at for r in rows}
        logged = {
            r.occurred_at for r in conn.execute(select(changes).where(changes.c.uid.in_(uids)))
        }
    assert len(times) == 1 and None not in times
    assert logged == times
