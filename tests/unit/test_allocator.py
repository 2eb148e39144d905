"""The C allocator's thresholds are set where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from dicomhub import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc has mallopt")
def test_thresholds_set_on_glibc() -> None:
    assert allocator.tune() is True
    assert allocator.tune() is True  # setting them again is harmless
