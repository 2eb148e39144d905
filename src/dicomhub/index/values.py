"""Turning a parsed header into the column values of the index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dicomhub.header import text_value
from dicomhub.index.attributes import INTEGER_VRS, Level, attributes_of
from dicomhub.index.schema import LEVEL_TABLES
from dicomhub.jsonmodel import json_key, json_text

__all__ = ["character_set", "integer_value", "level_values", "text_value"]


def integer_value(text: str) -> int | None:
    """An IS/US value as int, None when empty or not a number."""
    first = text.split("\\", 1)[0]
    try:
        return int(float(first)) if first else None
    except ValueError:
        return None


def _lengths(level: Level) -> list[tuple[str, str, str, str, int | None]]:
    table = LEVEL_TABLES[level]
    return [
        (
            a.keyword,
            json_key(a.keyword),
            a.vr,
            a.column,
            getattr(table.c[a.column].type, "length", None),
        )
        for a in attributes_of(level)
        if not a.computed
    ]


_COLUMNS = {level: _lengths(level) for level in Level}


def level_values(
    header: Mapping[str, Any], level: Level, ds_texts: Mapping[str, str]
) -> dict[str, Any]:
    """Column values of ``level`` (computed columns excluded) from the header's DICOM JSON;
    DS values, whose JSON form is a number that no longer says how it was written, come
    from ``ds_texts`` (keyword -> text)."""
    values: dict[str, Any] = {}
    for keyword, key, vr, column, length in _COLUMNS[level]:
        text = ds_texts.get(keyword, "") if vr == "DS" else json_text(header.get(key))
        if vr in INTEGER_VRS:
            values[column] = integer_value(text)
            continue
        if vr == "DA":
            text = text.replace(".", "")
        values[column] = text[:length] if length else text
    return values


def character_set(header: Mapping[str, Any]) -> str:
    """SpecificCharacterSet as stored (multiple values joined by backslash)."""
    return json_text(header.get("00080005"))[:200]
