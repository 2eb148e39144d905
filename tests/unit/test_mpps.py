"""The MPPS service and repository against real index databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.dsutils import decode, encode

from dicomhub.config import PeerConfig, Service
from dicomhub.dicom.peers import AccessPolicy, AssociationInfo
from dicomhub.dicom.services.mpps import TABLE_F_7_2_1, MppsService, check
from dicomhub.errors import (
    InstanceExists,
    InvalidAttributeValue,
    InvalidSOPInstance,
    MissingAttribute,
    MissingAttributeValue,
    NoSuchInstance,
    NotAuthorized,
    ProcedureStepFinal,
)
from dicomhub.index.mpps import MppsRepository, MppsStatus, PerformedSeries
from dicomhub.index.worklist import WorklistRepository, WorklistStatus
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime
from tests.factories import make_dataset, write_file
from tests.mpps_factories import n_create, n_set_final, performed_series, worklist_item

MODALITY = AssociationInfo("CT1", "DICOMHUB", "127.0.0.1", 40000)


def _service(runtime: Runtime, *, strict: bool = True) -> MppsService:
    settings = runtime.settings.model_copy(update={"mpps_strict": strict})
    return MppsService(
        MppsRepository(runtime.db), WorklistRepository(runtime.db), runtime.access, settings
    )


def test_table_encodes_every_usage() -> None:
    keywords = [r.keyword for r in TABLE_F_7_2_1]
    assert len(keywords) == len(set(keywords))
    for rule in TABLE_F_7_2_1:
        assert rule.create in {"1", "2", "3"}
        assert rule.set in {"3", "-"}
    # Type 1 at N-CREATE (SCU side of "1/1")
    assert {r.keyword for r in TABLE_F_7_2_1 if r.create == "1"} == {
        "ScheduledStepAttributesSequence",
        "PerformedProcedureStepID",
        "PerformedStationAETitle",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepStatus",
        "Modality",
    }
    assert {r.keyword for r in TABLE_F_7_2_1 if r.final == "1"} == {
        "PerformedProcedureStepEndDate",
        "PerformedProcedureStepEndTime",
        "PerformedSeriesSequence",
    }


def test_create_unscheduled_with_assigned_uid(runtime: Runtime) -> None:
    service = _service(runtime)
    uid, response = service.create(MODALITY, None, n_create())
    assert response is None
    step = service.repository.get(uid)
    assert step is not None
    assert step.status is MppsStatus.IN_PROGRESS
    assert step.unscheduled and step.worklist_item_id is None
    assert step.calling_ae_title == "CT1"
    assert step.attributes["00400253"]["Value"] == ["PPS-1"]
    (event,) = service.repository.history(step.id)
    assert (event.action, event.status_before, event.status_after) == (
        "N-CREATE",
        "",
        "IN PROGRESS",
    )
    assert event.changes["00400252"]["Value"] == ["IN PROGRESS"]
    assert service.repository.list(unscheduled=True)[0].sop_instance_uid == uid
    changes = runtime.repository.changes_since(0)
    assert [c["change_type"] for c in changes if c["uid"] == uid] == ["mpps-created"]


def test_whole_state_machine_follows_the_worklist(runtime: Runtime) -> None:
    service = _service(runtime)
    study = generate_uid()
    item_id = service.worklist.add(worklist_item(study_uid=study), source="test")
    uid = generate_uid()
    request = n_create(
        study_uid=study,
        accession="ACC-MPPS-1",
        requested_procedure_id="RP-1",
        scheduled_step_id="SPS-1",
    )
    assert service.create(MODALITY, uid, request)[0] == uid
    step = service.repository.get(uid)
    assert step is not None and step.worklist_item_id == item_id and not step.unscheduled
    assert _status(service, item_id) is WorklistStatus.IN_PROGRESS

    progress = Dataset()
    progress.PerformedProcedureStepDescription = "CT CHEST"
    service.set(MODALITY, uid, progress)
    assert _status(service, item_id) is WorklistStatus.IN_PROGRESS

    service.set(MODALITY, uid, n_set_final("COMPLETED"))
    step = service.repository.get(uid)
    assert step is not None and step.status is MppsStatus.COMPLETED
    assert step.completed_at is not None
    assert step.attributes["00400254"]["Value"] == ["CT CHEST"]
    assert _status(service, item_id) is WorklistStatus.COMPLETED
    history = service.repository.history(step.id)
    assert [(e.action, e.status_before, e.status_after) for e in history] == [
        ("N-CREATE", "", "IN PROGRESS"),
        ("N-SET", "IN PROGRESS", "IN PROGRESS"),
        ("N-SET", "IN PROGRESS", "COMPLETED"),
    ]
    assert set(history[1].changes) == {"00400254"}
    assert history[2].changes["00400252"]["Value"] == ["COMPLETED"]
    assert service.repository.list(worklist_item_id=item_id)[0].id == step.id

    with pytest.raises(ProcedureStepFinal) as refused:
        service.set(MODALITY, uid, progress)
    assert refused.value.dimse_status == 0x0110 and refused.value.error_id == 0xA710
    assert refused.value.error_comment == "Performed Procedure Step Object may no longer be updated"
    assert len(service.repository.history(step.id)) == 3


def test_discontinued_and_cancelled_items(runtime: Runtime) -> None:
    service = _service(runtime)
    study = generate_uid()
    item_id = service.worklist.add(worklist_item(study_uid=study, accession="ACC-D"), source="test")
    uid, _ = service.create(MODALITY, None, n_create(study_uid=study, accession="ACC-D"))
    service.set(MODALITY, uid, n_set_final("DISCONTINUED"))
    assert _status(service, item_id) is WorklistStatus.DISCONTINUED

    other = generate_uid()
    cancelled = service.worklist.add(
        worklist_item(study_uid=other, accession="ACC-C"), source="test"
    )
    assert service.worklist.cancel(cancelled)
    service.create(MODALITY, None, n_create(study_uid=other, accession="ACC-C"))
    assert _status(service, cancelled) is WorklistStatus.CANCELLED


def test_unscheduled_step_linked_when_its_order_arrives(runtime: Runtime) -> None:
    service = _service(runtime)
    study = generate_uid()
    uid, _ = service.create(MODALITY, None, n_create(study_uid=study, accession="LATE-1"))
    item_id = service.worklist.add(
        worklist_item(study_uid=study, accession="LATE-1"), source="test"
    )
    service.set(MODALITY, uid, n_set_final())
    step = service.repository.get(uid)
    assert step is not None and step.worklist_item_id == item_id and not step.unscheduled
    assert _status(service, item_id) is WorklistStatus.COMPLETED


def test_n_create_refusals(runtime: Runtime) -> None:
    service = _service(runtime)
    request = n_create()
    del request.PerformedStationAETitle
    with pytest.raises(MissingAttribute, match=r"PerformedStationAETitle \(0040,0241\)"):
        service.create(MODALITY, None, request)

    request = n_create()
    del request.PatientName  # Type 2: present, may be empty
    with pytest.raises(MissingAttribute, match="PatientName"):
        service.create(MODALITY, None, request)
    request.PatientName = ""
    service.create(MODALITY, None, request)

    request = n_create()
    request.ScheduledStepAttributesSequence[0].StudyInstanceUID = ""
    with pytest.raises(MissingAttributeValue) as empty:
        service.create(MODALITY, None, request)
    assert empty.value.dimse_status == 0x0121
    assert "StudyInstanceUID (0020,000D) is empty in ScheduledStepAttributesSequence item 1" in (
        empty.value.message
    )

    with pytest.raises(InvalidAttributeValue) as wrong:
        service.create(MODALITY, None, n_create(status="COMPLETED"))
    assert wrong.value.dimse_status == 0x0106
    assert wrong.value.attribute_list is not None
    assert wrong.value.attribute_list.PerformedProcedureStepStatus == "COMPLETED"

    request = n_create()
    request.PerformedProcedureStepStartDate = "20261345"
    with pytest.raises(InvalidAttributeValue, match="PerformedProcedureStepStartDate"):
        service.create(MODALITY, None, request)

    with pytest.raises(InvalidSOPInstance):
        service.create(MODALITY, "1.2.abc", n_create())

    uid, _ = service.create(MODALITY, None, n_create())
    with pytest.raises(InstanceExists) as duplicate:
        service.create(MODALITY, uid, n_create())
    assert duplicate.value.dimse_status == 0x0111


def test_n_set_refusals(runtime: Runtime) -> None:
    service = _service(runtime)
    with pytest.raises(NoSuchInstance):
        service.set(MODALITY, generate_uid(), n_set_final())
    uid, _ = service.create(MODALITY, None, n_create(patient_name="DOE^JANE"))

    same = Dataset()
    same.PatientName = "DOE^JANE"  # "Not allowed" in N-SET, but unchanged: accepted
    same.Modality = "CT"
    service.set(MODALITY, uid, same)

    changed = Dataset()
    changed.PatientName = "ROE^RICHARD"
    with pytest.raises(InvalidAttributeValue, match=r"PatientName \(0010,0010\) may not be"):
        service.set(MODALITY, uid, changed)
    moved = Dataset()
    moved.PerformedStationAETitle = "CT2"
    with pytest.raises(InvalidAttributeValue, match="PerformedStationAETitle"):
        service.set(MODALITY, uid, moved)

    unknown = Dataset()
    unknown.PerformedProcedureStepStatus = "PAUSED"
    with pytest.raises(InvalidAttributeValue, match="PAUSED"):
        service.set(MODALITY, uid, unknown)

    no_end = n_set_final()
    del no_end.PerformedProcedureStepEndTime  # created empty at N-CREATE
    with pytest.raises(MissingAttributeValue, match=r"PerformedProcedureStepEndTime.*COMPLETED"):
        service.set(MODALITY, uid, no_end)

    no_series = n_set_final()
    no_series.PerformedSeriesSequence = []
    with pytest.raises(MissingAttributeValue, match="PerformedSeriesSequence"):
        service.set(MODALITY, uid, no_series)

    bad_series = n_set_final()
    del bad_series.PerformedSeriesSequence[0].ProtocolName
    with pytest.raises(MissingAttribute, match=r"ProtocolName .* in PerformedSeriesSequence"):
        service.set(MODALITY, uid, bad_series)

    step = service.repository.get(uid)
    assert step is not None and step.status is MppsStatus.IN_PROGRESS
    assert len(service.repository.history(step.id)) == 2  # N-CREATE and the unchanged N-SET
    service.set(MODALITY, uid, n_set_final("DISCONTINUED"))


def test_lenient_mode(runtime: Runtime) -> None:
    service = _service(runtime, strict=False)
    request = n_create()
    for keyword in ("PatientBirthDate", "PerformedLocation", "StudyID", "PerformedSeriesSequence"):
        delattr(request, keyword)
    uid, _ = service.create(MODALITY, None, request)
    discontinued = n_set_final("DISCONTINUED")
    del discontinued.PerformedSeriesSequence
    service.set(MODALITY, uid, discontinued)
    step = service.repository.get(uid)
    assert step is not None and step.status is MppsStatus.DISCONTINUED

    request = n_create()
    del request.Modality  # Type 1 is required either way
    with pytest.raises(MissingAttribute):
        service.create(MODALITY, None, request)


def test_check_final_state_of_merged_attributes() -> None:
    merged = n_create()
    merged.update(n_set_final())
    check(merged, "final")
    merged.PerformedSeriesSequence[0].SeriesInstanceUID = "not a uid"
    with pytest.raises(InvalidAttributeValue, match="SeriesInstanceUID"):
        check(merged, "final")


def test_performed_vs_received(runtime: Runtime, tmp_path: Path) -> None:
    service = _service(runtime)
    study, received_series, empty_series = generate_uid(), generate_uid(), generate_uid()
    stored = []
    for _ in range(2):
        ds = make_dataset(study_uid=study, series_uid=received_series)
        path = write_file(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm")
        runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
        stored.append(str(ds.SOPInstanceUID))
    missing = generate_uid()
    uid, _ = service.create(MODALITY, None, n_create(study_uid=study))
    service.set(
        MODALITY,
        uid,
        n_set_final(
            series=[
                performed_series(received_series, [*stored, missing]),
                performed_series(empty_series, [generate_uid()]),
            ]
        ),
    )
    step = service.repository.get(uid)
    assert step is not None
    result = service.repository.performed_vs_received(step.id)
    assert result == [
        PerformedSeries(received_series, 3, 2),
        PerformedSeries(empty_series, 1, 0),
    ]
    assert [r.missing for r in result] == [1, 1]
    with pytest.raises(NoSuchInstance):
        service.repository.performed_vs_received(step.id + 1000)


def test_link_and_unlink(runtime: Runtime) -> None:
    service = _service(runtime)
    uid, _ = service.create(MODALITY, None, n_create())
    step = service.repository.get(uid)
    assert step is not None
    item_id = service.worklist.add(worklist_item(study_uid=generate_uid()), source="test")
    linked = service.repository.link(step.id, item_id)
    assert linked.worklist_item_id == item_id and not linked.unscheduled
    unlinked = service.repository.link(step.id, None)
    assert unlinked.worklist_item_id is None and unlinked.unscheduled
    with pytest.raises(NoSuchInstance):
        service.repository.link(step.id + 1000, None)


def _status(service: MppsService, item_id: int) -> WorklistStatus:
    item = service.worklist.get(item_id)
    assert item is not None
    return item.status


def test_n_set_text_in_the_character_set_of_the_n_create(runtime: Runtime) -> None:
    service = _service(runtime)
    request = n_create(patient_name="MÜLLER^JÖRG")
    request.SpecificCharacterSet = "ISO_IR 100"
    request.SOPInstanceUID = generate_uid()  # no Affected SOP Instance UID: this one is used
    uid, _ = service.create(MODALITY, None, _received(request))
    assert uid == request.SOPInstanceUID

    progress = Dataset()
    progress.SpecificCharacterSet = "ISO_IR 100"
    progress.PerformedProcedureStepDescription = "Schädel nativ"
    progress.PatientName = "MÜLLER^JÖRG"  # repeated unchanged
    wire = _received(progress)
    del wire.SpecificCharacterSet  # Latin-1 bytes, character set left out of the N-SET
    service.set(MODALITY, uid, wire)
    step = service.repository.get(uid)
    assert step is not None
    assert step.attributes["00400254"]["Value"] == ["Schädel nativ"]
    assert step.attributes["00080005"]["Value"] == ["ISO_IR 100"]
    assert "00080005" not in service.repository.history(step.id)[1].changes

    utf8 = Dataset()
    utf8.SpecificCharacterSet = "ISO_IR 192"
    utf8.CommentsOnThePerformedProcedureStep = "Kontrastmittel ✓"
    service.set(MODALITY, uid, _received(utf8))
    step = service.repository.get(uid)
    assert step is not None
    assert step.attributes["00400280"]["Value"] == ["Kontrastmittel ✓"]
    assert step.attributes["00400254"]["Value"] == ["Schädel nativ"]
    assert step.attributes["00080005"]["Value"] == ["ISO_IR 192"]


def _received(data: Dataset) -> Dataset:
    """``data`` as an SCP decodes it from the wire (raw elements, Explicit VR LE)."""
    encoded = encode(data, False, True)
    assert encoded is not None
    return decode(BytesIO(encoded), False, True)


def test_declared_peer_without_the_mpps_service(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(
        update={
            "peers": {
                "ct": PeerConfig(
                    ae_title="CT1", host="127.0.0.1", port=104, services=[Service.STORAGE]
                )
            }
        }
    )
    service = MppsService(
        MppsRepository(runtime.db),
        WorklistRepository(runtime.db),
        AccessPolicy(settings),
        settings,
    )
    with pytest.raises(NotAuthorized):
        service.create(MODALITY, None, n_create())
    assert service.repository.list() == []
