"""Transfer syntax conversion of stored objects, for peers that did not accept the stored syntax.

Objects are stored byte for byte as received.  When one is sent (C-MOVE and C-GET
sub-operations, forwarding) to a peer that accepted no presentation context in its stored
syntax, its data set is re-encoded here:

* between uncompressed syntaxes, pixel data is not decoded: only the byte order of word
  values (pixel data, LUTs, overlays) changes when big endian is on one side;
* compressed pixel data is decoded with the installed pydicom plugins (colour JPEG comes out
  as RGB, as pydicom decodes it);
* compression is only ever lossless (RLE, JPEG 2000 Lossless, JPEG-LS Lossless), and only
  when its encoder is installed.

The SOP Instance UID is kept: the receiver gets exactly the pixel values the stored object
decodes to.
"""

from __future__ import annotations

import zlib
from io import BytesIO

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.filewriter import write_dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import (
    JPEG2000LosslessEncoder,
    JPEGLSLosslessEncoder,
    RLELosslessEncoder,
)
from pydicom.pixels.utils import compress, decompress
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomhub.errors import CannotTranscode

_UNCOMPRESSED = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    }
)
_LOSSLESS_ENCODERS = {
    encoder.UID: encoder
    for encoder in (RLELosslessEncoder, JPEG2000LosslessEncoder, JPEGLSLosslessEncoder)
}
_PREFERRED_FALLBACKS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
"""Byte-swapped between little and big endian; other VRs are decoded and re-encoded."""
_PIXEL_DATA = 0x7FE00010
_EXTENDED_OFFSET_TABLE = (0x7FE00001, 0x7FE00002)


def transcode(part10: bytes | bytearray | memoryview, target: str) -> bytes:
    """The data set of the Part 10 object `part10` (no preamble, no file meta) encoded in
    transfer syntax `target`.

    When `target` is the stored syntax the stored bytes are returned as they are, never
    decoded.  Raises ``CannotTranscode`` when the conversion is not possible (see
    ``can_transcode``) or fails (damaged object, codec error).
    """
    data = part10 if isinstance(part10, bytes) else bytes(part10)
    wanted = UID(target)
    source = UID("")
    try:
        fp = BytesIO(data)
        read_preamble(fp, False)
        source = UID(_read_file_meta_info(fp).get("TransferSyntaxUID", ""))
        if source == wanted:
            return data[fp.tell() :]
        reason = _refusal(source, wanted)
        if reason:
            raise CannotTranscode(_sentence(source, wanted, reason))
        fp.seek(0)
        return _encode(_decoded(dcmread(fp), source), wanted)
    except CannotTranscode:
        raise
    except InvalidDicomError as exc:
        reason = "not a DICOM Part 10 object (no preamble, 'DICM' prefix and file meta)"
        raise CannotTranscode(_sentence(source, wanted, reason)) from exc
    except Exception as exc:  # pydicom, numpy, zlib and the codecs raise many types
        raise CannotTranscode(_sentence(source, wanted, _one_line(exc))) from exc


def can_transcode(source: str, target: str) -> bool:
    """Whether ``transcode`` can turn an object stored in `source` into `target`: the
    decoder for `source` and the encoder for `target` are installed, and `target` is
    uncompressed or lossless."""
    return not _refusal(UID(source), UID(target))


def fallback_syntaxes(source: str) -> tuple[str, ...]:
    """Transfer syntaxes to propose, in order of preference, besides `source` itself, for an
    object stored in `source`.

    Explicit VR Little Endian then Implicit VR Little Endian, leaving out `source` and, for a
    compressed source, both when its decoder is not installed: every peer accepts one of
    them, and no pixel data needs compressing to produce them.
    """
    return tuple(
        syntax
        for syntax in _PREFERRED_FALLBACKS
        if syntax != source and can_transcode(source, syntax)
    )


def _refusal(source: UID, target: UID) -> str:
    """Why an object stored in `source` cannot be sent in `target`; empty when it can."""
    if source == target:
        return ""
    if source not in _UNCOMPRESSED:
        if not source:
            return "its file meta names no transfer syntax"
        if not (source.is_transfer_syntax and source.is_compressed):
            return "the stored transfer syntax is unknown"
        try:
            decoder = get_decoder(source)
        except NotImplementedError:
            return f"pydicom has no decoder for {source.name}"
        if not decoder.is_available:
            return f"its decoder is not installed ({'; '.join(decoder.missing_dependencies)})"
    if target in _UNCOMPRESSED:
        return ""
    if not target.is_transfer_syntax:
        return f"{target.name or 'an empty UID'} is not a transfer syntax"
    encoder = _LOSSLESS_ENCODERS.get(target)
    if encoder is None:
        names = ", ".join(uid.name for uid in _LOSSLESS_ENCODERS)
        return f"dicomhub compresses only losslessly, to {names}"
    if not encoder.is_available:
        return f"its encoder is not installed ({'; '.join(encoder.missing_dependencies)})"
    return ""


def _decoded(ds: Dataset, source: UID) -> Dataset:
    """`ds` with native, little endian pixel data (decompressed once if `source` is
    compressed)."""
    if source in _UNCOMPRESSED or "PixelData" not in ds:
        if not ds.original_encoding[1]:
            _swap_words(ds, to_little=True)
        return ds
    decompress(ds, as_rgb=True, generate_instance_uid=False)
    for tag in _EXTENDED_OFFSET_TABLE:  # describes the fragments just replaced
        ds.pop(tag, None)
    return ds


def _encode(ds: Dataset, target: UID) -> bytes:
    """The data set `ds` (native little endian pixel data) encoded in `target`."""
    if target not in _UNCOMPRESSED and "PixelData" in ds:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        compress(ds, target, generate_instance_uid=False)
    elif not target.is_little_endian:
        _swap_words(ds, to_little=False)
    out = DicomBytesIO()
    out.is_implicit_VR = target.is_implicit_VR
    out.is_little_endian = target.is_little_endian
    write_dataset(out, ds)
    encoded: bytes = out.getvalue()
    if target == DeflatedExplicitVRLittleEndian:
        deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        encoded = deflater.compress(encoded) + deflater.flush()
        if len(encoded) % 2:
            encoded += b"\x00"
    return encoded


def _swap_words(ds: Dataset, *, to_little: bool) -> None:
    """Reverse the byte order of every word value in `ds` and its sequences.

    Pixel data words are pixel cells (Bits Allocated wide, at least 16 bits when the VR is
    OW); written big endian, pixel data of 8 bits or less becomes OB, which has no byte order.
    """

    def swap(parent: Dataset, elem: DataElement) -> None:
        size = _WORD_SIZES.get(elem.VR, 0)
        if elem.tag == _PIXEL_DATA:
            bits = int(parent.get("BitsAllocated", 16))
            if not to_little:
                elem.VR = "OW" if bits > 8 else "OB"
            size = max(2, bits // 8) if elem.VR == "OW" else 0
        if size and elem.value:
            value: bytes = elem.value
            whole = len(value) // size
            words = np.frombuffer(value, dtype=f"u{size}", count=whole)
            elem.value = words.byteswap().tobytes() + value[whole * size :]

    ds.walk(swap)


def _sentence(source: UID, target: UID, reason: str) -> str:
    stored = source.name or "an unknown transfer syntax"
    return f"Cannot transcode from {stored} to {target.name or 'an empty UID'}: {reason}"


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (pydicom lists each plugin's failure on its own)."""
    return " ".join((str(exc) or type(exc).__name__).split())[:300]
