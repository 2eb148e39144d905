"""Transcoding stored objects for peers that did not accept their stored transfer syntax.

Every case runs on pydicom's bundled test files and reads the result back as a Part 10 file
made of fresh file meta and the transcoded bytes.  Pixel values are compared with an
uncompressed reference of the same image where one exists (the MR_small and SC_rgb families),
otherwise with what pydicom decodes from the stored object.
"""

from __future__ import annotations

import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels.encoders.base import (
    Encoder,
    JPEG2000LosslessEncoder,
    JPEGLSLosslessEncoder,
    RLELosslessEncoder,
)
from pydicom.uid import (
    JPEG2000,
    MPEG2MPML,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from dicomhub.errors import CannotTranscode
from dicomhub.imaging.transcode import can_transcode, fallback_syntaxes, transcode

UNCOMPRESSED = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
LOSSLESS_ENCODERS: dict[str, Encoder] = {
    RLELossless: RLELosslessEncoder,
    JPEG2000Lossless: JPEG2000LosslessEncoder,
    JPEGLSLossless: JPEGLSLosslessEncoder,
}
LOSSY = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000, JPEGLSNearLossless)
WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_MODULE = {
    0x00280004,  # Photometric Interpretation: colour JPEG is decoded to RGB
    0x00280006,  # Planar Configuration
    0x7FE00001,  # Extended Offset Table
    0x7FE00002,  # Extended Offset Table Lengths
    0x7FE00010,  # Pixel Data
}


def _path(name: str) -> Path:
    found = get_testdata_file(name)
    if found is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(str(found))


def _stored(name: str) -> bytes:
    return _path(name).read_bytes()


def _part10(data_set: bytes, syntax: str, like: Dataset) -> bytes:
    """A Part 10 file: fresh file meta for `syntax`, then `data_set` as transcoded."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = like.SOPClassUID
    meta.MediaStorageSOPInstanceUID = like.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1421.1")
    fp = DicomBytesIO()
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta)
    fp.write(data_set)
    written: bytes = fp.getvalue()
    return written


def _read_back(data_set: bytes, syntax: str, like: Dataset) -> Dataset:
    """`data_set` parsed as pydicom reads a received file, checked to be in `syntax`."""
    back = dcmread(BytesIO(_part10(data_set, syntax, like)))
    target = UID(syntax)
    assert back.original_encoding == (target.is_implicit_VR, target.is_little_endian)
    return back


def _pixels(name: str) -> NDArray[np.generic]:
    array: NDArray[np.generic] = dcmread(_path(name)).pixel_array
    return array


def _value(elem: DataElement, little_endian: bool | None) -> object:
    """An element's value, word values as numbers (their bytes depend on the byte order)."""
    size = WORD_SIZES.get(elem.VR)
    if size is None:
        return elem.value
    order = "<" if little_endian else ">"
    return np.frombuffer(elem.value, f"{order}u{size}").tolist()


def _assert_same_attributes(original: Dataset, back: Dataset) -> None:
    """Every attribute outside the pixel module is kept, value for value.

    Private attributes are only checked to be present: written in implicit VR, the VR they
    are read back with is the reader's guess, not something the writer controls.
    """
    for elem in original:
        if elem.tag.is_private:
            assert elem.tag in back
        elif elem.tag not in PIXEL_MODULE:
            expected = _value(elem, original.original_encoding[1])
            assert _value(back[elem.tag], back.original_encoding[1]) == expected, elem.tag
    assert back.SOPInstanceUID == original.SOPInstanceUID


def _data_set_offset(path: Path) -> int:
    """Preamble, 'DICM', the group length element and the group it measures."""
    meta_length = int(dcmread(path, stop_before_pixels=True).file_meta[0x00020000].value)
    return 128 + 4 + 12 + meta_length


# ---- identity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ],
)
def test_stored_syntax_returns_the_stored_data_set_bytes(name: str) -> None:
    path = _path(name)
    stored = path.read_bytes()
    syntax = dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID

    assert transcode(stored, syntax) == stored[_data_set_offset(path) :]
    assert can_transcode(syntax, syntax)


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_bytearray_and_memoryview_are_accepted(wrap: type[bytearray] | type[memoryview]) -> None:
    stored = _stored("CT_small.dcm")

    assert transcode(wrap(stored), ExplicitVRLittleEndian) == transcode(
        stored, ExplicitVRLittleEndian
    )
    assert transcode(wrap(stored), ImplicitVRLittleEndian) == transcode(
        stored, ImplicitVRLittleEndian
    )


# ---- uncompressed to uncompressed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("CT_small.dcm", "CT_small.dcm"),
        ("MR_small_implicit.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("image_dfl.dcm", "image_dfl.dcm"),
        ("SC_rgb_small_odd_big_endian.dcm", "SC_rgb_small_odd.dcm"),
        ("rtdose_expb_1frame.dcm", "rtdose_1frame.dcm"),
        ("liver_expb_1frame.dcm", "liver_1frame.dcm"),
        ("examples_palette.dcm", "examples_palette.dcm"),
    ],
)
@pytest.mark.parametrize("target", UNCOMPRESSED)
def test_uncompressed_pairs_keep_pixels_and_attributes(
    name: str, reference: str, target: str
) -> None:
    original = dcmread(_path(name))

    back = _read_back(transcode(_stored(name), target), target, original)

    assert np.array_equal(back.pixel_array, _pixels(reference))
    _assert_same_attributes(original, back)
    assert back.PhotometricInterpretation == original.PhotometricInterpretation
    assert can_transcode(original.file_meta.TransferSyntaxUID, target)


def test_big_endian_swaps_pixel_words_and_luts() -> None:
    original = dcmread(_path("examples_palette.dcm"))
    ct = dcmread(_path("CT_small.dcm"))

    palette = _read_back(
        transcode(_stored("examples_palette.dcm"), ExplicitVRBigEndian),
        ExplicitVRBigEndian,
        original,
    )
    ct_back = _read_back(
        transcode(_stored("CT_small.dcm"), ExplicitVRBigEndian), ExplicitVRBigEndian, ct
    )

    lut = "RedPaletteColorLookupTableData"
    assert palette[lut].VR == "OW"
    assert palette[lut].value == np.frombuffer(original[lut].value, "<u2").astype(">u2").tobytes()
    assert palette["PixelData"].VR == "OB"  # 8-bit pixels: no byte order
    assert palette.PixelData == original.PixelData
    assert ct_back["PixelData"].VR == "OW"
    assert ct_back.PixelData == np.frombuffer(ct.PixelData, "<u2").astype(">u2").tobytes()


def test_deflated_output_is_a_raw_deflate_stream_of_even_length() -> None:
    original = dcmread(_path("CT_small.dcm"))

    deflated = transcode(_stored("CT_small.dcm"), DeflatedExplicitVRLittleEndian)

    assert len(deflated) % 2 == 0
    assert len(deflated) < len(transcode(_stored("CT_small.dcm"), ExplicitVRLittleEndian))
    back = _read_back(deflated, DeflatedExplicitVRLittleEndian, original)
    assert np.array_equal(back.pixel_array, original.pixel_array)


# ---- compressed to uncompressed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_2k_lossless.dcm"),
        ("JPEG2000.dcm", "JPEG2000.dcm"),
        ("JPEGLSNearLossless_16.dcm", "JPEGLSNearLossless_16.dcm"),
        ("JPGExtended.dcm", "JPGExtended.dcm"),
        ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_dcmtk.dcm"),
    ],
)
@pytest.mark.parametrize("target", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_compressed_sources_decompress(name: str, reference: str, target: str) -> None:
    original = dcmread(_path(name))
    source = original.file_meta.TransferSyntaxUID

    back = _read_back(transcode(_stored(name), target), target, original)

    assert np.array_equal(back.pixel_array, _pixels(reference))
    _assert_same_attributes(original, back)
    words = target == ImplicitVRLittleEndian or original.BitsAllocated > 8
    expected_vr = "OW" if words else "OB"
    assert expected_vr == back["PixelData"].VR
    assert back.get("NumberOfFrames", 1) == original.get("NumberOfFrames", 1)
    assert can_transcode(source, target)


def test_jpeg_baseline_ybr_comes_out_as_rgb() -> None:
    original = dcmread(_path("SC_rgb_jpeg_dcmtk.dcm"))
    assert original.PhotometricInterpretation.startswith("YBR")

    back = _read_back(
        transcode(_stored("SC_rgb_jpeg_dcmtk.dcm"), ExplicitVRLittleEndian),
        ExplicitVRLittleEndian,
        original,
    )

    assert back.PhotometricInterpretation == "RGB"
    assert np.array_equal(back.pixel_array, original.pixel_array)


@pytest.mark.parametrize("target", [DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_compressed_source_to_deflated_and_big_endian(target: str) -> None:
    original = dcmread(_path("MR_small_jp2klossless.dcm"))

    back = _read_back(transcode(_stored("MR_small_jp2klossless.dcm"), target), target, original)

    assert np.array_equal(back.pixel_array, _pixels("MR_small.dcm"))


# ---- to lossless compression -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("CT_small.dcm", "CT_small.dcm"),
        ("MR_small_implicit.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("SC_rgb.dcm", "SC_rgb.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_dcmtk.dcm"),
        ("JPEG2000.dcm", "JPEG2000.dcm"),
    ],
)
@pytest.mark.parametrize("target", list(LOSSLESS_ENCODERS))
def test_lossless_targets_follow_encoder_availability(
    name: str, reference: str, target: str
) -> None:
    original = dcmread(_path(name))
    source = original.file_meta.TransferSyntaxUID

    if not LOSSLESS_ENCODERS[target].is_available:
        assert not can_transcode(source, target)
        with pytest.raises(CannotTranscode, match="encoder is not installed") as refused:
            transcode(_stored(name), target)
        assert UID(target).name in str(refused.value)
        assert source.name in str(refused.value)
        return

    assert can_transcode(source, target)
    back = _read_back(transcode(_stored(name), target), target, original)
    assert back["PixelData"].is_undefined_length
    assert np.array_equal(back.pixel_array, _pixels(reference))
    _assert_same_attributes(original, back)


def test_rle_is_always_available() -> None:
    assert can_transcode(ExplicitVRLittleEndian, RLELossless)
    assert can_transcode(JPEGBaseline8Bit, RLELossless)


def test_pixels_the_encoder_cannot_take_are_refused_with_the_reason() -> None:
    # RLE Lossless has no YBR_FULL_422 profile (PS3.5 8.2.2)
    with pytest.raises(CannotTranscode) as refused:
        transcode(_stored("SC_ybr_full_422_uncompressed.dcm"), RLELossless)

    assert str(refused.value).startswith(
        "Cannot transcode from Explicit VR Little Endian to RLE Lossless: "
    )


# ---- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", LOSSY)
def test_lossy_targets_are_refused(target: str) -> None:
    assert not can_transcode(ExplicitVRLittleEndian, target)
    assert not can_transcode(JPEG2000Lossless, target)

    with pytest.raises(CannotTranscode, match="only losslessly") as refused:
        transcode(_stored("CT_small.dcm"), target)

    assert f"from Explicit VR Little Endian to {UID(target).name}:" in str(refused.value)


def test_unknown_syntaxes_are_refused() -> None:
    assert not can_transcode(ExplicitVRLittleEndian, "1.2.3.4")
    assert not can_transcode("1.2.3.4", ExplicitVRLittleEndian)
    assert not can_transcode(MPEG2MPML, ExplicitVRLittleEndian)  # no video decoder
    with pytest.raises(CannotTranscode, match="not a transfer syntax"):
        transcode(_stored("CT_small.dcm"), "1.2.3.4")


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"not a DICOM file at all" * 20,
        b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff",
    ],
)
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(CannotTranscode, match=r"^Cannot transcode from .* to Explicit VR Little"):
        transcode(garbage, ExplicitVRLittleEndian)


def test_corrupt_compressed_pixel_data_is_refused() -> None:
    stored = _stored("MR_small_jp2klossless.dcm")
    start = stored.index(b"\xff\x4f\xff\x51")  # SOC then SIZ: the J2K codestream header
    damaged = stored[:start] + b"\x00" * 64 + stored[start + 64 :]

    with pytest.raises(CannotTranscode) as refused:
        transcode(damaged, ExplicitVRLittleEndian)

    assert str(refused.value).startswith(
        "Cannot transcode from JPEG 2000 Image Compression (Lossless Only) "
        "to Explicit VR Little Endian: "
    )


# ---- proposals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (ImplicitVRLittleEndian, (ExplicitVRLittleEndian,)),
        (ExplicitVRLittleEndian, (ImplicitVRLittleEndian,)),
        (DeflatedExplicitVRLittleEndian, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        (ExplicitVRBigEndian, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        (JPEGBaseline8Bit, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        (JPEG2000Lossless, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        (RLELossless, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        (HTJ2KLossless, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),
        (MPEG2MPML, ()),
        ("1.2.3.4", ()),
    ],
)
def test_fallback_syntaxes(source: str, expected: tuple[str, ...]) -> None:
    assert fallback_syntaxes(source) == expected


# ---- DCMTK reads what is produced ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target"),
    [("JPEG2000.dcm", ExplicitVRLittleEndian), ("CT_small.dcm", JPEG2000Lossless)],
)
def test_dcmdump_accepts_transcoded_j2k(name: str, target: str, tmp_path: Path) -> None:
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        pytest.skip("DCMTK dcmdump is not installed")
    if not can_transcode(JPEG2000Lossless, target) or not can_transcode(
        ExplicitVRLittleEndian, target
    ):
        pytest.skip("no JPEG 2000 Lossless encoder installed")
    original = dcmread(_path(name))
    path = tmp_path / "out.dcm"
    path.write_bytes(_part10(transcode(_stored(name), target), target, original))

    done = subprocess.run([dcmdump, "-q", str(path)], capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("tool", "options", "target"),
    [("dcmconv", ["+te"], ExplicitVRBigEndian), ("dcmdrle", [], RLELossless)],
)
def test_dcmtk_decodes_big_endian_and_rle_output(
    tool: str, options: list[str], target: str, tmp_path: Path
) -> None:
    program = shutil.which(tool)
    if program is None:
        pytest.skip(f"DCMTK {tool} is not installed")
    original = dcmread(_path("CT_small.dcm"))
    produced, converted = tmp_path / "produced.dcm", tmp_path / "converted.dcm"
    produced.write_bytes(_part10(transcode(_stored("CT_small.dcm"), target), target, original))

    command = [program, *options, str(produced), str(converted)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert dcmread(converted).PixelData == original.PixelData
