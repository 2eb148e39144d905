"""Print to archive: film composition, the Secondary Capture it is stored as, and its PNG.

Composition is also checked bit for bit against reference films (a float64 composition of the
whole film), for its memory use, and for the refusal of a film with more pixels than
``MAX_FILM_PIXELS``.

Films are composed from image boxes built as the Print SCP receives them; the Secondary Capture
is read back with pydicom, validated with dicom3tools' ``dciodvfy`` and DCMTK's ``dcmdump``,
and stored through the real ingest path.  The PNG is decoded here chunk by chunk (no imaging
library is installed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicomhub.errors import FilmTooLarge, InvalidAttributeValue
from dicomhub.imaging import film as film_module
from dicomhub.imaging.film import (
    STRIP_SAMPLES,
    compose_film,
    density_pixel,
    density_scale,
    film_png,
    film_secondary_capture,
    print_study_identity,
)
from dicomhub.imaging.geometry import (
    MAX_DPI,
    MAX_FILM_PIXELS,
    Cell,
    film_geometry,
    film_layout,
    film_size,
)
from dicomhub.imaging.gsdf import jnd_index
from dicomhub.index.print_jobs import FilmJob
from dicomhub.ingest import IngestRequest, StoreStatus
from dicomhub.runtime import Runtime

FILM_100DPI = (1000, 800)
"""8INX10IN PORTRAIT at 100 dpi: rows, columns."""
GAP = 5
"""0.05 inch at 100 dpi."""


def film_box(display_format: str = "STANDARD\\1,1", **attributes: object) -> Dataset:
    box = Dataset()
    box.ImageDisplayFormat = display_format
    box.FilmOrientation = "PORTRAIT"
    box.FilmSizeID = "8INX10IN"
    box.SOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        setattr(box, keyword, value)
    return box


def grey_box(
    pixels: NDArray[np.integer],
    *,
    bits: int = 8,
    photometric: str = "MONOCHROME2",
    **attributes: object,
) -> Dataset:
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = photometric
    item.Rows, item.Columns = pixels.shape
    item.BitsAllocated = 8 if bits == 8 else 16
    item.BitsStored = bits
    item.HighBit = bits - 1
    item.PixelRepresentation = 0
    item.PixelData = pixels.astype("<u1" if bits == 8 else "<u2").tobytes()
    box = Dataset()
    box.ImageBoxPosition = 1
    box.BasicGrayscaleImageSequence = [item]
    for keyword, value in attributes.items():
        setattr(box, keyword, value)
    return box


def colour_box(pixels: NDArray[np.integer], *, planar: int = 0) -> Dataset:
    item = Dataset()
    item.SamplesPerPixel = 3
    item.PhotometricInterpretation = "RGB"
    item.PlanarConfiguration = planar
    item.Rows, item.Columns = pixels.shape[:2]
    item.BitsAllocated = item.BitsStored = 8
    item.HighBit = 7
    item.PixelRepresentation = 0
    data = pixels.transpose(2, 0, 1) if planar else pixels
    item.PixelData = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
    box = Dataset()
    box.BasicColorImageSequence = [item]
    return box


def uniform(value: int, rows: int = 64, columns: int = 64) -> NDArray[np.uint16]:
    return np.full((rows, columns), value, dtype=np.uint16)


def job(
    box: Dataset,
    *images: Dataset | None,
    annotations: list[tuple[int, str]] | None = None,
    presentation_lut: Dataset | None = None,
) -> FilmJob:
    session = Dataset()
    session.SOPInstanceUID = generate_uid()
    session.NumberOfCopies = 1
    return FilmJob(
        print_job_uid=generate_uid(),
        film_session=session,
        film_box=box,
        image_boxes=list(images),
        annotations=[_annotation(position, text) for position, text in annotations or []],
        presentation_lut=presentation_lut,
        calling_ae_title="MODALITY1",
    )


def _annotation(position: int, text: str) -> Dataset:
    box = Dataset()
    box.AnnotationPosition = position
    box.TextString = text
    return box


def cell_of(film: NDArray[np.uint8], cell: Cell) -> NDArray[np.uint8]:
    return film[cell.y : cell.y + cell.height, cell.x : cell.x + cell.width]


# Geometry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size_id", "orientation", "expected"),
    [
        ("8INX10IN", "PORTRAIT", (1000, 800)),
        ("8INX10IN", "LANDSCAPE", (800, 1000)),
        ("14INX17IN", "PORTRAIT", (1700, 1400)),
        ("10INX12IN", "LANDSCAPE", (1000, 1200)),
        ("24CMX30CM", "PORTRAIT", (1181, 945)),
        ("A4", "PORTRAIT", (1169, 827)),
    ],
)
def test_film_size_and_orientation(
    size_id: str, orientation: str, expected: tuple[int, int]
) -> None:
    box = film_box(FilmSizeID=size_id, FilmOrientation=orientation)
    assert film_size(box, 100) == expected
    assert compose_film(job(box)).shape == expected


def test_high_resolution_doubles_dpi_and_unknown_sizes_are_refused() -> None:
    assert compose_film(job(film_box(RequestedResolutionID="HIGH")), dpi=50).shape == FILM_100DPI
    with pytest.raises(InvalidAttributeValue):
        compose_film(job(film_box(FilmSizeID="35MMX40MM")))
    with pytest.raises(InvalidAttributeValue):
        compose_film(job(film_box("SLIDE")))


def test_standard_grid_cell_geometry() -> None:
    rows, columns = FILM_100DPI
    cells = film_layout("STANDARD\\2,2", rows, columns, GAP)
    assert cells == [
        Cell(5, 5, 392, 492),
        Cell(402, 5, 393, 492),
        Cell(5, 502, 392, 493),
        Cell(402, 502, 393, 493),
    ]
    # position order: left to right, then top to bottom; every image in its own cell
    film = compose_film(
        job(
            film_box("STANDARD\\2,2", BorderDensity="WHITE"),
            *(grey_box(uniform(v)) for v in (0, 60, 120, 180)),
        )
    )
    for cell, value in zip(cells, (0, 60, 120, 180), strict=True):
        assert cell_of(film, cell)[cell.height // 2, cell.width // 2] == value
    assert film[0, 0] == film[500, 400] == film[-1, -1] == 255  # the gaps are the border


def test_row_and_col_layouts() -> None:
    rows, columns = FILM_100DPI
    by_row = film_layout("ROW\\2,1", rows, columns, GAP)
    assert [(c.x, c.y, c.width, c.height) for c in by_row] == [
        (5, 5, 392, 492),
        (402, 5, 393, 492),
        (5, 502, 790, 493),
    ]
    by_col = film_layout("COL\\1,2", rows, columns, GAP)
    assert [(c.x, c.y, c.width, c.height) for c in by_col] == [
        (5, 5, 392, 990),
        (402, 5, 393, 492),
        (402, 502, 393, 493),
    ]
    with pytest.raises(InvalidAttributeValue):
        film_layout("ROW\\", rows, columns, GAP)


def test_aspect_ratio_is_kept_and_image_centred() -> None:
    wide = np.zeros((50, 200), dtype=np.uint16)
    film = compose_film(job(film_box(BorderDensity="WHITE"), grey_box(wide)))
    cell = film_layout("STANDARD\\1,1", *FILM_100DPI, GAP)[0]
    black = np.argwhere(film == 0)
    (top, left), (bottom, right) = black.min(axis=0), black.max(axis=0)
    assert (left, right) == (cell.x, cell.x + cell.width - 1)  # the full cell width
    height = bottom - top + 1
    assert height == round(50 * cell.width / 200)
    assert abs((top - cell.y) - (cell.y + cell.height - 1 - bottom)) <= 1  # centred


# Pixel values ------------------------------------------------------------------------------


def _centre(film: NDArray[np.uint8]) -> int:
    return int(film[film.shape[0] // 2, film.shape[1] // 2])


def test_polarity_and_monochrome1() -> None:
    box = film_box()
    assert _centre(compose_film(job(box, grey_box(uniform(40))))) == 40
    assert _centre(compose_film(job(box, grey_box(uniform(40), Polarity="REVERSE")))) == 215
    assert _centre(compose_film(job(box, grey_box(uniform(40), photometric="MONOCHROME1")))) == 215
    reversed_mono1 = grey_box(uniform(40), photometric="MONOCHROME1", Polarity="REVERSE")
    assert _centre(compose_film(job(box, reversed_mono1))) == 40


def test_twelve_bit_images_are_scaled_by_their_full_range() -> None:
    ramp = np.array([[0, 1024, 2048, 4095]], dtype=np.uint16).repeat(4, axis=0)
    film = compose_film(
        job(film_box("STANDARD\\1,1", MagnificationType="REPLICATE"), grey_box(ramp, bits=12))
    )
    row = film[film.shape[0] // 2]
    assert sorted(set(row.tolist())) == [0, 64, 128, 255]


def test_presentation_lut_sequence_maps_the_values() -> None:
    lut_item = Dataset()
    lut_item.LUTDescriptor = [256, 0, 8]
    lut_item.LUTData = list(range(255, -1, -1))  # an inverting LUT
    lut = Dataset()
    lut.PresentationLUTSequence = [lut_item]
    film = compose_film(job(film_box(), grey_box(uniform(40)), presentation_lut=lut))
    assert _centre(film) == 215
    shape = Dataset()
    shape.PresentationLUTShape = "IDENTITY"
    assert (
        _centre(compose_film(job(film_box(), grey_box(uniform(40)), presentation_lut=shape))) == 40
    )


def _gsdf_p_value(density: float, low: float, high: float) -> int:
    """PS3.14 7.3 by hand: the P-Value (0..255) of a density on transmissive film, L0 2000,
    La 10 cd/m2, densities in OD."""

    def j(d: float) -> float:
        return float(jnd_index(10 + 2000 * 10**-d))

    return round(255 * (j(density) - j(high)) / (j(low) - j(high)))


def test_density_mapping() -> None:
    scale = density_scale(film_box())  # MinDensity 20, MaxDensity 300 by default
    assert density_pixel("BLACK", scale, "BLACK") == 0
    assert density_pixel("WHITE", scale, "BLACK") == 255
    assert density_pixel("150", scale, "BLACK") == _gsdf_p_value(1.5, 0.2, 3.0) == 84
    assert density_pixel("10", scale, "BLACK") == 255  # clipped at MinDensity
    assert density_pixel("400", scale, "BLACK") == 0  # clipped at MaxDensity
    assert density_pixel(None, scale, "WHITE") == 255
    darker = [density_pixel(str(d), scale, "BLACK") for d in range(20, 301, 20)]
    assert darker == sorted(darker, reverse=True)
    assert len(set(darker)) == len(darker)
    with pytest.raises(InvalidAttributeValue):
        density_pixel("GREY", scale, "BLACK")
    with pytest.raises(InvalidAttributeValue):
        density_scale(film_box(MinDensity=200, MaxDensity=100))


def test_empty_cells_and_border_density() -> None:
    box = film_box(
        "STANDARD\\2,1",
        BorderDensity="100",
        EmptyImageDensity="WHITE",
        MinDensity=0,
        MaxDensity=200,
    )
    film = compose_film(job(box, grey_box(uniform(0)), None))
    first, second = film_layout("STANDARD\\2,1", *FILM_100DPI, GAP)
    border = _gsdf_p_value(1.0, 0.0, 2.0)
    assert film[0, 0] == border
    assert (cell_of(film, second) == 255).all()  # empty image density
    inside = cell_of(film, first)
    assert inside[inside.shape[0] // 2, inside.shape[1] // 2] == 0
    assert inside[0, 0] == border  # the letterbox around the square image is border density
    # fewer image boxes than positions: the rest are empty; more are refused
    assert (cell_of(compose_film(job(box, grey_box(uniform(0)))), second) == 255).all()
    with pytest.raises(InvalidAttributeValue):
        compose_film(job(film_box(), grey_box(uniform(0)), grey_box(uniform(0))))


def test_colour_images_make_an_rgb_film() -> None:
    red = np.zeros((32, 32, 3), dtype=np.uint8)
    red[..., 0] = 255
    blue = np.zeros((32, 32, 3), dtype=np.uint8)
    blue[..., 2] = 200
    box = film_box("STANDARD\\3,1", BorderDensity="BLACK")
    film = compose_film(
        job(box, colour_box(red), colour_box(blue, planar=1), grey_box(uniform(90)))
    )
    assert film.shape == (*FILM_100DPI, 3)
    assert film.dtype == np.uint8
    cells = film_layout("STANDARD\\3,1", *FILM_100DPI, GAP)
    centres = [cell_of(film, c)[c.height // 2, c.width // 2].tolist() for c in cells]
    assert centres == [[255, 0, 0], [0, 0, 200], [90, 90, 90]]
    assert film[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("method", ["REPLICATE", "BILINEAR", "CUBIC"])
def test_magnification_types(method: str) -> None:
    checker = (np.indices((4, 4)).sum(axis=0) % 2 * 200).astype(np.uint16)
    box = film_box(MagnificationType="BILINEAR", BorderDensity="WHITE")
    film = compose_film(job(box, grey_box(checker, MagnificationType=method)))
    cell = film_layout("STANDARD\\1,1", *FILM_100DPI, GAP)[0]
    offset = (cell.height - cell.width) // 2
    image = cell_of(film, cell)[offset : offset + cell.width, :]
    values = set(np.unique(image).tolist())
    if method == "REPLICATE":
        assert values == {0, 200}
        block = cell.width // 4
        assert (image[: block - 1, : block - 1] == 0).all()
        assert (image[: block - 1, block + 1 : 2 * block - 1] == 200).all()
    else:
        assert len(values) > 2  # interpolated edges
        assert min(values) >= 0
        assert max(values) <= 255
        if method == "CUBIC":  # overshoot at edges is clipped, not wrapped
            assert image[cell.width // 8, cell.width // 8] == 0


def test_magnification_none_centres_and_crops() -> None:
    small = compose_film(
        job(film_box(BorderDensity="WHITE"), grey_box(uniform(7, 10, 20), MagnificationType="NONE"))
    )
    assert np.count_nonzero(small == 7) == 200
    ys, xs = np.nonzero(small == 7)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (495, 504, 390, 409)  # centred in the cell
    big = np.zeros((1200, 1200), dtype=np.uint16)
    big[:, 600:] = 100
    film = compose_film(
        job(film_box(BorderDensity="WHITE"), grey_box(big, MagnificationType="NONE"))
    )
    cell = film_layout("STANDARD\\1,1", *FILM_100DPI, GAP)[0]
    inside = cell_of(film, cell)
    assert set(np.unique(inside).tolist()) == {0, 100}  # the cell is filled, the image cropped
    assert inside[:, cell.width // 2 - 1].max() == 0
    assert inside[:, cell.width // 2 + 1].min() == 100
    assert film[0, 0] == 255


def test_requested_image_size_limits_the_image() -> None:
    box = film_box(BorderDensity="WHITE")
    film = compose_film(job(box, grey_box(uniform(0), RequestedImageSize="50.8")))  # 2 inches
    assert np.count_nonzero(film == 0) == 200 * 200


# Storage -----------------------------------------------------------------------------------


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    return [line for line in output.splitlines() if line.startswith("Error")]


def _dcmdump(path: Path) -> None:
    if shutil.which("dcmdump") is None:
        pytest.skip("dcmdump (DCMTK) is not installed")
    subprocess.run(["dcmdump", "-q", str(path)], capture_output=True, check=True)


def _grey_job() -> FilmJob:
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (64, 1))
    return job(
        film_box("ROW\\2,1", BorderDensity="WHITE"),
        grey_box(ramp, bits=12),
        grey_box(uniform(128), Polarity="REVERSE"),
        annotations=[(2, "Right knee"), (1, "Dr. Müller")],
    )


def _colour_job() -> FilmJob:
    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[..., 1] = 180
    return job(film_box("COL\\1,2"), colour_box(rgb), grey_box(uniform(30)), None)


@pytest.mark.parametrize("make", [_grey_job, _colour_job], ids=["grey", "rgb"])
def test_secondary_capture_is_valid(make: Callable[[], FilmJob], tmp_path: Path) -> None:
    film_job = make()
    pixels = compose_film(film_job, dpi=40)
    identity = print_study_identity(film_job, today=dt.date(2024, 5, 17))
    data = film_secondary_capture(film_job, pixels, **identity._asdict())
    path = tmp_path / "film.dcm"
    path.write_bytes(data)

    ds = dcmread(BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == SecondaryCaptureImageStorage
    assert ds.StudyInstanceUID == identity.study_uid
    assert ds.SeriesInstanceUID == identity.series_uid
    assert ds.PatientID == "PRINT-MODALITY1"
    assert (ds.Rows, ds.Columns) == pixels.shape[:2]
    assert np.array_equal(ds.pixel_array, pixels)
    if pixels.ndim == 2:
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.ImageComments == "1: Dr. Müller\n2: Right knee"
    else:
        assert ds.PhotometricInterpretation == "RGB"
    assert _dciodvfy_errors(path) == []
    _dcmdump(path)


def test_film_is_stored_through_the_ingest_path(runtime: Runtime) -> None:
    film_job = _grey_job()
    identity = print_study_identity(film_job)
    data = film_secondary_capture(film_job, compose_film(film_job, dpi=30), **identity._asdict())
    result = runtime.ingest.store(
        IngestRequest(
            path=None,
            take=True,
            source="print",
            calling_ae_title=film_job.calling_ae_title,
            content=bytearray(data),
        )
    )
    assert result.status is StoreStatus.STORED
    assert result.sop_class_uid == SecondaryCaptureImageStorage
    stored = runtime.repository.get_instance(result.sop_instance_uid)
    assert stored is not None
    assert stored.study_instance_uid == identity.study_uid
    assert stored.series_instance_uid == identity.series_uid


# PNG ---------------------------------------------------------------------------------------


def _decode_png(data: bytes) -> NDArray[np.uint8]:
    """A minimal decoder for 8-bit grey/RGB PNGs with filter type 0 rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8
    samples = {0: 1, 2: 3}[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * samples)
    assert (rows[:, 0] == 0).all()
    shape = (height, width) if samples == 1 else (height, width, 3)
    return rows[:, 1:].reshape(shape)


@pytest.mark.parametrize("make", [_grey_job, _colour_job], ids=["grey", "rgb"])
def test_png(make: Callable[[], FilmJob]) -> None:
    pixels = compose_film(make(), dpi=30)
    png = film_png(pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", png[16:24]) == (pixels.shape[1], pixels.shape[0])
    assert np.array_equal(_decode_png(png), pixels)


# Study identity ----------------------------------------------------------------------------


def test_session_print_study_is_per_calling_ae_and_date() -> None:
    day = dt.date(2024, 5, 17)
    first, second = _grey_job(), _grey_job()
    a = print_study_identity(first, today=day)
    b = print_study_identity(second, today=day)
    assert a.study_uid == b.study_uid  # same AE, same day: one print study
    assert a.series_uid != b.series_uid  # one series per film session
    assert print_study_identity(first, today=day) == a  # deterministic
    assert print_study_identity(first, today=dt.date(2024, 5, 18)).study_uid != a.study_uid
    other_ae = FilmJob(
        first.print_job_uid,
        first.film_session,
        first.film_box,
        first.image_boxes,
        calling_ae_title="CT2",
    )
    assert print_study_identity(other_ae, today=day).study_uid != a.study_uid
    assert str(a.patient.PatientName) == "PRINT^MODALITY1"


def test_images_rule_uses_the_printed_images_study() -> None:
    stored = Dataset()
    stored.StudyInstanceUID = study = generate_uid()
    stored.PatientID = "P42"
    stored.PatientName = "Doe^Jane"
    referenced = grey_box(uniform(1))
    reference = Dataset()
    reference.ReferencedSOPInstanceUID = "1.2.3.4"
    referenced.ReferencedImageSequence = [reference]
    film_job = job(film_box(), referenced)

    identity = print_study_identity(film_job, lookup={"1.2.3.4": stored}.get)
    assert identity.study_uid == study
    assert identity.patient.PatientID == "P42"
    assert (
        print_study_identity(film_job, "session", lookup={"1.2.3.4": stored}.get).study_uid != study
    )
    # unknown reference: the per-session print study
    assert print_study_identity(film_job, lookup=lambda uid: None).study_uid != study
    # an image item that names its study and patient itself
    carrying = grey_box(uniform(1))
    carrying.BasicGrayscaleImageSequence[0].StudyInstanceUID = study
    carrying.BasicGrayscaleImageSequence[0].PatientID = "P42"
    assert print_study_identity(job(film_box(), carrying)).study_uid == study


# Presentation LUT shapes and annotations -------------------------------------------------


def _shape(value: str) -> Dataset:
    lut = Dataset()
    lut.PresentationLUTShape = value
    return lut


def test_lin_od_values_are_densities_identity_values_are_p_values() -> None:
    ramp = np.tile(np.array([0, 64, 128, 192, 255], dtype=np.uint16).repeat(20), (20, 1))
    box = film_box(MagnificationType="REPLICATE", MinDensity=20, MaxDensity=300)
    cell = film_layout("STANDARD\\1,1", *FILM_100DPI, GAP)[0]

    def samples(lut: Dataset | None) -> list[int]:
        film = compose_film(job(box, grey_box(ramp), presentation_lut=lut))
        row = cell_of(film, cell)[cell.height // 2]
        step = cell.width // 5
        return [int(row[step * index + step // 2]) for index in range(5)]

    assert samples(None) == samples(_shape("IDENTITY")) == [0, 64, 128, 192, 255]
    lin_od = samples(_shape("LIN OD"))
    densities = [3.0 - value / 255 * 2.8 for value in (0, 64, 128, 192, 255)]
    assert lin_od == [_gsdf_p_value(d, 0.2, 3.0) for d in densities]
    assert lin_od[0] == 0 and lin_od[-1] == 255
    assert lin_od[2] < 100  # half way in density is much darker than half way in P-Values
    # an image box's own Presentation LUT overrides the film box's
    film = compose_film(
        FilmJob(
            print_job_uid=generate_uid(),
            film_session=Dataset(),
            film_box=box,
            image_boxes=[grey_box(uniform(128))],
            presentation_lut=_shape("IDENTITY"),
            image_luts=[_shape("LIN OD")],
        )
    )
    assert _centre(film) == _gsdf_p_value(3.0 - 128 / 255 * 2.8, 0.2, 3.0)


def test_annotations_are_burned_into_the_band() -> None:
    box = film_box("STANDARD\\1,1", AnnotationDisplayFormatID="LABEL", BorderDensity="BLACK")
    blank = compose_film(job(box, grey_box(uniform(128))))
    film = compose_film(job(box, grey_box(uniform(128)), annotations=[(1, "LEFT KNEE")]))
    band_top = FILM_100DPI[0] - 30
    changed = np.argwhere(film != blank)
    assert changed.size, "no annotation text"
    assert changed[:, 0].min() >= band_top  # only inside the annotation band
    assert changed[:, 1].min() >= GAP  # left-aligned in its cell
    assert set(np.unique(film[band_top:]).tolist()) == {0, 255}  # white text on black border
    # 9 characters of 6 dots at scale 2 (0.15 inch at 100 dpi), 7 rows of dots high
    assert changed[:, 1].max() < GAP + 9 * 12
    assert changed[:, 0].max() - changed[:, 0].min() + 1 == 14
    light = film_box("STANDARD\\1,1", AnnotationDisplayFormatID="LABEL", BorderDensity="WHITE")
    text = compose_film(job(light, annotations=[(1, "X")]))[band_top:]
    assert set(np.unique(text).tolist()) == {0, 255}  # black text on a white border
    # without an annotation display format the film has no band and no text
    plain = compose_film(job(film_box(), grey_box(uniform(128)), annotations=[(1, "LEFT")]))
    assert plain.shape == blank.shape
    assert not (plain[band_top:, GAP:-GAP] == 255).any()


# Memory: uint8 film, stored values, a strip at a time, the pixel cap --------------------------


def _noise(seed: int, rows: int, columns: int, top: int) -> NDArray[np.uint16]:
    """A ramp from 0 to ``top`` with noise: every pixel value differs from its neighbours."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(rows), np.arange(columns)) * top // (rows + columns)
    noisy = ramp + rng.integers(-top // 8, top // 8, (rows, columns))
    return np.clip(noisy, 0, top).astype(np.uint16)


def _lut_sequence(entries: int, bits: int, *, inverting: bool = False) -> Dataset:
    values = np.round(((np.arange(entries) / (entries - 1)) ** 0.6) * ((1 << bits) - 1))
    item = Dataset()
    item.LUTDescriptor = [entries % 65536, 0, bits]
    item.LUTData = [int(value) for value in (values[::-1] if inverting else values)]
    lut = Dataset()
    lut.PresentationLUTSequence = [item]
    return lut


def _film_job(
    box: Dataset,
    images: list[Dataset | None],
    *,
    annotations: list[tuple[int, str]] | None = None,
    presentation_lut: Dataset | None = None,
    image_luts: list[Dataset | None] | None = None,
) -> FilmJob:
    session = Dataset()
    session.SOPInstanceUID = "1.2.3"
    return FilmJob(
        print_job_uid="1.2.3.4",
        film_session=session,
        film_box=box,
        image_boxes=images,
        annotations=[_annotation(position, text) for position, text in annotations or []],
        presentation_lut=presentation_lut,
        calling_ae_title="MODALITY1",
        image_luts=image_luts or [],
    )


def _regression_films() -> dict[str, tuple[FilmJob, int]]:
    """Films through every pixel path of ``compose_film``, with the dpi they are composed at."""
    rgb = np.zeros((37, 53, 3), dtype=np.uint8)
    rgb[..., 0] = _noise(7, 37, 53, 255)
    rgb[..., 1] = 255 - rgb[..., 0]
    rgb[..., 2] = _noise(8, 37, 53, 200)
    signed = grey_box(_noise(11, 61, 47, 65535), bits=16, MagnificationType="REPLICATE")
    signed.BasicGrayscaleImageSequence[0].PixelRepresentation = 1
    return {
        "grey8-bilinear-2x2": (
            _film_job(
                film_box("STANDARD\\2,2", BorderDensity="WHITE", EmptyImageDensity="120"),
                [grey_box(_noise(1, 70, 90, 255)), None, grey_box(_noise(2, 300, 41, 255))],
            ),
            100,
        ),
        "grey12-mono1-cubic": (
            _film_job(
                film_box("ROW\\1,2", MagnificationType="CUBIC", FilmOrientation="LANDSCAPE"),
                [
                    grey_box(_noise(3, 129, 77, 4095), bits=12, photometric="MONOCHROME1"),
                    grey_box(_noise(4, 33, 250, 4095), bits=12, Polarity="REVERSE"),
                    grey_box(_noise(5, 512, 512, 4095), bits=12, MagnificationType="REPLICATE"),
                ],
            ),
            100,
        ),
        "grey16-signed-replicate": (_film_job(film_box("COL\\2,1"), [signed, None]), 90),
        "lut-sequence-12bit": (
            _film_job(
                film_box("STANDARD\\2,1", MagnificationType="BILINEAR"),
                [grey_box(_noise(6, 80, 80, 4095), bits=12), grey_box(_noise(9, 50, 90, 255))],
                presentation_lut=_lut_sequence(4096, 12),
                image_luts=[None, _lut_sequence(256, 10, inverting=True)],
            ),
            100,
        ),
        "lin-od-densities": (
            _film_job(
                film_box(
                    "STANDARD\\1,2",
                    MinDensity=15,
                    MaxDensity=280,
                    Illumination=1800,
                    ReflectedAmbientLight=20,
                    BorderDensity="180",
                    MagnificationType="CUBIC",
                ),
                [grey_box(_noise(10, 100, 140, 255)), grey_box(_noise(12, 64, 64, 4095), bits=12)],
                presentation_lut=_shape("LIN OD"),
                image_luts=[None, _shape("IDENTITY")],
            ),
            100,
        ),
        "colour-mixed": (
            _film_job(
                film_box("STANDARD\\3,1", MagnificationType="CUBIC", BorderDensity="50"),
                [colour_box(rgb), colour_box(rgb, planar=1), grey_box(_noise(13, 40, 40, 255))],
            ),
            100,
        ),
        "crop-and-decimate": (
            _film_job(
                film_box("STANDARD\\2,2", BorderDensity="WHITE"),
                [
                    grey_box(_noise(14, 600, 900, 255), MagnificationType="NONE"),
                    grey_box(
                        _noise(15, 40, 60, 255),
                        RequestedImageSize="300",
                        RequestedDecimateCropBehavior="CROP",
                        MagnificationType="CUBIC",
                    ),
                    grey_box(
                        _noise(16, 40, 60, 255),
                        RequestedImageSize="300",
                        RequestedDecimateCropBehavior="DECIMATE",
                    ),
                    grey_box(_noise(17, 90, 30, 255), RequestedImageSize="20"),
                ],
            ),
            100,
        ),
        "annotations-high": (
            _film_job(
                film_box(
                    "STANDARD\\1,1",
                    FilmSizeID="14INX17IN",
                    RequestedResolutionID="HIGH",
                    AnnotationDisplayFormatID="LABEL",
                    BorderDensity="BLACK",
                ),
                [grey_box(_noise(18, 200, 150, 4095), bits=12)],
                annotations=[(1, "LEFT KNEE / Dr. Müller")],
            ),
            40,
        ),
    }


REGRESSION_SHA256 = {
    "grey8-bilinear-2x2": "2e2521abc9d7e8330cfd4a94c0234326660f0e60215b91f35274f57260d12c1f",
    "grey12-mono1-cubic": "bda634939c1db8a99b816056106958475355ee5338731f61efb012478190cbc0",
    "grey16-signed-replicate": "f2d3af6cfd6523cc01ce7317c4903b25225c85924b446c664b541b86a056fec0",
    "lut-sequence-12bit": "e4265ec79f3950a075330e2d5ddaf6ea5d9abfcaa8006964f2f81a2a6f9e5290",
    "lin-od-densities": "e8ad77e1ed72db8ddbdfd209b01bfc4272eb0e65d22fcb8aae449f8379398f40",
    "colour-mixed": "9dc1386669a66a2f865a93b0216321735d162e0a0787d6e454152aa41beab453",
    "crop-and-decimate": "154fc0f0dfa187df847e7347653073d52f3e18fa3e964b66655e8fa0aa61aee6",
    "annotations-high": "7b402d269bc3202ec11c415bd402bb46022661d1b1ea2a0d9e4ce5f694b482a9",
}
"""SHA-256 of each regression film as a float64 composition of the whole film gives it: the
uint8 film composed a strip at a time must have the same pixels, bit for bit."""


@pytest.mark.parametrize("strip_samples", [STRIP_SAMPLES, 1])
@pytest.mark.parametrize("name", sorted(REGRESSION_SHA256))
def test_films_are_unchanged_bit_for_bit(
    name: str, strip_samples: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(film_module, "STRIP_SAMPLES", strip_samples)  # 1: a row at a time
    film_job, dpi = _regression_films()[name]
    film = compose_film(film_job, dpi=dpi)
    assert film.dtype == np.uint8
    assert hashlib.sha256(film.tobytes()).hexdigest() == REGRESSION_SHA256[name]


def test_composing_a_film_takes_little_more_memory_than_the_film() -> None:
    image = _noise(19, 1024, 1024, 4095)
    box = film_box("STANDARD\\1,1", FilmSizeID="14INX17IN", MagnificationType="CUBIC")
    film_job = job(box, grey_box(image, bits=12))
    tracemalloc.start()
    try:
        film = compose_film(film_job, dpi=150)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert film.shape == (2550, 2100)
    # the uint8 film, a few copies of the stored values and the float64 temporaries of a strip
    # (a float64 film alone would take 8 times the film)
    assert peak < film.nbytes + 4 * image.nbytes + 64 * STRIP_SAMPLES, peak


def test_a_film_over_the_pixel_cap_is_refused_before_it_is_allocated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dicomhub.print")
    box = film_box(FilmSizeID="14INX17IN", RequestedResolutionID="HIGH")
    tracemalloc.start()
    try:
        with pytest.raises(FilmTooLarge) as refused:
            compose_film(job(box, grey_box(uniform(0))), dpi=MAX_DPI)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing of the 16800 x 20400 film was allocated
    assert refused.value.dimse_status == 0x0213
    assert str(refused.value) == (
        f"14INX17IN at 1200 dpi: {16800 * 20400} pixels, limit {MAX_FILM_PIXELS}"
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"film box {box.SOPInstanceUID} not composed: {refused.value}"
    ]
    # the largest film at the highest standard resolution is within the cap
    assert film_geometry(film_box(FilmSizeID="14INX17IN"), MAX_DPI).rows == 10200
