"""The transport of one association: PDUs read straight into one buffer, writes with flow control.

asyncio's ``StreamReader`` copies every byte twice on its way in (into its buffer, then out of
it for ``readexactly``) and shifts what is left after each read.  ``PduStream`` is a buffered
protocol instead: the kernel writes into a buffer it owns, and a complete PDU is handed out
as a view of that buffer, with no copy.  The view is valid until the next read on the stream,
which is how the acceptor uses it: every PDU is dealt with before the next is read.

A PDU's header is checked against the caller's limit before its body is awaited, so a peer
cannot make the buffer grow past the negotiated maximum PDU size; when the buffer is full the
socket is not read until the association has taken what it holds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from dicomhub.dicom.engine import pdu

INITIAL_BUFFER = 1 << 20
"""Bytes of the receive buffer to start with (grown to the largest PDU allowed)."""
READ_SIZE = 1 << 16
"""Room the buffer keeps free for the next read, at least."""


class PduStream(asyncio.BufferedProtocol):
    """One accepted connection; ``on_open`` is called with the stream once connected."""

    def __init__(self, on_open: Callable[[PduStream], None]) -> None:
        self._on_open = on_open
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray(INITIAL_BUFFER)
        self._start = 0
        """Offset of the first byte not yet handed out."""
        self._end = 0
        """Offset after the last byte received."""
        self._capacity = INITIAL_BUFFER
        """The largest buffer the current reader needs (its PDU, plus room to read)."""
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        """Unread bytes the waiting reader needs (it is woken when they are there)."""
        self._eof = False
        self._lost: BaseException | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._paused_reading = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # asyncio.BufferedProtocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._on_open(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._buffer) - self._end < READ_SIZE:
            self._make_room(self._end - self._start + READ_SIZE)
        return memoryview(self._buffer)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        unread = self._end - self._start
        if unread >= self._capacity and not self._paused_reading:
            assert self._transport is not None
            self._transport.pause_reading()  # the reader takes what is here first
            self._paused_reading = True
        if unread >= self._wanted:
            self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("connection closed")
        self._eof = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(self._lost)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # Reading ----------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _make_room(self, needed: int) -> None:
        """Move the unread bytes to the front, in a larger buffer if ``needed`` asks for it."""
        pending = self._end - self._start
        if needed > len(self._buffer):
            bigger = bytearray(max(needed, 2 * len(self._buffer)))
            bigger[:pending] = memoryview(self._buffer)[self._start : self._end]
            self._buffer = bigger
        elif self._start:
            view = memoryview(self._buffer)
            view[:pending] = view[self._start : self._end]
        self._start, self._end = 0, pending

    async def _fill(self, size: int, timeout: float | None) -> None:
        """Wait until ``size`` unread bytes are in the buffer."""
        if len(self._buffer) - self._start < size:
            self._make_room(size + READ_SIZE)
        self._capacity = max(size, INITIAL_BUFFER)
        if self._paused_reading and self._end - self._start < self._capacity:
            assert self._transport is not None
            self._paused_reading = False
            self._transport.resume_reading()
        if self._end - self._start >= size:
            return
        self._wanted = size
        try:
            async with asyncio.timeout(timeout):
                while self._end - self._start < size:
                    if self._eof:
                        raise asyncio.IncompleteReadError(
                            bytes(self._buffer[self._start : self._end]), size
                        )
                    self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
        finally:
            self._wanted = 0

    async def read_pdu(
        self, timeout: float | None, limit: int, control_limit: int
    ) -> tuple[int, bytes, memoryview]:
        """The next PDU: its type, its 6-byte header and a view of its body (valid until the
        next read).  ``limit`` bounds a P-DATA-TF PDU and ``control_limit`` any other."""
        await self._fill(6, timeout)
        pdu_type, _, length = pdu.HEADER.unpack_from(self._buffer, self._start)
        if pdu_type not in pdu.KNOWN_TYPES:
            raise pdu.ProtocolError(
                f"unrecognised PDU type 0x{pdu_type:02X}", pdu.REASON_UNRECOGNIZED_PDU
            )
        bound = limit if pdu_type == pdu.P_DATA_TF else control_limit
        if length > bound:
            raise pdu.ProtocolError(f"PDU of {length} bytes exceeds the maximum of {bound}")
        await self._fill(6 + length, timeout)
        start = self._start
        self._start += 6 + length
        if self._start == self._end:
            self._start = self._end = 0
        header = bytes(self._buffer[start : start + 6])
        return pdu_type, header, memoryview(self._buffer)[start + 6 : start + 6 + length]

    async def read_to_end(self, timeout: float) -> None:
        """Discard what arrives until the peer closes, at most ``timeout`` seconds."""
        self._capacity = INITIAL_BUFFER
        self._wanted = 0
        async with asyncio.timeout(timeout):
            while not self._eof:
                self._start = self._end = 0
                if self._paused_reading and self._transport is not None:
                    self._paused_reading = False
                    self._transport.resume_reading()
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    # Writing ----------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for sending (ignored once the connection is closing)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, pieces: list[bytes]) -> None:
        """Queue several pieces at once."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.writelines(pieces)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._lost is not None:
            raise ConnectionResetError("connection lost") from self._lost
        if not self._write_paused:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await self._closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)
