"""Index column values read from the DICOM JSON header equal those read from pydicom."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest

from dicomhub.header import header_json
from dicomhub.index.attributes import Level
from dicomhub.index.values import level_values
from tests.unit.test_jsonmodel import TEST_FILES


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_values_from_header_equal_values_from_dataset(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = pydicom.dcmread(path, stop_before_pixels=True)
            expected = {level: level_values(reference, level) for level in Level}
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            header = header_json(dataset)
        except Exception:
            pytest.skip("pydicom cannot read it")
        for level in Level:
            assert level_values(dataset, level, header) == expected[level]
