"""The forwarder against real receivers: DCMTK's storescp (bit-preserving, so the received data
set bytes can be compared with the stored ones) and a pynetdicom SCP that refuses objects.

Every receiver listens on 127.0.0.1 on a free port and is stopped by its PID; every wait is
bounded.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

from dicomhub.config import ForwardRule, PeerConfig, Settings
from dicomhub.dicom.forwarder import Forwarder
from dicomhub.index.forward_queue import QueueState
from dicomhub.ingest import IngestRequest
from dicomhub.leases import owner_id
from dicomhub.runtime import Runtime, open_runtime
from tests.factories import make_dataset, write_file
from tests.interop.support import (
    DCMTK,
    read_part10,
    split_part10,
    stop_process,
    tool_env,
    wait_until,
)
from tests.ports import free_port

DEST_AE = "DEST"
WAIT = 60.0
needs_storescp = pytest.mark.skipif("storescp" not in DCMTK, reason="DCMTK storescp not found")


class StoreSCP:
    """DCMTK's storescp writing what it receives, bit for bit, to a folder."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        log = (self.folder.parent / f"storescp-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                DCMTK["storescp"],
                *("-aet", DEST_AE, "+B", "+xa", "+uf", "-dhl"),
                *("-od", str(self.folder), str(self.port)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=tool_env(),
        )
        log.close()

        def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, "storescp exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        assert wait_until(listening, 30, 0.05), "storescp does not listen"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def received(self) -> dict[str, list[bytes]]:
        """Data set bytes received, by SOP Instance UID (a list: duplicates are kept)."""
        found: dict[str, list[bytes]] = {}
        for path in sorted(self.folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                part = read_part10(path)
                found.setdefault(part.sop_instance_uid, []).append(part.dataset)
        return found


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[[], StoreSCP]]:
    made: list[StoreSCP] = []

    def make() -> StoreSCP:
        receiver = StoreSCP(tmp_path / f"received-{len(made)}", free_port())
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def hubs(settings: Settings) -> Iterator[Callable[..., Runtime]]:
    """Runtimes on the test index, with fast forwarding settings; closed at the end."""
    opened: list[Runtime] = []

    def make(**update: Any) -> Runtime:
        values = {
            "forward_poll_interval": 0.1,
            "forward_retry_initial": 0.2,
            "forward_retry_max": 0.5,
            **update,
        }
        runtime = open_runtime(settings.model_copy(update=values))
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        runtime.close()


@pytest.fixture
def forwarders() -> Iterator[Callable[[Runtime], Forwarder]]:
    started: list[Forwarder] = []

    def start(runtime: Runtime) -> Forwarder:
        forwarder = Forwarder(runtime)
        forwarder.start()
        started.append(forwarder)
        return forwarder

    yield start
    for forwarder in started:
        forwarder.stop(timeout=30)


def _peer(port: int, ae_title: str = DEST_AE) -> PeerConfig:
    return PeerConfig(ae_title=ae_title, host="127.0.0.1", port=port)


def _rule(*destinations: str, **criteria: Any) -> list[ForwardRule]:
    return [
        ForwardRule(
            name="to-" + "-".join(destinations), destinations=list(destinations), **criteria
        )
    ]


def _store(runtime: Runtime, path: Path) -> str:
    result = runtime.ingest.store(IngestRequest(path=path, take=False, source="test"))
    return result.sop_instance_uid


def _store_some(runtime: Runtime, folder: Path, count: int) -> list[str]:
    uids = []
    for index in range(count):
        syntax = ImplicitVRLittleEndian if index % 2 else ExplicitVRLittleEndian
        ds = make_dataset(modality="MR" if index % 3 else "CT")
        if index % 3:
            ds.SOPClassUID = MRImageStorage
        uids.append(_store(runtime, write_file(ds, folder / f"{index}.dcm", str(syntax))))
    return uids


def _stored_dataset(runtime: Runtime, uid: str) -> bytes:
    stored = runtime.repository.get_instance(uid)
    assert stored is not None
    with runtime.blobs.open(stored.blob_key) as stream:
        return split_part10(stream.read()).dataset


def _all_done(runtime: Runtime, count: int) -> Callable[[], bool]:
    def check() -> bool:
        counts = runtime.forward_queue.counts()
        return counts[QueueState.DONE] == count and counts[QueueState.PENDING] == 0

    return check


@needs_storescp
def test_forwarder_delivers_unchanged(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    receivers: Callable[[], StoreSCP],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = receivers()
    receiver.start()
    runtime = hubs(peers={"dest": _peer(receiver.port)}, forward=_rule("dest"))
    uids = _store_some(runtime, tmp_path / "in", 5)
    jpeg = pydicom.data.get_testdata_file("JPEG2000.dcm")
    assert jpeg is not None
    uids.append(_store(runtime, Path(str(jpeg))))
    caplog.set_level(logging.INFO, logger="dicomhub.forward")
    forwarders(runtime)
    assert wait_until(_all_done(runtime, len(uids)), WAIT, 0.05), runtime.forward_queue.list()
    received = receiver.received()
    assert sorted(received) == sorted(uids)
    for uid in uids:
        assert received[uid] == [_stored_dataset(runtime, uid)], uid
    items = runtime.forward_queue.list()
    assert all(i.attempts == 0 and i.leased_by is None and i.done_at for i in items)
    assert any("forwarded to dest: 6 sent, 0 to retry, 0 failed" in m for m in caplog.messages)
    # Instances stored while the forwarder runs go out too (woken, or at its next look).
    more = _store_some(runtime, tmp_path / "more", 2)
    assert wait_until(_all_done(runtime, len(uids) + 2), WAIT, 0.05)
    assert set(more) <= set(receiver.received())


@needs_storescp
def test_destination_down_then_up(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    receivers: Callable[[], StoreSCP],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = receivers()  # not started yet: nothing listens on its port
    runtime = hubs(
        peers={"dest": _peer(receiver.port)}, forward=_rule("dest"), forward_max_attempts=1000
    )
    uids = _store_some(runtime, tmp_path / "in", 4)
    caplog.set_level(logging.INFO, logger="dicomhub.forward")
    forwarders(runtime)

    def retried_twice() -> bool:
        items = runtime.forward_queue.list()
        return all(i.state is QueueState.PENDING and i.attempts >= 2 for i in items)

    assert wait_until(retried_twice, WAIT, 0.05), runtime.forward_queue.list()
    items = runtime.forward_queue.list()
    assert all(i.last_error and i.next_attempt_at >= i.created_at for i in items)
    assert any(
        "forwarding to dest: 4 instances to send again" in m and "or later" in m
        for m in caplog.messages
    )
    receiver.start()
    assert wait_until(_all_done(runtime, 4), WAIT, 0.05), runtime.forward_queue.list()
    received = receiver.received()
    assert sorted(received) == sorted(uids)
    for uid in uids:
        assert received[uid] == [_stored_dataset(runtime, uid)]


class RefusingSCP:
    """A pynetdicom storage SCP answering every C-STORE with one status, or aborting the
    association when it receives the ``poison`` instance."""

    def __init__(self, status: int, poison: str = "") -> None:
        self.status = status
        self.poison = poison
        self.received: list[str] = []
        ae = AE(ae_title="REFUSER")
        for sop_class in (CTImageStorage, MRImageStorage):
            ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store)]
        server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        assert server is not None
        self.server = server
        self.port = int(server.server_address[1])

    def _on_store(self, event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        self.received.append(uid)
        if uid == self.poison:
            event.assoc.abort()
        return self.status

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def refusing() -> Iterator[RefusingSCP]:
    scp = RefusingSCP(0xA700)
    yield scp
    scp.stop()


def test_refused_instances_are_retried_then_failed(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    refusing: RefusingSCP,
    tmp_path: Path,
) -> None:
    runtime = hubs(
        peers={"refuser": _peer(refusing.port, "REFUSER")},
        forward=_rule("refuser"),
        forward_max_attempts=3,
    )
    (uid,) = _store_some(runtime, tmp_path / "in", 1)
    forwarders(runtime)

    def failed() -> bool:
        return runtime.forward_queue.counts()[QueueState.FAILED] == 1

    assert wait_until(failed, WAIT, 0.05), runtime.forward_queue.list()
    (item,) = runtime.forward_queue.list()
    assert item.attempts == 3
    assert item.last_error.startswith("gave up after 3 attempts: C-STORE status 0xA700")
    assert refusing.received == [uid] * 3


def test_unknown_peer_fails_at_once(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = hubs(forward=_rule("nowhere"))
    _store_some(runtime, tmp_path / "in", 2)
    caplog.set_level(logging.WARNING, logger="dicomhub.forward")
    forwarders(runtime)

    def failed() -> bool:
        return runtime.forward_queue.counts()[QueueState.FAILED] == 2

    assert wait_until(failed, WAIT, 0.05)
    assert {i.last_error for i in runtime.forward_queue.list()} == {"unknown peer nowhere"}
    assert any("'nowhere' is not a known peer" in m for m in caplog.messages)


@needs_storescp
def test_run_time_peer_and_deleted_instance(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    receivers: Callable[[], StoreSCP],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = receivers()
    receiver.start()
    runtime = hubs(forward=_rule("later"))
    runtime.peers.put("later", _peer(receiver.port))  # a peer declared at run time (database)
    kept, deleted = _store_some(runtime, tmp_path / "in", 2)
    blob = runtime.repository.remove_instance(deleted, "test")
    assert blob is not None
    runtime.blobs.delete(blob)
    caplog.set_level(logging.INFO, logger="dicomhub.forward")
    forwarders(runtime)
    assert wait_until(_all_done(runtime, 2), WAIT, 0.05)
    assert list(receiver.received()) == [kept]
    notes = {i.sop_instance_uid: i.last_error for i in runtime.forward_queue.list()}
    assert notes == {kept: "", deleted: "deleted before it was sent"}
    assert any("deleted since it was queued" in m for m in caplog.messages)


@needs_storescp
def test_items_of_a_dead_sender_are_sent_after_its_lease(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    receivers: Callable[[], StoreSCP],
    tmp_path: Path,
) -> None:
    receiver = receivers()
    receiver.start()
    runtime = hubs(peers={"dest": _peer(receiver.port)}, forward=_rule("dest"))
    uids = _store_some(runtime, tmp_path / "in", 3)
    # Another host's process took them, then died: they wait for its lease to expire.
    assert runtime.forward_queue.claim("elsewhere:4242:dead", 100, lease=2.0)
    forwarders(runtime)
    assert wait_until(_all_done(runtime, 3), WAIT, 0.05)
    assert sorted(receiver.received()) == sorted(uids)


def test_leases_of_dead_local_processes_are_released_at_start(
    hubs: Callable[..., Runtime], tmp_path: Path
) -> None:
    runtime = hubs(peers={"dest": _peer(free_port())}, forward=_rule("dest"))
    _store_some(runtime, tmp_path / "in", 3)
    gone = subprocess.Popen(["true"])
    gone.wait(10)
    host = socket.gethostname()
    dead, alive = f"{host}:{gone.pid}:cafe", f"{host}:{os.getppid()}:beef"
    queue = runtime.forward_queue
    assert queue.claim(dead, 1, lease=300)
    assert queue.claim(alive, 1, lease=300)
    assert queue.claim("elsewhere:1:0", 1, lease=300)  # another host: left to its lease
    assert queue.lease_holders() == sorted([dead, alive, "elsewhere:1:0"])
    forwarder = Forwarder(runtime, owner=owner_id())
    assert forwarder.release_orphans() == 1
    assert queue.lease_holders() == sorted([alive, "elsewhere:1:0"])


@needs_storescp
def test_two_processes_share_the_queue(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    receivers: Callable[[], StoreSCP],
    tmp_path: Path,
) -> None:
    """Two runtimes on one database (as two dicomhub processes) deliver every instance."""
    receiver = receivers()
    receiver.start()
    update = {"peers": {"dest": _peer(receiver.port)}, "forward": _rule("dest")}
    first = hubs(forward_batch_size=3, **update)
    second = hubs(forward_batch_size=3, **update)
    uids = _store_some(first, tmp_path / "a", 8) + _store_some(second, tmp_path / "b", 8)
    forwarders(first)
    forwarders(second)
    assert wait_until(_all_done(first, 16), WAIT, 0.05), first.forward_queue.list()
    received = receiver.received()
    assert sorted(received) == sorted(uids)
    for uid in uids:
        assert set(received[uid]) == {_stored_dataset(first, uid)}


def test_an_aborting_object_does_not_wear_out_the_others(
    hubs: Callable[..., Runtime],
    forwarders: Callable[[Runtime], Forwarder],
    tmp_path: Path,
) -> None:
    """The peer aborts the association on one object: only that one counts attempts."""
    poison = make_dataset()
    scp = RefusingSCP(0x0000, poison=str(poison.SOPInstanceUID))
    try:
        runtime = hubs(
            peers={"peer": _peer(scp.port, "REFUSER")},
            forward=_rule("peer"),
            forward_max_attempts=3,
        )
        first = _store(runtime, write_file(poison, tmp_path / "poison.dcm"))
        others = _store_some(runtime, tmp_path / "in", 4)
        forwarders(runtime)

        def settled() -> bool:
            counts = runtime.forward_queue.counts()
            return counts[QueueState.FAILED] == 1 and counts[QueueState.DONE] == 4

        assert wait_until(settled, WAIT, 0.05), runtime.forward_queue.list()
        items = {i.sop_instance_uid: i for i in runtime.forward_queue.list()}
        assert items[first].attempts == 3
        assert items[first].last_error.startswith("gave up after 3 attempts")
        assert all(items[uid].state is QueueState.DONE for uid in others)
        assert scp.received.count(first) == 3
        assert set(others) <= set(scp.received)
    finally:
        scp.stop()
