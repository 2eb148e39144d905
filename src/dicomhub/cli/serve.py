"""``dicomhub serve``: the DICOM listener, optionally in several worker processes, and the HTTP
server (REST API, DICOMweb, web UI) in the first process.

With ``workers = N`` (N > 1) the first process binds the DICOM port and hands the socket to
N - 1 worker processes; a new association goes to the worker serving the fewest
(``dicom.engine.sharing``).  They share the index and the storage root, as any dicomhub
processes may.  ``max_associations`` then applies to each worker.

Bound to a network address, the HTTP server requires authentication: ``serve`` refuses to
start while no HTTP user or token exists (``dicomhub users``), and should the last one be
removed while it runs, the HTTP server refuses every request until one is created again.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicomhub import __version__
from dicomhub.cli.logs import setup_logging
from dicomhub.config import Settings, _hide_password
from dicomhub.runtime import Runtime, open_runtime

if TYPE_CHECKING:
    from dicomhub.web.server import HttpServer

LOG = logging.getLogger("dicomhub")
WORKER_START_TIMEOUT = 60.0
"""Seconds the workers wait for each other before serving (see ``_all_ready``)."""


class StartupError(Exception):
    """The server cannot start; the message says why."""


def _stop_on_signal() -> threading.Event:
    """The event SIGINT and SIGTERM set from now on.  Installed before anything starts, so a
    signal that comes while the listeners are starting (one may already be serving) still
    stops the server cleanly instead of killing it half-started."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _active_associations(server: object) -> Callable[[], int] | None:
    """How to count the listener's open associations, when it says."""
    engine = getattr(server, "engine", None)
    active = getattr(engine, "active", None)
    if active is not None:
        return lambda: len(active)
    ae = getattr(server, "ae", None)
    if ae is not None:
        return lambda: len(ae.active_associations)
    return None


def check_http_authentication(settings: Settings, runtime: Runtime) -> None:
    """Refuse to serve HTTP on a network address without any user or token."""
    from dicomhub.index.credentials import CredentialRepository

    if settings.is_loopback or CredentialRepository(runtime.db).count():
        return
    raise StartupError(
        f"dicomhub is bound to {settings.bind}, a network address, and no HTTP user or token "
        "exists: anyone could read and change the archive over HTTP.  Create an admin first "
        "(`dicomhub users add NAME --role admin`, or `dicomhub users token NAME --role "
        "admin`), or bind to 127.0.0.1."
    )


def _http_server(settings: Settings, runtime: Runtime, listener: object) -> HttpServer:
    """The HTTP server of this process (not started)."""
    from dicomhub.web.app import create_app
    from dicomhub.web.server import HttpServer

    app = create_app(
        runtime, associations=_active_associations(listener), loopback=settings.is_loopback
    )
    return HttpServer(app, settings.bind, settings.http_port)


@dataclass(frozen=True)
class Sharing:
    """What a worker shares with the others: the bound DICOM socket and the load array."""

    listener: socket.socket
    counts: Any
    slot: int
    ready: Any
    """How many workers are ready to accept (a shared counter, see ``_all_ready``)."""
    workers: int


def _listen(
    settings: Settings, *, migrate_schema: bool, sharing: Sharing | None, http: bool = True
) -> None:
    """Open the runtime, serve until a signal, then stop cleanly."""
    from dicomhub import allocator
    from dicomhub.dicom.bindings import storage_commitment
    from dicomhub.dicom.commitment_reporter import CommitmentReporter
    from dicomhub.dicom.engine.acceptor import AsyncioDicomServer
    from dicomhub.dicom.engine.sharing import WorkerLoads
    from dicomhub.dicom.forwarder import Forwarder
    from dicomhub.dicom.server import Listener, create_listener
    from dicomhub.hl7.listener import HL7Listener

    stop = _stop_on_signal()
    allocator.tune()
    try:
        runtime = open_runtime(settings, migrate_schema=migrate_schema)
    except Exception as exc:
        raise StartupError(
            f"cannot open the index at {_hide_password(settings.effective_database_url)}: {exc}"
        ) from exc
    if http:
        try:
            check_http_authentication(settings, runtime)
        except StartupError:
            runtime.close()
            raise
    server: Listener = (
        AsyncioDicomServer(
            runtime,
            listener=sharing.listener,
            loads=WorkerLoads(sharing.counts, sharing.slot),
        )
        if sharing is not None
        else create_listener(runtime)
    )
    forwarder = Forwarder(runtime)
    hl7 = (
        HL7Listener(runtime, reuse_port=sharing is not None)
        if settings.hl7_port is not None
        else None
    )
    reporter = CommitmentReporter(storage_commitment(runtime))
    web: HttpServer | None = None
    try:
        if http:
            web = _http_server(settings, runtime, server)
        if sharing is not None:
            _all_ready(sharing, stop)
        server.start()
        if hl7 is not None:
            try:
                hl7.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot listen for HL7 on {settings.bind}:{settings.hl7_port}: {exc}"
                ) from exc
        forwarder.start()
        reporter.start()
        if web is not None:
            try:
                web.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot listen for HTTP on {settings.bind}:{settings.http_port}: {exc}"
                ) from exc
        LOG.info(
            "dicomhub %s serving; data in %s, index %s",
            __version__,
            settings.data_dir.absolute(),
            _hide_password(settings.effective_database_url),
        )
        stop.wait()
        LOG.info("shutting down")
    finally:
        if web is not None:
            web.stop()
        reporter.stop()
        forwarder.stop()
        if hl7 is not None:
            hl7.stop()
        server.stop()
        runtime.close()


def _all_ready(sharing: Sharing, stop: threading.Event) -> None:
    """Wait until every worker can accept, so that none takes every association of a burst
    that arrives while the others are still starting (the first to answer would keep them).
    A worker that fails to start holds the others up for ``WORKER_START_TIMEOUT`` at most."""
    with sharing.ready.get_lock():
        sharing.ready.value += 1
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while sharing.ready.value < sharing.workers:
        if time.monotonic() > deadline:
            LOG.warning(
                "%d of %d workers ready after %.0f s; serving with those",
                sharing.ready.value,
                sharing.workers,
                WORKER_START_TIMEOUT,
            )
            return
        if stop.wait(0.01):
            return


def _worker(values: dict[str, Any], sharing: Sharing) -> None:
    """Entry point of a worker process (spawned, so it starts clean)."""
    settings = Settings(**values)
    setup_logging(settings.log_level)
    _listen(settings, migrate_schema=False, sharing=sharing, http=False)


def serve(settings: Settings) -> None:
    """Serve in this process, plus ``settings.workers - 1`` worker processes."""
    if settings.workers <= 1:
        _listen(settings, migrate_schema=True, sharing=None)
        return
    if settings.engine != "asyncio" or settings.dicom_port == 0:
        raise ValueError("several workers need the asyncio engine and a fixed dicom_port")
    try:
        open_runtime(settings).close()  # create or upgrade the schema once, before the workers
    except Exception as exc:
        raise StartupError(f"cannot open the index: {exc}") from exc
    from dicomhub.dicom.engine.sharing import WorkerLoads, shared_listener

    try:
        listener = shared_listener(settings.bind, settings.dicom_port)
    except OSError as exc:
        raise StartupError(
            f"cannot listen for DICOM on {settings.bind}:{settings.dicom_port}: {exc}"
        ) from exc
    counts = WorkerLoads.shared(settings.workers)
    context = multiprocessing.get_context("spawn")
    ready = context.Value("i", 0)
    values = settings.model_dump(mode="json")
    children = [
        context.Process(
            target=_worker,
            args=(values, Sharing(listener, counts, n, ready, settings.workers)),
            name=f"dicomhub-worker-{n}",
        )
        for n in range(1, settings.workers)
    ]
    for child in children:
        child.start()
    try:
        first = Sharing(listener, counts, 0, ready, settings.workers)
        _listen(settings, migrate_schema=False, sharing=first)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=15)
