"""The File Meta Information written in front of every received data set (PS3.10 7.1).

Built directly as bytes: it is written once per C-STORE, and pydicom's general writer costs
more than the rest of the receive path.
"""

from __future__ import annotations

import struct

_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2s2xL")


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return _LONG.pack(0x0002, element, vr, len(value)) + value
    return _SHORT.pack(0x0002, element, vr, len(value)) + value


def _text(value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def part10_prefix(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str,
    source_ae_title: str,
) -> bytes:
    """Preamble, ``DICM`` and the group 0002 elements, Explicit VR Little Endian."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _text(sop_class_uid, b"\0")),
            _element(0x0003, b"UI", _text(sop_instance_uid, b"\0")),
            _element(0x0010, b"UI", _text(transfer_syntax_uid, b"\0")),
            _element(0x0012, b"UI", _text(implementation_class_uid, b"\0")),
            _element(0x0013, b"SH", _text(implementation_version_name, b" ")),
            _element(0x0016, b"AE", _text(source_ae_title, b" ")),
        )
    )
    group_length = _SHORT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<L", len(body))
    return b"\0" * 128 + b"DICM" + group_length + body
