"""Storage SOP Classes (C-STORE) SCP: a thin translation onto the ingest path."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from dicomhub.config import Service
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.errors import DicomhubError
from dicomhub.header import KnownMeta
from dicomhub.ingest import Ingest, IngestRequest, Prepared, StoreResult
from dicomhub.storage.base import DualHasher


@dataclass(frozen=True)
class StoreRequest:
    """A received C-STORE: the command's UIDs and the object, in a staging file or in memory."""

    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    path: Path | None
    hashed: DualHasher | None = None
    content: bytearray | None = None
    known: KnownMeta | None = None
    """Set when the receiver wrote the file meta itself."""
    content_sha256: str | None = None
    """The data set's SHA-256 of an object in memory, computed while it was received."""
    content_digest: Future[str] | None = None
    """The same, being computed by another thread."""


class StoreService:
    """Stores what C-STORE delivers; exceptions carry the failure status."""

    def __init__(self, ingest: Ingest, access: AccessPolicy) -> None:
        self.ingest = ingest
        self.access = access

    def store(self, association: AssociationInfo, request: StoreRequest) -> StoreResult:
        """Ingest the received object (a staging file is always consumed, stored or not)."""
        return self.ingest.store(self._checked(association, request))

    def prepare(self, association: AssociationInfo, request: StoreRequest) -> Prepared:
        """The first half of ``store`` for an object received in memory (parse and check,
        no waiting: it runs in the event loop, which leaves any hashing to the committing
        thread); ``commit`` finishes it."""
        return self.ingest.prepare(self._checked(association, request), hash_later=True)

    def commit(
        self, prepared: Prepared, done: Callable[[StoreResult | DicomhubError], None]
    ) -> None:
        """The second half: ``done`` is called with the outcome from the committing thread."""
        self.ingest.commit(prepared, done)

    def _checked(self, association: AssociationInfo, request: StoreRequest) -> IngestRequest:
        try:
            self.access.check_service(association, Service.STORAGE)
        except Exception:
            if request.path is not None:
                request.path.unlink(missing_ok=True)
            raise
        return IngestRequest(
            path=request.path,
            take=True,
            source="C-STORE",
            calling_ae_title=association.calling_ae_title,
            called_ae_title=association.called_ae_title,
            expected_sop_class_uid=request.affected_sop_class_uid,
            expected_sop_instance_uid=request.affected_sop_instance_uid,
            hashed=request.hashed,
            content=request.content,
            known=request.known,
            content_sha256=request.content_sha256,
            content_digest=request.content_digest,
        )
