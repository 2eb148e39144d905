"""DIMSE command sets (PS3.7 E): Implicit VR Little Endian group 0000 elements.

Command sets are tiny and have a fixed vocabulary, so they are read and written here directly
instead of through a general data set codec.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from pydicom.datadict import dictionary_keyword, dictionary_VR, tag_for_keyword

from dicomhub.dicom.engine.pdu import ProtocolError

C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_CANCEL_RQ = 0x0FFF
N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP = 0x0100, 0x8100
N_GET_RQ, N_GET_RSP = 0x0110, 0x8110
N_ACTION_RQ, N_ACTION_RSP = 0x0130, 0x8130
N_SET_RQ, N_SET_RSP = 0x0120, 0x8120
N_CREATE_RQ, N_CREATE_RSP = 0x0140, 0x8140
N_DELETE_RQ, N_DELETE_RSP = 0x0150, 0x8150
NO_DATA_SET = 0x0101
DATA_SET_PRESENT = 0x0000

_ELEMENT = struct.Struct("<HHL")
_INTEGER = {"US": struct.Struct("<H"), "UL": struct.Struct("<L")}


@functools.cache
def _by_tag(tag: int) -> tuple[str, str] | None:
    """(keyword, VR) of a command element; None for retired or private ones."""
    try:
        return dictionary_keyword(tag), dictionary_VR(tag)
    except KeyError:
        return None


@functools.cache
def _by_keyword(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a command element keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"unknown command element {keyword}")
    return tag, dictionary_VR(tag)


def decode_command(data: bytes) -> dict[str, Any]:
    """Decode a command set into ``{keyword: value}`` (integers and stripped strings)."""
    result: dict[str, Any] = {}
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < 8:
            raise ProtocolError("command set ends inside an element header")
        group, element, length = _ELEMENT.unpack_from(data, offset)
        offset += 8
        if group != 0x0000 or offset + length > end:
            raise ProtocolError(f"invalid command element ({group:04X},{element:04X})")
        value = data[offset : offset + length]
        offset += length
        known = _by_tag((group << 16) | element)
        if known is None:
            continue  # retired or private command elements are ignored
        keyword, vr = known
        codec = _INTEGER.get(vr)
        if codec is not None:
            result[keyword] = codec.unpack_from(value)[0] if len(value) >= codec.size else None
        elif vr == "AT":
            result[keyword] = value
        else:
            result[keyword] = value.decode("ascii", "replace").rstrip("\0 ")
    return result


def encode_command(**elements: Any) -> bytes:
    """Encode a command set from keywords; CommandGroupLength is computed."""
    body = bytearray()
    present = [(*_by_keyword(k), v) for k, v in elements.items() if v is not None]
    for tag, vr, value in sorted(present, key=lambda e: e[0]):
        codec = _INTEGER.get(vr)
        if codec is not None:
            raw = codec.pack(int(value))
        elif vr == "AT":  # tags, each as group and element (or as decoded: raw bytes)
            raw = (
                bytes(value)
                if isinstance(value, bytes | bytearray)
                else b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in value)
            )
        else:
            raw = str(value).encode("ascii", "replace")
            if len(raw) % 2:
                raw += b"\0" if vr == "UI" else b" "
        body += _ELEMENT.pack(tag >> 16, tag & 0xFFFF, len(raw)) + raw
    return _ELEMENT.pack(0x0000, 0x0000, 4) + struct.pack("<L", len(body)) + bytes(body)
