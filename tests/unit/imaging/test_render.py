"""Rendering frames: every transfer syntax pydicom decodes, windows, MONOCHROME1, sizes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image

from dicomhub.errors import InvalidRequest, NoSuchResource, NotAcceptable
from dicomhub.imaging.render import RenderRequest, Window, render
from tests.factories import make_dataset, write_file
from tests.interop.support import sample

FILES = [
    "MR_small_implicit.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPGExtended.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEGLSNearLossless_08.dcm",
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "examples_palette.dcm",
    "SC_rgb_rle_2frame.dcm",
    "examples_ybr_color.dcm",
    "rtdose.dcm",
]


def _image(data: bytes) -> NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.uint8)


@pytest.mark.parametrize("name", FILES)
def test_every_decodable_syntax_renders(name: str) -> None:
    dataset = pydicom.dcmread(sample(name), stop_before_pixels=True)
    frames = int(dataset.get("NumberOfFrames") or 1)
    with sample(name).open("rb") as source:
        png = render(source, RenderRequest(frame=frames, format="png"))
    image = _image(png)
    assert image.shape[:2] == (int(dataset.Rows), int(dataset.Columns))
    colour = dataset.PhotometricInterpretation != "MONOCHROME2"
    assert image.ndim == (3 if colour else 2)
    assert image.std() > 0


def test_window_from_header_given_and_functions(tmp_path: Path) -> None:
    pixels = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (64, 1))
    dataset = make_dataset(rows=64, WindowCenter=2048, WindowWidth=1024)
    dataset.PixelData = pixels.tobytes()
    path = write_file(dataset, tmp_path / "ramp.dcm")

    def row(request: RenderRequest) -> NDArray[np.uint8]:
        with path.open("rb") as source:
            image = _image(render(source, request))
        return np.asarray(image[0], dtype=np.uint8)

    header = row(RenderRequest(format="png"))
    assert header[0] == 0 and header[-1] == 255  # 1536..2560 spread over 0..255
    assert 0 < header[32] < 255
    given = row(RenderRequest(format="png", window=Window.parse("100,200")))
    assert given[0] == 0 and (given[4:] == 255).all()
    sigmoid = row(RenderRequest(format="png", window=Window.parse("2048,8192,SIGMOID")))
    assert 0 < sigmoid[0] < sigmoid[32] < sigmoid[-1] < 255
    for wrong in ("1", "a,b", "1,0", "1,2,cubic"):
        with pytest.raises(InvalidRequest):
            Window.parse(wrong)


def test_monochrome1_is_inverted_and_sizes_fit(tmp_path: Path) -> None:
    dataset = make_dataset(rows=32, PhotometricInterpretation="MONOCHROME1")
    dataset.PixelData = (np.arange(32 * 32, dtype=np.uint16) % 32).tobytes()
    path = write_file(dataset, tmp_path / "m1.dcm")
    with path.open("rb") as source:
        image = _image(render(source, RenderRequest(format="png", width=16, height=8)))
    assert image.shape == (8, 8)
    assert image[0, 0] > image[0, -1]  # low values are white
    with path.open("rb") as source, pytest.raises(NoSuchResource, match=r"1 frame$"):
        render(source, RenderRequest(frame=2))
    with path.open("rb") as source, pytest.raises(InvalidRequest):
        render(source, RenderRequest(width=100000))


def test_objects_without_pixels_are_not_rendered() -> None:
    with sample("test-SR.dcm").open("rb") as source, pytest.raises(NotAcceptable):
        render(source, RenderRequest())
