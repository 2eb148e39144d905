"""Film geometry: too many image boxes, too many pixels, the annotation band, and how an image
fits its cell."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicomhub.errors import FilmTooLarge, ImageTooLarge, InvalidAttributeValue
from dicomhub.imaging.geometry import (
    FILM_SIZES_MM,
    MAX_DPI,
    MAX_FILM_PIXELS,
    Cell,
    Fit,
    checked_placement,
    film_geometry,
    film_size,
    image_placement,
)
from tests.unit.imaging.test_film import FILM_100DPI, GAP, film_box

CELL = Cell(0, 0, 100, 80)


def image_box(**attributes: object) -> Dataset:
    box = Dataset()
    for keyword, value in attributes.items():
        setattr(box, keyword, value)
    return box


def test_too_many_image_boxes_for_the_film() -> None:
    assert len(film_geometry(film_box("STANDARD\\10,10"), 100).cells) == 100
    with pytest.raises(InvalidAttributeValue) as refused:
        film_geometry(film_box("STANDARD\\40,1"), 100)  # 0.2 inch wide cells
    assert "more image boxes than a 8INX10IN film holds" in str(refused.value)
    attributes = refused.value.attribute_list
    assert attributes is not None and attributes.ImageDisplayFormat == "STANDARD\\40,1"
    # at a higher resolution the same format still does not fit: the rule is in inches
    with pytest.raises(InvalidAttributeValue):
        film_geometry(film_box("STANDARD\\40,1"), 300)


def test_annotation_band() -> None:
    plain = film_geometry(film_box("STANDARD\\1,1"), 100)
    assert plain.annotations == []
    assert plain.cells == [Cell(GAP, GAP, FILM_100DPI[1] - 2 * GAP, FILM_100DPI[0] - 2 * GAP)]
    labelled = film_geometry(film_box("STANDARD\\1,1", AnnotationDisplayFormatID="LABEL"), 100)
    band = 30  # 0.3 inch at 100 dpi
    (cell,) = labelled.cells
    assert cell.y + cell.height == FILM_100DPI[0] - band - GAP
    assert labelled.annotations == [Cell(GAP, FILM_100DPI[0] - band, 790, band - GAP)]


def test_images_are_scaled_to_fit_by_default() -> None:
    placement = image_placement(CELL, 400, 400, image_box(), film_box(), 100)
    assert (placement.fit, placement.rows, placement.columns) == (Fit.FITS, 80, 80)
    assert placement.method == "BILINEAR"


@pytest.mark.parametrize(
    ("attributes", "fit", "size"),
    [
        # 2 inches requested, the cell is 1 inch wide: the SCP default demagnifies
        ({"RequestedImageSize": "50.8"}, Fit.DEMAGNIFIED, (80, 80)),
        (
            {"RequestedImageSize": "50.8", "RequestedDecimateCropBehavior": "DECIMATE"},
            Fit.DECIMATED,
            (80, 80),
        ),
        (
            {"RequestedImageSize": "50.8", "RequestedDecimateCropBehavior": "CROP"},
            Fit.CROPPED,
            (200, 200),
        ),
        (
            {"RequestedImageSize": "50.8", "RequestedDecimateCropBehavior": "FAIL"},
            Fit.TOO_LARGE,
            (200, 200),
        ),
        (
            {"RequestedImageSize": "12.7", "RequestedDecimateCropBehavior": "FAIL"},
            Fit.FITS,
            (50, 50),
        ),
        # one image pixel per film pixel: the SCP default crops
        ({"MagnificationType": "NONE"}, Fit.CROPPED, (120, 120)),
        (
            {"MagnificationType": "NONE", "RequestedDecimateCropBehavior": "DECIMATE"},
            Fit.DECIMATED,
            (80, 80),
        ),
        (
            {"MagnificationType": "NONE", "RequestedDecimateCropBehavior": "FAIL"},
            Fit.TOO_LARGE,
            (120, 120),
        ),
    ],
)
def test_an_image_larger_than_its_box(
    attributes: dict[str, str], fit: Fit, size: tuple[int, int]
) -> None:
    rows = columns = 120 if "MagnificationType" in attributes else 400
    placement = image_placement(CELL, rows, columns, image_box(**attributes), film_box(), 100)
    assert placement.fit is fit
    assert (placement.rows, placement.columns) == size
    assert (
        fit.status
        == {
            Fit.FITS: 0,
            Fit.DEMAGNIFIED: 0xB604,
            Fit.CROPPED: 0xB609,
            Fit.DECIMATED: 0xB60A,
            Fit.TOO_LARGE: 0xC603,
        }[fit]
    )


def test_pixel_cap_is_the_largest_film_at_the_highest_resolution() -> None:
    def pixels(size_id: str) -> int:
        rows, columns = film_size(film_box(FilmSizeID=size_id), MAX_DPI)
        return rows * columns

    assert MAX_FILM_PIXELS == pixels("14INX17IN") == 8400 * 10200
    assert max(pixels(size_id) for size_id in FILM_SIZES_MM) == MAX_FILM_PIXELS
    # every standard film at every resolution print_film_dpi allows is composed ...
    assert len(film_geometry(film_box(FilmSizeID="14INX17IN"), MAX_DPI).cells) == 1
    # ... and RequestedResolutionID HIGH up to 300 dpi
    high = film_box(FilmSizeID="14INX17IN", RequestedResolutionID="HIGH")
    assert film_geometry(high, 300).rows * film_geometry(high, 300).columns == MAX_FILM_PIXELS


@pytest.mark.parametrize(
    ("size_id", "dpi"), [("14INX17IN", 301), ("14INX17IN", MAX_DPI), ("8INX10IN", MAX_DPI)]
)
def test_a_film_over_the_pixel_cap_is_refused(size_id: str, dpi: int) -> None:
    box = film_box(FilmSizeID=size_id, RequestedResolutionID="HIGH")
    with pytest.raises(FilmTooLarge) as refused:
        film_geometry(box, dpi)
    assert refused.value.dimse_status == 0x0213
    assert str(refused.value).startswith(f"{size_id} at {2 * dpi} dpi: ")
    assert str(MAX_FILM_PIXELS) in refused.value.error_comment


def test_checked_placement_refuses_an_image_larger_than_its_box() -> None:
    fits = checked_placement(3, CELL, 400, 400, image_box(), film_box(), 100)
    assert fits == image_placement(CELL, 400, 400, image_box(), film_box(), 100)
    too_large = image_box(RequestedImageSize="50.8", RequestedDecimateCropBehavior="FAIL")
    with pytest.raises(ImageTooLarge) as refused:
        checked_placement(3, CELL, 400, 400, too_large, film_box(), 100)
    assert refused.value.dimse_status == 0xC603
    assert refused.value.error_comment.startswith("image box 3: image 400x400 larger than")
