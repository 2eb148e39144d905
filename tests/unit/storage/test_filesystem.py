"""Filesystem blob store: durability order, names, failures leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from dicomhub.errors import OutOfResources
from dicomhub.storage import filesystem
from dicomhub.storage.filesystem import FilesystemBlobStore
from dicomhub.storage.memory import MemoryBlobStore
from tests.faults import disk_full


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_copy_put_records_checksums_and_keeps_source(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    source = tmp_path / "in.dcm"
    source.write_bytes(b"M" * 10 + b"D" * 20)
    info = store.put_file(source, dataset_offset=10, take=False)
    assert source.exists()
    assert info.size == 30
    assert info.sha256 == hashlib.sha256(b"M" * 10 + b"D" * 20).hexdigest()
    assert info.content_sha256 == hashlib.sha256(b"D" * 20).hexdigest()
    assert store.path_for(info.key).read_bytes() == source.read_bytes()
    assert store.digests(info.key)[0] == info.sha256
    assert list(store.all_keys()) == [info.key]
    assert _files(store.staging) == []


def test_names_are_server_generated(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    source = tmp_path / "1.2.3.dcm"
    source.write_bytes(b"x")
    info = store.put_file(source, dataset_offset=0, take=False)
    path = store.path_for(info.key)
    assert path.relative_to(store.root).parts == (info.key[:6], info.key[6:8], info.key)
    assert "1.2.3" not in str(path)
    second = store.put_file(source, dataset_offset=0, take=False)
    assert second.key != info.key
    assert store.path_for(second.key).parent == path.parent  # stored together, one folder
    with pytest.raises(ValueError, match="not a blob key"):
        store.path_for("../../etc/passwd")


def test_take_moves_staging_file_without_copy(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    writer = store.new_staging_file()
    writer.write(b"abc" * 1000)
    writer.finish()
    inode = os.stat(writer.name).st_ino
    info = store.put_file(Path(writer.name), dataset_offset=3, take=True)
    assert not Path(writer.name).exists()
    assert store.path_for(info.key).stat().st_ino == inode
    assert _files(store.staging) == []


def test_fsync_before_rename_then_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    events: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def rename(src: str | Path, dst: str | Path) -> None:
        events.append("rename")
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    source = tmp_path / "in"
    source.write_bytes(b"data")
    store.put_file(source, dataset_offset=0, take=False)
    assert events.index("fsync-file") < events.index("rename")
    assert events[-1] == "fsync-dir"


def test_disk_full_raises_out_of_resources_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    monkeypatch.setattr(filesystem, "_write_all", disk_full)
    source = tmp_path / "in"
    source.write_bytes(b"data")
    with pytest.raises(OutOfResources, match="No space left"):
        store.put_file(source, dataset_offset=0, take=False)
    assert _files(store.root) == []
    assert source.exists()


def test_staging_writer_remembers_write_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    monkeypatch.setattr(filesystem, "_write_all", disk_full)
    writer = store.new_staging_file()
    writer.write(b"x" * (writer.BUFFER + 1))  # spills, fails, does not raise
    writer.write(b"more")
    with pytest.raises(OutOfResources):
        writer.finish()
    writer.discard()
    assert _files(store.staging) == []


def test_delete_and_clean_staging(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    source = tmp_path / "in"
    source.write_bytes(b"data")
    info = store.put_file(source, dataset_offset=0, take=False)
    store.delete(info.key)
    store.delete(info.key)
    assert not store.exists(info.key)
    stale = store.staging / "old.part"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    fresh = store.staging / "new.part"
    fresh.write_bytes(b"x")
    assert store.clean_staging() == 1
    assert not stale.exists() and fresh.exists()


def test_clean_staging_after_a_crash(tmp_path: Path) -> None:
    """A dead process's folder is emptied at once; another host's files only when old."""
    store = FilesystemBlobStore(tmp_path / "store")
    exited = subprocess.Popen(["true"])
    exited.wait()
    dead = store.staging_root / f"{socket.gethostname()}.{exited.pid}"
    dead.mkdir(parents=True)
    (dead / "half.dcm").write_bytes(b"x")
    other_host = store.staging_root / "otherhost.123"
    other_host.mkdir()
    (other_host / "recent.dcm").write_bytes(b"x")
    old = other_host / "old.dcm"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    alive = store.staging_root / f"{socket.gethostname()}.{os.getppid()}"
    alive.mkdir()  # a live process's (empty) folder is left alone
    assert store.clean_staging() == 2
    assert not dead.exists()
    assert alive.is_dir()
    assert [p.name for p in other_host.iterdir()] == ["recent.dcm"]
    assert not store.staging.exists()  # made on first use only
    writer = store.new_staging_file()  # recreated when removed behind the store's back
    writer.discard()


def test_memory_twin_has_same_contract(tmp_path: Path) -> None:
    store = MemoryBlobStore()
    source = tmp_path / "in"
    source.write_bytes(b"MMDD")
    info = store.put_file(source, dataset_offset=2, take=True)
    assert not source.exists()
    assert info.content_sha256 == hashlib.sha256(b"DD").hexdigest()
    with store.open(info.key) as stream:
        assert stream.read() == b"MMDD"
    assert store.digests(info.key)[0] == info.sha256
    store.delete(info.key)
    assert not store.exists(info.key)


def test_checksums_computed_while_receiving_match_the_file(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    writer = store.new_staging_file()
    writer.track(4)
    writer.write(b"META")
    writer.write(b"D" * (writer.BUFFER * 2 + 7))
    writer.finish()
    data = Path(writer.name).read_bytes()
    info = store.put_file(Path(writer.name), dataset_offset=4, take=True, hashed=writer.hasher)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.content_sha256 == hashlib.sha256(data[4:]).hexdigest()
    assert store.digests(info.key)[0] == info.sha256
