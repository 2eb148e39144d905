"""The visible table of DICOM services, built once from the runtime for either engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dicomhub.dicom.mpps_forwarding import MppsEnqueuer
from dicomhub.dicom.print_relay import PrintRelay
from dicomhub.dicom.services.echo import EchoService
from dicomhub.dicom.services.mpps import MppsService
from dicomhub.dicom.services.print import PrintService
from dicomhub.dicom.services.query import QueryService
from dicomhub.dicom.services.retrieve import RetrieveService
from dicomhub.dicom.services.storage_commitment import StorageCommitmentService
from dicomhub.dicom.services.store import StoreService
from dicomhub.dicom.services.worklist import WorklistService
from dicomhub.index.mpps import MppsRepository
from dicomhub.index.print_jobs import FilmJob, PrintRepository
from dicomhub.index.retrieve import RetrieveLocator
from dicomhub.index.worklist import WorklistRepository
from dicomhub.index.worklist_query import WorklistFinder
from dicomhub.print_archive import PrintArchiver
from dicomhub.runtime import Runtime


@dataclass
class Services:
    """The service handlers an acceptor dispatches to."""

    echo: EchoService
    store: StoreService
    query: QueryService
    retrieve: RetrieveService
    storage_commitment: StorageCommitmentService
    mpps: MppsService
    worklist: WorklistService
    print_management: PrintService


def storage_commitment(runtime: Runtime) -> StorageCommitmentService:
    """The Storage Commitment service of a runtime (the listener's and the reporter's)."""
    return StorageCommitmentService(
        runtime.commitments,
        runtime.repository,
        runtime.blobs,
        runtime.access,
        runtime.settings,
        runtime.forward_queue,
        runtime.commitment_wake,
    )


def mpps_repository(runtime: Runtime) -> MppsRepository:
    """The MPPS repository, queueing every accepted request for ``mpps_forward`` peers."""
    repository = MppsRepository(runtime.db)
    if runtime.settings.mpps_forward:
        repository.after_event = MppsEnqueuer(
            runtime.forward_queue, runtime.settings.mpps_forward, runtime.forward_wake
        )
    return repository


def print_archiver(runtime: Runtime) -> PrintArchiver | None:
    """The print service's print-to-archive hook, unless switched off."""
    if not runtime.settings.print_to_archive:
        return None
    return PrintArchiver(
        runtime.settings,
        runtime.ingest,
        runtime.repository,
        runtime.finder,
        PrintRepository(runtime.db),
    )


def print_hook(runtime: Runtime) -> Callable[[FilmJob], None] | None:
    """The print service's hook: print-to-archive, then the print relay (``print_relay``).

    The film is archived first: a relay printer that fails leaves the film in the archive (a
    record of what the modality asked for) and the modality's print fails; an archive that
    fails fails the print before any paper or film is used on the printer.
    """
    hooks: list[Callable[[FilmJob], None]] = []
    archiver = print_archiver(runtime)
    if archiver is not None:
        hooks.append(archiver)
    if runtime.settings.print_relay:
        hooks.append(PrintRelay(runtime.settings, runtime.access.peers))
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def chained(job: FilmJob) -> None:
        for hook in hooks:
            hook(job)

    return chained


def build_services(runtime: Runtime) -> Services:
    """Bind every service to its dependencies."""
    return Services(
        echo=EchoService(runtime.access),
        store=StoreService(runtime.ingest, runtime.access),
        query=QueryService(runtime.finder, runtime.access),
        retrieve=RetrieveService(
            RetrieveLocator(runtime.db), runtime.access, runtime.settings, runtime.blobs
        ),
        storage_commitment=storage_commitment(runtime),
        mpps=MppsService(
            mpps_repository(runtime),
            WorklistRepository(runtime.db),
            runtime.access,
            runtime.settings,
        ),
        worklist=WorklistService(
            WorklistFinder(runtime.db, case_insensitive_pn=runtime.settings.case_insensitive_pn),
            runtime.access,
            runtime.settings,
        ),
        print_management=PrintService(
            PrintRepository(runtime.db),
            runtime.access,
            runtime.settings,
            compose=print_hook(runtime),
        ),
    )
