"""Group commit: one writer, and every turn that arrived meanwhile in its next transaction.

Why: a commit on SQLite with `synchronous=FULL` is an fsync, and every statement through the
asyncio layer is a hop to a driver thread. One writer that takes whatever has queued up, writes
it in one transaction and answers each submitter after that commit keeps "answered means
durable" while the cost of a commit is shared by everyone who waited for it.

The batch function decides how a batch is written; it returns one result (or exception) per
item, so one bad item fails alone.
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


class GroupCommit(Generic[Item, Result]):
    """Submit an item, await its own result; batches are written one at a time, in order."""

    def __init__(self, *, write_batch: BatchFn[Item, Result], max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
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
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
