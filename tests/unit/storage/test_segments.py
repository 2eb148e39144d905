"""Segment store: records read back, deletes free space, failures and torn writes leave
nothing half-written, and a live process's segment is never taken from it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dicomhub.errors import OutOfResources
from dicomhub.storage.base import InMemoryObject
from dicomhub.storage.filesystem import FilesystemBlobStore, new_key
from dicomhub.storage.segments import HEADER, SegmentKey, SegmentStore, is_segment_key
from tests.faults import fill_disk


def _payload(data: bytes) -> tuple[list[bytes], bytes]:
    return [data[:5], data[5:]], hashlib.sha256(data).digest()


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
    assert store.checksum(keys[0]) == hashlib.sha256(first).hexdigest()
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
        stream.write(HEADER.pack(b"DHUBREC1", 1, 0, 1000, b"\0" * 32)[:40])  # cut mid-header
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


def test_file_and_segment_blobs_side_by_side(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    source = tmp_path / "in"
    source.write_bytes(b"M" * 4 + b"file")
    as_file = store.put_file(source, dataset_offset=4, take=False)
    (in_segment,) = store.put_objects([InMemoryObject.hashed(b"M" * 4 + b"memory", 4)])
    assert in_segment.content_sha256 == hashlib.sha256(b"memory").hexdigest()
    assert sorted(store.all_keys()) == sorted([as_file.key, in_segment.key])
    for info, data in ((as_file, b"MMMMfile"), (in_segment, b"MMMMmemory")):
        with store.open(info.key) as stream:
            assert stream.read() == data
        assert store.sha256(info.key) == info.sha256
    store.delete(in_segment.key)
    store.delete(as_file.key)
    assert list(store.all_keys()) == []
