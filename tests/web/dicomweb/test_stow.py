"""STOW-RS: every part through the ingest path, and the answer PS3.18 10.5 and Annex I define."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from dicomhub.config import load_settings
from dicomhub.runtime import open_runtime
from dicomhub.web.app import create_app
from dicomhub.web.server import HttpServer
from tests.factories import make_dataset, write_file
from tests.web.conftest import Web
from tests.web.samples import multipart

FAILED, REFERENCED, REASON, URL = "00081198", "00081199", "00081197", "00081190"


def _file(tmp: Path, **kwargs: object) -> bytes:
    dataset = make_dataset(**kwargs)  # type: ignore[arg-type]
    return write_file(dataset, tmp / f"{dataset.SOPInstanceUID}.dcm").read_bytes()


def test_all_stored_is_200_with_references(web: Web, client: httpx.Client, tmp_path: Path) -> None:
    study = generate_uid()
    files = [_file(tmp_path, study_uid=study) for _ in range(3)]
    body, kind = multipart([("application/dicom", f) for f in files])
    answer = client.post(
        f"/dicom-web/studies/{study}", content=body, headers={"Content-Type": kind}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/dicom+json")
    result = answer.json()
    assert FAILED not in result
    assert result[URL]["Value"] == [f"{web.url}/dicom-web/studies/{study}"]
    items = result[REFERENCED]["Value"]
    assert len(items) == 3
    for item in items:
        uid = item["00081155"]["Value"][0]
        stored = web.runtime.repository.get_instance(uid)
        assert stored is not None
        assert item[URL]["Value"][0].endswith(
            f"/series/{stored.series_instance_uid}/instances/{uid}"
        )
        with web.runtime.blobs.open(stored.blob_key) as blob:
            assert blob.read() in files


def test_partial_failure_is_202_with_reasons(
    web: Web, client: httpx.Client, tmp_path: Path
) -> None:
    study = generate_uid()
    good = _file(tmp_path, study_uid=study)
    other_study = _file(tmp_path)
    truncated = _file(tmp_path, study_uid=study)[:-100]
    body, kind = multipart(
        [
            ("application/dicom", good),
            ("application/dicom", other_study),
            ("application/dicom", truncated),
            ("application/dicom", b"junk"),
        ]
    )
    answer = client.post(
        f"/dicom-web/studies/{study}", content=body, headers={"Content-Type": kind}
    )
    assert answer.status_code == 202
    failed = answer.json()[FAILED]["Value"]
    assert [f[REASON]["Value"][0] for f in failed] == [0xC409, 0xC000, 0xC000]
    assert failed[0]["00081155"]["Value"]  # the other study's instance is named
    assert "Value" not in failed[2]["00081155"]  # junk has no UID to name
    assert len(answer.json()[REFERENCED]["Value"]) == 1
    assert web.runtime.repository.count_instances() == 1
    assert web.runtime.blobs.staged_files() == []


def test_none_stored_is_409(web: Web, client: httpx.Client, tmp_path: Path) -> None:
    body, kind = multipart([("application/dicom", b"junk"), ("application/dicom", b"more junk")])
    answer = client.post("/dicom-web/studies", content=body, headers={"Content-Type": kind})
    assert answer.status_code == 409
    assert len(answer.json()[FAILED]["Value"]) == 2
    assert REFERENCED not in answer.json()


def test_duplicate_with_other_content_is_refused(
    web: Web, client: httpx.Client, tmp_path: Path
) -> None:
    dataset = make_dataset()
    first = write_file(dataset, tmp_path / "a.dcm").read_bytes()
    dataset.PatientName = "CHANGED^NAME"
    second = write_file(dataset, tmp_path / "b.dcm").read_bytes()
    body, kind = multipart(
        [("application/dicom", first), ("application/dicom", first), ("application/dicom", second)]
    )
    answer = client.post("/dicom-web/studies", content=body, headers={"Content-Type": kind})
    assert answer.status_code == 202
    assert answer.json()[FAILED]["Value"][0][REASON]["Value"] == [0x0111]
    assert len(answer.json()[REFERENCED]["Value"]) == 2  # the identical copy is acknowledged


def test_bad_requests(client: httpx.Client, tmp_path: Path) -> None:
    good = _file(tmp_path)
    json_body = client.post(
        "/dicom-web/studies", content=b"[]", headers={"Content-Type": "application/dicom+json"}
    )
    assert json_body.status_code == 415
    assert "multipart/related" in json_body.json()["error"]
    xml_parts = client.post(
        "/dicom-web/studies",
        content=b"x",
        headers={"Content-Type": 'multipart/related; type="application/dicom+xml"; boundary=x'},
    )
    assert xml_parts.status_code == 415
    body, kind = multipart([("application/dicom", good)])
    cut = client.post("/dicom-web/studies", content=body[:-30], headers={"Content-Type": kind})
    assert cut.status_code == 400
    assert "truncated" in cut.json()["error"]
    empty = client.post(
        "/dicom-web/studies",
        content=b"--x--\r\n",
        headers={"Content-Type": "multipart/related; boundary=x"},
    )
    assert empty.status_code == 400


def test_body_limit_is_413_and_keeps_nothing(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path / "data", http_max_upload=4096)
    runtime = open_runtime(settings)
    server = HttpServer(create_app(runtime), "127.0.0.1", 0)
    server.start()
    try:
        small = _file(tmp_path, rows=4)
        large = _file(tmp_path, rows=64)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            body, kind = multipart([("application/dicom", small), ("application/dicom", large)])
            declared = http.post("/dicom-web/studies", content=body, headers={"Content-Type": kind})
            assert declared.status_code == 413
            assert "at most 4.0 KiB" in declared.json()["error"]

            def chunks() -> Iterator[bytes]:
                yield body[:1000]
                yield body[1000:]

            streamed = http.post(
                "/dicom-web/studies",
                content=chunks(),
                headers={"Content-Type": kind},
            )
            assert streamed.status_code == 413
            json_too_large = http.post(
                "/api/worklist",
                content=b"{" + b" " * (2 << 20) + b"}",
                headers={"Content-Type": "application/json"},
            )
            assert json_too_large.status_code == 413
        assert runtime.blobs.staged_files() == []
    finally:
        server.stop()
        runtime.close()
