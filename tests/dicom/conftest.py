"""In-process acceptor fixtures: dicomhub's DICOM server on an ephemeral port."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pynetdicom import AE, _config
from pynetdicom.association import Association

from dicomhub.config import Settings
from dicomhub.dicom.server import Listener, create_listener
from dicomhub.runtime import Runtime, open_runtime

ServerFactory = Callable[..., Listener]


@pytest.fixture(params=["asyncio", "pynetdicom"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each in-process test runs on both network engines."""
    return str(request.param)


@pytest.fixture
def server_factory(settings: Settings, engine: str) -> Iterator[ServerFactory]:
    """Start servers with setting overrides; all are stopped at the end."""
    started: list[tuple[Listener, Runtime]] = []

    def start(**overrides: Any) -> Listener:
        update = {"dicom_port": 0, "engine": engine, **overrides}
        runtime = open_runtime(settings.model_copy(update=update))
        server = create_listener(runtime)
        server.start()
        started.append((server, runtime))
        return server

    yield start
    for server, runtime in started:
        server.stop()
        runtime.close()


@pytest.fixture
def server(server_factory: ServerFactory) -> Listener:
    """A server with default settings (loopback: open)."""
    return server_factory()


def echo_status(port: int, context: ssl.SSLContext | None = None) -> int | None:
    """C-ECHO on a new association to the server at ``port`` (over TLS with ``context``):
    its status, or None when the association was not established."""
    ae = AE(ae_title="TESTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context("1.2.840.10008.1.1")
    tls_args = (context, "127.0.0.1") if context is not None else None
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMHUB", tls_args=tls_args)
    if not assoc.is_established:
        return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


@pytest.fixture
def chunked_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pynetdicom SCUs send files as they are (command UIDs from the file meta)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


def associate(
    server: Listener,
    contexts: list[str],
    calling: str = "TESTSCU",
    called: str = "DICOMHUB",
    transfer_syntaxes: list[str] | None = None,
) -> Association:
    """Open an association from a pynetdicom SCU."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120  # generous on a busy machine
    for context in contexts:
        if transfer_syntaxes:
            ae.add_requested_context(context, transfer_syntaxes)
        else:
            ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=called)
    if assoc.is_established and assoc.dul.socket and assoc.dul.socket.socket:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


def associate_request(calling: str, called: str, *abstract_syntaxes: str) -> bytes:
    """An A-ASSOCIATE-RQ PDU built with pynetdicom's codec, for raw-socket tests."""
    from pynetdicom import pdu as pdus
    from pynetdicom.pdu_primitives import (
        A_ASSOCIATE,
        ImplementationClassUIDNotification,
        MaximumLengthNotification,
    )
    from pynetdicom.presentation import build_context

    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    contexts = []
    for index, syntax in enumerate(abstract_syntaxes or ("1.2.840.10008.1.1",)):
        context = build_context(syntax, ["1.2.840.10008.1.2"])
        context.context_id = 2 * index + 1
        contexts.append(context)
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = 16384
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.10.999"
    primitive.user_information = [maximum, implementation]
    encoded = pdus.A_ASSOCIATE_RQ()
    encoded.from_primitive(primitive)
    return bytes(encoded.encode())


def association_answer(server: Listener, calling: str, called: str = "DICOMHUB") -> bytes:
    """Send an A-ASSOCIATE-RQ on a raw socket and return the first PDU of the answer.

    (pynetdicom's requestor can mistake a fast A-ASSOCIATE-RJ for a failed connection, so
    refusals are checked on the wire.)
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(associate_request(calling, called))
        answer = b""
        while len(answer) < 6 or len(answer) < 6 + int.from_bytes(answer[2:6], "big"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def rejection(result: int, source: int, diagnostic: int) -> bytes:
    """The A-ASSOCIATE-RJ PDU with these codes."""
    return bytes((0x03, 0, 0, 0, 0, 4, 0, result, source, diagnostic))
