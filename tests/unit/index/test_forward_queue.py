"""The forwarding queue on real databases (SQLite file and PostgreSQL): filled by the ingest
path in the indexing transaction, shared by senders through leases, retried with back-off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from dicomhub.config import ForwardRule, Settings
from dicomhub.errors import DuplicateSOPInstance
from dicomhub.header import read_header
from dicomhub.index.engine import IndexDatabase
from dicomhub.index.forward_queue import ForwardQueue, QueueItem, QueueState, RetryPolicy
from dicomhub.index.repository import AddOutcome, NewInstance
from dicomhub.ingest import IngestRequest, StoreStatus
from dicomhub.recovery import recover
from dicomhub.runtime import Runtime, open_runtime
from dicomhub.storage.base import InMemoryObject
from tests.factories import make_dataset, write_file

RULES = [
    ForwardRule(name="ct", destinations=["pacs"], modality=["CT"]),
    ForwardRule(name="all", destinations=["backup"]),
]


class Clock:
    """A clock the tests move forward."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def forwarding(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    """A runtime with forwarding rules, its queue on the test clock."""
    runtime = open_runtime(settings.model_copy(update={"forward": RULES}))
    runtime.forward_queue.clock = clock
    runtime.forward_queue.policy = RetryPolicy(max_attempts=4, initial=5.0, maximum=12.0)
    yield runtime
    runtime.close()


def _store(runtime: Runtime, tmp_path: Path, **dataset: Any) -> str:
    ds = make_dataset(**dataset)
    path = write_file(ds, tmp_path / f"{ds.SOPInstanceUID}.dcm")
    result = runtime.ingest.store(
        IngestRequest(path=path, take=False, source="test", calling_ae_title="CT1")
    )
    assert result.status in {StoreStatus.STORED, StoreStatus.REPLACED}
    return str(ds.SOPInstanceUID)


def _store_in_memory(runtime: Runtime, tmp_path: Path, **dataset: Any) -> str:
    ds = make_dataset(**dataset)
    data = write_file(ds, tmp_path / "memory.dcm").read_bytes()
    request = IngestRequest(
        path=None, take=True, source="C-STORE", content=bytearray(data), called_ae_title="HUB"
    )
    assert runtime.ingest.store(request).status is StoreStatus.STORED
    return str(ds.SOPInstanceUID)


def _targets(runtime: Runtime) -> set[tuple[str, str, str]]:
    return {
        (i.sop_instance_uid, i.rule, i.destination) for i in runtime.forward_queue.list(limit=1000)
    }


def _claimed(batch: dict[str, list[QueueItem]]) -> list[int]:
    return sorted(item.id for items in batch.values() for item in items)


# Filled by the ingest path ---------------------------------------------------------------


def test_store_queues_each_matching_destination(forwarding: Runtime, tmp_path: Path) -> None:
    ct = _store(forwarding, tmp_path, modality="CT")
    mr = _store_in_memory(forwarding, tmp_path, modality="MR")
    assert _targets(forwarding) == {
        (ct, "ct", "pacs"),
        (ct, "all", "backup"),
        (mr, "all", "backup"),
    }
    items = forwarding.forward_queue.list()
    assert {i.state for i in items} == {QueueState.PENDING}
    assert {i.attempts for i in items} == {0}
    assert all(i.leased_by is None and i.last_error == "" for i in items)
    assert forwarding.forward_queue.counts() == {
        QueueState.PENDING: 3,
        QueueState.DONE: 0,
        QueueState.FAILED: 0,
    }
    assert forwarding.forward_wake.is_set()


def test_duplicates_and_refusals_queue_nothing(forwarding: Runtime, tmp_path: Path) -> None:
    uid = generate_uid()
    ds = make_dataset(sop_uid=uid)
    path = write_file(ds, tmp_path / "a.dcm")
    request = IngestRequest(path=path, take=False, source="test")
    forwarding.ingest.store(request)
    assert len(_targets(forwarding)) == 2
    assert forwarding.ingest.store(request).status is StoreStatus.DUPLICATE
    other = write_file(make_dataset(sop_uid=uid, patient_id="OTHER"), tmp_path / "b.dcm")
    with pytest.raises(DuplicateSOPInstance):
        forwarding.ingest.store(IngestRequest(path=other, take=False, source="test"))
    assert len(forwarding.forward_queue.list()) == 2


def test_replaced_instance_is_queued_again(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    runtime = open_runtime(
        settings.model_copy(update={"forward": RULES, "duplicate_policy": "replace"})
    )
    try:
        uid = generate_uid()
        _store(runtime, tmp_path, sop_uid=uid, modality="MR")
        _store(runtime, tmp_path, sop_uid=uid, modality="MR", patient_id="CHANGED")
        assert [i.sop_instance_uid for i in runtime.forward_queue.list()] == [uid, uid]
    finally:
        runtime.close()


def test_called_ae_title_reaches_the_rules(settings: Settings, tmp_path: Path) -> None:
    rules = [ForwardRule(name="routed", destinations=["pacs"], called_ae_title=["HUB"])]
    runtime = open_runtime(settings.model_copy(update={"forward": rules}))
    try:
        routed = _store_in_memory(runtime, tmp_path)  # called_ae_title="HUB"
        _store(runtime, tmp_path)  # no called AE title
        assert _targets(runtime) == {(routed, "routed", "pacs")}
    finally:
        runtime.close()


def test_without_rules_there_is_no_hook(runtime: Runtime, tmp_path: Path) -> None:
    assert runtime.repository.after_add is None
    _store(runtime, tmp_path)
    assert runtime.forward_queue.list() == []
    assert not runtime.forward_wake.is_set()


def test_queue_rows_share_the_fate_of_the_index_rows(forwarding: Runtime, tmp_path: Path) -> None:
    """In a batch, a refused object's savepoint takes its queue rows with it."""
    uid = _store(forwarding, tmp_path, modality="MR")

    def item(sop_uid: str, patient: str) -> NewInstance:
        path = write_file(make_dataset(sop_uid=sop_uid, patient_id=patient), tmp_path / "x.dcm")
        parsed = read_header(path)
        data = path.read_bytes()
        memory = InMemoryObject.hashed(data, parsed.dataset_offset)
        blob = memory.info(generate_uid())
        return NewInstance(parsed, blob, "t")

    fresh = generate_uid()
    results = forwarding.repository.add_instances([item(fresh, "A"), item(uid, "CONFLICT")])
    assert isinstance(results[1], DuplicateSOPInstance)
    assert not isinstance(results[0], Exception) and results[0].outcome is AddOutcome.STORED
    # The MR one to backup, the new CT one to pacs and backup, nothing for the refused one.
    assert sorted(i.sop_instance_uid for i in forwarding.forward_queue.list()) == sorted(
        [uid, fresh, fresh]
    )


def test_recovered_instances_are_queued(settings: Settings, tmp_path: Path) -> None:
    """An object whose index commit a crash took away is queued when recovery indexes it."""
    update = {"forward": RULES}
    runtime = open_runtime(settings.model_copy(update=update))
    data = write_file(make_dataset(modality="CT"), tmp_path / "lost.dcm").read_bytes()
    runtime.blobs.put_objects([InMemoryObject.hashed(data, 0)])  # durable, never indexed
    assert runtime.forward_queue.list() == []
    runtime.close()
    runtime = open_runtime(settings.model_copy(update=update))
    try:
        assert recover(runtime.db, runtime.repository, runtime.blobs.segments).indexed == 1
        assert {i.destination for i in runtime.forward_queue.list()} == {"pacs", "backup"}
    finally:
        runtime.close()


# Leases ----------------------------------------------------------------------------------


def test_claims_are_exclusive_until_the_lease_expires(
    forwarding: Runtime, clock: Clock, tmp_path: Path
) -> None:
    queue = forwarding.forward_queue
    for _ in range(5):
        _store(forwarding, tmp_path, modality="CT")  # 2 rows each
    first = queue.claim("host:1:a", 4, lease=60)
    second = queue.claim("host:2:b", 100, lease=60)
    assert len(_claimed(first)) == 4 and len(_claimed(second)) == 6
    assert not set(_claimed(first)) & set(_claimed(second))
    assert queue.claim("host:3:c", 100, lease=60) == {}
    for destination, items in second.items():
        assert {i.destination for i in items} == {destination}
        assert all(i.leased_by == "host:2:b" for i in items)
    assert queue.lease_holders() == ["host:1:a", "host:2:b"]

    clock.advance(59)
    assert queue.claim("host:3:c", 100, lease=60) == {}
    clock.advance(2)  # both leases expired: a dead sender's rows go to another
    third = queue.claim("host:3:c", 100, lease=60)
    assert _claimed(third) == sorted(_claimed(first) + _claimed(second))
    # The first sender's late outcomes do not disturb the new holder's lease.
    assert queue.retry_later(_claimed(first), "late", owner="host:1:a").retried == 0
    assert queue.renew(_claimed(first), "host:1:a", 60) == 0
    assert queue.renew(_claimed(first), "host:3:c", 60) == 4


def test_claim_skips_excluded_destinations(forwarding: Runtime, tmp_path: Path) -> None:
    _store(forwarding, tmp_path, modality="CT")
    batch = forwarding.forward_queue.claim("me", 10, lease=60, exclude=["pacs"])
    assert list(batch) == ["backup"]


def test_release_gives_rows_back_at_once(forwarding: Runtime, tmp_path: Path) -> None:
    queue = forwarding.forward_queue
    _store(forwarding, tmp_path, modality="CT")
    claimed = _claimed(queue.claim("dead:1:x", 10, lease=300))
    assert queue.claim("other", 10, lease=300) == {}
    assert queue.release("dead:1:x", claimed[:1]) == 1
    assert _claimed(queue.claim("other", 10, lease=300)) == claimed[:1]
    assert queue.release("dead:1:x") == 1
    assert _claimed(queue.claim("other", 10, lease=300)) == claimed[1:]
    assert queue.lease_holders() == ["other"]


def test_concurrent_claims_never_share_a_row(
    settings: Settings, forwarding: Runtime, tmp_path: Path
) -> None:
    """Senders on separate engines (as separate processes) claiming at the same time."""
    for _ in range(20):
        _store(forwarding, tmp_path, modality="CT")  # 40 rows
    databases = [IndexDatabase(settings.effective_database_url) for _ in range(4)]
    queues = [ForwardQueue(db) for db in databases]
    claimed: list[list[int]] = [[] for _ in queues]
    start = threading.Barrier(len(queues))

    def sender(index: int) -> None:
        start.wait()
        while batch := queues[index].claim(f"sender-{index}", 3, lease=300):
            claimed[index].extend(_claimed(batch))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(len(queues))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for db in databases:
            db.dispose()
    everything = [row for rows in claimed for row in rows]
    assert len(everything) == 40
    assert len(set(everything)) == 40


# Outcomes, back-off and dead letters -----------------------------------------------------


def test_back_off_then_dead_letter(forwarding: Runtime, clock: Clock, tmp_path: Path) -> None:
    queue = forwarding.forward_queue  # max_attempts=4, initial=5 s, maximum=12 s
    _store(forwarding, tmp_path, modality="MR")
    (item_id,) = _claimed(queue.claim("me", 10, lease=300))
    waits = []
    for attempt in (1, 2, 3):
        outcome = queue.retry_later([item_id], "C-STORE status 0xA700", owner="me")
        assert (outcome.retried, outcome.failed) == (1, 0)
        assert outcome.next_delay is not None
        waits.append(outcome.next_delay)
        (item,) = queue.list()
        assert item.attempts == attempt and item.state is QueueState.PENDING
        assert item.last_error == "C-STORE status 0xA700" and item.leased_by is None
        assert item.next_attempt_at == clock.now + timedelta(seconds=outcome.next_delay)
        clock.advance(outcome.next_delay - 1)
        assert queue.claim("me", 10, lease=300) == {}  # not yet due
        clock.advance(1)
        assert _claimed(queue.claim("me", 10, lease=300)) == [item_id]
    assert waits == [5.0, 10.0, 12.0]  # doubled, capped
    outcome = queue.retry_later([item_id], "C-STORE status 0xA700", owner="me")
    assert (outcome.retried, outcome.failed, outcome.next_delay) == (0, 1, None)
    (item,) = queue.list()
    assert item.state is QueueState.FAILED and item.attempts == 4
    assert item.last_error == "gave up after 4 attempts: C-STORE status 0xA700"
    clock.advance(3600)
    assert queue.claim("me", 10, lease=300) == {}


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(max_attempts=10, initial=5.0, maximum=600.0)
    assert [policy.delay(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert policy.delay(10_000) == 600.0


def test_done_fail_retry_drop_and_counts(forwarding: Runtime, clock: Clock, tmp_path: Path) -> None:
    queue = forwarding.forward_queue
    for _ in range(3):
        _store(forwarding, tmp_path, modality="CT")  # 6 rows
    ids = _claimed(queue.claim("me", 10, lease=300))
    assert queue.done(ids[:2]) == 2
    assert queue.fail(ids[2:4], "unknown peer pacs") == 2
    assert queue.done(ids[2:4]) == 0  # only pending rows are settled
    assert queue.counts() == {QueueState.PENDING: 2, QueueState.DONE: 2, QueueState.FAILED: 2}
    done = queue.list(QueueState.DONE)
    assert sorted(i.id for i in done) == ids[:2]
    assert all(i.done_at is not None and i.leased_by is None for i in done)
    assert [i.last_error for i in queue.list(QueueState.FAILED)] == ["unknown peer pacs"] * 2
    assert len(queue.list(limit=3)) == 3
    assert queue.list()[0].id == max(ids)  # newest first

    assert queue.retry(all_failed=True) == 2
    assert queue.retry([ids[0]]) == 1  # a delivered one, sent again on request
    assert queue.retry() == 0
    assert queue.counts() == {QueueState.PENDING: 5, QueueState.DONE: 1, QueueState.FAILED: 0}
    again = {i.id: i for i in queue.list(QueueState.PENDING)}
    assert again[ids[0]].done_at is None and again[ids[2]].attempts == 0
    assert again[ids[2]].next_attempt_at == clock.now

    assert queue.drop(state=QueueState.DONE) == 1
    assert queue.drop([ids[4], ids[5], 999_999]) == 2
    assert queue.drop() == 0
    assert queue.counts() == {QueueState.PENDING: 3, QueueState.DONE: 0, QueueState.FAILED: 0}


def test_purge_of_old_delivered_rows(forwarding: Runtime, clock: Clock, tmp_path: Path) -> None:
    queue = forwarding.forward_queue
    _store(forwarding, tmp_path, modality="CT")
    ids = _claimed(queue.claim("me", 10, lease=300))
    queue.done(ids[:1])
    clock.advance(100)
    assert queue.purge_done(older_than=200) == 0
    clock.advance(101)
    assert queue.purge_done(older_than=200) == 1
    assert [i.id for i in queue.list()] == ids[1:]
