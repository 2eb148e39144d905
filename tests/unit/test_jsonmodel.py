"""The fast DICOM JSON of a header equals pydicom's ``to_json_dict`` on every file pydicom
ships for its own tests (character sets, big endian, implicit VR, sequences, private tags)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
import pytest
from pydicom.dataelem import DataElement

from dicomhub.header import BULK_THRESHOLD
from dicomhub.jsonmodel import to_json
from tests.factories import make_dataset, write_file

TEST_FILES = sorted(
    p
    for folder in ("test_files", "charset_files")
    for p in (Path(pydicom.data.__file__).parent / folder).rglob("*")
    if p.is_file()
)


def _bulk(element: DataElement) -> str:
    return f"bulkdata/{element.tag:08X}"


def _reference(path: Path) -> dict[str, Any] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            return dict(dataset.to_json_dict(BULK_THRESHOLD, _bulk))
    except Exception:
        return None  # not something pydicom reads: nothing to compare


def _normal(value: dict[str, Any]) -> Any:
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_same_as_pydicom(path: Path) -> None:
    reference = _reference(path)
    if reference is None:
        pytest.skip("pydicom cannot read it either")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        assert _normal(to_json(dataset, _bulk, BULK_THRESHOLD)) == _normal(reference)


def test_enough_files_compared() -> None:
    assert sum(_reference(p) is not None for p in TEST_FILES) > 100


def test_generated_object_with_every_common_vr(tmp_path: Path) -> None:
    ds = make_dataset(patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう")
    ds.ImageType = ["ORIGINAL ", "PRIMARY", ""]
    ds.PatientWeight = "70"
    ds.WindowCenter = ["40", "-600.5"]
    ds.add_new(0x00091010, "OB", b"\x01\x02\x03")
    ds.add_new(0x00091011, "FD", [1.5, -2.0])
    path = write_file(ds, tmp_path / "a.dcm")
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    reference = pydicom.dcmread(path, stop_before_pixels=True).to_json_dict(BULK_THRESHOLD, _bulk)
    assert _normal(to_json(dataset, _bulk, BULK_THRESHOLD)) == _normal(reference)
