"""dicomhub as the Storage Commitment Push Model SCP, driven by Orthanc and by scripted SCUs.

A real ``dicomhub serve`` subprocess answers every request here.

* Orthanc 1.10.1 as the SCU (``POST /modalities/hub/storage-commitment``).  It proposes the
  Storage Commitment SOP class without SCP/SCU role selection, releases the association as
  soon as the N-ACTION response arrives, and takes the N-EVENT-REPORT only on a new
  association to its own DICOM port: Orthanc must be a declared peer of the hub.  Its answer
  (``GET /storage-commitment/{transaction uid}``, no job involved) is ``{"Status": "Pending",
  "RemoteAET": ...}`` until the report comes, then ``"Success"`` or ``"Failure"`` with the
  ``Success`` and ``Failures`` lists (SOP class, instance, and FailureReason).
* dicomhub killed with SIGKILL between the N-ACTION response and the report, then restarted
  on the same data folder: the report is still delivered, to the requester's declared address,
  whether the kill came between two failed delivery attempts, right after the response (before
  or while the instances were checked), or while a delivery was in flight (the transaction
  then leased to the dead process: the restarted hub must take it up at once).
* A pynetdicom SCU that took the SCP role by role selection gets the report on its own,
  still open, association.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid
from pynetdicom import AE, build_role, evt

from dicomhub.dicom.commitment_scu import request_dataset
from dicomhub.storage.segments import HEADER, MAGICS, SegmentKey, is_segment_key
from tests.factories import make_dataset
from tests.interop.support import (
    ENGINE,
    HOST,
    UID_ROOT,
    Hub,
    dcmsend,
    needs_dcmtk,
    needs_orthanc,
    output_of,
    running_hub,
    sha256,
    split_part10,
    wait_until,
    write_part10,
)
from tests.interop.test_orthanc import Orthanc, hub_with_orthanc
from tests.ports import free_port

pytestmark = [
    pytest.mark.interop,
    needs_dcmtk,
    pytest.mark.skipif(
        ENGINE != "asyncio", reason="Storage Commitment is served by the asyncio engine only"
    ),
]

COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
ROOT = f"{UID_ROOT}.32"
REPORT_TIMEOUT = 30.0
EVENTS_REPORTED = ["requested", "checked", "report-sent"]

Reference = tuple[str, str]
"""(SOP Class UID, SOP Instance UID)."""


# The hub's records ---------------------------------------------------------------------------


def transaction(hub: Hub, uid: str) -> dict[str, Any]:
    """The hub's SCP-role transaction row for a Transaction UID ({} when there is none)."""
    rows = hub.rows(
        "SELECT * FROM commitment_transactions WHERE role = 'scp' AND transaction_uid = ?", [uid]
    )
    return dict(rows[0]) if rows else {}


def reported(hub: Hub, uid: str, timeout: float = REPORT_TIMEOUT) -> dict[str, Any]:
    """The transaction once it is ``reported`` (or as it is after ``timeout``)."""
    wait_until(lambda: transaction(hub, uid).get("state") == "reported", timeout, 0.05)
    return transaction(hub, uid)


def outcomes(hub: Hub, uid: str) -> dict[Reference, tuple[str, int | None]]:
    """(SOP class, instance) -> (outcome, FailureReason) of the transaction's items."""
    rows = hub.rows(
        """
        SELECT i.sop_class_uid, i.sop_instance_uid, i.outcome, i.failure_reason
        FROM commitment_items i JOIN commitment_transactions t ON i.transaction_fk = t.id
        WHERE t.role = 'scp' AND t.transaction_uid = ?
        """,
        [uid],
    )
    return {
        (r["sop_class_uid"], r["sop_instance_uid"]): (r["outcome"], r["failure_reason"])
        for r in rows
    }


def events(hub: Hub, uid: str) -> list[tuple[str, str]]:
    """(event, detail) of the transaction, oldest first."""
    rows = hub.rows(
        """
        SELECT e.event, e.detail
        FROM commitment_events e JOIN commitment_transactions t ON e.transaction_fk = t.id
        WHERE t.role = 'scp' AND t.transaction_uid = ?
        ORDER BY e.id
        """,
        [uid],
    )
    return [(r["event"], r["detail"]) for r in rows]


def event_names(hub: Hub, uid: str) -> list[str]:
    return [name for name, _ in events(hub, uid)]


# Instances -----------------------------------------------------------------------------------


def stored_in_hub(hub: Hub, folder: Path, label: str, count: int) -> list[Dataset]:
    """New instances sent to the hub with DCMTK dcmsend (each acknowledged and indexed)."""
    folder.mkdir(parents=True, exist_ok=True)
    datasets = [
        make_dataset(
            study_uid=f"{ROOT}.{label}",
            series_uid=f"{ROOT}.{label}.1",
            sop_uid=f"{ROOT}.{label}.1.{number}",
            patient_id=f"COMMIT-{label}",
        )
        for number in range(1, count + 1)
    ]
    files = [write_part10(folder / f"{label}-{n}.dcm", ds) for n, ds in enumerate(datasets)]
    sent, result = dcmsend(files, hub.ae_title, hub.port, folder)
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    assert {o.sop_instance_uid: o.status for o in sent.values()} == dict.fromkeys(uids, 0), (
        output_of(result)
    )
    for uid in uids:
        assert hub.instance(uid) is not None, f"{uid} acknowledged but not indexed"
    return datasets


def references(datasets: Sequence[Dataset]) -> list[Reference]:
    return [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in datasets]


def flip_one_byte(hub: Hub, blob_key: str) -> None:
    """Damage a stored object on disk: one byte of its pixel data (near its end) inverted.

    A segment key ``<segment>.<offset>.<length>`` gives the offset of the record's payload
    (its 64-byte header comes just before it) in ``storage/segments/<segment>.seg``; any
    other key is a file ``storage/<key[:6]>/<key[6:8]>/<key>``.
    """
    if is_segment_key(blob_key):
        key = SegmentKey.parse(blob_key)
        path = hub.storage_dir / "segments" / f"{key.segment}.seg"
        start, length = key.offset, key.length
        with path.open("rb") as handle:
            handle.seek(start - HEADER.size)
            assert handle.read(8) in MAGICS, "no record header before the payload"
    else:
        path = hub.storage_dir / blob_key[:6] / blob_key[6:8] / blob_key
        start, length = 0, path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(start)
        before = handle.read(length)
        position = start + length - 10
        handle.seek(position)
        handle.write(bytes([before[-10] ^ 0xFF]))
        handle.flush()
        os.fsync(handle.fileno())
        handle.seek(start)
        after = handle.read(length)
    recorded = hub.rows("SELECT content_sha256 FROM attachments WHERE blob_key = ?", [blob_key])
    data_set = split_part10(before).dataset
    assert [r["content_sha256"] for r in recorded] == [sha256(data_set)], "read another object"
    assert sha256(split_part10(after).dataset) != sha256(data_set)


# Orthanc as the SCU --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def peered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Orthanc]]:
    """A hub and an Orthanc that know each other (see ``hub_with_orthanc``)."""
    with hub_with_orthanc(tmp_path_factory.mktemp("peered")) as pair:
        yield pair


@pytest.fixture(scope="module")
def hub(peered: tuple[Hub, Orthanc]) -> Hub:
    return peered[0]


@pytest.fixture(scope="module")
def orthanc(peered: tuple[Hub, Orthanc]) -> Orthanc:
    return peered[1]


@dataclass(frozen=True)
class OrthancReport:
    """What Orthanc made of dicomhub's report."""

    transaction_uid: str
    answer: dict[str, Any]

    @property
    def success(self) -> set[Reference]:
        return {(e["SOPClassUID"], e["SOPInstanceUID"]) for e in self.answer["Success"]}

    @property
    def failures(self) -> dict[Reference, int]:
        return {
            (e["SOPClassUID"], e["SOPInstanceUID"]): int(e["FailureReason"])
            for e in self.answer["Failures"]
        }


def orthanc_commitment(orthanc: Orthanc, hub: Hub, refs: Sequence[Reference]) -> OrthancReport:
    """Orthanc asks the hub to commit to ``refs``; its answer once the report is in."""
    started = orthanc.post_json(
        "/modalities/hub/storage-commitment", {"DicomInstances": [list(r) for r in refs]}
    )
    # The POST returns once the N-ACTION was answered; the ID is the Transaction UID.
    uid = str(started["ID"])
    assert started["Path"] == f"/storage-commitment/{uid}", started
    answer: dict[str, Any] = {}

    def done() -> bool:
        answer.clear()
        answer.update(orthanc.get_json(str(started["Path"])))
        return bool(answer["Status"] != "Pending")

    assert wait_until(done, REPORT_TIMEOUT, 0.1), (
        f"Orthanc got no report: {answer}\n{hub.log()[-3000:]}\n{orthanc.log()[-3000:]}"
    )
    assert answer["RemoteAET"] == hub.ae_title
    return OrthancReport(uid, answer)


def assert_report_on_a_new_association(hub: Hub, orthanc: Orthanc, uid: str, event: int) -> None:
    """Orthanc released its association, then got the report on one the hub opened."""
    request = hub.wait_for_log(
        rf"storage commitment {re.escape(uid)} requested by ORTHANC@{HOST}:(\d+) "
    )
    since = request.end()
    released = hub.wait_for_log(
        rf"association released: ORTHANC@{HOST}:{request.group(1)}\n", since=since
    )
    since += released.end()
    hub.wait_for_log(
        re.escape(
            f"storage commitment {uid} reported to ORTHANC@{HOST}:{orthanc.dicom_port} "
            f"(event type {event})"
        ),
        since=since,
    )


@needs_orthanc
def test_orthanc_gets_success_for_stored_instances(
    hub: Hub, orthanc: Orthanc, tmp_path: Path
) -> None:
    refs = references(stored_in_hub(hub, tmp_path, "1", 3))

    report = orthanc_commitment(orthanc, hub, refs)

    assert report.answer["Status"] == "Success", report.answer
    assert report.success == set(refs)
    assert report.failures == {}
    uid = report.transaction_uid
    done = reported(hub, uid)
    assert (done["state"], done["peer_ae_title"], done["attempts"]) == ("reported", "ORTHANC", 0)
    assert outcomes(hub, uid) == dict.fromkeys(refs, ("committed", None))
    assert events(hub, uid) == [
        ("requested", "3 instances"),
        ("checked", "3 committed, 0 failed"),
        ("report-sent", f"event type 1 to ORTHANC@{HOST}:{orthanc.dicom_port}"),
    ]
    assert_report_on_a_new_association(hub, orthanc, uid, 1)


@needs_orthanc
def test_orthanc_gets_the_failure_reason_of_each_instance(
    hub: Hub, orthanc: Orthanc, tmp_path: Path
) -> None:
    kept, misnamed = references(stored_in_hub(hub, tmp_path, "2", 2))
    never_stored = (kept[0], f"{ROOT}.2.1.99")
    wrong_class = (MRImageStorage, misnamed[1])
    assert hub.instance(never_stored[1]) is None
    assert kept[0] != MRImageStorage

    report = orthanc_commitment(orthanc, hub, [kept, never_stored, wrong_class])

    assert report.answer["Status"] == "Failure", report.answer
    assert report.success == {kept}
    assert report.failures == {
        never_stored: NO_SUCH_OBJECT_INSTANCE,
        wrong_class: CLASS_INSTANCE_CONFLICT,
    }
    uid = report.transaction_uid
    assert reported(hub, uid)["state"] == "reported"
    assert outcomes(hub, uid) == {
        kept: ("committed", None),
        never_stored: ("failed", NO_SUCH_OBJECT_INSTANCE),
        wrong_class: ("failed", CLASS_INSTANCE_CONFLICT),
    }
    assert event_names(hub, uid) == EVENTS_REPORTED
    assert events(hub, uid)[1] == ("checked", "1 committed, 2 failed")
    assert_report_on_a_new_association(hub, orthanc, uid, 2)


@needs_orthanc
def test_a_damaged_blob_is_reported_failed_to_orthanc(
    hub: Hub, orthanc: Orthanc, tmp_path: Path
) -> None:
    intact, damaged = references(stored_in_hub(hub, tmp_path, "3", 2))
    stored = hub.instance(damaged[1])
    assert stored is not None
    flip_one_byte(hub, stored.blob_key)

    report = orthanc_commitment(orthanc, hub, [intact, damaged])

    assert report.answer["Status"] == "Failure", report.answer
    assert report.success == {intact}
    assert report.failures == {damaged: PROCESSING_FAILURE}
    uid = report.transaction_uid
    assert reported(hub, uid)["state"] == "reported"
    assert outcomes(hub, uid) == {
        intact: ("committed", None),
        damaged: ("failed", PROCESSING_FAILURE),
    }
    assert event_names(hub, uid) == EVENTS_REPORTED
    hub.wait_for_log(
        re.escape(f"blob {stored.blob_key} of {damaged[1]} does not match its recorded SHA-256")
    )
    # Never committed, in any transaction.
    rows = hub.rows(
        "SELECT outcome, failure_reason, detail FROM commitment_items WHERE sop_instance_uid = ?",
        [damaged[1]],
    )
    assert [tuple(r) for r in rows] == [
        ("failed", PROCESSING_FAILURE, "stored object damaged (checksum mismatch)")
    ]


# Scripted SCUs (pynetdicom) ------------------------------------------------------------------


class Reports:
    """N-EVENT-REPORTs received: (event type, event information, association)."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Dataset, Any]] = []
        self.arrived = threading.Event()
        self._lock = threading.Lock()

    def handler(self, event: Any) -> tuple[int, None]:
        with self._lock:
            self.received.append((int(event.event_type), event.event_information, event.assoc))
        self.arrived.set()
        return 0x0000, None

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def wait_for(self, count: int, timeout: float = REPORT_TIMEOUT) -> bool:
        return wait_until(lambda: self.count() >= count, timeout, 0.02)


def _nodelay(event: Any) -> None:
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@contextlib.contextmanager
def report_listener(port: int, ae_title: str = "MODALITY") -> Iterator[Reports]:
    """The requester's own DICOM listener on ``port``: reports on new associations."""
    reports = Reports()
    ae = AE(ae_title=ae_title)
    ae.add_supported_context(COMMITMENT, scu_role=True, scp_role=True)
    server = ae.start_server(
        (HOST, port),
        block=False,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler), (evt.EVT_CONN_OPEN, _nodelay)],
    )
    assert server is not None
    try:
        yield reports
    finally:
        server.shutdown()


def requester(
    hub: Hub, reports: Reports | None = None, *, take_scp_role: bool, calling: str = "MODALITY"
) -> Any:
    """A pynetdicom association proposing the Storage Commitment SOP class."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(COMMITMENT)
    roles: list[Any] = (
        [build_role(COMMITMENT, scu_role=True, scp_role=True)] if take_scp_role else []
    )
    handlers: list[Any] = [(evt.EVT_CONN_OPEN, _nodelay)]
    if reports is not None:
        handlers.append((evt.EVT_N_EVENT_REPORT, reports.handler))
    assoc = ae.associate(
        HOST, hub.port, ae_title=hub.ae_title, ext_neg=roles, evt_handlers=handlers
    )
    assert assoc.is_established, hub.log()[-3000:]
    return assoc


def commitment_request(refs: Sequence[Reference]) -> Dataset:
    return request_dataset(generate_uid(), refs)


def send_request(assoc: Any, request: Dataset) -> None:
    """N-ACTION Request Storage Commitment; it must be answered with Success."""
    status, _ = assoc.send_n_action(request, 1, COMMITMENT, COMMITMENT_INSTANCE)
    assert status is not None and "Status" in status, "no N-ACTION response"
    assert status.Status == 0x0000, status


def sequence(data: Dataset, keyword: str) -> dict[Reference, int | None]:
    """A report's Referenced/Failed SOP Sequence: reference -> FailureReason."""
    return {
        (str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID)): (
            int(i.FailureReason) if "FailureReason" in i else None
        )
        for i in data.get(keyword, [])
    }


def assert_all_committed(reports: Reports, uid: str, refs: Sequence[Reference]) -> None:
    """Every report received says event type 1 (all committed) for exactly ``refs``."""
    assert reports.received, "no report"
    for event_type, data, _ in reports.received:
        assert event_type == 1
        assert data.TransactionUID == uid
        assert sequence(data, "ReferencedSOPSequence") == dict.fromkeys(refs)
        assert "FailedSOPSequence" not in data


def crash_config(report_port: int, *, retry: float) -> str:
    """The requester "MODALITY" declared at ``report_port``; report retries every ``retry`` s."""
    return (
        f"commitment_retry_initial = {retry}\n"
        f"commitment_retry_max = {retry}\n"
        "commitment_report_attempts = 100\n"
        f'[peers.modality]\nae_title = "MODALITY"\nhost = "{HOST}"\nport = {report_port}\n'
    )


def kill(hub: Hub) -> None:
    """SIGKILL the hub (by PID) and reap it."""
    os.kill(hub.process.pid, signal.SIGKILL)
    assert hub.process.wait(timeout=10) == -signal.SIGKILL


def restarted(stack: contextlib.ExitStack, crashed: Hub, workdir: Path, config: str) -> Hub:
    """A new ``dicomhub serve`` on the crashed hub's data folder (its own log and port)."""
    env = {"DICOMHUB_DATA_DIR": str(crashed.data_dir)}
    return stack.enter_context(running_hub(workdir, env, config=config))


def test_report_delivered_after_a_kill_between_attempts(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The requester's listener is down: delivery fails, the hub is killed between two
    attempts, the listener comes up, a restarted hub delivers the report."""
    report_port = free_port()
    config = crash_config(report_port, retry=2.0)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_hub(tmp_path_factory.mktemp("hub"), config=config))
        refs = references(stored_in_hub(first, tmp_path_factory.mktemp("in"), "4", 2))
        request = commitment_request(refs)
        uid = str(request.TransactionUID)
        assoc = requester(first, take_scp_role=False)
        try:
            send_request(assoc, request)
        finally:
            assoc.release()

        def failed_once() -> bool:
            row = transaction(first, uid)
            return row.get("attempts", 0) >= 1 and row.get("leased_by") is None

        assert wait_until(failed_once, REPORT_TIMEOUT, 0.02), first.log()[-3000:]
        first.wait_for_log(re.escape(f"storage commitment {uid}: report to MODALITY not delivered"))
        kill(first)
        at_kill = transaction(first, uid)
        assert at_kill["state"] == "checked"
        assert event_names(first, uid) == ["requested", "checked", "report-failed"]
        assert outcomes(first, uid) == dict.fromkeys(refs, ("committed", None))

        reports = stack.enter_context(report_listener(report_port))
        second = restarted(stack, first, tmp_path_factory.mktemp("hub"), config)

        assert reports.wait_for(1), f"no report after the restart:\n{second.log()[-3000:]}"
        assert_all_committed(reports, uid, refs)
        done = reported(second, uid)
        assert done["state"] == "reported", second.log()[-3000:]
        assert event_names(second, uid) == [*EVENTS_REPORTED[:2], "report-failed", "report-sent"]
        second.wait_for_log(
            re.escape(f"storage commitment {uid} reported to MODALITY@{HOST}:{report_port} ")
            + r"\(event type 1\)"
        )
        time.sleep(0.5)
        assert reports.count() == 1, "the report was delivered twice"


def test_report_delivered_after_a_kill_right_after_the_response(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The hub is killed as soon as the N-ACTION response is in, most likely before it checked
    anything; the report may have gone out already.  After the restart it is delivered (at
    least once) and the transaction is ``reported``."""
    report_port = free_port()
    config = crash_config(report_port, retry=0.5)
    with contextlib.ExitStack() as stack:
        reports = stack.enter_context(report_listener(report_port))
        first = stack.enter_context(running_hub(tmp_path_factory.mktemp("hub"), config=config))
        refs = references(stored_in_hub(first, tmp_path_factory.mktemp("in"), "5", 2))
        request = commitment_request(refs)
        uid = str(request.TransactionUID)
        assoc = requester(first, take_scp_role=False)
        try:
            send_request(assoc, request)
            kill(first)
        finally:
            assoc.abort()
        at_kill = transaction(first, uid)
        before_restart = reports.count()
        assert at_kill, "the request was not recorded before it was answered"
        assert at_kill["state"] in {"pending", "checked", "reported"}
        if at_kill["state"] == "reported":
            assert before_restart > 0, "recorded as reported, never received"

        second = restarted(stack, first, tmp_path_factory.mktemp("hub"), config)

        done = reported(second, uid)
        assert done["state"] == "reported", f"{at_kill}\n{second.log()[-3000:]}"
        assert reports.wait_for(1)
        assert_all_committed(reports, uid, refs)
        names = event_names(second, uid)
        assert names[0] == "requested" and names[-1] == "report-sent", names
        assert names.count("checked") == 1
        if at_kill["state"] != "reported":
            assert reports.count() > before_restart, "the restarted hub sent no report"
            second.wait_for_log(re.escape(f"storage commitment {uid} reported to MODALITY@"))


@contextlib.contextmanager
def silent_listener(port: int) -> Iterator[list[socket.socket]]:
    """Accepts TCP connections on ``port`` and never answers: an association request to it
    hangs (the requester's device is up but stuck)."""
    accepted: list[socket.socket] = []
    server = socket.create_server((HOST, port))
    server.settimeout(0.1)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield accepted
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for connection in accepted:
            connection.close()


def test_report_delivered_after_a_kill_during_delivery(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The hub is killed while it waits for the requester to accept the report association
    (the transaction leased to the dead process): a restarted hub delivers it at once."""
    report_port = free_port()
    config = crash_config(report_port, retry=0.5)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_hub(tmp_path_factory.mktemp("hub"), config=config))
        refs = references(stored_in_hub(first, tmp_path_factory.mktemp("in"), "7", 2))
        request = commitment_request(refs)
        uid = str(request.TransactionUID)
        with silent_listener(report_port) as accepted:
            assoc = requester(first, take_scp_role=False)
            try:
                send_request(assoc, request)
            finally:
                assoc.release()
            assert wait_until(lambda: bool(accepted), REPORT_TIMEOUT, 0.02), first.log()[-3000:]
            in_flight = transaction(first, uid)
            kill(first)
        assert (in_flight["state"], in_flight["attempts"]) == ("checked", 0)
        assert str(in_flight["leased_by"]).split(":")[1] == str(first.process.pid)
        assert event_names(first, uid) == EVENTS_REPORTED[:2]

        reports = stack.enter_context(report_listener(report_port))
        started = time.monotonic()
        second = restarted(stack, first, tmp_path_factory.mktemp("hub"), config)

        assert reports.wait_for(1, REPORT_TIMEOUT), (
            f"no report {REPORT_TIMEOUT:.0f} s after the restart:\n{second.log()[-3000:]}"
        )
        assert time.monotonic() - started < REPORT_TIMEOUT
        # Taken up at once, not after the dead process's lease (minutes) expired.
        second.wait_for_log(rf"1 transactions of stopped process [^:]+:{first.process.pid}:")
        assert_all_committed(reports, uid, refs)
        assert reported(second, uid)["state"] == "reported"
        assert event_names(second, uid) == EVENTS_REPORTED


def test_report_on_the_requesting_association(hub: Hub, tmp_path: Path) -> None:
    """An SCU that took the SCP role and keeps its association open gets the report on it."""
    refs = references(stored_in_hub(hub, tmp_path, "6", 2))
    missing = (refs[0][0], f"{ROOT}.6.1.99")
    reports = Reports()
    assoc = requester(hub, reports, take_scp_role=True, calling="ROLESCU")
    request = commitment_request([*refs, missing])
    uid = str(request.TransactionUID)
    try:
        send_request(assoc, request)
        assert reports.arrived.wait(5.0), f"no report within 5 s:\n{hub.log()[-3000:]}"
        assert assoc.is_established
    finally:
        assoc.release()
    ((event_type, data, on), *more) = reports.received
    assert more == []
    assert on is assoc, "the report came on another association"
    assert event_type == 2
    assert data.TransactionUID == uid
    assert sequence(data, "ReferencedSOPSequence") == dict.fromkeys(refs)
    assert sequence(data, "FailedSOPSequence") == {missing: NO_SUCH_OBJECT_INSTANCE}
    done = reported(hub, uid)
    assert (done["state"], done["peer_ae_title"]) == ("reported", "ROLESCU")
    assert events(hub, uid)[1:] == [
        ("checked", "2 committed, 1 failed"),
        ("report-sent", "event type 2 on the requesting association"),
    ]
    assert outcomes(hub, uid) == {
        **dict.fromkeys(refs, ("committed", None)),
        missing: ("failed", NO_SUCH_OBJECT_INSTANCE),
    }
    hub.wait_for_log(
        rf"storage commitment {re.escape(uid)} reported to ROLESCU@{HOST}:\d+ on its association"
    )
