"""Builds the DICOM acceptor from the settings and the conformance registry."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pynetdicom import AE

from dicomhub.config import Service
from dicomhub.conformance import REGISTRY
from dicomhub.dicom.adapter import Handlers, install_streaming, uninstall_streaming
from dicomhub.dicom.bindings import build_services
from dicomhub.dicom.tls import server_context
from dicomhub.runtime import Runtime

LOG = logging.getLogger("dicomhub.dicom")
PYNETDICOM_SERVICES = {Service.VERIFICATION, Service.STORAGE, Service.QUERY}
"""What the pynetdicom engine serves; C-MOVE and C-GET need the asyncio engine."""


class Listener(Protocol):
    """What ``dicomhub serve`` and the tests need of a DICOM listener, whatever the engine."""

    runtime: Runtime

    @property
    def port(self) -> int: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_listener(runtime: Runtime) -> Listener:
    """The listener of the configured engine."""
    if runtime.settings.engine == "pynetdicom":
        return DicomServer(runtime)
    from dicomhub.dicom.engine.acceptor import AsyncioDicomServer

    return AsyncioDicomServer(runtime)


class DicomServer:
    """The pynetdicom listener: one AE with every registered SCP context and bound services."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.services = build_services(runtime)
        ae = AE(ae_title=settings.ae_title)
        ae.maximum_associations = settings.max_associations + 1  # the gate refuses first
        ae.maximum_pdu_size = settings.max_pdu_size
        ae.acse_timeout = settings.acse_timeout
        ae.dimse_timeout = settings.dimse_timeout
        ae.network_timeout = settings.network_timeout
        for entry in REGISTRY:
            if entry.role == "SCP" and entry.service in PYNETDICOM_SERVICES:
                ae.add_supported_context(entry.uid, list(entry.transfer_syntaxes))
        ae.dicomhub_gate = runtime.access.check_association  # type: ignore[attr-defined]
        self.ae = ae
        self.handlers = Handlers(self.services, runtime.access)
        self._server: Any = None

    @property
    def port(self) -> int:
        """The bound TCP port (useful when configured as 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Start listening in background threads."""
        settings = self.runtime.settings
        install_streaming(self.runtime.blobs)
        self.runtime.recover()
        self._server = self.ae.start_server(
            (settings.bind, settings.dicom_port),
            block=False,
            evt_handlers=self.handlers.bindings(),
            ssl_context=server_context(settings),
        )
        LOG.info(
            "DICOM listener %s on %s:%d (%d presentation contexts)",
            settings.ae_title,
            settings.bind,
            self.port,
            len(self.ae.supported_contexts),
        )

    def stop(self) -> None:
        """Stop listening and abort open associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            uninstall_streaming(self.runtime.blobs)
