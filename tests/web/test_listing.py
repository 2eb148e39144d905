"""Archive lists: every match counted, sorted pages equal to sorting every match, and only
the page's matches answered in full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from dicomhub.index.attributes import Level
from dicomhub.index.query import FindService, InformationModel, Match
from dicomhub.ingest import IngestRequest
from dicomhub.runtime import Runtime
from dicomhub.web.listing import LEVEL_KEYS, _sort_key, identifier, item, search
from tests.factories import make_dataset, write_file

STUDIES = [
    # patient name, accession, study date, description ("" = absent)
    ("DOE^JOHN", "A1", "20240101", "CT HEAD"),
    ("doe^jane", "A2", "20240101", ""),
    ("ROE^RICHARD", "", "20231231", "CHEST"),
    ("Adams^Ann", "A4", "20240315", "chest"),
    ("DOE^JOHN", "A5", "20240101", "CT HEAD"),
    ("Zeta^Zoe", "", "", "ABDOMEN"),
    ("Brown^Bob", "A7", "20220704", ""),
    ("adams^ann", "A8", "20240315", "Chest"),
]


@pytest.fixture
def archive(runtime: Runtime, tmp_path: Path) -> Runtime:
    for number, (name, accession, date, description) in enumerate(STUDIES):
        extra: dict[str, Any] = {"StudyDescription": description} if description else {}
        ds = make_dataset(
            patient_name=name,
            patient_id=f"P{number}",
            study_uid=generate_uid(),
            accession=accession,
            study_date=date,
            **extra,
        )
        if not description:
            del ds.StudyDescription
        path = write_file(ds, tmp_path / f"{number}.dcm")
        runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    return runtime


def _reference(finder: FindService, sort: str) -> list[dict[str, Any]]:
    """Every match answered in full, then sorted key by key with stable sorts (the last key
    first; empty values last whichever the direction)."""
    keywords = list(LEVEL_KEYS[Level.STUDY])
    query = identifier(Level.STUDY, {}, keywords)
    items = [item(m, keywords) for m in finder.find(query, InformationModel.STUDY_ROOT)]
    for key in reversed([k for k in sort.split(",") if k]):
        keyword = key.lstrip("-")
        present = [i for i in items if _sort_key(i[keyword])[0] == 0]
        missing = [i for i in items if _sort_key(i[keyword])[0] == 1]
        present.sort(key=lambda i: _sort_key(i[keyword]), reverse=key.startswith("-"))
        items = present + missing
    return items


@pytest.mark.parametrize(
    "sort",
    [
        "",
        "StudyDate",
        "-StudyDate",
        "StudyDate,PatientName",
        "-StudyDate,-PatientName",
        "-AccessionNumber",
        "StudyDescription,-PatientName",
        "-NumberOfStudyRelatedInstances,PatientName",
    ],
)
def test_sorted_pages_are_slices_of_every_match_sorted(archive: Runtime, sort: str) -> None:
    expected = _reference(archive.finder, sort)
    assert len(expected) == len(STUDIES)
    for offset, limit in [(0, 100), (0, 1), (0, 3), (2, 3), (6, 4), (8, 5), (20, 1)]:
        page = search(archive.finder, Level.STUDY, {}, sort=sort, offset=offset, limit=limit)
        assert page.total == len(STUDIES)
        assert page.items == expected[offset : offset + limit], (sort, offset, limit)


def test_only_the_page_is_answered_in_full(
    archive: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    full: list[Match] = []
    respond = FindService.respond

    def counted(self: FindService, match: Match, keywords: Any = None) -> Any:
        if keywords is None or len(keywords) == len(LEVEL_KEYS[match.level]):
            full.append(match)
        return respond(self, match, keywords)

    monkeypatch.setattr(FindService, "respond", counted)
    for sort in ("", "-StudyDate"):
        full.clear()
        page = search(archive.finder, Level.STUDY, {"PatientName": "*"}, sort=sort, limit=2)
        assert page.total == len(STUDIES)
        assert len(page.items) == 2
        assert len(full) == 2
    filtered = search(archive.finder, Level.STUDY, {"PatientName": "doe*"}, sort="PatientName")
    assert [i["PatientName"] for i in filtered.items] == ["doe^jane", "DOE^JOHN", "DOE^JOHN"]
    assert filtered.total == 3
