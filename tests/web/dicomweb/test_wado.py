"""WADO-RS and WADO-URI: instances as stored or transcoded, metadata, frames, bulk data and
rendered images, for every transfer syntax pydicom decodes here."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from dicomhub.index.repository import StoredInstance
from tests.web.conftest import Web
from tests.web.samples import SYNTAX_SAMPLES, parts_of, unique_copy

DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _stored(web: Web, name: str, tmp: Path) -> tuple[StoredInstance, bytes]:
    path = unique_copy(name, tmp / name)
    result = web.store_file(path)
    stored = web.runtime.repository.get_instance(result.sop_instance_uid)
    assert stored is not None
    return stored, path.read_bytes()


def _url(stored: StoredInstance) -> str:
    return (
        f"/dicom-web/studies/{stored.study_instance_uid}/series/"
        f"{stored.series_instance_uid}/instances/{stored.sop_instance_uid}"
    )


@pytest.mark.parametrize("syntax", sorted(SYNTAX_SAMPLES))
def test_every_syntax_as_stored_transcoded_framed_and_rendered(
    web: Web, client: httpx.Client, tmp_path: Path, syntax: str
) -> None:
    stored, original = _stored(web, SYNTAX_SAMPLES[syntax], tmp_path)
    url = _url(stored)
    as_stored = client.get(url, headers={"Accept": DICOM_ANY})
    assert as_stored.status_code == 200
    ((headers, content),) = parts_of(as_stored.headers["content-type"], as_stored.content)
    assert content == original
    assert headers["content-type"] == f"application/dicom; transfer-syntax={syntax}"

    default = client.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    ((headers, content),) = parts_of(default.headers["content-type"], default.content)
    assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.1")
    explicit = pydicom.dcmread(io.BytesIO(content))
    source = pydicom.dcmread(io.BytesIO(original))
    assert explicit.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(explicit.pixel_array, source.pixel_array)

    frames = client.get(f"{url}/frames/1")
    assert frames.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    ((_, frame),) = parts_of(frames.headers["content-type"], frames.content)
    first = (
        source.pixel_array if int(source.get("NumberOfFrames", 1)) == 1 else source.pixel_array[0]
    )
    assert frame == first.astype(first.dtype.newbyteorder("<")).tobytes()

    png = client.get(f"{url}/rendered", headers={"Accept": "image/png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (int(source.Columns), int(source.Rows))
    assert np.asarray(image).std() > 0  # an image, not a blank
    jpeg = client.get(f"{url}/rendered", params={"viewport": "32,32", "quality": "80"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(jpeg.content)).size) == 32


def test_series_and_study_stream_every_instance(
    web: Web, client: httpx.Client, tmp_path: Path
) -> None:
    stored = [
        _stored(web, name, tmp_path)
        for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_implicit.dcm")
    ]
    study = stored[0][0].study_instance_uid
    answer = client.get(f"/dicom-web/studies/{study}", headers={"Accept": DICOM_ANY})
    contents = [content for _, content in parts_of(answer.headers["content-type"], answer.content)]
    assert sorted(contents) == sorted(original for _, original in stored)
    metadata = client.get(f"/dicom-web/studies/{study}/metadata").json()
    assert len(metadata) == 3
    assert {m["00080018"]["Value"][0] for m in metadata} == {s.sop_instance_uid for s, _ in stored}


def test_compressed_frames_as_stored_and_refusals(
    web: Web, client: httpx.Client, tmp_path: Path
) -> None:
    stored, original = _stored(web, "SC_rgb_rle_2frame.dcm", tmp_path)
    url = _url(stored)
    answer = client.get(
        f"{url}/frames/2,1", headers={"Accept": 'multipart/related; type="image/dicom-rle"'}
    )
    parts = parts_of(answer.headers["content-type"], answer.content)
    assert [h["content-type"] for h, _ in parts] == [
        "image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"
    ] * 2
    dataset = pydicom.dcmread(io.BytesIO(original))
    from pydicom.encaps import generate_frames

    frames = list(generate_frames(dataset.PixelData, number_of_frames=2))
    assert [content for _, content in parts] == [frames[1], frames[0]]
    assert client.get(f"{url}/frames/3").status_code == 404
    assert client.get(f"{url}/frames/0").status_code == 400
    png = client.get(f"{url}/frames/2/rendered", headers={"Accept": "image/png"})
    assert Image.open(io.BytesIO(png.content)).mode == "RGB"
    baseline = "1.2.840.10008.1.2.4.50"
    lossy = client.get(
        url,
        headers={
            "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={baseline}'
        },
    )
    assert lossy.status_code == 406
    assert "transfer-syntax=*" in lossy.json()["error"]
    assert client.get(url, headers={"Accept": "image/png"}).status_code == 406
    assert client.get(_url(stored).replace(stored.sop_instance_uid, "1.2.3")).status_code == 404


def test_bulkdata_and_wado_uri(web: Web, client: httpx.Client, tmp_path: Path) -> None:
    stored, original = _stored(web, "MR_small.dcm", tmp_path)
    dataset = pydicom.dcmread(io.BytesIO(original))
    metadata = client.get(f"{_url(stored)}/metadata").json()[0]
    pixel_uri = metadata["7FE00010"]["BulkDataURI"]
    answer = client.get(pixel_uri)
    ((_, pixels),) = parts_of(answer.headers["content-type"], answer.content)
    assert pixels == dataset.PixelData

    query = {
        "requestType": "WADO",
        "studyUID": stored.study_instance_uid,
        "seriesUID": stored.series_instance_uid,
        "objectUID": stored.sop_instance_uid,
    }
    dicom = client.get(
        "/wado", params={**query, "contentType": "application/dicom", "transferSyntax": "*"}
    )
    assert dicom.headers["content-type"] == "application/dicom" and dicom.content == original
    jpeg = client.get(
        "/wado",
        params={
            **query,
            "rows": "20",
            "columns": "20",
            "windowCenter": "600",
            "windowWidth": "1200",
        },
    )
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(jpeg.content)).size) == 20
    assert client.get("/wado", params={**query, "requestType": "X"}).status_code == 400
    assert client.get("/wado", params={**query, "contentType": "text/html"}).status_code == 406
    assert client.get("/wado", params={**query, "windowCenter": "1"}).status_code == 400
