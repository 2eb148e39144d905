"""Two worker processes on one shared DICOM socket, with one SQLite index and storage."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.factories import make_dataset, write_file
from tests.interop.support import HubFactory, association, start_storescu, wait_until

VERIFICATION = ("1.2.840.10008.1.1", "1.2.840.10008.1.2.1")

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


def test_associations_are_spread_evenly_over_the_workers(start_hub: HubFactory) -> None:
    """Six associations held open at once: each worker serves three (a hash of the peers'
    ports, as SO_REUSEPORT does it, would often give one worker four or more)."""
    hub = start_hub({"DICOMHUB_WORKERS": "2"})
    assert wait_until(lambda: hub.log().count("DICOM listener") == 2, 60), hub.log()
    listeners = set(re.findall(r"\[(\d+)\] dicomhub\.dicom: DICOM listener", hub.log()))
    assert len(listeners) == 2, hub.log()
    with contextlib.ExitStack() as stack:
        for n in range(6):
            assoc = stack.enter_context(association(hub, [VERIFICATION], calling_ae=f"HOLD{n}"))
            assert assoc.send_c_echo().Status == 0x0000
        served = Counter(re.findall(r"\[(\d+)\] dicomhub\.dicom: association accepted", hub.log()))
    assert set(served) == listeners, hub.log()
    assert sorted(served.values()) == [3, 3], served


def test_the_first_associations_find_every_worker_ready(start_hub: HubFactory) -> None:
    """The moment the port first answers, every worker accepts: four associations opened
    then are served two by two (a worker still starting would leave them all to the first).
    A worker announces its listener only once all the others are ready, so the log shows
    both listeners before any association."""
    hub = start_hub({"DICOMHUB_WORKERS": "2"})
    with contextlib.ExitStack() as stack:
        for n in range(4):
            assoc = stack.enter_context(association(hub, [VERIFICATION], calling_ae=f"EARLY{n}"))
            assert assoc.send_c_echo().Status == 0x0000
        served = Counter(re.findall(r"\[(\d+)\] dicomhub\.dicom: association accepted", hub.log()))
    assert sorted(served.values()) == [2, 2], served
    log = hub.log()
    assert log.count("DICOM listener") == 2, log
    assert log.rindex("DICOM listener") < log.index("association accepted"), log
