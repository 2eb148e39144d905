"""Storage Commitment Push Model SCP (PS3.4 J): N-ACTION in, N-EVENT-REPORT out.

A request is validated and recorded in the database before it is answered; each referenced
instance is then checked: indexed with the same SOP class, its blob present, its SHA-256
computed again and equal to the one recorded at storage.  Only then is it reported as
committed; otherwise it is in the Failed SOP Sequence with its FailureReason.  With the
``forwarded`` policy an instance is committed only once it was also delivered to the
configured number of forwarding destinations.

The report goes on the requesting association when the requester took the SCP role for it
(SCP/SCU role selection) and is still there; otherwise ``commitment_reporter`` sends it on a
new association to the requester's declared address, with retries.  Incoming reports (for
commitments dicomhub requested as SCU) are recorded here too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom.dataset import Dataset

from dicomhub.config import Service, Settings
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.errors import DicomhubError
from dicomhub.header import is_valid_uid
from dicomhub.index.commitments import (
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    CommitmentRepository,
    Item,
    Outcome,
    Role,
    State,
    Transaction,
)
from dicomhub.index.forward_queue import ForwardQueue
from dicomhub.index.repository import IndexRepository, matches
from dicomhub.storage.base import BlobStore

LOG = logging.getLogger("dicomhub.dicom")
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_ACTION = 1
EVENT_ALL_COMMITTED = 1
EVENT_SOME_FAILED = 2


class InvalidCommitmentRequest(DicomhubError):
    """A Storage Commitment request without a valid Transaction UID or references."""

    dimse_status = 0x0115
    http_status = 400
    summary = "failure: invalid argument value"


class MissingCommitmentAttribute(InvalidCommitmentRequest):
    """A Storage Commitment request lacks a required attribute."""

    dimse_status = 0x0120
    summary = "failure: missing attribute"


class NoSuchAction(DicomhubError):
    """An N-ACTION with an Action Type ID the SOP class does not define."""

    dimse_status = 0x0123
    http_status = 400
    summary = "failure: no such action"


class CannotReport(DicomhubError):
    """The requester can be reached neither on its association nor at a declared address."""

    dimse_status = 0x0110
    http_status = 409
    summary = "failure: processing failure (requester unreachable for the report)"


@dataclass(frozen=True)
class CommitmentRequest:
    """A validated Request Storage Commitment."""

    transaction_uid: str
    references: list[tuple[str, str]]


def parse_request(action_type: int, data: Dataset) -> CommitmentRequest:
    """Validate an N-ACTION's Action Type ID and Action Information (PS3.4 J.3.2.1.1)."""
    if action_type != REQUEST_ACTION:
        raise NoSuchAction(f"Action Type ID {action_type} is not defined (1: request commitment)")
    uid = str(data.get("TransactionUID", "") or "").strip()
    if not uid:
        raise MissingCommitmentAttribute("TransactionUID (0008,1195) is missing")
    if not is_valid_uid(uid):
        raise InvalidCommitmentRequest(f"TransactionUID {uid!r} is not a valid UID")
    sequence = data.get("ReferencedSOPSequence")
    if not sequence:
        raise MissingCommitmentAttribute("ReferencedSOPSequence (0008,1199) is missing or empty")
    references: list[tuple[str, str]] = []
    for number, item in enumerate(sequence, start=1):
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "").strip()
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not is_valid_uid(sop_class) or not is_valid_uid(sop_instance):
            raise InvalidCommitmentRequest(
                f"ReferencedSOPSequence item {number} lacks valid SOP Class/Instance UIDs"
            )
        references.append((sop_class, sop_instance))
    return CommitmentRequest(uid, references)


def report_dataset(transaction: Transaction) -> tuple[int, Dataset]:
    """The Event Type ID and Event Information of the report (PS3.4 J.3.3.1)."""
    data = Dataset()
    data.TransactionUID = transaction.transaction_uid
    committed, failed = transaction.committed, transaction.failed
    if committed:
        data.ReferencedSOPSequence = [_reference(i) for i in committed]
    if failed:
        items = []
        for item in failed:
            reference = _reference(item)
            reference.FailureReason = item.failure_reason or PROCESSING_FAILURE
            items.append(reference)
        data.FailedSOPSequence = items
    return (EVENT_SOME_FAILED if failed else EVENT_ALL_COMMITTED), data


def _reference(item: Item) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = item.sop_class_uid
    reference.ReferencedSOPInstanceUID = item.sop_instance_uid
    return reference


def parse_report(data: Dataset) -> tuple[str, list[Item]]:
    """The Transaction UID and per-instance outcomes of a received report."""
    uid = str(data.get("TransactionUID", "") or "").strip()
    if not uid:
        raise MissingCommitmentAttribute("the report has no TransactionUID")
    items = [
        Item(
            str(ref.get("ReferencedSOPClassUID", "")),
            str(ref.get("ReferencedSOPInstanceUID", "")),
            Outcome.COMMITTED,
        )
        for ref in data.get("ReferencedSOPSequence", []) or []
    ]
    for ref in data.get("FailedSOPSequence", []) or []:
        reason = ref.get("FailureReason")
        items.append(
            Item(
                str(ref.get("ReferencedSOPClassUID", "")),
                str(ref.get("ReferencedSOPInstanceUID", "")),
                Outcome.FAILED,
                int(reason) if reason is not None else None,
                "reported failed by the peer",
            )
        )
    return uid, items


class StorageCommitmentService:
    """Records requests, checks instances, builds and records reports."""

    def __init__(
        self,
        commitments: CommitmentRepository,
        index: IndexRepository,
        blobs: BlobStore,
        access: AccessPolicy,
        settings: Settings,
        forward_queue: ForwardQueue | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        self.commitments = commitments
        self.index = index
        self.blobs = blobs
        self.access = access
        self.settings = settings
        self.forward_queue = forward_queue
        self.wake = wake or threading.Event()
        """Set when a transaction is waiting for the reporter."""

    # SCP: requests ------------------------------------------------------------------------

    def request(
        self,
        association: AssociationInfo,
        action_type: int,
        data: Dataset,
        *,
        report_here: bool,
    ) -> Transaction:
        """Validate and record a request; raise a ``DicomhubError`` to refuse it.

        ``report_here``: the requester took the SCP role on this association, so the report
        can go back on it.  Otherwise the requester must be a declared peer to be reached.
        """
        self.access.check_service(association, Service.STORAGE_COMMITMENT)
        request = parse_request(action_type, data)
        caller = association.calling_ae_title
        if not report_here and self.access.peer_for(caller) is None:
            raise CannotReport(
                f"AE {caller} is not a declared peer and did not accept the report on this "
                "association; declare it with `dicomhub peers add`"
            )
        transaction_id = self.commitments.record(
            Role.SCP,
            request.transaction_uid,
            caller,
            association.called_ae_title,
            request.references,
            hold=self.settings.dimse_timeout + 5 if report_here else 0.0,
        )
        LOG.info(
            "storage commitment %s requested by %s for %d instances",
            request.transaction_uid,
            association,
            len(request.references),
        )
        if not report_here:
            self.wake.set()
        transaction = self.commitments.get(transaction_id)
        assert transaction is not None
        return transaction

    def check(self, transaction: Transaction) -> Transaction:
        """Check every referenced instance and record the results.

        The transaction becomes ``checked`` when every item has an outcome; with the
        ``forwarded`` policy an item waits (stays pending) until its deliveries are done or
        ``commitment_forward_wait`` has passed.
        """
        results = [self._check(item) for item in transaction.items]
        waiting = [r for r in results if r.outcome is Outcome.PENDING]
        if waiting:
            age = (datetime.now(UTC) - transaction.created_at).total_seconds()
            if age < self.settings.commitment_forward_wait:
                return transaction
            results = [
                r.settled(
                    Outcome.FAILED,
                    PROCESSING_FAILURE,
                    f"not delivered to {self.settings.commitment_forward_destinations} "
                    f"forwarding destinations within {self.settings.commitment_forward_wait:.0f} s",
                )
                if r.outcome is Outcome.PENDING
                else r
                for r in results
            ]
        self.commitments.set_results(transaction.id, results, State.CHECKED)
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        for item in failed:
            LOG.warning(
                "storage commitment %s: %s not committed (0x%04X): %s",
                transaction.transaction_uid,
                item.sop_instance_uid,
                item.failure_reason or PROCESSING_FAILURE,
                item.detail,
            )
        LOG.info(
            "storage commitment %s checked: %d committed, %d failed",
            transaction.transaction_uid,
            len(results) - len(failed),
            len(failed),
        )
        checked = self.commitments.get(transaction.id)
        assert checked is not None
        return checked

    def _check(self, item: Item) -> Item:
        stored = self.index.get_instance(item.sop_instance_uid)

        def failed(reason: int, detail: str) -> Item:
            return item.settled(Outcome.FAILED, reason, detail)

        if stored is None:
            return failed(NO_SUCH_OBJECT_INSTANCE, "not stored")
        if stored.sop_class_uid != item.sop_class_uid:
            return failed(CLASS_INSTANCE_CONFLICT, f"stored with SOP class {stored.sop_class_uid}")
        try:
            if not self.blobs.exists(stored.blob_key):
                LOG.error("blob %s of %s is missing", stored.blob_key, item.sop_instance_uid)
                return failed(PROCESSING_FAILURE, "stored object missing")
            digests = self.blobs.digests(stored.blob_key)
        except OSError as exc:
            LOG.error("blob %s of %s unreadable: %s", stored.blob_key, item.sop_instance_uid, exc)
            return failed(PROCESSING_FAILURE, f"stored object unreadable: {exc.strerror or exc}")
        if not matches(digests, stored):
            LOG.error(
                "blob %s of %s does not match its recorded SHA-256: damaged on disk",
                stored.blob_key,
                item.sop_instance_uid,
            )
            return failed(PROCESSING_FAILURE, "stored object damaged (checksum mismatch)")
        if self.settings.commitment_policy == "forwarded" and self.forward_queue is not None:
            wanted = self.settings.commitment_forward_destinations
            if self.forward_queue.delivered(item.sop_instance_uid) < wanted:
                return item.settled(Outcome.PENDING)
        return item.settled(Outcome.COMMITTED)

    # SCU: reports received ----------------------------------------------------------------

    def receive_report(
        self, association: AssociationInfo, event_type: int, data: Dataset
    ) -> Transaction | None:
        """Record a report for a commitment dicomhub requested; None when unknown."""
        uid, items = parse_report(data)
        transaction = self.commitments.find(Role.SCU, uid)
        if transaction is None:
            LOG.warning(
                "storage commitment report from %s for unknown transaction %s ignored",
                association,
                uid,
            )
            return None
        return self.record_report(transaction, event_type, items, str(association))

    def record_report(
        self, transaction: Transaction, event_type: int, items: Sequence[Item], origin: str
    ) -> Transaction:
        """Record a report's outcomes; referenced instances the report does not mention
        are failed (the peer did not commit to them)."""
        mentioned = {(i.sop_class_uid, i.sop_instance_uid) for i in items}
        missing = [
            i.settled(Outcome.FAILED, None, "not in the report")
            for i in transaction.items
            if (i.sop_class_uid, i.sop_instance_uid) not in mentioned
        ]
        results = [*items, *missing]
        all_committed = all(r.outcome is Outcome.COMMITTED for r in results) and bool(results)
        state = State.COMMITTED if all_committed else State.FAILED
        self.commitments.set_results(
            transaction.id, results, state, f"event type {event_type} from {origin}"
        )
        LOG.info(
            "storage commitment %s reported by %s: %s (%d committed, %d failed)",
            transaction.transaction_uid,
            origin,
            state.value,
            sum(1 for r in results if r.outcome is Outcome.COMMITTED),
            sum(1 for r in results if r.outcome is Outcome.FAILED),
        )
        updated = self.commitments.get(transaction.id)
        assert updated is not None
        return updated
