"""DICOMweb with a client we did not write (dicomweb-client), against ``dicomhub serve`` and
against Orthanc's DICOMweb plugin.

The same STOW-RS, QIDO-RS and WADO-RS requests go to both servers; the answers are compared
where Orthanc implements the transaction.  What dicomhub stores is byte for byte what the
client sent (captured on the wire), and what it returns with ``transfer-syntax=*`` is byte for
byte what it stored.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.factories import make_dataset
from tests.interop.support import Hub, needs_orthanc, split_part10
from tests.interop.test_orthanc import running_orthanc

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
needs_plugin = pytest.mark.skipif(
    not DICOMWEB_PLUGIN.exists(),
    reason="Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)",
)
pytestmark = [pytest.mark.interop]

AS_STORED = (("application/dicom", "*"),)


@dataclass
class Wire:
    """Request bodies a client sent, captured from its session."""

    bodies: list[bytes] = field(default_factory=list)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        body = response.request.body
        if isinstance(body, bytes):
            self.bodies.append(body)


def _client(url: str, wire: Wire | None = None) -> DICOMwebClient:
    session = requests.Session()
    if wire is not None:
        session.hooks["response"].append(wire.hook)
    return DICOMwebClient(url=url, session=session)


@pytest.fixture(scope="module")
def dicomhub(hub: Hub) -> Hub:
    """The module's dicomhub, once its HTTP server answers."""
    hub.wait_for_log(r"HTTP server on http://")
    return hub


def _study(patient_id: str) -> list[Dataset]:
    study, series = generate_uid(), generate_uid()
    datasets = []
    for number in range(3):
        dataset = make_dataset(
            patient_name="WEB^CLIENT",
            patient_id=patient_id,
            study_uid=study,
            series_uid=series,
            rows=16,
            InstanceNumber=number + 1,
            WindowCenter=2048,
            WindowWidth=4096,
        )
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.preamble = b"\x00" * 128  # the client writes it as is: a Part 10 file
        datasets.append(dataset)
    return datasets


def _parts(body: bytes) -> list[bytes]:
    """The DICOM objects of a STOW-RS body dicomweb-client sent."""
    boundary = body.lstrip(b"\r\n").split(b"\r\n", 1)[0]
    found = []
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        found.append(chunk.partition(b"\r\n\r\n")[2][:-2])
    return found


def _values(result: dict[str, Any], tag: str) -> list[Any]:
    value = result.get(tag, {}).get("Value", [])
    return list(value)


def test_stow_qido_wado_round_trip_is_byte_identical(dicomhub: Hub) -> None:
    wire = Wire()
    client = _client(f"{dicomhub.http_url}/dicom-web", wire)
    datasets = _study("RT-1")
    study = str(datasets[0].StudyInstanceUID)
    answer = client.store_instances(datasets)
    assert len(answer.ReferencedSOPSequence) == 3
    assert "FailedSOPSequence" not in answer
    sent = {split_part10(p).sop_instance_uid: p for p in _parts(wire.bodies[-1])}
    assert len(sent) == 3

    (found,) = client.search_for_studies(search_filters={"PatientID": "RT-1"})
    assert _values(found, "0020000D") == [study]
    assert _values(found, "00201208") == [3]
    (series,) = client.search_for_series(study)
    instances = client.search_for_instances(study, _values(series, "0020000E")[0])
    assert {_values(i, "00080018")[0] for i in instances} == set(sent)

    for dataset in datasets:
        uid = str(dataset.SOPInstanceUID)
        stored = dicomhub.instance(uid)
        assert stored is not None
        assert dicomhub.blob(stored.blob_key) == sent[uid]
        url = (
            f"{dicomhub.http_url}/dicom-web/studies/{study}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{uid}"
        )
        response = client._http_get(  # the client's own transport and multipart decoder
            url,
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        (part,) = list(client._decode_multipart_message(response, stream=False))
        assert part == sent[uid]
        retrieved = client.retrieve_instance(
            study, str(dataset.SeriesInstanceUID), uid, media_types=AS_STORED
        )
        assert retrieved.PixelData == dataset.PixelData


@dataclass
class Server:
    """One DICOMweb server under test."""

    name: str
    client: DICOMwebClient


@pytest.fixture(scope="module")
def orthanc_dicomweb(dicomhub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Orthanc with its DICOMweb plugin; its DICOMweb root URL."""
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"{DICOMWEB_PLUGIN} is missing (apt-get install orthanc-dicomweb)")
    with running_orthanc(
        tmp_path_factory.mktemp("orthanc-dicomweb"), dicomhub, plugins=[str(DICOMWEB_PLUGIN)]
    ) as orthanc:
        yield f"{orthanc.url}/dicom-web"


@needs_orthanc
@needs_plugin
def test_same_answers_as_orthanc(dicomhub: Hub, orthanc_dicomweb: str) -> None:
    servers = [
        Server("dicomhub", _client(f"{dicomhub.http_url}/dicom-web")),
        Server("orthanc", _client(orthanc_dicomweb)),
    ]
    datasets = _study("CMP-1")
    study, series = str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)
    answers: dict[str, dict[str, Any]] = {}
    for server in servers:
        client = server.client
        stored = client.store_instances(datasets)
        # Orthanc 1.10 matches patient attributes of a study search only exactly (no
        # wildcard, and PatientName not at all here): compare on what it matches.
        found_studies = client.search_for_studies(search_filters={"PatientID": "CMP-1"})
        dated = client.search_for_studies(search_filters={"StudyDate": "20240301-20240331"})
        matching = [s for s in found_studies if _values(s, "0020000D") == [study]]
        assert len(matching) == 1, (server.name, found_studies)
        (found,) = matching
        (found_series,) = client.search_for_series(study)
        instances = client.search_for_instances(study, series)
        first = datasets[0]
        uid = str(first.SOPInstanceUID)
        metadata = client.retrieve_instance_metadata(study, series, uid)
        frames = client.retrieve_instance_frames(
            study,
            series,
            uid,
            frame_numbers=[1],
            media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
        )
        rendered = client.retrieve_instance_rendered(study, series, uid, media_types=("image/png",))
        retrieved = client.retrieve_instance(study, series, uid, media_types=AS_STORED)
        whole = list(client.retrieve_study(study, media_types=AS_STORED))
        answers[server.name] = {
            "stored": sorted(
                str(item.ReferencedSOPInstanceUID) for item in stored.ReferencedSOPSequence
            ),
            "failed": len(stored.get("FailedSOPSequence", [])),
            "study": {
                tag: _values(found, tag)
                for tag in ("00100010", "00100020", "00080020", "00080050", "0020000D")
            },
            "study_instances": _values(found, "00201208"),
            "dated": study in [_values(s, "0020000D")[0] for s in dated],
            "series": (_values(found_series, "0020000E"), _values(found_series, "00080060")),
            "instances": sorted(_values(i, "00080018")[0] for i in instances),
            "metadata": {
                tag: _values(metadata, tag)
                for tag in ("00080016", "00080018", "00100010", "00280010", "00280011")
            },
            "pixel_bulkdata": "BulkDataURI" in metadata.get("7FE00010", {}),
            "frame": frames[0],
            "rendered_size": Image.open(io.BytesIO(rendered)).size,
            "rendered": np.asarray(Image.open(io.BytesIO(rendered)).convert("L")).std() > 0,
            "retrieved": retrieved.PixelData == first.PixelData,
            "study_objects": sorted(str(d.SOPInstanceUID) for d in whole),
        }
    assert answers["dicomhub"] == answers["orthanc"]
    assert answers["dicomhub"]["frame"] == datasets[0].PixelData
    assert answers["dicomhub"]["failed"] == 0 and len(answers["dicomhub"]["stored"]) == 3


def test_stow_refusals_name_the_reason(dicomhub: Hub) -> None:
    client = _client(f"{dicomhub.http_url}/dicom-web")
    datasets = _study("BAD-1")
    datasets[1].SOPClassUID = "1.2.3.x"  # not a UID: the instance is refused, the others stored
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances([datasets[1]])
    assert refused.value.response is not None
    assert refused.value.response.status_code == 409
    answer = client.store_instances([datasets[0], datasets[1], datasets[2]])
    (failure,) = answer.FailedSOPSequence
    assert failure.FailureReason == 0xC001
    assert len(answer.ReferencedSOPSequence) == 2
