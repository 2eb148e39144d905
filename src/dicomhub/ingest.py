"""THE store pipeline: parse header -> checks -> blob.put -> index.add -> change log.

Every entry point that brings an object into the archive (C-STORE, ``dicomhub import``, and
later STOW-RS, uploads, retrieves and print-to-archive) calls ``Ingest.store``.  The blob is
durable before the index row is committed, and the caller answers only after ``store``
returns; if indexing fails the blob is removed again.

``store`` runs in two steps.  The caller's thread parses and checks the header, computes the
checksums and, for an object in a file, makes that file a durable blob.  Then the object
joins the group commit (``group_commit.py``): every object that is ready at that moment is
written in one batch, those held in memory appended to the segment store with one
``fdatasync``, and indexed in one transaction.  Concurrent associations thus share their
flushes, and a lone one pays exactly one per object.

Duplicate policy: an object whose SOP Instance UID is already stored with the same data set
bytes (file meta may differ) is acknowledged without a second copy; with different bytes it is
rejected (``duplicate_policy = "reject"``, the default) or replaces the stored copy
(``"replace"``, logged and recorded in the change log).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Connection

from dicomhub.config import DuplicatePolicy
from dicomhub.errors import DicomhubError, DuplicateSOPInstance, IndexFailure
from dicomhub.group_commit import GroupCommitter
from dicomhub.header import KnownMeta, ParsedHeader, check_identity, read_header
from dicomhub.index import positions
from dicomhub.index.repository import AddOutcome, AddResult, IndexRepository, NewInstance
from dicomhub.storage.base import (
    BlobInfo,
    BlobStore,
    DualHasher,
    InMemoryObject,
    PendingBlobs,
    hash_stream,
)
from dicomhub.storage.flush import Flushing
from dicomhub.storage.segments import SegmentKey, is_segment_key

LOG = logging.getLogger(__name__)
POSITION_INTERVAL = 1.0
"""Seconds between two records of a segment's indexed position."""


class StoreStatus(StrEnum):
    """What happened to an object that was accepted."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


@dataclass(frozen=True)
class IngestRequest:
    """An object to store and where it came from."""

    path: Path | None
    take: bool
    """``path`` is a staging file of the blob store: moved into place, removed on failure."""
    source: str
    calling_ae_title: str = ""
    called_ae_title: str = ""
    """The AE title the sender addressed (forwarding rules may select on it)."""
    hashed: DualHasher | None = None
    """Checksums computed while the staging file was received, if any."""
    expected_sop_class_uid: str | None = None
    expected_sop_instance_uid: str | None = None
    content: bytes | bytearray | None = None
    """The whole Part 10 object, when it was received into memory (then ``path`` is None)."""
    known: KnownMeta | None = None
    """The file meta's facts, when the receiver wrote it (spares parsing it again)."""
    content_sha256: str | None = None
    """The SHA-256 of ``content``'s data set (after ``known.dataset_offset``), when the
    receiver computed it while the object arrived."""
    content_digest: Future[str] | None = None
    """The same, being computed by another thread (a large object's receiver started it)."""


@dataclass(frozen=True)
class StoreResult:
    """An accepted object."""

    status: StoreStatus
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    size: int


@dataclass
class Prepared:
    """An object checked and ready for the group commit."""

    request: IngestRequest
    parsed: ParsedHeader
    blob: BlobInfo | None
    """Already durable (a file); None for an in-memory object, written by the batch."""
    memory: InMemoryObject | None = None
    digest: Future[str] | None = None
    """The data set's SHA-256 of ``memory`` on its way (``IngestRequest.content_digest``)."""

    @property
    def known(self) -> bool:
        """Already stored with the same data set: nothing to write (a re-imported file)."""
        return self.blob is None and self.memory is None

    def result(self, status: StoreStatus) -> StoreResult:
        parsed = self.parsed
        return StoreResult(
            status,
            parsed.text("SOPClassUID"),
            parsed.text("SOPInstanceUID"),
            parsed.text("StudyInstanceUID"),
            parsed.transfer_syntax_uid,
            parsed.file_size,
        )


class Ingest:
    """The one ingest path, with its dependencies built once at start-up."""

    def __init__(
        self,
        repository: IndexRepository,
        blobs: BlobStore,
        duplicate_policy: DuplicatePolicy = "reject",
    ) -> None:
        self.repository = repository
        self.blobs = blobs
        self.duplicate_policy = duplicate_policy
        self._position_recorded = 0.0
        self.committer: GroupCommitter[Prepared, StoreResult | DicomhubError] = GroupCommitter(
            self._commit
        )

    def store(self, request: IngestRequest) -> StoreResult:
        """Store one object durably; raise a ``DicomhubError`` saying why it was refused."""
        prepared = self.prepare(request)
        if prepared.known:
            return prepared.result(StoreStatus.DUPLICATE)
        outcome = self.committer.run(prepared)
        if isinstance(outcome, DicomhubError):
            raise outcome
        return outcome

    def commit(
        self, prepared: Prepared, done: Callable[[StoreResult | DicomhubError], None]
    ) -> None:
        """Step 2 of ``store`` for a caller that must not wait (an event loop): ``done`` is
        called with the outcome from the thread that committed the batch (or at once, for an
        object already stored)."""
        if prepared.known:
            done(prepared.result(StoreStatus.DUPLICATE))
            return

        def finished(outcome: StoreResult | DicomhubError | Exception) -> None:
            if isinstance(outcome, StoreResult | DicomhubError):
                done(outcome)
            else:
                LOG.error(
                    "committing %s failed: %s", prepared.parsed.text("SOPInstanceUID"), outcome
                )
                done(IndexFailure(f"index error: {type(outcome).__name__}"))

        self.committer.submit(prepared, finished)

    # Step 1, in the caller's thread -------------------------------------------------------

    def prepare(self, request: IngestRequest, *, hash_later: bool = False) -> Prepared:
        """Step 1 of ``store``: parse and check the header, compute checksums, and make an
        object held in a file a durable blob (a staging file is consumed, stored or not).
        ``DicomhubError`` says why the object is refused.  With ``hash_later`` an object in
        memory is hashed by the thread that commits it, not by the caller (an event loop
        that has other associations to serve)."""
        try:
            return self._prepare(request, hash_later)
        finally:
            if request.take and request.path is not None:
                request.path.unlink(missing_ok=True)

    def _prepare(self, request: IngestRequest, hash_later: bool = False) -> Prepared:
        if request.content is not None:
            parsed = read_header(request.content, request.known)
        elif request.path is not None:
            parsed = read_header(request.path, request.known)
        else:
            raise ValueError("an ingest request needs a path or content")
        check_identity(parsed, request.expected_sop_class_uid, request.expected_sop_instance_uid)
        parsed.header  # noqa: B018 - an undecodable value is refused here, before storing
        prepared = Prepared(request, parsed, None)
        if request.content is not None:
            known = request.known
            if (
                request.content_sha256 is not None
                and known is not None
                and known.dataset_offset == parsed.dataset_offset
            ):
                prepared.memory = InMemoryObject(
                    request.content, parsed.dataset_offset, request.content_sha256
                )
            elif hash_later or request.content_digest is not None:
                prepared.memory = InMemoryObject(request.content, parsed.dataset_offset, "")
                if known is not None and known.dataset_offset == parsed.dataset_offset:
                    prepared.digest = request.content_digest
            else:
                prepared.memory = InMemoryObject.hashed(request.content, parsed.dataset_offset)
            return prepared
        assert request.path is not None
        if not request.take and self._known_copy(request.path, parsed):
            return prepared  # neither blob nor memory: a duplicate, nothing to store
        prepared.blob = self.blobs.put_file(
            request.path,
            dataset_offset=parsed.dataset_offset,
            take=request.take,
            hashed=request.hashed,
        )
        return prepared

    def _known_copy(self, path: Path, parsed: ParsedHeader) -> bool:
        """A file of the user's: look before copying (re-imports are common)."""
        sop_uid = parsed.text("SOPInstanceUID")
        existing = self.repository.get_instance(sop_uid)
        if existing is None:
            return False
        with path.open("rb") as stream:
            content = hash_stream(stream, parsed.dataset_offset).content.hexdigest()
        if content == existing.content_sha256:
            return True
        if self.duplicate_policy == "reject":
            raise DuplicateSOPInstance(f"already stored with different content: {sop_uid}")
        return False

    # Step 2, in the batch leader's thread, for a batch ------------------------------------

    def _commit(self, batch: Sequence[Prepared]) -> list[StoreResult | DicomhubError]:
        """Write the in-memory objects, index the batch while they are flushed, and commit
        the index once the flush is back (so no row ever points at a blob not durable)."""
        outcomes: dict[int, StoreResult | DicomhubError] = {}
        in_memory = [p for p in batch if p.memory is not None]
        for p in in_memory:
            assert p.memory is not None
            p.memory = p.memory.with_checksum(p.digest)  # hashlib lets the event loop run
        pending: PendingBlobs | None = None
        if in_memory:
            try:
                pending = self.blobs.begin_objects([p.memory for p in in_memory if p.memory])
            except DicomhubError as exc:
                LOG.error("storing %d objects failed: %s", len(in_memory), exc)
                for p in in_memory:
                    outcomes[id(p)] = exc
            else:
                pending = self._write(pending, in_memory, outcomes)
        ready = [p for p in batch if id(p) not in outcomes and p.blob is not None]
        if pending is None:
            indexed = self._index(ready)
        else:
            flushing: Flushing | None = None
            try:
                flushing = pending.flush()
                indexed = self._index(ready, before_commit=flushing.wait)
                flushing.wait()
            except DicomhubError as exc:  # the flush failed: nothing of the batch is kept
                pending.abort()
                LOG.error("flushing %d objects failed: %s", len(in_memory), exc)
                return [outcomes.get(id(p), exc) for p in batch]
            except BaseException:
                if flushing is not None:
                    with contextlib.suppress(Exception):
                        flushing.wait()  # never cut the segment under a running flush
                pending.abort()
                raise
            pending.release()
        for p, added in zip(ready, indexed, strict=True):
            outcomes[id(p)] = self._settle(p, added)
        return [outcomes[id(p)] for p in batch]

    def _write(
        self,
        pending: PendingBlobs,
        in_memory: list[Prepared],
        outcomes: dict[int, StoreResult | DicomhubError],
    ) -> PendingBlobs | None:
        """Write the placed objects and give them their blobs; None when the write failed."""
        try:
            pending.write()
        except DicomhubError as exc:
            pending.abort()
            LOG.error("storing %d objects failed: %s", len(in_memory), exc)
            for p in in_memory:
                outcomes[id(p)] = exc
            return None
        for p, blob in zip(in_memory, pending.infos, strict=True):
            p.blob = blob
        return pending

    def _index(
        self, ready: list[Prepared], before_commit: Callable[[], object] | None = None
    ) -> list[AddResult | DicomhubError]:
        """Index the batch in one transaction; on its failure remove every blob.
        ``before_commit`` runs last in the transaction (it waits for the blobs' flush and
        raises if it failed)."""
        if not ready:
            return []
        replace = self.duplicate_policy == "replace"
        items = []
        for p in ready:
            assert p.blob is not None
            items.append(
                NewInstance(
                    p.parsed,
                    p.blob,
                    p.request.source,
                    p.request.calling_ae_title,
                    replace,
                    p.request.called_ae_title,
                )
            )
        durable, position = self._log_position(ready)

        def also(conn: Connection) -> None:
            if position is not None:
                position(conn)
            if before_commit is not None:
                before_commit()

        try:
            return self.repository.add_instances(items, durable=durable, also=also)
        except Exception as exc:
            for p in ready:
                self._remove_blob(p)
            if before_commit is not None:
                with contextlib.suppress(DicomhubError):  # the caller hears of the flush
                    before_commit()
            if isinstance(exc, DicomhubError):
                return [exc] * len(ready)
            LOG.exception("indexing %d objects failed; their blobs were removed", len(ready))
            return [IndexFailure(f"index error: {type(exc).__name__}")] * len(ready)

    def _log_position(
        self, ready: list[Prepared]
    ) -> tuple[bool, Callable[[Connection], None] | None]:
        """Whether the index commit must reach the disk itself, and the segment position to
        record with it.

        Objects appended to a segment are a durable redo log of their own: when every object
        of the batch is one, the commit need not wait for the disk, because ``recovery``
        re-indexes from the segment whatever a machine crash takes from the index.  A batch
        with a file blob has no such record and commits durably.  The position is recorded
        at most once a second: recovery skips records it finds indexed, so a lagging position
        only costs it a few look-ups.
        """
        keys = [p.blob.key for p in ready if p.blob is not None and p.memory is not None]
        logged = [key for key in keys if is_segment_key(key)]
        if not logged:
            return True, None
        durable = len(logged) != len(ready)
        now = time.monotonic()
        if now - self._position_recorded < POSITION_INTERVAL and not durable:
            return durable, None
        self._position_recorded = now
        last = max((SegmentKey.parse(key) for key in logged), key=lambda k: k.offset)

        def advance(conn: Connection) -> None:
            positions.advance(conn, last.segment, last.offset + last.length)

        return durable, advance

    def _settle(self, p: Prepared, added: AddResult | DicomhubError) -> StoreResult | DicomhubError:
        if isinstance(added, DicomhubError):
            self._remove_blob(p)
            return added
        if added.outcome is AddOutcome.DUPLICATE:
            self._remove_blob(p)
            return p.result(StoreStatus.DUPLICATE)
        if added.obsolete_blob_key:
            self.blobs.delete(added.obsolete_blob_key)
            LOG.warning(
                "SOP instance %s replaced by a copy with different content (from %s %s)",
                p.parsed.text("SOPInstanceUID"),
                p.request.source,
                p.request.calling_ae_title or "-",
            )
            return p.result(StoreStatus.REPLACED)
        return p.result(StoreStatus.STORED)

    def _remove_blob(self, p: Prepared) -> None:
        if p.blob is not None:
            try:
                self.blobs.delete(p.blob.key)
            except OSError as exc:
                LOG.error("removing blob %s failed: %s", p.blob.key, exc)
