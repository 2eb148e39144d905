"""Two worker processes on one port (SO_REUSEPORT) sharing one SQLite index and storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import make_dataset, write_file
from tests.interop.support import HubFactory, start_storescu, wait_until

pytestmark = pytest.mark.interop


def test_four_senders_two_workers_nothing_lost(start_hub: HubFactory, tmp_path: Path) -> None:
    hub = start_hub({"DICOMHUB_WORKERS": "2"})
    assert wait_until(lambda: hub.log().count("DICOM listener") == 2, 60), hub.log()
    study = "1.2.826.0.1.3680043.10.42.1"
    batches = []
    for sender in range(4):
        files = [
            write_file(
                make_dataset(study_uid=study, patient_id="W1", rows=32),
                tmp_path / f"s{sender}" / f"{n}.dcm",
            )
            for n in range(25)
        ]
        batches.append(files)
    processes = [
        start_storescu(files, hub.port, calling=f"SENDER{n}") for n, files in enumerate(batches)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    assert hub.count("instances") == 100
    assert len(hub.blob_keys()) == 100
    assert hub.rows("SELECT number_of_study_related_instances FROM studies")[0][0] == 100
    assert "locked" not in hub.log()
    assert "aborted" not in hub.log() and "lost" not in hub.log()
