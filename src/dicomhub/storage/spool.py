"""Where a receiver puts an object while it arrives: memory first, a staging file if large.

Most objects are a few hundred kilobytes; keeping them in memory until they are complete
spares a file creation per object and lets the ingest path append them to the segment store
in batches.  Once an object grows past ``memory_limit`` its bytes so far move to a staging
file of the blob store and the rest streams there, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from dicomhub.storage.base import DualHasher
from dicomhub.storage.filesystem import FilesystemBlobStore, StagingWriter

MEMORY_LIMIT = 2 << 20
"""Objects up to this size are received into memory (default)."""


@dataclass(frozen=True)
class Spooled:
    """A completely received object: in memory (``content``, with the SHA-256 of its data set
    computed while it arrived) or in a staging file (with both its checksums)."""

    content: bytearray | None
    path: Path | None
    hashed: DualHasher | None
    content_sha256: str | None = None


class Spool:
    """One object being received; starts with its Part 10 prefix (preamble and file meta)."""

    def __init__(
        self,
        blobs: FilesystemBlobStore,
        prefix: bytes,
        memory_limit: int = MEMORY_LIMIT,
        *,
        hash_content: bool = True,
    ) -> None:
        self._blobs = blobs
        self.prefix_length = len(prefix)
        self._memory: bytearray | None = bytearray(prefix)
        self._file: StagingWriter | None = None
        self._limit = memory_limit
        self._content = hashlib.sha256() if hash_content else None
        """The data set's SHA-256, fed as fragments arrive when ``hash_content`` (a lone
        association's event loop waits for the next PDU anyway): the object is checksummed
        by the time it is complete.  A busy loop leaves it to the thread that stores."""

    @property
    def size(self) -> int:
        """Bytes received so far, prefix included."""
        if self._memory is not None:
            return len(self._memory)
        assert self._file is not None
        return self._file.size

    @property
    def in_memory(self) -> int:
        """Bytes held in memory."""
        return len(self._memory) if self._memory is not None else 0

    def write(self, data: bytes | memoryview) -> None:
        """Append a fragment; move to a staging file when the object outgrows memory."""
        if self._memory is not None:
            self._memory += data
            if self._content is not None:
                self._content.update(data)
            if len(self._memory) > self._limit:
                self._spill()
            return
        assert self._file is not None
        self._file.write(data)

    def _spill(self) -> None:
        assert self._memory is not None
        writer = self._blobs.new_staging_file(".dcm")
        writer.track(self.prefix_length)
        memory, self._memory = self._memory, None
        writer.write(memory)
        self._file = writer

    def finish(self) -> Spooled:
        """The complete object (a staging file is flushed and closed; errors raised here)."""
        if self._memory is not None:
            digest = self._content.hexdigest() if self._content is not None else None
            return Spooled(self._memory, None, None, digest)
        assert self._file is not None
        self._file.finish()
        return Spooled(None, self._file.path, self._file.hasher)

    def discard(self) -> None:
        """Drop what was received (removes a staging file)."""
        self._memory = None
        if self._file is not None:
            self._file.discard()
