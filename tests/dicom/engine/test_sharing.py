"""The shared listening socket of the worker processes and the balance of associations."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from dicomhub.config import Settings
from dicomhub.dicom.engine.acceptor import AsyncioDicomServer
from dicomhub.dicom.engine.sharing import WorkerLoads, shared_listener
from dicomhub.runtime import open_runtime
from tests.dicom.conftest import echo_status
from tests.tls import Certificates, make_certificates


def test_loads_compare_the_workers() -> None:
    counts = WorkerLoads.shared(3)
    first, second = WorkerLoads(counts, 0), WorkerLoads(counts, 1)
    assert not first.lighter_elsewhere()
    first.add(1)
    assert first.lighter_elsewhere()  # the other two serve none
    assert not second.lighter_elsewhere()
    second.add(1)
    WorkerLoads(counts, 2).add(1)
    assert not first.lighter_elsewhere()
    first.add(-1)
    assert list(counts) == [0, 1, 1]


def test_the_shared_listener_is_bound_and_non_blocking() -> None:
    sock = shared_listener("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
        assert not sock.getblocking()
        with pytest.raises(BlockingIOError):
            sock.accept()  # nobody waits: a worker that lost the race returns at once
    finally:
        sock.close()


@pytest.fixture
def shared_server(settings: Settings) -> Iterator[AsyncioDicomServer]:
    """An acceptor on a socket bound for it, as a worker gets it; its load slot is 0 of 2."""
    runtime = open_runtime(settings.model_copy(update={"dicom_port": 0}))
    listener = shared_listener("127.0.0.1", 0)
    counts = WorkerLoads.shared(2)
    server = AsyncioDicomServer(runtime, listener=listener, loads=WorkerLoads(counts, 0))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        runtime.close()
        listener.close()


def test_a_worker_alone_takes_every_connection_after_a_moment(
    shared_server: AsyncioDicomServer,
) -> None:
    """The other slot never takes anything (no such worker): connections are still served,
    one moment later each, and the count goes back to zero when they end."""
    assert shared_server.loads is not None
    for _ in range(3):
        assert echo_status(shared_server.port) == 0x0000
    deadline = time.monotonic() + 5
    while shared_server.loads.lighter_elsewhere() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not shared_server.loads.lighter_elsewhere()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_tls_on_the_shared_socket(
    settings: Settings, certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker on the shared socket speaks TLS like the single acceptor: a stalled handshake
    holds up nobody and is dropped at ARTIM; plain DICOM on the TLS port gets nowhere."""
    runtime = open_runtime(
        settings.model_copy(
            update={
                "dicom_port": 0,
                "acse_timeout": 2.0,
                "tls_certificate": certificates.server_certificate,
                "tls_private_key": certificates.server_key,
            }
        )
    )
    listener = shared_listener("127.0.0.1", 0)
    server = AsyncioDicomServer(runtime, listener=listener, loads=None)
    server.start()
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certificates.ca))
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        started = time.monotonic()
        assert echo_status(server.port, context) == 0x0000
        assert time.monotonic() - started < 2.0
        assert echo_status(server.port) is None
        assert "TLS handshake refused" in caplog.text
        stalled.settimeout(10)
        assert stalled.recv(1024) == b""  # dropped once the ARTIM time is over
    finally:
        stalled.close()
        server.stop()
        runtime.close()
        listener.close()
