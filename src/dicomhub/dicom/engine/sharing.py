"""One listening socket shared by the worker processes, and the balance of associations.

With ``workers = N`` the first process binds the DICOM port once and hands the socket to the
other workers.  Every worker waits for connections on it and the first to call ``accept`` gets
the next one.  SO_REUSEPORT (one socket per worker) would let the kernel pick the worker by a
hash of the peer's address and port, which puts three of four simultaneous associations on one
worker half of the time while the other idles.

``WorkerLoads`` is a small array in shared memory with the number of associations each worker
is serving.  A worker that serves more than another lets a new connection wait a moment for the
lighter one (``YIELD_DELAY``); it takes it itself if the connection is still waiting then, so a
stuck worker never holds up a connection for longer than that.
"""

from __future__ import annotations

import multiprocessing
import socket
from typing import Any

YIELD_DELAY = 0.003
"""Seconds a busier worker leaves a new connection to a lighter one before taking it."""


class WorkerLoads:
    """The associations each worker serves; each worker writes only its own slot."""

    def __init__(self, counts: Any, slot: int) -> None:
        self._counts = counts
        self.slot = slot

    @staticmethod
    def shared(workers: int) -> Any:
        """The shared array for ``workers`` processes (handed to each at spawn)."""
        return multiprocessing.get_context("spawn").RawArray("i", workers)

    def add(self, delta: int) -> None:
        """This worker starts (+1) or ends (-1) serving an association."""
        self._counts[self.slot] += delta

    def lighter_elsewhere(self) -> bool:
        """Another worker serves fewer associations than this one."""
        counts = list(self._counts)
        mine = counts[self.slot]
        return any(count < mine for count in counts)


def shared_listener(host: str, port: int, backlog: int = 128) -> socket.socket:
    """Bind the DICOM port once, for every worker (non-blocking, close-on-exec)."""
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family = found[0][0]
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock
