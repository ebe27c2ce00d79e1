"""A synchronous step run for every turn that reaches it in one event-loop iteration, back to back.

Why: under load, the turns a loop iteration starts each run their whole first part (parsing,
the gate, the session, the rules planner, ...) one after another, so between two runs of the
planner the CPU's caches fill with everything else a turn touches. The planner is a few
hundred functions over a few thousand small objects (its cue tables, vocabulary, entity
patterns); in a turn it took three times what it takes when run back to back (bench/anatomy:
~0.31 against ~0.10 ms for "show me all droplets"; docs/performance.md, the twenty-first
session). Run as a stage, the turns that reach the planner in one iteration queue, and the
planner then runs for all of them in one callback at the end of that iteration, each plan
finding the previous one's data still in the cache. Each caller gets its own result (or its
own exception), computed in its own context (contextvars: log fields, trace ids).

A stage spends from the loop budget the turns' starts share (app.utils.loop_budget): its
callback runs calls while the budget allows (always at least one) and leaves the rest to the
next iteration, and starts later in the same iteration see the time it took. Before the stage
a turn's start included its plan, so the budget bounded both; with a budget of its own the
stage let about three times as many turns start per iteration, and the largest loop stall at
64 clients on the read mix went from 6.7-9.1 to 11.6-11.7 ms of loop CPU (p99 of the gaps
6.9-7.7 -> 12.3-13.6 ms). Shared, it is 6.2-7.8 ms. A caller that is cancelled while queued is
skipped. Used from one event loop at a time: a call from another loop while calls are queued
runs at once, unbatched.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from app.utils.loop_budget import LoopBudget

P = ParamSpec("P")
R = TypeVar("R")


class Stage(Generic[P, R]):
    """Awaitable wrapper of `fn`: `await stage(*args)` is `fn(*args)`, run at the end of the
    current loop iteration together with the other calls made in it."""

    def __init__(self, fn: Callable[P, R], *, budget: LoopBudget | None = None) -> None:
        self._fn = fn
        self._budget = budget or LoopBudget()
        self._queue: deque[_Call[R]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        if self._queue and loop is not self._loop:
            return self._fn(*args, **kwargs)
        self._loop = loop
        future: asyncio.Future[R] = loop.create_future()
        # The caller's context, so that what `fn` logs or reads from contextvars is its own.
        context = contextvars.copy_context()
        self._queue.append(_Call(future, context, args, kwargs))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run)
        return await future

    def _run(self) -> None:
        self._scheduled = False
        queue = self._queue
        budget = self._budget
        ran = 0
        try:
            while queue:
                # The first call always runs (and opens the iteration's budget if nothing has).
                if not budget.allows() and ran:
                    break
                call = queue.popleft()
                if call.future.done():  # its caller was cancelled while it waited
                    continue
                ran += 1
                try:
                    result = call.context.run(self._fn, *call.args, **call.kwargs)
                except Exception as exc:
                    call.future.set_exception(exc)
                else:
                    call.future.set_result(result)
        finally:
            if queue and self._loop is not None:
                self._scheduled = True
                self._loop.call_soon(self._run)


class _Call(Generic[R]):
    __slots__ = ("args", "context", "future", "kwargs")

    def __init__(
        self,
        future: asyncio.Future[R],
        context: contextvars.Context,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.context = context
        self.args = args
        self.kwargs = kwargs
