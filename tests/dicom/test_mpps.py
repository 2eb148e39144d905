"""Modality Performed Procedure Step SCP on the asyncio engine, driven by a pynetdicom SCU.

The whole state machine (N-CREATE IN PROGRESS, N-SETs, COMPLETED or DISCONTINUED), every
refusal with its status, and the worklist item following the step.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from dicomhub.dicom.server import Listener
from dicomhub.dicom.services.mpps import MPPS_SOP_CLASS
from dicomhub.index.mpps import MppsRepository, MppsStatus
from dicomhub.index.worklist import WorklistRepository, WorklistStatus
from tests.dicom.conftest import ServerFactory
from tests.mpps_factories import n_create, n_set_final, performed_series, worklist_item

MPPS = MPPS_SOP_CLASS


@pytest.fixture
def engine() -> str:
    return "asyncio"


class Modality:
    """A pynetdicom MPPS SCU that keeps the command sets and data sets it receives."""

    def __init__(self, server: Listener) -> None:
        self.responses: list[tuple[Dataset, bytes]] = []
        ae = AE(ae_title="CT1")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
        ae.add_requested_context(MPPS)
        self.assoc = ae.associate(
            "127.0.0.1",
            server.port,
            ae_title="DICOMHUB",
            evt_handlers=[(evt.EVT_DIMSE_RECV, self._received)],
        )
        assert self.assoc.is_established

    def _received(self, event: Any) -> None:
        # The data set is read (and emptied) once the response is handled: keep a copy.
        data = event.message.data_set
        self.responses.append((event.message.command_set, data.getvalue() if data else b""))

    @property
    def last_command(self) -> Dataset:
        command: Dataset = self.responses[-1][0]
        return command

    @property
    def last_data(self) -> Dataset | None:
        data: bytes = self.responses[-1][1]
        return dcmread(BytesIO(data), force=True) if data else None

    def create(self, data: Dataset, uid: str | None = None) -> Dataset:
        status, _ = self.assoc.send_n_create(data, MPPS, uid)
        assert "Status" in status, "no N-CREATE response"
        return status

    def set(self, data: Dataset, uid: str) -> Dataset:
        status, _ = self.assoc.send_n_set(data, MPPS, uid)
        assert "Status" in status, "no N-SET response"
        return status


@pytest.fixture
def modality(server_factory: ServerFactory) -> Iterator[Modality]:
    scu = Modality(server_factory())
    yield scu
    scu.assoc.release()


def _repositories(server: Listener) -> tuple[MppsRepository, WorklistRepository]:
    return MppsRepository(server.runtime.db), WorklistRepository(server.runtime.db)


def test_state_machine_with_worklist_link(server_factory: ServerFactory) -> None:
    server = server_factory()
    steps, worklist = _repositories(server)
    study = generate_uid()
    item_id = worklist.add(worklist_item(study_uid=study), source="test")
    scu = Modality(server)
    try:
        uid = generate_uid()
        request = n_create(
            study_uid=study,
            accession="ACC-MPPS-1",
            requested_procedure_id="RP-1",
            scheduled_step_id="SPS-1",
        )
        assert scu.create(request, uid).Status == 0x0000
        assert scu.last_command.AffectedSOPInstanceUID == uid
        assert scu.last_command.CommandField == 0x8140
        assert _item_status(worklist, item_id) is WorklistStatus.IN_PROGRESS
        step = steps.get(uid)
        assert step is not None and step.worklist_item_id == item_id and not step.unscheduled

        progress = Dataset()
        progress.PerformedProcedureStepDescription = "CT CHEST"
        assert scu.set(progress, uid).Status == 0x0000
        assert scu.last_command.CommandField == 0x8120
        assert scu.last_command.AffectedSOPInstanceUID == uid

        images = [generate_uid(), generate_uid()]
        final = n_set_final("COMPLETED", [performed_series(generate_uid(), images)])
        assert scu.set(final, uid).Status == 0x0000
        assert _item_status(worklist, item_id) is WorklistStatus.COMPLETED
        step = steps.get(uid)
        assert step is not None and step.status is MppsStatus.COMPLETED
        (series,) = steps.performed_vs_received(step.id)
        assert (series.referenced, series.received, series.missing) == (2, 0, 2)

        again = scu.set(progress, uid)
        assert again.Status == 0x0110
        assert again.ErrorComment == "Performed Procedure Step Object may no longer be updated"
        assert again.ErrorID == 0xA710
        assert [e.action for e in steps.history(step.id)] == ["N-CREATE", "N-SET", "N-SET"]
    finally:
        scu.assoc.release()


def test_assigned_uid_unscheduled_and_discontinued(
    modality: Modality, server_factory: ServerFactory
) -> None:
    server = server_factory()  # a second server on the same index
    steps, _ = _repositories(server)
    assert modality.create(n_create()).Status == 0x0000
    uid = str(modality.last_command.AffectedSOPInstanceUID)
    assert uid
    step = steps.get(uid)
    assert step is not None and step.unscheduled and step.calling_ae_title == "CT1"
    assert modality.set(n_set_final("DISCONTINUED"), uid).Status == 0x0000
    step = steps.get(uid)
    assert step is not None and step.status is MppsStatus.DISCONTINUED


def test_n_create_refusals(modality: Modality) -> None:
    missing = n_create()
    del missing.PerformedProcedureStepID
    status = modality.create(missing, generate_uid())
    assert status.Status == 0x0120
    assert status.ErrorComment.startswith("PerformedProcedureStepID (0040,0253) missing")

    empty = n_create()
    empty.Modality = ""
    assert modality.create(empty, generate_uid()).Status == 0x0121

    wrong = modality.create(n_create(status="COMPLETED"), generate_uid())
    assert wrong.Status == 0x0106
    assert "IN PROGRESS" in wrong.ErrorComment
    attribute_list = modality.last_data
    assert attribute_list is not None
    assert attribute_list.PerformedProcedureStepStatus == "COMPLETED"

    uid = generate_uid()
    assert modality.create(n_create(), uid).Status == 0x0000
    duplicate = modality.create(n_create(), uid)
    assert duplicate.Status == 0x0111

    assert modality.create(n_create(), "1.2.3.abc").Status == 0x0117


def test_n_set_refusals(modality: Modality) -> None:
    unknown = modality.set(n_set_final(), generate_uid())
    assert unknown.Status == 0x0112

    uid = generate_uid()
    assert modality.create(n_create(patient_name="DOE^JANE"), uid).Status == 0x0000

    changed = Dataset()
    changed.PatientName = "ROE^RICHARD"
    forbidden = modality.set(changed, uid)
    assert forbidden.Status == 0x0106
    assert forbidden.ErrorComment.startswith("PatientName (0010,0010) may not be changed")
    repeated = Dataset()
    repeated.PatientName = "DOE^JANE"
    assert modality.set(repeated, uid).Status == 0x0000

    no_end = n_set_final()
    no_end.PerformedProcedureStepEndDate = ""
    incomplete = modality.set(no_end, uid)
    assert incomplete.Status == 0x0121
    assert "PerformedProcedureStepEndDate" in incomplete.ErrorComment

    no_series = n_set_final()
    del no_series.PerformedSeriesSequence
    assert modality.set(no_series, uid).Status == 0x0121  # still empty from the N-CREATE

    assert modality.set(n_set_final(), uid).Status == 0x0000
    assert modality.set(n_set_final(), uid).Status == 0x0110


def test_wrong_sop_class_on_the_context(modality: Modality) -> None:
    """An N-CREATE naming another SOP class than its presentation context's is refused."""
    status, _ = modality.assoc.send_n_create(
        n_create(), "1.2.840.10008.1.20.1", None, meta_uid=MPPS
    )
    assert status.Status == 0x0122


def _item_status(worklist: WorklistRepository, item_id: int) -> WorklistStatus:
    item = worklist.get(item_id)
    assert item is not None
    return item.status
