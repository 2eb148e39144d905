"""Group commit: concurrent callers share batches, results go to the right caller, and a
failed batch fails every item in it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

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
