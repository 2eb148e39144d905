"""Where things go on a printed film: its size in pixels, its cells and how each image fits.

The Print SCP uses this to refuse what cannot be printed (a display format with more image
boxes than the film holds, an image larger than its box with Requested Decimate/Crop Behavior
FAIL) and print-to-archive uses it to compose the film, so both agree.

Film resolution rule
    The film is ``FilmSizeID`` (PS3.3 C.13.8: 8INX10IN, 8_5INX11IN, 10INX12IN, 10INX14IN,
    11INX14IN, 11INX17IN, 14INX14IN, 14INX17IN, 24CMX24CM, 24CMX30CM, A4, A3; default 8INX10IN)
    at ``dpi`` pixels per inch, ``round(size_in_inches * dpi)`` pixels each way.  PORTRAIT
    (the default) puts the shorter side across, LANDSCAPE the longer one.
    ``RequestedResolutionID`` HIGH doubles ``dpi``.  A film of more than ``MAX_FILM_PIXELS``
    pixels is refused (``FilmTooLarge``, 0x0213) before anything is allocated for it.

Layout
    ``ImageDisplayFormat`` ``STANDARD\\c,r`` is a grid of c columns and r rows, ``ROW\\n1,n2,..``
    rows of equal height with n_i equal cells each, ``COL\\n1,n2,..`` columns of equal width with
    n_i equal cells each.  Image positions run left to right, then top to bottom (for COL: top
    to bottom, then left to right).  Cells are separated from each other and from the film edge
    by a gap of 0.05 inch (at least one pixel).  A cell must be at least ``MIN_CELL_INCHES``
    each way: a format with more image boxes than that is refused.  SLIDE, SUPERSLIDE and
    CUSTOM are refused.  A film box with an ``AnnotationDisplayFormatID`` has a band of 0.3 inch
    at the bottom of the film for its annotation boxes, side by side in position order; the
    cells share the rest.

Image size (``image_placement``)
    An image is scaled to fit its cell keeping its aspect ratio and centred.  Its size is fixed
    instead by ``RequestedImageSize`` (a width in mm) or by ``MagnificationType`` NONE (one
    image pixel per film pixel).  When that fixed size is larger than the cell,
    ``RequestedDecimateCropBehavior`` decides: DECIMATE scales it down to fit (Warning
    0xB60A), CROP keeps its size and prints its centre (0xB609), FAIL refuses it (0xC603);
    without it dicomhub scales an image of RequestedImageSize down to fit (0xB604) and crops one
    of MagnificationType NONE (0xB609).  ``MagnificationType`` (Image Box, else Film Box, else
    BILINEAR) is the resampling: REPLICATE, BILINEAR, CUBIC; NONE decimates with REPLICATE.
    ``checked_placement`` is the one place that refuses an image larger than its box.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydicom.dataset import Dataset

from dicomhub.errors import FilmTooLarge, ImageTooLarge, InvalidAttributeValue

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
DEFAULT_MAGNIFICATION = "BILINEAR"
MAGNIFICATION_TYPES = ("REPLICATE", "BILINEAR", "CUBIC", "NONE")
GAP_INCHES = 0.05
MIN_CELL_INCHES = 0.25
ANNOTATION_BAND_INCHES = 0.3
ANNOTATION_BOXES = 1
"""Annotation boxes of a film box with an Annotation Display Format ID."""
MIN_DPI = 10
MAX_DPI = 600
"""The highest resolution a film is composed at before RequestedResolutionID HIGH doubles it
(the upper bound of ``print_film_dpi``)."""
MAX_FILM_PIXELS = 8400 * 10200
"""The most pixels a composed film may have: the largest standard film, 14INX17IN, at the
highest supported resolution, ``MAX_DPI`` (8400 x 10200 pixels: 86 MB grayscale, 257 MB RGB).
Only RequestedResolutionID HIGH with ``print_film_dpi`` above 300 reaches beyond it; such a
film is refused (``FilmTooLarge``) rather than allocated."""


@dataclass(frozen=True)
class Cell:
    """One image (or annotation) position on the film, in pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class FilmGeometry:
    """A film box's film: its size at its resolution, its image cells and annotation cells."""

    dpi: int
    rows: int
    columns: int
    cells: list[Cell]
    annotations: list[Cell]


class Fit(StrEnum):
    """How an image was fitted to its cell, with the status PS3.4 H.4.2.2.4 / H.4.3 gives it."""

    FITS = "fits"
    DEMAGNIFIED = "demagnified"
    CROPPED = "cropped"
    DECIMATED = "decimated"
    TOO_LARGE = "too large"

    @property
    def status(self) -> int:
        """The DIMSE status: 0x0000, Warning 0xB604 / 0xB609 / 0xB60A, Failure 0xC603."""
        return {
            Fit.FITS: 0x0000,
            Fit.DEMAGNIFIED: 0xB604,
            Fit.CROPPED: 0xB609,
            Fit.DECIMATED: 0xB60A,
            Fit.TOO_LARGE: 0xC603,
        }[self]


@dataclass(frozen=True)
class Placement:
    """An image's size on the film before cropping to its cell, and the resampling used."""

    fit: Fit
    rows: int
    columns: int
    method: str


def _invalid(message: str, keyword: str, value: object) -> InvalidAttributeValue:
    attributes = Dataset()
    setattr(attributes, keyword, value)
    return InvalidAttributeValue(message, attributes)


def text_of(dataset: Dataset | None, keyword: str, default: str = "") -> str:
    """An attribute's value as upper-case text, ``default`` when absent or empty."""
    if dataset is None:
        return default
    value = dataset.get(keyword)
    if value is None or value == "":
        return default
    return str(value).strip().upper()


def film_dpi(film_box: Dataset, dpi: int) -> int:
    """The resolution the film is composed at: ``dpi``, doubled for RequestedResolutionID HIGH."""
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be between {MIN_DPI} and {MAX_DPI}, not {dpi}")
    return dpi * 2 if text_of(film_box, "RequestedResolutionID") == "HIGH" else dpi


def film_size(film_box: Dataset, dpi: int) -> tuple[int, int]:
    """The film's (rows, columns) in pixels at ``dpi`` (see the module's resolution rule)."""
    size_id = text_of(film_box, "FilmSizeID", DEFAULT_FILM_SIZE)
    if size_id not in FILM_SIZES_MM:
        raise _invalid(f"unsupported FilmSizeID {size_id!r}", "FilmSizeID", size_id)
    short_mm, long_mm = FILM_SIZES_MM[size_id]
    short_px = round(short_mm / MM_PER_INCH * dpi)
    long_px = round(long_mm / MM_PER_INCH * dpi)
    orientation = text_of(film_box, "FilmOrientation", "PORTRAIT")
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
    try:
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
    except ValueError:
        raise _invalid(
            f"{display_format} has more image boxes than the film holds",
            "ImageDisplayFormat",
            display_format,
        ) from None


def annotation_count(film_box: Dataset) -> int:
    """The number of annotation boxes of a film box (PS3.4 H.4.4)."""
    return ANNOTATION_BOXES if text_of(film_box, "AnnotationDisplayFormatID") else 0


def check_film_pixels(film_box: Dataset, rows: int, columns: int, dpi: int) -> None:
    """``FilmTooLarge`` (0x0213) when a film of ``rows`` x ``columns`` exceeds
    ``MAX_FILM_PIXELS``; the check costs nothing, so it runs before any pixel is allocated."""
    if rows * columns > MAX_FILM_PIXELS:
        size_id = text_of(film_box, "FilmSizeID", DEFAULT_FILM_SIZE)
        raise FilmTooLarge(
            f"{size_id} at {dpi} dpi: {rows * columns} pixels, limit {MAX_FILM_PIXELS}"
        )


def film_geometry(film_box: Dataset, dpi: int) -> FilmGeometry:
    """The film of ``film_box`` at ``dpi``; ``InvalidAttributeValue`` naming the attribute when
    its size, orientation or display format cannot be printed (too many image boxes),
    ``FilmTooLarge`` when it has more than ``MAX_FILM_PIXELS`` pixels."""
    dpi = film_dpi(film_box, dpi)
    rows, columns = film_size(film_box, dpi)
    check_film_pixels(film_box, rows, columns, dpi)
    gap = max(1, round(GAP_INCHES * dpi))
    count = annotation_count(film_box)
    band = round(ANNOTATION_BAND_INCHES * dpi) if count else 0
    display_format = str(film_box.get("ImageDisplayFormat") or "")
    cells = film_layout(display_format, rows - band, columns, gap)
    smallest = min(min(cell.width, cell.height) for cell in cells)
    if smallest < MIN_CELL_INCHES * dpi:
        raise _invalid(
            f"{display_format} has more image boxes than a "
            f"{text_of(film_box, 'FilmSizeID', DEFAULT_FILM_SIZE)} film holds",
            "ImageDisplayFormat",
            display_format,
        )
    annotations = [
        Cell(x, rows - band, width, band - gap) for x, width in _split(0, columns, count, gap)
    ]
    return FilmGeometry(dpi, rows, columns, cells, annotations)


def magnification(image_box: Dataset, film_box: Dataset) -> str:
    """MagnificationType of the image box, else of the film box, else BILINEAR."""
    method = text_of(image_box, "MagnificationType") or text_of(
        film_box, "MagnificationType", DEFAULT_MAGNIFICATION
    )
    if method not in MAGNIFICATION_TYPES:
        raise _invalid(f"unsupported MagnificationType {method!r}", "MagnificationType", method)
    return method


def image_placement(
    cell: Cell, rows: int, columns: int, image_box: Dataset, film_box: Dataset, dpi: int
) -> Placement:
    """How an image of ``rows`` x ``columns`` goes into ``cell`` (see the module's size rule);
    ``dpi`` is the film's (after RequestedResolutionID)."""
    method = magnification(image_box, film_box)
    requested = image_box.get("RequestedImageSize")
    behaviour = text_of(image_box, "RequestedDecimateCropBehavior")
    if requested not in (None, ""):
        wide = float(requested) / MM_PER_INCH * dpi
        natural = (wide * rows / columns, wide)
    elif method == "NONE":
        natural = (float(rows), float(columns))
    else:
        scale = min(cell.width / columns, cell.height / rows)
        return Placement(
            Fit.FITS,
            max(1, min(cell.height, round(rows * scale))),
            max(1, min(cell.width, round(columns * scale))),
            method,
        )
    natural_rows = max(1, round(natural[0]))
    natural_columns = max(1, round(natural[1]))
    if natural_rows <= cell.height and natural_columns <= cell.width:
        return Placement(Fit.FITS, natural_rows, natural_columns, method)
    if behaviour == "FAIL":
        return Placement(Fit.TOO_LARGE, natural_rows, natural_columns, method)
    if behaviour == "CROP" or (not behaviour and requested in (None, "")):
        return Placement(Fit.CROPPED, natural_rows, natural_columns, method)
    scale = min(cell.width / natural_columns, cell.height / natural_rows)
    return Placement(
        Fit.DECIMATED if behaviour == "DECIMATE" else Fit.DEMAGNIFIED,
        max(1, min(cell.height, round(natural_rows * scale))),
        max(1, min(cell.width, round(natural_columns * scale))),
        "REPLICATE" if method == "NONE" else method,
    )


def checked_placement(
    position: int,
    cell: Cell,
    rows: int,
    columns: int,
    image_box: Dataset,
    film_box: Dataset,
    dpi: int,
) -> Placement:
    """``image_placement`` of the image of image box ``position``, refused with
    ``ImageTooLarge`` (0xC603) when it is larger than its box and the SCU asked for failure
    (Requested Decimate/Crop Behavior FAIL).  The Image Box N-SET, the print and the film
    composition all refuse through this one function, with the same ErrorComment."""
    placement = image_placement(cell, rows, columns, image_box, film_box, dpi)
    if placement.fit is Fit.TOO_LARGE:
        raise ImageTooLarge(
            f"image box {position}: image {columns}x{rows} larger than its box: needs "
            f"{placement.columns}x{placement.rows} film pixels, the box has "
            f"{cell.width}x{cell.height} (RequestedDecimateCropBehavior FAIL)"
        )
    return placement
