"""Memory stays flat while four DCMTK storescu send 100 MB objects at once.

Objects larger than the in-memory limit stream into staging files as their PDUs arrive, so
the server's resident memory does not grow with the size of what it receives, nor with the
number of associations doing so at the same time.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from tests.factories import make_dataset, write_file
from tests.interop.support import HubFactory, sha256, split_part10, start_storescu

pytestmark = pytest.mark.interop

FRAMES = 100
SIDE = 1024
"""A hundred frames of 1024 x 1024 8-bit pixels: 100 MiB of pixel data."""
MiB = 1024 * 1024


def _rss(pid: int) -> int:
    """Resident memory of a process, in bytes (0 once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _big_files(folder: Path, count: int) -> list[Path]:
    ds = make_dataset(rows=8)
    ds.Rows = ds.Columns = SIDE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.NumberOfFrames = FRAMES
    ds.PixelData = np.arange(FRAMES * SIDE * SIDE, dtype=np.uint8).tobytes()
    files = []
    for n in range(count):
        ds.SOPInstanceUID = generate_uid()
        files.append(write_file(ds, folder / f"big{n}.dcm"))
    return files


def test_four_concurrent_100_mb_objects_keep_memory_flat(
    start_hub: HubFactory, tmp_path: Path
) -> None:
    files = _big_files(tmp_path / "send", 4)
    hub = start_hub()
    baseline = _rss(hub.process.pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _rss(hub.process.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        senders = [start_storescu([f], hub.port, calling=f"BIG{n}") for n, f in enumerate(files)]
        for sender in senders:
            output, _ = sender.communicate(timeout=300)
            assert sender.returncode == 0, output.decode(errors="replace")[-2000:]
    finally:
        done.set()
        sampler.join()
    assert hub.count("instances") == 4
    for path in files:
        sent = split_part10(path.read_bytes())
        stored = hub.instance(sent.sop_instance_uid)
        assert stored is not None
        assert stored.content_sha256 == sha256(sent.dataset)
    growth = peak - baseline
    assert growth < 64 * MiB, (
        f"resident memory grew by {growth / MiB:.0f} MiB while receiving 4 x 100 MiB "
        f"(from {baseline / MiB:.0f} MiB to {peak / MiB:.0f} MiB)"
    )
