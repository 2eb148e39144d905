"""Query/Retrieve MOVE and GET SCP (Patient Root and Study Root C-MOVE / C-GET).

The service selects the instances and runs the sub-operations through a ``send`` function:
for C-MOVE a new association to the destination peer (``dicom.scu``), for C-GET the engine's
own association.  It yields the responses: one pending response per sub-operation with the
Remaining / Completed / Failed / Warning counts, then the final status (PS3.4 C.4.2.1.5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from dicomhub.config import PeerConfig, Service, Settings
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.dicom.scu import StoreSCU
from dicomhub.dicom.sending import SubOperation
from dicomhub.dicom.status import CANCELLED, PENDING, SUCCESS
from dicomhub.errors import DicomhubError, MoveDestinationUnknown, PeerUnavailable
from dicomhub.index.query import InformationModel
from dicomhub.index.repository import StoredInstance
from dicomhub.index.retrieve import RetrieveLocator
from dicomhub.storage.base import BlobStore

LOG = logging.getLogger("dicomhub.dicom")
SUB_OPERATIONS_FAILED = 0xB000
UNABLE_TO_PERFORM = 0xA702

Send = Callable[[StoredInstance], SubOperation]


@dataclass
class RetrieveResponse:
    """One C-MOVE-RSP / C-GET-RSP: status, counts and, on failures, the failed UIDs."""

    status: int
    remaining: int | None
    completed: int
    failed: int
    warning: int
    failed_uids: list[str] = field(default_factory=list)
    comment: str = ""

    @property
    def identifier(self) -> Dataset | None:
        """The response identifier: FailedSOPInstanceUIDList when something failed."""
        if self.status == PENDING or not self.failed_uids:
            return None
        identifier = Dataset()
        identifier.FailedSOPInstanceUIDList = list(self.failed_uids)
        return identifier


@dataclass
class _Counts:
    total: int
    final: int = SUCCESS
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.warning

    def response(self, status: int, *, remaining: bool, comment: str = "") -> RetrieveResponse:
        if status != PENDING:
            self.final = status
        return RetrieveResponse(
            status,
            self.total - self.done if remaining else None,
            self.completed,
            self.failed,
            self.warning,
            list(self.failed_uids),
            comment,
        )


class RetrieveService:
    """C-MOVE and C-GET over the index and the blob store; engine-independent."""

    def __init__(
        self,
        locator: RetrieveLocator,
        access: AccessPolicy,
        settings: Settings,
        blobs: BlobStore,
    ) -> None:
        self.locator = locator
        self.access = access
        self.settings = settings
        self.blobs = blobs

    def select(
        self, association: AssociationInfo, identifier: Dataset, model: InformationModel
    ) -> list[StoredInstance]:
        """Check the caller's right to retrieve and resolve the identifier."""
        self.access.check_service(association, Service.RETRIEVE)
        return self.locator.instances(identifier, model)

    def destination(self, ae_title: str) -> PeerConfig:
        """The declared peer a C-MOVE sends to; 0xA801 when there is none."""
        peer = self.access.peer_for(ae_title)
        if peer is None:
            raise MoveDestinationUnknown(
                f"move destination {ae_title.strip()!r} is not a declared peer; "
                "declare it with `dicomhub peers add` or a [peers.NAME] table"
            )
        return peer

    def move(
        self,
        association: AssociationInfo,
        identifier: Dataset,
        model: InformationModel,
        destination_ae: str,
        message_id: int,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[RetrieveResponse]:
        """C-MOVE: sub-operations on a new association to the destination peer."""
        peer = self.destination(destination_ae)
        selected = self.select(association, identifier, model)
        started = time.monotonic()
        counts = _Counts(len(selected))
        originator = (association.calling_ae_title, message_id)
        try:
            if not selected:
                yield counts.response(SUCCESS, remaining=False)
            else:
                with StoreSCU(
                    self.settings, peer, self.blobs, selected, move_originator=originator
                ) as scu:
                    yield from self._run(selected, scu.send, counts, is_cancelled)
        except PeerUnavailable as exc:
            LOG.warning("C-MOVE from %s to %s: %s", association, peer.ae_title, exc.message)
            _fail_rest(counts, selected)
            yield counts.response(UNABLE_TO_PERFORM, remaining=False, comment=exc.error_comment)
        _log_summary(f"C-MOVE from {association} to {peer.ae_title}", counts, started)

    def get(
        self,
        association: AssociationInfo,
        identifier: Dataset,
        model: InformationModel,
        send: Send,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[RetrieveResponse]:
        """C-GET: sub-operations through ``send`` on the requesting association."""
        selected = self.select(association, identifier, model)
        started = time.monotonic()
        counts = _Counts(len(selected))
        try:
            yield from self._run(selected, send, counts, is_cancelled)
        except PeerUnavailable as exc:
            LOG.warning("C-GET from %s: %s", association, exc.message)
            _fail_rest(counts, selected)
            yield counts.response(UNABLE_TO_PERFORM, remaining=False, comment=exc.error_comment)
        _log_summary(f"C-GET from {association}", counts, started)

    @staticmethod
    def _run(
        selected: Sequence[StoredInstance],
        send: Send,
        counts: _Counts,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[RetrieveResponse]:
        for instance in selected:
            if is_cancelled():
                LOG.info(
                    "retrieve cancelled after %d of %d sub-operations", counts.done, counts.total
                )
                yield counts.response(CANCELLED, remaining=True)
                return
            try:
                outcome = send(instance)
            except PeerUnavailable:
                raise
            except DicomhubError as exc:
                outcome = SubOperation(instance.sop_instance_uid, exc.dimse_status, str(exc))
            if outcome.status == 0x0000:
                counts.completed += 1
            elif outcome.warning:
                counts.warning += 1
            else:
                counts.failed += 1
                counts.failed_uids.append(instance.sop_instance_uid)
                LOG.warning(
                    "sub-operation for %s failed: 0x%04X %s",
                    instance.sop_instance_uid,
                    outcome.status,
                    outcome.comment,
                )
            if counts.done < counts.total:
                yield counts.response(PENDING, remaining=True)
        final = SUB_OPERATIONS_FAILED if counts.failed or counts.warning else SUCCESS
        yield counts.response(final, remaining=False)


def _log_summary(what: str, counts: _Counts, started: float) -> None:
    outcome = {CANCELLED: "cancelled", UNABLE_TO_PERFORM: "failed"}.get(counts.final, "done")
    LOG.info(
        "%s %s (0x%04X): %d completed, %d failed, %d warnings, %d not attempted in %.1f s",
        what,
        outcome,
        counts.final,
        counts.completed,
        counts.failed,
        counts.warning,
        counts.total - counts.done,
        time.monotonic() - started,
    )


def _fail_rest(counts: _Counts, selected: Sequence[StoredInstance]) -> None:
    """After a lost association, every instance not yet sent counts as failed."""
    for instance in selected[counts.done :]:
        counts.failed += 1
        counts.failed_uids.append(instance.sop_instance_uid)
