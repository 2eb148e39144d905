"""The visible table of DICOM services, built once from the runtime for either engine."""

from __future__ import annotations

from dataclasses import dataclass

from dicomhub.dicom.services.echo import EchoService
from dicomhub.dicom.services.query import QueryService
from dicomhub.dicom.services.retrieve import RetrieveService
from dicomhub.dicom.services.store import StoreService
from dicomhub.index.retrieve import RetrieveLocator
from dicomhub.runtime import Runtime


@dataclass
class Services:
    """The service handlers an acceptor dispatches to."""

    echo: EchoService
    store: StoreService
    query: QueryService
    retrieve: RetrieveService


def build_services(runtime: Runtime) -> Services:
    """Bind every service to its dependencies."""
    return Services(
        echo=EchoService(runtime.access),
        store=StoreService(runtime.ingest, runtime.access),
        query=QueryService(runtime.finder, runtime.access),
        retrieve=RetrieveService(
            RetrieveLocator(runtime.db), runtime.access, runtime.settings, runtime.blobs
        ),
    )
