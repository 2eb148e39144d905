"""Print to archive: a printed Basic Film Box composed into one image, stored as Secondary Capture.

The Print SCP (``dicom/services/print.py``) builds a ``FilmJob`` from a Film Box and its Image
Boxes when the film is printed (N-ACTION), then calls ``compose_film`` and
``film_secondary_capture`` and hands the bytes to the one ingest path.  This module only does
pixel work: it imports neither the network engine nor the web.

Geometry
    Film size, resolution, layout, the annotation band and how each image fits its cell
    (magnification, Requested Image Size, Requested Decimate/Crop Behavior) follow
    ``imaging.geometry``; an image that does not fit with FAIL is refused (0xC603).

Pixel values: P-Values
    The film is kept as P-Values (PS3.14; 255 white): on a GSDF-calibrated display the archived
    film looks like the printed one.  Stored values are taken over the full range of
    ``BitsStored`` (a 12-bit image: 0..4095 to 0..255).  MONOCHROME1 is inverted, and Polarity
    REVERSE inverts again (PS3.4 H.2.1: polarity comes before the Presentation LUT).  Then the
    Presentation LUT of the image box (else of the film box) applies:
    ``PresentationLUTSequence`` maps the values (its output bits scaled to 8) to P-Values;
    Presentation LUT Shape IDENTITY (or no Presentation LUT) means the values are P-Values;
    LIN OD means they are linear in optical density between Max Density (0) and Min Density
    (the largest value), turned into P-Values through the GSDF (``imaging.gsdf``).  A Basic
    Color Image Box (RGB, planar configuration 0 or 1) makes the whole film RGB; grayscale
    images and densities are then grey in all three channels, and Presentation LUTs do not
    apply to colour images.

Memory
    The film is uint8 from the start and is the only allocation that grows with it.  Each image
    is decoded in turn into its stored values (uint8 or uint16) with a table of the P-Value of
    every stored value; it is resampled a strip of film rows at a time (``STRIP_SAMPLES``), in
    float64 (a strip is small), so a film is the same bit for bit whatever the strip size, and
    only the part of a cropped image that shows is computed.  A film of more than
    ``MAX_FILM_PIXELS`` pixels is refused (0x0213) before it is allocated.

Densities
    ``BorderDensity`` and ``EmptyImageDensity`` are BLACK (Max Density), WHITE (Min Density) or
    hundredths of OD, clipped to ``MinDensity`` (default 20) .. ``MaxDensity`` (default 300), and
    become P-Values through the GSDF with the film box's Illumination and Reflected Ambient Light
    (defaults 2000 and 10 cd/m2).  Both default to BLACK.

Annotations
    The TextString of each Basic Annotation Box is burned into its cell of the annotation band
    (``imaging.text``: a built-in 5x7 font, 0.15 inch high), left-aligned, white on a dark border
    and black on a light one, and also recorded in the Secondary Capture's ImageComments as
    ``position: text`` lines.  ``Trim`` and ``SmoothingType`` are not applied.

Study and series identity (``print_study_identity``)
    With the ``"images"`` rule (default), the film joins the study of the images it shows when
    that is known: the print service may pass ``lookup``, which resolves an Image Box's
    ``ReferencedImageSequence`` SOP Instance UID to the stored instance's header, and image
    items that carry StudyInstanceUID and PatientID themselves count too.  When every such
    image names the same study, the film goes into that study with that patient.  Otherwise (the
    image pixel modules carry no patient, which is the usual case), and always with the
    ``"session"`` rule, the film goes into a per-session print study: one study per calling AE
    title and date, Study Instance UID
    ``generate_uid(entropy_srcs=["dicomhub print study", calling AE, YYYYMMDD])``, patient
    ``PRINT^<calling AE>`` / ID ``PRINT-<calling AE>``.  The series is one per film session:
    ``generate_uid(entropy_srcs=["dicomhub print series", study UID, calling AE, session SOP
    Instance UID or FilmSessionLabel])``.  Each stored film gets a new SOP Instance UID.
"""

from __future__ import annotations

import datetime as dt
import logging
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicomhub.errors import FilmTooLarge, InvalidAttributeValue
from dicomhub.imaging.geometry import (
    DEFAULT_FILM_SIZE,
    Cell,
    Fit,
    Placement,
    checked_placement,
    film_geometry,
    text_of,
)
from dicomhub.imaging.gsdf import (
    DEFAULT_ILLUMINATION,
    DEFAULT_REFLECTED_AMBIENT_LIGHT,
    DensityScale,
)
from dicomhub.imaging.text import CELL_HEIGHT, draw_text
from dicomhub.index.print_jobs import FilmJob

LOG = logging.getLogger("dicomhub.print")
FloatArray = NDArray[np.float64]
UInt8Array = NDArray[np.uint8]

DEFAULT_MIN_DENSITY = 20
DEFAULT_MAX_DENSITY = 300
TEXT_HEIGHT_INCHES = 0.15
IMAGE_COMMENTS_MAX = 10240
"""ImageComments is LT: at most 10240 characters."""

IdentityRule = Literal["images", "session"]


class PrintIdentity(NamedTuple):
    """Where a stored film goes: its study, its series and its patient."""

    study_uid: str
    series_uid: str
    patient: Dataset


# Densities -------------------------------------------------------------------------------


def _number(dataset: Dataset, keyword: str, default: float) -> float:
    value = dataset.get(keyword)
    return default if value in (None, "") else float(value)


def density_scale(film_box: Dataset) -> DensityScale:
    """The film box's density range and light (MinDensity, MaxDensity in hundredths of OD,
    Illumination, ReflectedAmbientLight), for P-Values 0..255."""
    min_density = _number(film_box, "MinDensity", DEFAULT_MIN_DENSITY)
    max_density = _number(film_box, "MaxDensity", DEFAULT_MAX_DENSITY)
    if max_density <= min_density:
        raise InvalidAttributeValue(
            f"MaxDensity {max_density:g} is not above MinDensity {min_density:g}",
            _attributes(film_box, "MaxDensity"),
        )
    return DensityScale(
        min_density / 100,
        max_density / 100,
        _number(film_box, "Illumination", DEFAULT_ILLUMINATION),
        _number(film_box, "ReflectedAmbientLight", DEFAULT_REFLECTED_AMBIENT_LIGHT),
    )


def _attributes(dataset: Dataset, keyword: str) -> Dataset:
    offending = Dataset()
    if keyword in dataset:
        offending[keyword] = dataset[keyword]
    return offending


def density_pixel(value: str | None, scale: DensityScale, default: str) -> int:
    """The P-Value (255 white) of a BorderDensity / EmptyImageDensity on this film."""
    text = (value or default).strip().upper()
    if text == "BLACK":
        density = scale.max_density
    elif text == "WHITE":
        density = scale.min_density
    else:
        try:
            density = int(text) / 100
        except ValueError:
            offending = Dataset()
            offending.BorderDensity = text
            raise InvalidAttributeValue(f"unsupported density {text!r}", offending) from None
    return round(float(scale.p_values(density)))


# Image pixels ----------------------------------------------------------------------------


def _image_item(image_box: Dataset | None) -> tuple[Dataset, bool] | None:
    """The image box's pixel item and whether it is colour, or None for an empty box."""
    if image_box is None:
        return None
    for keyword, colour in (
        ("BasicColorImageSequence", True),
        ("BasicGrayscaleImageSequence", False),
    ):
        sequence = image_box.get(keyword)
        if sequence and "PixelData" in sequence[0]:
            return sequence[0], colour
    return None


def image_shape(image_box: Dataset | None) -> tuple[int, int] | None:
    """(Rows, Columns) of the image an image box holds, None for an empty box."""
    found = _image_item(image_box)
    return None if found is None else (int(found[0].Rows), int(found[0].Columns))


StoredArray = NDArray[np.unsignedinteger[Any]]
"""Stored pixel values: uint8, or uint16 when BitsStored or BitsAllocated is above 8."""


def _stored_values(item: Dataset) -> StoredArray:
    """Stored values, (rows, columns) or (rows, columns, 3), unsigned, within BitsStored, as
    uint8 (8-bit images) or uint16: no wider than the pixel data itself."""
    rows, columns = int(item.Rows), int(item.Columns)
    allocated = int(item.BitsAllocated)
    stored = int(item.get("BitsStored") or allocated)
    samples = int(item.get("SamplesPerPixel") or 1)
    if allocated not in (8, 16):
        offending = Dataset()
        offending.BitsAllocated = allocated
        raise InvalidAttributeValue(f"unsupported BitsAllocated {allocated}", offending)
    if not 1 <= stored <= 16:
        offending = Dataset()
        offending.BitsStored = stored
        raise InvalidAttributeValue(f"unsupported BitsStored {stored}", offending)
    dtype = np.dtype("<u1") if allocated == 8 else np.dtype("<u2")
    count = rows * columns * samples
    data = np.frombuffer(bytes(item.PixelData), dtype=dtype)
    if data.size < count:
        offending = Dataset()
        offending.Rows = rows
        raise InvalidAttributeValue("PixelData is shorter than Rows x Columns", offending)
    work = np.uint8 if allocated == 8 and stored <= 8 else np.uint16
    values: StoredArray = np.array(data[:count], dtype=work)  # a writable copy
    np.bitwise_and(values, (1 << stored) - 1, out=values)
    if int(item.get("PixelRepresentation") or 0) == 1:
        # two's complement within BitsStored, shifted to 0 .. 2**BitsStored - 1
        np.bitwise_xor(values, 1 << (stored - 1), out=values)
    if samples == 3:
        if int(item.get("PlanarConfiguration") or 0) == 1:
            return values.reshape(3, rows, columns).transpose(1, 2, 0)
        return values.reshape(rows, columns, 3)
    return values.reshape(rows, columns)


def _presentation_lut_table(lut: Dataset | None) -> tuple[int, FloatArray] | None:
    """(first mapped value, table scaled to 0..255) of a PresentationLUTSequence, if any."""
    if lut is None or not lut.get("PresentationLUTSequence"):
        return None
    item = lut.PresentationLUTSequence[0]
    entries, first, bits = (int(value) for value in item.LUTDescriptor)
    entries = entries or 65536
    raw = item.LUTData
    if isinstance(raw, bytes):
        table = np.frombuffer(raw, dtype="<u2" if bits > 8 else "<u1").astype(np.float64)
    else:
        table = np.asarray(raw if isinstance(raw, Sequence) else [raw], dtype=np.float64)
    table = table[:entries]
    return first, table * 255.0 / ((1 << bits) - 1)


@dataclass(frozen=True)
class FilmImage:
    """An image box's image: its stored values and the P-Value of every stored value.

    The P-Values of an image are looked up in ``table`` (at most 65536 entries) as the image is
    resampled, a strip at a time, so no P-Value copy of the whole image is ever made.
    """

    values: StoredArray
    """(rows, columns) or (rows, columns, 3) stored values (``_stored_values``)."""
    table: FloatArray
    """P-Value (0..255, 255 white) of each stored value 0 .. 2**BitsStored - 1."""
    colour: bool

    def p_values(self, rows: NDArray[np.intp]) -> FloatArray:
        """The P-Values of the image rows ``rows``, in that order."""
        return np.asarray(self.table[self.values[rows]], dtype=np.float64)


def film_image(
    image_box: Dataset, presentation_lut: Dataset | None, scale: DensityScale | None = None
) -> FilmImage:
    """An image box's image with the P-Value (0..255, 255 white) of each of its stored values
    (see the module's pixel value rule; ``scale`` is the film's, for LIN OD)."""
    found = _image_item(image_box)
    if found is None:
        raise ValueError("the image box holds no image")
    item, colour = found
    values = _stored_values(item)
    stored = int(item.get("BitsStored") or item.BitsAllocated)
    largest = (1 << stored) - 1
    photometric = text_of(item, "PhotometricInterpretation", "RGB" if colour else "MONOCHROME2")
    inverted = photometric == "MONOCHROME1"
    if text_of(image_box, "Polarity", "NORMAL") == "REVERSE":
        inverted = not inverted
    inputs = np.arange(largest + 1, dtype=np.int64)
    if inverted:
        inputs = largest - inputs
    lut_table = None if colour else _presentation_lut_table(presentation_lut)
    if lut_table is not None:
        first, lut = lut_table
        return FilmImage(values, lut[np.clip(inputs - first, 0, lut.size - 1)], colour)
    table = inputs * (255.0 / largest)
    shape = text_of(presentation_lut, "PresentationLUTShape", "IDENTITY")
    if not colour and shape == "LIN OD":
        table = (scale or DensityScale(0.2, 3.0)).linear_od(table)
    return FilmImage(values, np.asarray(table, dtype=np.float64), colour)


# Resampling ------------------------------------------------------------------------------

STRIP_SAMPLES = 1 << 18
"""Float samples (2 MB) a strip of a resampled image may hold: an image is resampled a strip
of film rows at a time, so the working memory does not grow with the film or the image."""


def _cubic(distance: FloatArray) -> FloatArray:
    """Keys' cubic convolution kernel with a = -0.5."""
    a = -0.5
    x = np.abs(distance)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


@dataclass(frozen=True)
class Taps:
    """How some output samples of one axis are computed from the input samples."""

    indexes: NDArray[np.intp]
    """(outputs, taps): the input samples each output sample reads."""
    weights: FloatArray | None
    """(outputs, taps) normalised weights; None: one tap, copied (REPLICATE, same size)."""


def axis_taps(length: int, size: int, start: int, count: int, method: str) -> Taps:
    """The taps of output samples ``start .. start + count - 1`` when ``length`` input samples
    are resampled to ``size`` with REPLICATE (NONE), BILINEAR or CUBIC (pixel centres
    aligned).  Only the samples asked for are computed: a cropped image costs its visible part.
    """
    outputs = np.arange(start, start + count)
    if length == size:
        return Taps(outputs.astype(np.intp)[:, None], None)
    centres = (outputs + 0.5) * (length / size) - 0.5
    if method in ("REPLICATE", "NONE"):
        index = np.clip(np.floor(centres + 0.5).astype(np.intp), 0, length - 1)
        return Taps(index[:, None], None)
    base = np.floor(centres).astype(np.intp)
    if method == "CUBIC":
        offsets = np.arange(-1, 3)
        weights = _cubic(centres[:, None] - (base[:, None] + offsets))
    else:
        offsets = np.arange(0, 2)
        fraction = centres - base
        weights = np.stack([1.0 - fraction, fraction], axis=1)
    indexes = np.clip(base[:, None] + offsets, 0, length - 1)
    return Taps(indexes, weights / weights.sum(axis=1, keepdims=True))


def _resample_strip(image: FilmImage, down: Taps, across: Taps) -> FloatArray:
    """The P-Values of the output rows of ``down`` and output columns of ``across``, clipped
    to 0..255: rows first, then columns, as a separable filter."""
    if down.weights is None:
        rows = image.p_values(down.indexes[:, 0])
    else:
        rows = np.zeros((down.indexes.shape[0], *image.values.shape[1:]), dtype=np.float64)
        extra = (slice(None),) + (None,) * (image.values.ndim - 1)
        for tap in range(down.indexes.shape[1]):
            rows += down.weights[:, tap][extra] * image.p_values(down.indexes[:, tap])
    if across.weights is None:
        strip = rows[:, across.indexes[:, 0]]
    else:
        strip = np.zeros((rows.shape[0], across.indexes.shape[0], *rows.shape[2:]))
        extra = (None, slice(None)) + (None,) * (rows.ndim - 2)
        for tap in range(across.indexes.shape[1]):
            strip += across.weights[:, tap][extra] * rows[:, across.indexes[:, tap]]
    return np.asarray(np.clip(strip, 0.0, 255.0), dtype=np.float64)


def _place(film: UInt8Array, cell: Cell, image: FilmImage, placement: Placement) -> None:
    """Put ``image``, scaled to its placement, centred into ``cell`` of ``film`` (cropped to
    it).  Only the visible part is resampled, a strip of rows at a time, straight into the
    uint8 film."""
    rows, columns = placement.rows, placement.columns
    top = (rows - cell.height) // 2 if rows > cell.height else 0
    left = (columns - cell.width) // 2 if columns > cell.width else 0
    visible_rows, visible_columns = min(rows, cell.height), min(columns, cell.width)
    y = cell.y + (cell.height - visible_rows) // 2
    x = cell.x + (cell.width - visible_columns) // 2
    source_rows, source_columns = image.values.shape[:2]
    samples = 3 if image.colour else 1
    across = axis_taps(source_columns, columns, left, visible_columns, placement.method)
    strip_rows = max(1, STRIP_SAMPLES // (max(source_columns, visible_columns) * samples))
    for start in range(0, visible_rows, strip_rows):
        count = min(strip_rows, visible_rows - start)
        down = axis_taps(source_rows, rows, top + start, count, placement.method)
        pixels = np.rint(_resample_strip(image, down, across)).astype(np.uint8)
        target = film[y + start : y + start + count, x : x + visible_columns]
        target[...] = pixels[:, :, None] if target.ndim > pixels.ndim else pixels


# Composition -----------------------------------------------------------------------------


def film_fits(job: FilmJob, *, dpi: int = 100) -> list[Fit | None]:
    """How each image box's image fits its cell (None: an empty box), in position order;
    ``InvalidAttributeValue`` when the film cannot be laid out or has too many image boxes,
    ``FilmTooLarge`` when it has too many pixels, ``ImageTooLarge`` for an image larger than
    its box with FAIL behaviour."""
    geometry = film_geometry(job.film_box, dpi)
    if len(job.image_boxes) > len(geometry.cells):
        raise InvalidAttributeValue(
            f"{len(job.image_boxes)} image boxes for {len(geometry.cells)} positions",
            _attributes(job.film_box, "ImageDisplayFormat"),
        )
    fits: list[Fit | None] = []
    for position, (cell, box) in enumerate(zip(geometry.cells, job.image_boxes, strict=False), 1):
        shape = image_shape(box)
        fits.append(
            None
            if box is None or shape is None
            else checked_placement(position, cell, *shape, box, job.film_box, geometry.dpi).fit
        )
    return fits


def compose_film(job: FilmJob, *, dpi: int = 100) -> NDArray[np.uint8]:
    """The film as P-Values: (rows, cols) uint8 grayscale or (rows, cols, 3) uint8 RGB;
    ``ImageTooLarge`` (0xC603) for an image larger than its box with FAIL behaviour,
    ``FilmTooLarge`` (0x0213, logged) for a film of more than ``MAX_FILM_PIXELS`` pixels.

    The film is the only allocation that grows with the film: it is uint8 from the start, and
    each image is decoded (as uint8/uint16 stored values), resampled and placed in turn."""
    film_box = job.film_box
    try:
        geometry = film_geometry(film_box, dpi)
    except FilmTooLarge as exc:
        LOG.warning("film box %s not composed: %s", film_box.get("SOPInstanceUID", ""), exc)
        raise
    if len(job.image_boxes) > len(geometry.cells):
        raise InvalidAttributeValue(
            f"{len(job.image_boxes)} image boxes for {len(geometry.cells)} positions",
            _attributes(film_box, "ImageDisplayFormat"),
        )
    scale = density_scale(film_box)
    border = density_pixel(film_box.get("BorderDensity"), scale, "BLACK")
    empty = density_pixel(film_box.get("EmptyImageDensity"), scale, "BLACK")
    items = [_image_item(box) for box in job.image_boxes]
    colour = any(found is not None and found[1] for found in items)
    shape: tuple[int, ...] = (
        (geometry.rows, geometry.columns, 3) if colour else (geometry.rows, geometry.columns)
    )
    film = np.full(shape, border, dtype=np.uint8)
    for index, cell in enumerate(geometry.cells):
        found = items[index] if index < len(items) else None
        box = job.image_boxes[index] if index < len(job.image_boxes) else None
        if found is None or box is None:
            film[cell.y : cell.y + cell.height, cell.x : cell.x + cell.width] = empty
            continue
        item = found[0]
        placement = checked_placement(
            index + 1, cell, int(item.Rows), int(item.Columns), box, film_box, geometry.dpi
        )
        lut = job.image_luts[index] if index < len(job.image_luts) else None
        _place(film, cell, film_image(box, lut or job.presentation_lut, scale), placement)
    _burn_annotations(film, job, geometry.annotations, geometry.dpi, border)
    return film


def _burn_annotations(
    film: UInt8Array, job: FilmJob, cells: list[Cell], dpi: int, border: int
) -> None:
    """Draw each annotation box's text into its cell of the annotation band."""
    ink = 255 if border < 128 else 0
    scale = max(1, round(TEXT_HEIGHT_INCHES * dpi / CELL_HEIGHT))
    for position, text in _annotations(job):
        if not text or not 1 <= position <= len(cells):
            continue
        cell = cells[position - 1]
        draw_text(
            film,
            text,
            x=cell.x,
            y=cell.y,
            width=cell.width,
            height=cell.height,
            value=ink,
            scale=scale,
        )


def annotation_comments(job: FilmJob) -> str:
    """The annotations as ``position: text`` lines (the ImageComments of the stored film)."""
    lines = [f"{position}: {text}" for position, text in sorted(_annotations(job)) if text]
    return "\n".join(lines)[:IMAGE_COMMENTS_MAX]


# Study and series identity ---------------------------------------------------------------

_PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
)
_STUDY_KEYWORDS = ("StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID")


def _image_sources(
    job: FilmJob, lookup: Callable[[str], Dataset | None] | None
) -> list[Dataset] | None:
    """For each printed image, a data set naming its study and patient; None when one is unknown."""
    sources = []
    for box in job.image_boxes:
        found = _image_item(box)
        if box is None or found is None:
            continue
        item = found[0]
        source: Dataset | None = None
        if "StudyInstanceUID" in item and "PatientID" in item:
            source = item
        elif lookup is not None and box.get("ReferencedImageSequence"):
            uid = box.ReferencedImageSequence[0].get("ReferencedSOPInstanceUID")
            source = lookup(str(uid)) if uid else None
        if source is None or not source.get("StudyInstanceUID"):
            return None
        sources.append(source)
    return sources or None


def print_study_identity(
    job: FilmJob,
    rule: IdentityRule = "images",
    *,
    lookup: Callable[[str], Dataset | None] | None = None,
    today: dt.date | None = None,
) -> PrintIdentity:
    """The study, series and patient a film is stored under (see the module's identity rule)."""
    ae = job.calling_ae_title.strip() or "UNKNOWN"
    date = (today or dt.date.today()).strftime("%Y%m%d")
    sources = _image_sources(job, lookup) if rule == "images" else None
    patient = Dataset()
    studies = {str(source.StudyInstanceUID) for source in sources or []}
    if sources is not None and len(studies) == 1:
        study_uid = studies.pop()
        for keyword in (*_PATIENT_KEYWORDS, *_STUDY_KEYWORDS):
            if keyword in sources[0]:
                setattr(patient, keyword, sources[0].get(keyword))
    else:
        study_uid = str(generate_uid(entropy_srcs=["dicomhub print study", ae, date]))
        patient.PatientName = f"PRINT^{ae}"
        patient.PatientID = f"PRINT-{ae}"[:64]
        patient.StudyDate = date
        patient.StudyTime = "000000"  # one print study per calling AE and day
        patient.StudyID = "PRINT"
        patient.StudyDescription = f"Films printed by {ae}"[:64]
    session_key = str(
        job.film_session.get("SOPInstanceUID") or job.film_session.get("FilmSessionLabel") or ""
    )
    series_uid = str(
        generate_uid(entropy_srcs=["dicomhub print series", study_uid, ae, session_key])
    )
    return PrintIdentity(study_uid, series_uid, patient)


# Secondary Capture -----------------------------------------------------------------------


def film_secondary_capture(
    job: FilmJob,
    pixels: NDArray[np.uint8],
    *,
    study_uid: str,
    series_uid: str,
    patient: Dataset | None,
) -> bytes:
    """A Part 10 Secondary Capture Image (1.2.840.10008.5.1.4.1.1.7), Explicit VR LE."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError("pixels must be (rows, cols) or (rows, cols, 3) uint8")
    colour = pixels.ndim == 3
    if colour and pixels.shape[2] != 3:
        raise ValueError("colour pixels must have three samples")
    now = dt.datetime.now()
    sop_instance_uid = generate_uid()

    ds = Dataset()
    # Patient and General Study (type 2 attributes present, empty when unknown)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    for keyword in (
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
        setattr(ds, keyword, "")
    if patient is not None:
        for element in patient:
            ds[element.tag] = element
    ds.StudyInstanceUID = study_uid
    # General Series
    ds.Modality = "OT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 9000
    ds.SeriesDescription = "Printed films"
    ds.Laterality = ""  # Type 2C; dciodvfy cannot tell the body part is unpaired
    # General Equipment and SC Equipment
    ds.Manufacturer = "dicomhub"
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = "dicomhub"
    ds.SecondaryCaptureDeviceManufacturerModelName = "print to archive"
    # General Image and SC Image
    ds.InstanceNumber = _instance_number(job)
    ds.PatientOrientation = ""
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = _derivation(job)
    comments = annotation_comments(job)
    if comments:
        ds.ImageComments = comments
    # Image Pixel
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    data = np.ascontiguousarray(pixels).tobytes()
    ds.PixelData = data + b"\0" if len(data) % 2 else data
    ds["PixelData"].VR = "OB"
    # SOP Common
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = ds.ContentDate
    ds.InstanceCreationTime = ds.ContentTime

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _instance_number(job: FilmJob) -> int:
    uid = str(job.film_box.get("SOPInstanceUID") or "")
    last = uid.rsplit(".", 1)[-1]
    return int(last) % 100000 + 1 if last.isdigit() else 1


def _derivation(job: FilmJob) -> str:
    box = job.film_box
    parts = [
        f"Basic Film Box {box.get('ImageDisplayFormat', '')}",
        str(box.get("FilmSizeID") or DEFAULT_FILM_SIZE),
        str(box.get("FilmOrientation") or "PORTRAIT"),
        f"printed by {job.calling_ae_title.strip() or 'UNKNOWN'}",
    ]
    copies = job.film_session.get("NumberOfCopies")
    if copies:
        parts.append(f"{copies} copies")
    return ", ".join(parts)[:1024]


# PNG -------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def film_png(pixels: NDArray[np.uint8]) -> bytes:
    """The film as an 8-bit PNG (grey or RGB), written with zlib (no imaging library)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError("pixels must be (rows, cols) or (rows, cols, 3) uint8")
    rows, columns = int(pixels.shape[0]), int(pixels.shape[1])
    colour_type = 2 if pixels.ndim == 3 else 0
    flat = np.ascontiguousarray(pixels).reshape(rows, -1)
    scanlines = np.hstack([np.zeros((rows, 1), dtype=np.uint8), flat])  # filter type 0
    header = struct.pack(">IIBBBBB", columns, rows, 8, colour_type, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)),
            _chunk(b"IEND", b""),
        )
    )


def _annotations(job: FilmJob) -> list[tuple[int, str]]:
    """(AnnotationPosition, TextString) of the film box's annotation boxes."""
    return [
        (int(box.get("AnnotationPosition") or 0), str(box.get("TextString") or ""))
        for box in job.annotations
    ]
