"""Spool: small objects stay in memory, large ones move to a staging file with checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dicomhub.storage.filesystem import FilesystemBlobStore
from dicomhub.storage.spool import Spool


def test_small_object_stays_in_memory(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    spool = Spool(store, b"PREFIX", memory_limit=100)
    spool.write(b"data" * 5)
    spool.write(memoryview(b"data" * 5))
    received = spool.finish()
    assert received.content == bytearray(b"PREFIX" + b"data" * 10)
    assert received.path is None
    assert received.content_sha256 == hashlib.sha256(b"data" * 10).hexdigest()
    assert store.staged_files() == []


def test_large_object_moves_to_a_staging_file(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    spool = Spool(store, b"PREFIX", memory_limit=100)
    chunks = [bytes([i]) * 60 for i in range(5)]
    for chunk in chunks:
        spool.write(memoryview(chunk))
    assert spool.in_memory == 0
    assert spool.size == 6 + 300
    received = spool.finish()
    assert received.content is None and received.path is not None
    assert received.path.read_bytes() == b"PREFIX" + b"".join(chunks)
    assert received.hashed is not None
    assert received.hashed.content.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    spool.discard()
    assert store.staged_files() == []
