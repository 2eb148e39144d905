"""C-MOVE and C-GET on the asyncio engine, driven by pynetdicom SCUs in-process.

Move destinations are pynetdicom storage SCPs; what they receive is compared byte for byte
with the stored data sets.  DCMTK and Orthanc drive the same services in ``tests/interop``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)
from pynetdicom import AE, _config, build_role, evt

from dicomhub.config import PeerConfig
from dicomhub.conformance import (
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
)
from dicomhub.dicom.server import Listener
from dicomhub.ingest import IngestRequest
from tests.dicom.conftest import ServerFactory, associate
from tests.factories import make_dataset, write_file


@pytest.fixture
def engine() -> str:
    """C-MOVE and C-GET are served by the asyncio engine."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _datasets_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pynetdicom peers here keep received data sets in memory (another test may have
    switched pynetdicom to streaming them to files)."""
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)


class Destination:
    """A pynetdicom storage SCP recording the raw data sets it receives."""

    def __init__(self, ae_title: str = "DEST", *, syntaxes: list[str] | None = None) -> None:
        self.received: dict[str, bytes] = {}
        self.syntaxes: dict[str, str] = {}
        self.lock = threading.Lock()
        ae = AE(ae_title=ae_title)
        ae.add_supported_context(CTImageStorage, syntaxes or [ExplicitVRLittleEndian])
        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        assert server is not None
        self.server = server
        self.port = int(self.server.server_address[1])

    def _on_store(self, event: Any) -> int:
        with self.lock:
            uid = str(event.request.AffectedSOPInstanceUID)
            self.received[uid] = bytes(event.request.DataSet.getvalue())
            self.syntaxes[uid] = str(event.context.transfer_syntax)
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def destination() -> Iterator[Destination]:
    dest = Destination()
    yield dest
    dest.stop()


def _store_study(
    server: Listener, tmp_path: Path, count: int, syntax: str = str(ExplicitVRLittleEndian)
) -> tuple[Dataset, list[str]]:
    study, series = generate_uid(), generate_uid()
    uids = []
    first: Dataset | None = None
    for n in range(count):
        ds = make_dataset(study_uid=study, series_uid=series, rows=16)
        first = first or ds
        path = write_file(ds, tmp_path / f"{n}.dcm", syntax)
        server.runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
        uids.append(str(ds.SOPInstanceUID))
    assert first is not None
    return first, uids


def _content_sha256(server: Listener, uid: str) -> str:
    stored = server.runtime.repository.get_instance(uid)
    assert stored is not None
    return stored.content_sha256


def _identifier(level: str, **keys: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def _with_destination(server_factory: ServerFactory, dest: Destination) -> Listener:
    peer = PeerConfig(ae_title="DEST", host="127.0.0.1", port=dest.port)
    return server_factory(peers={"dest": peer})


@pytest.mark.parametrize(
    ("model", "level"),
    [
        (STUDY_ROOT_MOVE, "STUDY"),
        (STUDY_ROOT_MOVE, "SERIES"),
        (STUDY_ROOT_MOVE, "IMAGE"),
        (PATIENT_ROOT_MOVE, "PATIENT"),
        (PATIENT_ROOT_MOVE, "STUDY"),
    ],
)
def test_move_sends_the_stored_bytes(
    server_factory: ServerFactory,
    destination: Destination,
    tmp_path: Path,
    model: str,
    level: str,
) -> None:
    server = _with_destination(server_factory, destination)
    first, uids = _store_study(server, tmp_path, 3)
    keys = {
        "PATIENT": {"PatientID": first.PatientID},
        "STUDY": {"PatientID": first.PatientID, "StudyInstanceUID": first.StudyInstanceUID},
        "SERIES": {
            "StudyInstanceUID": first.StudyInstanceUID,
            "SeriesInstanceUID": first.SeriesInstanceUID,
        },
        "IMAGE": {
            "StudyInstanceUID": first.StudyInstanceUID,
            "SeriesInstanceUID": first.SeriesInstanceUID,
            "SOPInstanceUID": "\\".join(uids[:2]),
        },
    }[level]
    expected = uids[:2] if level == "IMAGE" else uids
    assoc = associate(server, [model])
    assert assoc.is_established
    responses = list(assoc.send_c_move(_identifier(level, **keys), "DEST", model))
    assoc.release()
    statuses = [status.Status for status, _ in responses]
    assert statuses[-1] == 0x0000
    assert all(s == 0xFF00 for s in statuses[:-1])
    final = responses[-1][0]
    assert final.NumberOfCompletedSuboperations == len(expected)
    assert final.NumberOfFailedSuboperations == 0
    assert sorted(destination.received) == sorted(expected)
    for uid in expected:
        digest = hashlib.sha256(destination.received[uid]).hexdigest()
        assert digest == _content_sha256(server, uid)


def test_move_to_an_unknown_destination_is_refused(
    server_factory: ServerFactory, destination: Destination, tmp_path: Path
) -> None:
    server = _with_destination(server_factory, destination)
    first, _ = _store_study(server, tmp_path, 1)
    model = STUDY_ROOT_MOVE
    assoc = associate(server, [model])
    identifier = _identifier("STUDY", StudyInstanceUID=first.StudyInstanceUID)
    ((status, _),) = list(assoc.send_c_move(identifier, "NOWHERE", model))
    assoc.release()
    assert status.Status == 0xA801
    assert "NOWHERE" in status.ErrorComment
    assert destination.received == {}


def test_move_to_a_destination_that_is_down(server_factory: ServerFactory, tmp_path: Path) -> None:
    dest = Destination()
    dest.stop()
    server = _with_destination(server_factory, dest)
    first, uids = _store_study(server, tmp_path, 2)
    model = STUDY_ROOT_MOVE
    assoc = associate(server, [model])
    identifier = _identifier("STUDY", StudyInstanceUID=first.StudyInstanceUID)
    responses = list(assoc.send_c_move(identifier, "DEST", model))
    assoc.release()
    status, failed = responses[-1]
    assert status.Status == 0xA702
    assert status.NumberOfFailedSuboperations == 2
    assert "cannot connect" in status.ErrorComment
    assert failed is not None
    assert sorted(failed.FailedSOPInstanceUIDList) == sorted(uids)


def test_move_without_the_key_of_its_level_is_refused(
    server_factory: ServerFactory, destination: Destination
) -> None:
    server = _with_destination(server_factory, destination)
    model = STUDY_ROOT_MOVE
    assoc = associate(server, [model])
    ((status, _),) = list(assoc.send_c_move(_identifier("SERIES"), "DEST", model))
    assoc.release()
    assert status.Status == 0xA900
    assert "SeriesInstanceUID" in status.ErrorComment


def test_move_of_nothing_succeeds_with_zero_counts(
    server_factory: ServerFactory, destination: Destination
) -> None:
    server = _with_destination(server_factory, destination)
    model = STUDY_ROOT_MOVE
    assoc = associate(server, [model])
    identifier = _identifier("STUDY", StudyInstanceUID=generate_uid())
    ((status, _),) = list(assoc.send_c_move(identifier, "DEST", model))
    assoc.release()
    assert status.Status == 0x0000
    assert status.NumberOfCompletedSuboperations == 0


def _get_scu(
    server: Listener, model: str, syntaxes: list[str], sop_class: str = CTImageStorage
) -> tuple[Any, dict[str, Any]]:
    received: dict[str, Any] = {}

    def on_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        received[uid] = (bytes(event.request.DataSet.getvalue()), event.context.transfer_syntax)
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.add_requested_context(model)
    ae.add_requested_context(sop_class, syntaxes)
    role = build_role(sop_class, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="DICOMHUB",
        ext_neg=[role],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    return assoc, received


@pytest.mark.parametrize(
    "model",
    [STUDY_ROOT_GET, PATIENT_ROOT_GET],
)
def test_get_sends_on_the_same_association(
    server_factory: ServerFactory, tmp_path: Path, model: str
) -> None:
    server = server_factory()
    first, uids = _store_study(server, tmp_path, 3)
    assoc, received = _get_scu(server, model, [ExplicitVRLittleEndian])
    assert assoc.is_established
    identifier = _identifier(
        "STUDY", PatientID=first.PatientID, StudyInstanceUID=first.StudyInstanceUID
    )
    responses = list(assoc.send_c_get(identifier, model))
    assoc.release()
    final = responses[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 3
    assert [r[0].NumberOfRemainingSuboperations for r in responses[:-1]] == [2, 1]
    assert sorted(received) == sorted(uids)
    for uid in uids:
        assert hashlib.sha256(received[uid][0]).hexdigest() == _content_sha256(server, uid)


def test_get_transcodes_when_the_stored_syntax_was_not_accepted(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    path = Path(str(get_testdata_file("MR_small_jp2klossless.dcm")))
    original = dcmread(path)
    assert original.file_meta.TransferSyntaxUID == JPEG2000Lossless
    server.runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    model = STUDY_ROOT_GET
    assoc, received = _get_scu(server, model, [ImplicitVRLittleEndian], original.SOPClassUID)
    identifier = _identifier("STUDY", StudyInstanceUID=original.StudyInstanceUID)
    responses = list(assoc.send_c_get(identifier, model))
    assoc.release()
    assert responses[-1][0].Status == 0x0000
    data, syntax = received[str(original.SOPInstanceUID)]
    assert syntax == ImplicitVRLittleEndian
    arrived = read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)
    arrived.file_meta = FileMetaDataset()
    arrived.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert (arrived.pixel_array == original.pixel_array).all()


def test_get_without_a_storage_context_fails_each_sub_operation(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    first, uids = _store_study(server, tmp_path, 2)
    model = STUDY_ROOT_GET
    assoc = associate(server, [model])
    identifier = _identifier("STUDY", StudyInstanceUID=first.StudyInstanceUID)
    responses = list(assoc.send_c_get(identifier, model))
    assoc.release()
    status, failed = responses[-1]
    assert status.Status == 0xB000
    assert status.NumberOfFailedSuboperations == 2
    assert failed is not None
    assert sorted(failed.FailedSOPInstanceUIDList) == sorted(uids)
