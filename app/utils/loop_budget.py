"""A cap on how many turns one event-loop iteration starts.

Why: a turn's steps between two waits are plain CPU (the rules planner, tools that answer from
memory, rendering). Asyncio runs, in one iteration, every callback that was ready when the
iteration began, so when dozens of requests arrive together (under a saturated load one group
commit answers a whole batch, and its clients send again at once) one iteration started them
all, and everything else that was ready waited for the lot: a timer, a health probe, an event
for the WebSockets, the steps of turns already under way. Turns with more steps waited once per
step: at 64 clients on the read mix the loop stalled up to 31 ms, and while half the turns took
under 70 ms, one in a hundred took 580 ms.

So a turn asks `LoopBudget.turn()` before it starts (`ConversationService.handle`; the REST
chat endpoint asks before it reads the request, through `ConversationService.admit`, so what a
request does before its turn is budgeted too). Turns that start within `budget_s` of the
first one in the same iteration go straight on; later ones wait for a later iteration, in the
order they came, and what else was ready runs in between. A turn already running is never
interrupted: this is a budget for starting, not a preemption.

How the budget knows an iteration has begun without a hook into the loop: a callback scheduled
with `call_soon` during an iteration runs in the next one.

Measured at 64 clients on the read mix (docs/performance.md): the largest stall 31 -> 15-19 ms
of loop CPU, p99 latency 580 -> 325-350 ms, for 1-8% more CPU per turn at saturation. Also
asking before each read, after the reads and after the commit brought the stall to 12 ms and
the p99 to 190 ms but cost 15-17% of the saturated throughput, so only the start asks. A lone
turn never waits. `waiting` is exported as `chat_turns_waiting_to_start` (app.ops.metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

# A waiting timer needs two iterations to run its task (the timer fires, then the task steps),
# so iterations must stay short for the loop to get back to it within 10 ms. A larger budget
# lets longer iterations through; a smaller one wakes waiting turns more often for nothing
# (measured with the start and three more steps asking: 1 ms cost 27% of the saturated
# throughput, 1.5 ms 17%). Only the start asking, 0.5 ms kept the loop under 10 ms in short
# runs but not in a full bench (10.6 ms; 14.5 ms at half capacity, a collection), and cost
# 9-25% of the saturated throughput (seventh session). Since a commit's turns resume a few per
# iteration (app.store.group_commit), an iteration is about this budget plus those turns' ends:
# 1 ms with them brought the largest stall at 64 clients from 9.8 to 8.6 ms (median of 14
# interleaved rounds each, 6 of 14 over 10 ms -> 2 of 14) at no throughput cost the rounds
# could tell (fifteenth session, docs/performance.md).
DEFAULT_BUDGET_S = 0.001


class LoopBudget:
    """One per service instance; used from one event loop."""

    def __init__(
        self,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._budget_s = budget_s
        self._clock = clock
        self._opened_at: float | None = None
        """When the first turn of the current iteration started; None until one has."""
        self._started = 0
        """Turns that went on in the current iteration."""
        self._sent_back = False
        """A released turn found the budget spent in the current iteration."""
        self._scheduled = False
        self._queue: deque[asyncio.Future[None]] = deque()
        self._again: list[asyncio.Future[None]] = []
        """Released turns that found the budget spent: first in line next time, in order."""
        self._released = 0
        """Turns released but not resumed yet: new turns queue behind them."""

    @property
    def waiting(self) -> int:
        """Turns waiting for a later iteration."""
        return len(self._queue) + len(self._again) + self._released

    async def turn(self) -> None:
        """Return when this turn may start: now, or in a later iteration."""
        if not self.waiting and self._fits():
            return
        queue: deque[asyncio.Future[None]] | list[asyncio.Future[None]] = self._queue
        while True:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue.append(waiter)
            self._schedule()
            try:
                await waiter
            except asyncio.CancelledError:
                # A client gone while its turn waited: its place goes to the next one.
                if waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        queue.remove(waiter)
                else:
                    self._released -= 1
                raise
            self._released -= 1
            if self._fits():
                return
            self._sent_back = True
            queue = self._again

    def allows(self) -> bool:
        """Whether more budgeted work other than a turn's start fits in this iteration (a
        stage's next call, app.utils.stage). It spends from the same budget as the starts and
        opens the iteration's window as a start does, so starts after it in the iteration see
        the time it took; it is not counted as a start."""
        now = self._clock()
        if self._opened_at is None:
            self._opened_at = now
            self._schedule()
            return True
        return now - self._opened_at < self._budget_s

    def _fits(self) -> bool:
        if not self.allows():
            return False
        self._started += 1
        return True

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._next_iteration)

    def _next_iteration(self) -> None:
        # Runs in the iteration after the one that scheduled it; turns released now resume in
        # the iteration after this one. Releasing only about as many as fitted last time
        # spares the rest a wake-up for nothing: waking a parked turn walks its whole chain of
        # coroutines, and under a saturated load a turn would otherwise be woken many times.
        fitted = self._started + (0 if self._sent_back else 1)
        self._scheduled = False
        self._opened_at = None
        self._started = 0
        self._sent_back = False
        if self._again:
            self._queue.extendleft(reversed(self._again))
            self._again = []
        released = 0
        while self._queue and released < max(1, fitted):
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                released += 1
        self._released += released
        if self._queue:
            self._schedule()
