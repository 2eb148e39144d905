"""Filesystem blob store: temp file, fsync, rename, directory fsync (ARCHITECTURE 1.2-1.3).

Blobs live at ``root/<key[0:6]>/<key[6:8]>/<key>`` where ``key`` is chosen here, never a name
that arrived over the wire: 12 hex digits of the time in milliseconds then 20 random ones.
Objects received together share a folder (a new one about every minute), so storing does not
pay a folder creation and its fsyncs per object.  Files are first written in
``root/.staging/<host>.<pid>`` (same filesystem, so the final ``rename`` is atomic; one folder
per process, so a restarted process can tell a dead one's leftovers) and only become visible
under their key once their content is on stable storage; the directory entry is made durable
by an fsync of the directory.

Objects received in memory (up to a few megabytes) go instead, a batch at a time, into this
process's append-only segment file (``segments.py``): one ``fdatasync`` for the batch and no
file creation per object.  Keys tell the two apart, so readers need not care.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from dicomhub.errors import OutOfResources
from dicomhub.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    DualHasher,
    InMemoryObject,
    digests_of,
    fsync_dir,
    hash_stream,
)
from dicomhub.storage.flush import Flushing
from dicomhub.storage.segments import SEGMENTS, Appending, SegmentStore, is_segment_key

LOG = logging.getLogger(__name__)
STAGING = ".staging"
_STARTED = time.time()
_RESOURCE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def new_key() -> str:
    """A blob key: time in milliseconds (12 hex digits) and 80 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (the single write primitive of the store)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _resource_error(exc: OSError, what: str) -> OutOfResources:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return OutOfResources(f"storage {what} failed: {reason}")


class StagingWriter:
    """A buffered, unnamed-to-the-peer file in the staging area that a receiver writes into.

    A write failure (disk full) is remembered instead of raised, so the receiver can finish
    reading the message and answer with a precise status; ``finish`` raises it.
    """

    BUFFER = 256 * 1024

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        self._buffer = bytearray()
        self.error: OSError | None = None
        self.size = 0
        self.hasher: DualHasher | None = None
        self._lock = threading.Lock()

    def track(self, dataset_offset: int) -> None:
        """Hash everything written from now on (call before the first write), so the store
        need not read the file again; the data set starts at ``dataset_offset``."""
        self.hasher = DualHasher(dataset_offset)

    @property
    def file(self) -> StagingWriter:
        """Compatibility with ``NamedTemporaryFile().file``."""
        return self

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; spill to disk when the buffer is full."""
        if self.error is None:
            self._buffer += data
            self.size += len(data)
            if self.hasher is not None:
                self.hasher.update(data)
            if len(self._buffer) >= self.BUFFER:
                self._spill()
        return len(data)

    def flush(self) -> None:
        """Buffered on purpose: data reaches the file at ``finish``/full buffer only."""

    def _spill(self) -> None:
        # Swap rather than clear: a failed write's traceback may still hold a view of it.
        data, self._buffer = self._buffer, bytearray()
        try:
            with self._lock:
                if self._fd is None or self.error is not None:
                    return
                _write_all(self._fd, data)
        except OSError as exc:
            self.error = exc
            LOG.warning("writing staging file %s failed: %s", self.path.name, exc)

    def finish(self) -> None:
        """Write what is buffered and close; raise ``OutOfResources`` if any write failed."""
        self._spill()
        self.close()
        if self.error is not None:
            raise _resource_error(self.error, "write")

    def close(self) -> None:
        """Close the descriptor (idempotent, safe from two threads)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        """Close and remove the staging file."""
        self.close()
        self.path.unlink(missing_ok=True)


class _CheckedFlush:
    """A segment flush whose failure is said as a ``DicomhubError``."""

    def __init__(self, flushing: Flushing) -> None:
        self._flushing = flushing

    def wait(self) -> None:
        """Wait for the flush; ``OutOfResources`` when the disk failed it."""
        try:
            self._flushing.wait()
        except OSError as exc:
            raise _resource_error(exc, "flush") from exc


class PendingObjects:
    """Objects placed in a segment but not yet durable.

    ``flush`` writes them and starts flushing them; then, once the flush is back, ``release``
    keeps them, or ``abort`` cuts them off the segment.  No other objects are written in
    between, so the caller may index the objects while they are being flushed, and commit
    once the flush is back: the disk work and the index work overlap, and the order
    blob-then-index still holds.
    """

    def __init__(self, infos: list[BlobInfo], appending: Appending) -> None:
        self.infos = infos
        self._appending = appending
        self._written = False

    def write(self) -> None:
        """Write them, not yet durably (``sync`` does it if nobody did)."""
        if not self._written:
            try:
                self._appending.write()
            except OSError as exc:
                raise _resource_error(exc, "write") from exc
            self._written = True

    def sync(self) -> None:
        """Write and flush to stable storage; ``OutOfResources`` when the disk fails it."""
        self.flush().wait()

    def flush(self) -> Flushing:
        """Write them if nobody did, and start flushing them (``wait`` on the result, from
        any thread); ``OutOfResources`` when the disk fails either."""
        self.write()
        try:
            return _CheckedFlush(self._appending.start_sync())
        except OSError as exc:
            raise _resource_error(exc, "flush") from exc

    def release(self) -> None:
        """Keep the objects (after a successful ``sync``)."""
        self._appending.release()

    def abort(self) -> None:
        """Remove the objects again."""
        self._appending.abort()


class FilesystemBlobStore:
    """Blob store on a local (or mounted) filesystem.

    Creating one has no side effect on disk (folders are made when first written to), so a
    tool may open a store just to read it.
    """

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root.absolute()
        self.staging_root = self.root / STAGING
        self.staging = self.staging_root / f"{socket.gethostname()}.{os.getpid()}"
        self.fsync = fsync
        self._durable_dirs: set[Path] = set()
        self._dirs_lock = threading.Lock()
        self.segments = SegmentStore(self.root, new_key, fsync=fsync)

    def close(self) -> None:
        """Release this process's segment and remove its (empty) staging folder."""
        self.segments.close()
        with contextlib.suppress(OSError):
            self.staging.rmdir()

    # Receiving --------------------------------------------------------------------------

    def new_staging_file(self, suffix: str = ".part") -> StagingWriter:
        """Open a new staging file for a receiver to stream into."""
        path = self.staging / f"{uuid.uuid4().hex}{suffix}"
        try:
            return StagingWriter(path)
        except FileNotFoundError:  # made on first use (or removed behind our back)
            self.staging.mkdir(parents=True, exist_ok=True)
            return StagingWriter(path)

    def put_objects(self, objects: Sequence[InMemoryObject]) -> list[BlobInfo]:
        """Append in-memory objects to this process's segment with one ``fdatasync``."""
        pending = self.begin_objects(objects)
        try:
            pending.sync()
        except BaseException:
            pending.abort()
            raise
        pending.release()
        return pending.infos

    def begin_objects(self, objects: Sequence[InMemoryObject]) -> PendingObjects:
        """Place in-memory objects in this process's segment, their keys known, to be written
        and flushed by ``PendingObjects.sync`` (from any thread: another thread can index
        them meanwhile); ``OutOfResources`` when a new segment cannot be started."""
        try:
            appending = self.segments.begin(
                [([o.data], bytes.fromhex(o.content_sha256), o.dataset_offset) for o in objects]
            )
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                raise _resource_error(exc, "write") from exc
            raise
        infos = [o.info(key) for key, o in zip(appending.keys, objects, strict=True)]
        return PendingObjects(infos, appending)

    def path_for(self, key: str) -> Path:
        """Where the blob ``key`` lives."""
        if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[:6] / key[6:8] / key

    def put_file(
        self, path: Path, *, dataset_offset: int, take: bool, hashed: DualHasher | None = None
    ) -> BlobInfo:
        """Make ``path``'s content a durable blob (see ``BlobStore.put_file``).

        A staging file of this store is moved into place; anything else is copied (and the
        source removed afterwards when ``take``).  Nothing is left behind on failure.
        """
        key = new_key()
        final = self.path_for(key)
        in_staging = take and path.parent.resolve() == self.staging.resolve()
        if not in_staging:
            self.staging.mkdir(parents=True, exist_ok=True)
        staged = path if in_staging else self.staging / f"{key}.copy"
        renamed = False
        try:
            if in_staging:
                with path.open("rb") as src:
                    if hashed is not None and hashed.offset == dataset_offset:
                        hasher = hashed
                    else:
                        hasher = hash_stream(src, dataset_offset)
                    if self.fsync:
                        os.fsync(src.fileno())
            else:
                hasher = self._copy_into(path, staged, dataset_offset)
            self._make_dirs(final.parent)
            os.rename(staged, final)
            renamed = True
            if self.fsync:
                fsync_dir(final.parent)
        except OSError as exc:
            (final if renamed else staged).unlink(missing_ok=True)
            if exc.errno in _RESOURCE_ERRNOS:
                raise _resource_error(exc, "write") from exc
            raise
        if take and not in_staging:
            path.unlink(missing_ok=True)
        return hasher.info(key)

    def _copy_into(self, source: Path, staged: Path, offset: int) -> DualHasher:
        hasher = DualHasher(offset)
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            with source.open("rb") as src:
                while chunk := src.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    _write_all(fd, chunk)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return hasher

    def _make_dirs(self, directory: Path) -> None:
        """Make ``directory`` and its parent exist durably before a blob is renamed into it.

        A folder counts as durable only once the fsync of its parent has returned, so a thread
        that finds it made by another thread still waits for that (under the lock).
        """
        if directory in self._durable_dirs:
            return
        with self._dirs_lock:
            for part in (directory.parent, directory):
                if part in self._durable_dirs:
                    continue
                part.mkdir(exist_ok=True)
                if self.fsync:
                    fsync_dir(part.parent)
                if len(self._durable_dirs) > 4096:  # keys are time-ordered: old ones are cold
                    self._durable_dirs.clear()
                self._durable_dirs.add(part)

    # Reading and housekeeping -----------------------------------------------------------

    def open(self, key: str) -> BinaryIO:
        """Open a blob for reading."""
        if is_segment_key(key):
            return self.segments.open(key)
        return self.path_for(key).open("rb")

    def delete(self, key: str) -> None:
        """Remove a blob and make the removal durable."""
        if is_segment_key(key):
            self.segments.delete([key])
            return
        path = self.path_for(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        if self.fsync:
            fsync_dir(path.parent)

    def exists(self, key: str) -> bool:
        """Whether the blob is present."""
        if is_segment_key(key):
            return self.segments.exists(key)
        return self.path_for(key).is_file()

    def all_keys(self) -> Iterator[str]:
        """Every key under the root (staging excluded)."""
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if first.name in (STAGING, SEGMENTS) or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if second.is_dir():
                    for blob in sorted(second.iterdir()):
                        yield blob.name
        yield from self.segments.all_keys()

    def digests(self, key: str) -> tuple[str, str]:
        """Re-compute a blob's SHA-256 and its data set's from disk."""
        with self.open(key) as stream:
            return digests_of(stream)

    def staged_files(self) -> list[Path]:
        """Files in the staging area (of every process): transfers in progress or left over."""
        if not self.staging_root.is_dir():
            return []
        return sorted(p for p in self.staging_root.rglob("*") if p.is_file())

    def clean_staging(self, older_than: float = 86400.0) -> int:
        """Remove what interrupted transfers left in the staging area; returns how many files.

        Folders of processes of this host that are gone are emptied at once; anything older
        than ``older_than`` seconds (another host's crash) goes too.
        """
        removed = 0
        if not self.staging_root.is_dir():
            return 0
        limit = time.time() - older_than
        host = socket.gethostname()
        for folder in self.staging_root.iterdir():
            name, _, pid = folder.name.rpartition(".")
            dead = name == host and pid.isdigit() and not process_alive(int(pid))
            folder_limit = limit
            if folder == self.staging:
                # Our pid may be a dead process's, reused: what predates our start is stale.
                dead, folder_limit = False, max(limit, _STARTED)
            entries = list(folder.iterdir()) if folder.is_dir() else [folder]
            for entry in entries:
                try:
                    if dead or entry.stat().st_mtime < folder_limit:
                        entry.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
            if dead and folder.is_dir():
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if removed:
            LOG.info("removed %d staging files left by interrupted transfers", removed)
        return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
