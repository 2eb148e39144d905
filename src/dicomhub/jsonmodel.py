"""The DICOM JSON model (PS3.18 F) of a parsed header, made quickly from the raw elements.

pydicom's ``Dataset.to_json_dict`` first turns every raw element into a full ``DataElement``
(validating and wrapping each value), which costs more than everything else the ingest path
does per object.  Here the common cases are written straight from the raw bytes: ASCII text
of the string VRs, little-endian binary numbers and bulk data.  Everything else (other
character sets, AT, big endian, implicit VR without a dictionary VR, values pydicom would
reject) is handed to pydicom element by element, so the result is always what pydicom gives;
a test compares the two on pydicom's own test files.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

BulkHandler = Callable[[DataElement], str]

_WHOLE_STRIPPED = frozenset({"AS", "CS", "DA", "DT", "TM", "UI", "DS", "IS"})
"""Padding removed from the end of the whole value, then split (pydicom ``multi_string``)."""
_EACH_STRIPPED = frozenset({"LO", "SH", "UC"})
"""Split, then each value's trailing padding removed (pydicom ``convert_text``)."""
_SPLIT = _WHOLE_STRIPPED | _EACH_STRIPPED | {"AE"}
_SINGLE = frozenset({"LT", "ST", "UT"})
_BINARY = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
_BULK = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})


_CHARSET = BaseTag(0x00080005)


class _Fallback(Exception):
    """This element is left to pydicom."""


def to_json(
    dataset: Dataset, bulk: BulkHandler, threshold: int, *, plain_text: bool = True
) -> dict[str, Any]:
    """``dataset.to_json_dict(threshold, bulk)``, without converting common raw elements.

    ``plain_text`` says whether ASCII bytes mean ASCII text in the enclosing data set's
    character set (not so with ISO 2022 code extensions, whose escape sequences are ASCII
    bytes); a sequence item with its own SpecificCharacterSet decides for itself.
    """
    out: dict[str, Any] = {}
    little = dataset.original_encoding[1] is True  # else (big endian, unknown): pydicom
    charset = dataset._dict.get(_CHARSET)
    if charset is not None:
        plain_text = _is_plain(charset)
    for tag, element in dataset._dict.items():
        key = f"{tag:08X}"
        if isinstance(element, RawDataElement) and little:
            try:
                out[key] = _raw(element, bulk, threshold, plain_text)
                continue
            except _Fallback:
                pass
        elif isinstance(element, DataElement) and element.VR == "SQ":
            items = element.value
            value = [to_json(item, bulk, threshold, plain_text=plain_text) for item in items]
            out[key] = {"vr": "SQ", "Value": value}
            continue
        out[key] = dataset[tag].to_json_dict(bulk, threshold)
    return out


def _is_plain(element: RawDataElement | DataElement) -> bool:
    """Whether a SpecificCharacterSet element leaves ASCII bytes meaning ASCII text."""
    value = element.value
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace")
    elif isinstance(value, str):
        text = value
    else:
        text = "\\".join(str(v) for v in value or [])
    return "2022" not in text and "IR 13" not in text


def _raw(
    element: RawDataElement, bulk: BulkHandler, threshold: int, plain_text: bool
) -> dict[str, Any]:
    vr = element.VR
    if vr is None:
        try:
            vr = dictionary_VR(element.tag)
        except KeyError:
            raise _Fallback from None
    value: bytes | None = element.value
    if vr in _BULK:
        if not value:
            return {"vr": vr}
        if len(value) > (threshold // 4) * 3:
            raise _Fallback  # BulkDataURI: the handler wants a DataElement; rare in headers
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
    if not value:
        if vr in _SPLIT or vr in _SINGLE or vr in _BINARY or vr == "PN":
            return {"vr": vr}
        raise _Fallback
    if vr in _BINARY:
        code = _BINARY[vr]
        size = struct.calcsize("<" + code)
        if len(value) % size:
            raise _Fallback
        numbers = list(struct.unpack(f"<{len(value) // size}{code}", value))
        if code in "fd":
            numbers = [float(n) for n in numbers]
        return {"vr": vr, "Value": numbers}
    if not plain_text or not value.isascii():
        raise _Fallback
    text = value.decode("ascii")
    if vr in _SINGLE:
        stripped = text.rstrip("\0 ")
        return {"vr": vr, "Value": [stripped]} if stripped else {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": _person_names(text)}
    if vr not in _SPLIT:
        raise _Fallback
    if vr in _WHOLE_STRIPPED:
        parts = text.rstrip(" \0").split("\\")
    elif vr in _EACH_STRIPPED:
        parts = [part.rstrip("\0 ") for part in text.split("\\")]
    else:  # AE: leading spaces are not significant either
        parts = [part.strip() for part in text.split("\\")]
    if len(parts) == 1 and not parts[0]:
        return {"vr": vr}
    if vr in {"IS", "DS"}:
        return {"vr": vr, "Value": _numbers(parts, vr)}
    return {"vr": vr, "Value": parts}


def _numbers(parts: list[str], vr: str) -> list[int | float]:
    result: list[int | float] = []
    for raw in parts:
        part = raw.strip()
        if not part:
            raise _Fallback
        try:
            result.append(int(part) if vr == "IS" else float(part))
        except ValueError:
            raise _Fallback from None
    return result


def _person_names(text: str) -> list[dict[str, str]]:
    names = []
    for value in text.rstrip("\0 ").split("\\"):
        groups = value.split("=")
        name = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            name["Ideographic"] = groups[1]
        if len(groups) > 2:
            name["Phonetic"] = groups[2]
        names.append(name)
    return names
