"""PS3.8 PDU framing: types, headers and the small PDUs the acceptor sends itself."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07
KNOWN_TYPES = {
    A_ASSOCIATE_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    P_DATA_TF,
    A_RELEASE_RQ,
    A_RELEASE_RP,
    A_ABORT,
}

HEADER = struct.Struct(">BBL")
PDV_HEADER = struct.Struct(">LBB")

# A-ABORT source and reasons (PS3.8 9.3.8)
SOURCE_USER = 0x00
SOURCE_PROVIDER = 0x02
REASON_NOT_SPECIFIED = 0x00
REASON_UNRECOGNIZED_PDU = 0x01
REASON_UNEXPECTED_PDU = 0x02
REASON_UNRECOGNIZED_PARAMETER = 0x04
REASON_UNEXPECTED_PARAMETER = 0x05
REASON_INVALID_PARAMETER = 0x06


class ProtocolError(Exception):
    """The peer broke the upper-layer protocol; the association is aborted with ``reason``."""

    def __init__(self, message: str, reason: int = REASON_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.reason = reason


def abort(source: int = SOURCE_PROVIDER, reason: int = REASON_NOT_SPECIFIED) -> bytes:
    """An A-ABORT PDU."""
    return HEADER.pack(A_ABORT, 0, 4) + bytes((0, 0, source, reason))


def release_rp() -> bytes:
    """An A-RELEASE-RP PDU."""
    return HEADER.pack(A_RELEASE_RP, 0, 4) + b"\x00\x00\x00\x00"


@dataclass(frozen=True)
class PDV:
    """One presentation data value item of a P-DATA-TF PDU."""

    context_id: int
    is_command: bool
    is_last: bool
    data: memoryview


def iter_pdvs(payload: bytes | memoryview) -> Iterator[PDV]:
    """Split a P-DATA-TF payload into its PDV items, checking every length."""
    view = memoryview(payload)
    offset, end = 0, len(payload)
    if end == 0:
        raise ProtocolError("P-DATA-TF without any PDV item")
    while offset < end:
        if end - offset < 6:
            raise ProtocolError("PDV item header runs past the end of the PDU")
        length, context_id, control = PDV_HEADER.unpack_from(view, offset)
        if length < 2 or offset + 4 + length > end:
            raise ProtocolError(f"PDV item length {length} does not fit in its PDU")
        yield PDV(
            context_id,
            bool(control & 0x01),
            bool(control & 0x02),
            view[offset + 6 : offset + 4 + length],
        )
        offset += 4 + length


def p_data(context_id: int, is_command: bool, data: bytes, max_pdu: int) -> Iterator[bytes]:
    """Encode a message part as P-DATA-TF PDUs of at most ``max_pdu`` bytes (0: unlimited)."""
    room = (max_pdu - 6) if max_pdu else len(data) or 1
    room = max(room, 1)
    offset = 0
    while True:
        chunk = data[offset : offset + room]
        offset += len(chunk)
        last = offset >= len(data)
        control = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
        item = PDV_HEADER.pack(len(chunk) + 2, context_id, control)
        yield HEADER.pack(P_DATA_TF, 0, len(item) + len(chunk)) + item + chunk
        if last:
            return


def data_pdu(context_id: int, data: bytes | bytearray, *, last: bool) -> bytes:
    """One P-DATA-TF PDU carrying one data set fragment."""
    item = PDV_HEADER.pack(len(data) + 2, context_id, 0x02 if last else 0x00)
    return HEADER.pack(P_DATA_TF, 0, len(item) + len(data)) + item + bytes(data)
