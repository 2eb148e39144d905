"""Orthanc as a peer: it echoes, stores to and queries dicomhub.

Orthanc runs with its own JSON configuration (storage, index, free DICOM and HTTP ports,
loopback only, no authentication) and knows dicomhub as the modality "hub".  Files are uploaded
through its REST API and pushed with ``POST /modalities/hub/store``; what dicomhub stores is
compared byte for byte with what Orthanc holds (``GET /instances/{id}/file``).

Orthanc sends through DCMTK, which re-encodes some objects on the wire (it drops group length
elements, for instance), so the files used here are ones DCMTK transmits unchanged: for them
"the data set Orthanc holds" and "the data set Orthanc sent" are the same bytes.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.interop.support import (
    EXPLICIT_LE,
    HOST,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_LOSSLESS_SV1,
    ORTHANC,
    RLE_LOSSLESS,
    Hub,
    Part10,
    assert_stored,
    needs_dcmtk,
    needs_orthanc,
    running_hub,
    sample,
    split_part10,
    stop_process,
    tool_env,
    wait_until,
)
from tests.ports import free_port

pytestmark = [pytest.mark.interop, needs_dcmtk, needs_orthanc]

# (file, its transfer syntax); unique SOP Instance UIDs, all passed through DCMTK unchanged.
FILES = [
    ("SC_rgb.dcm", EXPLICIT_LE),
    ("test-SR.dcm", EXPLICIT_LE),
    ("emri_small_RLE.dcm", RLE_LOSSLESS),
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", JPEG_LOSSLESS_SV1),
    ("J2K_pixelrep_mismatch.dcm", JPEG_2000_LOSSLESS),
    ("SC_rgb_jpeg_dcmtk.dcm", JPEG_BASELINE),
]


@dataclass
class Orthanc:
    """A running Orthanc and its REST API."""

    process: subprocess.Popen[bytes]
    http_port: int
    dicom_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        with urllib.request.urlopen(req, timeout=60) as response:
            data: bytes = response.read()
            return data

    def get_json(self, path: str) -> Any:
        return json.loads(self.request("GET", path))

    def post_json(self, path: str, payload: object) -> Any:
        return json.loads(self.request("POST", path, json.dumps(payload).encode()))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_orthanc(
    workdir: Path,
    hub: Hub,
    *,
    dicom_port: int = 0,
    http_port: int = 0,
    plugins: Sequence[str] = (),
) -> Iterator[Orthanc]:
    """Orthanc (AE ORTHANC) with dicomhub declared as the modality "hub"; stopped by PID.

    ``plugins`` are shared libraries Orthanc loads (its DICOMweb plugin, for instance)."""
    http_port, dicom_port = http_port or free_port(), dicom_port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "interop",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"hub": [hub.ae_title, HOST, hub.port]},
        "Plugins": list(plugins),
        "StorageCompression": False,
        "DicomScuTimeout": 30,
    }
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [ORTHANC, str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=tool_env(),
            cwd=workdir,
        )
    server = Orthanc(process, http_port, dicom_port, log_path)

    def answers() -> bool:
        assert process.poll() is None, f"Orthanc exited:\n{server.log()}"
        try:
            return bool(server.get_json("/system")["DicomAet"] == "ORTHANC")
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        assert wait_until(answers, 60, 0.1), f"Orthanc did not answer:\n{server.log()}"
        yield server
    finally:
        stop_process(process)


@contextmanager
def hub_with_orthanc(workdir: Path) -> Iterator[tuple[Hub, Orthanc]]:
    """dicomhub with Orthanc declared as its peer "orthanc" (AE ORTHANC), and that Orthanc
    knowing dicomhub as the modality "hub": each can reach the other."""
    hub_port, orthanc_dicom, orthanc_http = free_port(), free_port(), free_port()
    config = f'[peers.orthanc]\nae_title = "ORTHANC"\nhost = "{HOST}"\nport = {orthanc_dicom}\n'
    env = {"DICOMHUB_DICOM_PORT": str(hub_port)}
    with (
        running_hub(workdir / "hub", env, config=config) as hub,
        running_orthanc(
            workdir / "orthanc", hub, dicom_port=orthanc_dicom, http_port=orthanc_http
        ) as orthanc,
    ):
        yield hub, orthanc


@pytest.fixture(scope="module")
def orthanc(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Orthanc knowing dicomhub as "hub"."""
    with running_orthanc(tmp_path_factory.mktemp("orthanc"), hub) as server:
        yield server


@dataclass(frozen=True)
class Pushed:
    """Files uploaded to Orthanc and pushed to dicomhub."""

    ids: dict[str, str]  # file name -> Orthanc instance id
    job: dict[str, Any]  # the answer of POST /modalities/hub/store


@pytest.fixture(scope="module")
def pushed(orthanc: Orthanc) -> Pushed:
    ids = {}
    for name, _ in FILES:
        answer = json.loads(orthanc.request("POST", "/instances", sample(name).read_bytes()))
        assert answer["Status"] == "Success", answer
        ids[name] = str(answer["ID"])
    job = orthanc.post_json(
        "/modalities/hub/store", {"Resources": list(ids.values()), "Synchronous": True}
    )
    return Pushed(ids, job)


def held_by_orthanc(orthanc: Orthanc, instance_id: str) -> Part10:
    return split_part10(orthanc.request("GET", f"/instances/{instance_id}/file"))


def test_orthanc_echoes_dicomhub(orthanc: Orthanc, hub: Hub) -> None:
    orthanc.request("POST", "/modalities/hub/echo", b"{}")

    hub.wait_for_log(r"C-ECHO from ORTHANC@127\.0\.0\.1:\d+: 0x0000")


def test_orthanc_stores_to_dicomhub_bit_for_bit(orthanc: Orthanc, hub: Hub, pushed: Pushed) -> None:
    assert pushed.job["InstancesCount"] == len(FILES), pushed.job
    assert pushed.job["FailedInstancesCount"] == 0, pushed.job
    assert pushed.job["RemoteAet"] == hub.ae_title
    assert hub.count("instances") == len(FILES)
    for name, transfer_syntax in FILES:
        held = held_by_orthanc(orthanc, pushed.ids[name])
        # Orthanc keeps the uploaded file as it is: the baseline really is the original file.
        assert held == split_part10(sample(name).read_bytes())
        assert held.transfer_syntax == transfer_syntax
        uid = held.sop_instance_uid
        assert_stored(hub, uid, dataset=held.dataset, transfer_syntax=transfer_syntax)
        hub.wait_for_log(
            rf"C-STORE {re.escape(uid)} from ORTHANC@127\.0\.0\.1:\d+: "
            r"stored .* 0x0000"
        )


def test_orthanc_queries_dicomhub(orthanc: Orthanc, hub: Hub, pushed: Pushed) -> None:
    tags = orthanc.get_json(f"/instances/{pushed.ids['SC_rgb.dcm']}/simplified-tags")
    query = orthanc.post_json(
        "/modalities/hub/query",
        {
            "Level": "Study",
            "Query": {
                "StudyInstanceUID": tags["StudyInstanceUID"],
                "PatientID": "",
                "StudyDate": "",
            },
        },
    )

    answers = orthanc.get_json(f"{query['Path']}/answers")
    assert len(answers) == 1
    content = orthanc.get_json(f"{query['Path']}/answers/0/content?simplify")
    assert content["StudyInstanceUID"] == tags["StudyInstanceUID"]
    assert content["PatientID"] == tags.get("PatientID", "")
    assert content["StudyDate"] == tags.get("StudyDate", "")
    hub.wait_for_log(r"C-FIND STUDY root.* from ORTHANC@127\.0\.0\.1:\d+: 1 matches")


def test_orthanc_series_query_lists_every_series(
    orthanc: Orthanc, hub: Hub, pushed: Pushed
) -> None:
    tags = orthanc.get_json(f"/instances/{pushed.ids['emri_small_RLE.dcm']}/simplified-tags")
    query = orthanc.post_json(
        "/modalities/hub/query",
        {
            "Level": "Series",
            "Query": {
                "StudyInstanceUID": tags["StudyInstanceUID"],
                "SeriesInstanceUID": "",
                "Modality": "",
            },
        },
    )

    answers = orthanc.get_json(f"{query['Path']}/answers")
    contents = [
        orthanc.get_json(f"{query['Path']}/answers/{index}/content?simplify") for index in answers
    ]
    assert [(c["SeriesInstanceUID"], c["Modality"]) for c in contents] == [
        (tags["SeriesInstanceUID"], tags["Modality"])
    ]
