"""Group commit: the work of many concurrent callers done in one batch by one thread.

Making an object durable costs a flush of the disk whatever its size.  When several
associations store at once, everything that arrives while one batch is being flushed is
processed together in the next (one ``fdatasync``, one index transaction).  A lone caller is
served at once, so nothing waits for a batch to fill up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

LOG = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_BATCH = 64
"""Items per batch: bounds the latency a caller can see behind others' work."""


class GroupCommitter(Generic[Item, Result]):
    """Runs ``process(batch)`` for items submitted from any thread, a batch at a time.

    ``run`` is for a caller that waits: the first caller to find no batch running becomes
    the leader and processes every item queued at that moment, its own included; callers
    that arrive meanwhile queue theirs and wait, and the next leader takes them all.  A lone
    caller thus runs its item at once on its own thread, without a hand-over.

    ``submit`` is for a caller that must not wait (an event loop): the item is queued and a
    thread of the committer's own leads the batches of such items, taking whatever else is
    queued too; the caller is called back from that thread with the item's result, or with
    the exception that failed its batch.

    ``process`` returns one result per item, in order; an exception it raises fails every
    item of the batch.
    """

    def __init__(self, process: Callable[[Sequence[Item]], Sequence[Result]]) -> None:
        self._process = process
        self._pending: list[tuple[Item, Future[Result] | Callable[[Result | Exception], None]]] = []
        self._pending_lock = threading.Lock()
        self._leader = threading.Lock()
        self._submitted = threading.Condition(self._pending_lock)
        self._thread: threading.Thread | None = None

    def run(self, item: Item) -> Result:
        """Process ``item`` in the next batch and return its result (or raise its error)."""
        future: Future[Result] = Future()
        with self._pending_lock:
            self._pending.append((item, future))
        while not future.done():
            with self._leader:
                if future.done():
                    break
                self._run_batch(self._take())
        return future.result()

    def submit(self, item: Item, done: Callable[[Result | Exception], None]) -> None:
        """Queue ``item``; ``done`` is called, from another thread, with its result or with
        the exception that failed its batch."""
        with self._pending_lock:
            self._pending.append((item, done))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._lead, name="dicomhub-commit", daemon=True
                )
                self._thread.start()
            self._submitted.notify()

    def _take(self) -> list[tuple[Item, Future[Result] | Callable[[Result | Exception], None]]]:
        with self._pending_lock:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
        return batch

    def _lead(self) -> None:
        """The committer's own thread: leads batches while submitted items wait."""
        while True:
            with self._pending_lock:
                while not self._pending:
                    self._submitted.wait()
            with self._leader:
                batch = self._take()
                if batch:
                    self._run_batch(batch)

    def _run_batch(
        self, batch: list[tuple[Item, Future[Result] | Callable[[Result | Exception], None]]]
    ) -> None:
        if not batch:
            return
        try:
            results = self._process([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as exc:  # every waiter must be released, whatever happened
            LOG.debug("batch of %d failed: %s", len(batch), exc)
            failure = exc if isinstance(exc, Exception) else RuntimeError(f"batch stopped: {exc!r}")
            for _, waiter in batch:
                if isinstance(waiter, Future):
                    waiter.set_exception(exc)
                else:
                    _call(waiter, failure)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, waiter), result in zip(batch, results, strict=True):
            if isinstance(waiter, Future):
                waiter.set_result(result)
            else:
                _call(waiter, result)


def _call(done: Callable[[Result | Exception], None], outcome: Result | Exception) -> None:
    """Call a submitter back; its failure is logged, never the batch's."""
    try:
        done(outcome)
    except Exception:
        LOG.exception("a committed item's callback failed")
