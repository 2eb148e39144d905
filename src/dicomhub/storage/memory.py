"""In-memory twin of the filesystem blob store, for unit tests of code above the store."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from dicomhub.storage import flush
from dicomhub.storage.base import BlobInfo, DualHasher, InMemoryObject, digests_of
from dicomhub.storage.flush import Flushing


class _Pending:
    def __init__(self, store: MemoryBlobStore, infos: list[BlobInfo]) -> None:
        self.infos = infos
        self._store = store

    def write(self) -> None:
        """Nothing to write: the copies are held already."""

    def flush(self) -> Flushing:
        """Nothing to flush in memory: already done."""
        return flush.done()

    def release(self) -> None:
        """The blobs stay."""

    def abort(self) -> None:
        for info in self.infos:
            self._store.delete(info.key)


class MemoryBlobStore:
    """Keeps blobs in a dict; same contract as ``FilesystemBlobStore`` minus durability."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_file(
        self, path: Path, *, dataset_offset: int, take: bool, hashed: DualHasher | None = None
    ) -> BlobInfo:
        """Read ``path`` into memory (and remove it when ``take``)."""
        data = path.read_bytes()
        if take:
            path.unlink()
        key = uuid.uuid4().hex
        self.blobs[key] = data
        hasher = DualHasher(dataset_offset)
        hasher.update(data)
        return hasher.info(key)

    def put_objects(self, objects: Sequence[InMemoryObject]) -> list[BlobInfo]:
        """Keep copies of the objects."""
        infos = []
        for obj in objects:
            key = uuid.uuid4().hex
            self.blobs[key] = bytes(obj.data)
            infos.append(obj.info(key))
        return infos

    def begin_objects(self, objects: Sequence[InMemoryObject]) -> _Pending:
        """Keep copies of the objects (nothing to flush)."""
        return _Pending(self, self.put_objects(objects))

    def open(self, key: str) -> BinaryIO:
        """A read-only stream of the blob."""
        try:
            return io.BytesIO(self.blobs[key])
        except KeyError:
            raise FileNotFoundError(key) from None

    def delete(self, key: str) -> None:
        """Forget a blob."""
        self.blobs.pop(key, None)

    def exists(self, key: str) -> bool:
        """Whether the blob is held."""
        return key in self.blobs

    def all_keys(self) -> Iterator[str]:
        """All held keys."""
        return iter(list(self.blobs))

    def digests(self, key: str) -> tuple[str, str]:
        """Checksums of a held blob and of its data set."""
        return digests_of(io.BytesIO(self.blobs[key]))
