"""dicomhub's outbound associations against real acceptors (dicomhub and pynetdicom)."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, RLELossless
from pynetdicom import AE, _config, evt

from dicomhub.config import PeerConfig
from dicomhub.dicom.scu import Association, StoreSCU
from dicomhub.errors import PeerUnavailable
from dicomhub.index.repository import StoredInstance
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime
from tests.dicom.conftest import ServerFactory
from tests.factories import make_dataset, write_file


@pytest.fixture
def engine() -> str:
    return "asyncio"


class CTOnly:
    """A pynetdicom storage SCP that accepts CT images only."""

    def __init__(self) -> None:
        self.received: dict[str, bytes] = {}
        ae = AE(ae_title="CTONLY")
        ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian])
        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        assert server is not None
        self.server = server
        self.peer = PeerConfig(
            ae_title="CTONLY", host="127.0.0.1", port=int(self.server.server_address[1])
        )

    def _on_store(self, event: Any) -> int:
        self.received[str(event.request.AffectedSOPInstanceUID)] = bytes(
            event.request.DataSet.getvalue()
        )
        return 0x0000


@pytest.fixture
def ct_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[CTOnly]:
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    scp = CTOnly()
    yield scp
    scp.server.shutdown()


def _stored(runtime: Runtime, tmp_path: Path, sop_class: str) -> StoredInstance:
    ds = make_dataset(sop_class=sop_class, modality="CT" if sop_class == CTImageStorage else "MR")
    path = write_file(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm")
    runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    stored = runtime.repository.get_instance(str(ds.SOPInstanceUID))
    assert stored is not None
    return stored


def test_an_instance_without_an_accepted_context_fails_alone(
    runtime: Runtime, ct_only: CTOnly, tmp_path: Path
) -> None:
    ct, mr = _stored(runtime, tmp_path, CTImageStorage), _stored(runtime, tmp_path, MRImageStorage)
    with StoreSCU(runtime.settings, ct_only.peer, runtime.blobs, [ct, mr]) as scu:
        sent, refused = scu.send(ct), scu.send(mr)
    assert sent.ok and sent.status == 0x0000
    assert sent.transfer_syntax_uid == ExplicitVRLittleEndian
    assert not refused.ok
    assert "accepted no context for MR Image Storage" in refused.comment
    assert list(ct_only.received) == [ct.sop_instance_uid]


def test_a_peer_that_accepts_nothing_is_unavailable(
    runtime: Runtime, ct_only: CTOnly, tmp_path: Path
) -> None:
    mr = _stored(runtime, tmp_path, MRImageStorage)
    with (
        pytest.raises(PeerUnavailable, match="accepted none of the proposed"),
        StoreSCU(runtime.settings, ct_only.peer, runtime.blobs, [mr]),
    ):
        pass


def test_a_rejection_is_reported_with_its_reason(
    server_factory: ServerFactory, runtime: Runtime
) -> None:
    server = server_factory(check_called_ae=True)
    peer = PeerConfig(ae_title="SOMEONE", host="127.0.0.1", port=server.port)
    association = Association(
        runtime.settings, peer, [("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])]
    )
    with pytest.raises(PeerUnavailable, match=r"permanent: called AE title not recognised"):
        association.open()


def test_echo_and_release(server_factory: ServerFactory, runtime: Runtime) -> None:
    server = server_factory()
    peer = PeerConfig(ae_title="DICOMHUB", host="127.0.0.1", port=server.port)
    with Association(
        runtime.settings, peer, [("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])]
    ) as association:
        assert association.echo() == 0x0000
        assert association.echo() == 0x0000
        assert association.sock is not None
    assert association.sock is None


def test_a_receiver_of_rle_only_gets_the_instance_compressed(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", False)
    arrived: dict[str, tuple[bytes, str]] = {}

    def on_store(event: Any) -> int:
        arrived[str(event.request.AffectedSOPInstanceUID)] = (
            bytes(event.request.DataSet.getvalue()),
            str(event.context.transfer_syntax),
        )
        return 0x0000

    ae = AE(ae_title="RLEONLY")
    ae.add_supported_context(CTImageStorage, [RLELossless])
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert server is not None
    try:
        ct = _stored(runtime, tmp_path, CTImageStorage)
        peer = PeerConfig(ae_title="RLEONLY", host="127.0.0.1", port=int(server.server_address[1]))
        with StoreSCU(runtime.settings, peer, runtime.blobs, [ct]) as scu:
            result = scu.send(ct)
    finally:
        server.shutdown()
    assert result.ok, result.comment
    assert result.transfer_syntax_uid == RLELossless
    data, syntax = arrived[ct.sop_instance_uid]
    assert syntax == RLELossless
    received = read_dataset(BytesIO(data), is_implicit_VR=False, is_little_endian=True)
    received.file_meta = FileMetaDataset()
    received.file_meta.TransferSyntaxUID = RLELossless
    with runtime.blobs.open(ct.blob_key) as stream:
        original = dcmread(stream)
    assert (received.pixel_array == original.pixel_array).all()
