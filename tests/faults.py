"""Injected faults shared by the tests."""

from __future__ import annotations

import errno


def disk_full(_fd: int, _data: bytes | bytearray | memoryview) -> None:
    """A stand-in for the blob store's write primitive on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device")
