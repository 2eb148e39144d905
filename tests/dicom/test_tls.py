"""DICOM over TLS on both engines: pynetdicom SCUs with and without certificates, clients
that never finish the handshake, and plain TCP on a TLS port."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from dicomhub.config import Settings
from dicomhub.dicom.server import Listener
from dicomhub.dicom.tls import server_context
from tests.dicom.conftest import ServerFactory, echo_status
from tests.tls import Certificates, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _client_context(certificates: Certificates, *, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certificates.ca))
    if with_certificate:
        context.load_cert_chain(certificates.client_certificate, certificates.client_key)
    return context


def _tls_server(
    server_factory: ServerFactory, certificates: Certificates, **overrides: object
) -> Listener:
    return server_factory(
        tls_certificate=certificates.server_certificate,
        tls_private_key=certificates.server_key,
        **overrides,
    )


def test_echo_over_tls(
    server_factory: ServerFactory,
    certificates: Certificates,
    engine: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = _tls_server(server_factory, certificates)
    assert echo_status(server.port, _client_context(certificates, with_certificate=False)) == 0x0000
    assert echo_status(server.port, None) is None  # plain DICOM on the TLS port gets nowhere
    assert echo_status(server.port, _client_context(certificates, with_certificate=False)) == 0x0000
    if engine == "asyncio":
        assert "TLS handshake refused: WRONG_VERSION_NUMBER" in caplog.text


def test_client_certificate_required_when_a_ca_is_configured(
    server_factory: ServerFactory, certificates: Certificates
) -> None:
    server = _tls_server(server_factory, certificates, tls_ca_certificates=certificates.ca)
    assert echo_status(server.port, _client_context(certificates, with_certificate=False)) is None
    assert echo_status(server.port, _client_context(certificates, with_certificate=True)) == 0x0000


def test_stalled_handshakes_do_not_block_others(
    server_factory: ServerFactory, certificates: Certificates, engine: str
) -> None:
    if engine == "pynetdicom":
        pytest.xfail("pynetdicom's acceptor runs the TLS handshake in its accept thread")
    server = _tls_server(server_factory, certificates, acse_timeout=2.0, max_associations=2)
    stalled = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
    try:
        started = time.monotonic()
        assert (
            echo_status(server.port, _client_context(certificates, with_certificate=False))
            == 0x0000
        )
        assert time.monotonic() - started < 2.0  # served while four handshakes hang
        for sock in stalled:  # closed by the server once the ARTIM time is over
            sock.settimeout(10)
            assert sock.recv(1024) == b""
    finally:
        for sock in stalled:
            sock.close()


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_misconfiguration_is_a_clear_error(tmp_path: Path, certificates: Certificates) -> None:
    with pytest.raises(ValueError, match="both tls_certificate and tls_private_key"):
        server_context(_settings(tls_certificate=certificates.server_certificate))
    with pytest.raises(ValueError, match="tls_ca_certificates is set"):
        server_context(_settings(tls_ca_certificates=certificates.ca))
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=f"cannot use TLS certificate {missing}"):
        server_context(_settings(tls_certificate=missing, tls_private_key=certificates.server_key))
    with pytest.raises(ValueError, match="cannot use TLS certificate"):
        server_context(
            _settings(
                tls_certificate=certificates.server_certificate,
                tls_private_key=certificates.client_key,  # not the certificate's key
            )
        )
    assert server_context(_settings()) is None
