"""Header parsing, completeness checks and identity checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from dicomhub.errors import CannotUnderstand, DataSetDoesNotMatchSOPClass, InvalidInstanceIdentity
from dicomhub.header import KnownMeta, check_identity, header_json, is_valid_uid, read_header
from tests.factories import make_dataset, write_file


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None
    return Path(str(path))


@pytest.mark.parametrize(
    ("uid", "valid"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", True),
        ("1.2.3.0.4", True),
        ("1.2.03.4", False),  # leading zero in a component
        ("../x", False),
        ("1.2.3a", False),
        ("1.2..3", False),
        ("1." + "2" * 63, False),  # 65 characters
        ("1." + "2" * 62, True),  # 64 characters
        ("", False),
    ],
)
def test_uid_syntax(uid: str, valid: bool) -> None:
    assert is_valid_uid(uid) is valid


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_read_header_stops_before_pixels(tmp_path: Path, syntax: str) -> None:
    path = write_file(make_dataset(rows=64), tmp_path / "a.dcm", syntax)
    parsed = read_header(path)
    assert "PixelData" not in parsed.dataset
    assert parsed.transfer_syntax_uid == syntax
    assert parsed.file_size == path.stat().st_size
    raw = path.read_bytes()
    first_group = raw[parsed.dataset_offset : parsed.dataset_offset + 2]
    assert first_group == (b"\x00\x08" if syntax == ExplicitVRBigEndian else b"\x08\x00")
    assert raw[128:132] == b"DICM"


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "JPEG2000.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPEG-lossy.dcm",
    ],
)
def test_valid_test_files_are_read(name: str) -> None:
    parsed = read_header(_testdata(name))
    header_json(parsed.dataset)
    check_identity(parsed.dataset)


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "JPEG2000.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",  # deflated: the file meta is parsed anyway
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_known_file_meta_gives_the_same_header(name: str) -> None:
    """A receiver that wrote the file meta passes its facts; the result does not change."""
    path = _testdata(name)
    parsed = read_header(path)
    known = KnownMeta(parsed.dataset_offset, parsed.transfer_syntax_uid)
    fast = read_header(path.read_bytes(), known)
    assert (fast.dataset_offset, fast.transfer_syntax_uid, fast.file_size) == (
        parsed.dataset_offset,
        parsed.transfer_syntax_uid,
        parsed.file_size,
    )
    assert header_json(fast.dataset) == header_json(parsed.dataset)


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("MR_truncated.dcm", "1.2.840.10008.1.2.1"),
        # Implicit VR although its file meta says JPEG Baseline; ends in a bad length.
        ("SC_rgb_jpeg.dcm", "1.2.840.10008.1.2.4.50"),
    ],
)
def test_known_file_meta_still_checks_completeness(name: str, syntax: str) -> None:
    data = _testdata(name).read_bytes()
    offset = 144 + int.from_bytes(data[140:144], "little")
    with pytest.raises(CannotUnderstand, match="truncated"):
        read_header(data, KnownMeta(offset, syntax))


def test_truncated_pixel_data_is_refused() -> None:
    with pytest.raises(CannotUnderstand, match="truncated"):
        read_header(_testdata("MR_truncated.dcm"))


def test_value_cut_inside_a_sequence_is_refused() -> None:
    with pytest.raises(CannotUnderstand, match=r"truncated: element \(300A,00B0\)"):
        read_header(_testdata("rtplan_truncated.dcm"))


def test_truncated_encapsulated_pixel_data_is_refused(tmp_path: Path) -> None:
    data = _testdata("JPEG2000.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-100])
    with pytest.raises(CannotUnderstand, match="truncated"):
        read_header(path)


def test_file_without_meta_is_refused() -> None:
    with pytest.raises(CannotUnderstand, match="not a DICOM Part 10 file"):
        read_header(_testdata("no_meta.dcm"))


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    with pytest.raises(CannotUnderstand):
        read_header(path)


def test_invalid_value_named_in_error() -> None:
    parsed = read_header(_testdata("badVR.dcm"))
    with pytest.raises(CannotUnderstand, match=r"\(0028,0008\) NumberOfFrames"):
        header_json(parsed.dataset)


def test_identity_checks() -> None:
    ds = make_dataset(sop_uid="1.2.3.4")
    check_identity(ds, str(ds.SOPClassUID), "1.2.3.4")
    with pytest.raises(DataSetDoesNotMatchSOPClass):
        check_identity(ds, "1.2.840.10008.5.1.4.1.1.4", "1.2.3.4")
    with pytest.raises(InvalidInstanceIdentity, match="differs from the command"):
        check_identity(ds, str(ds.SOPClassUID), "1.2.3.5")
    for bad in ("../x", "1.2.abc", "1." + "2" * 63):
        ds.SOPInstanceUID = bad
        with pytest.raises(InvalidInstanceIdentity, match="not a valid UID"):
            check_identity(ds)
    del ds.StudyInstanceUID
    ds.SOPInstanceUID = "1.2.3"
    with pytest.raises(InvalidInstanceIdentity, match="StudyInstanceUID is missing"):
        check_identity(ds)


def test_header_json_has_no_bulk_data(tmp_path: Path) -> None:
    ds = make_dataset()
    ds.add_new(0x00091010, "OB", b"\x01" * 4096)
    header = header_json(ds)
    assert header["00091010"] == {"vr": "OB", "BulkDataURI": "bulkdata/00091010"}
    assert header["00100010"]["Value"] == [{"Alphabetic": "DOE^JOHN"}]
