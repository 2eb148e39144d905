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

import functools
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dicomhub.rawheader import Unsupported, element_json

BulkHandler = Callable[[DataElement], str]

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
    value: bytes = element.value or b""
    if vr in _BULK and len(value) > (threshold // 4) * 3:
        raise _Fallback  # BulkDataURI: the handler wants a DataElement; rare in headers
    try:
        return element_json(vr, value, plain_text)
    except Unsupported:
        raise _Fallback from None


@functools.cache
def json_key(keyword: str) -> str:
    """The DICOM JSON key (8 hex digits) of an attribute keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return f"{tag:08X}"


def json_text(element: dict[str, Any] | None) -> str:
    """A DICOM JSON element's value as one string: values joined by backslash, a person
    name's component groups by ``=``, as pydicom's ``str`` of the value gives it."""
    if not element:
        return ""
    values = element.get("Value")
    if not values:
        return ""
    if len(values) == 1 and type(values[0]) is str:
        return values[0].strip()
    texts = [
        "=".join(v[g] for g in ("Alphabetic", "Ideographic", "Phonetic") if g in v)
        if isinstance(v, dict)
        else str(v).strip()
        for v in values
    ]
    return "\\".join(texts)
