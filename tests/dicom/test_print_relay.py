"""Print relay: a film printed to a relayed AE title of dicomhub is printed on a real printer.

The printer is DCMTK's ``dcmprscp`` (grayscale print SCP); the modality is a pynetdicom print
SCU talking to dicomhub in process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomhub.config import PeerConfig
from dicomhub.conformance import (
    BASIC_ANNOTATION_BOX,
    BASIC_FILM_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    PRESENTATION_LUT,
)
from dicomhub.dicom.engine.acceptor import AsyncioDicomServer
from dicomhub.dicom.server import Listener
from dicomhub.index.print_jobs import ExecutionStatus, FilmJob, PrintRepository
from tests.dicom.conftest import ServerFactory
from tests.dicom.test_print import PrintScu, grayscale_image_box
from tests.ports import free_port

pytestmark = pytest.mark.skipif(shutil.which("dcmprscp") is None, reason="DCMTK not installed")

CONFIG = """\
[[GENERAL]]
[DATABASE]
Directory = {database}
[PRINT]
[NETWORK]
[[COMMUNICATION]]
[PRINTER]
Aetitle = PRINTER
Description = dicomhub relay test printer
Hostname = localhost
Port = {port}
Type = LOCALPRINTER
DisplayFormat = 1,1\\1,2\\2,2
FilmSizeID = 8INX10IN\\14INX17IN
MagnificationType = REPLICATE\\BILINEAR\\CUBIC\\NONE
MediumType = PAPER\\CLEAR FILM\\BLUE FILM
FilmDestination = MAGAZINE\\PROCESSOR
MaxDensity = 320
MinDensity = 20
Supports12Bit = true
SupportsPresentationLUT = true
"""


@pytest.fixture
def engine() -> str:
    return "asyncio"


class Printer:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.log = directory / "dcmprscp.log"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[Printer]:
    port = free_port()
    database = tmp_path / "printer" / "database"
    database.mkdir(parents=True)
    config = tmp_path / "printer" / "dcmpstat.cfg"
    config.write_text(CONFIG.format(database=database, port=port))
    result = Printer(tmp_path / "printer", port)
    with result.log.open("wb") as log:
        process = subprocess.Popen(
            ["dcmprscp", "-c", str(config), "-p", "PRINTER", "-v", "+d"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=result.directory,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, result.output()
                assert time.monotonic() < deadline, "dcmprscp did not start"
                time.sleep(0.1)
        yield result
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def print_one_film(scu: PrintScu, action: str = BASIC_FILM_BOX, **film_box: Any) -> tuple[int, str]:
    """Session, 1x2 film box, one image box set, N-ACTION print of the film box (or, with
    ``action`` BASIC_FILM_SESSION, of the session): (Status, ErrorComment)."""
    session_uid = scu.session(NumberOfCopies="1", MediumType="PAPER", FilmDestination="MAGAZINE")
    attributes = {"FilmOrientation": "PORTRAIT", "FilmSizeID": "8INX10IN", **film_box}
    status, box = scu.film_box(session_uid, "STANDARD\\1,2", **attributes)
    assert status.Status == 0x0000 and box is not None
    film_box_uid = str(status.AffectedSOPInstanceUID)
    uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    status, _ = scu.set(grayscale_image_box(1, 16, 16), BASIC_GRAYSCALE_IMAGE_BOX, uid)
    assert status.Status == 0x0000
    status, _ = scu.action(action, film_box_uid if action == BASIC_FILM_BOX else session_uid)
    return int(status.Status), str(status.get("ErrorComment", ""))


def relay_server(server_factory: ServerFactory, port: int) -> Listener:
    return server_factory(
        print_relay={"DICOMHUB": "printer"},
        peers={"printer": PeerConfig(ae_title="PRINTER", host="127.0.0.1", port=port)},
    )


def print_through(
    server: Listener, action: str = BASIC_FILM_BOX, **film_box: str
) -> tuple[int, str]:
    scu = PrintScu(server)
    try:
        return print_one_film(scu, action, **film_box)
    finally:
        scu.assoc.release()


def test_relayed_film_is_printed_on_the_printer(
    server_factory: ServerFactory, printer: Printer
) -> None:
    server = relay_server(server_factory, printer.port)
    status, comment = print_through(server)
    assert status == 0x0000, comment
    # dcmprscp keeps every printed film box as a Stored Print object and its images as
    # Hardcopy Grayscale images in its database.
    database = printer.directory / "database"
    stored = [dcmread(path) for path in database.glob("SP_*.dcm")]
    assert len(stored) == 1, printer.output()
    film_box = stored[0].FilmBoxContentSequence[0]
    assert film_box.ImageDisplayFormat == "STANDARD\\1,2"
    assert film_box.FilmSizeID == "8INX10IN"
    hardcopies = [dcmread(path) for path in database.glob("HG_*.dcm")]
    assert [(image.Rows, image.Columns) for image in hardcopies] == [(16, 16)]
    output = printer.output()
    assert "N-ACTION RQ" in output and "N-DELETE RQ" in output
    assert "Association Received (127.0.0.1:DICOMHUB -> PRINTER)" in output
    jobs = PrintRepository(server.runtime.db)
    assert all(job.status is ExecutionStatus.DONE for job in jobs.jobs())


@pytest.mark.parametrize(
    ("action", "status"), [(BASIC_FILM_BOX, 0xC602), (BASIC_FILM_SESSION, 0xC601)]
)
def test_printer_refusal_reaches_the_modality(
    server_factory: ServerFactory, printer: Printer, action: str, status: int
) -> None:
    """PS3.4 H.4.2.2.4.2 / H.4.1.2.4.2: unable to create the print job, per N-ACTION."""
    server = relay_server(server_factory, printer.port)
    answer, comment = print_through(server, action, FilmSizeID="14INX14IN")
    assert answer == status
    assert "printer 'printer' refused the Film Box N-CREATE with status 0x" in comment
    assert not list((printer.directory / "database").glob("SP_*.dcm"))


@pytest.mark.parametrize(
    ("action", "status"), [(BASIC_FILM_BOX, 0xC602), (BASIC_FILM_SESSION, 0xC601)]
)
def test_printer_down_fails_the_print(
    server_factory: ServerFactory, action: str, status: int
) -> None:
    server = relay_server(server_factory, free_port())
    answer, comment = print_through(server, action)
    assert answer == status
    assert comment.startswith("printer 'printer' unavailable: cannot connect to PRINTER@"), comment
    jobs = PrintRepository(server.runtime.db)
    [job] = jobs.jobs()
    assert job.status is ExecutionStatus.FAILURE


def _lut(scu: PrintScu, shape: str) -> Dataset:
    data = Dataset()
    data.PresentationLUTShape = shape
    status, _ = scu.create(data, PRESENTATION_LUT, meta=None)
    assert status.Status == 0x0000
    reference = Dataset()
    reference.ReferencedSOPClassUID = PRESENTATION_LUT
    reference.ReferencedSOPInstanceUID = status.AffectedSOPInstanceUID
    return reference


def test_presentation_lut_is_relayed(server_factory: ServerFactory, printer: Printer) -> None:
    server = relay_server(server_factory, printer.port)
    scu = PrintScu(server, PRESENTATION_LUT)
    try:
        reference = _lut(scu, "LIN OD")
        status, comment = print_one_film(
            scu,
            ReferencedPresentationLUTSequence=[reference],
            AnnotationDisplayFormatID="LABEL",
        )
    finally:
        scu.assoc.release()
    assert status == 0x0000, comment
    (stored,) = [dcmread(path) for path in (printer.directory / "database").glob("SP_*.dcm")]
    (lut,) = stored.PresentationLUTContentSequence
    assert lut.PresentationLUTShape == "LIN OD"
    film_box = stored.FilmBoxContentSequence[0]
    assert film_box.ReferencedPresentationLUTSequence[0].ReferencedSOPInstanceUID == (
        lut.SOPInstanceUID
    )
    # dcmprscp does not accept Basic Annotation Box: the film is printed without annotation
    assert "AnnotationDisplayFormatID" not in film_box
    output = printer.output()
    assert "N-CREATE RQ" in output and "PresentationLUTShape" in output


def test_annotations_are_relayed_to_a_printer_that_accepts_them(
    server_factory: ServerFactory,
) -> None:
    films: list[FilmJob] = []
    target = server_factory(ae_title="PRINTER")
    assert isinstance(target, AsyncioDicomServer)
    target.engine.services.print_management.compose = films.append
    server = relay_server(server_factory, target.port)
    scu = PrintScu(server, PRESENTATION_LUT, BASIC_ANNOTATION_BOX)
    try:
        reference = _lut(scu, "IDENTITY")
        session_uid = scu.session(NumberOfCopies="2")
        status, box = scu.film_box(
            session_uid,
            "STANDARD\\1,1",
            AnnotationDisplayFormatID="LABEL",
            ReferencedPresentationLUTSequence=[reference],
        )
        assert box is not None
        text = Dataset()
        text.AnnotationPosition = 1
        text.TextString = "LEFT KNEE"
        annotation = box.ReferencedBasicAnnotationBoxSequence[0].ReferencedSOPInstanceUID
        assert scu.set(text, BASIC_ANNOTATION_BOX, annotation, meta=None)[0].Status == 0
        image_box = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        scu.set(grayscale_image_box(1, 16, 16), BASIC_GRAYSCALE_IMAGE_BOX, image_box)
        answer, _ = scu.action(BASIC_FILM_BOX, str(status.AffectedSOPInstanceUID))
    finally:
        scu.assoc.release()
    assert answer.Status == 0x0000, answer
    (relayed,) = films
    assert relayed.calling_ae_title == "DICOMHUB"
    assert [str(a.get("TextString") or "") for a in relayed.annotations] == ["LEFT KNEE"]
    assert relayed.presentation_lut is not None
    assert relayed.presentation_lut.PresentationLUTShape == "IDENTITY"
    assert relayed.film_session.NumberOfCopies == 2
