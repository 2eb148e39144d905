"""MPPS forwarding: accepted N-CREATE and N-SET replayed to a RIS, in order, durably."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from dicomhub.config import PeerConfig
from dicomhub.dicom.forwarder import Forwarder
from dicomhub.dicom.server import Listener
from dicomhub.index.forward_queue import QueueState
from tests.dicom.conftest import ServerFactory, associate
from tests.mpps_factories import n_create, n_set_final
from tests.ports import free_port

MPPS = "1.2.840.10008.3.1.2.3.3"


@pytest.fixture
def engine() -> str:
    return "asyncio"


class RIS:
    """A pynetdicom MPPS SCP recording the requests it receives, in order."""

    def __init__(self, port: int) -> None:
        self.requests: list[tuple[str, str, Dataset]] = []
        self.lock = threading.Lock()
        ae = AE(ae_title="RIS")
        ae.add_supported_context(MPPS)
        server = ae.start_server(
            ("127.0.0.1", port),
            block=False,
            evt_handlers=[(evt.EVT_N_CREATE, self._create), (evt.EVT_N_SET, self._set)],
        )
        assert server is not None
        self.server = server

    def _create(self, event: Any) -> tuple[int, Dataset]:
        with self.lock:
            uid = str(event.request.AffectedSOPInstanceUID)
            self.requests.append(("N-CREATE", uid, event.attribute_list))
        return 0x0000, event.attribute_list

    def _set(self, event: Any) -> tuple[int, Dataset]:
        with self.lock:
            uid = str(event.request.RequestedSOPInstanceUID)
            self.requests.append(("N-SET", uid, event.modification_list))
        return 0x0000, event.modification_list


def _perform(server: Listener) -> str:
    """A modality's whole procedure step against dicomhub: N-CREATE, then the final N-SET."""
    uid = generate_uid()
    assoc = associate(server, [MPPS], calling="MODALITY")
    try:
        assert assoc.send_n_create(n_create(), MPPS, uid)[0].Status == 0x0000
        assert assoc.send_n_set(n_set_final(), MPPS, uid)[0].Status == 0x0000
    finally:
        assoc.release()
    return uid


def _drain(forwarder: Forwarder, until: Any) -> None:
    for _ in range(100):
        forwarder.run_once()
        if until():
            return
        threading.Event().wait(0.05)


def test_requests_reach_the_ris_in_order(server_factory: ServerFactory) -> None:
    port = free_port()
    ris = RIS(port)
    try:
        server = server_factory(
            peers={"ris": PeerConfig(ae_title="RIS", host="127.0.0.1", port=port)},
            mpps_forward=["ris"],
        )
        uid = _perform(server)
        _drain(Forwarder(server.runtime), lambda: len(ris.requests) == 2)
    finally:
        ris.server.shutdown()
    assert [(action, sop) for action, sop, _ in ris.requests] == [
        ("N-CREATE", uid),
        ("N-SET", uid),
    ]
    assert ris.requests[0][2].PerformedProcedureStepStatus == "IN PROGRESS"
    assert ris.requests[1][2].PerformedProcedureStepStatus == "COMPLETED"
    counts = server.runtime.forward_queue.counts()
    assert counts.get(QueueState.DONE) == 2
    assert not counts.get(QueueState.PENDING)


def test_a_ris_that_is_down_gets_everything_once_it_is_up(
    server_factory: ServerFactory,
) -> None:
    port = free_port()
    server = server_factory(
        peers={"ris": PeerConfig(ae_title="RIS", host="127.0.0.1", port=port)},
        mpps_forward=["ris"],
        forward_retry_initial=0.1,
        forward_retry_max=0.1,
    )
    uid = _perform(server)
    forwarder = Forwarder(server.runtime)
    forwarder.run_once()
    pending = server.runtime.forward_queue.list(QueueState.PENDING)
    assert len(pending) == 2
    assert all(item.attempts >= 1 for item in pending)
    assert all("cannot connect" in item.last_error for item in pending)
    ris = RIS(port)
    try:
        threading.Event().wait(0.3)
        _drain(Forwarder(server.runtime), lambda: len(ris.requests) == 2)
    finally:
        ris.server.shutdown()
    assert [(action, sop) for action, sop, _ in ris.requests] == [
        ("N-CREATE", uid),
        ("N-SET", uid),
    ]
