"""The MLLP listener on a real socket with a real runtime (SQLite file and PostgreSQL):
ACK/NAK content, the worklist items the messages leave, and bounded connections."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7
import pytest
from hl7.mllp import open_hl7_connection

from dicomhub.config import Settings, load_settings
from dicomhub.hl7.listener import HL7Listener
from dicomhub.index.worklist import WorklistItem, WorklistRepository, WorklistStatus
from dicomhub.runtime import Runtime
from tests.unit.hl7.messages import END, START, adt_a08, frame, omi, orm, segment

MAX_MESSAGE = 4096


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The runtime's settings, with a station per modality and a small message size."""
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        hl7_station_ae_titles={"CT": "CT1", "MR": "MR9"},
        hl7_max_message_size=MAX_MESSAGE,
    )


@pytest.fixture
def listener(runtime: Runtime) -> Iterator[HL7Listener]:
    server = HL7Listener(runtime, port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worklist(runtime: Runtime) -> WorklistRepository:
    return WorklistRepository(runtime.db)


def connect(listener: HL7Listener) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=15)
    sock.settimeout(15)
    return sock


def read_ack(sock: socket.socket, encoding: str = "utf-8") -> Any:
    data = b""
    while not data.endswith(END):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    assert data.startswith(START)
    return hl7.parse(data[1 : -len(END)].decode(encoding))


def exchange(sock: socket.socket, message: str, encoding: str = "utf-8") -> Any:
    sock.sendall(frame(message, encoding))
    return read_ack(sock, encoding)


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (EOF or reset) within the timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    return True


def field(message: Any, name: str) -> str:
    """``SEG.N``: the whole field (unescaped); longer keys: that component (python-hl7)."""
    segment_name, *path = name.split(".")
    if len(path) == 1:
        number = int(path[0])
        segment = message.segment(segment_name)
        return str(message.unescape(str(segment[number]))) if number < len(segment) else ""
    return str(message[name])


def only_item(worklist: WorklistRepository) -> WorklistItem:
    (item,) = worklist.list()
    return item


def test_new_order_is_acknowledged_and_scheduled(
    listener: HL7Listener, worklist: WorklistRepository
) -> None:
    with connect(listener) as sock:
        ack = exchange(sock, orm())
    assert field(ack, "MSA.1") == "AA"
    assert field(ack, "MSA.2") == "MSG0001"
    assert field(ack, "MSH.9") == "ACK^O01^ACK"
    assert (field(ack, "MSH.3"), field(ack, "MSH.5")) == ("DICOMHUB", "RIS")
    assert field(ack, "MSH.12") == "2.3.1"
    assert field(ack, "MSH.10") not in ("", "MSG0001")
    item = only_item(worklist)
    assert item.status is WorklistStatus.SCHEDULED
    assert item.source == "hl7"
    assert item.order_key == "PL1001^FL2001"
    ds = item.dataset
    assert (ds.PatientID, ds.PatientName, ds.AccessionNumber) == (
        "12345",
        "DOE^JOHN^Q^DR^JR",
        "ACC1001",
    )
    step = ds.ScheduledProcedureStepSequence[0]
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", "CT1")
    assert step.ScheduledProcedureStepStartDate == "20240320"


def test_change_then_cancel_on_one_connection(
    listener: HL7Listener, worklist: WorklistRepository
) -> None:
    with connect(listener) as sock:
        assert field(exchange(sock, orm()), "MSA.1") == "AA"
        first = only_item(worklist)
        change = orm("XO", control_id="MSG0002", modality="MR", start="20240321150000")
        assert field(exchange(sock, change), "MSA.1") == "AA"
        changed = only_item(worklist)
        assert changed.id == first.id
        assert changed.status is WorklistStatus.SCHEDULED
        step = changed.dataset.ScheduledProcedureStepSequence[0]
        assert (step.Modality, step.ScheduledStationAETitle) == ("MR", "MR9")
        assert step.ScheduledProcedureStepStartTime == "150000"
        ack = exchange(sock, orm("CA", control_id="MSG0003", order_status="CA"))
        assert (field(ack, "MSA.1"), field(ack, "MSA.2")) == ("AA", "MSG0003")
    cancelled = only_item(worklist)
    assert cancelled.id == first.id
    assert cancelled.status is WorklistStatus.CANCELLED


def test_adt_a08_changes_the_patient_name(
    listener: HL7Listener, worklist: WorklistRepository
) -> None:
    with connect(listener) as sock:
        exchange(sock, orm())
        ack = exchange(sock, adt_a08(name="DOE^JONATHAN^Q"))
    assert (field(ack, "MSA.1"), field(ack, "MSA.2")) == ("AA", "MSG0200")
    assert field(ack, "MSH.9") == "ACK^A08^ACK"
    assert only_item(worklist).dataset.PatientName == "DOE^JONATHAN^Q"


def test_omi_in_utf8(listener: HL7Listener, worklist: WorklistRepository) -> None:
    with connect(listener) as sock:
        ack = exchange(sock, omi())
    assert field(ack, "MSA.1") == "AA"
    assert field(ack, "MSH.18") == "UNICODE UTF-8"
    ds = only_item(worklist).dataset
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "YAMADA^TARO=山田^太郎=やまだ^たろう"
    assert ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "MR1"


def test_latin1_order(listener: HL7Listener, worklist: WorklistRepository) -> None:
    pid = segment("PID", {1: "1", 3: "4711^^^HOSP", 5: "MÜLLER^JÜRGEN", 8: "M"})
    with connect(listener) as sock:
        ack = exchange(sock, orm(version="2.5", charset="8859/1", pid=pid), "latin_1")
    assert field(ack, "MSA.1") == "AA"
    ds = only_item(worklist).dataset
    assert (ds.SpecificCharacterSet, ds.PatientName) == ("ISO_IR 100", "MÜLLER^JÜRGEN")


def test_invalid_order_is_answered_ae_and_the_connection_goes_on(
    listener: HL7Listener, worklist: WorklistRepository
) -> None:
    no_patient_id = segment("PID", {1: "1", 5: "DOE^JOHN"})
    with connect(listener) as sock:
        nak = exchange(sock, orm(pid=no_patient_id, control_id="BAD1"))
        assert (field(nak, "MSA.1"), field(nak, "MSA.2")) == ("AE", "BAD1")
        assert "PID-3" in field(nak, "MSA.3")
        assert field(nak, "ERR.F1.R1.C4.S1") == "101"  # v2.3.1: ERR-1 code
        assert worklist.list() == []
        assert field(exchange(sock, orm()), "MSA.1") == "AA"
    assert len(worklist.list()) == 1


def test_unsupported_message_and_order_control_are_rejected(
    listener: HL7Listener, worklist: WorklistRepository
) -> None:
    with connect(listener) as sock:
        nak = exchange(sock, orm(version="2.5").replace("ORM^O01", "ORU^R01"))
        assert field(nak, "MSA.1") == "AR"
        assert "ORU^R01" in field(nak, "MSA.3")
        assert field(nak, "ERR.3") == "200^Unsupported message type^HL70357"  # v2.5: ERR-3
        assert field(nak, "ERR.4") == "E"
        nak = exchange(sock, orm("RP"))
        assert field(nak, "MSA.1") == "AR"
        assert "order control RP" in field(nak, "MSA.3")
        nak = exchange(sock, "this is no HL7 message")
        assert field(nak, "MSA.1") == "AR"
        assert field(nak, "MSA.2") == ""
    assert worklist.list() == []


def test_messages_sent_together_are_answered_in_order(
    listener: HL7Listener, worklist: WorklistRepository
) -> None:
    with connect(listener) as sock:
        sock.sendall(
            frame(orm(control_id="A1")) + b"\r\n" + frame(orm("XO", control_id="A2", modality="MR"))
        )
        first, second = read_ack(sock), read_ack(sock)
    assert [field(first, "MSA.2"), field(second, "MSA.2")] == ["A1", "A2"]
    assert only_item(worklist).dataset.ScheduledProcedureStepSequence[0].Modality == "MR"


def test_python_hl7_mllp_client(listener: HL7Listener, worklist: WorklistRepository) -> None:
    async def send() -> Any:
        reader, writer = await open_hl7_connection("127.0.0.1", listener.port, encoding="utf-8")
        try:
            writer.writemessage(hl7.parse(orm(control_id="LIB1")))
            await writer.drain()
            return await asyncio.wait_for(reader.readmessage(), 15)
        finally:
            writer.close()
            await writer.wait_closed()

    ack = asyncio.run(send())
    assert (field(ack, "MSA.1"), field(ack, "MSA.2")) == ("AA", "LIB1")
    assert only_item(worklist).order_key == "PL1001^FL2001"


def test_garbage_closes_the_connection(
    listener: HL7Listener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dicomhub.hl7")
    with connect(listener) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_by_server(sock)
    assert "not MLLP" in caplog.text


def test_oversize_message_closes_the_connection(
    listener: HL7Listener, worklist: WorklistRepository, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dicomhub.hl7")
    huge = orm().replace("Contrast allergy", "x" * (2 * MAX_MESSAGE))
    with connect(listener) as sock:
        sock.sendall(frame(huge))
        assert closed_by_server(sock)
    assert f"larger than {MAX_MESSAGE} bytes" in caplog.text
    assert worklist.list() == []


def test_idle_connection_is_closed(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dicomhub.hl7")
    server = HL7Listener(runtime, port=0)
    server.idle_timeout = 0.5
    server.start()
    try:
        with connect(server) as sock:
            started = time.monotonic()
            assert closed_by_server(sock)
            assert time.monotonic() - started < 10
        assert "idle for 0.5 s" in caplog.text
    finally:
        server.stop()


@pytest.mark.parametrize(("hosts", "allowed"), [(["10.0.0.0/8"], False), (["127.0.0.1"], True)])
def test_only_allowed_hosts_may_send(
    runtime: Runtime,
    worklist: WorklistRepository,
    caplog: pytest.LogCaptureFixture,
    hosts: list[str],
    allowed: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="dicomhub.hl7")
    settings = runtime.settings.model_copy(update={"hl7_allowed_hosts": hosts})
    server = HL7Listener(dataclasses.replace(runtime, settings=settings), port=0)
    server.start()
    try:
        with connect(server) as sock:
            if allowed:
                assert field(exchange(sock, orm()), "MSA.1") == "AA"
            else:
                sock.sendall(frame(orm()))
                assert closed_by_server(sock)
    finally:
        server.stop()
    assert len(worklist.list()) == (1 if allowed else 0)
    assert ("not in hl7_allowed_hosts" in caplog.text) is not allowed
