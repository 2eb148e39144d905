"""Storage Commitment Push Model SCP on the asyncio engine, with pynetdicom SCUs.

Orthanc drives the same service in ``tests/interop``; here the requester is scripted, so
both ways of receiving the report are covered: on the requesting association (the SCU took
the SCP role) and on a new association to the requester's declared address.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid
from pynetdicom import AE, build_role, evt

from dicomhub.config import PeerConfig
from dicomhub.dicom.bindings import storage_commitment
from dicomhub.dicom.commitment_reporter import CommitmentReporter
from dicomhub.dicom.commitment_scu import request_dataset
from dicomhub.dicom.server import Listener
from dicomhub.index.commitments import Role, State
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime, open_runtime
from tests.dicom.conftest import ServerFactory
from tests.factories import make_dataset, write_file

COMMITMENT = "1.2.840.10008.1.20.1"
INSTANCE = "1.2.840.10008.1.20.1.1"


@pytest.fixture
def engine() -> str:
    return "asyncio"


class Reports:
    """N-EVENT-REPORTs a pynetdicom requester receives."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Dataset]] = []
        self.arrived = threading.Event()

    def handler(self, event: Any) -> tuple[int, None]:
        self.received.append((int(event.event_type), event.event_information))
        self.arrived.set()
        return 0x0000, None


def _store(runtime: Runtime, tmp_path: Path, count: int) -> list[Dataset]:
    stored = []
    for _ in range(count):
        ds = make_dataset()
        path = write_file(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm")
        runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
        stored.append(ds)
    return stored


def _request(*references: tuple[str, str], uid: str | None = None) -> Dataset:
    data = request_dataset(uid or generate_uid(), references)
    if uid == "":
        del data.TransactionUID  # malformed on purpose
    return data


def _requester(
    server: Listener, reports: Reports, *, take_scp_role: bool, calling: str = "MODALITY"
) -> Any:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.add_requested_context(COMMITMENT)
    ext: list[Any] = [build_role(COMMITMENT, scu_role=True, scp_role=True)] if take_scp_role else []
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="DICOMHUB",
        ext_neg=ext,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler)],
    )
    assert assoc.is_established
    return assoc


def _sequence(data: Dataset, keyword: str) -> dict[str, int | None]:
    return {
        str(item.ReferencedSOPInstanceUID): (
            int(item.FailureReason) if "FailureReason" in item else None
        )
        for item in data.get(keyword, [])
    }


def test_report_on_the_requesting_association(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    good = _store(server.runtime, tmp_path, 2)
    missing = generate_uid()
    references = [(str(d.SOPClassUID), str(d.SOPInstanceUID)) for d in good]
    references += [(CTImageStorage, missing), (MRImageStorage, str(good[0].SOPInstanceUID))]
    reports = Reports()
    assoc = _requester(server, reports, take_scp_role=True)
    request = _request(*references)
    try:
        status, _ = assoc.send_n_action(request, 1, COMMITMENT, INSTANCE)
        assert status.Status == 0x0000
        assert reports.arrived.wait(30), "no report on the association"
    finally:
        assoc.release()
    ((event_type, data),) = reports.received
    assert event_type == 2
    assert data.TransactionUID == request.TransactionUID
    assert _sequence(data, "ReferencedSOPSequence") == {str(d.SOPInstanceUID): None for d in good}
    # The same instance named under another SOP class fails as that reference only.
    failed = [
        (str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID), int(i.FailureReason))
        for i in data.FailedSOPSequence
    ]
    assert sorted(failed) == sorted(
        [
            (CTImageStorage, missing, 0x0112),
            (MRImageStorage, str(good[0].SOPInstanceUID), 0x0119),
        ]
    )
    transaction = server.runtime.commitments.find(Role.SCP, str(request.TransactionUID))
    assert transaction is not None and transaction.state is State.REPORTED
    events = [e for _, e, _ in server.runtime.commitments.events(transaction.id)]
    assert events == ["requested", "checked", "report-sent"]


def test_wrong_sop_class_is_a_class_instance_conflict(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    (stored,) = _store(server.runtime, tmp_path, 1)
    reports = Reports()
    assoc = _requester(server, reports, take_scp_role=True)
    try:
        request = _request((MRImageStorage, str(stored.SOPInstanceUID)))
        assert assoc.send_n_action(request, 1, COMMITMENT, INSTANCE)[0].Status == 0
        assert reports.arrived.wait(30)
    finally:
        assoc.release()
    ((event_type, data),) = reports.received
    assert event_type == 2
    assert _sequence(data, "FailedSOPSequence") == {str(stored.SOPInstanceUID): 0x0119}
    assert "ReferencedSOPSequence" not in data


def test_a_damaged_blob_is_never_committed(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory()
    intact, damaged = _store(server.runtime, tmp_path, 2)
    record = server.runtime.repository.get_instance(str(damaged.SOPInstanceUID))
    assert record is not None
    _flip_one_byte(server.runtime, record.blob_key)
    reports = Reports()
    assoc = _requester(server, reports, take_scp_role=True)
    try:
        request = _request(
            (CTImageStorage, str(intact.SOPInstanceUID)),
            (CTImageStorage, str(damaged.SOPInstanceUID)),
        )
        assert assoc.send_n_action(request, 1, COMMITMENT, INSTANCE)[0].Status == 0
        assert reports.arrived.wait(30)
    finally:
        assoc.release()
    ((event_type, data),) = reports.received
    assert event_type == 2
    assert _sequence(data, "ReferencedSOPSequence") == {str(intact.SOPInstanceUID): None}
    assert _sequence(data, "FailedSOPSequence") == {str(damaged.SOPInstanceUID): 0x0110}


def _flip_one_byte(runtime: Runtime, key: str) -> None:
    """Damage a stored object in place, wherever the blob store keeps it."""
    from dicomhub.storage.segments import SegmentKey, is_segment_key

    if is_segment_key(key):
        parsed = SegmentKey.parse(key)  # the offset is where the payload starts
        path = runtime.blobs.segments.path(parsed.segment)
        position = parsed.offset + parsed.length - 10
    else:
        path = runtime.blobs.path_for(key)
        position = path.stat().st_size - 10
    with path.open("r+b") as handle:
        handle.seek(position)
        byte = handle.read(1)
        handle.seek(position)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    ("request_data", "action", "status", "words"),
    [
        (_request((CTImageStorage, "1.2.3.4"), uid=""), 1, 0x0120, "TransactionUID"),
        (_request(), 1, 0x0120, "ReferencedSOPSequence"),
        (_request((CTImageStorage, "1.2.3.4"), uid="not a uid"), 1, 0x0115, "not a valid UID"),
        (_request(("", "1.2.3.4")), 1, 0x0115, "item 1"),
        (_request((CTImageStorage, "1.2.3.4")), 2, 0x0123, "Action Type ID 2"),
    ],
)
def test_malformed_requests_are_refused(
    server_factory: ServerFactory, request_data: Dataset, action: int, status: int, words: str
) -> None:
    server = server_factory()
    reports = Reports()
    assoc = _requester(server, reports, take_scp_role=True)
    try:
        answer, _ = assoc.send_n_action(request_data, action, COMMITMENT, INSTANCE)
    finally:
        assoc.release()
    assert answer.Status == status
    assert words in answer.ErrorComment
    assert server.runtime.commitments.list() == []


def test_a_requester_that_cannot_be_reached_back_is_refused(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    assoc = _requester(server, Reports(), take_scp_role=False, calling="STRANGER")
    try:
        answer, _ = assoc.send_n_action(
            _request((CTImageStorage, "1.2.3.4")), 1, COMMITMENT, INSTANCE
        )
    finally:
        assoc.release()
    assert answer.Status == 0x0110
    assert "STRANGER is not a declared peer" in answer.ErrorComment


class ReportSCP:
    """A requester's own listener: receives N-EVENT-REPORTs on new associations."""

    def __init__(self, ae_title: str = "MODALITY") -> None:
        self.reports = Reports()
        ae = AE(ae_title=ae_title)
        ae.add_supported_context(COMMITMENT, scu_role=True, scp_role=True)
        server = ae.start_server(
            ("127.0.0.1", 0),
            block=False,
            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self.reports.handler)],
        )
        assert server is not None
        self.server = server
        self.peer = PeerConfig(
            ae_title=ae_title, host="127.0.0.1", port=int(server.server_address[1])
        )


@pytest.fixture
def report_scp() -> Iterator[ReportSCP]:
    scp = ReportSCP()
    yield scp
    scp.server.shutdown()


def test_report_on_a_new_association_survives_a_restart(
    server_factory: ServerFactory, report_scp: ReportSCP, tmp_path: Path
) -> None:
    server = server_factory(peers={"modality": report_scp.peer})
    stored = _store(server.runtime, tmp_path, 2)
    assoc = _requester(server, Reports(), take_scp_role=False)
    request = _request(*[(str(d.SOPClassUID), str(d.SOPInstanceUID)) for d in stored])
    try:
        assert assoc.send_n_action(request, 1, COMMITMENT, INSTANCE)[0].Status == 0x0000
    finally:
        assoc.release()
    # No reporter runs in this process: the request waits in the database, as it would
    # after a crash between the N-ACTION response and the report.
    transaction = server.runtime.commitments.find(Role.SCP, str(request.TransactionUID))
    assert transaction is not None and transaction.state is State.PENDING
    settings = server.runtime.settings
    later = open_runtime(settings)
    reporter = CommitmentReporter(storage_commitment(later), poll_interval=0.1)
    reporter.start()
    try:
        assert report_scp.reports.arrived.wait(30), "the report was not delivered"
    finally:
        reporter.stop()
        later.close()
    ((event_type, data),) = report_scp.reports.received
    assert event_type == 1
    assert set(_sequence(data, "ReferencedSOPSequence")) == {str(d.SOPInstanceUID) for d in stored}
    done = server.runtime.commitments.find(Role.SCP, str(request.TransactionUID))
    assert done is not None and done.state is State.REPORTED


def test_an_undeliverable_report_is_retried_then_given_up(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    gone = ReportSCP()
    gone.server.shutdown()
    server = server_factory(
        peers={"modality": gone.peer},
        commitment_report_attempts=2,
        commitment_retry_initial=0.1,
        commitment_retry_max=0.1,
    )
    (stored,) = _store(server.runtime, tmp_path, 1)
    assoc = _requester(server, Reports(), take_scp_role=False)
    request = _request((CTImageStorage, str(stored.SOPInstanceUID)))
    try:
        assert assoc.send_n_action(request, 1, COMMITMENT, INSTANCE)[0].Status == 0x0000
    finally:
        assoc.release()
    reporter = CommitmentReporter(storage_commitment(server.runtime), poll_interval=0.05)
    reporter.start()
    try:
        for _ in range(100):
            transaction = server.runtime.commitments.find(Role.SCP, str(request.TransactionUID))
            assert transaction is not None
            if transaction.state is State.UNDELIVERABLE:
                break
            threading.Event().wait(0.1)
    finally:
        reporter.stop()
    assert transaction is not None
    assert transaction.state is State.UNDELIVERABLE
    assert "cannot connect" in transaction.last_error
    events = [e for _, e, _ in server.runtime.commitments.events(transaction.id)]
    assert events == ["requested", "checked", "report-failed", "given-up"]


def test_a_release_before_the_report_hands_it_to_the_reporter(
    server_factory: ServerFactory,
    report_scp: ReportSCP,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A requester that took the SCP role but releases at once is not kept waiting for a
    report it will not answer; the report then goes to its declared address."""
    server = server_factory(peers={"modality": report_scp.peer}, dimse_timeout=600)
    (stored,) = _store(server.runtime, tmp_path, 1)
    checking = threading.Event()
    services = server.engine.services  # type: ignore[attr-defined]
    original = services.storage_commitment.check

    def slow_check(transaction: Any) -> Any:
        checking.set()
        threading.Event().wait(1.0)  # the release arrives while the check runs
        return original(transaction)

    monkeypatch.setattr(services.storage_commitment, "check", slow_check)
    assoc = _requester(server, Reports(), take_scp_role=True)
    request = _request((CTImageStorage, str(stored.SOPInstanceUID)))
    assert assoc.send_n_action(request, 1, COMMITMENT, INSTANCE)[0].Status == 0x0000
    assert checking.wait(30)
    assoc.release()
    assert not assoc.is_established
    reporter = CommitmentReporter(storage_commitment(server.runtime), poll_interval=0.1)
    reporter.start()
    try:
        assert report_scp.reports.arrived.wait(30), "the report was not delivered"
    finally:
        reporter.stop()
    transaction = server.runtime.commitments.find(Role.SCP, str(request.TransactionUID))
    assert transaction is not None and transaction.state is State.REPORTED
    events = [e for _, e, _ in server.runtime.commitments.events(transaction.id)]
    assert events == ["requested", "checked", "report-sent"]
    assert "it will be sent on a new association" in caplog.text


class StorageSCP:
    """A pynetdicom storage SCP: a forwarding destination."""

    def __init__(self) -> None:
        self.received: list[str] = []
        ae = AE(ae_title="ARCHIVE2")
        ae.add_supported_context(CTImageStorage)
        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        assert server is not None
        self.server = server
        self.peer = PeerConfig(
            ae_title="ARCHIVE2", host="127.0.0.1", port=int(server.server_address[1])
        )

    def _on_store(self, event: Any) -> int:
        self.received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000


@pytest.mark.parametrize("delivered", [True, False])
def test_forwarded_policy_commits_only_after_delivery(
    settings: Any, tmp_path: Path, delivered: bool
) -> None:
    """With commitment_policy = "forwarded" an instance is committed once a forwarding peer
    acknowledged it, and fails (0x0110) when that did not happen in time."""
    from dicomhub.config import ForwardRule
    from dicomhub.dicom.forwarder import Forwarder
    from dicomhub.dicom.peers import AssociationInfo
    from dicomhub.index.commitments import Outcome

    archive = StorageSCP()
    runtime = open_runtime(
        settings.model_copy(
            update={
                "peers": {"archive": archive.peer},
                "forward": [ForwardRule(name="copy", destinations=["archive"])],
                "commitment_policy": "forwarded",
                "commitment_forward_wait": 600.0 if delivered else 0.001,
            }
        )
    )
    try:
        (stored,) = _store(runtime, tmp_path, 1)
        service = storage_commitment(runtime)
        requester = AssociationInfo("MODALITY", "DICOMHUB", "127.0.0.1", 1)
        transaction = service.request(
            requester, 1, _request((CTImageStorage, str(stored.SOPInstanceUID))), report_here=True
        )
        if delivered:
            assert service.check(transaction).state is State.PENDING  # not forwarded yet
            assert Forwarder(runtime).run_once() == 1
            assert archive.received == [str(stored.SOPInstanceUID)]
        checked = service.check(transaction)
        assert checked.state is State.CHECKED
        (item,) = checked.items
        if delivered:
            assert item.outcome is Outcome.COMMITTED
        else:
            assert item.outcome is Outcome.FAILED
            assert item.failure_reason == 0x0110
            assert "not delivered to 1 forwarding destinations" in item.detail
    finally:
        archive.server.shutdown()
        runtime.close()
