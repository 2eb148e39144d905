"""Segment store: records read back, deletes free space, failures and torn writes leave
nothing half-written, and a live process's segment is never taken from it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dicomhub.dicom.engine.filemeta import part10_prefix
from dicomhub.errors import OutOfResources
from dicomhub.storage.base import InMemoryObject
from dicomhub.storage.filesystem import FilesystemBlobStore, new_key
from dicomhub.storage.segments import HEADER, MAGIC, SegmentKey, SegmentStore, is_segment_key
from tests.faults import fill_disk


def _payload(data: bytes) -> tuple[list[bytes], bytes, int]:
    return [data[:5], data[5:]], hashlib.sha256(data).digest(), 0


def test_records_read_back_with_their_checksums(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, new_key)
    first, second = b"first object" * 100, b"second" * 7
    keys = store.append([_payload(first), _payload(second)])
    assert all(is_segment_key(k) for k in keys)
    assert SegmentKey.parse(keys[0]).offset == HEADER.size
    with store.open(keys[1]) as stream:
        assert stream.read() == second
        stream.seek(2)
        assert stream.read(3) == second[2:5]
    records = list(store.scan(SegmentKey.parse(keys[0]).segment))
    assert [r.sha256 for r in records] == [hashlib.sha256(d).digest() for d in (first, second)]
    assert all(store.verified(r) for r in records)
    assert sorted(store.all_keys()) == sorted(keys)
    assert len(store.segments()) == 1  # one file for both


def test_delete_marks_dead_and_punches_a_hole(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, new_key)
    big = os.urandom(1 << 20)
    keep, drop = store.append([_payload(b"keep me"), _payload(big)])
    path = store.path(SegmentKey.parse(drop).segment)
    blocks = os.stat(path).st_blocks
    store.delete([drop, drop])  # twice: the second is a no-op
    assert not store.exists(drop)
    assert store.exists(keep)
    assert list(store.all_keys()) == [keep]
    with pytest.raises(FileNotFoundError):
        store.open(drop)
    assert os.stat(path).st_blocks < blocks  # the space went back to the filesystem


def test_failed_append_cuts_the_segment_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    (kept,) = store.put_objects([InMemoryObject.hashed(b"P" * 10 + b"D" * 90, 10)])
    size = store.segments.path(SegmentKey.parse(kept.key).segment).stat().st_size
    with monkeypatch.context() as patch:
        fill_disk(patch)
        with pytest.raises(OutOfResources, match="No space left"):
            store.put_objects([InMemoryObject.hashed(b"x" * 500, 0)] * 3)
    assert store.segments.path(SegmentKey.parse(kept.key).segment).stat().st_size == size
    assert list(store.all_keys()) == [kept.key]
    (after,) = store.put_objects([InMemoryObject.hashed(b"after", 0)])
    assert SegmentKey.parse(after.key).offset == size + HEADER.size


def test_scan_stops_at_a_torn_record(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, new_key)
    (key,) = store.append([_payload(b"complete")])
    segment = SegmentKey.parse(key).segment
    store.close()
    with store.path(segment).open("ab") as stream:
        stream.write(HEADER.pack(MAGIC, 1, 0, 0, 1000, b"\0" * 32)[:40])  # cut mid-header
    assert [str(r.key) for r in store.scan(segment)] == [key]


def test_a_live_writers_segment_cannot_be_taken(tmp_path: Path) -> None:
    writer = SegmentStore(tmp_path, new_key)
    (key,) = writer.append([_payload(b"mine")])
    segment = SegmentKey.parse(key).segment
    other = SegmentStore(tmp_path, new_key)
    assert other.lock_idle(segment) is None
    writer.close()
    fd = other.lock_idle(segment)
    assert fd is not None
    os.close(fd)


def test_each_process_start_gets_a_new_segment_and_empty_ones_go(tmp_path: Path) -> None:
    first = SegmentStore(tmp_path, new_key)
    first.append([_payload(b"a")])
    first.close()
    second = SegmentStore(tmp_path, new_key)
    second.append([_payload(b"b")])
    second.close()
    assert len(second.segments()) == 2
    third = SegmentStore(tmp_path, new_key)
    third.append([])  # opens a segment, writes nothing
    third.close()
    assert len(third.segments()) == 2


def _part10(data_set: bytes) -> bytes:
    return (
        part10_prefix(
            sop_class_uid="1.2.3",
            sop_instance_uid="1.2.3.4",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            implementation_class_uid="1.2.3.5",
            implementation_version_name="TEST",
            source_ae_title="SCU",
        )
        + data_set
    )


def test_file_and_segment_blobs_side_by_side(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    source = tmp_path / "in"
    as_file_data, in_memory_data = _part10(b"file"), _part10(b"memory")
    source.write_bytes(as_file_data)
    offset = len(as_file_data) - 4
    as_file = store.put_file(source, dataset_offset=offset, take=False)
    memory = InMemoryObject.hashed(in_memory_data, len(in_memory_data) - 6)
    (in_segment,) = store.put_objects([memory])
    assert in_segment.content_sha256 == hashlib.sha256(b"memory").hexdigest()
    assert in_segment.sha256 == ""  # only the data set of an object in memory is hashed
    assert sorted(store.all_keys()) == sorted([as_file.key, in_segment.key])
    for info, data in ((as_file, as_file_data), (in_segment, in_memory_data)):
        with store.open(info.key) as stream:
            assert stream.read() == data
        assert store.digests(info.key) == (
            hashlib.sha256(data).hexdigest(),
            hashlib.sha256(data[-len(data) + offset if info is as_file else -6 :]).hexdigest(),
        )
    store.delete(in_segment.key)
    store.delete(as_file.key)
    assert list(store.all_keys()) == []


def test_records_of_the_first_format_still_read_and_verify(tmp_path: Path) -> None:
    """``DHUBREC1`` records hash their whole payload and have no data set offset."""
    store = SegmentStore(tmp_path, new_key)
    store.append([_payload(b"now")])
    (segment,) = store.segments()
    payload = b"written by an earlier version"
    with store.path(segment).open("ab") as stream:
        stream.write(
            HEADER.pack(b"DHUBREC1", 1, 0, 0, len(payload), hashlib.sha256(payload).digest())
            + payload
        )
    records = list(store.scan(segment))
    assert len(records) == 2
    assert records[1].dataset_offset == 0
    assert store.verified(records[1])
    with store.open(str(records[1].key)) as stream:
        assert stream.read() == payload


def test_the_checksum_of_a_record_covers_its_data_set(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, new_key)
    data = b"META" + b"data set"
    (key,) = store.append([([data], hashlib.sha256(b"data set").digest(), 4)])
    (record,) = store.scan(SegmentKey.parse(key).segment)
    assert record.dataset_offset == 4 and store.verified(record)
    with store.path(record.key.segment).open("r+b") as stream:
        stream.seek(record.key.offset + 6)
        stream.write(b"X")  # one byte of the data set changed
    (record,) = store.scan(SegmentKey.parse(key).segment)
    assert not store.verified(record)
