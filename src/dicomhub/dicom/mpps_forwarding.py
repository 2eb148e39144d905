"""MPPS forwarding: every accepted N-CREATE and N-SET, sent on to peers (a RIS) in order.

Each accepted request is queued in the forwarding queue (``forward_queue``) in the same
transaction as its MPPS history row, one row per ``mpps_forward`` peer, with the rule name
``mpps:<event id>``; the forwarder hands those rows to ``deliver``, which replays the requests
as N-CREATE / N-SET SCU on one association, oldest first.  Delivery is at least once: an
N-CREATE the peer answers with 0x0111 (it has the instance already) counts as delivered.  When
a request fails, the later requests of the same MPPS in the batch wait for it (postponed), so
a peer never sees an N-SET before its N-CREATE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from sqlalchemy import Connection

from dicomhub.config import PeerConfig, Settings
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.scu import Association
from dicomhub.errors import DicomhubError, PeerUnavailable
from dicomhub.index.forward_queue import ForwardQueue, QueueItem
from dicomhub.index.mpps import MppsRepository

LOG = logging.getLogger("dicomhub.dicom")
MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
RULE_PREFIX = "mpps:"
SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
DUPLICATE_INSTANCE = 0x0111


def is_mpps_item(item: QueueItem) -> bool:
    """Whether a queue row is an MPPS request rather than an instance to store."""
    return item.rule.startswith(RULE_PREFIX)


class MppsEnqueuer:
    """The ``MppsRepository.after_event`` hook that queues an accepted request."""

    def __init__(
        self, queue: ForwardQueue, destinations: Sequence[str], wake: threading.Event
    ) -> None:
        self.queue = queue
        self.destinations = list(destinations)
        self.wake = wake

    def __call__(self, conn: Connection, sop_instance_uid: str, event_id: int) -> None:
        rule = f"{RULE_PREFIX}{event_id}"
        self.queue.enqueue(conn, sop_instance_uid, [(rule, d) for d in self.destinations])
        self.wake.set()


@dataclass
class MppsDelivery:
    """What became of a batch of MPPS rows: delivered, refused (with why), not tried."""

    sent: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    waiting: list[int] = field(default_factory=list)
    lost: str | None = None


def deliver(
    settings: Settings,
    peer: PeerConfig,
    repository: MppsRepository,
    items: Sequence[QueueItem],
) -> MppsDelivery:
    """Replay queued MPPS requests to ``peer`` on one association, oldest first."""
    delivery = MppsDelivery()
    blocked: set[str] = set()
    ordered = sorted(items, key=lambda i: i.id)
    try:
        with Association(settings, peer, [(MPPS_SOP_CLASS, SYNTAXES)]) as association:
            for item in ordered:
                if item.sop_instance_uid in blocked:
                    delivery.waiting.append(item.id)
                    continue
                event = repository.event(int(item.rule[len(RULE_PREFIX) :]))
                if event is None:
                    delivery.sent.append(item.id)  # the MPPS was removed: nothing to send
                    continue
                uid, action, changes = event
                field_ = cmd.N_CREATE_RQ if action == "N-CREATE" else cmd.N_SET_RQ
                try:
                    data = Dataset.from_json(changes)
                except Exception as exc:
                    delivery.refused[item.id] = f"stored {action} cannot be read: {exc}"
                    blocked.add(uid)
                    continue
                response = association.n_request(field_, MPPS_SOP_CLASS, uid, data)
                status = response.status
                if status == 0 or (field_ == cmd.N_CREATE_RQ and status == DUPLICATE_INSTANCE):
                    delivery.sent.append(item.id)
                    continue
                comment = str(response.command.get("ErrorComment") or "")
                delivery.refused[item.id] = f"{action} answered 0x{status:04X} {comment}".strip()
                blocked.add(uid)
    except DicomhubError as exc:
        # Peer down, refusing or lost: every request not delivered counts an attempt.
        delivery.lost = exc.message if isinstance(exc, PeerUnavailable) else str(exc)
        settled = {*delivery.sent, *delivery.refused, *delivery.waiting}
        for item in ordered:
            if item.id not in settled:
                delivery.refused[item.id] = delivery.lost
    LOG.info(
        "MPPS forwarded to %s: %d delivered, %d refused, %d waiting%s",
        peer.ae_title,
        len(delivery.sent),
        len(delivery.refused),
        len(delivery.waiting),
        f" ({delivery.lost})" if delivery.lost else "",
    )
    return delivery
