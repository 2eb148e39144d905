"""Start-up recovery: objects durable in a segment but missing from the index are indexed
again; torn tails are cut off; nothing indexed is ever discarded."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from dicomhub.config import Settings
from dicomhub.index import positions
from dicomhub.index.schema import instances
from dicomhub.ingest import IngestRequest, StoreStatus
from dicomhub.recovery import recover
from dicomhub.runtime import Runtime, open_runtime
from dicomhub.storage.base import InMemoryObject
from dicomhub.storage.segments import (
    _KEEP_SIZE,
    HEADER,
    MAGIC,
    PREALLOCATE,
    SegmentKey,
    _fallocate,
)
from tests.factories import make_dataset, write_file


def _content(tmp_path: Path, name: str, sop_uid: str | None = None) -> bytes:
    return write_file(make_dataset(sop_uid=sop_uid), tmp_path / f"{name}.dcm").read_bytes()


def _store_in_memory(runtime: Runtime, data: bytes) -> StoreStatus:
    request = IngestRequest(path=None, take=True, source="test", content=bytearray(data))
    return runtime.ingest.store(request).status


def _restart(runtime: Runtime, settings: Settings) -> Runtime:
    """Stop (releasing the segment) and open again, as a new process would."""
    runtime.close()
    return open_runtime(settings)


def test_in_memory_objects_go_to_a_segment(runtime: Runtime, tmp_path: Path) -> None:
    data = _content(tmp_path, "a", sop_uid="1.2.826.0.1.3680043.10.7.1")
    assert _store_in_memory(runtime, data) is StoreStatus.STORED
    stored = runtime.repository.get_instance("1.2.826.0.1.3680043.10.7.1")
    assert stored is not None
    assert "." in stored.blob_key
    with runtime.blobs.open(stored.blob_key) as stream:
        assert stream.read() == data
    # An identical copy is acknowledged without a second record staying live.
    assert _store_in_memory(runtime, data) is StoreStatus.DUPLICATE
    assert list(runtime.blobs.all_keys()) == [stored.blob_key]
    segment = SegmentKey.parse(stored.blob_key)
    assert positions.position(runtime.db, segment.segment) > segment.offset


def test_objects_whose_indexing_was_lost_are_indexed_again(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    data = _content(tmp_path, "a", sop_uid="1.2.826.0.1.3680043.10.7.2")
    _store_in_memory(runtime, data)
    # A crash after the segment's fdatasync, before the index commit:
    lost = _content(tmp_path, "b", sop_uid="1.2.826.0.1.3680043.10.7.3")
    (blob,) = runtime.blobs.put_objects([InMemoryObject.hashed(lost, 0)])
    assert runtime.repository.get_instance("1.2.826.0.1.3680043.10.7.3") is None
    runtime = _restart(runtime, settings)
    try:
        report = recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert report.indexed == 1
        stored = runtime.repository.get_instance("1.2.826.0.1.3680043.10.7.3")
        assert stored is not None and stored.blob_key == blob.key
        assert runtime.repository.count_instances() == 2
        again = recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert again.indexed == again.discarded == 0  # the position moved past them
    finally:
        runtime.close()


def test_a_recovered_object_keeps_the_calling_ae_title_of_its_file_meta(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    ds = make_dataset(sop_uid="1.2.826.0.1.3680043.10.7.9")
    path = tmp_path / "meta.dcm"
    write_file(ds, path)
    written = dcmread(path)
    written.file_meta.SourceApplicationEntityTitle = "CT_ROOM_2"
    written.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    (blob,) = runtime.blobs.put_objects([InMemoryObject.hashed(data, 0)])
    runtime = _restart(runtime, settings)
    try:
        assert recover(runtime.db, runtime.repository, runtime.blobs.segments).indexed == 1
        with runtime.db.read() as conn:
            calling = conn.execute(
                select(instances.c.calling_ae_title).where(
                    instances.c.sop_instance_uid == "1.2.826.0.1.3680043.10.7.9"
                )
            ).scalar_one()
        assert calling == "CT_ROOM_2"
        assert blob.key
    finally:
        runtime.close()


def test_recovery_never_discards_an_indexed_object(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    data = _content(tmp_path, "a", sop_uid="1.2.826.0.1.3680043.10.7.4")
    _store_in_memory(runtime, data)
    stored = runtime.repository.get_instance("1.2.826.0.1.3680043.10.7.4")
    assert stored is not None
    # Indexed, but the recorded position is behind (a stop during recovery itself):
    with runtime.db.write() as conn:
        conn.exec_driver_sql("UPDATE segments SET indexed_end = 0")
    runtime = _restart(runtime, settings)
    try:
        report = recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert report.discarded == 0
        assert runtime.blobs.exists(stored.blob_key)
        # A second copy of an indexed object found in a segment is the one discarded.
        (copy,) = runtime.blobs.put_objects([InMemoryObject.hashed(data, 0)])
        runtime = _restart(runtime, settings)
        report = recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert report.discarded == 1
        assert not runtime.blobs.exists(copy.key)
        assert runtime.blobs.exists(stored.blob_key)
    finally:
        runtime.close()


def test_torn_tail_is_cut_off(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    _store_in_memory(runtime, _content(tmp_path, "a"))
    (key,) = list(runtime.blobs.all_keys())
    path = runtime.blobs.segments.path(SegmentKey.parse(key).segment)
    size = path.stat().st_size
    runtime.close()  # the process ends (its segment is released) ...
    with path.open("ab") as stream:  # ... in the middle of a write that never reached the disk
        stream.write(HEADER.pack(MAGIC, 1, 0, 0, 500, b"\1" * 32) + b"partial")
    runtime = open_runtime(settings)
    try:
        report = recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert report.torn_bytes == HEADER.size + len(b"partial")
        assert path.stat().st_size == size
        assert runtime.repository.count_instances() == 1
    finally:
        runtime.close()


def test_blocks_allocated_ahead_are_given_back(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    """The active segment's blocks are allocated ahead of its end (quicker flushes); they go
    back when it is closed, and when a crashed writer's segment is recovered."""
    _store_in_memory(runtime, _content(tmp_path, "a"))
    (key,) = list(runtime.blobs.all_keys())
    path = runtime.blobs.segments.path(SegmentKey.parse(key).segment)
    size = path.stat().st_size
    allocated = path.stat().st_blocks * 512
    assert allocated >= PREALLOCATE > size  # (on filesystems that allocate ahead)
    runtime.close()
    assert path.stat().st_size == size
    assert path.stat().st_blocks * 512 < size + 64 * 1024
    with path.open("r+b") as stream:  # a writer that died with blocks allocated ahead
        assert _fallocate(stream.fileno(), _KEEP_SIZE, size, PREALLOCATE)
    assert path.stat().st_blocks * 512 >= PREALLOCATE
    runtime = open_runtime(settings)
    try:
        recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert path.stat().st_size == size
        assert path.stat().st_blocks * 512 < size + 64 * 1024
        assert runtime.repository.count_instances() == 1
    finally:
        runtime.close()


@pytest.mark.parametrize("damage", ["not dicom"])
def test_unstorable_record_is_discarded(runtime: Runtime, settings: Settings, damage: str) -> None:
    (blob,) = runtime.blobs.put_objects([InMemoryObject.hashed(damage.encode(), 0)])
    runtime = _restart(runtime, settings)
    try:
        report = recover(runtime.db, runtime.repository, runtime.blobs.segments)
        assert report.discarded == 1
        assert not runtime.blobs.exists(blob.key)
    finally:
        runtime.close()
