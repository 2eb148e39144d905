"""Builds the DICOM acceptor from the settings and the conformance registry."""

from __future__ import annotations

import logging
from typing import Any

from pynetdicom import AE

from dicomhub.conformance import REGISTRY
from dicomhub.dicom.adapter import Handlers, Services, install_streaming
from dicomhub.dicom.services.echo import EchoService
from dicomhub.dicom.services.query import QueryService
from dicomhub.dicom.services.store import StoreService
from dicomhub.runtime import Runtime

LOG = logging.getLogger("dicomhub.dicom")


class DicomServer:
    """The DICOM listener: one AE with every registered SCP context and bound services."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.services = Services(
            echo=EchoService(runtime.access),
            store=StoreService(runtime.ingest, runtime.access),
            query=QueryService(runtime.finder, runtime.access),
        )
        ae = AE(ae_title=settings.ae_title)
        ae.maximum_associations = settings.max_associations + 1  # the gate refuses first
        ae.maximum_pdu_size = settings.max_pdu_size
        ae.acse_timeout = settings.acse_timeout
        ae.dimse_timeout = settings.dimse_timeout
        ae.network_timeout = settings.network_timeout
        for entry in REGISTRY:
            if entry.role == "SCP":
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
        self.runtime.blobs.clean_staging()
        self._server = self.ae.start_server(
            (settings.bind, settings.dicom_port),
            block=False,
            evt_handlers=self.handlers.bindings(),
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
