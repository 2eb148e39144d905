"""Storage Commitment Push Model SCU: dicomhub asks a peer to commit to instances.

The peers are real: a second dicomhub (asyncio engine) as the SCP, which reports on the
requesting association because dicomhub took the SCP role there; pynetdicom SCPs scripted to
refuse, to stay silent or to report on a new association to dicomhub's listener; and a
minimal SCP written on the engine's codecs that sends the report BEFORE the N-ACTION response
and answers without MessageIDBeingRespondedTo.  The requesting dicomhub's index runs on each
database backend.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext

from dicomhub.config import ForwardRule, PeerConfig, Settings, load_settings
from dicomhub.dicom.bindings import storage_commitment
from dicomhub.dicom.commitment_reporter import CommitmentReporter
from dicomhub.dicom.commitment_scu import (
    CommitmentRefused,
    CommitmentUnreachable,
    request_commitment,
)
from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.engine import pdu
from dicomhub.dicom.engine.negotiation import accept, decode_request
from dicomhub.dicom.forwarder import Forwarder
from dicomhub.dicom.server import Listener, create_listener
from dicomhub.dicom.services.storage_commitment import StorageCommitmentService
from dicomhub.errors import PeerUnavailable
from dicomhub.index.commitments import Outcome, Role, State, Transaction
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime, open_runtime
from tests.factories import make_dataset, write_file
from tests.ports import free_port

COMMITMENT = "1.2.840.10008.1.20.1"
INSTANCE = "1.2.840.10008.1.20.1.1"


@pytest.fixture
def local(settings: Settings) -> Iterator[Runtime]:
    """The requesting dicomhub (its index on each backend), with a listener on a free port."""
    runtime = open_runtime(settings.model_copy(update={"dicom_port": 0, "engine": "asyncio"}))
    yield runtime
    runtime.close()


@pytest.fixture
def service(local: Runtime) -> StorageCommitmentService:
    return storage_commitment(local)


@pytest.fixture
def listener(local: Runtime) -> Iterator[Listener]:
    """The requesting dicomhub's own listener (where later reports arrive)."""
    server = create_listener(local)
    server.start()
    yield server
    server.stop()


class Remote:
    """A second dicomhub ("REMOTE"), the Storage Commitment SCP."""

    def __init__(self, folder: Path, **overrides: Any) -> None:
        settings = load_settings(
            None,
            ae_title="REMOTE",
            data_dir=folder,
            dicom_port=0,
            engine="asyncio",
            **overrides,
        )
        self.runtime = open_runtime(settings)
        self.listener = create_listener(self.runtime)
        self.listener.start()
        self.peer = PeerConfig(ae_title="REMOTE", host="127.0.0.1", port=self.listener.port)

    def store(self, folder: Path, count: int) -> list[tuple[str, str]]:
        references = []
        for _ in range(count):
            ds = make_dataset()
            path = write_file(ds, folder / f"{ds.SOPInstanceUID}.dcm")
            self.runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
            references.append((str(ds.SOPClassUID), str(ds.SOPInstanceUID)))
        return references

    def stop(self) -> None:
        self.listener.stop()
        self.runtime.close()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    hub = Remote(tmp_path / "remote")
    yield hub
    hub.stop()


def _events(runtime: Runtime, transaction_id: int) -> list[str]:
    return [event for _, event, _ in runtime.commitments.events(transaction_id)]


def _settled(runtime: Runtime, transaction_id: int, timeout: float = 30) -> Transaction:
    """The transaction once it has left ``requested`` (or as it is after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        current = runtime.commitments.get(transaction_id)
        assert current is not None
        if current.state is not State.REQUESTED or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


# A second dicomhub as the SCP ------------------------------------------------------------


def test_report_on_the_requesting_association_commits(
    local: Runtime, service: StorageCommitmentService, remote: Remote, tmp_path: Path
) -> None:
    references = remote.store(tmp_path / "files", 2)
    transaction = request_commitment(local.settings, remote.peer, references, service, wait=60)
    assert transaction.state is State.COMMITTED, transaction
    assert transaction.role is Role.SCU
    assert transaction.peer_ae_title == "REMOTE"
    assert {(i.sop_class_uid, i.sop_instance_uid) for i in transaction.committed} == set(references)
    assert _events(local, transaction.id) == ["requested", "report-received"]
    detail = local.commitments.events(transaction.id)[-1][2]
    assert "event type 1 from REMOTE@127.0.0.1" in detail
    # The SCP side saw the SCP role accepted and reported there.
    scp = remote.runtime.commitments.find(Role.SCP, transaction.transaction_uid)
    assert scp is not None and scp.state is State.REPORTED
    sent = remote.runtime.commitments.events(scp.id)[-1]
    assert sent[1] == "report-sent" and "on the requesting association" in sent[2]


def test_a_missing_instance_fails_with_no_such_object_instance(
    local: Runtime, service: StorageCommitmentService, remote: Remote, tmp_path: Path
) -> None:
    references = remote.store(tmp_path / "files", 1)
    missing = (CTImageStorage, str(generate_uid()))
    transaction = request_commitment(
        local.settings, remote.peer, [*references, missing], service, wait=60
    )
    assert transaction.state is State.FAILED
    assert [i.sop_instance_uid for i in transaction.committed] == [references[0][1]]
    (failed,) = transaction.failed
    assert failed.sop_instance_uid == missing[1]
    assert failed.failure_reason == 0x0112
    assert "event type 2" in local.commitments.events(transaction.id)[-1][2]
    stored = local.commitments.get(transaction.id)
    assert stored is not None and stored.completed_at is not None


def test_without_a_wait_a_dicomhub_peer_reports_on_a_new_association(
    local: Runtime, service: StorageCommitmentService, listener: Listener, tmp_path: Path
) -> None:
    own = PeerConfig(ae_title=local.settings.ae_title, host="127.0.0.1", port=listener.port)
    remote = Remote(tmp_path / "knows-us", peers={"hub": own})
    reporter = CommitmentReporter(storage_commitment(remote.runtime), poll_interval=0.05)
    reporter.start()
    try:
        references = remote.store(tmp_path / "files", 2)
        transaction = request_commitment(local.settings, remote.peer, references, service, wait=0)
        assert transaction.state is State.REQUESTED
        current = _settled(local, transaction.id)
    finally:
        reporter.stop()
        remote.stop()
    assert current.state is State.COMMITTED
    assert len(current.committed) == 2
    assert "event type 1 from REMOTE@127.0.0.1" in local.commitments.events(current.id)[-1][2]


def test_without_a_wait_an_unknown_requester_is_refused_by_a_dicomhub_peer(
    local: Runtime, service: StorageCommitmentService, remote: Remote, tmp_path: Path
) -> None:
    references = remote.store(tmp_path / "files", 1)
    with pytest.raises(CommitmentRefused) as raised:
        request_commitment(local.settings, remote.peer, references, service, wait=0)
    assert raised.value.status == 0x0110
    assert "is not a declared peer" in str(raised.value)
    assert raised.value.transaction.state is State.FAILED


def test_a_forwarding_rule_with_commit_requests_commitment_of_what_it_delivered(
    settings: Settings, remote: Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = [
        ForwardRule(name="ct-archive", destinations=["remote"], modality=["CT"], commit=True),
        ForwardRule(name="mr-copy", destinations=["remote"], modality=["MR"]),
    ]
    runtime = open_runtime(
        settings.model_copy(
            update={
                "dicom_port": 0,
                "peers": {"remote": remote.peer},
                "forward": rules,
                "forward_poll_interval": 0.1,
                "commitment_wait": 30.0,
            }
        )
    )
    caplog.set_level(logging.INFO, logger="dicomhub.forward")
    forwarder = Forwarder(runtime)
    try:
        ct = [_ingest(runtime, tmp_path / "in", make_dataset(modality="CT")) for _ in range(2)]
        mr = make_dataset(modality="MR", sop_class=MRImageStorage)
        _ingest(runtime, tmp_path / "in", mr)
        forwarder.start()
        assert _wait(lambda: bool(runtime.commitments.list(Role.SCU))), "no request made"
        (requested,) = runtime.commitments.list(Role.SCU)
        transaction = _settled(runtime, requested.id)
    finally:
        forwarder.stop(timeout=30)
        runtime.close()
    assert transaction.state is State.COMMITTED
    assert transaction.peer_ae_title == "REMOTE"
    assert sorted(i.sop_instance_uid for i in transaction.committed) == sorted(ct)
    assert remote.runtime.repository.get_instance(str(mr.SOPInstanceUID)) is not None
    assert any(
        f"storage commitment {transaction.transaction_uid} of 2 instances: committed" in m
        for m in caplog.messages
    ), caplog.messages


def _ingest(runtime: Runtime, folder: Path, ds: Dataset) -> str:
    path = write_file(ds, folder / f"{ds.SOPInstanceUID}.dcm")
    runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    return str(ds.SOPInstanceUID)


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# Scripted pynetdicom SCPs -----------------------------------------------------------------


class ScriptedSCP:
    """A pynetdicom Storage Commitment SCP: answers N-ACTION with ``status`` and, when told
    where, reports on a new association to the requester's listener."""

    def __init__(self, status: int = 0x0000, comment: str = "") -> None:
        self.status = status
        self.comment = comment
        self.requests: list[Dataset] = []
        self.report_to: PeerConfig | None = None
        self.report_statuses: list[int] = []
        self.reported = threading.Event()
        ae = AE(ae_title="PEERSCP")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        ae.add_supported_context(COMMITMENT, scu_role=True, scp_role=True)
        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_N_ACTION, self.on_action)]
        )
        assert server is not None
        self.server = server
        self.peer = PeerConfig(ae_title="PEERSCP", host="127.0.0.1", port=server.server_address[1])

    def on_action(self, event: Any) -> tuple[Dataset, None]:
        data = event.action_information
        self.requests.append(data)
        if self.report_to is not None:
            threading.Thread(target=self.report, args=(data,), daemon=True).start()
        status = Dataset()
        status.Status = self.status
        if self.comment:
            status.ErrorComment = self.comment
        return status, None

    def report(self, request: Dataset) -> None:
        """Everything committed, on a new association to ``report_to`` (SCP role taken)."""
        assert self.report_to is not None
        data = Dataset()
        data.TransactionUID = request.TransactionUID
        data.ReferencedSOPSequence = list(request.ReferencedSOPSequence)
        ae = AE(ae_title="PEERSCP")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        ae.add_requested_context(COMMITMENT)
        assoc = ae.associate(
            self.report_to.host,
            self.report_to.port,
            ae_title=self.report_to.ae_title,
            ext_neg=[build_role(COMMITMENT, scp_role=True)],
        )
        try:
            assert assoc.is_established
            status, _ = assoc.send_n_event_report(data, 1, COMMITMENT, INSTANCE)
            self.report_statuses.append(int(status.Status))
        finally:
            assoc.release()
            self.reported.set()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def scripted() -> Iterator[ScriptedSCP]:
    scp = ScriptedSCP()
    yield scp
    scp.stop()


def _own_address(local: Runtime, listener: Listener) -> PeerConfig:
    return PeerConfig(ae_title=local.settings.ae_title, host="127.0.0.1", port=listener.port)


def test_a_refused_request_fails_the_transaction(
    local: Runtime, service: StorageCommitmentService
) -> None:
    scp = ScriptedSCP(status=0x0110, comment="archive offline")
    try:
        with pytest.raises(CommitmentRefused) as raised:
            request_commitment(
                local.settings, scp.peer, [(CTImageStorage, "1.2.3.4")], service, wait=5
            )
    finally:
        scp.stop()
    assert raised.value.status == 0x0110
    assert "refused the request with status 0x0110 (archive offline)" in str(raised.value)
    transaction = raised.value.transaction
    assert transaction.state is State.FAILED
    assert "0x0110" in transaction.last_error and "archive offline" in transaction.last_error
    assert _events(local, transaction.id) == ["requested", "refused"]
    (request,) = scp.requests
    assert request.TransactionUID == transaction.transaction_uid
    assert [
        (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID) for i in request.ReferencedSOPSequence
    ] == [(CTImageStorage, "1.2.3.4")]


def test_a_report_arriving_later_on_the_listener_is_recorded(
    local: Runtime,
    service: StorageCommitmentService,
    listener: Listener,
    scripted: ScriptedSCP,
) -> None:
    references = [(CTImageStorage, str(generate_uid())) for _ in range(2)]
    transaction = request_commitment(local.settings, scripted.peer, references, service, wait=0)
    assert transaction.state is State.REQUESTED
    assert transaction.completed_at is None
    # The peer reports on a new association once the requester has released.
    scripted.report_to = _own_address(local, listener)
    scripted.report(scripted.requests[0])
    assert scripted.report_statuses == [0x0000]
    done = local.commitments.get(transaction.id)
    assert done is not None and done.state is State.COMMITTED
    assert {i.outcome for i in done.items} == {Outcome.COMMITTED}
    assert _events(local, transaction.id) == ["requested", "report-received"]
    assert "from PEERSCP@127.0.0.1" in local.commitments.events(transaction.id)[-1][2]


def test_a_report_on_the_listener_ends_the_wait(
    local: Runtime,
    service: StorageCommitmentService,
    listener: Listener,
    scripted: ScriptedSCP,
) -> None:
    scripted.report_to = _own_address(local, listener)
    started = time.monotonic()
    transaction = request_commitment(
        local.settings, scripted.peer, [(CTImageStorage, str(generate_uid()))], service, wait=120
    )
    assert transaction.state is State.COMMITTED
    assert time.monotonic() - started < 60, "the wait did not end when the report came"
    assert scripted.reported.wait(30) and scripted.report_statuses == [0x0000]


def test_no_report_leaves_the_request_waiting_until_it_times_out(
    local: Runtime, service: StorageCommitmentService, scripted: ScriptedSCP
) -> None:
    transaction = request_commitment(
        local.settings, scripted.peer, [(CTImageStorage, str(generate_uid()))], service, wait=0.3
    )
    assert transaction.state is State.REQUESTED
    assert local.commitments.time_out(Role.SCU, State.REQUESTED, 3600) == []
    assert local.commitments.time_out(Role.SCU, State.REQUESTED, 0) == [transaction.id]
    timed_out = local.commitments.get(transaction.id)
    assert timed_out is not None and timed_out.state is State.TIMED_OUT
    assert "no report within" in timed_out.last_error
    assert _events(local, transaction.id) == ["requested", "timed-out"]


def test_a_peer_that_is_down_fails_the_transaction_at_once(
    local: Runtime, service: StorageCommitmentService
) -> None:
    peer = PeerConfig(ae_title="NOBODY", host="127.0.0.1", port=free_port())
    with pytest.raises(PeerUnavailable) as raised:
        request_commitment(local.settings, peer, [(CTImageStorage, "1.2.3.4")], service, wait=5)
    assert isinstance(raised.value, CommitmentUnreachable)
    assert "storage commitment not requested: cannot connect to NOBODY@127.0.0.1" in str(
        raised.value
    )
    (transaction,) = local.commitments.list(Role.SCU)
    assert transaction.state is State.FAILED
    assert transaction.completed_at is not None
    assert "cannot connect to NOBODY@127.0.0.1" in transaction.last_error
    assert _events(local, transaction.id) == ["requested", "not-requested"]


# An SCP that reports before the N-ACTION response -----------------------------------------


class ReportFirstSCP:
    """One association, on the engine's codecs: the report goes out BEFORE the N-ACTION
    response, which then comes without MessageIDBeingRespondedTo."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.peer = PeerConfig(
            ae_title="FIRSTSCP", host="127.0.0.1", port=self.sock.getsockname()[1]
        )
        self.roles: list[tuple[bool | None, bool | None]] = []
        self.report_response: dict[str, Any] = {}
        self.released = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(30)
                self._session(conn)
        except BaseException as exc:
            self.error = exc

    @staticmethod
    def _exactly(conn: socket.socket, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = conn.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _pdu(self, conn: socket.socket) -> tuple[int, bytes, bytes]:
        header = self._exactly(conn, 6)
        pdu_type, _, length = pdu.HEADER.unpack(header)
        body = self._exactly(conn, length)
        return pdu_type, header, body

    def _message(self, conn: socket.socket) -> tuple[dict[str, Any], bytes | None]:
        command, data = b"", b""
        decoded: dict[str, Any] | None = None
        while True:
            pdu_type, _, body = self._pdu(conn)
            assert pdu_type == pdu.P_DATA_TF, f"PDU 0x{pdu_type:02X}"
            for item in pdu.iter_pdvs(body):
                if item.is_command:
                    command += item.data
                    if item.is_last:
                        decoded = cmd.decode_command(command)
                        if decoded.get("CommandDataSetType") == cmd.NO_DATA_SET:
                            return decoded, None
                else:
                    data += item.data
                    if item.is_last:
                        assert decoded is not None
                        return decoded, data

    def _session(self, conn: socket.socket) -> None:
        pdu_type, header, body = self._pdu(conn)
        assert pdu_type == pdu.A_ASSOCIATE_RQ
        request = decode_request(header + body)
        self.roles = [
            (item.scu_role, item.scp_role)
            for item in request.primitive.user_information
            if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
        ]
        context = PresentationContext()
        context.abstract_syntax = COMMITMENT
        context.transfer_syntax = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        context.scu_role = True
        context.scp_role = True
        answer, accepted = accept(request, [context], 16384)
        conn.sendall(answer)
        ((context_id, accepted_context),) = accepted.items()
        implicit = accepted_context.transfer_syntax.is_implicit_VR
        max_pdu = request.peer_max_pdu or 16384

        action, data = self._message(conn)
        assert action["CommandField"] == cmd.N_ACTION_RQ
        assert data is not None
        asked = decode(BytesIO(data), implicit, True)
        report = Dataset()
        report.TransactionUID = asked.TransactionUID
        report.ReferencedSOPSequence = list(asked.ReferencedSOPSequence)
        encoded = encode(report, implicit, True)
        assert encoded is not None
        event = cmd.encode_command(
            AffectedSOPClassUID=COMMITMENT,
            CommandField=cmd.N_EVENT_REPORT_RQ,
            MessageID=7,
            CommandDataSetType=cmd.DATA_SET_PRESENT,
            AffectedSOPInstanceUID=INSTANCE,
            EventTypeID=1,
        )
        for piece in pdu.p_data(context_id, True, event, max_pdu):
            conn.sendall(piece)
        for piece in pdu.p_data(context_id, False, bytes(encoded), max_pdu):
            conn.sendall(piece)
        self.report_response, _ = self._message(conn)

        response = cmd.encode_command(
            AffectedSOPClassUID=COMMITMENT,
            CommandField=cmd.N_ACTION_RSP,
            CommandDataSetType=cmd.NO_DATA_SET,
            Status=0x0000,
            AffectedSOPInstanceUID=INSTANCE,
            ActionTypeID=1,
        )
        for piece in pdu.p_data(context_id, True, response, max_pdu):
            conn.sendall(piece)
        pdu_type, _, _ = self._pdu(conn)
        assert pdu_type == pdu.A_RELEASE_RQ
        conn.sendall(pdu.release_rp())
        self.released = True

    def stop(self) -> None:
        self.thread.join(30)
        self.sock.close()


def test_a_report_before_the_n_action_response_is_answered_and_recorded(
    local: Runtime, service: StorageCommitmentService
) -> None:
    scp = ReportFirstSCP()
    references = [(CTImageStorage, str(generate_uid())) for _ in range(3)]
    try:
        transaction = request_commitment(local.settings, scp.peer, references, service, wait=30)
    finally:
        scp.stop()
    assert scp.error is None, repr(scp.error)
    assert scp.roles == [(True, True)], "dicomhub proposes both roles for Storage Commitment"
    assert transaction.state is State.COMMITTED
    assert len(transaction.committed) == 3
    answer = scp.report_response
    assert answer["CommandField"] == cmd.N_EVENT_REPORT_RSP
    assert answer["MessageIDBeingRespondedTo"] == 7
    assert answer["Status"] == 0x0000
    assert answer["EventTypeID"] == 1
    assert answer["AffectedSOPInstanceUID"] == INSTANCE
    assert scp.released, "the association was not released after the report"
