"""The C allocator's thresholds for a server that receives objects of a few hundred kilobytes.

glibc serves an allocation above its mmap threshold (128 KiB at first, raised as such blocks
are freed) with a fresh mapping, and gives memory at the top of its heap back to the system
past its trim threshold.  A receiver that holds each object of up to 2 MiB in a buffer of its
own would then map, fault in and unmap pages for every object, or do so in bursts whenever
the dynamic threshold moves: measured on a CT series, a fifth of the server's CPU time.
With the thresholds set once, such buffers come from the heap and its pages stay mapped;
what is held is bounded by the in-memory limit per association, and memory past the trim
threshold is still returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

LOG = logging.getLogger(__name__)
MMAP_THRESHOLD = 4 << 20
"""Allocations above this get their own mapping (larger than any object held in memory)."""
TRIM_THRESHOLD = 64 << 20
"""Free memory at the top of the heap kept for the next objects, at most."""
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune() -> bool:
    """Set the thresholds where the C library is glibc; whether it was done."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False  # another C library: its defaults stay
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not done:
        LOG.debug("the C allocator's thresholds could not be set")
    return done
