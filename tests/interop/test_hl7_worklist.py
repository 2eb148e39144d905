"""An HL7 order sent over MLLP to ``dicomhub serve`` becomes a worklist item that DCMTK
``findscu -W`` sees; the cancel of the order takes it away again."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.support import Hub, find_worklist, needs_dcmtk, running_hub, wait_until
from tests.ports import free_port
from tests.unit.hl7.messages import END, frame, orm

pytestmark = [pytest.mark.interop, needs_dcmtk]

KEYS = [
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT7",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
]


@pytest.fixture
def hl7_hub(tmp_path: Path) -> Iterator[tuple[Hub, int]]:
    port = free_port()
    env = {
        "DICOMHUB_HL7_PORT": str(port),
        "DICOMHUB_HL7_STATION_AE_TITLES": '{"CT": "CT7"}',
        "DICOMHUB_WORKLIST_FILTER_BY_CALLING_AE": "never",
    }
    with running_hub(tmp_path / "hub", env) as hub:
        yield hub, port


def send_hl7(port: int, message: str) -> bytes:
    """One MLLP exchange: the framed message out, the framed acknowledgement back."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(frame(message))
        answer = b""
        while not answer.endswith(END):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    return answer


def test_an_order_appears_in_the_worklist_and_its_cancel_removes_it(
    hl7_hub: tuple[Hub, int],
) -> None:
    hub, port = hl7_hub
    assert wait_until(lambda: _listening(port), 30, 0.1), hub.log()[-2000:]
    ack = send_hl7(port, orm("NW", control_id="ORD1"))
    assert b"MSA|AA|ORD1" in ack, ack
    found = find_worklist(hub.port, hub.ae_title, None, keys=KEYS, calling="CT7")
    assert found.statuses[-1] == 0x0000, found.output
    (answer,) = found.answers
    assert answer.AccessionNumber == "ACC1001"
    step = answer.ScheduledProcedureStepSequence[0]
    assert step.Modality == "CT"
    assert step.ScheduledStationAETitle == "CT7"
    assert step.ScheduledProcedureStepStartDate == "20240320"
    ack = send_hl7(port, orm("CA", control_id="ORD2"))
    assert b"MSA|AA|ORD2" in ack, ack
    gone = find_worklist(hub.port, hub.ae_title, None, keys=KEYS, calling="CT7")
    assert gone.statuses == [0x0000], gone.output
    assert gone.answers == []
    hub.wait_for_log(r"HL7 ORM\^O01 ORD2")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
