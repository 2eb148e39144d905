"""A raw-socket peer breaks the upper-layer protocol; the engine aborts and keeps serving."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from dicomhub.dicom.engine import commands as cmd
from dicomhub.dicom.engine.pdu import p_data
from dicomhub.dicom.server import Listener
from tests.dicom.conftest import associate, associate_request
from tests.factories import make_dataset

ABORT = b"\x07\x00\x00\x00\x00\x04\x00\x00\x02"


@pytest.fixture
def engine() -> str:
    """These tests drive dicomhub's own engine only."""
    return "asyncio"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The protocol layer does not depend on the index backend."""
    return f"sqlite:///{tmp_path / 'index.sqlite'}"


def _request(*abstract_syntaxes: str) -> bytes:
    return associate_request("RAWPEER", "DICOMHUB", *abstract_syntaxes)


def _connect(server: Listener) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(20)  # a guard against hanging, not a performance bound
    return sock


def _read_pdu(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 6:
        chunk = sock.recv(6 - len(header))
        if not chunk:
            return header
        header += chunk
    (length,) = struct.unpack(">L", header[2:6])
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return header + body


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def _established(server: Listener, *syntaxes: str) -> socket.socket:
    sock = _connect(server)
    sock.sendall(_request(*(syntaxes or (Verification,))))
    answer = _read_pdu(sock)
    assert answer[0] == 0x02, answer[:10]
    return sock


def _still_serving(server: Listener) -> None:
    assoc = associate(server, [Verification])
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("unknown PDU type", b"\x09\x00\x00\x00\x00\x02\x00\x00"),
        ("P-DATA before association", b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x02\x01\x03"),
        ("HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("A-ASSOCIATE-RQ of 4 GiB", b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 64),
    ],
)
def test_garbage_before_association(server: Listener, name: str, payload: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(payload)
        received = _read_to_end(sock)
    assert received in (b"", ABORT + b"\x00", ABORT + b"\x01", ABORT + b"\x02", ABORT + b"\x06"), (
        name
    )
    _still_serving(server)


def test_second_associate_request_is_aborted(server: Listener) -> None:
    with _established(server) as sock:
        sock.sendall(_request(Verification))
        assert _read_to_end(sock).startswith(ABORT)
    _still_serving(server)


def test_pdv_longer_than_its_pdu_is_aborted(server: Listener) -> None:
    with _established(server) as sock:
        item = struct.pack(">LBB", 500, 1, 0x03) + b"\x00" * 10
        sock.sendall(struct.pack(">BBL", 0x04, 0, len(item)) + item)
        assert _read_to_end(sock).startswith(ABORT)
    _still_serving(server)


def test_pdu_over_the_negotiated_maximum_is_refused_on_its_header(server: Listener) -> None:
    with _established(server) as sock:
        sock.sendall(struct.pack(">BBL", 0x04, 0, 0xFFFFFFF0))  # no body follows
        assert _read_to_end(sock).startswith(ABORT)
    _still_serving(server)


def test_pdv_on_a_context_that_was_not_accepted(server: Listener) -> None:
    with _established(server) as sock:
        command = cmd.encode_command(
            AffectedSOPClassUID=Verification,
            CommandField=0x0030,
            MessageID=1,
            CommandDataSetType=0x0101,
        )
        for chunk in p_data(99, True, command, 16384):
            sock.sendall(chunk)
        assert _read_to_end(sock).startswith(ABORT)
    _still_serving(server)


def test_echo_over_raw_socket_and_release(server: Listener) -> None:
    with _established(server) as sock:
        command = cmd.encode_command(
            AffectedSOPClassUID=Verification,
            CommandField=0x0030,
            MessageID=5,
            CommandDataSetType=0x0101,
        )
        for chunk in p_data(1, True, command, 16384):
            sock.sendall(chunk)
        response = _read_pdu(sock)
        decoded = cmd.decode_command(response[12:])
        assert decoded["Status"] == 0x0000
        assert decoded["MessageIDBeingRespondedTo"] == 5
        assert decoded["CommandField"] == 0x8030
        sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        assert _read_pdu(sock) == b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def test_abort_in_the_middle_of_a_c_store_keeps_nothing(server: Listener) -> None:
    ds = make_dataset(rows=256)
    with _established(server, CTImageStorage) as sock:
        command = cmd.encode_command(
            AffectedSOPClassUID=CTImageStorage,
            CommandField=0x0001,
            MessageID=1,
            Priority=0,
            CommandDataSetType=0x0000,
            AffectedSOPInstanceUID=str(ds.SOPInstanceUID),
        )
        for chunk in p_data(1, True, command, 16384):
            sock.sendall(chunk)
        item = struct.pack(">LBB", 1002, 1, 0x00) + b"\x08\x00" * 500  # not the last fragment
        sock.sendall(struct.pack(">BBL", 0x04, 0, len(item)) + item)
        sock.sendall(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")
        assert _read_to_end(sock) == b""
    _still_serving(server)
    assert server.runtime.blobs.staged_files() == []
    assert server.runtime.repository.count_instances() == 0


def test_command_must_fit_its_presentation_context(server: Listener) -> None:
    """A C-STORE on a Verification context gets 0x0122 and stores nothing."""
    ds = make_dataset()
    with _established(server) as sock:
        command = cmd.encode_command(
            AffectedSOPClassUID=CTImageStorage,
            CommandField=0x0001,
            MessageID=3,
            Priority=0,
            CommandDataSetType=0x0000,
            AffectedSOPInstanceUID=str(ds.SOPInstanceUID),
        )
        for chunk in p_data(1, True, command, 16384):
            sock.sendall(chunk)
        for chunk in p_data(1, False, b"\x08\x00\x16\x00\x00\x00\x00\x00", 16384):
            sock.sendall(chunk)
        response = cmd.decode_command(_read_pdu(sock)[12:])
        assert response["Status"] == 0x0122
        assert response["MessageIDBeingRespondedTo"] == 3
        echo = cmd.encode_command(
            AffectedSOPClassUID=Verification,
            CommandField=0x0030,
            MessageID=4,
            CommandDataSetType=0x0101,
        )
        for chunk in p_data(1, True, echo, 16384):
            sock.sendall(chunk)
        assert cmd.decode_command(_read_pdu(sock)[12:])["Status"] == 0x0000
    assert server.runtime.repository.count_instances() == 0
    assert server.runtime.blobs.staged_files() == []


def test_unknown_application_context_is_rejected(server: Listener) -> None:
    request = bytearray(associate_request("RAWPEER", "DICOMHUB"))
    at = request.find(b"1.2.840.10008.3.1.1.1")
    request[at : at + 21] = b"1.2.840.10008.3.1.1.9"
    with _connect(server) as sock:
        sock.sendall(bytes(request))
        assert _read_pdu(sock) == bytes((0x03, 0, 0, 0, 0, 4, 0, 1, 1, 2))
