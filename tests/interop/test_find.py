"""C-FIND with DCMTK's findscu (Patient Root -P and Study Root -S) at every level.

A known archive is built with pydicom and stored with dcmsend first; every query then checks
the exact set of matches and the returned values (PS3.4 C.2.2.2 matching, C.4.1 hierarchy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomhub.index.query import PAGE_ROWS
from tests.interop.support import (
    BASIC_TEXT_SR_STORAGE,
    CT_IMAGE_STORAGE,
    MR_IMAGE_STORAGE,
    UID_ROOT,
    US_IMAGE_STORAGE,
    FindOutcome,
    Hub,
    HubFactory,
    dcmsend,
    element_values,
    findscu,
    needs_dcmtk,
    output_of,
    write_part10,
)

pytestmark = [pytest.mark.interop, needs_dcmtk]

# The archive ---------------------------------------------------------------------------------

# PatientID: (PatientName, PatientBirthDate, PatientSex, SpecificCharacterSet)
PATIENTS: dict[str, tuple[str, str, str, str | None]] = {
    "PID001": ("DOE^JOHN", "19700101", "M", None),
    "PID002": ("DOE^JANE", "19851224", "F", None),
    "PID003": ("Müller^Jürgen", "19601231", "M", "ISO_IR 100"),
    "PID004": ("山田^太郎", "", "M", "ISO_IR 192"),
    "PID005": ("ROE^RICHARD", "19990909", "O", None),
}
# Study: (PatientID, StudyDate, StudyTime, AccessionNumber, StudyDescription)
STUDIES: dict[str, tuple[str, str, str, str, str]] = {
    "ST1": ("PID001", "20200315", "083000", "ACC001", "CHEST CT"),
    "ST2": ("PID001", "20191120", "141500", "ACC002", "BRAIN MR"),
    "ST3": ("PID002", "20210610", "235959.5", "ACC003", "ABDOMEN"),
    "ST4": ("PID003", "20200101", "000000", "ACC004", "KNIE LINKS Ä"),
    "ST5": ("PID004", "20201231", "120000", "ACC005", "胸部 CT"),
    "ST6": ("PID005", "20180505", "0930", "ACC006", "SPINE"),
}
# Series: (study, Modality, SeriesNumber)
SERIES: dict[str, tuple[str, str, int]] = {
    "SE11": ("ST1", "CT", 1),
    "SE12": ("ST1", "SR", 2),
    "SE21": ("ST2", "MR", 1),
    "SE31": ("ST3", "US", 1),
    "SE32": ("ST3", "CT", 2),
    "SE41": ("ST4", "MR", 1),
    "SE51": ("ST5", "CT", 1),
    "SE61": ("ST6", "MR", 1),
}
# Image: (series, InstanceNumber, ImageComments)
IMAGES: dict[str, tuple[str, int, str | None]] = {
    "IM111": ("SE11", 1, "FIRST SLICE"),
    "IM112": ("SE11", 2, None),
    "IM121": ("SE12", 1, None),
    "IM211": ("SE21", 1, None),
    "IM311": ("SE31", 1, None),
    "IM321": ("SE32", 1, None),
    "IM411": ("SE41", 1, None),
    "IM511": ("SE51", 1, None),
    "IM611": ("SE61", 1, None),
}
SOP_CLASS = {
    "CT": CT_IMAGE_STORAGE,
    "MR": MR_IMAGE_STORAGE,
    "US": US_IMAGE_STORAGE,
    "SR": BASIC_TEXT_SR_STORAGE,
}
ROOT = f"{UID_ROOT}.7"
STUDY_UID = {key: f"{ROOT}.{i}" for i, key in enumerate(STUDIES, start=1)}
SERIES_UID = {key: f"{STUDY_UID[s]}.{n}" for key, (s, _, n) in SERIES.items()}
IMAGE_UID = {key: f"{SERIES_UID[s]}.{n}" for key, (s, n, _) in IMAGES.items()}
STUDY_OF_UID = {uid: key for key, uid in STUDY_UID.items()}
SERIES_OF_UID = {uid: key for key, uid in SERIES_UID.items()}
IMAGE_OF_UID = {uid: key for key, uid in IMAGE_UID.items()}


def image_dataset(key: str) -> Dataset:
    series_key, number, comments = IMAGES[key]
    study_key, modality, series_number = SERIES[series_key]
    patient_id, date, time, accession, description = STUDIES[study_key]
    name, birth_date, sex, charset = PATIENTS[patient_id]
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = SOP_CLASS[modality]
    ds.SOPInstanceUID = IMAGE_UID[key]
    ds.StudyDate = date
    ds.StudyTime = time
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.StudyDescription = description
    ds.SeriesDescription = f"{modality} SERIES {series_number}"
    ds.PatientName = name
    ds.PatientID = patient_id
    if birth_date:
        ds.PatientBirthDate = birth_date
    ds.PatientSex = sex
    ds.StudyInstanceUID = STUDY_UID[study_key]
    ds.SeriesInstanceUID = SERIES_UID[series_key]
    ds.StudyID = study_key
    ds.SeriesNumber = series_number
    ds.InstanceNumber = number
    if comments:
        ds.ImageComments = comments
    return ds


@pytest.fixture(scope="module")
def archive(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Hub:
    """``hub`` holding the nine images above (stored with dcmsend)."""
    folder = tmp_path_factory.mktemp("archive")
    files = [write_part10(folder / f"{key}.dcm", image_dataset(key)) for key in IMAGES]
    outcomes, result = dcmsend(files, hub.ae_title, hub.port, folder)
    assert [o.status for o in outcomes.values()] == [0x0000] * len(files), output_of(result)
    assert hub.count("instances") == len(IMAGES)
    return hub


def find(
    hub: Hub, model: str, level: str, keys: Sequence[str | bytes], workdir: Path
) -> FindOutcome:
    """findscu at ``level``; a successful outcome (status 0x0000) is required.

    Each response identifier must hold every requested key and nothing else than
    QueryRetrieveLevel and SpecificCharacterSet besides them (PS3.4 C.4.1.1.3.2).
    """
    outcome = findscu(hub, model, [f"QueryRetrieveLevel={level}", *keys], workdir)
    assert outcome.status == 0x0000, f"0x{outcome.status:04X} {outcome.error_comment}"
    requested = {
        (k if isinstance(k, str) else k.decode("utf-8", "replace")).split("=", 1)[0] for k in keys
    }
    allowed = requested | {"QueryRetrieveLevel", "SpecificCharacterSet"}
    for match in outcome.matches:
        assert match.QueryRetrieveLevel == level
        present = {element.keyword for element in match}
        assert requested <= present, f"keys missing from a response: {requested - present}"
        assert present <= allowed, f"keys not requested in a response: {present - allowed}"
    return outcome


def keys_of(outcome: FindOutcome, keyword: str) -> list[str]:
    """The single value of ``keyword`` in every response, in response order."""
    values = []
    for match in outcome.matches:
        found = element_values(match, keyword)
        assert len(found) == 1, f"{keyword} = {found} in\n{match}"
        values.append(found[0])
    return values


def studies(outcome: FindOutcome) -> set[str]:
    return {STUDY_OF_UID[uid] for uid in keys_of(outcome, "StudyInstanceUID")}


def by_study(outcome: FindOutcome) -> dict[str, Dataset]:
    return {STUDY_OF_UID[str(m.StudyInstanceUID)]: m for m in outcome.matches}


def test_archive_is_stored(archive: Hub) -> None:
    assert archive.count("patients") == len(PATIENTS)
    assert archive.count("studies") == len(STUDIES)
    assert archive.count("series") == len(SERIES)
    assert archive.count("instances") == len(IMAGES)


# PATIENT level (Patient Root) ----------------------------------------------------------------


def test_patient_level_wildcard_and_related_counts(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "P",
        "PATIENT",
        [
            "PatientName=DOE*",
            "PatientID",
            "NumberOfPatientRelatedStudies",
            "NumberOfPatientRelatedSeries",
            "NumberOfPatientRelatedInstances",
        ],
        workdir,
    )

    found = {
        str(m.PatientID): (
            str(m.PatientName),
            int(m.NumberOfPatientRelatedStudies),
            int(m.NumberOfPatientRelatedSeries),
            int(m.NumberOfPatientRelatedInstances),
        )
        for m in outcome.matches
    }
    assert found == {"PID001": ("DOE^JOHN", 2, 3, 4), "PID002": ("DOE^JANE", 1, 2, 2)}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("?OE^J*", {"PID001", "PID002"}),
        ("*OE*", {"PID001", "PID002", "PID005"}),
        ("DOE^JOHN", {"PID001"}),
        ("ROE^RICHARD", {"PID005"}),
        ("D?E^JAN?", {"PID002"}),
        ("*", set(PATIENTS)),
        ("NOBODY*", set()),
        # dicomhub matches person names without regard to case (case_insensitive_pn default).
        ("doe*", {"PID001", "PID002"}),
        # Trailing empty components do not change a person name.
        ("DOE^JOHN^^^", {"PID001"}),
        # SQL LIKE metacharacters are ordinary characters in a DICOM query.
        ("DOE_JOHN", set()),
        ("DOE%", set()),
        ("%", set()),
    ],
)
def test_patient_name_matching(
    archive: Hub, workdir: Path, pattern: str, expected: set[str]
) -> None:
    outcome = find(archive, "P", "PATIENT", [f"PatientName={pattern}", "PatientID"], workdir)

    assert sorted(keys_of(outcome, "PatientID")) == sorted(expected)


def test_universal_patient_query_returns_every_name_in_its_character_set(
    archive: Hub, workdir: Path
) -> None:
    outcome = find(
        archive,
        "P",
        "PATIENT",
        ["PatientName", "PatientID", "PatientBirthDate", "PatientSex"],
        workdir,
    )

    found = {str(m.PatientID): m for m in outcome.matches}
    assert set(found) == set(PATIENTS)
    for patient_id, (name, birth_date, sex, charset) in PATIENTS.items():
        match = found[patient_id]
        assert str(match.PatientName) == name, f"{patient_id}: {match.PatientName!r}"
        assert element_values(match, "PatientBirthDate") == ([birth_date] if birth_date else [])
        assert str(match.PatientSex) == sex
        if charset:
            assert element_values(match, "SpecificCharacterSet") == [charset]


def test_latin1_query_value(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "P",
        "PATIENT",
        ["SpecificCharacterSet=ISO_IR 100", "PatientName=Müller*".encode("latin-1"), "PatientID"],
        workdir,
    )

    assert keys_of(outcome, "PatientID") == ["PID003"]
    assert str(outcome.matches[0].PatientName) == "Müller^Jürgen"


def test_utf8_query_value(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "P",
        "PATIENT",
        ["SpecificCharacterSet=ISO_IR 192", "PatientName=山田*".encode(), "PatientID"],
        workdir,
    )

    assert keys_of(outcome, "PatientID") == ["PID004"]
    assert str(outcome.matches[0].PatientName) == "山田^太郎"


def test_patient_birth_date_range(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive, "P", "PATIENT", ["PatientBirthDate=19600101-19751231", "PatientID"], workdir
    )

    assert sorted(keys_of(outcome, "PatientID")) == ["PID001", "PID003"]


def test_absent_patient_attribute_is_returned_empty(archive: Hub, workdir: Path) -> None:
    outcome = find(archive, "P", "PATIENT", ["PatientID=PID002", "OtherPatientNames"], workdir)

    (match,) = outcome.matches
    assert element_values(match, "OtherPatientNames") == []


# STUDY level ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("StudyDate=20200315", {"ST1"}),
        ("StudyDate=20200101-20201231", {"ST1", "ST4", "ST5"}),
        ("StudyDate=-20191231", {"ST2", "ST6"}),
        ("StudyDate=20210101-", {"ST3"}),
        ("StudyTime=080000-120000", {"ST1", "ST5", "ST6"}),
        ("StudyTime=140000-", {"ST2", "ST3"}),
        ("StudyTime=-010000", {"ST4"}),
        ("StudyTime=0830", {"ST1"}),
        (f"StudyInstanceUID={STUDY_UID['ST1']}\\{STUDY_UID['ST3']}", {"ST1", "ST3"}),
        (f"StudyInstanceUID={STUDY_UID['ST6']}", {"ST6"}),
        ("AccessionNumber=ACC00?", set(STUDIES)),
        ("AccessionNumber=ACC004", {"ST4"}),
        ("StudyDescription=*CT", {"ST1", "ST5"}),
        ("ModalitiesInStudy=MR", {"ST2", "ST4", "ST6"}),
        ("ModalitiesInStudy=SR\\US", {"ST1", "ST3"}),
        ("PatientName=DOE*", {"ST1", "ST2", "ST3"}),
        ("StudyInstanceUID", set(STUDIES)),
        # Matching is case sensitive for other VRs than PN (PS3.4 C.2.2.2).
        ("StudyDescription=chest*", set()),
        ("AccessionNumber=acc001", set()),
        # SQL LIKE metacharacters are ordinary characters.
        ("AccessionNumber=ACC_01", set()),
        ("AccessionNumber=ACC%", set()),
    ],
)
def test_study_matching(archive: Hub, workdir: Path, key: str, expected: set[str]) -> None:
    keys = [key] if key.startswith("StudyInstanceUID") else [key, "StudyInstanceUID"]

    outcome = find(archive, "S", "STUDY", keys, workdir)

    assert studies(outcome) == expected
    assert len(outcome.matches) == len(expected), "a study was returned twice"


def test_keys_are_combined_with_and(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "STUDY",
        ["StudyDate=20200101-20201231", "ModalitiesInStudy=CT", "StudyInstanceUID"],
        workdir,
    )

    assert studies(outcome) == {"ST1", "ST5"}


def test_study_level_returns_values_and_computed_keys(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "STUDY",
        [
            "StudyInstanceUID",
            "StudyDate",
            "StudyTime",
            "AccessionNumber",
            "StudyDescription",
            "PatientID",
            "PatientName",
            "ModalitiesInStudy",
            "SOPClassesInStudy",
            "NumberOfStudyRelatedSeries",
            "NumberOfStudyRelatedInstances",
        ],
        workdir,
    )

    found = by_study(outcome)
    assert set(found) == set(STUDIES)
    for study_key, (patient_id, date, time, accession, description) in STUDIES.items():
        match = found[study_key]
        series = [k for k, v in SERIES.items() if v[0] == study_key]
        images = [k for k, v in IMAGES.items() if v[0] in series]
        assert str(match.StudyDate) == date
        assert str(match.StudyTime) == time
        assert str(match.AccessionNumber) == accession
        assert str(match.StudyDescription) == description
        assert str(match.PatientID) == patient_id
        assert str(match.PatientName) == PATIENTS[patient_id][0]
        assert set(element_values(match, "ModalitiesInStudy")) == {SERIES[s][1] for s in series}
        assert set(element_values(match, "SOPClassesInStudy")) == {
            SOP_CLASS[SERIES[s][1]] for s in series
        }
        assert int(match.NumberOfStudyRelatedSeries) == len(series)
        assert int(match.NumberOfStudyRelatedInstances) == len(images)


def test_absent_study_attributes_are_returned_empty(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "STUDY",
        [
            f"StudyInstanceUID={STUDY_UID['ST2']}",
            "ReferringPhysicianName",
            "AdmittingDiagnosesDescription",
            "PatientWeight",
        ],
        workdir,
    )

    (match,) = outcome.matches
    for keyword in ("ReferringPhysicianName", "AdmittingDiagnosesDescription", "PatientWeight"):
        assert element_values(match, keyword) == [], keyword


def test_patient_root_study_level_needs_the_patient(archive: Hub, workdir: Path) -> None:
    outcome = find(archive, "P", "STUDY", ["PatientID=PID001", "StudyInstanceUID"], workdir)

    assert studies(outcome) == {"ST1", "ST2"}


def test_non_ascii_study_description_is_returned_decoded(archive: Hub, workdir: Path) -> None:
    outcome = find(archive, "S", "STUDY", ["StudyDescription", "StudyInstanceUID"], workdir)

    found = by_study(outcome)
    assert str(found["ST4"].StudyDescription) == "KNIE LINKS Ä"
    assert str(found["ST5"].StudyDescription) == "胸部 CT"


# SERIES level --------------------------------------------------------------------------------


def test_series_of_a_study(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "SERIES",
        [
            f"StudyInstanceUID={STUDY_UID['ST1']}",
            "SeriesInstanceUID",
            "Modality",
            "SeriesNumber",
            "NumberOfSeriesRelatedInstances",
            "BodyPartExamined",
        ],
        workdir,
    )

    found = {SERIES_OF_UID[str(m.SeriesInstanceUID)]: m for m in outcome.matches}
    assert set(found) == {"SE11", "SE12"}
    assert (str(found["SE11"].Modality), int(found["SE11"].SeriesNumber)) == ("CT", 1)
    assert (str(found["SE12"].Modality), int(found["SE12"].SeriesNumber)) == ("SR", 2)
    assert int(found["SE11"].NumberOfSeriesRelatedInstances) == 2
    assert int(found["SE12"].NumberOfSeriesRelatedInstances) == 1
    assert element_values(found["SE11"], "BodyPartExamined") == []
    for match in outcome.matches:
        assert str(match.StudyInstanceUID) == STUDY_UID["ST1"]


def test_series_single_value_matching(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "SERIES",
        [f"StudyInstanceUID={STUDY_UID['ST3']}", "Modality=CT", "SeriesInstanceUID"],
        workdir,
    )

    assert [SERIES_OF_UID[u] for u in keys_of(outcome, "SeriesInstanceUID")] == ["SE32"]


def test_patient_root_series_level(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "P",
        "SERIES",
        [
            "PatientID=PID002",
            f"StudyInstanceUID={STUDY_UID['ST3']}",
            "SeriesInstanceUID",
            "Modality",
        ],
        workdir,
    )

    assert {SERIES_OF_UID[u] for u in keys_of(outcome, "SeriesInstanceUID")} == {"SE31", "SE32"}


# IMAGE level ---------------------------------------------------------------------------------


def test_images_of_a_series(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "IMAGE",
        [
            f"StudyInstanceUID={STUDY_UID['ST1']}",
            f"SeriesInstanceUID={SERIES_UID['SE11']}",
            "SOPInstanceUID",
            "SOPClassUID",
            "InstanceNumber",
            "ImageComments",
        ],
        workdir,
    )

    found = {IMAGE_OF_UID[str(m.SOPInstanceUID)]: m for m in outcome.matches}
    assert set(found) == {"IM111", "IM112"}
    assert int(found["IM111"].InstanceNumber) == 1
    assert int(found["IM112"].InstanceNumber) == 2
    assert {str(m.SOPClassUID) for m in found.values()} == {CT_IMAGE_STORAGE}
    # ImageComments is not an index column: answered from the stored header, empty if absent.
    assert element_values(found["IM111"], "ImageComments") == ["FIRST SLICE"]
    assert element_values(found["IM112"], "ImageComments") == []


def test_image_uid_list(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "S",
        "IMAGE",
        [
            f"StudyInstanceUID={STUDY_UID['ST1']}",
            f"SeriesInstanceUID={SERIES_UID['SE11']}",
            f"SOPInstanceUID={IMAGE_UID['IM112']}\\{IMAGE_UID['IM611']}",
        ],
        workdir,
    )

    assert [IMAGE_OF_UID[u] for u in keys_of(outcome, "SOPInstanceUID")] == ["IM112"]


def test_patient_root_image_level(archive: Hub, workdir: Path) -> None:
    outcome = find(
        archive,
        "P",
        "IMAGE",
        [
            "PatientID=PID003",
            f"StudyInstanceUID={STUDY_UID['ST4']}",
            f"SeriesInstanceUID={SERIES_UID['SE41']}",
            "SOPInstanceUID",
            "InstanceNumber",
        ],
        workdir,
    )

    assert [IMAGE_OF_UID[u] for u in keys_of(outcome, "SOPInstanceUID")] == ["IM411"]


# Invalid identifiers: 0xA900 (identifier does not match SOP class) ----------------------------


@pytest.mark.parametrize(
    ("model", "keys"),
    [
        pytest.param(
            "S",
            ["QueryRetrieveLevel=SERIES", "SeriesInstanceUID"],
            id="study-root-series-without-study-uid",
        ),
        pytest.param(
            "S",
            ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={STUDY_UID['ST1']}", "SOPInstanceUID"],
            id="study-root-image-without-series-uid",
        ),
        pytest.param(
            "P",
            ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"],
            id="patient-root-study-without-patient-id",
        ),
        pytest.param(
            "P",
            ["QueryRetrieveLevel=SERIES", "PatientID=PID001", "SeriesInstanceUID"],
            id="patient-root-series-without-study-uid",
        ),
        pytest.param(
            "S",
            ["QueryRetrieveLevel=SERIES", "StudyInstanceUID=1.2.*", "SeriesInstanceUID"],
            id="wildcard-in-upper-unique-key",
        ),
        pytest.param(
            "S", ["QueryRetrieveLevel=PATIENT", "PatientID"], id="patient-level-in-study-root"
        ),
        pytest.param("S", ["QueryRetrieveLevel=FOO", "PatientID"], id="unknown-level"),
        pytest.param("S", ["PatientID"], id="no-level"),
    ],
)
def test_invalid_identifier_is_refused(
    archive: Hub, workdir: Path, model: str, keys: list[str]
) -> None:
    outcome = findscu(archive, model, keys, workdir)

    assert outcome.status == 0xA900, outcome.output[-2000:]
    assert outcome.matches == []
    assert outcome.error_comment


def test_matches_spanning_several_index_pages(
    start_hub: HubFactory, tmp_path: Path, workdir: Path
) -> None:
    """The index is read 500 rows at a time: 1,201 images of one series come back to
    findscu exactly once each, and a key answered from the stored header (ImageComments)
    filters across the page boundaries."""
    hub = start_hub()
    count = 2 * PAGE_ROWS + 201
    study, series = f"{ROOT}.900", f"{ROOT}.900.1"
    files = []
    for number in range(1, count + 1):
        ds = image_dataset("IM111")
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = f"{series}.{number}"
        ds.InstanceNumber = number
        ds.ImageComments = "MARKED" if number % 100 == 0 else "PLAIN"
        files.append(write_part10(tmp_path / f"{number}.dcm", ds))
    outcomes, result = dcmsend(files, hub.ae_title, hub.port, workdir)
    assert [o.status for o in outcomes.values()] == [0x0000] * count, output_of(result)
    scope = [f"StudyInstanceUID={study}", f"SeriesInstanceUID={series}"]

    everything = find(hub, "S", "IMAGE", [*scope, "SOPInstanceUID", "InstanceNumber"], workdir)
    numbers = sorted(int(m.InstanceNumber) for m in everything.matches)
    assert numbers == list(range(1, count + 1))
    marked = find(hub, "S", "IMAGE", [*scope, "SOPInstanceUID", "ImageComments=MARKED"], workdir)
    assert sorted(str(m.SOPInstanceUID) for m in marked.matches) == sorted(
        f"{series}.{n}" for n in range(100, count + 1, 100)
    )
