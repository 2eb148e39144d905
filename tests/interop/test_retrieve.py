"""C-MOVE and C-GET of dicomhub driven by peers we did not write: DCMTK and Orthanc.

One hub serves the whole module.  Before it starts, 500 small instances are imported into its
data folder (for the C-CANCEL test); once it listens, a small archive (two patients, three
studies, four series, eight images) is stored with dcmsend, and a JPEG 2000 file as well.
The hub declares four move destinations in its configuration file:

* DEST: DCMTK ``storescp +xa +B`` (accepts every transfer syntax, writes what it received
  byte for byte), the destination of the movescu tests;
* PLAIN: ``storescp +B`` without ``+xa``: uncompressed transfer syntaxes only;
* CANCEL: another ``storescp +xa +B``, the destination of the cancelled 500-instance move;
* ORTHANC: an Orthanc of this module, which also knows dicomhub as its modality "hub".

Every arrived object is compared with what dicomhub stored: same SOP instance, same transfer
syntax, and the data set bytes after the (receiver-written) file meta have the SHA-256 that
dicomhub recorded (``attachments.content_sha256``).  The DIMSE responses are read from the DCMTK
tools' debug output, so the counts of every pending and final response are checked too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.interop.support import (
    CT_IMAGE_STORAGE,
    DCMTK,
    ENGINE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    HOST,
    HUB_AE,
    IMPLICIT_LE,
    JPEG_2000_LOSSLESS,
    MR_IMAGE_STORAGE,
    UID_ROOT,
    Arg,
    Hub,
    Part10,
    dcmsend,
    dicomhub_command,
    encode_dataset,
    hub_cli,
    needs_dcmtk,
    needs_orthanc,
    output_of,
    read_part10,
    run_tool,
    running_hub,
    sample,
    sha256,
    split_part10,
    stop_process,
    tool_env,
    wait_until,
    write_part10,
)
from tests.interop.test_orthanc import Orthanc, running_orthanc
from tests.ports import free_port

pytestmark = [
    pytest.mark.interop,
    needs_dcmtk,
    pytest.mark.skipif(
        ENGINE != "asyncio", reason="C-MOVE and C-GET are served by the asyncio engine only"
    ),
]

# The archive ---------------------------------------------------------------------------------

ROOT = f"{UID_ROOT}.21"
# Patient ID: Patient's Name
PATIENTS = {"RTV001": "RETRIEVE^ONE", "RTV002": "RETRIEVE^TWO"}
# Study: Patient ID
STUDIES = {"A": "RTV001", "B": "RTV001", "C": "RTV002"}
# Series: (study, modality, number of images)
SERIES = {"A1": ("A", "CT", 3), "A2": ("A", "MR", 2), "B1": ("B", "CT", 1), "C1": ("C", "MR", 2)}
STUDY_UID = {key: f"{ROOT}.{n}" for n, key in enumerate(STUDIES, start=1)}
SERIES_UID = {
    key: f"{STUDY_UID[study]}.{n}" for n, (key, (study, _, _)) in enumerate(SERIES.items(), 1)
}
# Image key ("A1-2" = second image of series A1): SOP Instance UID
IMAGE_UID = {
    f"{series}-{n}": f"{SERIES_UID[series]}.{n}"
    for series, (_, _, count) in SERIES.items()
    for n in range(1, count + 1)
}
SOP_CLASS = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE}

# The 500 instances of the C-CANCEL test (one series of their own patient).
BULK_COUNT = 500
BULK_STUDY_UID = f"{ROOT}.9"
BULK_SERIES_UID = f"{BULK_STUDY_UID}.1"
BULK_UIDS = [f"{BULK_SERIES_UID}.{n}" for n in range(1, BULK_COUNT + 1)]

JPEG_2000_FILE = "MR_small_jp2klossless.dcm"


def image_dataset(image: str) -> Dataset:
    """A small CT or MR image (4x4 pixels, 16 bits) of the archive."""
    series, number = image.split("-")
    study, modality, _ = SERIES[series]
    patient_id = STUDIES[study]
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASS[modality]
    ds.SOPInstanceUID = IMAGE_UID[image]
    ds.StudyDate = "20240102"
    ds.Modality = modality
    ds.PatientName = PATIENTS[patient_id]
    ds.PatientID = patient_id
    ds.StudyInstanceUID = STUDY_UID[study]
    ds.SeriesInstanceUID = SERIES_UID[series]
    ds.StudyID = study
    ds.SeriesNumber = list(SERIES).index(series) + 1
    ds.InstanceNumber = int(number)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    pixels = np.arange(16, dtype="<u2") * 1000 + list(IMAGE_UID).index(image)
    ds.add_new(0x7FE00010, "OW", pixels.tobytes())
    return ds


def bulk_dataset(uid: str, number: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = uid
    ds.Modality = "CT"
    ds.PatientName = "RETRIEVE^BULK"
    ds.PatientID = "RTV999"
    ds.StudyInstanceUID = BULK_STUDY_UID
    ds.SeriesInstanceUID = BULK_SERIES_UID
    ds.InstanceNumber = number
    return ds


# Receivers -----------------------------------------------------------------------------------


class StoreSCP:
    """A DCMTK storescp (``+B``: writes the received data set bytes untouched), stopped by PID."""

    def __init__(self, root: Path, ae_title: str, *options: str, port: int = 0) -> None:
        self.ae_title = ae_title
        self.folder = root / ae_title.lower()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path = root / f"{ae_title.lower()}.log"
        self.port = port or free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    DCMTK["storescp"],
                    "-d",
                    "-aet",
                    ae_title,
                    "+B",
                    *options,
                    "-dhl",
                    "-od",
                    str(self.folder),
                    str(self.port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=tool_env(),
            )

    def wait_ready(self) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, f"storescp {self.ae_title} exited:\n{self.log()}"
            echo = run_tool(["echoscu", "-aec", self.ae_title, HOST, str(self.port)], timeout=10)
            return echo.returncode == 0

        assert wait_until(answers, 30, 0.1), f"storescp {self.ae_title} does not answer C-ECHO"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def clear(self) -> None:
        for path in self.files():
            path.unlink()

    def settled_files(self, quiet: float = 1.0, timeout: float = 30.0) -> list[Path]:
        """The files once none has been added or grown for ``quiet`` seconds."""
        seen: list[list[tuple[str, int]]] = [[]]
        changed = [time.monotonic()]

        def still() -> bool:
            now = [(p.name, p.stat().st_size) for p in self.files()]
            if now != seen[0]:
                seen[0], changed[0] = now, time.monotonic()
            return time.monotonic() - changed[0] >= quiet

        assert wait_until(still, timeout, 0.1), f"{self.folder} keeps changing"
        return self.files()

    def stop(self) -> None:
        stop_process(self.process)


@dataclass(frozen=True)
class Receivers:
    dest: StoreSCP
    plain: StoreSCP
    cancel: StoreSCP

    def all(self) -> list[StoreSCP]:
        return [self.dest, self.plain, self.cancel]


@dataclass(frozen=True)
class Ports:
    hub: int
    orthanc_dicom: int
    orthanc_http: int


@pytest.fixture(scope="module")
def ports() -> Ports:
    return Ports(free_port(), free_port(), free_port())


@pytest.fixture(scope="module")
def receivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receivers]:
    root = tmp_path_factory.mktemp("receivers")
    started: list[StoreSCP] = []
    try:
        for ae_title, options in (("DEST", ["+xa"]), ("PLAIN", []), ("CANCEL", ["+xa"])):
            started.append(StoreSCP(root, ae_title, *options))
        for receiver in started:
            receiver.wait_ready()
        yield Receivers(*started)
    finally:
        for receiver in started:
            receiver.stop()


def peers_toml(receivers: Receivers, ports: Ports) -> str:
    peers = [(r.ae_title, r.port) for r in receivers.all()]
    peers.append(("ORTHANC", ports.orthanc_dicom))
    return "".join(
        f'[peers.{ae.lower()}]\nae_title = "{ae}"\nhost = "{HOST}"\nport = {port}\n\n'
        for ae, port in peers
    )


@pytest.fixture(scope="module")
def hub(
    receivers: Receivers, ports: Ports, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    """dicomhub with the four destinations declared and the 500 bulk instances imported."""
    workdir = tmp_path_factory.mktemp("hub")
    bulk = workdir / "bulk"
    bulk.mkdir()
    for number, uid in enumerate(BULK_UIDS, start=1):
        write_part10(bulk / f"{number}.dcm", bulk_dataset(uid, number))
    environment = {k: v for k, v in tool_env().items() if not k.startswith("DICOMHUB_")}
    environment["DICOMHUB_DATA_DIR"] = str(workdir / "data")
    imported = subprocess.run(
        [*dicomhub_command(), "import", str(bulk)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert f"{BULK_COUNT} stored" in imported.stdout + imported.stderr
    shutil.rmtree(bulk)
    env = {"DICOMHUB_DICOM_PORT": str(ports.hub)}
    with running_hub(workdir, env, config=peers_toml(receivers, ports)) as running:
        yield running


@pytest.fixture(scope="module")
def archive(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The eight images stored with dcmsend; the data set bytes dicomhub holds, by SOP UID."""
    folder = tmp_path_factory.mktemp("archive")
    files = [write_part10(folder / f"{image}.dcm", image_dataset(image)) for image in IMAGE_UID]
    outcomes, result = dcmsend(files, hub.ae_title, hub.port, folder)
    assert [o.status for o in outcomes.values()] == [0x0000] * len(files), output_of(result)
    held = {}
    for image, uid in IMAGE_UID.items():
        stored = hub.instance(uid)
        assert stored is not None, f"{image} is not in the index"
        assert stored.transfer_syntax_uid == EXPLICIT_LE
        dataset = split_part10(hub.blob(stored.blob_key)).dataset
        assert sha256(dataset) == stored.content_sha256
        # dcmsend sent these simple files unchanged: the stored bytes are the written ones.
        assert dataset == encode_dataset(image_dataset(image)), f"{image} changed on the way"
        held[uid] = dataset
    return held


# DCMTK output --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrieveRsp:
    """One C-MOVE-RSP / C-GET-RSP as dumped by a DCMTK tool in debug mode (None: absent)."""

    status: int
    remaining: int | None
    completed: int | None
    failed: int | None
    warning: int | None


def _count(value: str) -> int | None:
    return None if value.strip() == "none" else int(value)


def retrieve_responses(text: str, message_type: str) -> list[RetrieveRsp]:
    """Every incoming ``message_type`` ("C-MOVE RSP", "C-GET RSP") in DCMTK -d output."""
    responses = []
    for block in re.findall(r"INCOMING DIMSE MESSAGE =+\n(.*?)END DIMSE MESSAGE", text, re.S):
        fields = dict(re.findall(r"^D: ([A-Za-z][A-Za-z ]*?)\s*: (.*)$", block, re.M))
        if fields.get("Message Type") != message_type:
            continue
        responses.append(
            RetrieveRsp(
                status=int(fields["DIMSE Status"].split(":")[0], 16),
                remaining=_count(fields["Remaining Suboperations"]),
                completed=_count(fields["Completed Suboperations"]),
                failed=_count(fields["Failed Suboperations"]),
                warning=_count(fields["Warning Suboperations"]),
            )
        )
    return responses


def assert_successful_responses(responses: Sequence[RetrieveRsp], total: int) -> None:
    """Pending responses with consistent counts, then Success with ``total`` completed."""
    assert responses, "no retrieve response"
    *pending, final = responses
    done = 0
    for response in pending:
        assert response.status == 0xFF00, response
        assert response.remaining is not None, f"a pending response without Remaining: {response}"
        counts = (response.completed or 0, response.failed or 0, response.warning or 0)
        assert sum(counts) + response.remaining == total, response
        assert counts[0] >= done, "Completed went down"
        done = counts[0]
    assert final == RetrieveRsp(0x0000, None, total, 0, 0), final


def keys_argv(keys: dict[str, str]) -> list[Arg]:
    argv: list[Arg] = []
    for keyword, value in keys.items():
        argv += ["-k", f"{keyword}={value}"]
    return argv


def movescu(
    hub: Hub, model: str, keys: dict[str, str], destination: str, *options: str
) -> subprocess.CompletedProcess[str]:
    return run_tool(
        [
            "movescu",
            "-d",
            f"-{model}",
            "-aet",
            "MOVESCU",
            "-aec",
            hub.ae_title,
            "-aem",
            destination,
            *options,
            *keys_argv(keys),
            HOST,
            str(hub.port),
        ],
        timeout=90,
    )


def assert_byte_identical(hub: Hub, files: Sequence[Path], expected: Sequence[str]) -> None:
    """``files`` are exactly the ``expected`` instances, data sets as dicomhub stored them."""
    arrived: dict[str, Part10] = {}
    for path in files:
        part = read_part10(path)
        assert part.sop_instance_uid not in arrived, f"{part.sop_instance_uid} arrived twice"
        arrived[part.sop_instance_uid] = part
    assert sorted(arrived) == sorted(expected)
    for uid, part in arrived.items():
        stored = hub.instance(uid)
        assert stored is not None
        assert part.transfer_syntax == stored.transfer_syntax_uid, uid
        assert part.sop_class_uid == stored.sop_class_uid, uid
        assert sha256(part.dataset) == stored.content_sha256, f"{uid} arrived changed"


# The selections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    model: str  # "P" patient root, "S" study root
    level: str
    keys: dict[str, str]
    images: tuple[str, ...]

    @property
    def uids(self) -> list[str]:
        return [IMAGE_UID[image] for image in self.images]

    def argv_keys(self) -> dict[str, str]:
        return {"QueryRetrieveLevel": self.level, **self.keys}


SELECTIONS = {
    "P-PATIENT": Selection(
        "P", "PATIENT", {"PatientID": "RTV001"}, ("A1-1", "A1-2", "A1-3", "A2-1", "A2-2", "B1-1")
    ),
    "P-STUDY": Selection(
        "P",
        "STUDY",
        {"PatientID": "RTV001", "StudyInstanceUID": STUDY_UID["A"]},
        ("A1-1", "A1-2", "A1-3", "A2-1", "A2-2"),
    ),
    "P-SERIES": Selection(
        "P",
        "SERIES",
        {
            "PatientID": "RTV001",
            "StudyInstanceUID": STUDY_UID["A"],
            "SeriesInstanceUID": SERIES_UID["A2"],
        },
        ("A2-1", "A2-2"),
    ),
    "P-IMAGE-list": Selection(
        "P",
        "IMAGE",
        {
            "PatientID": "RTV001",
            "StudyInstanceUID": STUDY_UID["A"],
            "SeriesInstanceUID": SERIES_UID["A1"],
            "SOPInstanceUID": f"{IMAGE_UID['A1-1']}\\{IMAGE_UID['A1-3']}",
        },
        ("A1-1", "A1-3"),
    ),
    "S-STUDY-list": Selection(
        "S",
        "STUDY",
        {"StudyInstanceUID": f"{STUDY_UID['B']}\\{STUDY_UID['C']}"},
        ("B1-1", "C1-1", "C1-2"),
    ),
    "S-SERIES": Selection(
        "S",
        "SERIES",
        {"StudyInstanceUID": STUDY_UID["A"], "SeriesInstanceUID": SERIES_UID["A1"]},
        ("A1-1", "A1-2", "A1-3"),
    ),
    "S-IMAGE": Selection(
        "S",
        "IMAGE",
        {
            "StudyInstanceUID": STUDY_UID["C"],
            "SeriesInstanceUID": SERIES_UID["C1"],
            "SOPInstanceUID": IMAGE_UID["C1-2"],
        },
        ("C1-2",),
    ),
    "S-STUDY-no-match": Selection("S", "STUDY", {"StudyInstanceUID": f"{ROOT}.404"}, ()),
}


# movescu and getscu at every level -----------------------------------------------------------


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_movescu_moves_the_selection_byte_for_byte(
    name: str, hub: Hub, archive: dict[str, bytes], receivers: Receivers
) -> None:
    selection = SELECTIONS[name]
    dest = receivers.dest
    dest.clear()
    dest_log_start, hub_log_start = len(dest.log()), len(hub.log())

    result = movescu(hub, selection.model, selection.argv_keys(), "DEST")

    text = output_of(result)
    assert result.returncode == 0, text
    assert_successful_responses(retrieve_responses(text, "C-MOVE RSP"), len(selection.uids))
    assert_byte_identical(hub, dest.files(), selection.uids)
    # Each C-STORE sub-operation names the C-MOVE it belongs to (PS3.7 9.1.1.1).
    originators: list[tuple[str, str]] = []

    def logged() -> bool:
        received = dest.log()[dest_log_start:]
        originators[:] = re.findall(
            r"Move Originator AE Title\s*: (\S+)\s.*?Move Originator ID\s*: (\d+)", received, re.S
        )
        return len(originators) >= len(selection.uids)

    wait_until(logged, 10)
    assert originators == [("MOVESCU", "1")] * len(selection.uids), dest.log()[-3000:]
    hub.wait_for_log(
        rf"C-MOVE from MOVESCU@127\.0\.0\.1:\d+ to DEST done \(0x0000\): "
        rf"{len(selection.uids)} completed, 0 failed, 0 warnings, 0 not attempted",
        since=hub_log_start,
    )


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_getscu_gets_the_selection_byte_for_byte(
    name: str, hub: Hub, archive: dict[str, bytes], tmp_path: Path
) -> None:
    selection = SELECTIONS[name]

    result = run_tool(
        [
            "getscu",
            "-d",
            f"-{selection.model}",
            "+B",
            "-aet",
            "GETSCU",
            "-aec",
            hub.ae_title,
            "-od",
            tmp_path,
            *keys_argv(selection.argv_keys()),
            HOST,
            str(hub.port),
        ],
        timeout=90,
    )

    text = output_of(result)
    assert result.returncode == 0, text
    assert_successful_responses(retrieve_responses(text, "C-GET RSP"), len(selection.uids))
    assert_byte_identical(hub, sorted(tmp_path.iterdir()), selection.uids)


# JPEG 2000: sent as stored when the receiver accepts it, decompressed when it does not -------


@dataclass(frozen=True)
class Jpeg2000:
    """The JPEG 2000 file as dcmsend stored it in dicomhub."""

    source: Dataset  # the original file, decoded
    blob: bytes  # what dicomhub holds

    @property
    def uid(self) -> str:
        return str(self.source.SOPInstanceUID)

    def image_keys(self) -> dict[str, str]:
        return {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": str(self.source.StudyInstanceUID),
            "SeriesInstanceUID": str(self.source.SeriesInstanceUID),
            "SOPInstanceUID": self.uid,
        }


@pytest.fixture(scope="module")
def jpeg_2000(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Jpeg2000:
    original = sample(JPEG_2000_FILE)
    source = pydicom.dcmread(original)
    assert source.file_meta.TransferSyntaxUID == JPEG_2000_LOSSLESS
    folder = tmp_path_factory.mktemp("jpeg2000")
    outcomes, result = dcmsend([original], hub.ae_title, hub.port, folder)
    assert [o.status for o in outcomes.values()] == [0x0000], output_of(result)
    assert [o.network_transfer_syntax for o in outcomes.values()] == [JPEG_2000_LOSSLESS]
    stored = hub.instance(str(source.SOPInstanceUID))
    assert stored is not None
    assert stored.transfer_syntax_uid == JPEG_2000_LOSSLESS
    return Jpeg2000(source, hub.blob(stored.blob_key))


# (retrieve, move destination or getscu options, whether the receiver accepts JPEG 2000)
JPEG_2000_ROUTES = {
    "move-to-uncompressed-only": ("move", "PLAIN", False),
    "move-to-accept-all": ("move", "DEST", True),
    "get-uncompressed": ("get", "", False),
    "get-prefer-jpeg-2000": ("get", "+xv", True),
}


@pytest.mark.parametrize("route", list(JPEG_2000_ROUTES))
def test_jpeg_2000_is_decompressed_only_for_receivers_without_it(
    route: str, hub: Hub, jpeg_2000: Jpeg2000, receivers: Receivers, tmp_path: Path
) -> None:
    kind, option, accepts_jpeg_2000 = JPEG_2000_ROUTES[route]
    if kind == "move":
        receiver = receivers.dest if option == "DEST" else receivers.plain
        receiver.clear()
        result = movescu(hub, "S", jpeg_2000.image_keys(), option)
        files = receiver.files()
    else:
        result = run_tool(
            [
                "getscu",
                "-d",
                "-S",
                "+B",
                *([option] if option else []),
                "-aec",
                hub.ae_title,
                "-od",
                tmp_path,
                *keys_argv(jpeg_2000.image_keys()),
                HOST,
                str(hub.port),
            ],
            timeout=90,
        )
        files = sorted(tmp_path.iterdir())

    text = output_of(result)
    assert result.returncode == 0, text
    rsp = "C-MOVE RSP" if kind == "move" else "C-GET RSP"
    assert_successful_responses(retrieve_responses(text, rsp), 1)
    if accepts_jpeg_2000:
        assert_byte_identical(hub, files, [jpeg_2000.uid])  # as stored, JPEG 2000 included
        return
    [arrived] = files
    part = read_part10(arrived)
    assert part.sop_instance_uid == jpeg_2000.uid
    assert part.transfer_syntax in {EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE}
    check = run_tool(["dcmdump", "-q", arrived])
    assert check.returncode == 0, output_of(check)
    received = pydicom.dcmread(arrived)
    assert received.file_meta.TransferSyntaxUID == part.transfer_syntax
    assert received.pixel_array.dtype == jpeg_2000.source.pixel_array.dtype
    assert np.array_equal(received.pixel_array, jpeg_2000.source.pixel_array)
    # Everything but the pixel data is what dicomhub stored (dcmsend drops the original's
    # DataSetTrailingPadding on the wire, so the reference is the stored copy, not the file).
    held = pydicom.dcmread(BytesIO(jpeg_2000.blob))
    assert np.array_equal(held.pixel_array, jpeg_2000.source.pixel_array)
    attributes = {e.tag: e.value for e in held if e.keyword != "PixelData"}
    assert {e.tag: e.value for e in received if e.keyword != "PixelData"} == attributes
    # The stored copy stays JPEG 2000, untouched.
    stored = hub.instance(jpeg_2000.uid)
    assert stored is not None
    assert hub.blob(stored.blob_key) == jpeg_2000.blob


# C-CANCEL ------------------------------------------------------------------------------------


def test_cancel_in_the_middle_of_a_500_instance_move(hub: Hub, receivers: Receivers) -> None:
    cancel = receivers.cancel
    cancel.clear()
    log_start = len(hub.log())

    result = movescu(
        hub,
        "S",
        {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": BULK_STUDY_UID,
            "SeriesInstanceUID": BULK_SERIES_UID,
        },
        "CANCEL",
        "--cancel",
        "5",
    )

    text = output_of(result)
    assert result.returncode == 0, text
    assert re.search(r"Sending Cancel Request \(MsgID 1", text), text[-3000:]
    responses = retrieve_responses(text, "C-MOVE RSP")
    *pending, final = responses
    assert len(pending) >= 5
    assert all(r.status == 0xFF00 for r in pending), pending
    for response in pending:
        assert response.remaining is not None
        done = (response.completed or 0) + (response.failed or 0) + (response.warning or 0)
        assert done + response.remaining == BULK_COUNT, response
    assert final.status == 0xFE00, final
    assert final.remaining is not None, "the Cancel response should say what remains"
    assert final.completed is not None
    assert final.failed == final.warning == 0, final
    assert final.completed + final.remaining == BULK_COUNT, final
    assert final.remaining > 0, "the move ran to its end: the C-CANCEL had no effect"
    assert final.completed >= (pending[4].completed or 0)
    files = cancel.settled_files()
    assert len(files) == final.completed, f"{len(files)} files arrived, {final.completed} reported"
    arrived = {read_part10(p).sop_instance_uid for p in files}
    assert arrived <= set(BULK_UIDS)
    for path in files[:5]:
        part = read_part10(path)
        stored = hub.instance(part.sop_instance_uid)
        assert stored is not None
        assert sha256(part.dataset) == stored.content_sha256
    hub.wait_for_log(
        rf"retrieve cancelled after {final.completed} of {BULK_COUNT} sub-operations",
        since=log_start,
    )
    hub.wait_for_log(
        rf"C-MOVE from MOVESCU@127\.0\.0\.1:\d+ to CANCEL cancelled \(0xFE00\): "
        rf"{final.completed} completed, 0 failed, 0 warnings, "
        rf"{BULK_COUNT - final.completed} not attempted",
        since=log_start,
    )


# Unknown move destination --------------------------------------------------------------------


def test_unknown_move_destination_is_refused(
    hub: Hub, archive: dict[str, bytes], receivers: Receivers
) -> None:
    before = {r.ae_title: r.files() for r in receivers.all()}
    log_start = len(hub.log())

    result = movescu(
        hub, "S", {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": STUDY_UID["A"]}, "NOWHERE"
    )

    text = output_of(result)
    assert result.returncode != 0, "movescu reports success for a refused move"
    responses = retrieve_responses(text, "C-MOVE RSP")
    assert [r.status for r in responses] == [0xA801], text
    assert "Move Destination unknown" in text
    assert "NOWHERE" in "".join(re.findall(r"\(0000,0902\) LO \[(.*?)\]", text))
    time.sleep(0.5)
    assert {r.ae_title: r.files() for r in receivers.all()} == before
    hub.wait_for_log(
        r"C-MOVE from MOVESCU@127\.0\.0\.1:\d+ refused: 0xA801 .*'NOWHERE'", since=log_start
    )


# Orthanc -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orthanc(hub: Hub, ports: Ports, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Orthanc (AE ORTHANC, a declared peer of the hub) knowing dicomhub as "hub"."""
    workdir = tmp_path_factory.mktemp("orthanc")
    with running_orthanc(
        workdir, hub, dicom_port=ports.orthanc_dicom, http_port=ports.orthanc_http
    ) as server:
        yield server


def orthanc_instances(orthanc: Orthanc) -> set[str]:
    return set(orthanc.get_json("/instances"))


def assert_arrived_in_orthanc(
    orthanc: Orthanc, hub: Hub, before: set[str], expected: Sequence[str]
) -> None:
    """The instances Orthanc got since ``before`` are ``expected``, data sets as stored."""
    new = orthanc_instances(orthanc) - before
    held = {}
    for instance_id in new:
        part = split_part10(orthanc.request("GET", f"/instances/{instance_id}/file"))
        held[part.sop_instance_uid] = part
    assert sorted(held) == sorted(expected)
    for uid, part in held.items():
        stored = hub.instance(uid)
        assert stored is not None
        assert part.transfer_syntax == stored.transfer_syntax_uid
        assert sha256(part.dataset) == stored.content_sha256, f"{uid} arrived changed"


@needs_orthanc
def test_movescu_to_orthanc(hub: Hub, archive: dict[str, bytes], orthanc: Orthanc) -> None:
    # The three Orthanc tests move disjoint sets: study A here, study C and series B1 below.
    selection = SELECTIONS["P-STUDY"]
    before = orthanc_instances(orthanc)

    result = movescu(hub, selection.model, selection.argv_keys(), "ORTHANC")

    text = output_of(result)
    assert result.returncode == 0, text
    assert_successful_responses(retrieve_responses(text, "C-MOVE RSP"), len(selection.uids))
    assert_arrived_in_orthanc(orthanc, hub, before, selection.uids)


@needs_orthanc
def test_orthanc_queries_and_retrieves_a_study(
    hub: Hub, archive: dict[str, bytes], orthanc: Orthanc
) -> None:
    before = orthanc_instances(orthanc)
    query = orthanc.post_json(
        "/modalities/hub/query",
        {"Level": "Study", "Query": {"PatientID": "RTV002", "StudyInstanceUID": ""}},
    )
    answers = orthanc.get_json(f"{query['Path']}/answers")
    assert len(answers) == 1, answers
    content = orthanc.get_json(f"{query['Path']}/answers/0/content?simplify")
    assert content["StudyInstanceUID"] == STUDY_UID["C"]

    job = orthanc.post_json(
        f"{query['Path']}/answers/0/retrieve", {"TargetAet": "ORTHANC", "Synchronous": True}
    )

    # A failed move is an HTTP error (urlopen raises); the job names what Orthanc asked for.
    assert job["RemoteAet"] == HUB_AE, job
    assert [q["0020,000d"] for q in job["Query"]] == [STUDY_UID["C"]], job
    assert_arrived_in_orthanc(orthanc, hub, before, [IMAGE_UID["C1-1"], IMAGE_UID["C1-2"]])
    hub.wait_for_log(
        r"C-MOVE from ORTHANC@127\.0\.0\.1:\d+ to ORTHANC done \(0x0000\): 2 completed"
    )


@needs_orthanc
def test_orthanc_moves_a_series_by_rest(
    hub: Hub, archive: dict[str, bytes], orthanc: Orthanc
) -> None:
    before = orthanc_instances(orthanc)

    job = orthanc.post_json(
        "/modalities/hub/move",
        {
            "Level": "Series",
            "Resources": [
                {"StudyInstanceUID": STUDY_UID["B"], "SeriesInstanceUID": SERIES_UID["B1"]}
            ],
            "TargetAet": "ORTHANC",
            "Synchronous": True,
        },
    )

    assert isinstance(job, dict), job  # a failed move is an HTTP error (urlopen raises)
    assert_arrived_in_orthanc(orthanc, hub, before, [IMAGE_UID["B1-1"]])


# dicomhub as the user: echo, find, retrieve (C-MOVE and C-GET) and send with Orthanc ---------


def orthanc_study(
    orthanc: Orthanc, folder: Path, label: str, count: int
) -> tuple[str, dict[str, bytes]]:
    """A new study uploaded to Orthanc; its UID and the data set bytes of each instance."""
    study = f"{UID_ROOT}.77.{label}"
    sent: dict[str, bytes] = {}
    for number in range(1, count + 1):
        ds = bulk_dataset(f"{study}.{number}", number)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = f"{study}.0"
        ds.PatientID = f"ORTHANC-{label}"
        ds.PatientName = f"SOURCE^{label}"
        data = write_part10(folder / f"{label}-{number}.dcm", ds).read_bytes()
        orthanc.request("POST", "/instances", data)
        sent[str(ds.SOPInstanceUID)] = split_part10(data).dataset
    return study, sent


def test_dicomhub_echoes_and_queries_orthanc(hub: Hub, orthanc: Orthanc, tmp_path: Path) -> None:
    result = hub_cli(hub, "echo", "orthanc")
    assert result.returncode == 0, output_of(result)
    assert "C-ECHO ORTHANC@127.0.0.1" in result.stdout
    study, _ = orthanc_study(orthanc, tmp_path, "1", 2)
    result = hub_cli(
        hub,
        "find",
        "orthanc",
        "-k",
        "PatientID=ORTHANC-1",
        "-k",
        "StudyInstanceUID",
        "-k",
        "PatientName",
    )
    assert result.returncode == 0, output_of(result)
    assert study in result.stdout
    assert "SOURCE^1" in result.stdout
    assert "1 matches from ORTHANC" in result.stdout


@pytest.mark.parametrize("method", ["move", "get"])
def test_dicomhub_retrieves_from_orthanc(
    hub: Hub, orthanc: Orthanc, tmp_path: Path, method: str
) -> None:
    study, sent = orthanc_study(orthanc, tmp_path, f"2{len(method)}", 3)
    result = hub_cli(
        hub, "retrieve", "orthanc", "--method", method, "-k", f"StudyInstanceUID={study}"
    )
    assert result.returncode == 0, output_of(result) + hub.log()[-3000:]
    assert f"{method.upper()} from ORTHANC: status 0x0000, 3 completed, 0 failed" in result.stdout
    for uid, dataset in sent.items():
        stored = hub.instance(uid)
        assert stored is not None, f"{uid} did not arrive"
        assert stored.content_sha256 == sha256(dataset)
    source = "C-STORE" if method == "move" else "C-GET"
    sources = {
        hub.rows("SELECT source FROM instances WHERE sop_instance_uid = ?", [uid])[0]["source"]
        for uid in sent
    }
    assert sources == {source}


def test_dicomhub_sends_to_orthanc(hub: Hub, orthanc: Orthanc) -> None:
    before = orthanc_instances(orthanc)
    expected = BULK_UIDS[-3:]
    result = hub_cli(hub, "send", "orthanc", *expected)
    assert result.returncode == 0, output_of(result)
    assert f"send: {len(expected)} sent, 0 with warnings, 0 failed" in result.stdout
    assert_arrived_in_orthanc(orthanc, hub, before, expected)
