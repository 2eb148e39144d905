"""Group commit: concurrent callers share batches, results go to the right caller, and a
failed batch fails every item in it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from dicomhub.group_commit import GroupCommitter


def test_lone_caller_runs_at_once_on_its_own_thread() -> None:
    threads: list[str] = []

    def process(batch: Sequence[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [item * 2 for item in batch]

    committer: GroupCommitter[int, int] = GroupCommitter(process)
    assert committer.run(21) == 42
    assert threads == [threading.current_thread().name]


def test_concurrent_callers_are_batched_and_get_their_own_results() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def process(batch: Sequence[int]) -> list[int]:
        batches.append(list(batch))
        if len(batches) == 1:
            release.wait(10)  # the first batch is slow: the others queue meanwhile
        return [item + 1000 for item in batch]

    committer: GroupCommitter[int, int] = GroupCommitter(process)
    results: dict[int, int] = {}

    def call(item: int) -> None:
        results[item] = committer.run(item)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not batches:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 9)]
    for thread in others:
        thread.start()
    threading.Event().wait(0.2)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == {i: i + 1000 for i in range(9)}
    assert batches[0] == [0]
    assert sorted(i for batch in batches[1:] for i in batch) == list(range(1, 9))
    assert len(batches) < 9  # the eight waiting callers did not each get a batch


def test_failed_batch_fails_each_item() -> None:
    def process(batch: Sequence[int]) -> list[int]:
        raise OSError("disk gone")

    committer: GroupCommitter[int, int] = GroupCommitter(process)
    with pytest.raises(OSError, match="disk gone"):
        committer.run(1)
    committer2: GroupCommitter[int, int] = GroupCommitter(lambda batch: [])
    with pytest.raises(RuntimeError, match="0 results for a batch of 1"):
        committer2.run(1)


def test_submitted_items_are_committed_by_the_committers_thread_and_batched() -> None:
    release = threading.Event()
    batches: list[tuple[str, list[int]]] = []

    def process(batch: Sequence[int]) -> list[int]:
        batches.append((threading.current_thread().name, list(batch)))
        if len(batches) == 1:
            release.wait(10)
        return [item * 3 for item in batch]

    committer: GroupCommitter[int, int] = GroupCommitter(process)
    outcomes: dict[int, int] = {}
    all_done = threading.Event()

    def done_for(item: int) -> Callable[[int | Exception], None]:
        def done(outcome: int | Exception) -> None:
            assert isinstance(outcome, int)
            outcomes[item] = outcome
            if len(outcomes) == 6:
                all_done.set()

        return done

    committer.submit(0, done_for(0))
    while not batches:
        threading.Event().wait(0.001)
    for item in range(1, 6):  # queued while the first batch runs
        committer.submit(item, done_for(item))
    release.set()
    assert all_done.wait(10)
    assert outcomes == {i: 3 * i for i in range(6)}
    assert {name for name, _ in batches} == {"dicomhub-commit"}
    assert batches[0][1] == [0] and batches[1][1] == [1, 2, 3, 4, 5]


def test_waiting_and_submitting_callers_share_batches() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def process(batch: Sequence[int]) -> list[int]:
        batches.append(list(batch))
        if len(batches) == 1:
            release.wait(10)
        return list(batch)

    committer: GroupCommitter[int, int] = GroupCommitter(process)
    first = threading.Thread(target=committer.run, args=(0,))
    first.start()
    while not batches:
        threading.Event().wait(0.001)
    submitted: list[int | Exception] = []
    committer.submit(1, submitted.append)
    waiter = threading.Thread(target=committer.run, args=(2,))
    waiter.start()
    threading.Event().wait(0.1)
    release.set()
    first.join(10)
    waiter.join(10)
    deadline = threading.Event()
    while not submitted and not deadline.wait(0.01):
        pass
    assert submitted == [1]
    assert sorted(batches[1]) == [1, 2]


def test_a_failed_batch_reaches_the_submitters() -> None:
    def process(batch: Sequence[int]) -> list[int]:
        raise OSError("disk gone")

    committer: GroupCommitter[int, int] = GroupCommitter(process)
    failures: list[int | Exception] = []
    finished = threading.Event()

    def done(outcome: int | Exception) -> None:
        failures.append(outcome)
        finished.set()

    committer.submit(1, done)
    assert finished.wait(10)
    assert isinstance(failures[0], OSError)


def test_a_failing_callback_does_not_hold_back_the_others() -> None:
    seen: list[int | Exception] = []
    both = threading.Event()
    release = threading.Event()

    def broken(_outcome: int | Exception) -> None:
        raise ValueError("a caller's bug")

    def fine(outcome: int | Exception) -> None:
        seen.append(outcome)
        both.set()

    def slow(batch: Sequence[int]) -> list[int]:
        release.wait(10)
        return list(batch)

    committer: GroupCommitter[int, int] = GroupCommitter(slow)
    committer.submit(1, broken)
    committer.submit(2, fine)
    release.set()
    assert both.wait(10)
    assert seen == [2]
