"""Print to archive: a printed Basic Film Box composed into one image, stored as Secondary Capture.

The Print SCP (``dicom/services/print.py``) builds a ``FilmJob`` from a Film Box and its Image
Boxes when the film is printed (N-ACTION), then calls ``compose_film`` and
``film_secondary_capture`` and hands the bytes to the one ingest path.  This module only does
pixel work: it imports neither the network engine nor the web.

Film resolution rule
    The film is ``FilmSizeID`` (PS3.3 C.13.8: 8INX10IN, 8_5INX11IN, 10INX12IN, 10INX14IN,
    11INX14IN, 11INX17IN, 14INX14IN, 14INX17IN, 24CMX24CM, 24CMX30CM, A4, A3; default 8INX10IN)
    at ``dpi`` pixels per inch, ``round(size_in_inches * dpi)`` pixels each way.  PORTRAIT
    (the default) puts the shorter side across, LANDSCAPE the longer one.
    ``RequestedResolutionID`` HIGH doubles ``dpi``.

Layout
    ``ImageDisplayFormat`` ``STANDARD\\c,r`` is a grid of c columns and r rows, ``ROW\\n1,n2,..``
    rows of equal height with n_i equal cells each, ``COL\\n1,n2,..`` columns of equal width with
    n_i equal cells each.  Image positions run left to right, then top to bottom (for COL: top
    to bottom, then left to right).  Cells are separated from each other and from the film edge
    by a gap of 0.05 inch (at least one pixel) in ``BorderDensity``; SLIDE, SUPERSLIDE and
    CUSTOM are refused.  An image is scaled to fit its cell keeping its aspect ratio (never
    beyond ``RequestedImageSize``, a width in mm) and centred; the rest of the cell is
    ``BorderDensity``.  ``MagnificationType`` (Image Box, else Film Box, else BILINEAR):
    REPLICATE nearest neighbour, BILINEAR bilinear, CUBIC bicubic (Keys, a = -0.5), NONE no
    scaling (centred, cropped to the cell).  A cell without an image is ``EmptyImageDensity``.

Pixel values
    Stored values are taken over the full range of ``BitsStored`` (a 12-bit image: 0..4095 to
    0..255), or through the ``PresentationLUTSequence`` when one is given (its output bits
    scaled to 8).  PresentationLUTShape IDENTITY and LIN OD both pass the 8-bit values through:
    the film pixels are the P-values.  MONOCHROME1 is inverted, and Polarity REVERSE inverts
    again.  A Basic Color Image Box (RGB, planar configuration 0 or 1) makes the whole film RGB;
    grayscale images and densities are then grey in all three channels.

Density mapping
    ``BorderDensity`` and ``EmptyImageDensity`` are BLACK, WHITE or a density in hundredths of
    OD.  They are mapped linearly in OD between ``MinDensity`` (default 20, i.e. 0.20 OD: white,
    pixel 255) and ``MaxDensity`` (default 300: black, pixel 0):
    ``pixel = round(255 * (MaxDensity - density) / (MaxDensity - MinDensity))``, clipped to
    0..255; BLACK is MaxDensity, WHITE is MinDensity.  Both default to BLACK.

Annotations
    No font renderer is installed (no Pillow), so Basic Annotation Box text is not burned in:
    it is recorded in the Secondary Capture's ImageComments as ``position: text`` lines.
    ``Trim`` and ``SmoothingType`` are not applied.

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
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicomhub.errors import InvalidAttributeValue
from dicomhub.index.print_jobs import FilmJob

FloatArray = NDArray[np.float64]
UInt8Array = NDArray[np.uint8]

MM_PER_INCH = 25.4
FILM_SIZES_MM: dict[str, tuple[float, float]] = {
    "8INX10IN": (8 * MM_PER_INCH, 10 * MM_PER_INCH),
    "8_5INX11IN": (8.5 * MM_PER_INCH, 11 * MM_PER_INCH),
    "10INX12IN": (10 * MM_PER_INCH, 12 * MM_PER_INCH),
    "10INX14IN": (10 * MM_PER_INCH, 14 * MM_PER_INCH),
    "11INX14IN": (11 * MM_PER_INCH, 14 * MM_PER_INCH),
    "11INX17IN": (11 * MM_PER_INCH, 17 * MM_PER_INCH),
    "14INX14IN": (14 * MM_PER_INCH, 14 * MM_PER_INCH),
    "14INX17IN": (14 * MM_PER_INCH, 17 * MM_PER_INCH),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}
"""Film sizes (PS3.3 C.13.8 FilmSizeID), shorter side first, in mm."""
DEFAULT_FILM_SIZE = "8INX10IN"
DEFAULT_MIN_DENSITY = 20
DEFAULT_MAX_DENSITY = 300
DEFAULT_MAGNIFICATION = "BILINEAR"
GAP_INCHES = 0.05
MIN_DPI = 10
MAX_DPI = 600
IMAGE_COMMENTS_MAX = 10240
"""ImageComments is LT: at most 10240 characters."""

IdentityRule = Literal["images", "session"]


@dataclass(frozen=True)
class Cell:
    """One image position on the film, in pixels."""

    x: int
    y: int
    width: int
    height: int


class PrintIdentity(NamedTuple):
    """Where a stored film goes: its study, its series and its patient."""

    study_uid: str
    series_uid: str
    patient: Dataset


def _invalid(message: str, keyword: str, value: object) -> InvalidAttributeValue:
    attributes = Dataset()
    setattr(attributes, keyword, value)
    return InvalidAttributeValue(message, attributes)


def _text(dataset: Dataset | None, keyword: str, default: str = "") -> str:
    if dataset is None:
        return default
    value = dataset.get(keyword)
    if value is None or value == "":
        return default
    return str(value).strip().upper()


# Film geometry ---------------------------------------------------------------------------


def film_dpi(film_box: Dataset, dpi: int) -> int:
    """The resolution the film is composed at: ``dpi``, doubled for RequestedResolutionID HIGH."""
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be between {MIN_DPI} and {MAX_DPI}, not {dpi}")
    return dpi * 2 if _text(film_box, "RequestedResolutionID") == "HIGH" else dpi


def film_size(film_box: Dataset, dpi: int) -> tuple[int, int]:
    """The film's (rows, columns) in pixels at ``dpi`` (see the module's resolution rule)."""
    size_id = _text(film_box, "FilmSizeID", DEFAULT_FILM_SIZE)
    if size_id not in FILM_SIZES_MM:
        raise _invalid(f"unsupported FilmSizeID {size_id!r}", "FilmSizeID", size_id)
    short_mm, long_mm = FILM_SIZES_MM[size_id]
    short_px = round(short_mm / MM_PER_INCH * dpi)
    long_px = round(long_mm / MM_PER_INCH * dpi)
    orientation = _text(film_box, "FilmOrientation", "PORTRAIT")
    if orientation == "PORTRAIT":
        return long_px, short_px
    if orientation == "LANDSCAPE":
        return short_px, long_px
    raise _invalid(f"unsupported FilmOrientation {orientation!r}", "FilmOrientation", orientation)


def _split(start: int, length: int, parts: int, gap: int) -> list[tuple[int, int]]:
    """``parts`` spans (start, size) of equal size within ``length``, ``gap`` around each."""
    usable = length - gap * (parts + 1)
    if usable < parts:
        raise ValueError("the film is too small for this display format")
    spans = []
    for index in range(parts):
        begin = start + gap * (index + 1) + usable * index // parts
        end = start + gap * (index + 1) + usable * (index + 1) // parts
        spans.append((begin, end - begin))
    return spans


def parse_display_format(display_format: str) -> tuple[str, list[int]]:
    """``STANDARD\\c,r`` -> ("STANDARD", [c, r]); ``ROW\\2,1`` -> ("ROW", [2, 1]); ``COL`` alike."""
    kind, _, numbers = display_format.strip().partition("\\")
    kind = kind.strip().upper()
    try:
        counts = [int(part) for part in numbers.split(",")]
    except ValueError:
        counts = []
    valid = (kind == "STANDARD" and len(counts) == 2) or (kind in {"ROW", "COL"} and counts)
    if not valid or any(count < 1 or count > 100 for count in counts):
        raise _invalid(
            f"unsupported ImageDisplayFormat {display_format!r}",
            "ImageDisplayFormat",
            display_format,
        )
    return kind, counts


def film_layout(display_format: str, rows: int, columns: int, gap: int) -> list[Cell]:
    """The cells of ``display_format`` on a film of ``rows`` x ``columns``, in position order."""
    kind, counts = parse_display_format(display_format)
    if kind == "STANDARD":
        across, down = counts
        return [
            Cell(x, y, width, height)
            for y, height in _split(0, rows, down, gap)
            for x, width in _split(0, columns, across, gap)
        ]
    cells = []
    if kind == "ROW":
        for (y, height), count in zip(_split(0, rows, len(counts), gap), counts, strict=True):
            cells += [Cell(x, y, width, height) for x, width in _split(0, columns, count, gap)]
    else:
        for (x, width), count in zip(_split(0, columns, len(counts), gap), counts, strict=True):
            cells += [Cell(x, y, width, height) for y, height in _split(0, rows, count, gap)]
    return cells


# Densities -------------------------------------------------------------------------------


def density_pixel(value: str | None, min_density: int, max_density: int, default: str) -> int:
    """The pixel value (255 white) of a BorderDensity / EmptyImageDensity, linear in OD."""
    text = (value or default).strip().upper()
    if text == "BLACK":
        density = max_density
    elif text == "WHITE":
        density = min_density
    else:
        try:
            density = int(text)
        except ValueError:
            raise _invalid(f"unsupported density {text!r}", "BorderDensity", text) from None
    if max_density <= min_density:
        return 0 if density >= max_density else 255
    pixel = round(255 * (max_density - density) / (max_density - min_density))
    return min(255, max(0, pixel))


def _density_bounds(film_box: Dataset) -> tuple[int, int]:
    min_density = film_box.get("MinDensity")
    max_density = film_box.get("MaxDensity")
    return (
        DEFAULT_MIN_DENSITY if min_density in (None, "") else int(min_density),
        DEFAULT_MAX_DENSITY if max_density in (None, "") else int(max_density),
    )


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


def _stored_values(item: Dataset) -> NDArray[np.int64]:
    """Stored values, (rows, columns) or (rows, columns, 3), unsigned, within BitsStored."""
    rows, columns = int(item.Rows), int(item.Columns)
    allocated = int(item.BitsAllocated)
    stored = int(item.get("BitsStored") or allocated)
    samples = int(item.get("SamplesPerPixel") or 1)
    if allocated not in (8, 16):
        raise _invalid(f"unsupported BitsAllocated {allocated}", "BitsAllocated", allocated)
    dtype = np.dtype("<u1") if allocated == 8 else np.dtype("<u2")
    count = rows * columns * samples
    data = np.frombuffer(bytes(item.PixelData), dtype=dtype)
    if data.size < count:
        raise _invalid("PixelData is shorter than Rows x Columns", "Rows", rows)
    values = data[:count].astype(np.int64) & ((1 << stored) - 1)
    if int(item.get("PixelRepresentation") or 0) == 1:
        # two's complement within BitsStored, shifted to 0 .. 2**BitsStored - 1
        values = values ^ (1 << (stored - 1))
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


def image_pixels(image_box: Dataset, presentation_lut: Dataset | None) -> tuple[FloatArray, bool]:
    """An image box's pixels as 0..255 values (255 white), and whether they are colour."""
    found = _image_item(image_box)
    if found is None:
        raise ValueError("the image box holds no image")
    item, colour = found
    values = _stored_values(item)
    stored = int(item.get("BitsStored") or item.BitsAllocated)
    table = None if colour else _presentation_lut_table(presentation_lut)
    if table is not None:
        first, lut = table
        pixels = lut[np.clip(values - first, 0, lut.size - 1)]
    else:
        pixels = (values * (255.0 / ((1 << stored) - 1))).astype(np.float64)
    photometric = _text(item, "PhotometricInterpretation", "RGB" if colour else "MONOCHROME2")
    inverted = photometric == "MONOCHROME1"
    if _text(image_box, "Polarity", "NORMAL") == "REVERSE":
        inverted = not inverted
    if inverted:
        pixels = 255.0 - pixels
    return pixels, colour


# Resampling ------------------------------------------------------------------------------


def _cubic(distance: FloatArray) -> FloatArray:
    """Keys' cubic convolution kernel with a = -0.5."""
    a = -0.5
    x = np.abs(distance)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _resample_axis(image: FloatArray, size: int, axis: int, method: str) -> FloatArray:
    """``image`` resampled to ``size`` samples along ``axis`` (pixel centres aligned)."""
    length = image.shape[axis]
    if length == size:
        return image
    centres = (np.arange(size) + 0.5) * (length / size) - 0.5
    if method == "REPLICATE":
        index = np.clip(np.floor(centres + 0.5).astype(np.int64), 0, length - 1)
        return np.asarray(np.take(image, index, axis=axis), dtype=np.float64)
    base = np.floor(centres).astype(np.int64)
    if method == "CUBIC":
        offsets = np.arange(-1, 3)
        weights = _cubic(centres[:, None] - (base[:, None] + offsets))
    else:
        offsets = np.arange(0, 2)
        fraction = centres - base
        weights = np.stack([1.0 - fraction, fraction], axis=1)
    indexes = np.clip(base[:, None] + offsets, 0, length - 1)
    weights = weights / weights.sum(axis=1, keepdims=True)
    moved = np.moveaxis(image, axis, 0)
    result = np.zeros((size, *moved.shape[1:]), dtype=np.float64)
    extra = (slice(None),) + (None,) * (moved.ndim - 1)
    for tap in range(offsets.size):
        result += weights[:, tap][extra] * moved[indexes[:, tap]]
    return np.moveaxis(result, 0, axis)


def resample(image: FloatArray, rows: int, columns: int, method: str) -> FloatArray:
    """``image`` scaled to ``rows`` x ``columns`` with REPLICATE, BILINEAR or CUBIC."""
    scaled = _resample_axis(image, rows, 0, method)
    return np.clip(_resample_axis(scaled, columns, 1, method), 0.0, 255.0)


def _magnification(image_box: Dataset, film_box: Dataset) -> str:
    method = _text(image_box, "MagnificationType") or _text(
        film_box, "MagnificationType", DEFAULT_MAGNIFICATION
    )
    if method not in {"REPLICATE", "BILINEAR", "CUBIC", "NONE"}:
        raise _invalid(f"unsupported MagnificationType {method!r}", "MagnificationType", method)
    return method


def _place(
    film: FloatArray, cell: Cell, image: FloatArray, image_box: Dataset, film_box: Dataset, dpi: int
) -> None:
    """Scale ``image`` into ``cell`` of ``film`` (centred; cropped for NONE)."""
    method = _magnification(image_box, film_box)
    rows, columns = image.shape[:2]
    if method != "NONE":
        scale = min(cell.width / columns, cell.height / rows)
        requested = image_box.get("RequestedImageSize")
        if requested:
            scale = min(scale, float(requested) / MM_PER_INCH * dpi / columns)
        out_rows = max(1, min(cell.height, round(rows * scale)))
        out_columns = max(1, min(cell.width, round(columns * scale)))
        image = resample(image, out_rows, out_columns, method)
        rows, columns = out_rows, out_columns
    # centre, cropping the image where it is larger than the cell
    top = (rows - cell.height) // 2 if rows > cell.height else 0
    left = (columns - cell.width) // 2 if columns > cell.width else 0
    image = image[top : top + cell.height, left : left + cell.width]
    rows, columns = image.shape[:2]
    y = cell.y + (cell.height - rows) // 2
    x = cell.x + (cell.width - columns) // 2
    film[y : y + rows, x : x + columns] = image


# Composition -----------------------------------------------------------------------------


def compose_film(job: FilmJob, *, dpi: int = 100) -> NDArray[np.uint8]:
    """The film as pixels: (rows, cols) uint8 grayscale or (rows, cols, 3) uint8 RGB."""
    film_box = job.film_box
    dpi = film_dpi(film_box, dpi)
    rows, columns = film_size(film_box, dpi)
    gap = max(1, round(GAP_INCHES * dpi))
    cells = film_layout(str(film_box.get("ImageDisplayFormat") or ""), rows, columns, gap)
    if len(job.image_boxes) > len(cells):
        raise _invalid(
            f"{len(job.image_boxes)} image boxes for {len(cells)} positions",
            "ImageDisplayFormat",
            film_box.get("ImageDisplayFormat"),
        )
    min_density, max_density = _density_bounds(film_box)
    border = density_pixel(film_box.get("BorderDensity"), min_density, max_density, "BLACK")
    empty = density_pixel(film_box.get("EmptyImageDensity"), min_density, max_density, "BLACK")
    images = [
        image_pixels(box, job.presentation_lut) if box is not None and _image_item(box) else None
        for box in job.image_boxes
    ]
    colour = any(image is not None and image[1] for image in images)
    shape: tuple[int, ...] = (rows, columns, 3) if colour else (rows, columns)
    film = np.full(shape, float(border))
    for index, cell in enumerate(cells):
        image = images[index] if index < len(images) else None
        box = job.image_boxes[index] if index < len(job.image_boxes) else None
        if image is None or box is None:
            film[cell.y : cell.y + cell.height, cell.x : cell.x + cell.width] = empty
            continue
        pixels, is_colour = image
        if colour and not is_colour:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        _place(film, cell, pixels, box, film_box, dpi)
    return np.asarray(np.clip(np.rint(film), 0, 255), dtype=np.uint8)


def annotation_comments(job: FilmJob) -> str:
    """The annotations as ``position: text`` lines (they are not burned into the film)."""
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


__all__ = [
    "FILM_SIZES_MM",
    "Cell",
    "FilmJob",
    "PrintIdentity",
    "compose_film",
    "density_pixel",
    "film_layout",
    "film_png",
    "film_secondary_capture",
    "film_size",
    "print_study_identity",
]


def _annotations(job: FilmJob) -> list[tuple[int, str]]:
    """(AnnotationPosition, TextString) of the film box's annotation boxes."""
    return [
        (int(box.get("AnnotationPosition") or 0), str(box.get("TextString") or ""))
        for box in job.annotations
    ]
