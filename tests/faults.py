"""Injected faults shared by the tests."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import pytest

from dicomhub.storage import filesystem, flush, segments


def disk_full(_fd: int, _data: bytes | bytearray | memoryview) -> None:
    """A stand-in for the blob store's write primitive on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device")


def disk_full_at(_fd: int, _parts: Sequence[bytes | bytearray], _position: int) -> None:
    """A stand-in for the segment store's write primitive on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device")


def fill_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every blob write (files and segments) fail as on a full disk."""
    monkeypatch.setattr(filesystem, "_write_all", disk_full)
    monkeypatch.setattr(segments, "_pwrite_all", disk_full_at)


def flush_fails(monkeypatch: pytest.MonkeyPatch, code: int = errno.EIO) -> None:
    """Make every segment flush fail with ``code``, as a failing disk's ``fdatasync`` does.

    The C library's asynchronous flush calls ``fdatasync`` where Python cannot reach it, so
    the flush is moved to its Python thread, whose ``os.fdatasync`` fails."""

    def failing(_fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(flush, "_LIBC", None)
    monkeypatch.setattr(os, "fdatasync", failing)
