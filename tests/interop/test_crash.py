"""Kill -9 the server while DCMTK storescu sends: every acknowledged instance survives.

The promise of ARCHITECTURE principle 2, checked the hard way: whatever the moment of the
kill, an instance whose C-STORE-RSP said Success is in the index after a restart, its blob is
there and its checksum holds; ``dicomhub verify`` finds nothing missing or corrupt.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.factories import make_dataset, write_file
from tests.interop.support import dicomhub_command, running_hub, split_part10, start_storescu

pytestmark = pytest.mark.interop


def _acknowledged(output: str) -> list[str]:
    """Files storescu (-v) saw a Success response for, in order."""
    done, current = [], None
    for line in output.splitlines():
        sending = re.search(r"Sending file: (\S+)", line)
        if sending:
            current = sending.group(1)
        elif "Received Store Response (Success)" in line and current:
            done.append(current)
            current = None
    return done


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_instances_survive_a_kill(tmp_path: Path, seed: int) -> None:
    files = [
        write_file(make_dataset(patient_id=f"K{seed}", rows=48), tmp_path / "in" / f"{n}.dcm")
        for n in range(400)
    ]
    workdir = tmp_path / "hub"
    with running_hub(workdir) as hub:
        sender = start_storescu(files, hub.port, verbose=True)
        time.sleep(random.Random(seed).uniform(0.3, 1.2))
        os.kill(hub.process.pid, signal.SIGKILL)
        output, _ = sender.communicate(timeout=120)
    acknowledged = _acknowledged(output.decode(errors="replace"))
    assert 0 < len(acknowledged) < len(files), "the kill should land in the middle of the send"

    with running_hub(workdir) as restarted:
        for name in acknowledged:
            uid = str(dcmread(name, stop_before_pixels=True).SOPInstanceUID)
            stored = restarted.instance(uid)
            assert stored is not None, f"acknowledged {name} is not in the index"
            data_set = split_part10(restarted.blob(stored.blob_key)).dataset
            assert hashlib.sha256(data_set).hexdigest() == stored.content_sha256
        assert restarted.staging_files() == []  # the dead process's leftovers are gone
    verify = subprocess.run(
        [*dicomhub_command(), "verify"],
        env={**os.environ, "DICOMHUB_DATA_DIR": str(workdir / "data"), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert re.search(r"0 missing, 0 corrupt", verify.stdout), verify.stdout + verify.stderr
