"""Injected faults shared by the tests."""

from __future__ import annotations

import errno
from collections.abc import Sequence

import pytest

from dicomhub.storage import filesystem, segments


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
