"""``dicomhub serve``: the DICOM listener, optionally in several worker processes.

With ``workers = N`` (N > 1) every process binds the same port with SO_REUSEPORT, so the
kernel spreads associations over them; they share the index and the storage root, as any
dicomhub processes may.  ``max_associations`` then applies to each worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from typing import Any

from dicomhub import __version__
from dicomhub.cli.logs import setup_logging
from dicomhub.config import Settings, _hide_password
from dicomhub.runtime import open_runtime

LOG = logging.getLogger("dicomhub")


class StartupError(Exception):
    """The server cannot start; the message says why."""


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _listen(settings: Settings, *, migrate_schema: bool, reuse_port: bool) -> None:
    """Open the runtime, serve until a signal, then stop cleanly."""
    from dicomhub.dicom.bindings import storage_commitment
    from dicomhub.dicom.commitment_reporter import CommitmentReporter
    from dicomhub.dicom.engine.acceptor import AsyncioDicomServer
    from dicomhub.dicom.forwarder import Forwarder
    from dicomhub.dicom.server import Listener, create_listener
    from dicomhub.hl7.listener import HL7Listener

    try:
        runtime = open_runtime(settings, migrate_schema=migrate_schema)
    except Exception as exc:
        raise StartupError(
            f"cannot open the index at {_hide_password(settings.effective_database_url)}: {exc}"
        ) from exc
    server: Listener = (
        AsyncioDicomServer(runtime, reuse_port=True) if reuse_port else create_listener(runtime)
    )
    forwarder = Forwarder(runtime)
    hl7 = HL7Listener(runtime, reuse_port=reuse_port) if settings.hl7_port is not None else None
    reporter = CommitmentReporter(storage_commitment(runtime))
    try:
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
        LOG.info(
            "dicomhub %s serving; data in %s, index %s",
            __version__,
            settings.data_dir.absolute(),
            _hide_password(settings.effective_database_url),
        )
        _wait_for_signal()
        LOG.info("shutting down")
    finally:
        reporter.stop()
        forwarder.stop()
        if hl7 is not None:
            hl7.stop()
        server.stop()
        runtime.close()


def _worker(values: dict[str, Any]) -> None:
    """Entry point of a worker process (spawned, so it starts clean)."""
    settings = Settings(**values)
    setup_logging(settings.log_level)
    _listen(settings, migrate_schema=False, reuse_port=True)


def serve(settings: Settings) -> None:
    """Serve in this process, plus ``settings.workers - 1`` worker processes."""
    if settings.workers <= 1:
        _listen(settings, migrate_schema=True, reuse_port=False)
        return
    if settings.engine != "asyncio" or settings.dicom_port == 0:
        raise ValueError("several workers need the asyncio engine and a fixed dicom_port")
    try:
        open_runtime(settings).close()  # create or upgrade the schema once, before the workers
    except Exception as exc:
        raise StartupError(f"cannot open the index: {exc}") from exc
    context = multiprocessing.get_context("spawn")
    values = settings.model_dump(mode="json")
    children = [
        context.Process(target=_worker, args=(values,), name=f"dicomhub-worker-{n}")
        for n in range(1, settings.workers)
    ]
    for child in children:
        child.start()
    try:
        _listen(settings, migrate_schema=False, reuse_port=True)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=15)
