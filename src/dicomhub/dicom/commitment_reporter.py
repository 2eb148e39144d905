"""Background delivery of Storage Commitment reports, shared by every dicomhub process.

``dicomhub serve`` runs one reporter thread.  It takes due transactions from the database
(leases, as the forwarding queue): requests still to check (recorded but not checked, after a
restart for instance) and checked ones whose report is still to deliver.  A report goes on a
new association to the requester's declared address, dicomhub proposing the SCP role for the
Storage Commitment SOP class; a failed delivery is retried with exponential back-off, and the
transaction becomes ``undeliverable`` after ``commitment_report_attempts``.  It also marks the
requests dicomhub made as SCU ``timed_out`` when no report came within ``commitment_timeout``.
On start it releases the leases of dicomhub processes of this host that no longer run (killed
while checking or delivering), which would otherwise hold their transactions for ``LEASE``.
"""

from __future__ import annotations

import logging
import threading
import time

from pynetdicom.dsutils import encode

from dicomhub.dicom.scu import Association
from dicomhub.dicom.services.storage_commitment import (
    STORAGE_COMMITMENT,
    STORAGE_COMMITMENT_INSTANCE,
    StorageCommitmentService,
    report_dataset,
)
from dicomhub.errors import DicomhubError, PeerUnavailable
from dicomhub.index.commitments import Role, State, Transaction
from dicomhub.index.forward_queue import RetryPolicy
from dicomhub.leases import dead_local_holders, owner_id

LOG = logging.getLogger("dicomhub.dicom")
SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
LEASE = 120.0
RECHECK = 10.0
"""Seconds between two checks of a transaction that waits for forwarding deliveries."""
TIMEOUT_SWEEP = 60.0


class CommitmentReporter:
    """The reporter thread of one process."""

    def __init__(self, service: StorageCommitmentService, poll_interval: float = 1.0) -> None:
        self.service = service
        self.settings = service.settings
        self.policy = RetryPolicy(
            self.settings.commitment_report_attempts,
            self.settings.commitment_retry_initial,
            self.settings.commitment_retry_max,
        )
        self.poll_interval = poll_interval
        self.owner = owner_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept = 0.0

    def start(self) -> None:
        """Release the leases of dead processes of this host, then start the thread."""
        try:
            self.release_orphans()
        except Exception:
            LOG.exception("storage commitment: releasing the leases of dead processes failed")
        self._thread = threading.Thread(target=self._loop, name="dicomhub-commitment", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the transaction in hand."""
        self._stop.set()
        self.service.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def release_orphans(self) -> int:
        """Release at once the SCP transactions leased by processes of this host that no
        longer run (they would otherwise wait for the lease to expire); how many."""
        commitments = self.service.commitments
        released = 0
        for holder in dead_local_holders(commitments.lease_holders(Role.SCP), self.owner):
            count = commitments.release_holder(Role.SCP, holder)
            if count:
                LOG.info(
                    "storage commitment: %d transactions of stopped process %s taken up again",
                    count,
                    holder,
                )
            released += count
        return released

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                LOG.exception("storage commitment reporter failed; retrying")
                busy = False
            if not busy:
                self.service.wake.wait(self.poll_interval)
                self.service.wake.clear()

    def run_once(self) -> bool:
        """Handle the due transactions; True when there were any."""
        now = time.monotonic()
        if now - self._swept > TIMEOUT_SWEEP:
            self._swept = now
            for transaction_id in self.service.commitments.time_out(
                Role.SCU, State.REQUESTED, self.settings.commitment_timeout
            ):
                LOG.warning("storage commitment request %d timed out: no report", transaction_id)
        due = self.service.commitments.claim(
            self.owner, Role.SCP, [State.PENDING, State.CHECKED], 10, LEASE
        )
        for transaction in due:
            if self._stop.is_set():
                self.service.commitments.release(transaction.id)
                continue
            self.handle(transaction)
        return bool(due)

    def handle(self, transaction: Transaction) -> None:
        """Check a transaction if needed, then deliver its report."""
        if transaction.state is State.PENDING:
            transaction = self.service.check(transaction)
            if transaction.state is State.PENDING:
                self.service.commitments.release(transaction.id, after=RECHECK)
                return
        self.deliver(transaction)

    def deliver(self, transaction: Transaction) -> None:
        """Send the report on a new association to the requester."""
        commitments = self.service.commitments
        uid = transaction.transaction_uid
        peer = self.service.access.peer_for(transaction.peer_ae_title)
        try:
            if peer is None:
                raise PeerUnavailable(
                    f"AE {transaction.peer_ae_title} is not a declared peer: its address is unknown"
                )
            event_type, data = report_dataset(transaction)
            encoded = encode(data, False, True, False)
            if encoded is None:
                raise DicomhubError("the report cannot be encoded")
            with Association(
                self.settings,
                peer,
                [(STORAGE_COMMITMENT, SYNTAXES)],
                scp_roles=[STORAGE_COMMITMENT],
            ) as association:
                context = next(iter(association.accepted.values()))
                if not context.transfer_syntax.is_implicit_VR:
                    payload = bytes(encoded)
                else:
                    implicit = encode(data, True, True, False)
                    assert implicit is not None
                    payload = bytes(implicit)
                response = association.event_report(
                    STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE, event_type, payload
                )
                if response.status != 0x0000:
                    raise PeerUnavailable(
                        f"{association} answered the report with 0x{response.status:04X}"
                    )
        except DicomhubError as exc:
            again = commitments.retry_later(
                transaction.id, exc.message, self.policy, State.UNDELIVERABLE
            )
            log = LOG.warning if again else LOG.error
            log(
                "storage commitment %s: report to %s not delivered (%s)%s",
                uid,
                transaction.peer_ae_title,
                exc.message,
                "; will retry" if again else "; given up",
            )
            return
        commitments.finish(
            transaction.id,
            State.REPORTED,
            "report-sent",
            f"event type {event_type} to {peer.ae_title}@{peer.host}:{peer.port}",
        )
        LOG.info(
            "storage commitment %s reported to %s@%s:%d (event type %d)",
            uid,
            peer.ae_title,
            peer.host,
            peer.port,
            event_type,
        )
