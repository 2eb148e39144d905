"""A data set's header in one pass over its raw bytes: completeness, DICOM JSON, DS texts.

pydicom's reader wraps every element in a ``RawDataElement`` inside a ``Dataset`` (about five
microseconds an element) and the ingest path would then walk the bytes a second time to check
that nothing is cut short.  For the usual object (little endian, standard VRs, ASCII text)
``scan`` does both at once: it checks every element, item and delimiter fits in the data, and
writes the DICOM JSON (PS3.18 F) of every element before the pixel data exactly as
``jsonmodel.to_json`` would.  It also keeps the raw text of the DS elements the index wants,
since their JSON numbers no longer say how they were written.

Anything else raises ``Unsupported``: big endian, implicit VR elements without a single
dictionary VR (private ones included), UN, AT, other character sets, values pydicom would read
differently, and every structural error.  The caller then takes the general pydicom path,
which stays the reference: it decides what an unusual object means and words the errors.  A
test compares the two on every file pydicom ships.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydicom._dicom_dict import DicomDictionary

Buffer = bytes | bytearray | memoryview

_TAG = struct.Struct("<HH")
_IMPLICIT = struct.Struct("<HHL")
_EXPLICIT = struct.Struct("<HH2sH")
_U32 = struct.Struct("<L")
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CHARSET = 0x00080005
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_MAX_DEPTH = 32

_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
_SHORT = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL"}
    | {"SS", "ST", "TM", "UI", "UL", "US"}
)
_WHOLE_STRIPPED = frozenset({"AS", "CS", "DA", "DT", "TM", "UI", "DS", "IS"})
_EACH_STRIPPED = frozenset({"LO", "SH", "UC"})
_SINGLE = frozenset({"LT", "ST", "UT"})
_EMPTY_OK = _WHOLE_STRIPPED | _EACH_STRIPPED | _SINGLE | {"AE", "PN"}
_BINARY = {
    "US": struct.Struct("<H"),
    "SS": struct.Struct("<h"),
    "UL": struct.Struct("<L"),
    "SL": struct.Struct("<l"),
    "FL": struct.Struct("<f"),
    "FD": struct.Struct("<d"),
}
_FLOATS = frozenset({"FL", "FD"})
_SPLIT_TEXT = _WHOLE_STRIPPED | _EACH_STRIPPED | {"AE"}
"""VRs whose ASCII text is split into values (inlined in the scanner's loop)."""
_KEYS: dict[int, str] = {}
"""DICOM JSON keys of the tags seen so far."""
_BULK = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_VR_BYTES = {vr.encode("ascii"): vr for vr in _LONG | _SHORT}
_DICTIONARY_VR: dict[int, str] = {
    tag: entry[0] for tag, entry in DicomDictionary.items() if entry[0] in _LONG | _SHORT
}
"""Implicit VR: the VR of every public element with exactly one VR."""


class Unsupported(Exception):
    """Not the usual object: read it with pydicom instead."""


@dataclass(frozen=True)
class ScannedHeader:
    """What one pass over a data set found."""

    json: dict[str, Any]
    """DICOM JSON of the elements before the pixel data (bulk data as BulkDataURIs)."""
    ds_texts: dict[int, str]
    """Raw text (stripped, values joined by backslash) of the top-level DS elements asked for."""
    end: int
    """Offset just after the last element: the size of the data."""


def scan(
    data: Buffer,
    offset: int,
    *,
    implicit: bool,
    bulk_threshold: int,
    ds_tags: Collection[int] = (),
) -> ScannedHeader:
    """Walk the little-endian data set that starts at ``offset`` and runs to the end of
    ``data``; raise ``Unsupported`` for anything the fast path does not take."""
    scanner = _Scanner(bytes(data) if isinstance(data, memoryview) else data, implicit)
    scanner.bulk_limit = (bulk_threshold // 4) * 3
    scanner.ds_tags = frozenset(ds_tags)
    json, end = scanner.items(offset, len(data), top=True, plain=True, depth=0)
    return ScannedHeader(json, scanner.ds_texts, end)


class _Scanner:
    def __init__(self, data: bytes | bytearray, implicit: bool) -> None:
        self.data = data
        self.size = len(data)
        self.implicit = implicit
        self.bulk_limit = 0
        self.ds_tags: frozenset[int] = frozenset()
        self.ds_texts: dict[int, str] = {}

    def items(
        self, pos: int, end: int, *, top: bool, plain: bool, depth: int, delimited: bool = False
    ) -> tuple[dict[str, Any], int]:
        """The elements from ``pos`` up to ``end`` (or up to an item delimiter when
        ``delimited``) as DICOM JSON; returns it and the position after them."""
        data, size, implicit = self.data, self.size, self.implicit
        explicit_header, vr_of, key_of = _EXPLICIT.unpack_from, _VR_BYTES.get, _KEYS.get
        out: dict[str, Any] = {}
        writing = True
        text_seen = False
        while pos < end or delimited:
            if pos + 8 > size:
                raise Unsupported("element header past the end")
            if implicit:
                group, element, length = _IMPLICIT.unpack_from(data, pos)
                tag = (group << 16) | element
                if top and tag in _PIXEL_TAGS:
                    writing = False
                vr = _DICTIONARY_VR.get(tag) or ("OB" if not writing else "")
                if not vr and group != 0xFFFE:
                    raise Unsupported("implicit VR element without a single dictionary VR")
                pos += 8
            else:
                group, element, code, length = explicit_header(data, pos)
                tag = (group << 16) | element
                if top and tag in _PIXEL_TAGS:
                    writing = False
                vr = vr_of(code, "")
                if vr in _LONG:
                    if pos + 12 > size:
                        raise Unsupported("element header past the end")
                    length = _U32.unpack_from(data, pos + 8)[0]
                    pos += 12
                else:
                    pos += 8
            if group == 0xFFFE:
                if delimited and tag == _ITEM_END:
                    return out, pos
                raise Unsupported("unexpected delimiter")
            if not vr:
                raise Unsupported("unknown VR")
            if length == _UNDEFINED:
                if vr == "SQ":
                    value, pos = self.sequence(pos, None, plain, depth)
                elif not writing and vr in _BULK:
                    pos = self.fragments(pos)
                    continue
                else:
                    raise Unsupported("undefined length outside a sequence")
            else:
                stop = pos + length
                if stop > end or stop > size:
                    raise Unsupported("element runs past its end")
                if vr == "SQ":
                    value, _ = self.sequence(pos, stop, plain, depth)
                elif not writing:
                    pos = stop
                    continue
                elif vr in _SPLIT_TEXT and plain and stop > pos and tag != _CHARSET:
                    # The common case, inline: ASCII text split into values.
                    raw = data[pos:stop]
                    if not raw.isascii():
                        raise Unsupported("text that is not plain ASCII")
                    text_seen = True
                    if vr in _EACH_STRIPPED:
                        parts = [part.rstrip("\0 ") for part in raw.decode("ascii").split("\\")]
                    elif vr == "AE":
                        parts = [part.strip() for part in raw.decode("ascii").split("\\")]
                    else:
                        parts = raw.decode("ascii").rstrip(" \0").split("\\")
                    if len(parts) == 1 and not parts[0]:
                        value = {"vr": vr}
                    elif vr == "IS" or vr == "DS":  # noqa: PLR1714 - two string compares are cheaper
                        value = {"vr": vr, "Value": _numbers(parts, vr)}
                        if top and tag in self.ds_tags:
                            self.ds_texts[tag] = _ds_text(raw)
                    else:
                        value = {"vr": vr, "Value": parts}
                else:
                    if tag == _CHARSET:
                        plain = _is_plain(data[pos:stop])
                        if not plain and text_seen:
                            raise Unsupported("text before a code-extension character set")
                    elif vr not in _BINARY and vr not in _BULK:
                        text_seen = True
                    value = self.value(tag, vr, pos, stop, plain)
                    if top and tag in self.ds_tags:
                        self.ds_texts[tag] = _ds_text(data[pos:stop])
                pos = stop
            if writing:
                key = key_of(tag)
                if key is None:
                    key = _KEYS[tag] = f"{tag:08X}"
                out[key] = value
        return out, pos

    def sequence(
        self, pos: int, end: int | None, plain: bool, depth: int
    ) -> tuple[dict[str, Any], int]:
        """A sequence's items (defined length when ``end`` is given, else up to its
        delimiter); returns its JSON and the position after it."""
        if depth >= _MAX_DEPTH:
            raise Unsupported("sequences nested too deeply")
        items: list[dict[str, Any]] = []
        while end is None or pos < end:
            tag, length, pos = self.item_header(pos)
            if tag == _SEQ_END and end is None:
                return {"vr": "SQ", "Value": items}, pos
            if tag != _ITEM:
                raise Unsupported("not an item in a sequence")
            if length == _UNDEFINED:
                item, pos = self.items(
                    pos, self.size, top=False, plain=plain, depth=depth + 1, delimited=True
                )
            else:
                stop = pos + length
                if stop > self.size or (end is not None and stop > end):
                    raise Unsupported("item runs past its end")
                item, pos = self.items(pos, stop, top=False, plain=plain, depth=depth + 1)
                if pos != stop:
                    raise Unsupported("item length does not match its elements")
            items.append(item)
        if pos != end:
            raise Unsupported("sequence length does not match its items")
        return {"vr": "SQ", "Value": items}, pos

    def item_header(self, pos: int) -> tuple[int, int, int]:
        """An item or delimiter header: its tag, its length and the position after it."""
        if pos + 8 > self.size:
            raise Unsupported("item header past the end")
        group, element, length = _IMPLICIT.unpack_from(self.data, pos)
        return (group << 16) | element, length, pos + 8

    def fragments(self, pos: int) -> int:
        """Skip encapsulated pixel data (items up to the sequence delimiter)."""
        while True:
            tag, length, pos = self.item_header(pos)
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM or length == _UNDEFINED or pos + length > self.size:
                raise Unsupported("malformed encapsulated pixel data")
            pos += length

    def value(self, tag: int, vr: str, start: int, stop: int, plain: bool) -> dict[str, Any]:
        """One element's JSON (bulk data above the limit as a BulkDataURI)."""
        if vr in _BULK and stop - start > self.bulk_limit:
            return {"vr": vr, "BulkDataURI": f"bulkdata/{tag:08X}"}
        return element_json(vr, self.data[start:stop], plain)


def element_json(vr: str, raw: Buffer, plain: bool) -> dict[str, Any]:
    """The DICOM JSON of one little-endian element value as pydicom gives it (bulk data
    inline); ``Unsupported`` for what only pydicom can decide.  ``plain`` says whether ASCII
    bytes mean ASCII text in the data set's character set."""
    if vr in _BULK:
        if not raw:
            return {"vr": vr}
        return {"vr": vr, "InlineBinary": base64.b64encode(raw).decode("ascii")}
    if not raw:
        if vr in _EMPTY_OK or vr in _BINARY:
            return {"vr": vr}
        raise Unsupported("empty value of this VR")
    codec = _BINARY.get(vr)
    if codec is not None:
        if len(raw) % codec.size:
            raise Unsupported("binary value of an odd length")
        numbers: list[Any] = [n for (n,) in struct.iter_unpack(codec.format, raw)]
        if vr in _FLOATS:
            numbers = [float(n) for n in numbers]
        return {"vr": vr, "Value": numbers}
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    if not plain or not raw.isascii():
        raise Unsupported("text that is not plain ASCII")
    text = raw.decode("ascii")
    if vr in _SINGLE:
        stripped = text.rstrip("\0 ")
        return {"vr": vr, "Value": [stripped]} if stripped else {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": _person_names(text)}
    if vr in _WHOLE_STRIPPED:
        parts = text.rstrip(" \0").split("\\")
    elif vr in _EACH_STRIPPED:
        parts = [part.rstrip("\0 ") for part in text.split("\\")]
    elif vr == "AE":
        parts = [part.strip() for part in text.split("\\")]
    else:
        raise Unsupported(f"{vr} values are left to pydicom")
    if len(parts) == 1 and not parts[0]:
        return {"vr": vr}
    if vr in {"IS", "DS"}:
        return {"vr": vr, "Value": _numbers(parts, vr)}
    return {"vr": vr, "Value": parts}


def _is_plain(raw: Buffer) -> bool:
    """Whether a SpecificCharacterSet value leaves ASCII bytes meaning ASCII text."""
    text = bytes(raw).decode("ascii", "replace")
    return "2022" not in text and "IR 13" not in text


def _ds_text(raw: Buffer) -> str:
    """A DS value as the index keeps it: each value stripped, joined by backslash."""
    text = bytes(raw).decode("ascii", "replace").strip(" \0")
    return "\\".join(part.strip(" \0") for part in text.split("\\"))


def _numbers(parts: list[str], vr: str) -> list[int] | list[float]:
    """IS or DS values as numbers (blanks around each are allowed, an empty one is not)."""
    try:
        if vr == "IS":
            return [int(part) for part in parts]
        return [float(part) for part in parts]
    except ValueError:
        raise Unsupported("not a number") from None


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
