"""The one-pass header reader agrees with pydicom wherever it answers, and declines the rest."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from dicomhub.header import BULK_THRESHOLD, KnownMeta, ParsedHeader, read_header, text_value
from dicomhub.index.attributes import ATTRIBUTES, Level
from dicomhub.index.values import level_values
from dicomhub.rawheader import Unsupported, scan
from tests.factories import make_dataset, write_file
from tests.unit.test_jsonmodel import TEST_FILES

DS_TAGS = {0x00101020: "PatientSize", 0x00101030: "PatientWeight"}


def _bulk(element: Any) -> str:
    return f"bulkdata/{element.tag:08X}"


def _normal(value: dict[str, Any]) -> Any:
    return json.loads(json.dumps(value))


def _meta(data: bytes) -> tuple[int, UID]:
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    return fp.tell(), UID(meta.TransferSyntaxUID)


def _scan_file(path: Path) -> tuple[Any, Dataset] | None:
    """(scan result, pydicom's data set) for a little-endian Part 10 file pydicom reads."""
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offset, syntax = _meta(data)
            dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            reference = dataset.to_json_dict(BULK_THRESHOLD, _bulk)
    except Exception:
        return None
    if not syntax.is_little_endian or syntax.is_deflated:
        return None
    try:
        found = scan(
            data,
            offset,
            implicit=syntax.is_implicit_VR,
            bulk_threshold=BULK_THRESHOLD,
            ds_tags=DS_TAGS,
        )
    except Unsupported:
        return None
    assert _normal(found.json) == _normal(reference), path.name
    return found, dataset


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_same_as_pydicom_or_declined(path: Path) -> None:
    result = _scan_file(path)
    if result is None:
        pytest.skip("declined, or not a file pydicom reads")
    found, dataset = result
    for tag, keyword in DS_TAGS.items():
        if keyword in dataset:
            assert found.ds_texts[tag] == text_value(dataset.get(keyword))


def test_most_files_take_the_fast_path() -> None:
    taken = sum(_scan_file(p) is not None for p in TEST_FILES)
    assert taken > 60


def _every_vr() -> Dataset:
    ds = make_dataset(rows=16)
    ds.PatientName = "Yamada^Tarou==yamada"
    ds.ImageType = ["ORIGINAL ", "PRIMARY", ""]
    ds.PatientWeight = "70.50"
    ds.PatientSize = "1.8"
    ds.WindowCenter = ["40", "-600.5"]
    ds.InstanceNumber = "7"
    ds.PatientComments = "trailing spaces   "
    ds.add_new(0x00091010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00091011, "OB", b"\x01\x02\x03")
    ds.add_new(0x00091012, "FD", [1.5, -2.0])
    ds.add_new(0x00091013, "OW", b"\x00\x01" * 2048)  # above the bulk threshold
    ds.add_new(0x00091014, "SL", [-5, 6])
    ds.add_new(0x00091015, "LO", "")
    item = Dataset()
    item.CodeValue = "T-A0100"
    item.CodingSchemeDesignator = "SRT"
    inner = Dataset()
    inner.CodeMeaning = "nested"
    item.ConceptNameCodeSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([item, Dataset()])
    ds.ReferencedImageSequence = Sequence([])
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined", [False, True])
def test_generated_object(tmp_path: Path, syntax: str, undefined: bool) -> None:
    ds = _every_vr()
    if syntax == ImplicitVRLittleEndian:
        for tag in [e.tag for e in ds if e.tag.is_private]:
            del ds[tag]  # implicit VR private elements are left to pydicom
    path = write_file(ds, tmp_path / "a.dcm", syntax)
    data = path.read_bytes()
    if undefined:
        # Rewrite with undefined-length sequences and items.
        dataset = pydicom.dcmread(path)
        for element in dataset.iterall():
            if element.VR == "SQ":
                element.is_undefined_length = True
                for sub in element.value:
                    sub.is_undefined_length_sequence_item = True
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        assert b"\xfe\xff\xdd\xe0" in data
    offset, found_syntax = _meta(data)
    parsed = read_header(data, KnownMeta(offset, found_syntax))
    assert parsed._json is not None, "the fast path was taken"
    reference = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert _normal(parsed.header) == _normal(reference.to_json_dict(BULK_THRESHOLD, _bulk))
    assert "7FE00010" not in parsed.header
    assert parsed.ds_texts == {"PatientSize": "1.8", "PatientWeight": "70.50"}
    # The data set pydicom would have read is still there when asked for.
    assert parsed.dataset.PatientName == ds.PatientName
    general = ParsedHeader.from_dataset(reference)
    for level in Level:
        assert level_values(parsed.header, level, parsed.ds_texts) == level_values(
            general.header, level, general.ds_texts
        )
    for keyword in ("SOPInstanceUID", "PatientName", "ImageType", "Modality"):
        assert parsed.text(keyword) == general.text(keyword)


def test_encapsulated_pixel_data_walked(tmp_path: Path) -> None:
    path = write_file(make_dataset(rows=16), tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    offset, _ = _meta(data)
    found = scan(data, offset, implicit=False, bulk_threshold=BULK_THRESHOLD)
    assert found.end == len(data)
    assert "7FE00010" not in found.json
    with pytest.raises(Unsupported):  # a fragment cut short
        scan(data[:-3], offset, implicit=False, bulk_threshold=BULK_THRESHOLD)
    with pytest.raises(Unsupported):  # no sequence delimiter
        scan(data[:-8], offset, implicit=False, bulk_threshold=BULK_THRESHOLD)


@pytest.mark.parametrize("cut", [1, 7, 100, 600])
def test_truncation_anywhere_is_declined(tmp_path: Path, cut: int) -> None:
    """Declined, so the general path words the error; read_header refuses it."""
    path = write_file(_every_vr(), tmp_path / "a.dcm")
    data = path.read_bytes()
    offset, _ = _meta(data)
    short = data[: len(data) - cut]
    with pytest.raises(Unsupported):
        scan(short, offset, implicit=False, bulk_threshold=BULK_THRESHOLD)


def test_declines_what_pydicom_must_decide(tmp_path: Path) -> None:
    latin = make_dataset(patient_name="Müller^Jürgen", charset="ISO_IR 100")
    data = write_file(latin, tmp_path / "latin.dcm").read_bytes()
    offset, _ = _meta(data)
    with pytest.raises(Unsupported):
        scan(data, offset, implicit=False, bulk_threshold=BULK_THRESHOLD)
    # ... and read_header still answers, through pydicom.
    parsed = read_header(data, KnownMeta(offset, ExplicitVRLittleEndian))
    assert parsed._json is None
    assert parsed.text("PatientName") == "Müller^Jürgen"


def test_index_keeps_every_ds_attribute() -> None:
    wanted = {a.keyword for a in ATTRIBUTES if a.vr == "DS" and not a.computed}
    assert wanted == set(DS_TAGS.values())
