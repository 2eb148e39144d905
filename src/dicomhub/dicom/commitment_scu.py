"""Storage Commitment Push Model SCU (PS3.4 J): dicomhub asks a peer to commit to instances.

The transaction is recorded (``requested``) before the N-ACTION leaves, so a report that comes
on any association, at any time, finds it.  dicomhub proposes the Storage Commitment SOP class
with both roles (SCP/SCU role selection): SCU for the N-ACTION, SCP so that the peer may send
its N-EVENT-REPORT on the same association (not offered when there is no wait for it).  A
report is answered and recorded whether it comes before the N-ACTION response (some SCPs do
that) or after it.  After a successful N-ACTION response the association stays open up to
``wait`` seconds for the report, less when it came, on this association or on dicomhub's
listener (the database says so).  A report the peer sends later, on a new association to
dicomhub's listener, is recorded there; the transaction stays ``requested`` until then
(``timed_out`` after ``commitment_timeout``).

A refused request (N-ACTION failure status) and a peer that cannot be reached fail the
transaction at once, with the reason in its events, and raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.dsutils import decode

from dicomhub.config import PeerConfig, Settings
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.scu import Association, Message
from dicomhub.dicom.services.storage_commitment import (
    REQUEST_ACTION,
    STORAGE_COMMITMENT,
    STORAGE_COMMITMENT_INSTANCE,
    MissingCommitmentAttribute,
    StorageCommitmentService,
    parse_report,
)
from dicomhub.errors import CannotUnderstand, DicomhubError, PeerUnavailable
from dicomhub.index.commitments import Role, State, Transaction

__all__ = ["CommitmentRefused", "CommitmentUnreachable", "request_commitment"]
LOG = logging.getLogger("dicomhub.dicom")
SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
POLL = 0.25
"""Seconds between two looks at the database while waiting for the report (a report that
arrives on dicomhub's listener ends the wait)."""
UNRECOGNIZED_OPERATION = 0x0211
_WARNINGS = {0x0001, 0x0107, 0x0116}
"""N-ACTION warning statuses besides 0xBxxx (PS3.7 C): the request was accepted."""


def accepted(status: int) -> bool:
    """Whether an N-ACTION response status means the request was accepted."""
    return status == 0x0000 or status in _WARNINGS or 0xB000 <= status <= 0xBFFF


class CommitmentUnreachable(PeerUnavailable):
    """The request did not reach the peer (or the association was lost before its answer);
    the transaction is ``failed``."""

    def __init__(self, message: str, transaction: Transaction) -> None:
        super().__init__(message)
        self.transaction = transaction


class CommitmentRefused(DicomhubError):
    """The peer answered the N-ACTION with a failure status; the transaction is ``failed``."""

    def __init__(self, message: str, transaction: Transaction, status: int) -> None:
        super().__init__(message)
        self.transaction = transaction
        self.status = status


def request_dataset(transaction_uid: str, references: Sequence[tuple[str, str]]) -> Dataset:
    """The Action Information of a Request Storage Commitment (PS3.4 J.3.2.1.1)."""
    data = Dataset()
    data.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_instance in references:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    data.ReferencedSOPSequence = items
    return data


def request_commitment(
    settings: Settings,
    peer: PeerConfig,
    references: Sequence[tuple[str, str]],
    service: StorageCommitmentService,
    *,
    wait: float,
) -> Transaction:
    """Ask ``peer`` to commit to ``references`` ((SOP Class UID, SOP Instance UID) pairs).

    ``wait``: seconds to keep the association open for the report after the N-ACTION
    response (0: release at once; the SCP role is then not offered).  Returns the
    transaction as it stands when the association ends: ``committed`` or ``failed`` when
    the report came on it, ``requested`` when it is still to come.  Raises
    ``CommitmentUnreachable`` (a ``PeerUnavailable``) or ``CommitmentRefused``, the
    transaction then being ``failed``.
    """
    if not references:
        raise ValueError("a storage commitment request needs at least one instance")
    commitments = service.commitments
    uid = str(generate_uid())
    transaction_id = commitments.record(
        Role.SCU, uid, peer.ae_title, settings.ae_title, list(references)
    )
    target = f"{peer.ae_title}@{peer.host}:{peer.port}"
    exchange = _Exchange(service, transaction_id, uid)
    # Without a wait the report cannot come on this association: the SCP role is then not
    # offered, so that the peer does not try to send it here while dicomhub releases.
    association = Association(
        settings,
        peer,
        [(STORAGE_COMMITMENT, SYNTAXES)],
        both_roles=[STORAGE_COMMITMENT] if wait > 0 else [],
    )
    try:
        association.open()
    except PeerUnavailable as exc:
        raise exchange.unreachable(f"storage commitment not requested: {exc}") from exc
    try:
        status, comment = exchange.request(association, references)
        if not accepted(status):
            association.release()
            detail = f"{target} refused the request with status 0x{status:04X}"
            if comment:
                detail += f" ({comment})"
            raise exchange.refused(detail, status)
        LOG.info(
            "storage commitment %s requested of %s for %d instances",
            uid,
            target,
            len(references),
        )
        exchange.wait_for_report(association, wait)
    except PeerUnavailable as exc:
        association.abort()
        if not exchange.answered and not exchange.reported:
            raise exchange.unreachable(f"storage commitment not requested: {exc}") from exc
        LOG.info(
            "storage commitment %s: association with %s ended before the report (%s); "
            "the report is expected on dicomhub's listener",
            uid,
            target,
            exc,
        )
    except BaseException:
        association.abort()
        raise
    else:
        association.release()
    transaction = commitments.get(transaction_id)
    assert transaction is not None
    if transaction.state is State.REQUESTED:
        LOG.info(
            "storage commitment %s: no report from %s yet; it will be recorded when it "
            "arrives on dicomhub's listener",
            uid,
            target,
        )
    return transaction


class _Exchange:
    """One request's messages on its association, and their records."""

    def __init__(
        self, service: StorageCommitmentService, transaction_id: int, transaction_uid: str
    ) -> None:
        self.service = service
        self.transaction_id = transaction_id
        self.transaction_uid = transaction_uid
        self.answered = False
        """The peer answered the N-ACTION with a success (or warning) status."""
        self.reported = False
        """The report of this transaction came on the association."""

    def _current(self) -> Transaction:
        transaction = self.service.commitments.get(self.transaction_id)
        assert transaction is not None
        return transaction

    def _fail(self, event: str, detail: str) -> Transaction:
        self.service.commitments.finish(self.transaction_id, State.FAILED, event, detail)
        LOG.warning("storage commitment %s failed: %s", self.transaction_uid, detail)
        return self._current()

    def unreachable(self, detail: str) -> CommitmentUnreachable:
        """Fail the transaction: the request did not get through."""
        return CommitmentUnreachable(detail, self._fail("not-requested", detail))

    def refused(self, detail: str, status: int) -> CommitmentRefused:
        """Fail the transaction: the peer refused the request."""
        return CommitmentRefused(detail, self._fail("refused", detail), status)

    def request(
        self, association: Association, references: Sequence[tuple[str, str]]
    ) -> tuple[int, str]:
        """Send the N-ACTION and read until its response, answering a report that comes
        first; the response's (Status, ErrorComment)."""
        data = request_dataset(self.transaction_uid, references)
        _, message_id = association.n_action(
            STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE, REQUEST_ACTION, data
        )
        for message in association.responses(message_id):
            field_ = message.command.get("CommandField")
            if field_ == cmd.N_ACTION_RSP:
                status = message.status
                self.answered = accepted(status)
                return status, str(message.command.get("ErrorComment") or "")
            self.on_request(association, message)
        raise PeerUnavailable(f"{association} did not answer the N-ACTION")

    def wait_for_report(self, association: Association, wait: float) -> None:
        """Keep the association open up to ``wait`` seconds for the report; stop early when
        it came (on this association or, recorded by dicomhub's listener, on another)."""
        deadline = time.monotonic() + wait
        while not self.reported:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if association.poll(min(POLL, left)):
                self.on_request(association, association.receive())
            elif self._current().state is not State.REQUESTED:
                return

    def on_request(self, association: Association, message: Message) -> None:
        """Answer what the peer sends on the association: a report is recorded; a stray
        response is ignored; any other request is refused (0x0211)."""
        field_ = message.command.get("CommandField")
        if not isinstance(field_, int) or field_ & 0x8000:
            LOG.warning(
                "%s sent an unexpected response (command 0x%04X); ignored", association, field_ or 0
            )
            return
        if field_ != cmd.N_EVENT_REPORT_RQ or (
            message.command.get("AffectedSOPClassUID") != STORAGE_COMMITMENT
        ):
            LOG.warning(
                "%s sent command 0x%04X during a storage commitment request; refused",
                association,
                field_,
            )
            association.answer(message, UNRECOGNIZED_OPERATION)
            return
        event_type = int(message.command.get("EventTypeID") or 0)
        try:
            self.record(association, event_type, _decode(message))
        except DicomhubError as exc:
            LOG.warning(
                "storage commitment report from %s refused: 0x%04X %s",
                association,
                exc.dimse_status,
                exc,
            )
            association.answer(message, exc.dimse_status, ErrorComment=exc.error_comment)
            return
        association.answer(message, 0x0000, EventTypeID=event_type or None)

    def record(self, association: Association, event_type: int, data: Dataset) -> None:
        """Record a report received on the association (this transaction's, or an earlier
        one's the peer delivers now)."""
        uid, items = parse_report(data)
        commitments = self.service.commitments
        transaction = (
            self._current() if uid == self.transaction_uid else commitments.find(Role.SCU, uid)
        )
        if transaction is None:
            LOG.warning(
                "storage commitment report from %s for unknown transaction %s ignored",
                association,
                uid,
            )
            return
        self.service.record_report(transaction, event_type, items, str(association))
        if uid == self.transaction_uid:
            self.reported = True


def _decode(message: Message) -> Dataset:
    if message.data is None:
        raise MissingCommitmentAttribute("the report has no Event Information")
    syntax = message.context.transfer_syntax
    try:
        return decode(
            BytesIO(message.data),
            syntax.is_implicit_VR,
            syntax.is_little_endian,
            syntax.is_deflated,
        )
    except Exception as exc:
        raise CannotUnderstand(f"the report cannot be decoded: {exc}") from exc
