"""Turning a pydicom data set into the column values of the index."""

from __future__ import annotations

from typing import Any

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


def level_values(dataset: Dataset, level: Level) -> dict[str, Any]:
    """Column values of ``level`` read from ``dataset`` (computed columns excluded)."""
    table = LEVEL_TABLES[level]
    values: dict[str, Any] = {}
    for attr in attributes_of(level):
        if attr.computed:
            continue
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
