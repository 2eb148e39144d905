"""Real associations against the in-process acceptor: echo, store, find, access, failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from sqlalchemy import func, select

from dicomhub.config import PeerConfig, Service
from dicomhub.dicom.engine.acceptor import AsyncioDicomServer
from dicomhub.dicom.server import DicomServer, Listener
from dicomhub.index.query import FindService, InformationModel
from dicomhub.index.schema import instances
from dicomhub.runtime import Runtime
from tests.dicom.conftest import (
    ServerFactory,
    associate,
    association_answer,
    rejection,
)
from tests.factories import make_dataset, write_file
from tests.faults import fill_disk


def _instance_count(server: Listener) -> int:
    with server.runtime.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(instances)).scalar_one())


def _files(server: Listener) -> list[str]:
    """Live blobs plus anything left in the staging area."""
    blobs = server.runtime.blobs
    return sorted(blobs.all_keys()) + [p.name for p in blobs.staged_files()]


def test_echo_and_tcp_nodelay(server: Listener) -> None:
    assoc = associate(server, [Verification])
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0x0000
        sock = _accepted_socket(server)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()


def _accepted_socket(server: Listener) -> socket.socket:
    """The server side socket of the one open association, for either engine."""
    if isinstance(server, DicomServer):
        accepted = [a for a in server.ae.active_associations if a.is_acceptor]
        assoc_socket = accepted[0].dul.socket
        assert assoc_socket is not None and assoc_socket.socket is not None
        return assoc_socket.socket
    assert isinstance(server, AsyncioDicomServer)
    (association,) = server.engine.active
    sock: socket.socket = association.stream.get_extra_info("socket")
    return sock


def test_store_is_byte_identical_and_findable(
    server: Listener, tmp_path: Path, chunked_send: None
) -> None:
    path = write_file(make_dataset(rows=128), tmp_path / "ct.dcm")
    assoc = associate(
        server,
        [CTImageStorage, StudyRootQueryRetrieveInformationModelFind],
        transfer_syntaxes=[ExplicitVRLittleEndian],
    )
    try:
        status = assoc.send_c_store(path)
        assert status.Status == 0x0000
    finally:
        assoc.release()
    sop_uid = str(dcmread(path).SOPInstanceUID)
    stored = server.runtime.repository.get_instance(sop_uid)
    assert stored is not None
    with server.runtime.blobs.open(stored.blob_key) as blob:
        data = blob.read()
    parsed = dcmread(path)
    original = path.read_bytes()
    assert data[_meta_length(data) :] == original[_meta_length(original) :]
    assert stored.transfer_syntax_uid == ExplicitVRLittleEndian
    assert parsed.PatientName == "DOE^JOHN"
    assert server.runtime.blobs.staged_files() == []


def _meta_length(data: bytes) -> int:
    """Offset of the data set in a Part 10 byte string."""
    import struct

    group_length = struct.unpack("<L", data[140:144])[0]
    return 144 + int(group_length)


@pytest.mark.parametrize(
    ("field", "status"),
    [("class", 0xA900), ("instance", 0xC001)],
)
def test_command_data_set_mismatch(
    server: Listener, tmp_path: Path, chunked_send: None, field: str, status: int
) -> None:
    """The command's UIDs come from the file meta, which is edited in place to differ."""
    ds = make_dataset(sop_uid="1.2.826.0.1.3680043.10.77.1")
    path = write_file(ds, tmp_path / "x.dcm")
    data = path.read_bytes()
    meta_end = _meta_length(data)
    old, new = (
        (CTImageStorage, MRImageStorage)
        if field == "class"
        else ("1.2.826.0.1.3680043.10.77.1", "1.2.826.0.1.3680043.10.77.2")
    )
    meta = data[:meta_end].replace(old.encode(), new.encode(), 1)
    assert meta != data[:meta_end]
    path.write_bytes(meta + data[meta_end:])
    assoc = associate(
        server, [CTImageStorage, MRImageStorage], transfer_syntaxes=[ExplicitVRLittleEndian]
    )
    try:
        response = assoc.send_c_store(path)
    finally:
        assoc.release()
    assert response.Status == status
    assert "differs from the command" in response.ErrorComment
    assert _instance_count(server) == 0
    assert _files(server) == []


@pytest.mark.parametrize("bad_uid", ["../x", "1." + "2" * 63, "1.2.abc"])
def test_invalid_uid_refused(
    server: Listener, tmp_path: Path, chunked_send: None, bad_uid: str
) -> None:
    ds = make_dataset()
    ds.StudyInstanceUID = bad_uid
    path = write_file(ds, tmp_path / "x.dcm")
    assoc = associate(server, [CTImageStorage], transfer_syntaxes=[ExplicitVRLittleEndian])
    try:
        response = assoc.send_c_store(path)
    finally:
        assoc.release()
    assert response.Status == 0xC001
    assert "not a valid UID" in response.ErrorComment
    assert _instance_count(server) == 0
    assert _files(server) == []


def test_truncated_data_set_refused(server: Listener, tmp_path: Path, chunked_send: None) -> None:
    path = write_file(make_dataset(rows=64), tmp_path / "x.dcm")
    path.write_bytes(path.read_bytes()[:-1000])
    assoc = associate(server, [CTImageStorage], transfer_syntaxes=[ExplicitVRLittleEndian])
    try:
        response = assoc.send_c_store(path)
    finally:
        assoc.release()
    assert response.Status == 0xC000
    assert "truncated" in response.ErrorComment
    assert _files(server) == []


def test_disk_full_gives_a700_and_leaves_nothing(
    server: Listener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill_disk(monkeypatch)
    assoc = associate(server, [CTImageStorage])
    try:
        response = assoc.send_c_store(make_dataset(rows=512))
        assert response.Status == 0xA700
        assert "No space left" in response.ErrorComment
        assert assoc.send_c_store(make_dataset(rows=4)).Status == 0xA700
    finally:
        assoc.release()
    assert _instance_count(server) == 0
    assert _files(server) == []
    assert "refused: 0xA700" in caplog.text


def test_duplicate_policy_over_the_network(server: Listener) -> None:
    ds = make_dataset(sop_uid="1.2.826.0.1.3680043.10.5.1")
    assoc = associate(server, [CTImageStorage])
    try:
        assert assoc.send_c_store(ds).Status == 0x0000
        assert assoc.send_c_store(ds).Status == 0x0000  # identical: success, one copy
        ds.PatientName = "CHANGED^NAME"
        response = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert response.Status == 0x0111
    assert _instance_count(server) == 1
    assert len(_files(server)) == 1


def test_eight_concurrent_associations_on_sqlite(
    server: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    statuses: list[int] = []
    lock = threading.Lock()
    study = generate_uid()

    def sender(index: int) -> None:
        assoc = associate(server, [CTImageStorage], calling=f"SCU{index}")
        assert assoc.is_established
        try:
            for _ in range(15):
                ds = make_dataset(
                    study_uid=study, patient_id="P8", series_uid=f"1.2.826.0.1.3680043.10.8.{index}"
                )
                status = int(assoc.send_c_store(ds).Status)
                with lock:
                    statuses.append(status)
        finally:
            assoc.release()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses == [0] * 120
    assert _instance_count(server) == 120
    assert "locked" not in caplog.text
    results = list(server.runtime.finder.find(_study_query(study), InformationModel.STUDY_ROOT))
    assert len(results) == 1
    assert results[0].NumberOfStudyRelatedInstances == 120
    assert results[0].NumberOfStudyRelatedSeries == 8


def _study_query(study: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    query.NumberOfStudyRelatedInstances = ""
    query.NumberOfStudyRelatedSeries = ""
    return query


def test_find_over_the_network_and_failure_status(server: Listener) -> None:
    ds = make_dataset(patient_name="NET^TEST", patient_id="NET1")
    assoc = associate(
        server,
        [
            CTImageStorage,
            PatientRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelFind,
        ],
    )
    try:
        assert assoc.send_c_store(ds).Status == 0
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientName = "NET*"
        query.StudyInstanceUID = ""
        responses = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        assert [r[0].Status for r in responses] == [0xFF00, 0x0000]
        identifier = responses[0][1]
        assert identifier is not None
        assert identifier.StudyInstanceUID == ds.StudyInstanceUID
        bad = Dataset()
        bad.QueryRetrieveLevel = "SERIES"
        bad.SeriesInstanceUID = ""
        responses = list(assoc.send_c_find(bad, StudyRootQueryRetrieveInformationModelFind))
        assert len(responses) == 1
        assert responses[0][0].Status == 0xA900
        assert "StudyInstanceUID" in responses[0][0].ErrorComment
        bad.QueryRetrieveLevel = "STUDY"
        responses = list(assoc.send_c_find(bad, PatientRootQueryRetrieveInformationModelFind))
        assert responses[0][0].Status == 0xA900
        assert "PatientID" in responses[0][0].ErrorComment
    finally:
        assoc.release()


def test_c_cancel_stops_a_find(server: Listener) -> None:
    """C-CANCEL sent after the first pending response ends the find with 0xFE00."""
    study = generate_uid()
    assoc = associate(server, [CTImageStorage, StudyRootQueryRetrieveInformationModelFind])
    try:
        series_uid = generate_uid()
        for _ in range(300):
            assert (
                assoc.send_c_store(
                    make_dataset(study_uid=study, series_uid=series_uid, rows=2)
                ).Status
                == 0
            )
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study
        query.SeriesInstanceUID = series_uid
        query.SOPInstanceUID = ""
        statuses = []
        for status, _identifier in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind, msg_id=7
        ):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, query_model=StudyRootQueryRetrieveInformationModelFind)
    finally:
        assoc.release()
    assert statuses[-1] == 0xFE00, f"{len(statuses)} responses, last 0x{statuses[-1]:04X}"
    assert statuses.count(0xFF00) < 300


def test_cancel_checked_before_every_match(runtime: Runtime) -> None:
    """QueryService stops at the first match after is_cancelled turns true."""
    from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
    from dicomhub.dicom.services.query import QueryService

    class ThreeMatches(FindService):
        def find(
            self, identifier: Dataset, model: InformationModel, *, relational: bool = False
        ) -> Iterator[Dataset]:
            yield from (Dataset(), Dataset(), Dataset())

    service = QueryService(ThreeMatches(runtime.db), AccessPolicy(runtime.settings))
    checks = iter([False, True, True])
    results = list(
        service.find(
            AssociationInfo("A", "B", "h", 1),
            Dataset(),
            InformationModel.STUDY_ROOT,
            lambda: next(checks),
        )
    )
    assert [status for status, _ in results] == [0xFF00, 0xFE00]


def test_unknown_calling_ae_refused_when_restricted(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    peers = {"ct": PeerConfig(ae_title="CT1", host="127.0.0.1", port=104)}
    server = server_factory(allow_unknown_calling_ae=False, peers=peers)
    assert association_answer(server, "STRANGER") == rejection(1, 1, 3)
    assert "calling AE title 'STRANGER' is not a declared peer" in caplog.text
    accepted = associate(server, [Verification], calling="CT1")
    assert accepted.is_established
    accepted.release()


def test_called_ae_checked_when_configured(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(check_called_ae=True)
    assert association_answer(server, "TESTSCU", "ANY-SCP") == rejection(1, 1, 7)
    assert "called AE title 'ANY-SCP' is not 'DICOMHUB'" in caplog.text


def test_peer_limited_to_its_services(server_factory: ServerFactory) -> None:
    peers = {
        "ws": PeerConfig(
            ae_title="WS1",
            host="127.0.0.1",
            port=104,
            services=[Service.VERIFICATION, Service.QUERY],
        )
    }
    server = server_factory(peers=peers)
    assoc = associate(server, [CTImageStorage, Verification], calling="WS1")
    try:
        assert assoc.send_c_echo().Status == 0
        response = assoc.send_c_store(make_dataset())
    finally:
        assoc.release()
    assert response.Status == 0x0124
    assert "may not use storage" in response.ErrorComment
    assert _files(server) == []


def test_maximum_associations(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(max_associations=1)
    first = associate(server, [Verification])
    try:
        assert association_answer(server, "SECOND") == rejection(2, 3, 2)
        assert "maximum of 1 associations reached" in caplog.text
    finally:
        first.release()


_SEND_FILE = """
import sys
from pynetdicom import AE, _config
from pydicom.uid import ExplicitVRLittleEndian
_config.STORE_SEND_CHUNKED_DATASET = True
ae = AE(ae_title="BIGSCU")
ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", [ExplicitVRLittleEndian])
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="DICOMHUB")
status = assoc.send_c_store(sys.argv[2])
assoc.release()
print(f"0x{status.Status:04X}")
"""


def test_large_object_streams_with_flat_memory(server: Listener, tmp_path: Path) -> None:
    """A 64 MiB object sent from another process: the server holds a bounded few MiB of it."""
    ds = make_dataset(rows=8)
    ds.Rows, ds.Columns = 4096, 8192
    ds.PixelData = b"\x01\x02" * (4096 * 8192)
    path = write_file(ds, tmp_path / "big.dcm")
    del ds
    tracemalloc.start()
    try:
        sender = subprocess.run(
            [sys.executable, "-c", _SEND_FILE, str(server.port), str(path)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sender.stdout.strip() == "0x0000", sender.stderr
    assert peak < 8 * 1024 * 1024, f"server peak traced memory {peak} bytes for 64 MiB"
    (key,) = server.runtime.blobs.all_keys()
    assert server.runtime.blobs.path_for(key).stat().st_size > 64 * 1024 * 1024  # a file


def test_late_c_cancel_does_not_cancel_the_next_find(server: Listener) -> None:
    ds = make_dataset(patient_name="LATE^CANCEL")
    assoc = associate(server, [CTImageStorage, StudyRootQueryRetrieveInformationModelFind])
    try:
        assert assoc.send_c_store(ds).Status == 0
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientName = "LATE*"
        query.StudyInstanceUID = ""
        model = StudyRootQueryRetrieveInformationModelFind
        first = [s.Status for s, _ in assoc.send_c_find(query, model, msg_id=7)]
        assoc.send_c_cancel(7, query_model=model)  # arrives after the find ended
        second = [s.Status for s, _ in assoc.send_c_find(query, model, msg_id=7)]
    finally:
        assoc.release()
    assert first == second == [0xFF00, 0x0000]


def test_slow_request_is_not_an_idle_association(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idle timer does not run while dicomhub itself is busy with a request."""
    server = server_factory(network_timeout=1.0)
    store = server.runtime.ingest.store

    def slow_store(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.5)
        return store(*args, **kwargs)

    monkeypatch.setattr(server.runtime.ingest, "store", slow_store)
    assoc = associate(server, [CTImageStorage])
    try:
        assert assoc.send_c_store(make_dataset()).Status == 0x0000
    finally:
        assoc.release()
