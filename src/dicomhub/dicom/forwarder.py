"""The forwarder: a background thread of ``dicomhub serve`` that empties the forwarding queue.

Every dicomhub process on a database runs one; they share the queue (``index.forward_queue``)
through leases, so an item is sent by one process at a time and, if that process dies, by
another once its lease expires.  Each round takes a batch of due items, opens ONE association
per destination peer and sends that destination's instances on it (C-STORE, unchanged when the
peer accepts the stored transfer syntax):

* acknowledged (success or warning status): the item is done;
* refused by the peer (failure status) or not readable here: retried after the back-off, and
  moved to ``failed`` after ``forward_max_attempts``;
* peer unreachable or association refused: every item counts a failed attempt and is retried
  after the back-off, and this process leaves that peer alone for a while (doubling up to
  ``forward_retry_max``) so a dead peer does not cost a connection attempt per batch;
* association lost while sending: the instance in flight counts a failed attempt; the ones not
  yet sent are only postponed (by ``forward_retry_initial``), so an object that makes the peer
  abort cannot wear out the attempts of those queued behind it;
* destination not a known peer (configuration or run-time peers): failed at once, with a
  warning;
* instance deleted since it was queued: done, with a log line.

When the rule that queued an item has ``commit = true``, the destination is then asked for
storage commitment of the instances it acknowledged (``dicom.commitment_scu``); the outcome
is logged and kept with the transaction (``dicomhub commitments``).

The thread wakes when this process queued something and otherwise looks at the queue every
``forward_poll_interval`` seconds (other processes queue too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dicomhub.config import PeerConfig
from dicomhub.dicom.bindings import storage_commitment
from dicomhub.dicom.commitment_scu import request_commitment
from dicomhub.dicom.mpps_forwarding import deliver as deliver_mpps
from dicomhub.dicom.mpps_forwarding import is_mpps_item
from dicomhub.dicom.scu import StoreSCU
from dicomhub.errors import DicomhubError, PeerUnavailable
from dicomhub.index.commitments import State
from dicomhub.index.forward_queue import QueueItem
from dicomhub.index.mpps import MppsRepository
from dicomhub.index.repository import StoredInstance
from dicomhub.leases import dead_local_holders, owner_id
from dicomhub.runtime import Runtime

LOG = logging.getLogger("dicomhub.forward")
PURGE_INTERVAL = 600.0
"""Seconds between two removals of delivered items older than ``forward_keep_done``."""
RECORD_INTERVAL = 1.0
"""Seconds between two records of the acknowledged items while a batch is being sent (what
a crash makes the forwarder send twice is at most that much)."""
GATHER = 0.2
"""Seconds to wait, once woken by this process's ingest, for the objects that follow (a
modality sends a series in a burst: they then share one association)."""


def _ids(items: Iterable[QueueItem]) -> list[int]:
    return [item.id for item in items]


@dataclass
class _Pause:
    """A destination this process does not try before ``until`` (monotonic seconds)."""

    until: float
    delay: float


@dataclass
class _Delivery:
    """Outcome of one destination's share of a batch."""

    sent: list[int] = field(default_factory=list)
    recorded: int = 0
    """How many of ``sent`` are already recorded as done."""
    refused: dict[str, list[int]] = field(default_factory=dict)
    """Error text -> items to retry later."""
    attempted: list[int] = field(default_factory=list)
    """Items whose attempt failed with the association: all when it could not be opened,
    else the one in flight when it was lost."""
    unsent: list[int] = field(default_factory=list)
    """Items not tried: postponed when the association was lost, released when stopping."""
    lost: str | None = None
    """Why the association could not be opened or was lost."""


class Forwarder:
    """Sends queued instances to their destinations (see the module docstring)."""

    def __init__(self, runtime: Runtime, *, owner: str | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.queue = runtime.forward_queue
        self.owner = owner or owner_id()
        self.mpps = MppsRepository(runtime.db)
        self._wake = runtime.forward_wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused: dict[str, _Pause] = {}
        self._next_purge = 0.0

    # Life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Release leases of dead dicomhub processes of this host, then start the thread."""
        self._stop.clear()
        try:
            self.release_orphans()
        except Exception:
            LOG.exception("forwarding queue: releasing the leases of dead processes failed")
        self._thread = threading.Thread(target=self._run, name="dicomhub-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the instance being sent; items not sent are released to other senders."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.warning("forwarder did not stop within %.0f s", timeout)
            self._thread = None

    def release_orphans(self) -> int:
        """Release at once the leases held by processes of this host that no longer run
        (their items would otherwise wait for ``forward_lease`` to expire)."""
        released = 0
        for holder in dead_local_holders(self.queue.lease_holders(), self.owner):
            count = self.queue.release(holder)
            if count:
                LOG.info(
                    "forwarding queue: %d items of stopped process %s are sent again",
                    count,
                    holder,
                )
            released += count
        return released

    def _run(self) -> None:
        errors = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                handled = self.run_once()
                self._purge()
                errors = 0
            except Exception:
                # The database is unreachable, most likely: look again later and later.
                errors += 1
                pause = min(self.settings.forward_poll_interval * 2 ** min(errors, 10), 60.0)
                LOG.exception("forwarding queue: unexpected error; next try in %.0f s", pause)
                self._stop.wait(pause)
                continue
            if handled >= self.settings.forward_batch_size:
                continue  # more may be due
            if self._wake.wait(self.settings.forward_poll_interval):
                self._stop.wait(min(GATHER, self.settings.forward_poll_interval))

    def _purge(self) -> None:
        keep = self.settings.forward_keep_done
        now = time.monotonic()
        if keep <= 0 or now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        removed = self.queue.purge_done(keep)
        if removed:
            LOG.info(
                "forwarding queue: %d delivered items older than %.0f s removed", removed, keep
            )

    # One round --------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and deliver it; returns the number of items claimed."""
        now = time.monotonic()
        paused = [name for name, pause in self._paused.items() if pause.until > now]
        batch = self.queue.claim(
            self.owner,
            self.settings.forward_batch_size,
            self.settings.forward_lease,
            exclude=paused,
        )
        for destination, items in batch.items():
            if self._stop.is_set():
                self.queue.release(self.owner, _ids(items))
                continue
            try:
                self._deliver(destination, items)
            except Exception as exc:
                LOG.exception("forwarding to %s failed unexpectedly", destination)
                self._retry(destination, _ids(items), f"internal error: {type(exc).__name__}")
        return sum(len(items) for items in batch.values())

    def _deliver(self, destination: str, items: list[QueueItem]) -> None:
        started = time.monotonic()
        peer = self.runtime.access.peers().get(destination)
        if peer is None:
            rules = ", ".join(sorted({item.rule for item in items}))
            LOG.warning(
                "forwarding rule %s: destination %r is not a known peer (neither in the "
                "configuration nor among run-time peers); %d items moved to failed",
                rules,
                destination,
                len(items),
            )
            self.queue.fail(_ids(items), f"unknown peer {destination}")
            return
        mpps_items = [item for item in items if is_mpps_item(item)]
        if mpps_items:
            self._deliver_mpps(destination, peer, mpps_items)
            items = [item for item in items if not is_mpps_item(item)]
        by_uid: dict[str, list[QueueItem]] = {}
        for item in items:
            by_uid.setdefault(item.sop_instance_uid, []).append(item)
        instances: list[StoredInstance] = []
        gone: list[int] = []
        for uid, group in by_uid.items():
            stored = self.runtime.repository.get_instance(uid)
            if stored is None:
                LOG.info(
                    "forwarding %s to %s: the instance was deleted since it was queued; "
                    "nothing to send",
                    uid,
                    destination,
                )
                gone.extend(_ids(group))
            else:
                instances.append(stored)
        self.queue.done(gone, "deleted before it was sent")
        if not instances:
            return
        delivery = self._send(destination, peer, instances, by_uid)
        self.queue.done(delivery.sent[delivery.recorded :])
        retried = failed = 0
        if delivery.unsent and delivery.lost is None:  # stopping: others may take them now
            self.queue.release(self.owner, delivery.unsent)
        elif delivery.unsent:
            # Postponed before the failed attempt is counted, so at equal back-off the items
            # that were not tried come first next time.
            delay = self.settings.forward_retry_initial
            postponed = self.queue.postpone(
                delivery.unsent, delay, f"not sent: {delivery.lost}", owner=self.owner
            )
            retried += postponed
            LOG.warning(
                "forwarding to %s: %d instances not sent, postponed by %.1f s: %s",
                destination,
                postponed,
                delay,
                delivery.lost,
            )
        for error, ids in delivery.refused.items():
            outcome = self._retry(destination, ids, error)
            retried, failed = retried + outcome[0], failed + outcome[1]
        if delivery.attempted:
            outcome = self._retry(destination, delivery.attempted, delivery.lost or "")
            retried, failed = retried + outcome[0], failed + outcome[1]
        self._pace(destination, delivery)
        LOG.info(
            "forwarded to %s: %d sent, %d to retry, %d failed in %.2f s",
            destination,
            len(delivery.sent),
            retried,
            failed,
            time.monotonic() - started,
        )
        self._commit(destination, peer, instances, items, delivery.sent)

    def _deliver_mpps(self, destination: str, peer: PeerConfig, items: list[QueueItem]) -> None:
        """Replay queued MPPS requests (see ``mpps_forwarding``)."""
        delivery = deliver_mpps(self.settings, peer, self.mpps, items)
        self.queue.done(delivery.sent)
        if delivery.waiting:
            self.queue.postpone(
                delivery.waiting,
                self.settings.forward_retry_initial,
                "waits for an earlier request of the same MPPS",
                owner=self.owner,
            )
        by_error: dict[str, list[int]] = {}
        for item_id, error in delivery.refused.items():
            by_error.setdefault(error, []).append(item_id)
        for error, ids in by_error.items():
            self._retry(destination, ids, error)

    def _commit(
        self,
        destination: str,
        peer: PeerConfig,
        instances: list[StoredInstance],
        items: list[QueueItem],
        sent: list[int],
    ) -> None:
        """Request storage commitment of the delivered instances of rules with ``commit``."""
        rules = {rule.name for rule in self.settings.forward if rule.commit}
        delivered = set(sent)
        uids = {i.sop_instance_uid for i in items if i.id in delivered and i.rule in rules}
        references = [
            (i.sop_class_uid, i.sop_instance_uid) for i in instances if i.sop_instance_uid in uids
        ]
        if not references:
            return
        try:
            transaction = request_commitment(
                self.settings,
                peer,
                references,
                storage_commitment(self.runtime),
                wait=self.settings.commitment_wait,
            )
        except DicomhubError as exc:
            LOG.error(
                "forwarded to %s: storage commitment of %d instances failed: %s",
                destination,
                len(references),
                exc,
            )
            return
        log = LOG.warning if transaction.state is State.FAILED else LOG.info
        log(
            "forwarded to %s: storage commitment %s of %d instances: %s%s",
            destination,
            transaction.transaction_uid,
            len(references),
            transaction.state.value,
            f" ({len(transaction.failed)} failed)" if transaction.failed else "",
        )

    def _send(
        self,
        destination: str,
        peer: PeerConfig,
        instances: list[StoredInstance],
        by_uid: dict[str, list[QueueItem]],
    ) -> _Delivery:
        """Send ``instances`` on one association; every queue item ends in one list."""
        delivery = _Delivery()
        settled: set[str] = set()
        sending = {instance.sop_instance_uid for instance in instances}
        renewed = recorded = time.monotonic()
        opened, in_flight = False, ""
        try:
            with StoreSCU(self.settings, peer, self.runtime.blobs, instances) as scu:
                opened = True
                for instance in instances:
                    if self._stop.is_set():
                        break
                    if time.monotonic() - renewed > self.settings.forward_lease / 3:
                        waiting = [u for u in by_uid if u not in settled]
                        self.queue.renew(
                            [i.id for u in waiting for i in by_uid[u]],
                            self.owner,
                            self.settings.forward_lease,
                        )
                        renewed = time.monotonic()
                    ids = _ids(by_uid[instance.sop_instance_uid])
                    in_flight = instance.sop_instance_uid
                    try:
                        result = scu.send(instance)
                    except PeerUnavailable:
                        raise
                    except (DicomhubError, OSError) as exc:
                        error = f"not sent: {exc}"
                        delivery.refused.setdefault(error, []).extend(ids)
                    else:
                        if result.ok:
                            delivery.sent.extend(ids)
                        else:
                            error = f"C-STORE status 0x{result.status:04X}"
                            if result.comment:
                                error += f" ({result.comment})"
                            delivery.refused.setdefault(error, []).extend(ids)
                    settled.add(instance.sop_instance_uid)
                    if time.monotonic() - recorded > RECORD_INTERVAL:
                        self.queue.done(delivery.sent[delivery.recorded :])
                        delivery.recorded, recorded = len(delivery.sent), time.monotonic()
        except PeerUnavailable as exc:
            delivery.lost = str(exc) or "peer unavailable"
        except DicomhubError as exc:
            delivery.lost = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            LOG.exception("forwarding to %s: unexpected error while sending", destination)
            delivery.lost = f"internal error: {type(exc).__name__}: {exc}"
        for uid in sending - settled:
            attempted = delivery.lost is not None and (not opened or uid == in_flight)
            (delivery.attempted if attempted else delivery.unsent).extend(_ids(by_uid[uid]))
        return delivery

    def _retry(self, destination: str, ids: list[int], error: str) -> tuple[int, int]:
        outcome = self.queue.retry_later(ids, error, owner=self.owner)
        if outcome.retried:
            LOG.warning(
                "forwarding to %s: %d instances to send again in %.1f s or later: %s",
                destination,
                outcome.retried,
                outcome.next_delay or 0.0,
                error,
            )
        if outcome.failed:
            LOG.error(
                "forwarding to %s: %d instances failed after %d attempts: %s "
                "(see `dicomhub queue list --state failed`)",
                destination,
                outcome.failed,
                self.settings.forward_max_attempts,
                error,
            )
        return outcome.retried, outcome.failed

    def _pace(self, destination: str, delivery: _Delivery) -> None:
        """Leave a peer that could not be reached alone for a while; forget it once it
        answers."""
        if delivery.lost is None or delivery.sent:
            self._paused.pop(destination, None)
            return
        previous = self._paused.get(destination)
        delay = (
            self.settings.forward_retry_initial
            if previous is None
            else min(previous.delay * 2, self.settings.forward_retry_max)
        )
        self._paused[destination] = _Pause(time.monotonic() + delay, delay)
