"""A file's ``fdatasync`` started now and waited for later, without a Python thread.

The group commit indexes a batch while its segment records are flushed.  Handing the flush
to a Python thread costs two hand-overs of the interpreter lock per batch: the flushing
thread cannot start ``fdatasync`` until the committing thread, busy indexing, lets it run,
and the committing thread cannot go on until the flushing thread, back from the disk, gets
the lock to say so.  On a loaded machine each took a quarter to half a millisecond, as long
as a small object's whole flush.

The C library's POSIX asynchronous I/O (``aio_fsync``) runs the flush on a thread of its own
that never touches the interpreter: the flush starts at once, and ``wait`` sleeps in
``aio_suspend`` with the lock released, so it returns as soon as the disk does.  Where that
interface is missing (not glibc, an unknown structure layout) a Python thread does it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import platform
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

LOG = logging.getLogger(__name__)
_SIGEV_NONE = 1
_NO_AIO = frozenset({errno.EAGAIN, errno.ENOSYS, errno.EINVAL})
"""``aio_fsync`` errors that mean "not now" or "not here", rather than a bad descriptor."""
_IN_FLIGHT: set[_AioFlush] = set()
"""Flushes not yet waited for: the C library writes into their control blocks until they
are done, so they must live that long even if their caller lets go of them."""


class _Aiocb(ctypes.Structure):
    """glibc's ``struct aiocb`` on 64-bit Linux (168 bytes, checked at load)."""

    _fields_ = [
        ("aio_fildes", ctypes.c_int),
        ("aio_lio_opcode", ctypes.c_int),
        ("aio_reqprio", ctypes.c_int),
        ("aio_buf", ctypes.c_void_p),
        ("aio_nbytes", ctypes.c_size_t),
        ("sigev_value", ctypes.c_void_p),
        ("sigev_signo", ctypes.c_int),
        ("sigev_notify", ctypes.c_int),
        ("_sigev_rest", ctypes.c_byte * 48),
        ("_next_prio", ctypes.c_void_p),
        ("_abs_prio", ctypes.c_int),
        ("_policy", ctypes.c_int),
        ("_error_code", ctypes.c_int),
        ("_return_value", ctypes.c_ssize_t),
        ("aio_offset", ctypes.c_int64),
        ("_reserved", ctypes.c_byte * 32),
    ]


def _load_libc() -> ctypes.CDLL | None:
    """glibc with the asynchronous I/O calls, or None where they cannot be used safely."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    if ctypes.sizeof(ctypes.c_void_p) != 8 or ctypes.sizeof(_Aiocb) != 168:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        functions = (libc.aio_fsync, libc.aio_error, libc.aio_return, libc.aio_suspend)
    except (OSError, AttributeError):
        return None
    for function in functions:
        function.restype = ctypes.c_int
    libc.aio_return.restype = ctypes.c_ssize_t
    return libc


_LIBC = _load_libc()


class Flushing(Protocol):
    """A flush under way."""

    def wait(self) -> None:
        """Return once the data is on stable storage; ``OSError`` if the disk refused."""
        ...


class _Done:
    """A flush with nothing to do."""

    def wait(self) -> None:
        """Nothing to wait for."""


class _AioFlush:
    """``aio_fsync(O_DSYNC)`` on a descriptor."""

    def __init__(self, fd: int) -> None:
        self._block = _Aiocb(aio_fildes=fd, sigev_notify=_SIGEV_NONE)
        self._error: OSError | None = None
        self._finished = False
        self._lock = threading.Lock()
        assert _LIBC is not None
        if _LIBC.aio_fsync(os.O_DSYNC, ctypes.byref(self._block)) != 0:
            raise _errno_error("aio_fsync")
        _IN_FLIGHT.add(self)

    def wait(self) -> None:
        """Sleep (without the interpreter lock) until the flush is back."""
        assert _LIBC is not None
        with self._lock:  # a second waiter sees the first's outcome
            if not self._finished:
                self._finish(_LIBC)
        if self._error is not None:
            raise self._error

    def _finish(self, libc: ctypes.CDLL) -> None:
        waiting = (ctypes.POINTER(_Aiocb) * 1)(ctypes.pointer(self._block))
        while (code := libc.aio_error(ctypes.byref(self._block))) == errno.EINPROGRESS:
            if libc.aio_suspend(waiting, 1, None) != 0:
                failure = ctypes.get_errno()
                if failure not in (errno.EINTR, errno.EAGAIN):
                    raise OSError(failure, os.strerror(failure))
        self._finished = True
        _IN_FLIGHT.discard(self)
        result = libc.aio_return(ctypes.byref(self._block))
        if code != 0 or result != 0:
            # aio_error gives the flush's errno, or -1 with errno set if it refused the block
            failure = code if code > 0 else (ctypes.get_errno() or errno.EIO)
            self._error = OSError(failure, f"fdatasync: {os.strerror(failure)}")


class _ThreadFlush:
    """``fdatasync`` on a Python thread, where the C library offers no other way."""

    _pool = ThreadPoolExecutor(1, thread_name_prefix="dicomhub-flush")

    def __init__(self, fd: int) -> None:
        self._future: Future[None] = self._pool.submit(os.fdatasync, fd)

    def wait(self) -> None:
        """Wait for the thread's ``fdatasync``."""
        self._future.result()


def start_flush(fd: int) -> Flushing:
    """Start flushing ``fd``'s written data to stable storage; ``wait`` on the result."""
    if _LIBC is not None:
        try:
            return _AioFlush(fd)
        except OSError as exc:
            if exc.errno not in _NO_AIO:
                raise
            LOG.debug("aio_fsync not available (%s); flushing on a thread", exc)
    return _ThreadFlush(fd)


def done() -> Flushing:
    """A flush that is already complete (storage without durability)."""
    return _Done()


def _errno_error(call: str) -> OSError:
    failure = ctypes.get_errno()
    return OSError(failure, f"{call}: {os.strerror(failure)}")
