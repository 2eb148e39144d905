"""Worklist items in the index, on SQLite and PostgreSQL: adding, orders, statuses, MPPS links,
patient updates."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from dicomhub.errors import DicomhubError, InvalidWorklistItem, NoSuchWorklistItem
from dicomhub.index.worklist import WorklistRepository, WorklistStatus, count_by_status, step_of
from dicomhub.runtime import Runtime
from tests.worklist_factories import worklist_item


@pytest.fixture
def repository(runtime: Runtime) -> WorklistRepository:
    return WorklistRepository(runtime.db)


def test_add_keeps_the_item_and_fills_the_columns(
    repository: WorklistRepository, runtime: Runtime
) -> None:
    ds = worklist_item(charset="ISO_IR 100", patient_name="MÜLLER^JÖRG", station_ae=["CT1", "CT2"])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.276.0.7230010.3.1.0.1")

    item_id = repository.add(ds, source="test", order_key="ORD1")

    item = repository.get(item_id)
    assert item is not None
    assert item.status is WorklistStatus.SCHEDULED
    assert (item.source, item.order_key) == ("test", "ORD1")
    stored = item.dataset
    assert stored.SpecificCharacterSet == "ISO_IR 100"
    assert stored.PatientName == "MÜLLER^JÖRG"
    assert stored.StudyInstanceUID  # generated
    assert "00020002" not in item.attributes
    step = step_of(stored)
    assert step is not None and list(step.ScheduledStationAETitle) == ["CT1", "CT2"]
    assert item.created_at == item.updated_at
    with runtime.db.read() as conn:
        row = conn.exec_driver_sql(
            "SELECT patient_name, scheduled_station_ae_title, start_date, modality, "
            "specific_character_set, study_instance_uid FROM worklist_items"
        ).one()
    assert tuple(row) == (
        "MÜLLER^JÖRG",
        "CT1\\CT2",
        "20240105",
        "CT",
        "ISO_IR 100",
        stored.StudyInstanceUID,
    )
    assert ds.get("StudyInstanceUID") is None, "the caller's data set is left alone"


def test_add_keeps_a_given_study_instance_uid(repository: WorklistRepository) -> None:
    item_id = repository.add(worklist_item(study_uid="1.2.3.4"), source="test")
    item = repository.get(item_id)
    assert item is not None and item.dataset.StudyInstanceUID == "1.2.3.4"


def _without(keyword: str) -> Dataset:
    ds = worklist_item()
    delattr(ds, keyword)
    return ds


def _steps(count: int) -> Dataset:
    ds = worklist_item()
    ds.ScheduledProcedureStepSequence = [Dataset() for _ in range(count)]
    return ds


@pytest.mark.parametrize(
    ("dataset", "words"),
    [
        (_without("PatientName"), "PatientName"),
        (_without("PatientID"), "PatientID"),
        (worklist_item(patient_id=""), "PatientID"),
        (_without("ScheduledProcedureStepSequence"), "ScheduledProcedureStepSequence"),
        (_steps(0), "ScheduledProcedureStepSequence"),
        (_steps(2), "2 items"),
    ],
)
def test_add_refuses_what_is_not_a_scheduled_procedure_step(
    repository: WorklistRepository, dataset: Dataset, words: str
) -> None:
    with pytest.raises(InvalidWorklistItem) as caught:
        repository.add(dataset, source="test")
    assert words in str(caught.value)
    assert isinstance(caught.value, DicomhubError)
    assert repository.list() == []


def test_update_replaces_attributes_and_keeps_status_and_study(
    repository: WorklistRepository,
) -> None:
    item_id = repository.add(worklist_item(), source="test")
    repository.set_status(item_id, WorklistStatus.IN_PROGRESS)
    before = repository.get(item_id)
    assert before is not None

    repository.update(item_id, worklist_item(modality="MR", station_ae="MR1"))

    after = repository.get(item_id)
    assert after is not None
    assert after.status is WorklistStatus.IN_PROGRESS
    assert after.dataset.StudyInstanceUID == before.dataset.StudyInstanceUID
    step = step_of(after.dataset)
    assert step is not None and step.Modality == "MR"
    assert after.updated_at >= before.updated_at
    with pytest.raises(NoSuchWorklistItem):
        repository.update(9999, worklist_item())
    with pytest.raises(InvalidWorklistItem):
        repository.update(item_id, _without("PatientID"))


def test_upsert_order_keeps_one_item_per_order(repository: WorklistRepository) -> None:
    first = repository.upsert_order("ORD-7", worklist_item(accession="A7"), source="hl7")
    study = repository.get(first)
    assert study is not None

    again = repository.upsert_order(
        "ORD-7", worklist_item(accession="A7", modality="MR"), source="hl7"
    )

    assert again == first
    items = repository.list()
    assert [i.id for i in items] == [first]
    step = step_of(items[0].dataset)
    assert step is not None and step.Modality == "MR"
    assert items[0].dataset.StudyInstanceUID == study.dataset.StudyInstanceUID
    other = repository.upsert_order("ORD-8", worklist_item(accession="A8"), source="hl7")
    assert other != first
    with pytest.raises(InvalidWorklistItem):
        repository.upsert_order("", worklist_item(), source="hl7")


def test_an_order_placed_again_after_cancellation_is_scheduled(
    repository: WorklistRepository,
) -> None:
    item_id = repository.upsert_order("ORD-9", worklist_item(), source="hl7")
    assert repository.cancel_order("ORD-9") == 1
    assert repository.upsert_order("ORD-9", worklist_item(), source="hl7") == item_id
    item = repository.get(item_id)
    assert item is not None and item.status is WorklistStatus.SCHEDULED


def test_cancel_leaves_final_items_alone(repository: WorklistRepository) -> None:
    scheduled = repository.add(worklist_item(), source="test")
    completed = repository.add(worklist_item(), source="test")
    repository.set_status(completed, WorklistStatus.COMPLETED)

    assert repository.cancel(scheduled)
    assert not repository.cancel(scheduled)
    assert not repository.cancel(completed)
    assert not repository.cancel(424242)
    statuses = {i.id: i.status for i in repository.list()}
    assert statuses == {scheduled: WorklistStatus.CANCELLED, completed: WorklistStatus.COMPLETED}
    assert count_by_status(repository.db) == {
        WorklistStatus.CANCELLED: 1,
        WorklistStatus.COMPLETED: 1,
    }


def test_cancel_order_counts_what_it_cancelled(repository: WorklistRepository) -> None:
    ids = [repository.add(worklist_item(), source="hl7", order_key="O-1") for _ in range(3)]
    repository.set_status(ids[2], WorklistStatus.DISCONTINUED)
    repository.add(worklist_item(), source="hl7", order_key="O-2")

    assert repository.cancel_order("O-1") == 2
    assert repository.cancel_order("O-1") == 0
    assert repository.cancel_order("unknown") == 0
    assert repository.cancel_order("") == 0


def test_list_newest_first_by_status_with_limit(repository: WorklistRepository) -> None:
    ids = [repository.add(worklist_item(), source="test") for _ in range(4)]
    repository.set_status(ids[1], WorklistStatus.IN_PROGRESS)

    assert [i.id for i in repository.list()] == ids[::-1]
    assert [i.id for i in repository.list(limit=2)] == ids[:1:-1]
    assert [i.id for i in repository.list(WorklistStatus.IN_PROGRESS)] == [ids[1]]
    assert repository.list(WorklistStatus.CANCELLED) == []


def test_set_status_of_an_unknown_item(repository: WorklistRepository) -> None:
    with pytest.raises(NoSuchWorklistItem):
        repository.set_status(77, WorklistStatus.COMPLETED)


def test_match_scheduled_step_most_specific_first(repository: WorklistRepository) -> None:
    a1 = repository.add(
        worklist_item(study_uid="1.2.9.1", accession="A1", requested_procedure_id="RP1"),
        source="test",
    )
    a2 = repository.add(
        worklist_item(
            study_uid="1.2.9.1", accession="A1", requested_procedure_id="RP2", step_id="S2"
        ),
        source="test",
    )
    b = repository.add(worklist_item(study_uid="1.2.9.2", accession="B1"), source="test")

    def match(**keys: str) -> int | None:
        found = repository.match_scheduled_step(**keys)
        return None if found is None else found.id

    assert match(study_instance_uid="1.2.9.2") == b
    assert match(accession_number="B1") == b
    assert match(study_instance_uid="1.2.9.1") is None  # two steps: ambiguous
    assert match(study_instance_uid="1.2.9.1", requested_procedure_id="RP2") == a2
    assert match(accession_number="A1", scheduled_procedure_step_id="S2") == a2
    assert (
        match(
            study_instance_uid="1.2.9.1",
            accession_number="A1",
            requested_procedure_id="RP1",
            scheduled_procedure_step_id="SPS001",
        )
        == a1
    )
    # The modality made its own StudyInstanceUID: the accession and step still name the item.
    assert (
        match(
            study_instance_uid="1.2.999",
            accession_number="A1",
            requested_procedure_id="RP2",
            scheduled_procedure_step_id="S2",
        )
        == a2
    )
    assert match(study_instance_uid="1.2.404") is None
    assert match() is None
    repository.cancel(a1)
    assert match(study_instance_uid="1.2.9.1") == a2  # the other one was cancelled


def test_update_patient_changes_the_patients_open_items(
    repository: WorklistRepository,
) -> None:
    open_item = repository.add(worklist_item(patient_id="P1", issuer="HOSP"), source="hl7")
    started = repository.add(worklist_item(patient_id="P1", issuer="HOSP"), source="hl7")
    repository.set_status(started, WorklistStatus.IN_PROGRESS)
    done = repository.add(worklist_item(patient_id="P1", issuer="HOSP"), source="hl7")
    repository.set_status(done, WorklistStatus.COMPLETED)
    other_issuer = repository.add(worklist_item(patient_id="P1", issuer="ELSE"), source="hl7")
    changes = Dataset()
    changes.PatientName = "DOE^JANET"
    changes.PatientBirthDate = "19810202"
    changes.AccessionNumber = "NOT-A-PATIENT-ATTRIBUTE"

    assert repository.update_patient("P1", "HOSP", changes) == 2
    assert repository.update_patient("P1", "HOSP", changes) == 0  # nothing left to change

    def name(item_id: int) -> str:
        item = repository.get(item_id)
        assert item is not None
        return str(item.dataset.PatientName)

    assert name(open_item) == name(started) == "DOE^JANET"
    assert name(done) == name(other_issuer) == "DOE^JANE"
    item = repository.get(open_item)
    assert item is not None
    assert item.dataset.AccessionNumber == "ACC001"
    assert item.dataset.PatientBirthDate == "19810202"
    assert repository.update_patient("", "HOSP", changes) == 0


def test_update_patient_keeps_names_encodable(repository: WorklistRepository) -> None:
    latin = repository.add(worklist_item(patient_id="P2", charset="ISO_IR 100"), source="t")
    changes = Dataset()
    changes.PatientName = "ИВАНОВ^ИВАН"

    assert repository.update_patient("P2", "", changes) == 1

    item = repository.get(latin)
    assert item is not None
    assert item.dataset.SpecificCharacterSet == "ISO_IR 192"
    assert item.dataset.PatientName == "ИВАНОВ^ИВАН"


def test_long_values_are_kept_whole_in_the_item(repository: WorklistRepository) -> None:
    """Columns hold what fits (PostgreSQL enforces their length); the item holds it all."""
    stations = ["STATION-ONE", "STATION-TWO", "STATION-THREE"]
    item_id = repository.add(worklist_item(station_ae=stations), source="test")
    item = repository.get(item_id)
    assert item is not None
    step = step_of(item.dataset)
    assert step is not None and list(step.ScheduledStationAETitle) == stations
