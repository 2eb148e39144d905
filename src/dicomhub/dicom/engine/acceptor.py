"""The asyncio acceptor: listens, applies TCP_NODELAY, runs one ``Association`` per socket."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import ssl
import threading

from dicomhub.dicom.bindings import build_services
from dicomhub.dicom.engine.association import Association, EngineContext
from dicomhub.dicom.engine.negotiation import Negotiator, supported_contexts
from dicomhub.dicom.engine.sharing import YIELD_DELAY, WorkerLoads
from dicomhub.dicom.engine.stream import PduStream
from dicomhub.dicom.tls import server_context
from dicomhub.runtime import Runtime

LOG = logging.getLogger("dicomhub.dicom")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is an optional extra
        return asyncio.new_event_loop()


class AsyncioDicomServer:
    """DICOM listener on dicomhub's own engine, running its event loop in a thread."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        listener: socket.socket | None = None,
        loads: WorkerLoads | None = None,
    ) -> None:
        """``listener`` is a socket bound by the first worker and shared by all (``sharing``);
        without it the acceptor binds the configured port itself.  ``loads`` balances
        associations among the workers sharing ``listener``."""
        self.runtime = runtime
        settings = runtime.settings
        self.listener = listener
        self.loads = loads
        self._take_next = False
        """The next connection is taken whatever the balance (it waited for another worker)."""
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_associations + 4, thread_name_prefix="dicomhub-dimse"
        )
        contexts = supported_contexts()
        self.engine = EngineContext(
            services=build_services(runtime),
            access=runtime.access,
            blobs=runtime.blobs,
            executor=self.executor,
            contexts=contexts,
            negotiator=Negotiator(contexts, settings.max_pdu_size),
            max_pdu=settings.max_pdu_size,
            acse_timeout=settings.acse_timeout,
            dimse_timeout=settings.dimse_timeout,
            network_timeout=settings.network_timeout,
            inline_stores=runtime.db.is_sqlite,
        )
        self.tls = server_context(settings)
        self.loop = _new_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        """Running associations (a reference, so none is collected while it runs)."""

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._port

    def start(self) -> None:
        """Bind and serve in a background thread; raise OSError if the port is taken."""
        settings = self.runtime.settings
        self.runtime.recover()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="dicomhub-engine", daemon=True
        )
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        future.result(timeout=30)
        LOG.info(
            "DICOM listener %s on %s:%d (%d presentation contexts, asyncio engine)",
            settings.ae_title,
            settings.bind,
            self.port,
            len(self.engine.contexts),
        )

    async def _listen(self) -> None:
        settings = self.runtime.settings
        if self.listener is not None:
            self._port = int(self.listener.getsockname()[1])
            self.loop.add_reader(self.listener.fileno(), self._accept)
            return
        self._server = await self.loop.create_server(
            lambda: PduStream(self._on_connection),
            settings.bind,
            settings.dicom_port,
            reuse_address=True,
            backlog=128,
            ssl=self.tls,
            ssl_handshake_timeout=settings.acse_timeout if self.tls else None,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    def _accept(self) -> None:
        """A connection waits on the shared socket: take it, unless another worker serves
        fewer associations (it gets ``YIELD_DELAY`` to take it first)."""
        assert self.listener is not None
        if self.loads is not None and not self._take_next and self.loads.lighter_elsewhere():
            self.loop.remove_reader(self.listener.fileno())
            self.loop.call_later(YIELD_DELAY, self._accept_again)
            return
        self._take_next = False
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:  # out of descriptors, say: try again in a moment
            LOG.error("accepting a DICOM connection failed: %s", exc)
            self.loop.remove_reader(self.listener.fileno())
            self.loop.call_later(0.1, self._accept_again, False)
            return
        conn.setblocking(False)
        if self.loads is not None:
            self.loads.add(1)
        task = self.loop.create_task(self._serve_accepted(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accept_again(self, take: bool = True) -> None:
        if self.listener is None or self.listener.fileno() < 0:
            return  # stopped meanwhile
        self._take_next = take
        self.loop.add_reader(self.listener.fileno(), self._accept)

    async def _serve_accepted(self, conn: socket.socket) -> None:
        """Run an association on a socket accepted from the shared listener."""
        settings = self.runtime.settings
        opened: list[PduStream] = []
        try:
            await self.loop.connect_accepted_socket(
                lambda: PduStream(opened.append),
                conn,
                ssl=self.tls,
                ssl_handshake_timeout=settings.acse_timeout if self.tls else None,
            )
            if opened:
                await Association(self.engine, opened[0]).run()
        except ssl.SSLError:  # the handshake failed; dicom.tls logged why
            conn.close()
        except (OSError, TimeoutError) as exc:  # dropped, or a handshake that never ended
            LOG.warning(
                "DICOM connection dropped before its association: %s",
                exc or type(exc).__name__,
            )
            conn.close()
        finally:
            if self.loads is not None:
                self.loads.add(-1)

    def _on_connection(self, stream: PduStream) -> None:
        task = self.loop.create_task(Association(self.engine, stream).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Stop listening, abort open associations and stop the loop."""
        if self._thread is None:
            return

        async def shutdown() -> None:
            if self.listener is not None:
                self.loop.remove_reader(self.listener.fileno())
                self.listener.close()
            if self._server is not None:
                self._server.close()
            for association in list(self.engine.active):
                association.stream.close()
            if self._server is not None:
                await self._server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        except (TimeoutError, concurrent.futures.TimeoutError):
            LOG.warning("DICOM listener did not stop within 10 s")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.engine.hasher.shutdown(wait=False, cancel_futures=True)
        if not self.loop.is_running():
            self._close_loop()

    def _close_loop(self) -> None:
        """Release the loop's descriptors (selector, self-pipe): tasks of associations cut
        by the stop are cancelled and given a last turn first."""
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
