"""Modality Worklist C-FIND SCP on the asyncio engine, driven by a pynetdicom MWL SCU."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from dicomhub.config import PeerConfig, Service
from dicomhub.dicom.server import Listener
from dicomhub.index.worklist import WorklistRepository, WorklistStatus
from tests.dicom.conftest import ServerFactory, associate
from tests.worklist_factories import worklist_item, worklist_query

MWL = ModalityWorklistInformationFind


@pytest.fixture
def engine() -> str:
    return "asyncio"


@pytest.fixture
def server(server_factory: ServerFactory) -> Listener:
    """A hub with items for CT1, for CT2 and for no station, one of them in Latin-1."""
    listener = server_factory()
    repository = WorklistRepository(listener.runtime.db)
    repository.add(
        worklist_item(patient_name="MÜLLER^JÖRG", patient_id="P1", charset="ISO_IR 100"),
        source="test",
    )
    repository.add(worklist_item(patient_id="P2", station_ae="CT2", modality="CT"), source="t")
    repository.add(worklist_item(patient_id="P3", station_ae="", modality="MR"), source="t")
    done = repository.add(worklist_item(patient_id="P4"), source="test")
    repository.set_status(done, WorklistStatus.COMPLETED)
    return listener


@pytest.fixture
def assoc(server: Listener) -> Iterator[Association]:
    association = associate(server, [MWL], calling="CT1")
    assert association.is_established
    yield association
    if association.is_established:
        association.release()


def _find(assoc: Association, query: Dataset, **kwargs: int) -> tuple[list[int], list[Dataset]]:
    statuses, identifiers = [], []
    for status, identifier in assoc.send_c_find(query, MWL, **kwargs):
        statuses.append(int(status.Status))
        if identifier is not None:
            identifiers.append(identifier)
    return statuses, identifiers


def test_modality_gets_its_items_with_every_key(assoc: Association) -> None:
    query = worklist_query(
        PatientName="",
        PatientID="",
        PatientWeight="",
        AccessionNumber="",
        StudyInstanceUID="",
        step={
            "ScheduledStationAETitle": "",
            "Modality": "",
            "ScheduledProcedureStepStartDate": "20240101-20240131",
            "ScheduledProcedureStepStartTime": "",
        },
    )

    statuses, answers = _find(assoc, query)

    assert statuses == [0xFF00, 0xFF00, 0x0000]
    assert [a.PatientID for a in answers] == ["P1", "P3"]  # CT1's and the unassigned one
    latin = answers[0]
    assert latin.SpecificCharacterSet == "ISO_IR 100"
    assert latin.PatientName == "MÜLLER^JÖRG"
    assert "PatientWeight" in latin and latin.PatientWeight is None
    assert latin.StudyInstanceUID
    step = latin.ScheduledProcedureStepSequence[0]
    assert (step.ScheduledStationAETitle, step.Modality) == ("CT1", "CT")
    assert step.ScheduledProcedureStepStartDate == "20240105"


def test_naming_a_station_and_matching_in_the_step(assoc: Association) -> None:
    query = worklist_query(PatientID="", step={"ScheduledStationAETitle": "CT2", "Modality": "CT"})

    statuses, answers = _find(assoc, query)

    assert statuses[-1] == 0x0000
    assert [a.PatientID for a in answers] == ["P2"]


@pytest.fixture
def zero_length_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pynetdicom send an empty identifier as a zero-length data set fragment (it sends
    no fragment at all otherwise, and no SCP can tell the data set will not come)."""
    original = DIMSEMessage.encode_msg

    def encode_msg(self: DIMSEMessage, context_id: int, max_pdu: int) -> Iterator[P_DATA]:
        yield from original(self, context_id, max_pdu)
        data = self.data_set
        if data is not None and not data.getvalue() and self.command_set.CommandDataSetType == 1:
            empty = P_DATA()
            empty.presentation_data_value_list.append((context_id, b"\x02"))
            yield empty

    monkeypatch.setattr(DIMSEMessage, "encode_msg", encode_msg)


@pytest.mark.usefixtures("zero_length_identifiers")
def test_empty_identifier_is_answered_with_whole_items(assoc: Association) -> None:
    statuses, answers = _find(assoc, Dataset())

    assert statuses[-1] == 0x0000
    assert sorted(a.PatientID for a in answers) == ["P1", "P3"]
    assert all("ScheduledProcedureStepSequence" in a for a in answers)


def test_identifier_with_only_a_character_set(assoc: Association) -> None:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"

    statuses, answers = _find(assoc, query)

    assert statuses[-1] == 0x0000
    assert sorted(a.PatientID for a in answers) == ["P1", "P3"]
    assert answers[0].SpecificCharacterSet == "ISO_IR 100"  # as stored


def test_c_cancel_ends_the_query(server: Listener) -> None:
    repository = WorklistRepository(server.runtime.db)
    for index in range(200):
        repository.add(worklist_item(patient_id=f"C{index:03}"), source="test")
    association = associate(server, [MWL], calling="CT1")
    statuses = []
    try:
        for status, _ in association.send_c_find(worklist_query(PatientID=""), MWL, msg_id=9):
            statuses.append(int(status.Status))
            if len(statuses) == 1:
                association.send_c_cancel(9, query_model=MWL)
    finally:
        association.release()
    assert statuses[-1] == 0xFE00, f"{len(statuses)} responses, last 0x{statuses[-1]:04X}"
    assert statuses.count(0xFF00) < 200


def test_a_peer_without_the_worklist_service_is_refused(server_factory: ServerFactory) -> None:
    listener = server_factory(
        peers={
            "ris": PeerConfig(ae_title="RIS", host="127.0.0.1", port=1, services=[Service.QUERY])
        }
    )
    association = associate(listener, [MWL, StudyRootQueryRetrieveInformationModelFind], "RIS")
    try:
        statuses, answers = _find(association, worklist_query(PatientID=""))
    finally:
        association.release()
    assert statuses == [0x0124] and answers == []


def test_worklist_c_find_on_a_query_context_is_a_query(server: Listener) -> None:
    """The SOP class of the context decides: a worklist identifier on a Study Root context
    is a Study Root query (and fails as one), not a worklist query."""
    association = associate(server, [StudyRootQueryRetrieveInformationModelFind], "CT1")
    try:
        statuses = [
            int(s.Status)
            for s, _ in association.send_c_find(
                worklist_query(PatientID=""), StudyRootQueryRetrieveInformationModelFind
            )
        ]
    finally:
        association.release()
    assert statuses == [0xA900]
