"""Modality Worklist matching (PS3.4 K.2.2, C.2.2.2) and responses, on SQLite and PostgreSQL;
the worklist service's calling-AE rule, statuses and C-CANCEL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydicom.dataset import Dataset

from dicomhub.dicom.peers import AssociationInfo
from dicomhub.dicom.services.worklist import WorklistService
from dicomhub.dicom.status import CANCELLED, PENDING, SUCCESS
from dicomhub.index.worklist import WorklistRepository, WorklistStatus
from dicomhub.index.worklist_query import WorklistFinder
from dicomhub.runtime import Runtime
from tests.worklist_factories import worklist_item, worklist_query

ACTIVE = [WorklistStatus.SCHEDULED, WorklistStatus.IN_PROGRESS]

ITEMS: dict[str, dict[str, Any]] = {
    "ct-morning": {
        "patient_name": "DOE^JANE",
        "patient_id": "P1",
        "accession": "A100",
        "requested_procedure_id": "RP100",
        "study_uid": "1.2.826.0.1.3680043.10.7.1",
        "modality": "CT",
        "station_ae": "CT1",
        "station_name": "CTROOM1",
        "start_date": "20240105",
        "start_time": "083000",
        "step_id": "S100",
        "physician": "SMITH^ANNA",
    },
    "ct-evening": {
        "patient_name": "Doe^John",
        "patient_id": "P2",
        "accession": "A101",
        "requested_procedure_id": "RP101",
        "study_uid": "1.2.826.0.1.3680043.10.7.2",
        "modality": "CT",
        "station_ae": ["CT1", "CT2"],
        "station_name": "CTROOM2",
        "start_date": "20240105",
        "start_time": "203000",
        "step_id": "S101",
        "physician": "JONES^BOB",
    },
    "mr-next-day": {
        "patient_name": "ROE^RICHARD",
        "patient_id": "P3",
        "accession": "B200",
        "requested_procedure_id": "RP200",
        "study_uid": "1.2.826.0.1.3680043.10.7.3",
        "modality": "MR",
        "station_ae": "MR1",
        "station_name": "MRROOM",
        "start_date": "20240106",
        "start_time": "0700",
        "step_id": "S200",
        "physician": "SMITH^ANNA",
        "MedicalAlerts": "PACEMAKER",
    },
    "us-no-station": {
        "patient_name": "POE^EDGAR",
        "patient_id": "P4",
        "accession": "",
        "requested_procedure_id": "RP300",
        "study_uid": "1.2.826.0.1.3680043.10.7.4",
        "modality": "US",
        "station_ae": "",
        "station_name": "",
        "start_date": "20240107",
        "start_time": "120000",
        "step_id": "S300",
        "physician": "",
    },
}


@pytest.fixture
def loaded(runtime: Runtime) -> dict[str, int]:
    """The four items of ITEMS, by name -> id."""
    repository = WorklistRepository(runtime.db)
    return {name: repository.add(worklist_item(**v), source="test") for name, v in ITEMS.items()}


Find = Callable[..., list[str]]


@pytest.fixture
def find(runtime: Runtime, loaded: dict[str, int]) -> Find:
    """Run a query; the names of the matching items, in the order answered."""
    names = {item_id: name for name, item_id in loaded.items()}

    def run(
        query: Dataset, *, statuses: list[WorklistStatus] = ACTIVE, **options: Any
    ) -> list[str]:
        finder = WorklistFinder(runtime.db, **options)
        return [names[m.item.id] for m in finder.find(query, statuses=statuses)]

    return run


def _all() -> list[str]:
    return sorted(ITEMS, key=lambda n: (ITEMS[n]["start_date"], ITEMS[n]["start_time"]))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # top-level keys
        (worklist_query(PatientName="DOE^JANE"), ["ct-morning"]),
        (worklist_query(PatientName="doe*"), ["ct-morning", "ct-evening"]),
        (worklist_query(PatientName="?OE^*"), _all()),
        (worklist_query(PatientName="?OE^J*"), ["ct-morning", "ct-evening"]),
        (worklist_query(PatientName="*"), _all()),
        (worklist_query(PatientID="P3"), ["mr-next-day"]),
        (worklist_query(PatientID="p3"), []),  # LO: case-sensitive
        (worklist_query(PatientID="P1\\P4"), ["ct-morning", "us-no-station"]),
        (worklist_query(AccessionNumber="A10*"), ["ct-morning", "ct-evening"]),
        (worklist_query(AccessionNumber="B200"), ["mr-next-day"]),
        (worklist_query(RequestedProcedureID="RP300"), ["us-no-station"]),
        (
            worklist_query(
                StudyInstanceUID="1.2.826.0.1.3680043.10.7.2\\1.2.826.0.1.3680043.10.7.3"
            ),
            ["ct-evening", "mr-next-day"],
        ),
        (worklist_query(MedicalAlerts="PACE*"), ["mr-next-day"]),  # any stored attribute
        (worklist_query(PatientSex="F", PatientBirthDate="19800101"), _all()),
        (worklist_query(PatientBirthDate="-19791231"), []),
        # zero-length stored values never match a non-universal key (K.2.2.1.1.1)
        (worklist_query(AccessionNumber="?*"), ["ct-morning", "ct-evening", "mr-next-day"]),
        # keys of the Scheduled Procedure Step
        (worklist_query(step={"Modality": "CT"}), ["ct-morning", "ct-evening"]),
        (worklist_query(step={"Modality": "CT\\MR"}), ["ct-morning", "ct-evening", "mr-next-day"]),
        (worklist_query(step={"ScheduledStationAETitle": "CT2"}), ["ct-evening"]),
        (worklist_query(step={"ScheduledStationAETitle": "CT1"}), ["ct-morning", "ct-evening"]),
        (worklist_query(step={"ScheduledStationAETitle": "MR*"}), ["mr-next-day"]),
        (worklist_query(step={"ScheduledStationName": "CTROOM?"}), ["ct-morning", "ct-evening"]),
        (worklist_query(step={"ScheduledProcedureStepID": "S200"}), ["mr-next-day"]),
        (
            worklist_query(step={"ScheduledPerformingPhysicianName": "smith^anna"}),
            ["ct-morning", "mr-next-day"],
        ),
        (
            worklist_query(step={"ScheduledProcedureStepStartDate": "20240105"}),
            ["ct-morning", "ct-evening"],
        ),
        (
            worklist_query(step={"ScheduledProcedureStepStartDate": "20240106-"}),
            ["mr-next-day", "us-no-station"],
        ),
        (
            worklist_query(step={"ScheduledProcedureStepStartDate": "-20240105"}),
            ["ct-morning", "ct-evening"],
        ),
        (
            worklist_query(step={"ScheduledProcedureStepStartTime": "0800-1300"}),
            ["ct-morning", "us-no-station"],
        ),
        (worklist_query(step={"ScheduledProcedureStepStartTime": "07"}), ["mr-next-day"]),
        # date and time together: one date-time range
        (
            worklist_query(
                step={
                    "ScheduledProcedureStepStartDate": "20240105-20240106",
                    "ScheduledProcedureStepStartTime": "1800-0800",
                }
            ),
            ["ct-evening", "mr-next-day"],
        ),
        (
            worklist_query(
                step={
                    "ScheduledProcedureStepStartDate": "20240105",
                    "ScheduledProcedureStepStartTime": "0800-0900",
                }
            ),
            ["ct-morning"],
        ),
        (
            worklist_query(
                step={
                    "ScheduledProcedureStepStartDate": "20240106-",
                    "ScheduledProcedureStepStartTime": "1000-",
                }
            ),
            ["us-no-station"],
        ),
        # several keys: all must match
        (
            worklist_query(
                PatientName="DOE*", step={"Modality": "CT", "ScheduledStationAETitle": "CT2"}
            ),
            ["ct-evening"],
        ),
        (worklist_query(PatientName="DOE*", step={"Modality": "MR"}), []),
        # a step key at the top level is matched against the step
        (worklist_query(Modality="MR"), ["mr-next-day"]),
        # universal keys and sequences without item keys match everything
        (worklist_query(step={}), _all()),
        (
            worklist_query(PatientName="", step={"Modality": "", "ScheduledStationAETitle": ""}),
            _all(),
        ),
        (Dataset(), _all()),
    ],
)
def test_matching(find: Find, query: Dataset, expected: list[str]) -> None:
    assert find(query) == expected


def test_person_names_case_sensitive_when_configured(find: Find) -> None:
    assert find(worklist_query(PatientName="doe*"), case_insensitive_pn=False) == []
    assert find(worklist_query(PatientName="Doe*"), case_insensitive_pn=False) == ["ct-evening"]


def test_statuses(runtime: Runtime, find: Find, loaded: dict[str, int]) -> None:
    repository = WorklistRepository(runtime.db)
    repository.set_status(loaded["ct-morning"], WorklistStatus.IN_PROGRESS)
    repository.set_status(loaded["ct-evening"], WorklistStatus.COMPLETED)
    repository.set_status(loaded["mr-next-day"], WorklistStatus.DISCONTINUED)
    repository.cancel(loaded["us-no-station"])

    assert find(Dataset()) == ["ct-morning"]
    assert find(Dataset(), statuses=[WorklistStatus.COMPLETED, WorklistStatus.CANCELLED]) == [
        "ct-evening",
        "us-no-station",
    ]
    status = worklist_query(step={"ScheduledProcedureStepStatus": "STARTED"})
    assert find(status, statuses=list(WorklistStatus)) == ["ct-morning"]


def _answers(runtime: Runtime, query: Dataset) -> list[Dataset]:
    finder = WorklistFinder(runtime.db)
    return [m.identifier for m in finder.find(query, statuses=ACTIVE)]


def test_every_requested_key_is_returned(runtime: Runtime, loaded: dict[str, int]) -> None:
    query = worklist_query(
        PatientName="ROE*",
        PatientID="",
        PatientWeight="",
        AccessionNumber="",
        OtherPatientIDs="",
        RequestedProcedureCodeSequence=[],
        step={
            "Modality": "",
            "ScheduledStationAETitle": "",
            "ScheduledProcedureStepLocation": "",
            "ScheduledProtocolCodeSequence": [],
        },
    )
    code = Dataset()
    code.CodeValue = ""
    code.CodeMeaning = ""
    query.ReferencedStudySequence = [code]

    (answer,) = _answers(runtime, query)

    assert answer.PatientName == "ROE^RICHARD"
    assert answer.PatientID == "P3"
    assert answer.AccessionNumber == "B200"
    for keyword in ("PatientWeight", "OtherPatientIDs"):
        assert keyword in answer and answer[keyword].value in (None, "")
    assert list(answer.RequestedProcedureCodeSequence) == []
    assert list(answer.ReferencedStudySequence) == []
    (step,) = answer.ScheduledProcedureStepSequence
    assert (step.Modality, step.ScheduledStationAETitle) == ("MR", "MR1")
    assert "ScheduledProcedureStepLocation" in step and not step.ScheduledProcedureStepLocation
    assert list(step.ScheduledProtocolCodeSequence) == []
    assert set(step.dir()) == {
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepLocation",
        "ScheduledProtocolCodeSequence",
    }
    assert "MedicalAlerts" not in answer, "only what was asked for"
    assert "SpecificCharacterSet" not in answer


def test_sequence_keys_return_their_item_keys(runtime: Runtime) -> None:
    repository = WorklistRepository(runtime.db)
    codes = []
    for value, meaning in (("CT001", "CT HEAD"), ("CT002", "CT CHEST")):
        code = Dataset()
        code.CodeValue = value
        code.CodingSchemeDesignator = "LOCAL"
        code.CodeMeaning = meaning
        codes.append(code)
    repository.add(worklist_item(RequestedProcedureCodeSequence=codes), source="test")
    ask = Dataset()
    ask.CodeValue = ""
    ask.CodeMeaning = ""
    wanted = Dataset()
    wanted.CodeValue = "CT002"
    wanted.CodeMeaning = ""

    (everything,) = _answers(runtime, worklist_query(RequestedProcedureCodeSequence=[ask]))
    (chest,) = _answers(runtime, worklist_query(RequestedProcedureCodeSequence=[wanted]))
    whole = worklist_query(RequestedProcedureCodeSequence=[])
    (answer_whole,) = _answers(runtime, whole)

    assert [(c.CodeValue, c.CodeMeaning) for c in everything.RequestedProcedureCodeSequence] == [
        ("CT001", "CT HEAD"),
        ("CT002", "CT CHEST"),
    ]
    assert "CodingSchemeDesignator" not in everything.RequestedProcedureCodeSequence[0]
    assert [c.CodeValue for c in chest.RequestedProcedureCodeSequence] == ["CT002"]
    assert answer_whole.RequestedProcedureCodeSequence[1].CodingSchemeDesignator == "LOCAL"
    missing = Dataset()
    missing.CodeValue = "MR001"
    assert _answers(runtime, worklist_query(RequestedProcedureCodeSequence=[missing])) == []


def test_empty_sequence_item_returns_the_whole_step(
    runtime: Runtime, loaded: dict[str, int]
) -> None:
    answers = _answers(runtime, worklist_query(PatientID="P1", step={}))

    (step,) = answers[0].ScheduledProcedureStepSequence
    assert step.ScheduledProcedureStepID == "S100"
    assert step.ScheduledPerformingPhysicianName == "SMITH^ANNA"
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"


def test_empty_identifier_returns_whole_items(runtime: Runtime, loaded: dict[str, int]) -> None:
    answers = _answers(runtime, Dataset())

    assert [a.PatientID for a in answers] == ["P1", "P2", "P3", "P4"]
    assert answers[2].MedicalAlerts == "PACEMAKER"
    assert answers[0].ScheduledProcedureStepSequence[0].Modality == "CT"


def test_character_set_returned_as_stored(runtime: Runtime) -> None:
    repository = WorklistRepository(runtime.db)
    repository.add(worklist_item(patient_name="MÜLLER^JÖRG", charset="ISO_IR 100"), source="t")
    japanese = ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    repository.add(
        worklist_item(patient_name="Yamada^Tarou=山田^太郎", patient_id="J1", charset=japanese),
        source="t",
    )

    latin = _answers(runtime, worklist_query(PatientName="müller*"))
    asked_utf8 = worklist_query(PatientName="山田*", PatientID="")
    asked_utf8.SpecificCharacterSet = "ISO_IR 192"
    (yamada,) = _answers(runtime, asked_utf8)

    assert latin[0].SpecificCharacterSet == "ISO_IR 100"
    assert latin[0].PatientName == "MÜLLER^JÖRG"
    assert list(yamada.SpecificCharacterSet) == japanese
    assert yamada.PatientID == "J1"


def test_step_status_follows_the_item(runtime: Runtime, loaded: dict[str, int]) -> None:
    WorklistRepository(runtime.db).set_status(loaded["ct-morning"], WorklistStatus.IN_PROGRESS)
    query = worklist_query(PatientID="P1", step={"ScheduledProcedureStepStatus": ""})

    (answer,) = _answers(runtime, query)

    assert answer.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"


# The service: calling AE, statuses, cancellation --------------------------------------------


def _service(runtime: Runtime, **settings: Any) -> WorklistService:
    configured = runtime.settings.model_copy(update=settings)
    return WorklistService(WorklistFinder(runtime.db), runtime.access, configured)


def _patients(
    service: WorklistService, query: Dataset, calling: str, cancelled: Callable[[], bool] = bool
) -> list[str]:
    info = AssociationInfo(calling, "DICOMHUB", "127.0.0.1", 4000)
    results = list(service.find(info, query, cancelled))
    assert results[-1] == (SUCCESS, None)
    assert all(status == PENDING for status, _ in results[:-1])
    return [str(identifier.PatientID) for _, identifier in results[:-1] if identifier]


def test_calling_ae_sees_its_own_items_when_it_names_no_station(
    runtime: Runtime, loaded: dict[str, int]
) -> None:
    service = _service(runtime)
    assert service.station_filter == "when_empty"
    any_station = worklist_query(PatientID="", step={"ScheduledStationAETitle": ""})
    starred = worklist_query(PatientID="", step={"ScheduledStationAETitle": "*"})

    # CT2 sees its item and the item scheduled for no station.
    assert _patients(service, any_station, "CT2") == ["P2", "P4"]
    assert _patients(service, starred, "CT2") == ["P2", "P4"]
    assert _patients(service, Dataset(), "CT1") == ["P1", "P2", "P4"]
    assert _patients(service, any_station, "XR9") == ["P4"]
    # Naming a station is asking for it.
    named = worklist_query(PatientID="", step={"ScheduledStationAETitle": "MR1"})
    assert _patients(service, named, "CT2") == ["P3"]
    top_level = worklist_query(PatientID="", ScheduledStationAETitle="MR1")
    assert _patients(service, top_level, "CT2") == ["P3"]


def test_calling_ae_filter_always_and_never(runtime: Runtime, loaded: dict[str, int]) -> None:
    named = worklist_query(PatientID="", step={"ScheduledStationAETitle": "MR1"})
    always = _service(runtime, worklist_filter_by_calling_ae="always")
    never = _service(runtime, worklist_filter_by_calling_ae="never")

    assert _patients(always, named, "CT2") == []
    assert _patients(always, Dataset(), "MR1") == ["P3", "P4"]
    assert _patients(never, Dataset(), "CT2") == ["P1", "P2", "P3", "P4"]
    assert _patients(never, named, "CT2") == ["P3"]


def test_statuses_setting(runtime: Runtime, loaded: dict[str, int]) -> None:
    repository = WorklistRepository(runtime.db)
    repository.set_status(loaded["ct-morning"], WorklistStatus.COMPLETED)
    repository.cancel(loaded["us-no-station"])
    default = _service(runtime, worklist_filter_by_calling_ae="never")
    completed = _service(
        runtime, worklist_filter_by_calling_ae="never", worklist_statuses=["COMPLETED"]
    )

    assert _patients(default, Dataset(), "X") == ["P2", "P3"]
    assert _patients(completed, Dataset(), "X") == ["P1"]


def test_cancel_stops_the_answers(runtime: Runtime, loaded: dict[str, int]) -> None:
    service = _service(runtime, worklist_filter_by_calling_ae="never")
    checks = iter([False, True, True, True])
    info = AssociationInfo("X", "DICOMHUB", "127.0.0.1", 4000)

    results = list(service.find(info, Dataset(), lambda: next(checks)))

    assert [status for status, _ in results] == [PENDING, CANCELLED]


def test_values_longer_than_their_column_still_match(runtime: Runtime) -> None:
    """A multi-valued station list longer than its column is cut there; matching reads the
    whole item, so a station at its end is still found."""
    stations = ["STATION-ONE", "STATION-TWO", "STATION-THREE"]
    WorklistRepository(runtime.db).add(worklist_item(station_ae=stations), source="test")
    named = worklist_query(PatientID="", step={"ScheduledStationAETitle": "STATION-THREE"})

    assert len(_answers(runtime, named)) == 1
    assert _patients(_service(runtime), Dataset(), "STATION-THREE") == ["PID001"]
    assert _patients(_service(runtime), Dataset(), "STATION-FOUR") == []
