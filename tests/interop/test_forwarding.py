"""Forwarding with real processes: a DCMTK storescp destination that is down, then up, and a
``dicomhub serve`` killed with SIGKILL in the middle of its queue.

Semantics under test (README "Forwarding"): at-least-once — every instance dicomhub stored
reaches the destination once it is reachable, whatever happened to dicomhub meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.support import (
    HOST,
    UID_ROOT,
    Hub,
    dicomhub_command,
    needs_dcmtk,
    read_part10,
    running_hub,
    sha256,
    tool_env,
    wait_until,
    write_part10,
)
from tests.interop.test_retrieve import StoreSCP, bulk_dataset
from tests.ports import free_port

pytestmark = [pytest.mark.interop, needs_dcmtk]

COUNT = 300


def forwarding_toml(port: int) -> str:
    """A rule forwarding every CT to DEST, with quick retries and a short lease."""
    return (
        "forward_retry_initial = 0.5\n"
        "forward_retry_max = 1.0\n"
        "forward_poll_interval = 0.2\n"
        "forward_lease = 3.0\n"
        "forward_batch_size = 50\n"
        f'[peers.dest]\nae_title = "DEST"\nhost = "{HOST}"\nport = {port}\n\n'
        '[[forward]]\nname = "all-ct"\ndestinations = ["dest"]\nmodality = ["CT"]\n'
    )


def import_study(workdir: Path, config: str, label: str) -> list[str]:
    """``COUNT`` instances imported (and so queued) before the hub serves."""
    folder = workdir / f"in-{label}"
    folder.mkdir(parents=True)
    uids = [f"{UID_ROOT}.88.{label}.{n}" for n in range(1, COUNT + 1)]
    for number, uid in enumerate(uids, start=1):
        write_part10(folder / f"{number}.dcm", bulk_dataset(uid, number))
    config_path = workdir / "import.toml"
    config_path.write_text(config)
    environment = {k: v for k, v in tool_env().items() if not k.startswith("DICOMHUB_")}
    environment.update(
        {"DICOMHUB_DATA_DIR": str(workdir / "data"), "DICOMHUB_CONFIG": str(config_path)}
    )
    result = subprocess.run(
        [*dicomhub_command(), "import", str(folder)],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return uids


def received(dest: StoreSCP) -> dict[str, bytes]:
    """SOP Instance UID -> data set bytes of every complete file the destination holds."""
    found = {}
    for path in dest.files():
        try:
            part = read_part10(path)
        except Exception:  # a file still being written
            continue
        found[part.sop_instance_uid] = part.dataset
    return found


def queue_states(hub: Hub) -> dict[str, int]:
    rows = hub.rows("SELECT state, COUNT(*) AS n FROM forward_queue GROUP BY state")
    return {row["state"]: int(row["n"]) for row in rows}


@pytest.fixture
def destination_port() -> int:
    return free_port()


@pytest.fixture
def late_destination(tmp_path: Path, destination_port: int) -> Iterator[list[StoreSCP]]:
    """Holds the destination once a test starts it; stopped at the end."""
    started: list[StoreSCP] = []
    yield started
    for dest in started:
        dest.stop()


def assert_all_arrived(hub: Hub, dest: StoreSCP, uids: list[str]) -> None:
    def complete() -> bool:
        return set(received(dest)) >= set(uids)

    assert wait_until(complete, 120, 0.5), (
        f"{len(set(received(dest)) & set(uids))} of {len(uids)} arrived; queue {queue_states(hub)}"
    )
    for uid, data in received(dest).items():
        stored = hub.instance(uid)
        assert stored is not None
        assert sha256(data) == stored.content_sha256, f"{uid} arrived changed"


def test_destination_down_then_up(
    tmp_path: Path, destination_port: int, late_destination: list[StoreSCP]
) -> None:
    config = forwarding_toml(destination_port)
    uids = import_study(tmp_path, config, "1")
    with running_hub(tmp_path, config=config) as hub:
        assert wait_until(
            lambda: any(
                row["attempts"] >= 2 for row in hub.rows("SELECT attempts FROM forward_queue")
            ),
            30,
            0.2,
        ), f"no retry was scheduled: {queue_states(hub)}\n{hub.log()[-2000:]}"
        assert queue_states(hub).get("pending") == COUNT
        assert "DEST" in hub.log() and "cannot connect" in hub.log()
        dest = StoreSCP(tmp_path, "DEST", port=destination_port)
        late_destination.append(dest)
        dest.wait_ready()
        assert_all_arrived(hub, dest, uids)
        assert wait_until(lambda: queue_states(hub) == {"done": COUNT}, 30, 0.2), queue_states(hub)


def test_sigkill_in_the_middle_of_the_queue_loses_nothing(
    tmp_path: Path, destination_port: int, late_destination: list[StoreSCP]
) -> None:
    config = forwarding_toml(destination_port)
    uids = import_study(tmp_path, config, "2")
    dest = StoreSCP(tmp_path, "DEST", port=destination_port)
    late_destination.append(dest)
    dest.wait_ready()
    with running_hub(tmp_path, config=config) as hub:
        assert wait_until(lambda: len(dest.files()) >= 40, 60, 0.05), hub.log()[-2000:]
        os.kill(hub.process.pid, signal.SIGKILL)
        hub.process.wait(timeout=30)
    arrived_before = len(received(dest))
    assert arrived_before < COUNT, "the queue was empty before the kill; nothing was tested"
    with running_hub(tmp_path, config=config) as hub:
        assert_all_arrived(hub, dest, uids)
        assert wait_until(lambda: queue_states(hub) == {"done": COUNT}, 60, 0.2), queue_states(hub)
