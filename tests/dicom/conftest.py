"""In-process acceptor fixtures: dicomhub's DICOM server on an ephemeral port."""

from __future__ import annotations

import socket
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
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for context in contexts:
        if transfer_syntaxes:
            ae.add_requested_context(context, transfer_syntaxes)
        else:
            ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=called)
    if assoc.is_established and assoc.dul.socket and assoc.dul.socket.socket:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc
