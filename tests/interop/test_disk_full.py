"""A real full disk: the blob store on a 2 MiB tmpfs, DCMTK storescu as the sender.

Needs permission to mount a tmpfs (root on our machines); skipped, saying so, elsewhere.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhub.storage.filesystem import FilesystemBlobStore
from tests.factories import make_dataset, write_file
from tests.interop.support import HOST, HUB_AE, HubFactory, dimse_statuses, output_of, run_tool

pytestmark = pytest.mark.interop


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


def test_disk_full_answers_a700_and_keeps_nothing(
    start_hub: HubFactory, small_disk: Path, tmp_path: Path
) -> None:
    storage = small_disk / "storage"
    hub = start_hub({"DICOMHUB_STORAGE_DIR": str(storage)})
    big = make_dataset(rows=8)
    big.Rows = big.Columns = 1400  # about 3.9 MB of pixel data: more than the disk holds
    big.PixelData = b"\x00\x01" * (1400 * 1400)
    small = make_dataset(rows=16)
    files = [write_file(big, tmp_path / "big.dcm"), write_file(small, tmp_path / "small.dcm")]
    result = run_tool(["storescu", "-d", "-nh", "-aec", HUB_AE, HOST, str(hub.port), *files])
    statuses = dimse_statuses(output_of(result))
    assert statuses == [0xA700, 0x0000], output_of(result)[-2000:]
    assert "No space left on device" in hub.log()
    assert hub.count("instances") == 1
    assert hub.instance(str(big.SOPInstanceUID)) is None
    leftovers = [p for p in (storage / ".staging").rglob("*") if p.is_file()]
    assert leftovers == []
    assert len(list(FilesystemBlobStore(storage).all_keys())) == 1
