"""THE store pipeline: parse header -> checks -> blob.put -> index.add -> change log.

Every entry point that brings an object into the archive (C-STORE, ``dicomhub import``, and
later STOW-RS, uploads, retrieves and print-to-archive) calls ``Ingest.store``.  The blob is
durable before the index row is committed, and the caller answers only after ``store``
returns; if indexing fails the blob is removed again.

Duplicate policy: an object whose SOP Instance UID is already stored with the same data set
bytes (file meta may differ) is acknowledged without a second copy; with different bytes it is
rejected (``duplicate_policy = "reject"``, the default) or replaces the stored copy
(``"replace"``, logged and recorded in the change log).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from dicomhub.config import DuplicatePolicy
from dicomhub.errors import DicomhubError, DuplicateSOPInstance, IndexFailure
from dicomhub.header import check_identity, header_json, read_header
from dicomhub.index.repository import AddOutcome, IndexRepository
from dicomhub.storage.base import BlobStore, DualHasher, hash_stream

LOG = logging.getLogger(__name__)


class StoreStatus(StrEnum):
    """What happened to an object that was accepted."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REPLACED = "replaced"


@dataclass(frozen=True)
class IngestRequest:
    """An object to store and where it came from."""

    path: Path
    take: bool
    """``path`` is a staging file of the blob store: moved into place, removed on failure."""
    source: str
    calling_ae_title: str = ""
    hashed: DualHasher | None = None
    """Checksums computed while the staging file was received, if any."""
    expected_sop_class_uid: str | None = None
    expected_sop_instance_uid: str | None = None


@dataclass(frozen=True)
class StoreResult:
    """An accepted object."""

    status: StoreStatus
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    transfer_syntax_uid: str
    size: int


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

    def store(self, request: IngestRequest) -> StoreResult:
        """Store one object durably; raise a ``DicomhubError`` saying why it was refused."""
        try:
            return self._store(request)
        finally:
            if request.take:
                request.path.unlink(missing_ok=True)

    def _store(self, request: IngestRequest) -> StoreResult:
        parsed = read_header(request.path)
        dataset = parsed.dataset
        check_identity(dataset, request.expected_sop_class_uid, request.expected_sop_instance_uid)
        header = header_json(dataset)
        sop_uid = str(dataset.SOPInstanceUID)

        def result(status: StoreStatus) -> StoreResult:
            return StoreResult(
                status,
                str(dataset.SOPClassUID),
                sop_uid,
                str(dataset.StudyInstanceUID),
                parsed.transfer_syntax_uid,
                parsed.file_size,
            )

        if not request.take:
            # A file of the user's: look before copying (re-imports are common).
            existing = self.repository.get_instance(sop_uid)
            if existing is not None:
                with request.path.open("rb") as stream:
                    content = hash_stream(stream, parsed.dataset_offset).content.hexdigest()
                if content == existing.content_sha256:
                    return result(StoreStatus.DUPLICATE)
                if self.duplicate_policy == "reject":
                    raise DuplicateSOPInstance(f"already stored with different content: {sop_uid}")

        blob = self.blobs.put_file(
            request.path,
            dataset_offset=parsed.dataset_offset,
            take=request.take,
            hashed=request.hashed,
        )
        try:
            added = self.repository.add_instance(
                dataset,
                header,
                blob,
                parsed.transfer_syntax_uid,
                source=request.source,
                calling_ae_title=request.calling_ae_title,
                replace=self.duplicate_policy == "replace",
            )
        except DicomhubError:
            self.blobs.delete(blob.key)
            raise
        except Exception as exc:
            self.blobs.delete(blob.key)
            LOG.exception("indexing %s failed; its blob was removed", sop_uid)
            raise IndexFailure(f"index error: {type(exc).__name__}") from exc

        if added.outcome is AddOutcome.DUPLICATE:
            self.blobs.delete(blob.key)
            return result(StoreStatus.DUPLICATE)
        if added.obsolete_blob_key:
            self.blobs.delete(added.obsolete_blob_key)
            LOG.warning(
                "SOP instance %s replaced by a copy with different content (from %s %s)",
                sop_uid,
                request.source,
                request.calling_ae_title or "-",
            )
            return result(StoreStatus.REPLACED)
        return result(StoreStatus.STORED)
