"""Reading a DICOM Part 10 file's header without its pixel data, and checking the whole file.

The header is parsed with ``stop_before_pixels``; the elements after it (pixel data, trailing
padding) are walked by their lengths only, so a truncated object is caught without decoding
or loading its pixels.
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.values import converters

from dicomhub.errors import CannotUnderstand, DataSetDoesNotMatchSOPClass, InvalidInstanceIdentity
from dicomhub.index.attributes import ATTRIBUTES
from dicomhub.jsonmodel import json_key, json_text, to_json
from dicomhub.rawheader import Unsupported, scan

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
BULK_THRESHOLD = 1024
_LONG_LENGTH_VRS = {
    b"OB",
    b"OW",
    b"OF",
    b"OD",
    b"OL",
    b"OV",
    b"SQ",
    b"UT",
    b"UN",
    b"UC",
    b"UR",
    b"SV",
    b"UV",
}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_MAX_DEPTH = 32
_VRS = frozenset(converters)
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_PLAIN_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian})
_DS_KEYWORDS = tuple(a.keyword for a in ATTRIBUTES if a.vr == "DS" and not a.computed)
_DS_TAGS = {keyword: int(json_key(keyword), 16) for keyword in _DS_KEYWORDS}


@dataclass
class ParsedHeader:
    """A file's header, where its data set starts and its transfer syntax.

    The header comes either from one pass over the raw bytes (``rawheader``: its DICOM JSON,
    the pydicom data set parsed only if somebody asks for it) or from pydicom (the general
    path: the data set, its JSON made on first use).
    """

    dataset_offset: int
    transfer_syntax_uid: str
    file_size: int
    _dataset: Dataset | None = None
    _json: dict[str, Any] | None = None
    _ds_texts: dict[str, str] | None = None
    _content: bytes | bytearray | None = None
    _texts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, transfer_syntax_uid: str = ExplicitVRLittleEndian
    ) -> ParsedHeader:
        """The header of a data set built in memory (no file behind it)."""
        return cls(0, transfer_syntax_uid, 0, _dataset=dataset)

    @property
    def dataset(self) -> Dataset:
        """The data set up to its pixel data (pydicom)."""
        if self._dataset is None:
            assert self._content is not None
            fp = BytesIO(self._content)
            syntax = UID(self.transfer_syntax_uid)
            fp.seek(self.dataset_offset)
            self._dataset = read_dataset(
                fp, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_at_pixel_data
            )
        return self._dataset

    @property
    def header(self) -> dict[str, Any]:
        """The DICOM JSON of the header; ``CannotUnderstand`` names the first element whose
        value cannot be decoded."""
        if self._json is None:
            self._json = header_json(self.dataset)
        return self._json

    @property
    def ds_texts(self) -> dict[str, str]:
        """Text of the DS attributes the index keeps, by keyword."""
        if self._ds_texts is None:
            self._ds_texts = {
                keyword: text_value(self.dataset.get(keyword)) for keyword in _DS_KEYWORDS
            }
        return self._ds_texts

    def text(self, keyword: str) -> str:
        """A top-level attribute's value as one string (values joined by backslash)."""
        found = self._texts.get(keyword)
        if found is None:
            if self._json is not None:
                found = json_text(self._json.get(json_key(keyword)))
            else:
                found = text_value(self.dataset.get(keyword))
            self._texts[keyword] = found
        return found


def text_value(value: Any) -> str:
    """A decoded pydicom value as one string (multiple values joined by backslash)."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(text_value(v) for v in value)
    return str(value).strip()


def is_valid_uid(value: Any) -> bool:
    """PS3.5 9.1: digits and dots, no empty component, no leading zero, at most 64 chars."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(UID_PATTERN.match(value))


@dataclass(frozen=True)
class KnownMeta:
    """Where the data set starts and its transfer syntax, when the caller wrote the file
    meta itself (a receiver building the Part 10 prefix): it is then not parsed again."""

    dataset_offset: int
    transfer_syntax_uid: str


def read_header(source: Path | bytes | bytearray, known: KnownMeta | None = None) -> ParsedHeader:
    """Parse a Part 10 file (a path, or its bytes in memory) up to its pixel data and check
    the whole data set is complete.

    Every element of the data set is walked by its declared length (sequences and
    encapsulated pixel data item by item), so a value cut short anywhere is refused; pydicom
    alone would return a short value silently.
    """
    if isinstance(source, Path):
        with source.open("rb") as fp:
            return _parse(fp, source.stat().st_size, known)
    if known is not None:
        scanned = _scan(source, known)
        if scanned is not None:
            return scanned
    return _parse(BytesIO(source), len(source), known)


@functools.cache
def _scannable(transfer_syntax_uid: str) -> bool | None:
    """Whether data sets in this syntax can take the one-pass reader: None if not, else
    whether they are in implicit VR."""
    syntax = UID(transfer_syntax_uid)
    if not syntax.is_transfer_syntax or not syntax.is_little_endian or syntax.is_deflated:
        return None
    if syntax not in _PLAIN_SYNTAXES and not syntax.is_encapsulated:
        return None
    return bool(syntax.is_implicit_VR)


def _scan(content: bytes | bytearray, known: KnownMeta) -> ParsedHeader | None:
    """The header read in one pass over the raw bytes, or None for the general path."""
    implicit = _scannable(known.transfer_syntax_uid)
    if implicit is None:
        return None
    offset = known.dataset_offset
    first_vr = bytes(content[offset + 4 : offset + 6]).decode("latin-1")
    if (first_vr in _VRS) == implicit:
        return None  # encoded otherwise than declared: pydicom decides what it means
    try:
        found = scan(
            content,
            offset,
            implicit=implicit,
            bulk_threshold=BULK_THRESHOLD,
            ds_tags=_DS_TAGS.values(),
        )
    except Unsupported:
        return None
    if not found.json:
        return None
    return ParsedHeader(
        offset,
        known.transfer_syntax_uid,
        len(content),
        _json=found.json,
        _ds_texts={keyword: found.ds_texts.get(tag, "") for keyword, tag in _DS_TAGS.items()},
        _content=content,
    )


def _at_pixel_data(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return tag in _PIXEL_TAGS


def _read_data_set(fp: BinaryIO, known: KnownMeta | None) -> tuple[Dataset, int, str]:
    """The data set up to its pixel data, where it starts, and its transfer syntax."""
    if known is not None:
        syntax = UID(known.transfer_syntax_uid)
        plain = syntax in _PLAIN_SYNTAXES or (syntax.is_transfer_syntax and syntax.is_encapsulated)
        if plain and _encoded_as_declared(fp, known.dataset_offset, syntax.is_implicit_VR):
            fp.seek(known.dataset_offset)
            dataset = read_dataset(
                fp, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_at_pixel_data
            )
            return dataset, known.dataset_offset, str(syntax)
    fp.seek(0)
    read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    offset = fp.tell()
    found = str(meta.get("TransferSyntaxUID", ""))
    if not found:
        raise CannotUnderstand("file meta has no TransferSyntaxUID")
    fp.seek(0)
    return dcmread(fp, stop_before_pixels=True), offset, found


def _encoded_as_declared(fp: BinaryIO, offset: int, implicit: bool) -> bool:
    """Whether the first element is encoded as the transfer syntax says.  Senders that get
    this wrong exist; pydicom then reads the other way, and so must the completeness walk,
    so such data sets take the general path."""
    fp.seek(offset)
    first = fp.read(6)
    if len(first) < 6:
        return True
    explicit = first[4:6].decode("latin-1") in _VRS
    return explicit != implicit


def _parse(fp: BinaryIO, size: int, known: KnownMeta | None) -> ParsedHeader:
    try:
        dataset, offset, syntax = _read_data_set(fp, known)
        if len(dataset) == 0:
            raise CannotUnderstand("file has no data set after its file meta")
        implicit, little = dataset.original_encoding
        if UID(syntax).is_deflated:
            fp.seek(offset)
            inflated = zlib.decompress(fp.read(), -zlib.MAX_WBITS)
            _check_structure(BytesIO(inflated), 0, len(inflated), bool(implicit), bool(little))
        else:
            _check_structure(fp, offset, size, bool(implicit), bool(little))
    except InvalidDicomError as exc:
        raise CannotUnderstand(
            "not a DICOM Part 10 file: no 128-byte preamble, 'DICM' prefix and file meta"
        ) from exc
    except CannotUnderstand:
        raise
    except Exception as exc:  # pydicom and zlib raise many types on damaged input
        raise CannotUnderstand(f"unreadable DICOM data: {_first_line(exc)}") from exc
    return ParsedHeader(offset, syntax, size, _dataset=dataset)


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _check_structure(fp: BinaryIO, start: int, size: int, implicit: bool, little: bool) -> None:
    """Walk every element from ``start`` and check each fits inside the data."""
    fp.seek(start)
    endian = "<" if little else ">"
    end = _walk(fp, size, endian, implicit, until=None, depth=0)
    if end > size:
        raise CannotUnderstand(f"file is truncated: {end - size} bytes missing")


def _read_header(fp: BinaryIO, endian: str, implicit: bool) -> tuple[int, bytes, int, int]:
    raw = fp.read(8)
    if len(raw) < 8:
        raise CannotUnderstand("file is truncated inside an element header")
    group, element = struct.unpack(endian + "HH", raw[:4])
    tag = (group << 16) | element
    if implicit or group == 0xFFFE:
        (length,) = struct.unpack(endian + "L", raw[4:8])
        return tag, b"", length, 8
    vr = raw[4:6]
    if vr in _LONG_LENGTH_VRS:
        more = fp.read(4)
        if len(more) < 4:
            raise CannotUnderstand("file is truncated inside an element header")
        (length,) = struct.unpack(endian + "L", more)
        return tag, vr, length, 12
    (length,) = struct.unpack(endian + "H", raw[6:8])
    return tag, vr, length, 8


def _walk(
    fp: BinaryIO, size: int, endian: str, implicit: bool, until: int | None, depth: int
) -> int:
    """Skip elements until ``until`` (a delimiter tag) or end of file; return the position."""
    if depth > _MAX_DEPTH:
        raise CannotUnderstand("sequences nested too deeply")
    while True:
        pos = fp.tell()
        if until is None and pos >= size:
            return pos
        tag, vr, length, _ = _read_header(fp, endian, implicit)
        if until is not None and tag == until:
            return fp.tell()
        if length == _UNDEFINED:
            if tag == _ITEM:
                _walk(fp, size, endian, implicit, _ITEM_END, depth + 1)
            else:
                # Sequence or encapsulated pixel data: items until the sequence delimiter.
                item_implicit = implicit or vr == b"UN"
                _walk(fp, size, endian, item_implicit, _SEQ_END, depth + 1)
            continue
        target = fp.tell() + length
        if target > size:
            raise CannotUnderstand(
                f"file is truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares "
                f"{length} bytes, {size - fp.tell()} remain"
            )
        fp.seek(target)


def header_json(dataset: Dataset) -> dict[str, Any]:
    """The header as DICOM JSON (PS3.18 F) with bulk data replaced by BulkDataURIs.

    Raises ``CannotUnderstand`` naming the first element whose value cannot be decoded.
    """

    def bulk(element: Any) -> str:
        return f"bulkdata/{element.tag:08X}"

    try:
        return to_json(dataset, bulk, BULK_THRESHOLD)
    except Exception:
        for element in dataset.iterall():
            try:
                element.to_json_dict(bulk, BULK_THRESHOLD)
            except Exception as exc:
                raise CannotUnderstand(
                    f"invalid {element.VR} value in {element.tag} {element.keyword}: "
                    f"{_first_line(exc)}"
                ) from exc
        raise


def check_identity(
    source: ParsedHeader | Dataset,
    expected_class: str | None = None,
    expected_instance: str | None = None,
) -> None:
    """Check the UIDs the index needs are present and valid, and match the command's."""
    found: dict[str, str] = {}
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if isinstance(source, ParsedHeader):
            value = source.text(keyword)
        else:
            raw = source.get(keyword)
            value = "" if raw is None else str(raw)
        if value == "":
            raise InvalidInstanceIdentity(f"{keyword} is missing")
        if not is_valid_uid(value):
            raise InvalidInstanceIdentity(f"{keyword} is not a valid UID: {value[:70]!r}")
        found[keyword] = value
    if expected_class is not None and found["SOPClassUID"] != expected_class:
        raise DataSetDoesNotMatchSOPClass(
            f"SOPClassUID differs from the command: data set {found['SOPClassUID']}, "
            f"command {expected_class}"
        )
    if expected_instance is not None and found["SOPInstanceUID"] != expected_instance:
        raise InvalidInstanceIdentity(
            f"SOPInstanceUID differs from the command: data set {found['SOPInstanceUID']}, "
            f"command {expected_instance}"
        )
