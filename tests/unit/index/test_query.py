"""C-FIND over the index: hierarchy checks, matching and returned keys, on both backends."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import Connection

from dicomhub.errors import IdentifierDoesNotMatchSOPClass
from dicomhub.index.query import InformationModel
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime
from tests.factories import make_dataset, write_file
from tests.index_pages import count_pages

STUDY_A, STUDY_B, STUDY_C = (
    "1.2.826.0.1.3680043.10.9.1",
    "1.2.826.0.1.3680043.10.9.2",
    "1.2.826.0.1.3680043.10.9.3",
)


@pytest.fixture
def archive(runtime: Runtime, tmp_path: Path) -> Runtime:
    """Three patients, three studies, four series, six instances."""
    objects = [
        make_dataset(
            patient_name="DOE^JOHN",
            patient_id="P1",
            study_uid=STUDY_A,
            series_uid="1.2.3.10",
            sop_uid="1.2.3.10.1",
            study_date="20200615",
            study_time="101500",
            accession="A100",
            modality="CT",
        ),
        make_dataset(
            patient_name="DOE^JOHN",
            patient_id="P1",
            study_uid=STUDY_A,
            series_uid="1.2.3.10",
            sop_uid="1.2.3.10.2",
            study_date="20200615",
            study_time="101500",
            accession="A100",
            modality="CT",
        ),
        make_dataset(
            patient_name="DOE^JOHN",
            patient_id="P1",
            study_uid=STUDY_A,
            series_uid="1.2.3.11",
            sop_uid="1.2.3.11.1",
            study_date="20200615",
            study_time="101500",
            accession="A100",
            modality="MR",
            SeriesDescription="T2 AX",
        ),
        make_dataset(
            patient_name="DOE^JANE",
            patient_id="P2",
            study_uid=STUDY_B,
            series_uid="1.2.3.20",
            sop_uid="1.2.3.20.1",
            study_date="20191231",
            study_time="235959",
            accession="B200",
            modality="MR",
        ),
        make_dataset(
            patient_name="Müller^Jörg",
            patient_id="P3",
            study_uid=STUDY_C,
            series_uid="1.2.3.30",
            sop_uid="1.2.3.30.1",
            study_date="20210102",
            study_time="080000",
            accession="C300",
            modality="US",
            charset="ISO_IR 100",
            BodyPartExamined="ABDOMEN",
        ),
        make_dataset(
            patient_name="Müller^Jörg",
            patient_id="P3",
            study_uid=STUDY_C,
            series_uid="1.2.3.30",
            sop_uid="1.2.3.30.2",
            study_date="20210102",
            study_time="080000",
            accession="C300",
            modality="US",
            charset="ISO_IR 100",
            BodyPartExamined="ABDOMEN",
        ),
    ]
    for index, ds in enumerate(objects):
        path = write_file(ds, tmp_path / "in" / f"{index}.dcm")
        runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    return runtime


def _query(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _find(
    runtime: Runtime, identifier: Dataset, model: InformationModel = InformationModel.STUDY_ROOT
) -> list[Dataset]:
    return list(runtime.finder.find(identifier, model))


def _values(results: Iterable[Dataset], keyword: str) -> list[str]:
    return sorted(str(ds.get(keyword, "")) for ds in results)


def test_study_level_wildcard_and_returned_keys(archive: Runtime) -> None:
    results = _find(
        archive,
        _query(
            "STUDY",
            PatientName="DOE*",
            StudyInstanceUID="",
            ModalitiesInStudy="",
            NumberOfStudyRelatedSeries="",
            NumberOfStudyRelatedInstances="",
            StudyDescription="",
            SOPClassesInStudy="",
            PatientBirthDate="",
            ReferringPhysicianName="",
            InstitutionAddress="",
        ),
    )
    assert _values(results, "StudyInstanceUID") == [STUDY_A, STUDY_B]
    study_a = next(r for r in results if r.StudyInstanceUID == STUDY_A)
    assert list(study_a.ModalitiesInStudy) == ["CT", "MR"]
    assert study_a.NumberOfStudyRelatedSeries == 2
    assert study_a.NumberOfStudyRelatedInstances == 3
    assert study_a.StudyDescription == "CT HEAD"
    assert study_a.SOPClassesInStudy == "1.2.840.10008.5.1.4.1.1.2"
    assert study_a.PatientBirthDate == "19700101"
    assert study_a.QueryRetrieveLevel == "STUDY"
    # Requested but absent everywhere: returned, empty.
    assert "InstitutionAddress" in study_a and study_a.InstitutionAddress in ("", None)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"StudyDate": "20200101-20201231"}, [STUDY_A]),
        ({"StudyDate": "-20191231"}, [STUDY_B]),
        ({"StudyDate": "20210101-"}, [STUDY_C]),
        ({"StudyDate": "20200615"}, [STUDY_A]),
        ({"StudyDate": "20191201-20191231\\20210102"}, [STUDY_B, STUDY_C]),
        ({"AccessionNumber": "B200 \\C300"}, [STUDY_B, STUDY_C]),
        ({"StudyTime": "0700-1100"}, [STUDY_A, STUDY_C]),
        ({"AccessionNumber": "B200"}, [STUDY_B]),
        ({"AccessionNumber": "?300"}, [STUDY_C]),
        ({"StudyInstanceUID": f"{STUDY_A}\\{STUDY_C}"}, [STUDY_A, STUDY_C]),
        ({"ModalitiesInStudy": "MR"}, [STUDY_A, STUDY_B]),
        ({"ModalitiesInStudy": "US\\CT"}, [STUDY_A, STUDY_C]),
        ({"PatientName": "doe^jane"}, [STUDY_B]),
        ({"PatientName": "Mü*"}, [STUDY_C]),
        ({"PatientName": "müller^jörg"}, [STUDY_C]),
        ({"PatientName": "MÜLLER*"}, [STUDY_C]),
        ({"PatientID": "P1"}, [STUDY_A]),
        ({"PatientID": "p1"}, []),
        ({"StudyDescription": "CT*"}, [STUDY_A, STUDY_B, STUDY_C]),
        ({"StudyDescription": "ct*"}, []),
        ({"PatientSex": "M", "StudyDate": "2019*"}, []),
    ],
)
def test_study_matching(archive: Runtime, keys: dict[str, str], expected: list[str]) -> None:
    results = _find(
        archive,
        _query("STUDY", StudyInstanceUID="", **keys)
        if "StudyInstanceUID" not in keys
        else _query("STUDY", **keys),
    )
    assert _values(results, "StudyInstanceUID") == sorted(expected)


def test_key_only_in_header_is_matched_and_returned(archive: Runtime) -> None:
    results = _find(
        archive,
        _query(
            "SERIES", StudyInstanceUID=STUDY_A, SeriesInstanceUID="", Rows="", PatientPosition=""
        ),
    )
    assert len(results) == 2
    results = _find(
        archive,
        _query(
            "IMAGE",
            StudyInstanceUID=STUDY_C,
            SeriesInstanceUID="1.2.3.30",
            SOPInstanceUID="",
            PhotometricInterpretation="MONOCHROME2",
            Rows="",
        ),
    )
    assert _values(results, "SOPInstanceUID") == ["1.2.3.30.1", "1.2.3.30.2"]
    assert {int(r.Rows) for r in results} == {8}
    assert not _find(
        archive,
        _query(
            "IMAGE",
            StudyInstanceUID=STUDY_C,
            SeriesInstanceUID="1.2.3.30",
            PhotometricInterpretation="RGB",
        ),
    )


def test_series_and_image_levels(archive: Runtime) -> None:
    series = _find(
        archive,
        _query(
            "SERIES",
            StudyInstanceUID=STUDY_A,
            Modality="",
            SeriesInstanceUID="",
            SeriesDescription="T2*",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    assert [(s.SeriesInstanceUID, s.Modality) for s in series] == [("1.2.3.11", "MR")]
    assert series[0].NumberOfSeriesRelatedInstances == 1
    images = _find(
        archive,
        _query(
            "IMAGE",
            StudyInstanceUID=STUDY_A,
            SeriesInstanceUID="1.2.3.10",
            SOPInstanceUID="",
            SOPClassUID="",
            InstanceNumber="",
        ),
    )
    assert _values(images, "SOPInstanceUID") == ["1.2.3.10.1", "1.2.3.10.2"]
    assert all(i.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" for i in images)


def test_patient_root(archive: Runtime) -> None:
    model = InformationModel.PATIENT_ROOT
    patients = _find(
        archive,
        _query(
            "PATIENT",
            PatientID="",
            PatientName="",
            NumberOfPatientRelatedStudies="",
            NumberOfPatientRelatedInstances="",
        ),
        model,
    )
    assert _values(patients, "PatientID") == ["P1", "P2", "P3"]
    p1 = next(p for p in patients if p.PatientID == "P1")
    assert (p1.NumberOfPatientRelatedStudies, p1.NumberOfPatientRelatedInstances) == (1, 3)
    studies = _find(archive, _query("STUDY", PatientID="P3", StudyInstanceUID=""), model)
    assert _values(studies, "StudyInstanceUID") == [STUDY_C]
    images = _find(
        archive,
        _query(
            "IMAGE",
            PatientID="P1",
            StudyInstanceUID=STUDY_A,
            SeriesInstanceUID="1.2.3.11",
            SOPInstanceUID="",
        ),
        model,
    )
    assert _values(images, "SOPInstanceUID") == ["1.2.3.11.1"]


@pytest.mark.parametrize(
    ("model", "identifier", "message"),
    [
        (InformationModel.STUDY_ROOT, _query("PATIENT", PatientID=""), "not valid"),
        (InformationModel.STUDY_ROOT, _query("SERIES", SeriesInstanceUID=""), "StudyInstanceUID"),
        (
            InformationModel.STUDY_ROOT,
            _query("IMAGE", StudyInstanceUID=STUDY_A),
            "SeriesInstanceUID",
        ),
        (
            InformationModel.STUDY_ROOT,
            _query("SERIES", StudyInstanceUID="1.2*"),
            "StudyInstanceUID",
        ),
        (InformationModel.PATIENT_ROOT, _query("STUDY", StudyInstanceUID=""), "PatientID"),
        (InformationModel.STUDY_ROOT, _query("FOO"), "unknown QueryRetrieveLevel"),
        (InformationModel.STUDY_ROOT, Dataset(), "QueryRetrieveLevel is missing"),
    ],
)
def test_invalid_identifiers(
    archive: Runtime, model: InformationModel, identifier: Dataset, message: str
) -> None:
    with pytest.raises(IdentifierDoesNotMatchSOPClass, match=message):
        _find(archive, identifier, model)


def test_response_uses_stored_character_set(archive: Runtime) -> None:
    results = _find(archive, _query("STUDY", PatientName="Müller*", StudyInstanceUID=""))
    assert len(results) == 1
    assert results[0].SpecificCharacterSet == "ISO_IR 100"
    assert str(results[0].PatientName) == "Müller^Jörg"
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, results[0])
    assert "Müller^Jörg".encode("latin-1") in buffer.getvalue()


def test_keys_below_query_level_returned_empty(archive: Runtime) -> None:
    results = _find(
        archive, _query("STUDY", StudyInstanceUID=STUDY_B, SOPInstanceUID="", SeriesInstanceUID="")
    )
    assert len(results) == 1
    assert results[0].SOPInstanceUID in ("", None)
    assert results[0].SeriesInstanceUID in ("", None)


@pytest.mark.parametrize("page_rows", [1, 2, 500])
def test_matches_are_read_a_page_at_a_time(
    archive: Runtime, monkeypatch: pytest.MonkeyPatch, page_rows: int
) -> None:
    """Pages of one, two and many rows give the same matches, in the order of the rows, and
    a key matched in Python (from the header) filters across page boundaries; each page is
    read in a transaction of its own, none of them open while the caller holds a match."""
    count_pages(monkeypatch, page_rows)
    reads = 0
    read = archive.db.read

    @contextmanager
    def counted() -> Iterator[Connection]:
        nonlocal reads
        reads += 1
        with read() as conn:
            yield conn

    monkeypatch.setattr(archive.db, "read", counted)
    instances = [
        str(ds.SOPInstanceUID)
        for ds in archive.finder.find(
            _query("IMAGE", SOPInstanceUID="", BodyPartExamined=""),
            InformationModel.STUDY_ROOT,
            relational=True,
        )
    ]
    assert instances == [
        "1.2.3.10.1",
        "1.2.3.10.2",
        "1.2.3.11.1",
        "1.2.3.20.1",
        "1.2.3.30.1",
        "1.2.3.30.2",
    ]
    # six instances: pages of one take seven reads (the last one finds nothing), pages of
    # two take four, a page of 500 one
    assert reads == {1: 7, 2: 4, 500: 1}[page_rows]
    # a header-only key: rows of every page are filtered in Python
    abdomen = _find(
        archive,
        _query("SERIES", StudyInstanceUID=STUDY_C, SeriesInstanceUID="", BodyPartExamined="AB*"),
    )
    assert _values(abdomen, "SeriesInstanceUID") == ["1.2.3.30"]
    assert (
        _find(
            archive,
            _query(
                "SERIES", StudyInstanceUID=STUDY_A, SeriesInstanceUID="", BodyPartExamined="AB*"
            ),
        )
        == []
    )


def test_a_caller_that_stops_reads_no_further_page(
    archive: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = count_pages(monkeypatch, 2)
    matches = archive.finder.find(
        _query("IMAGE", SOPInstanceUID=""), InformationModel.STUDY_ROOT, relational=True
    )
    first = list(itertools.islice(matches, 3))
    assert [str(ds.SOPInstanceUID) for ds in first] == ["1.2.3.10.1", "1.2.3.10.2", "1.2.3.11.1"]
    assert pages == [2, 2]  # six instances, three wanted: two pages of two read, not three
