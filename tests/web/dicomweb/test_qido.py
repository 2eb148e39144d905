"""QIDO-RS: C-FIND matching over HTTP, default and included attributes, paging, 204."""

from __future__ import annotations

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.factories import make_dataset
from tests.index_pages import count_pages
from tests.web.conftest import Web


def _values(result: dict[str, dict[str, list[object]]], tag: str) -> list[object]:
    return result.get(tag, {}).get("Value", [])


def _load(web: Web) -> tuple[str, str, str]:
    ct, mr, series = generate_uid(), generate_uid(), generate_uid()
    for n in range(3):
        web.store(
            make_dataset(
                patient_name="DOE^JOHN",
                patient_id="P1",
                study_uid=ct,
                modality="CT",
                series_uid=series,
                InstanceNumber=n + 1,
                StationName="CT01",
            )
        )
    web.store(
        make_dataset(
            patient_name="Müller^Anna",
            patient_id="P2",
            study_uid=mr,
            modality="MR",
            study_date="20230101",
            charset="ISO_IR 192",
        )
    )
    return ct, mr, series


def test_studies_match_like_c_find(web: Web, client: httpx.Client) -> None:
    ct, mr, _ = _load(web)
    everything = client.get("/dicom-web/studies")
    assert everything.headers["content-type"].startswith("application/dicom+json")
    assert len(everything.json()) == 2
    study = next(s for s in everything.json() if _values(s, "0020000D") == [ct])
    assert _values(study, "00100010") == [{"Alphabetic": "DOE^JOHN"}]
    assert _values(study, "00201208") == [3]
    assert _values(study, "00080061") == ["CT"]
    assert _values(study, "00080056") == ["ONLINE"]
    assert _values(study, "00081190") == [f"{web.url}/dicom-web/studies/{ct}"]
    assert [
        _values(s, "0020000D") for s in client.get("/dicom-web/studies?PatientName=müller*").json()
    ] == [[mr]]
    assert [
        _values(s, "0020000D") for s in client.get("/dicom-web/studies?00100020=P1").json()
    ] == [[ct]]
    dated = client.get("/dicom-web/studies", params={"StudyDate": "-20231231"}).json()
    assert [_values(s, "0020000D") for s in dated] == [[mr]]
    assert len(client.get("/dicom-web/studies", params={"ModalitiesInStudy": "CT\\MR"}).json()) == 2


def test_series_and_instances_relational_and_scoped(web: Web, client: httpx.Client) -> None:
    ct, _, uid = _load(web)
    series = client.get("/dicom-web/series", params={"Modality": "CT"}).json()
    assert len(series) == 1
    assert _values(series[0], "0020000D") == [ct]  # study attributes come along
    assert _values(series[0], "00201209") == [3]
    scoped = client.get(f"/dicom-web/studies/{ct}/series").json()
    assert _values(scoped[0], "0020000E") == [uid]
    instances = client.get(f"/dicom-web/studies/{ct}/series/{uid}/instances").json()
    assert sorted(_values(i, "00200013")[0] for i in instances) == [1, 2, 3]  # type: ignore[type-var]
    url = _values(instances[0], "00081190")[0]
    assert isinstance(url, str) and f"/studies/{ct}/series/{uid}/instances/" in url
    by_header = client.get("/dicom-web/instances", params={"StationName": "CT01"}).json()
    assert len(by_header) == 3  # a key kept only in the stored header


def test_includefield_limit_offset_and_fuzzy(web: Web, client: httpx.Client) -> None:
    ct, _, _ = _load(web)
    plain = client.get(f"/dicom-web/studies/{ct}/instances").json()[0]
    assert "00081010" not in plain
    included = client.get(
        f"/dicom-web/studies/{ct}/instances", params={"includefield": "StationName,00100030"}
    ).json()[0]
    assert _values(included, "00081010") == ["CT01"]
    assert "00100030" in included
    everything = client.get(
        f"/dicom-web/studies/{ct}/instances", params={"includefield": "all", "limit": 1}
    ).json()
    assert len(everything) == 1
    assert _values(everything[0], "00280100") == [16]  # the whole stored header
    assert everything[0]["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")
    page = client.get(f"/dicom-web/studies/{ct}/instances", params={"offset": 2, "limit": 5}).json()
    assert len(page) == 1
    fuzzy = client.get("/dicom-web/studies", params={"PatientName": "doe", "fuzzymatching": "true"})
    assert "fuzzymatching parameter is not supported" in fuzzy.headers["warning"]


def test_no_match_and_bad_queries(client: httpx.Client) -> None:
    none = client.get("/dicom-web/studies", params={"PatientID": "nobody"})
    assert none.status_code == 204 and none.content == b""
    assert client.get("/dicom-web/studies", params={"Colour": "red"}).status_code == 400
    assert client.get("/dicom-web/studies", params={"limit": "many"}).status_code == 400
    assert client.get("/dicom-web/studies", params={"00400275.00401001": "x"}).status_code == 400
    xml = client.get("/dicom-web/studies", headers={"Accept": "application/dicom+xml"})
    assert xml.status_code == 406


def test_a_page_reads_only_as_far_as_it_needs(
    web: Web, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``limit`` and ``offset`` stop the index reads once the page is full: with a page of
    one row per read, the second of three instances costs two reads, not four."""
    ct, _, _ = _load(web)
    pages = count_pages(monkeypatch, 1)
    second = client.get(f"/dicom-web/studies/{ct}/instances", params={"offset": 1, "limit": 1})
    assert [_values(i, "00200013") for i in second.json()] == [[2]]
    assert pages == [1, 1]
    pages.clear()
    everything = client.get(f"/dicom-web/studies/{ct}/instances").json()
    assert len(everything) == 3
    assert pages == [1, 1, 1, 0]  # no limit: read to the end
