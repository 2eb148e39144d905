"""The archive over REST: upload, search with filters/sort/paging, look, download, delete."""

from __future__ import annotations

import io

import httpx
import numpy as np
from PIL import Image
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicomhub.index.schema import changes
from tests.factories import make_dataset, write_file
from tests.web.conftest import Web


def _study(web: Web, patient: str, pid: str, date: str, modality: str, n: int = 2) -> str:
    study = generate_uid()
    series = generate_uid()
    for number in range(n):
        web.store(
            make_dataset(
                patient_name=patient,
                patient_id=pid,
                study_uid=study,
                series_uid=series,
                study_date=date,
                modality=modality,
                InstanceNumber=number + 1,
            )
        )
    return study


def test_search_filters_sort_and_pages(web: Web, client: httpx.Client) -> None:
    _study(web, "DOE^JOHN", "P1", "20240101", "CT")
    second = _study(web, "DOE^JANE", "P2", "20240215", "MR")
    _study(web, "ROE^RICHARD", "P3", "20240320", "CT", n=1)

    everything = client.get("/api/studies", params={"sort": "-StudyDate"}).json()
    assert everything["total"] == 3
    assert [s["StudyDate"] for s in everything["items"]] == ["20240320", "20240215", "20240101"]

    does = client.get("/api/studies", params={"PatientName": "doe*", "sort": "PatientName"}).json()
    assert [s["PatientName"] for s in does["items"]] == ["DOE^JANE", "DOE^JOHN"]

    ranged = client.get("/api/studies", params={"StudyDate": "20240201-20240331"}).json()
    assert {s["PatientID"] for s in ranged["items"]} == {"P2", "P3"}
    assert (
        client.get("/api/studies", params={"ModalitiesInStudy": "MR"}).json()["items"][0][
            "StudyInstanceUID"
        ]
        == second
    )

    page = client.get("/api/studies", params={"sort": "StudyDate", "offset": 1, "limit": 1}).json()
    assert (page["total"], page["offset"], page["limit"], page["has_more"]) == (3, 1, 1, True)
    assert page["items"][0]["PatientID"] == "P2"

    patients = client.get("/api/patients", params={"sort": "PatientID"}).json()
    assert [p["PatientID"] for p in patients["items"]] == ["P1", "P2", "P3"]
    assert patients["items"][0]["NumberOfPatientRelatedInstances"] == 2
    of_p2 = client.get("/api/patients/P2/studies").json()["items"]
    assert [s["StudyInstanceUID"] for s in of_p2] == [second]

    series = client.get(f"/api/studies/{second}/series").json()["items"]
    assert len(series) == 1 and series[0]["Modality"] == "MR"
    instances = client.get(f"/api/series/{series[0]['SeriesInstanceUID']}/instances").json()
    assert [i["InstanceNumber"] for i in instances["items"]] == [1, 2]
    assert client.get("/api/series", params={"Modality": "CT"}).json()["total"] == 2
    assert client.get("/api/instances", params={"PatientID": "P1"}).json()["total"] == 2


def test_bad_searches_say_why(client: httpx.Client) -> None:
    unknown = client.get("/api/studies", params={"Colour": "red"})
    assert unknown.status_code == 400
    assert "Colour" in unknown.json()["error"]
    assert client.get("/api/studies", params={"sort": "Colour"}).status_code == 400
    assert client.get("/api/studies", params={"limit": 0}).status_code == 400
    missing = client.get("/api/studies/1.2.3")
    assert missing.status_code == 404
    assert missing.json() == {"error": "There is no study 1.2.3 in the archive.", "status": 404}


def test_instance_file_header_and_preview(web: Web, client: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dataset = make_dataset(rows=64, WindowCenter=1000, WindowWidth=2000)
    path = write_file(dataset, tmp_path / "one.dcm")
    uploaded = client.post(
        "/api/instances", content=path.read_bytes(), headers={"Content-Type": "application/dicom"}
    )
    assert uploaded.status_code == 200
    assert uploaded.json()["items"][0]["status"] == "stored"
    uid = str(dataset.SOPInstanceUID)

    detail = client.get(f"/api/instances/{uid}").json()
    assert detail["stored"]["source"] == "upload"
    assert detail["stored"]["size"] == len(path.read_bytes())
    downloaded = client.get(f"/api/instances/{uid}/file")
    assert downloaded.content == path.read_bytes()
    assert downloaded.headers["content-type"] == "application/dicom"

    header = client.get(f"/api/instances/{uid}/header").json()
    assert header["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "DOE^JOHN"}]}
    assert header["7FE00010"]["BulkDataURI"].endswith(f"/instances/{uid}/bulkdata/7FE00010")

    png = client.get(f"/api/instances/{uid}/preview", params={"size": 32})
    assert png.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(png.content)))
    assert image.shape == (32, 32)
    full = np.asarray(Image.open(io.BytesIO(client.get(f"/api/instances/{uid}/preview").content)))
    # Pixel values are 0..4095 in a raster; window 1000/2000 maps 0 to black, >= 2000 to white.
    assert full[0, 0] == 0 and full.max() == 255
    narrow = client.get(f"/api/instances/{uid}/preview", params={"window": "10,20"}).content
    assert (np.asarray(Image.open(io.BytesIO(narrow))) == 255).mean() > 0.9
    jpeg = client.get(f"/api/instances/{uid}/preview", params={"format": "jpeg"})
    assert jpeg.content[:3] == b"\xff\xd8\xff"
    series_thumb = client.get(f"/api/series/{dataset.SeriesInstanceUID}/preview?size=16")
    assert Image.open(io.BytesIO(series_thumb.content)).size == (16, 16)
    assert client.get(f"/api/instances/{uid}/preview", params={"frame": 2}).status_code == 404
    assert client.get(f"/api/instances/{uid}/preview", params={"window": "x"}).status_code == 400


def test_upload_of_several_files_and_of_garbage(web: Web, client: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = write_file(make_dataset(), tmp_path / "good.dcm")
    form = client.post(
        "/api/instances",
        files=[
            ("file", ("good.dcm", good.read_bytes(), "application/dicom")),
            ("file", ("bad.dcm", b"not dicom at all", "application/octet-stream")),
        ],
    )
    assert form.status_code == 202
    body = form.json()
    assert (body["stored"], body["failed"]) == (1, 1)
    assert body["items"][1]["filename"] == "bad.dcm"
    assert body["items"][1]["failure_reason"] == 0xC000
    alone = client.post(
        "/api/instances", content=b"garbage", headers={"Content-Type": "application/dicom"}
    )
    assert alone.status_code == 400
    assert "not a DICOM Part 10 file" in alone.json()["error"]
    wrong = client.post("/api/instances", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415
    assert web.runtime.repository.count_instances() == 1
    assert web.runtime.blobs.staged_files() == []


def test_delete_is_logged_and_removes_the_objects(web: Web, client: httpx.Client) -> None:
    study = _study(web, "DOE^JOHN", "P1", "20240101", "CT", n=3)
    other = _study(web, "ROE^RICHARD", "P9", "20240101", "CT", n=1)
    keys = [i.blob_key for i in web.runtime.repository.iter_instances()]
    one = next(web.runtime.repository.iter_instances())
    assert client.delete(f"/api/instances/{one.sop_instance_uid}").json() == {"deleted": 1}
    assert client.delete(f"/api/studies/{study}").json() == {"deleted": 2}
    assert client.delete(f"/api/studies/{study}").status_code == 404
    assert client.delete("/api/patients/P9").json() == {"deleted": 1}
    assert client.get(f"/api/studies/{other}").status_code == 404
    assert web.runtime.repository.count_instances() == 0
    assert not any(web.runtime.blobs.exists(key) for key in keys)
    with web.runtime.db.read() as conn:
        deleted = conn.execute(select(changes).where(changes.c.change_type == "deleted")).all()
    assert len(deleted) == 4
    assert all(
        "deleted over HTTP by anonymous@127.0.0.1" in row.details["reason"] for row in deleted
    )
