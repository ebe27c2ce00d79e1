"""Group commit: one writer, and every turn that arrived meanwhile in its next transaction.

Why: a commit on SQLite with `synchronous=FULL` is an fsync, and every statement through the
asyncio layer is a hop to a driver thread. One writer that takes whatever has queued up, writes
it in one transaction and answers each submitter after that commit keeps "answered means
durable" while the cost of a commit is shared by everyone who waited for it.

The batch function decides how a batch is written; it returns one result (or exception) per
item, so one bad item fails alone.

A committed batch is answered `wake_at_once` submitters per event-loop iteration. Under a
saturated load one commit holds dozens of turns, and each submitter's turn then runs to its
end (the reply, the response, its log line) in the iteration after its result is set: answered
all at once, 50-60 of them ran back to back in one iteration, 10-22 ms in which nothing else
on the loop ran (timed per callback on the plain asyncio loop at 64 clients; every iteration
over 10 ms was one such wake-up, docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFn = Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]]

MAX_BATCH = 256
"""Turns per transaction at most: bounds one commit's latency under a burst."""

WAKE_AT_ONCE = 8
"""Submitters answered per loop iteration: a turn's end after its commit is ~0.2 ms of loop
CPU, so 8 are ~1.5 ms, next to the loop budget's 1 ms for the turns that start in the same
iteration (app.utils.loop_budget)."""


class GroupCommit(Generic[Item, Result]):
    """Submit an item, await its own result; batches are written one at a time, in order."""

    def __init__(
        self,
        *,
        write_batch: BatchFn[Item, Result],
        max_batch: int = MAX_BATCH,
        wake_at_once: int = WAKE_AT_ONCE,
    ) -> None:
        if max_batch < 1 or wake_at_once < 1:
            raise ValueError("max_batch and wake_at_once must be >= 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._wake_at_once = wake_at_once
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drain: asyncio.Task[None] | None = None
        self.batches = 0
        """Transactions written so far (for tests and the benchmark)."""

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: Item) -> Result:
        """Queue `item`; returns (or raises) once the transaction holding it has committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drain is None or self._drain.done():
            # No writer task while idle: one is started by the first item after a pause.
            self._drain = asyncio.create_task(self._run(), name="store-group-commit")
        # Shielded: a caller that gives up (client gone) must not cancel a write that others
        # share, and its own item is written anyway, as if it had waited.
        return await asyncio.shield(future)

    async def flush(self) -> None:
        """Wait until everything queued so far is written (for shutdown)."""
        while self._drain is not None and not self._drain.done():
            await asyncio.shield(self._drain)

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: len(batch)]
            try:
                results = await self._write_batch([item for item, _ in batch])
            except BaseException as exc:  # the whole batch failed: tell every submitter
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            finally:
                self.batches += 1
            await self._answer(batch, results)

    async def _answer(
        self,
        batch: Sequence[tuple[Item, asyncio.Future[Result]]],
        results: Sequence[Result | BaseException],
    ) -> None:
        """Answer the batch's submitters `wake_at_once` per loop iteration (see the module)."""
        answered = 0
        try:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if answered and answered % self._wake_at_once == 0:
                    await asyncio.sleep(0)
                _settle(future, result)
                answered += 1
        finally:
            # Cancelled between two groups (shutdown): the batch is committed, so everyone
            # still waiting gets their result now rather than never.
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    _settle(future, result)


def _settle(future: asyncio.Future[Result], result: Result | BaseException) -> None:
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
