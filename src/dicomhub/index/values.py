"""Turning a pydicom data set into the column values of the index."""

from __future__ import annotations

import functools
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomhub.index.attributes import INTEGER_VRS, Level, attributes_of
from dicomhub.index.schema import LEVEL_TABLES


def text_value(value: Any) -> str:
    """A decoded element value as one string (multiple values joined by backslash)."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(text_value(v) for v in value)
    return str(value).strip()


def integer_value(value: Any) -> int | None:
    """An IS/US value as int, None when empty or not a number."""
    text = text_value(value).split("\\")[0]
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


@functools.cache
def _json_key(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return f"{tag:08X}"


def _json_value(element: dict[str, Any] | None) -> Any:
    """An element of the DICOM JSON header as the value pydicom would give (for text)."""
    if not element or "Value" not in element:
        return None
    values = [
        "=".join(v[g] for g in ("Alphabetic", "Ideographic", "Phonetic") if g in v)
        if isinstance(v, dict)
        else v
        for v in element["Value"]
    ]
    return values[0] if len(values) == 1 else values


def level_values(
    dataset: Dataset, level: Level, header: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Column values of ``level`` (computed columns excluded).

    With ``header`` (the data set's DICOM JSON, already decoded) values are read from it,
    which spares pydicom converting each element a second time; DS values, whose JSON form
    is a number that no longer says how it was written, still come from ``dataset``.
    """
    table = LEVEL_TABLES[level]
    values: dict[str, Any] = {}
    for attr in attributes_of(level):
        if attr.computed:
            continue
        if header is not None and attr.vr != "DS":
            raw = _json_value(header.get(_json_key(attr.keyword)))
        else:
            raw = dataset.get(attr.keyword)
        if attr.vr in INTEGER_VRS:
            values[attr.column] = integer_value(raw)
            continue
        text = text_value(raw)
        if attr.vr == "DA":
            text = text.replace(".", "")
        length = getattr(table.c[attr.column].type, "length", None)
        values[attr.column] = text[:length] if length else text
    return values


def character_set(dataset: Dataset) -> str:
    """SpecificCharacterSet as stored (multiple values joined by backslash)."""
    return text_value(dataset.get("SpecificCharacterSet"))[:200]
