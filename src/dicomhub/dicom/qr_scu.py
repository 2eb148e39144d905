"""dicomhub as a Query/Retrieve user: C-ECHO, C-FIND, C-MOVE and C-GET against a peer.

Used by the command line (``dicomhub echo/find/retrieve``) and meant for the web API too.
What a C-GET brings back is received into the blob store's spool and goes through the one
ingest path, like any C-STORE; a C-MOVE brings it through dicomhub's own listener.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode
from pynetdicom.presentation import StoragePresentationContexts

from dicomhub.config import PeerConfig, Settings
from dicomhub.conformance import (
    ALL_TRANSFER_SYNTAXES,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    UNCOMPRESSED,
    VERIFICATION,
)
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.engine.filemeta import part10_prefix
from dicomhub.dicom.scu import Association, Message, OutboundContext, Sink
from dicomhub.errors import CannotUnderstand, DicomhubError, PeerRefused, PeerUnavailable
from dicomhub.header import KnownMeta
from dicomhub.ingest import Ingest, IngestRequest
from dicomhub.storage.filesystem import FilesystemBlobStore
from dicomhub.storage.spool import Spool

LOG = logging.getLogger("dicomhub.dicom")
_SYNTAXES = [str(t) for t in UNCOMPRESSED if str(t) != "1.2.840.10008.1.2.2"]
_GET_STORAGE_CLASSES = 120
"""Storage SOP classes proposed for C-GET (a context each; PS3.8 allows 128 in all)."""


@dataclass(frozen=True)
class RetrieveOutcome:
    """The final C-MOVE / C-GET response as the user sees it."""

    status: int
    completed: int
    failed: int
    warning: int
    failed_uids: list[str]
    comment: str = ""

    @property
    def ok(self) -> bool:
        """Every sub-operation succeeded."""
        return self.status == 0x0000


Progress = Callable[[int, int], None]
"""Called with (done, total) after each pending response."""


def echo(settings: Settings, peer: PeerConfig) -> tuple[int, float]:
    """C-ECHO; the status and the round trip in seconds (association included)."""
    started = time.monotonic()
    with Association(settings, peer, [(str(VERIFICATION), _SYNTAXES)]) as association:
        status = association.echo()
    return status, time.monotonic() - started


def find(
    settings: Settings, peer: PeerConfig, identifier: Dataset, *, patient_root: bool = False
) -> Iterator[Dataset]:
    """C-FIND; yields the matches; raises ``PeerRefused`` for a failure status."""
    sop_class = str(PATIENT_ROOT_FIND if patient_root else STUDY_ROOT_FIND)
    with Association(settings, peer, [(sop_class, _SYNTAXES)]) as association:
        context = association.context_for(sop_class)
        data = _encode(identifier, context)
        _, message_id = association.request(sop_class, cmd.C_FIND_RQ, data, Priority=0)
        for message in association.responses(message_id):
            if message.status in {0xFF00, 0xFF01}:
                if message.data:
                    yield _decode(message.data, context)
                continue
            _raise_for(message, f"C-FIND on {peer.ae_title}")


def move(
    settings: Settings,
    peer: PeerConfig,
    identifier: Dataset,
    destination: str,
    *,
    patient_root: bool = False,
    progress: Progress | None = None,
) -> RetrieveOutcome:
    """C-MOVE to ``destination`` (an AE title the peer knows); the final counts."""
    sop_class = str(PATIENT_ROOT_MOVE if patient_root else STUDY_ROOT_MOVE)
    with Association(settings, peer, [(sop_class, _SYNTAXES)]) as association:
        context = association.context_for(sop_class)
        _, message_id = association.request(
            sop_class,
            cmd.C_MOVE_RQ,
            _encode(identifier, context),
            Priority=0,
            MoveDestination=destination,
        )
        return _follow(association, message_id, context, progress)


def get(
    settings: Settings,
    peer: PeerConfig,
    identifier: Dataset,
    ingest: Ingest,
    blobs: FilesystemBlobStore,
    *,
    patient_root: bool = False,
    progress: Progress | None = None,
) -> RetrieveOutcome:
    """C-GET: the peer sends the instances on this association; each is ingested."""
    sop_class = str(PATIENT_ROOT_GET if patient_root else STUDY_ROOT_GET)
    storage = [str(c.abstract_syntax) for c in StoragePresentationContexts]
    storage = storage[:_GET_STORAGE_CLASSES]
    # Explicit VR Little Endian first: what most archives store, so it arrives unchanged.
    everything = [str(t) for t in ALL_TRANSFER_SYNTAXES if t != UNCOMPRESSED[1]]
    everything.insert(0, str(UNCOMPRESSED[1]))
    contexts = [(sop_class, _SYNTAXES), *((uid, everything) for uid in storage)]
    with Association(settings, peer, contexts, scp_roles=storage) as association:
        context = association.context_for(sop_class)
        _, message_id = association.request(
            sop_class, cmd.C_GET_RQ, _encode(identifier, context), Priority=0
        )

        def sink(command: dict[str, Any], on: OutboundContext) -> Sink:
            return IngestSink(ingest, blobs, command, on, peer.ae_title)

        return _follow(association, message_id, context, progress, sink)


def _follow(
    association: Association,
    message_id: int,
    context: OutboundContext,
    progress: Progress | None,
    sink: Callable[[dict[str, Any], OutboundContext], Sink] | None = None,
) -> RetrieveOutcome:
    final: Message | None = None
    for message in association.responses(message_id, sink):
        field_ = int(message.command.get("CommandField") or 0)
        if not field_ & 0x8000:
            if field_ != cmd.C_STORE_RQ:
                association.answer(message, 0x0211)  # only C-STOREs belong in a retrieve
            continue
        counts = [
            int(message.command.get(k) or 0)
            for k in (
                "NumberOfRemainingSuboperations",
                "NumberOfCompletedSuboperations",
                "NumberOfFailedSuboperations",
                "NumberOfWarningSuboperations",
            )
        ]
        if message.status in {0xFF00, 0xFF01}:
            if progress is not None:
                progress(sum(counts[1:]), sum(counts))
            continue
        final = message
    if final is None:
        raise PeerUnavailable(f"{association} ended the retrieve without a final response")
    failed_uids: list[str] = []
    if final.data:
        try:
            identifier = _decode(final.data, context)
            failed = identifier.get("FailedSOPInstanceUIDList", [])
            failed_uids = [str(u) for u in ([failed] if isinstance(failed, str) else failed)]
        except CannotUnderstand:
            LOG.warning("the final response's identifier from %s cannot be read", association)
    command = final.command
    return RetrieveOutcome(
        final.status,
        int(command.get("NumberOfCompletedSuboperations") or 0),
        int(command.get("NumberOfFailedSuboperations") or 0),
        int(command.get("NumberOfWarningSuboperations") or 0),
        failed_uids,
        str(command.get("ErrorComment") or ""),
    )


class IngestSink:
    """A C-STORE data set the peer sends during a C-GET: spooled, then ingested."""

    def __init__(
        self,
        ingest: Ingest,
        blobs: FilesystemBlobStore,
        command: dict[str, Any],
        context: OutboundContext,
        calling_ae_title: str,
    ) -> None:
        self.ingest = ingest
        self.command = command
        self.context = context
        self.calling_ae_title = calling_ae_title
        prefix = part10_prefix(
            sop_class_uid=str(command.get("AffectedSOPClassUID") or ""),
            sop_instance_uid=str(command.get("AffectedSOPInstanceUID") or ""),
            transfer_syntax_uid=str(context.transfer_syntax),
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION,
            source_ae_title=calling_ae_title,
        )
        self.spool = Spool(blobs, prefix)

    def write(self, data: memoryview) -> None:
        """Append a fragment."""
        self.spool.write(data)

    def finish(self) -> tuple[int, str]:
        """Ingest the object; the C-STORE-RSP status."""
        uid = str(self.command.get("AffectedSOPInstanceUID") or "")
        try:
            spooled = self.spool.finish()
            result = self.ingest.store(
                IngestRequest(
                    path=spooled.path,
                    take=True,
                    source="C-GET",
                    calling_ae_title=self.calling_ae_title,
                    hashed=spooled.hashed,
                    expected_sop_class_uid=str(self.command.get("AffectedSOPClassUID") or ""),
                    expected_sop_instance_uid=uid,
                    content=spooled.content,
                    known=KnownMeta(self.spool.prefix_length, str(self.context.transfer_syntax)),
                )
            )
        except DicomhubError as exc:
            LOG.warning("C-GET sub-operation %s refused: %s", uid, exc)
            return exc.dimse_status, exc.error_comment
        finally:
            self.spool.discard()
        LOG.info("C-GET sub-operation %s: %s", uid, result.status.value)
        return 0x0000, ""

    def discard(self) -> None:
        """Drop a half-received object."""
        self.spool.discard()


def _encode(identifier: Dataset, context: OutboundContext) -> bytes:
    syntax = context.transfer_syntax
    data = encode(identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    if data is None:
        raise CannotUnderstand("the query identifier cannot be encoded")
    return bytes(data)


def _decode(data: bytes, context: OutboundContext) -> Dataset:
    syntax = context.transfer_syntax
    try:
        return decode(
            BytesIO(data), syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
        )
    except Exception as exc:
        raise CannotUnderstand(f"a response identifier cannot be decoded: {exc}") from exc


def _raise_for(message: Message, what: str) -> None:
    """Nothing for a final Success; ``PeerRefused`` with the peer's status otherwise."""
    if message.status == 0x0000:
        return
    comment = str(message.command.get("ErrorComment") or "")
    raise PeerRefused(f"{what} failed: 0x{message.status:04X} {comment}".strip(), message.status)
