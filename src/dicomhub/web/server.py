"""The HTTP server of ``dicomhub serve``: uvicorn running the app in a thread of its own.

The socket is bound in ``start`` (an address in use fails there, in the caller's thread, with
the error of the system); uvicorn then serves on it until ``stop``, which lets requests in
progress finish for a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI

LOG = logging.getLogger("dicomhub.web")
STOP_SECONDS = 10.0


class HttpServer:
    """Serves an ASGI app on ``host:port`` in a background thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._socket is not None, "the HTTP server is not started"
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        """Bind and start serving (raises ``OSError`` when the address cannot be bound)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(STOP_SECONDS),
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name="dicomhub-http", daemon=True
        )
        self._thread.start()
        ready.wait(STOP_SECONDS)
        LOG.info("HTTP server on http://%s:%d (REST API, DICOMweb, web UI)", self.host, self.port)

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        assert self._server is not None
        server = self._server

        async def serve() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            ready.set()
            await task

        try:
            asyncio.run(serve())
        except Exception:
            LOG.exception("the HTTP server stopped on an error")
        finally:
            ready.set()

    def stop(self) -> None:
        """Stop accepting, let requests in progress end, close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_SECONDS + 5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None
