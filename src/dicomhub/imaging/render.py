"""Rendering a frame of a stored image as PNG or JPEG, for previews and DICOMweb ``rendered``.

Only the frame asked for is decoded (``pydicom.pixels.pixel_array`` with an index), with the
installed pydicom plugins, so every transfer syntax pydicom can decode renders.  Grey images go
through the Modality LUT (Rescale Slope/Intercept), then a window: the one asked for, else the
first Window Center/Width of the header, else its VOI LUT, else the frame's own range;
MONOCHROME1 is inverted so that it looks as intended.  Colour images (RGB, YBR converted to
RGB, PALETTE COLOR through its lookup table) are shown as they are.  The result is scaled down
(never up) to fit the size asked for, keeping the aspect ratio.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from dicomhub.errors import CannotTranscode, InvalidRequest, NoSuchResource, NotAcceptable

Format = Literal["png", "jpeg"]
VoiFunction = Literal["linear", "linear-exact", "sigmoid"]
MAX_SIZE = 8192
"""Largest width or height a rendering may be asked for."""


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): center, width and function."""

    center: float
    width: float
    function: VoiFunction = "linear"

    @classmethod
    def parse(cls, text: str) -> Window:
        """``center,width[,function]`` as PS3.18 ``window`` gives it."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (2, 3):
            raise InvalidRequest(
                f"window {text!r}: give the center and the width, e.g. window=40,400"
            )
        try:
            center, width = float(parts[0]), float(parts[1])
        except ValueError:
            raise InvalidRequest(f"window {text!r}: center and width must be numbers") from None
        function = (parts[2] if len(parts) == 3 else "linear").lower().replace("_", "-")
        if function not in ("linear", "linear-exact", "sigmoid"):
            raise InvalidRequest(
                f"window function {parts[2]!r} is not linear, linear-exact or sigmoid"
            )
        if width <= 0 or (function == "linear" and width < 1):
            raise InvalidRequest(f"window width {parts[1]} is too small")
        return cls(center, width, function)  # type: ignore[arg-type]

    def apply(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map values to 0..1."""
        c, w = self.center, self.width
        scaled: NDArray[np.floating[Any]]
        if self.function == "linear-exact":
            scaled = (values - c) / w + 0.5
        elif self.function == "sigmoid":
            scaled = 1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
        elif w > 1:
            scaled = (values - (c - 0.5)) / (w - 1) + 0.5
        else:
            scaled = (values >= c) * 1.0
        return np.asarray(np.clip(scaled, 0.0, 1.0), dtype=np.float64)


@dataclass(frozen=True)
class RenderRequest:
    """What to render: which frame (1-based), window, largest size, format and quality."""

    frame: int = 1
    window: Window | None = None
    width: int | None = None
    height: int | None = None
    format: Format = "jpeg"
    quality: int = 90


def number_of_frames(dataset: Dataset) -> int:
    """NumberOfFrames (1 when absent or unreadable)."""
    try:
        return max(int(dataset.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def render(source: BinaryIO, request: RenderRequest) -> bytes:
    """The frame of the stored Part 10 object in ``source`` as PNG or JPEG bytes."""
    try:
        header = dcmread(source, stop_before_pixels=True)
    except Exception as exc:
        raise CannotTranscode(f"the stored object cannot be read: {_one_line(exc)}") from exc
    if not _has_pixels(source):
        raise NotAcceptable("this object has no image (no Pixel Data) to render")
    frames = number_of_frames(header)
    if not 1 <= request.frame <= frames:
        raise NoSuchResource(
            f"frame {request.frame} does not exist: the image has {frames} frame"
            + ("s" if frames > 1 else "")
        )
    for size in (request.width, request.height):
        if size is not None and not 1 <= size <= MAX_SIZE:
            raise InvalidRequest(f"an image size must be between 1 and {MAX_SIZE} pixels")
    source.seek(0)
    try:
        pixels, dataset = _frame(source, header, request.frame - 1)
        image = _to_8bit(pixels, dataset, request.window)
    except (InvalidRequest, NotAcceptable):
        raise
    except Exception as exc:  # pydicom and the codecs raise many types
        raise CannotTranscode(f"the image cannot be decoded: {_one_line(exc)}") from exc
    return _encode(image, request)


def _frame(source: BinaryIO, header: Dataset, index: int) -> tuple[NDArray[Any], Dataset]:
    """One decoded frame and the data set describing it.  A deflated object is read whole
    (pydicom decodes frames straight from the file only for the other syntaxes)."""
    syntax = UID(str(header.file_meta.get("TransferSyntaxUID", "")))
    if syntax.is_deflated:
        whole = dcmread(source)
        return pixel_array(whole, index=index), whole
    described = Dataset()
    return pixel_array(source, index=index, ds_out=described), described


def _has_pixels(source: BinaryIO) -> bool:
    """Whether the object has Pixel Data (its value is not read)."""
    source.seek(0)
    dataset = dcmread(source, defer_size=256, specific_tags=["PixelData"])
    return "PixelData" in dataset


def _to_8bit(
    pixels: NDArray[np.generic], dataset: Dataset, window: Window | None
) -> NDArray[np.uint8]:
    """Grey (rows, cols) or RGB (rows, cols, 3) 8-bit pixels ready to encode."""
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, dataset)
        return _stretch(np.asarray(rgb, dtype=np.float64), float(rgb.max()) or 1.0)
    if pixels.ndim == 3 and int(dataset.get("SamplesPerPixel", 1)) == 3:
        bits = int(dataset.get("BitsStored", 8))
        return _stretch(np.asarray(pixels, dtype=np.float64), float((1 << bits) - 1))
    values = np.asarray(apply_modality_lut(pixels, dataset), dtype=np.float64)
    if window is not None:
        scaled = window.apply(values)
    elif _header_window(dataset) is not None:
        header_window = _header_window(dataset)
        assert header_window is not None
        scaled = header_window.apply(values)
    elif "VOILUTSequence" in dataset:
        lut = np.asarray(apply_voi_lut(values, dataset), dtype=np.float64)
        scaled = _range(lut)
    else:
        scaled = _range(values)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.asarray(np.rint(scaled * 255.0), dtype=np.uint8)


def _header_window(dataset: Dataset) -> Window | None:
    """The first Window Center/Width of the header, with its VOI LUT Function."""
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c = float(center[0] if _is_multi(center) else center)
        w = float(width[0] if _is_multi(width) else width)
    except (TypeError, ValueError, IndexError):
        return None
    function = str(dataset.get("VOILUTFunction", "LINEAR")).strip().lower().replace("_", "-")
    if function not in ("linear", "linear-exact", "sigmoid"):
        function = "linear"
    if w <= 0 or (function == "linear" and w < 1):
        return None
    return Window(c, w, function)  # type: ignore[arg-type]


def _is_multi(value: object) -> bool:
    return isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"


def _range(values: NDArray[np.float64]) -> NDArray[np.float64]:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def _stretch(values: NDArray[np.float64], maximum: float) -> NDArray[np.uint8]:
    return np.asarray(np.clip(np.rint(values * 255.0 / maximum), 0, 255), dtype=np.uint8)


def _encode(image: NDArray[np.uint8], request: RenderRequest) -> bytes:
    picture = Image.fromarray(np.ascontiguousarray(image))
    if request.width or request.height:
        picture.thumbnail(
            (request.width or picture.width, request.height or picture.height),
            Image.Resampling.LANCZOS,
        )
    out = io.BytesIO()
    if request.format == "png":
        picture.save(out, format="PNG", optimize=False)
    else:
        quality = min(max(request.quality, 1), 100)
        picture.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:300]
