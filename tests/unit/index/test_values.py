"""Index column values from a parsed header equal those read from pydicom's data set."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomhub.header import ParsedHeader, text_value
from dicomhub.index.attributes import INTEGER_VRS, Level, attributes_of
from dicomhub.index.schema import LEVEL_TABLES
from dicomhub.index.values import character_set, integer_value, level_values
from tests.unit.test_jsonmodel import TEST_FILES


def _reference(dataset: Dataset, level: Level) -> dict[str, Any]:
    """The column values straight from pydicom's values (the definition of what they are)."""
    values: dict[str, Any] = {}
    for attr in attributes_of(level):
        if attr.computed:
            continue
        text = text_value(dataset.get(attr.keyword))
        if attr.vr in INTEGER_VRS:
            values[attr.column] = integer_value(text)
            continue
        if attr.vr == "DA":
            text = text.replace(".", "")
        length = getattr(LEVEL_TABLES[level].c[attr.column].type, "length", None)
        values[attr.column] = text[:length] if length else text
    return values


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_values_from_header_equal_values_from_dataset(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            expected = {level: _reference(dataset, level) for level in Level}
            parsed = ParsedHeader.from_dataset(dataset)
            header = parsed.header
        except Exception:
            pytest.skip("pydicom cannot read it")
        for level in Level:
            assert level_values(header, level, parsed.ds_texts) == expected[level]
        assert character_set(header) == text_value(dataset.get("SpecificCharacterSet"))[:200]
