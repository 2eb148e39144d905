"""Frames and bulk data values of a stored object, for WADO-RS ``frames`` and ``bulkdata``.

A frame is returned either as stored (the compressed bitstream of an encapsulated frame, or the
frame's bytes of native pixel data in Explicit VR Little Endian) or as native pixels (decoded
with the installed pydicom plugins, little endian, colour as RGB).  The object is read into
memory to find a frame: one object at a time, never a whole series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomhub.errors import CannotTranscode, NoSuchResource, NotAcceptable
from dicomhub.imaging.render import number_of_frames

_NATIVE_LITTLE = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})
_PIXEL_DATA = 0x7FE00010


def read_object(source: BinaryIO) -> Dataset:
    """The whole stored object, pixel data included."""
    try:
        return dcmread(source)
    except Exception as exc:
        raise CannotTranscode(f"the stored object cannot be read: {_one_line(exc)}") from exc


def stored_syntax(dataset: Dataset) -> UID:
    """The transfer syntax the object is stored in."""
    return UID(str(dataset.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))


def is_encapsulated(dataset: Dataset) -> bool:
    """Whether the pixel data is compressed (encapsulated)."""
    syntax = stored_syntax(dataset)
    return bool(syntax.is_transfer_syntax and syntax.is_encapsulated)


def frames(dataset: Dataset, numbers: Sequence[int], *, native: bool) -> list[bytes]:
    """Frames ``numbers`` (1-based) of the object: native pixels, or as stored."""
    if "PixelData" not in dataset:
        raise NotAcceptable("this object has no image (no Pixel Data), so no frames")
    count = number_of_frames(dataset)
    for number in numbers:
        if not 1 <= number <= count:
            raise NoSuchResource(
                f"frame {number} does not exist: the image has {count} frame"
                + ("s" if count > 1 else "")
            )
    try:
        if is_encapsulated(dataset) and not native:
            data = dataset.PixelData
            return [bytes(get_frame(data, n - 1, number_of_frames=count)) for n in numbers]
        if stored_syntax(dataset) in _NATIVE_LITTLE and _byte_aligned(dataset):
            size = _frame_size(dataset)
            data = dataset.PixelData
            return [bytes(data[(n - 1) * size : n * size]) for n in numbers]
        return [_decoded(dataset, n - 1) for n in numbers]
    except (NoSuchResource, NotAcceptable):
        raise
    except Exception as exc:  # pydicom and the codecs raise many types
        raise CannotTranscode(f"the frames cannot be read: {_one_line(exc)}") from exc


def native_pixel_data(dataset: Dataset) -> bytes:
    """The whole Pixel Data as native little-endian pixels (decoded when compressed)."""
    count = number_of_frames(dataset)
    if stored_syntax(dataset) in _NATIVE_LITTLE:
        return bytes(dataset.PixelData)
    return b"".join(frames(dataset, range(1, count + 1), native=True))


def bulk_value(dataset: Dataset, tag: int) -> DataElement:
    """The element a BulkDataURI ``bulkdata/TAG`` names: at the top level, else the first
    one found in a sequence item."""
    if tag in dataset:
        return dataset[tag]
    for element in dataset.iterall():
        if int(element.tag) == tag:
            return element
    raise NoSuchResource(f"the object has no element ({tag >> 16:04X},{tag & 0xFFFF:04X})")


def _byte_aligned(dataset: Dataset) -> bool:
    return int(dataset.get("BitsAllocated", 16)) % 8 == 0


def _frame_size(dataset: Dataset) -> int:
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    samples = int(dataset.get("SamplesPerPixel", 1))
    return rows * columns * samples * int(dataset.get("BitsAllocated", 16)) // 8


def _decoded(dataset: Dataset, index: int) -> bytes:
    pixels = pixel_array(dataset, index=index)
    little = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
    return bytes(np.ascontiguousarray(little).tobytes())


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:300]
