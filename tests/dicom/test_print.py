"""Print Management SCP on the asyncio engine, driven by a scripted pynetdicom Print SCU.

Film Session, Film Box, Image Box, Printer, Presentation LUT and Print Job, the way print
SCUs in the field use them (no SOP Instance UID, no data set), every refusal with its status
(Presentation LUT attributes, a film with too many pixels, a print hook that fails), instances
kept to the association that created them, and the print job recorded in the index with the
film handed to the ``compose`` hook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from dicomhub.conformance import (
    BASIC_ANNOTATION_BOX,
    BASIC_COLOR_IMAGE_BOX,
    BASIC_COLOR_PRINT_META,
    BASIC_FILM_BOX,
    BASIC_FILM_SESSION,
    BASIC_GRAYSCALE_IMAGE_BOX,
    BASIC_GRAYSCALE_PRINT_META,
    PRESENTATION_LUT,
    PRINT_JOB,
    PRINTER,
)
from dicomhub.dicom.engine.acceptor import AsyncioDicomServer
from dicomhub.dicom.server import Listener
from dicomhub.dicom.services.print import PRINTER_INSTANCE, from_bytes, image_display_cells
from dicomhub.errors import OutOfResources, PrintJobFailed, PrintRelayFailed
from dicomhub.imaging.film import compose_film
from dicomhub.imaging.geometry import MAX_FILM_PIXELS
from dicomhub.index.print_jobs import ExecutionStatus, FilmJob, PrintRepository
from tests.dicom.conftest import ServerFactory

GRAY = BASIC_GRAYSCALE_PRINT_META


@pytest.fixture
def engine() -> str:
    return "asyncio"


class PrintScu:
    """A pynetdicom Print SCU on the grayscale and color meta SOP classes."""

    def __init__(self, server: Listener, *extra: str) -> None:
        ae = AE(ae_title="CR1")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        for uid in (GRAY, BASIC_COLOR_PRINT_META, *extra):
            ae.add_requested_context(uid)
        self.commands: list[Dataset] = []
        self.assoc = ae.associate(
            "127.0.0.1",
            server.port,
            ae_title="DICOMHUB",
            evt_handlers=[(evt.EVT_DIMSE_RECV, self._received)],
        )
        assert self.assoc.is_established

    def _received(self, event: Any) -> None:
        self.commands.append(event.message.command_set)

    def _response(self, status: Dataset) -> Dataset:
        """The whole response command set (pynetdicom returns only the status part)."""
        assert "Status" in status, "no response"
        command = self.commands[-1]
        assert command.Status == status.Status
        return command

    def create(
        self, data: Dataset | None, sop_class: str, uid: str | None = None, meta: str | None = GRAY
    ) -> tuple[Dataset, Dataset | None]:
        status, reply = self.assoc.send_n_create(data, sop_class, uid, meta_uid=meta)
        return self._response(status), reply

    def set(
        self, data: Dataset, sop_class: str, uid: str, meta: str | None = GRAY
    ) -> tuple[Dataset, Dataset | None]:
        status, reply = self.assoc.send_n_set(data, sop_class, uid, meta_uid=meta)
        return self._response(status), reply

    def action(
        self, sop_class: str, uid: str, action_type: int = 1, meta: str = GRAY
    ) -> tuple[Dataset, Dataset | None]:
        status, reply = self.assoc.send_n_action(None, action_type, sop_class, uid, meta_uid=meta)
        return self._response(status), reply

    def delete(self, sop_class: str, uid: str, meta: str | None = GRAY) -> Dataset:
        status: Dataset = self.assoc.send_n_delete(sop_class, uid, meta_uid=meta)
        return self._response(status)

    def get(
        self, sop_class: str, uid: str, keys: list[Any] | None = None, meta: str | None = GRAY
    ) -> tuple[Dataset, Dataset | None]:
        status, reply = self.assoc.send_n_get(keys or [], sop_class, uid, meta_uid=meta)
        return self._response(status), reply

    def session(self, **attributes: Any) -> str:
        data = Dataset()
        for keyword, value in attributes.items():
            setattr(data, keyword, value)
        status, _ = self.create(data if attributes else None, BASIC_FILM_SESSION)
        assert status.Status == 0x0000
        return str(status.AffectedSOPInstanceUID)

    def film_box(
        self, session_uid: str, display: str = "STANDARD\\2,2", meta: str = GRAY, **attributes: Any
    ) -> tuple[Dataset, Dataset | None]:
        data = Dataset()
        data.ImageDisplayFormat = display
        reference = Dataset()
        reference.ReferencedSOPClassUID = BASIC_FILM_SESSION
        reference.ReferencedSOPInstanceUID = session_uid
        data.ReferencedFilmSessionSequence = [reference]
        for keyword, value in attributes.items():
            setattr(data, keyword, value)
        return self.create(data, BASIC_FILM_BOX, meta=meta)


def grayscale_image_box(position: int, rows: int = 4, columns: int = 3) -> Dataset:
    image = Dataset()
    image.SamplesPerPixel = 1
    image.PhotometricInterpretation = "MONOCHROME2"
    image.Rows = rows
    image.Columns = columns
    image.PixelAspectRatio = [1, 1]
    image.BitsAllocated = 8
    image.BitsStored = 8
    image.HighBit = 7
    image.PixelRepresentation = 0
    image.PixelData = bytes(range(rows * columns))
    box = Dataset()
    box.ImageBoxPosition = position
    box.Polarity = "NORMAL"
    box.BasicGrayscaleImageSequence = [image]
    return box


@pytest.fixture
def printed(server_factory: ServerFactory) -> tuple[Listener, list[FilmJob]]:
    films: list[FilmJob] = []
    server = server_factory()
    assert isinstance(server, AsyncioDicomServer)
    server.engine.services.print_management.compose = films.append
    return server, films


@pytest.fixture
def scu(printed: tuple[Listener, list[FilmJob]]) -> Iterator[PrintScu]:
    client = PrintScu(printed[0], PRESENTATION_LUT, PRINTER, PRINT_JOB)
    yield client
    client.assoc.release()


def repository(server: Listener) -> PrintRepository:
    return PrintRepository(server.runtime.db)


def test_image_display_format_cells() -> None:
    assert image_display_cells("STANDARD\\2,2") == 4
    assert image_display_cells("STANDARD\\3,5") == 15
    assert image_display_cells("ROW\\2,3,1") == 6
    assert image_display_cells("COL\\1,2") == 3
    for bad in (
        "STANDARD\\2",
        "STANDARD\\0,2",
        "CUSTOM\\7",
        "STANDARD\\a,b",
        "SLIDE",
        "SUPERSLIDE",
    ):
        with pytest.raises(ValueError):
            image_display_cells(bad)


def test_print_a_film_box(scu: PrintScu, printed: tuple[Listener, list[FilmJob]]) -> None:
    server, films = printed
    # Film Session without SOP Instance UID and without a data set: the UID is assigned.
    status, reply = scu.create(None, BASIC_FILM_SESSION)
    assert status.Status == 0x0000
    assert status.AffectedSOPClassUID == BASIC_FILM_SESSION
    session_uid = str(status.AffectedSOPInstanceUID)
    assert session_uid and not reply
    status, _ = scu.set(_copies(2), BASIC_FILM_SESSION, session_uid)
    assert status.Status == 0x0000
    assert status.AffectedSOPClassUID == BASIC_FILM_SESSION

    status, box = scu.film_box(session_uid, FilmOrientation="PORTRAIT", FilmSizeID="14INX17IN")
    assert status.Status == 0x0000
    assert status.AffectedSOPClassUID == BASIC_FILM_BOX
    film_box_uid = str(status.AffectedSOPInstanceUID)
    assert box is not None
    references = box.ReferencedImageBoxSequence
    assert len(references) == 4
    assert {r.ReferencedSOPClassUID for r in references} == {BASIC_GRAYSCALE_IMAGE_BOX}
    assert "ReferencedBasicAnnotationBoxSequence" not in box

    for position in (1, 3):
        uid = references[position - 1].ReferencedSOPInstanceUID
        status, _ = scu.set(grayscale_image_box(position), BASIC_GRAYSCALE_IMAGE_BOX, uid)
        assert status.Status == 0x0000
        assert status.AffectedSOPClassUID == BASIC_GRAYSCALE_IMAGE_BOX

    status, reply = scu.action(BASIC_FILM_BOX, film_box_uid)
    assert status.Status == 0x0000
    assert status.AffectedSOPClassUID == BASIC_FILM_BOX
    assert status.ActionTypeID == 1
    assert reply is not None
    job_uid = reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
    assert reply.ReferencedPrintJobSequence[0].ReferencedSOPClassUID == PRINT_JOB

    job = repository(server).job(job_uid)
    assert job is not None
    assert job.status is ExecutionStatus.DONE
    assert job.calling_ae_title == "CR1"
    assert job.film_box_uids == [film_box_uid]
    assert job.layout == ["STANDARD\\2,2"]
    assert job.number_of_copies == 2

    (film,) = films
    assert film.print_job_uid == job_uid
    assert film.calling_ae_title == "CR1"
    assert film.film_box.FilmSizeID == "14INX17IN"
    assert film.film_session.NumberOfCopies == 2
    assert [box is not None for box in film.image_boxes] == [True, False, True, False]
    first = film.image_boxes[0]
    assert first is not None
    assert first.BasicGrayscaleImageSequence[0].PixelData == bytes(range(12))

    status, reply = scu.get(PRINT_JOB, job_uid, meta=None)
    assert status.Status == 0x0000
    assert reply is not None and reply.ExecutionStatus == "DONE"

    assert scu.delete(BASIC_FILM_BOX, film_box_uid).Status == 0x0000
    assert scu.delete(BASIC_FILM_BOX, film_box_uid).Status == 0x0112
    assert repository(server).get(references[0].ReferencedSOPInstanceUID) is None
    assert scu.delete(BASIC_FILM_SESSION, session_uid).Status == 0x0000


def _copies(number: int) -> Dataset:
    data = Dataset()
    data.NumberOfCopies = number
    return data


def test_print_the_film_session(scu: PrintScu, printed: tuple[Listener, list[FilmJob]]) -> None:
    server, films = printed
    session_uid = generate_uid()
    status, _ = scu.create(_copies(1), BASIC_FILM_SESSION, session_uid)
    assert status.Status == 0x0000 and status.AffectedSOPInstanceUID == session_uid
    # A session without film box cannot be printed.
    assert scu.action(BASIC_FILM_SESSION, session_uid)[0].Status == 0xC600
    status, first = scu.film_box(session_uid, "ROW\\1,2")
    first_uid = str(status.AffectedSOPInstanceUID)
    _, second = scu.film_box(session_uid, "COL\\2", AnnotationDisplayFormatID="LABEL")
    assert first is not None and second is not None
    assert len(first.ReferencedImageBoxSequence) == 3
    assert len(second.ReferencedImageBoxSequence) == 2
    assert len(second.ReferencedBasicAnnotationBoxSequence) == 1
    uid = first.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    assert scu.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, uid)[0].Status == 0
    status, reply = scu.action(BASIC_FILM_SESSION, session_uid)
    assert status.Status == 0x0000
    assert reply is not None
    job = repository(server).job(reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID)
    assert job is not None and job.layout == ["ROW\\1,2", "COL\\2"]
    assert len(films) == 2
    # Deleting the session deletes the film boxes below it.
    assert scu.delete(BASIC_FILM_SESSION, session_uid).Status == 0x0000
    assert scu.action(BASIC_FILM_BOX, first_uid)[0].Status == 0x0112
    assert repository(server).get(uid) is None


def test_empty_film_box_prints_with_a_warning(scu: PrintScu) -> None:
    session_uid = scu.session()
    status, _ = scu.film_box(session_uid, "STANDARD\\1,1")
    status, _ = scu.action(BASIC_FILM_BOX, str(status.AffectedSOPInstanceUID))
    assert status.Status == 0xB603


def test_printer_n_get(scu: PrintScu) -> None:
    status, reply = scu.get(PRINTER, PRINTER_INSTANCE, meta=None)
    assert status.Status == 0x0000
    assert status.AffectedSOPClassUID == PRINTER
    assert status.AffectedSOPInstanceUID == PRINTER_INSTANCE
    assert reply is not None
    assert reply.PrinterStatus == "NORMAL"
    assert reply.PrinterStatusInfo == "NORMAL"
    assert reply.PrinterName == "DICOMHUB"
    assert reply.Manufacturer == "dicomhub"
    assert "ManufacturerModelName" in reply
    # Also on the meta SOP class context, and only the requested attributes.
    status, reply = scu.get(PRINTER, PRINTER_INSTANCE, [0x21100010])
    assert status.Status == 0x0000
    assert reply is not None and list(reply.keys()) == [0x21100010]
    assert scu.get(PRINTER, "1.2.3.4")[0].Status == 0x0112


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("NumberOfCopies", 0),
        ("NumberOfCopies", 1000),
        ("PrintPriority", "URGENT"),
        ("MediumType", "FOIL"),
        ("FilmDestination", "BIN"),
    ],
)
def test_invalid_film_session_values(scu: PrintScu, keyword: str, value: Any) -> None:
    data = Dataset()
    setattr(data, keyword, value)
    status, _ = scu.create(data, BASIC_FILM_SESSION)
    assert status.Status == 0x0106
    assert keyword in str(status.ErrorComment)
    assert status.AffectedSOPClassUID == BASIC_FILM_SESSION


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("ImageDisplayFormat", "STANDARD\\2", 0x0106),
        ("ImageDisplayFormat", "", 0x0121),
        ("FilmOrientation", "SIDEWAYS", 0x0106),
        ("FilmSizeID", "1INX1IN", 0x0106),
        ("MagnificationType", "ZOOM", 0x0106),
        ("Trim", "MAYBE", 0x0106),
        ("BorderDensity", "GREY", 0x0106),
    ],
)
def test_invalid_film_box_values(scu: PrintScu, keyword: str, value: str, expected: int) -> None:
    session_uid = scu.session()
    status, _ = scu.film_box(session_uid, **{keyword: value})
    assert status.Status == expected
    assert keyword in str(status.ErrorComment)


def test_film_box_refusals(scu: PrintScu) -> None:
    status, _ = scu.film_box(generate_uid())
    assert status.Status == 0x0106  # the referenced film session is unknown
    data = Dataset()
    data.FilmOrientation = "PORTRAIT"
    status, _ = scu.create(data, BASIC_FILM_BOX)
    assert status.Status == 0x0120  # no Image Display Format
    session_uid = scu.session()
    status, _ = scu.film_box(session_uid)
    uid = str(status.AffectedSOPInstanceUID)
    change = Dataset()
    change.FilmOrientation = "LANDSCAPE"
    assert scu.set(change, BASIC_FILM_BOX, uid)[0].Status == 0x0106
    change = Dataset()
    change.MagnificationType = "CUBIC"
    assert scu.set(change, BASIC_FILM_BOX, uid)[0].Status == 0x0000
    assert scu.action(BASIC_FILM_BOX, uid, action_type=2)[0].Status == 0x0123
    assert scu.create(None, BASIC_FILM_SESSION, session_uid)[0].Status == 0x0111


def test_n_set_names_only_what_the_class_lets_it_set(
    scu: PrintScu, printed: tuple[Listener, list[FilmJob]]
) -> None:
    """As DCMTK's print SCP: an N-SET naming an attribute its class does not let it set is
    refused with 0x0105 and the tags in the Attribute Identifier List (Film Session, Film
    Box, Image Box), and nothing of it is kept; a create-only one may be repeated unchanged,
    not changed (0x0106)."""
    stored = repository(printed[0])

    def kept(uid: str) -> Dataset:
        found = stored.get(uid)
        assert found is not None
        return from_bytes(found.attributes)

    session_uid = scu.session()
    status, reply = scu.film_box(
        session_uid, FilmSizeID="8INX10IN", RequestedResolutionID="STANDARD"
    )
    uid = str(status.AffectedSOPInstanceUID)
    change = Dataset()
    change.MagnificationType = "CUBIC"
    change.PatientName = "NOT^HERE"
    change.ReferencedImageBoxSequence = []
    status = scu.set(change, BASIC_FILM_BOX, uid)[0]
    assert status.Status == 0x0105
    assert sorted(status.AttributeIdentifierList) == [0x00100010, 0x20100510]
    assert "PatientName" in str(status.ErrorComment)
    assert "MagnificationType" not in kept(uid) and "PatientName" not in kept(uid)
    repeat = Dataset()
    repeat.SpecificCharacterSet = "ISO_IR 100"
    repeat.FilmSizeID = "8INX10IN"
    repeat.Trim = "YES"
    assert scu.set(repeat, BASIC_FILM_BOX, uid)[0].Status == 0x0000
    change = Dataset()
    change.RequestedResolutionID = "HIGH"
    assert scu.set(change, BASIC_FILM_BOX, uid)[0].Status == 0x0106
    assert kept(uid).RequestedResolutionID == "STANDARD" and kept(uid).Trim == "YES"
    change = _copies(3)
    change.AnnotationDisplayFormatID = "NONE"
    status = scu.set(change, BASIC_FILM_SESSION, session_uid)[0]
    assert status.Status == 0x0105
    assert status.AttributeIdentifierList == 0x20100030
    assert "NumberOfCopies" not in kept(session_uid)
    assert scu.set(_copies(2), BASIC_FILM_SESSION, session_uid)[0].Status == 0x0000
    assert kept(session_uid).NumberOfCopies == 2
    assert reply is not None
    image_box_uid = str(reply.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID)
    image = grayscale_image_box(1)
    image.PatientID = "NOT-HERE"
    status = scu.set(image, BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)[0]
    assert status.Status == 0x0105
    assert status.AttributeIdentifierList == 0x00100020
    assert "BasicGrayscaleImageSequence" not in kept(image_box_uid)
    image = grayscale_image_box(1)
    image.Polarity = "REVERSE"
    assert scu.set(image, BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)[0].Status == 0x0000


def test_image_box_refusals(scu: PrintScu) -> None:
    session_uid = scu.session()
    _, box = scu.film_box(session_uid, "STANDARD\\1,2")
    assert box is not None
    first, second = (r.ReferencedSOPInstanceUID for r in box.ReferencedImageBoxSequence)
    # Position of another box, bad polarity, missing and short pixel data.
    assert scu.set(grayscale_image_box(2), BASIC_GRAYSCALE_IMAGE_BOX, first)[0].Status == 0x0106
    data = grayscale_image_box(1)
    data.Polarity = "INVERTED"
    assert scu.set(data, BASIC_GRAYSCALE_IMAGE_BOX, first)[0].Status == 0x0106
    data = grayscale_image_box(1)
    del data.BasicGrayscaleImageSequence[0].PixelData
    assert scu.set(data, BASIC_GRAYSCALE_IMAGE_BOX, first)[0].Status == 0x0120
    data = grayscale_image_box(1)
    data.BasicGrayscaleImageSequence[0].PixelData = b"\0\0"
    assert scu.set(data, BASIC_GRAYSCALE_IMAGE_BOX, first)[0].Status == 0x0106
    data = grayscale_image_box(1)
    data.BasicGrayscaleImageSequence[0].PhotometricInterpretation = "RGB"
    assert scu.set(data, BASIC_GRAYSCALE_IMAGE_BOX, first)[0].Status == 0x0106
    # Unknown instance, and an operation the image box does not define.
    assert scu.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, generate_uid())[0].Status == (
        0x0112
    )
    assert scu.delete(BASIC_GRAYSCALE_IMAGE_BOX, second).Status == 0x0211
    # The color image box is not a member of the grayscale meta SOP class.
    assert scu.set(grayscale_image_box(1), BASIC_COLOR_IMAGE_BOX, first)[0].Status == 0x0122


def test_color_print(scu: PrintScu, printed: tuple[Listener, list[FilmJob]]) -> None:
    _, films = printed
    status, _ = scu.create(None, BASIC_FILM_SESSION, meta=BASIC_COLOR_PRINT_META)
    session_uid = str(status.AffectedSOPInstanceUID)
    status, box = scu.film_box(session_uid, "STANDARD\\1,1", meta=BASIC_COLOR_PRINT_META)
    film_box_uid = str(status.AffectedSOPInstanceUID)
    assert box is not None
    reference = box.ReferencedImageBoxSequence[0]
    assert reference.ReferencedSOPClassUID == BASIC_COLOR_IMAGE_BOX
    image = Dataset()
    image.SamplesPerPixel = 3
    image.PhotometricInterpretation = "RGB"
    image.PlanarConfiguration = 1
    image.Rows = image.Columns = 2
    image.BitsAllocated = image.BitsStored = 8
    image.HighBit = 7
    image.PixelRepresentation = 0
    image.PixelData = bytes(12)
    data = Dataset()
    data.ImageBoxPosition = 1
    data.BasicColorImageSequence = [image]
    status, _ = scu.set(
        data, BASIC_COLOR_IMAGE_BOX, reference.ReferencedSOPInstanceUID, BASIC_COLOR_PRINT_META
    )
    assert status.Status == 0x0000
    status, _ = scu.action(BASIC_FILM_BOX, film_box_uid, meta=BASIC_COLOR_PRINT_META)
    assert status.Status == 0x0000
    assert films[-1].color
    assert films[-1].image_boxes[0] is not None


def test_presentation_lut(scu: PrintScu) -> None:
    data = Dataset()
    data.PresentationLUTShape = "IDENTITY"
    status, _ = scu.create(data, PRESENTATION_LUT, meta=None)
    assert status.Status == 0x0000
    lut_uid = str(status.AffectedSOPInstanceUID)
    session_uid = scu.session()
    reference = Dataset()
    reference.ReferencedSOPClassUID = PRESENTATION_LUT
    reference.ReferencedSOPInstanceUID = lut_uid
    status, _ = scu.film_box(session_uid, ReferencedPresentationLUTSequence=[reference])
    assert status.Status == 0x0000
    data.PresentationLUTShape = "GAMMA"
    assert scu.create(data, PRESENTATION_LUT, meta=None)[0].Status == 0x0106
    assert scu.delete(PRESENTATION_LUT, lut_uid, meta=None).Status == 0x0000
    assert scu.delete(PRESENTATION_LUT, lut_uid, meta=None).Status == 0x0112


# Refusals and warnings with the standard's statuses ----------------------------------------


def _refused(caplog: pytest.LogCaptureFixture, status: int) -> list[str]:
    return [m for m in caplog.messages if f"0x{status:04X}" in m]


def _big_image_box(position: int, **attributes: Any) -> Dataset:
    box = grayscale_image_box(position, 16, 16)
    for keyword, value in attributes.items():
        setattr(box, keyword, value)
    return box


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [("DECIMATE", 0xB60A), ("CROP", 0xB609), (None, 0xB604), ("FAIL", 0xC603)],
)
def test_image_larger_than_its_box(
    scu: PrintScu,
    printed: tuple[Listener, list[FilmJob]],
    caplog: pytest.LogCaptureFixture,
    behaviour: str | None,
    status: int,
) -> None:
    caplog.set_level(logging.INFO, logger="dicomhub.dicom")
    _, films = printed
    session_uid = scu.session()
    created, box = scu.film_box(session_uid, "STANDARD\\2,2")
    assert box is not None
    uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    # 300 mm wide: far wider than a quarter of an 8x10 inch film
    attributes = {"RequestedImageSize": "300"}
    if behaviour:
        attributes["RequestedDecimateCropBehavior"] = behaviour
    answer, _ = scu.set(_big_image_box(1, **attributes), BASIC_GRAYSCALE_IMAGE_BOX, uid)
    assert answer.Status == status
    assert answer.AffectedSOPClassUID == BASIC_GRAYSCALE_IMAGE_BOX
    assert "larger than" in str(answer.ErrorComment)
    assert _refused(caplog, status), caplog.messages
    printed_status, _ = scu.action(BASIC_FILM_BOX, str(created.AffectedSOPInstanceUID))
    if status == 0xC603:
        # the image was refused: nothing to print, the empty-page warning
        assert printed_status.Status == 0xB603
    else:
        assert printed_status.Status == status  # the print repeats the warning
        assert "larger than" in str(printed_status.ErrorComment)
    assert len(films) == 1


def test_print_refuses_an_image_that_no_longer_fits(
    scu: PrintScu, printed: tuple[Listener, list[FilmJob]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicomhub.dicom")
    server, films = printed
    session_uid = scu.session()
    created, box = scu.film_box(session_uid, "STANDARD\\4,4")
    assert box is not None
    film_box_uid = str(created.AffectedSOPInstanceUID)
    uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    image = grayscale_image_box(1)
    item = image.BasicGrayscaleImageSequence[0]
    item.Rows = item.Columns = 300
    item.PixelData = bytes(300 * 300)
    image.RequestedDecimateCropBehavior = "FAIL"
    assert scu.set(image, BASIC_GRAYSCALE_IMAGE_BOX, uid)[0].Status == 0x0000  # scaled to fit
    change = Dataset()
    change.MagnificationType = "NONE"  # one image pixel per film pixel: 300 > a 2 inch cell
    assert scu.set(change, BASIC_FILM_BOX, film_box_uid)[0].Status == 0x0000
    status, reply = scu.action(BASIC_FILM_BOX, film_box_uid)
    assert status.Status == 0xC603
    assert "image box 1" in str(status.ErrorComment)
    assert reply is None
    assert films == []
    assert repository(server).jobs() == []  # refused before a print job was recorded
    assert _refused(caplog, 0xC603), caplog.messages


@pytest.mark.parametrize("display", ["STANDARD\\40,1", "STANDARD\\11,10", "ROW\\30,30"])
def test_too_many_image_boxes(scu: PrintScu, display: str) -> None:
    session_uid = scu.session()
    status, _ = scu.film_box(session_uid, display)
    assert status.Status == 0x0106
    assert status.AffectedSOPClassUID == BASIC_FILM_BOX
    assert "ImageDisplayFormat" in str(status.ErrorComment) or "image boxes" in str(
        status.ErrorComment
    )


def test_deleted_and_unknown_instances(
    scu: PrintScu, printed: tuple[Listener, list[FilmJob]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicomhub.dicom")
    session_uid = scu.session()
    created, box = scu.film_box(session_uid, "STANDARD\\1,1")
    assert box is not None
    film_box_uid = str(created.AffectedSOPInstanceUID)
    image_box_uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    assert scu.delete(BASIC_FILM_BOX, film_box_uid).Status == 0x0000
    # the deleted film box and its image box are gone
    for status in (
        scu.action(BASIC_FILM_BOX, film_box_uid)[0],
        scu.set(_copies(1), BASIC_FILM_BOX, film_box_uid)[0],
        scu.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)[0],
        scu.set(_copies(1), BASIC_FILM_SESSION, generate_uid())[0],
        scu.action(BASIC_FILM_SESSION, generate_uid())[0],
        scu.get(PRINT_JOB, generate_uid(), meta=None)[0],
    ):
        assert status.Status == 0x0112
        assert status.ErrorComment
    assert len(_refused(caplog, 0x0112)) == 6
    # the session is still there, now without film box
    assert scu.action(BASIC_FILM_SESSION, session_uid)[0].Status == 0xC600


def test_empty_film_session_prints_with_a_warning(scu: PrintScu) -> None:
    session_uid = scu.session()
    scu.film_box(session_uid, "STANDARD\\1,2")
    status, reply = scu.action(BASIC_FILM_SESSION, session_uid)
    assert status.Status == 0xB602
    assert status.ErrorComment == "no image box was set"
    assert reply is not None and reply.ReferencedPrintJobSequence


# Association scope and the print job listing -------------------------------------------------


def test_film_sessions_end_with_their_association(
    printed: tuple[Listener, list[FilmJob]],
) -> None:
    server, _ = printed
    first = PrintScu(server, PRESENTATION_LUT)
    lut = Dataset()
    lut.PresentationLUTShape = "IDENTITY"
    lut_status, _ = first.create(lut, PRESENTATION_LUT, meta=None)
    session_uid = first.session(NumberOfCopies=3)
    created, box = first.film_box(session_uid, "STANDARD\\1,1")
    assert box is not None
    film_box_uid = str(created.AffectedSOPInstanceUID)
    image_box_uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    first.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)
    status, reply = first.action(BASIC_FILM_BOX, film_box_uid)
    assert status.Status == 0x0000 and reply is not None
    job_uid = reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
    other = PrintScu(server)  # another modality's session is not touched
    other_session = other.session()
    first.assoc.release()  # no N-DELETE: the SCU just goes away

    jobs = repository(server)
    for uid in (session_uid, film_box_uid, image_box_uid, lut_status.AffectedSOPInstanceUID):
        assert _eventually_gone(jobs, uid), uid
    assert jobs.get(other_session) is not None
    job = jobs.job(job_uid)  # what was printed stays
    assert job is not None and job.number_of_copies == 3
    page = jobs.job_page()
    assert [view.job.sop_instance_uid for view in page.items] == [job_uid]
    assert [film.printed.film_box_uid for film in page.items[0].films] == [film_box_uid]
    assert page.items[0].films[0].archived is None  # the test hook archives nothing
    other.assoc.release()
    assert _eventually_gone(jobs, other_session)


def _eventually_gone(jobs: PrintRepository, uid: str) -> bool:
    """The association's state is released as it closes, just after the release response."""
    for _ in range(200):
        if jobs.get(uid) is None:
            return True
        time.sleep(0.05)
    return False


def test_instances_belong_to_the_association_that_created_them(
    printed: tuple[Listener, list[FilmJob]],
) -> None:
    server, films = printed
    owner = PrintScu(server, PRESENTATION_LUT, BASIC_ANNOTATION_BOX)
    other = PrintScu(server, PRESENTATION_LUT, BASIC_ANNOTATION_BOX)  # at the same time
    try:
        lut = Dataset()
        lut.PresentationLUTShape = "IDENTITY"
        lut_uid = str(owner.create(lut, PRESENTATION_LUT, meta=None)[0].AffectedSOPInstanceUID)
        session_uid = owner.session()
        created, box = owner.film_box(
            session_uid, "STANDARD\\1,1", AnnotationDisplayFormatID="LABEL"
        )
        assert box is not None
        film_box_uid = str(created.AffectedSOPInstanceUID)
        image_box_uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        annotation_uid = box.ReferencedBasicAnnotationBoxSequence[0].ReferencedSOPInstanceUID
        text = Dataset()
        text.AnnotationPosition = 1
        text.TextString = "OWNER"

        # every N-SET, N-ACTION and N-DELETE of another association: no such SOP instance
        for status in (
            other.set(_copies(2), BASIC_FILM_SESSION, session_uid)[0],
            other.set(_magnification("CUBIC"), BASIC_FILM_BOX, film_box_uid)[0],
            other.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)[0],
            other.set(text, BASIC_ANNOTATION_BOX, annotation_uid, meta=None)[0],
            other.action(BASIC_FILM_BOX, film_box_uid)[0],
            other.action(BASIC_FILM_SESSION, session_uid)[0],
            other.delete(BASIC_FILM_BOX, film_box_uid),
            other.delete(BASIC_FILM_SESSION, session_uid),
            other.delete(PRESENTATION_LUT, lut_uid, meta=None),
        ):
            assert status.Status == 0x0112, status
            assert status.ErrorComment
        # nor may it reference them: an unknown film session or Presentation LUT
        assert other.film_box(session_uid)[0].Status == 0x0106
        own_session = other.session()
        status, _ = other.film_box(own_session, ReferencedPresentationLUTSequence=[_ref(lut_uid)])
        assert status.Status == 0x0106
        assert films == [] and repository(server).jobs() == []

        # the owner's instances are untouched and all its operations succeed
        assert (
            owner.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)[0].Status
            == 0
        )
        assert owner.set(text, BASIC_ANNOTATION_BOX, annotation_uid, meta=None)[0].Status == 0
        assert owner.set(_magnification("CUBIC"), BASIC_FILM_BOX, film_box_uid)[0].Status == 0
        assert owner.set(_copies(2), BASIC_FILM_SESSION, session_uid)[0].Status == 0
        assert owner.action(BASIC_FILM_SESSION, session_uid)[0].Status == 0
        assert [str(a.TextString) for a in films[0].annotations] == ["OWNER"]
        assert owner.delete(BASIC_FILM_BOX, film_box_uid).Status == 0
        assert owner.delete(BASIC_FILM_SESSION, session_uid).Status == 0
        assert owner.delete(PRESENTATION_LUT, lut_uid, meta=None).Status == 0
    finally:
        owner.assoc.release()
        other.assoc.release()


def _magnification(value: str) -> Dataset:
    data = Dataset()
    data.MagnificationType = value
    return data


def _ref(lut_uid: str) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = PRESENTATION_LUT
    reference.ReferencedSOPInstanceUID = lut_uid
    return reference


# Presentation LUT N-CREATE ---------------------------------------------------------------------


def _lut_item(descriptor: list[int], data: list[int] | None) -> Dataset:
    """A Presentation LUT Sequence item, its LUT Data as OW (16 bits per entry)."""
    item = Dataset()
    item.LUTDescriptor = descriptor
    if data is not None:
        item.add_new("LUTData", "OW", b"".join(value.to_bytes(2, "little") for value in data))
    return item


def _ramp(entries: int, bits: int) -> list[int]:
    return [value * ((1 << bits) - 1) // (entries - 1) for value in range(entries)]


@pytest.mark.parametrize(
    ("shape", "items", "status", "comment"),
    [
        (None, None, 0x0120, "PresentationLUTShape or PresentationLUTSequence required"),
        ("", None, 0x0120, "PresentationLUTShape or PresentationLUTSequence required"),
        (None, [], 0x0120, "PresentationLUTShape or PresentationLUTSequence required"),
        ("GAMMA", None, 0x0106, "PresentationLUTShape 'GAMMA' invalid"),
        ("INVERSE", None, 0x0106, "PresentationLUTShape 'INVERSE' invalid"),
        ("IDENTITY", [([256, 0, 12], _ramp(256, 12))], 0x0106, "are exclusive"),
        (None, [([256, 0, 12], _ramp(256, 12))] * 2, 0x0106, "has 2 items, not 1"),
        (None, [([256, 0, 12], None)], 0x0120, "LUTData missing"),
        (None, [([256, 0, 8], _ramp(256, 8))], 0x0106, "LUTDescriptor [256, 0, 8] invalid"),
        (None, [([256, 5, 12], _ramp(256, 12))], 0x0106, "LUTDescriptor [256, 5, 12] invalid"),
        (None, [([300, 0, 12], _ramp(300, 12))], 0x0106, "LUTDescriptor [300, 0, 12] invalid"),
        (None, [([256, 0, 12], _ramp(255, 12))], 0x0106, "LUTData has 255 values"),
        (None, [([256, 0, 10], _ramp(256, 12))], 0x0106, "LUTData values exceed 10 bits"),
        ("IDENTITY", None, 0x0000, ""),
        ("LIN OD", None, 0x0000, ""),
        (None, [([256, 0, 10], _ramp(256, 10))], 0x0000, ""),
        (None, [([4096, 0, 12], _ramp(4096, 12))], 0x0000, ""),
        (None, [([0, 0, 16], _ramp(65536, 16))], 0x0000, ""),
    ],
)
def test_presentation_lut_attributes(
    scu: PrintScu,
    caplog: pytest.LogCaptureFixture,
    shape: str | None,
    items: list[tuple[list[int], list[int] | None]] | None,
    status: int,
    comment: str,
) -> None:
    caplog.set_level(logging.INFO, logger="dicomhub.dicom")
    data = Dataset()
    if shape is not None:
        data.PresentationLUTShape = shape
    if items is not None:
        data.PresentationLUTSequence = [_lut_item(*item) for item in items]
    answer, _ = scu.create(data if len(data) else None, PRESENTATION_LUT, meta=None)
    assert answer.Status == status
    assert answer.AffectedSOPClassUID == PRESENTATION_LUT
    if status:
        assert comment in str(answer.ErrorComment)
        assert _refused(caplog, status), caplog.messages
    else:
        assert "ErrorComment" not in answer


def test_a_presentation_lut_sequence_is_printed(
    scu: PrintScu, printed: tuple[Listener, list[FilmJob]]
) -> None:
    _, films = printed
    data = Dataset()
    data.PresentationLUTSequence = [_lut_item([256, 0, 12], _ramp(256, 12)[::-1])]  # inverting
    status, _ = scu.create(data, PRESENTATION_LUT, meta=None)
    assert status.Status == 0x0000
    session_uid = scu.session()
    reference = [_ref(str(status.AffectedSOPInstanceUID))]
    created, box = scu.film_box(
        session_uid, "STANDARD\\1,1", ReferencedPresentationLUTSequence=reference
    )
    assert box is not None
    image_box_uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    image = grayscale_image_box(1)
    image.BasicGrayscaleImageSequence[0].PixelData = bytes([40] * 12)
    assert scu.set(image, BASIC_GRAYSCALE_IMAGE_BOX, image_box_uid)[0].Status == 0x0000
    assert scu.action(BASIC_FILM_BOX, str(created.AffectedSOPInstanceUID))[0].Status == 0x0000
    (film,) = films
    assert film.presentation_lut is not None
    pixels = compose_film(film)
    assert pixels[pixels.shape[0] // 2, pixels.shape[1] // 2] == 215  # 255 - 40: the LUT applies


def test_presentation_lut_is_read_once_per_film_box(
    scu: PrintScu, printed: tuple[Listener, list[FilmJob]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, films = printed
    lut = Dataset()
    lut.PresentationLUTShape = "LIN OD"
    lut_uid = str(scu.create(lut, PRESENTATION_LUT, meta=None)[0].AffectedSOPInstanceUID)
    session_uid = scu.session()
    boxes = []
    for _ in range(2):
        created, box = scu.film_box(session_uid, "STANDARD\\2,2")
        assert box is not None
        boxes.append(str(created.AffectedSOPInstanceUID))
        for position, reference in enumerate(box.ReferencedImageBoxSequence, start=1):
            image = grayscale_image_box(position)
            image.ReferencedPresentationLUTSequence = [_ref(lut_uid)]
            uid = reference.ReferencedSOPInstanceUID
            assert scu.set(image, BASIC_GRAYSCALE_IMAGE_BOX, uid)[0].Status == 0x0000
    assert isinstance(server, AsyncioDicomServer)
    jobs = server.engine.services.print_management.repository
    reads: list[str] = []
    get = jobs.get

    def counted(uid: str, association_uid: str | None = None) -> Any:
        reads.append(uid)
        return get(uid, association_uid)

    monkeypatch.setattr(jobs, "get", counted)
    assert scu.action(BASIC_FILM_BOX, boxes[0])[0].Status == 0x0000
    assert reads.count(lut_uid) == 1  # four image boxes, one film box
    reads.clear()
    assert scu.action(BASIC_FILM_SESSION, session_uid)[0].Status == 0x0000
    assert reads.count(lut_uid) == 2  # two film boxes
    assert len(films) == 3
    assert all(film.image_luts == [film.image_luts[0]] * 4 for film in films)
    assert all(
        lut is not None and lut.PresentationLUTShape == "LIN OD" for lut in films[0].image_luts
    )


# Print failures: the printer's, composition's, and a film with too many pixels ----------------


@pytest.fixture
def failing(server_factory: ServerFactory) -> tuple[Listener, list[Exception]]:
    """A server whose print hook raises the next exception of the list it returns."""
    failures: list[Exception] = []
    server = server_factory()
    assert isinstance(server, AsyncioDicomServer)

    def compose(film: FilmJob) -> None:
        raise failures.pop(0)

    server.engine.services.print_management.compose = compose
    return server, failures


def _one_film(scu: PrintScu) -> tuple[str, str]:
    session_uid = scu.session()
    created, box = scu.film_box(session_uid, "STANDARD\\1,1")
    assert box is not None
    uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    assert scu.set(grayscale_image_box(1), BASIC_GRAYSCALE_IMAGE_BOX, uid)[0].Status == 0x0000
    return session_uid, str(created.AffectedSOPInstanceUID)


@pytest.mark.parametrize(
    ("failure", "target", "status", "comment"),
    [
        (
            PrintRelayFailed("printer 'x' refused it"),
            BASIC_FILM_SESSION,
            0xC601,
            "printer 'x' refused it",
        ),
        (
            PrintRelayFailed("printer 'x' refused it"),
            BASIC_FILM_BOX,
            0xC602,
            "printer 'x' refused it",
        ),
        (
            PrintJobFailed("printer 'x' unavailable"),
            BASIC_FILM_SESSION,
            0xC601,
            "printer 'x' unavailable",
        ),
        (
            RuntimeError("boom"),
            BASIC_FILM_SESSION,
            0x0110,
            "film could not be composed: RuntimeError",
        ),
        (MemoryError(), BASIC_FILM_BOX, 0x0110, "film could not be composed: MemoryError"),
        (
            OutOfResources("storage full"),
            BASIC_FILM_BOX,
            0x0110,
            "film could not be composed: storage full",
        ),
    ],
)
def test_print_failures_have_the_standard_statuses(
    failing: tuple[Listener, list[Exception]],
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
    target: str,
    status: int,
    comment: str,
) -> None:
    caplog.set_level(logging.INFO, logger="dicomhub")
    server, failures = failing
    failures.append(failure)
    scu = PrintScu(server)
    try:
        session_uid, film_box_uid = _one_film(scu)
        uid = session_uid if target == BASIC_FILM_SESSION else film_box_uid
        answer, reply = scu.action(target, uid)
    finally:
        scu.assoc.release()
    assert answer.Status == status
    assert answer.ErrorComment == comment
    assert answer.AffectedSOPClassUID == target
    assert reply is None
    (job,) = repository(server).jobs()
    assert job.status is ExecutionStatus.FAILURE
    assert job.detail
    assert _refused(caplog, status), caplog.messages
    assert any(
        r.levelno == logging.ERROR
        and r.getMessage().startswith(f"print job {job.sop_instance_uid}")
        for r in caplog.records
    )


def test_a_film_over_the_pixel_cap_is_refused(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicomhub.dicom")
    server = server_factory(print_film_dpi=600)
    scu = PrintScu(server)
    try:
        session_uid = scu.session()
        status, box = scu.film_box(
            session_uid, FilmSizeID="14INX17IN", RequestedResolutionID="HIGH"
        )
        assert status.Status == 0x0213
        assert (
            status.ErrorComment
            == f"14INX17IN at 1200 dpi: 342720000 pixels, limit {MAX_FILM_PIXELS}"
        )
        assert box is None
        assert _refused(caplog, 0x0213), caplog.messages
        # the same film at the standard resolution is printed
        assert scu.film_box(session_uid, FilmSizeID="14INX17IN")[0].Status == 0x0000
    finally:
        scu.assoc.release()
