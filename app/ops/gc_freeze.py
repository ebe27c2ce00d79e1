"""Keeping the cyclic garbage collector off the objects that live as long as the process.

A full (generation 2) collection walks every tracked object: the app, the planner's tables,
pydantic's schemas, every idle WebSocket's state. With thousands of sockets that walk stalls
the event loop for hundreds of milliseconds (measured: one event took 664 ms to reach 5,000
sockets). `gc.freeze()` moves everything alive into a permanent generation the collector no
longer walks: once after start-up, then periodically for what accumulated since (sessions,
sockets). A collection first, so that garbage is not frozen with the living.

Also after a burst: when the population it is told about (the live WebSockets) grew by `burst`
since the last freeze, it freezes then rather than at the next interval. Thousands of sockets
opened within a minute otherwise sit in the collector's walk until then, and the full
collection their allocations trigger stalls the next event's fan-out (measured: 537 ms).

And a young generation sized above what turns in flight hold (`tune_collector`): CPython
collects the youngest generation whenever 700 more container objects are alive than at the last
collection. Under load the turns in flight hold thousands (64 concurrent turns on the read mix),
so that count crossed 700 over and over while nothing was garbage: 80-150 collections in 3 s,
none of which freed a single object (measured with `gc.DEBUG_SAVEALL`: a turn leaves no cyclic
garbage), 4% of the service's CPU, and each moved the living objects of turns in flight into older
generations, whose own collections then paused the loop for up to 7 ms.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

YOUNG_THRESHOLD = 5_000
"""Container objects alive beyond the last collection that start a young collection (CPython:
700). Measured at 64 clients on the read mix, young collections in 3 s: 700 -> 78-146 (70-86 ms
in all, each moving the living to older generations: 8-13 of those too, up to 7 ms), 2,000 ->
9-13 (22-27 ms), 5,000 -> 1-4 (3-11 ms, none over 3.2 ms), 10,000 -> 0-1 (but up to 7 ms each:
a collection walks every young object still alive). Cyclic garbage, which only a collection
frees, is collected once 5,000 such objects have piled up (a few MB at most)."""


def tune_collector() -> None:
    """Size the young generation for a server (see the module's docstring); older ones as is."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


class GcFreezer:
    def __init__(
        self,
        *,
        interval_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        population: Callable[[], int] | None = None,
        burst: int = 500,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._sleep = sleep
        self._population = population
        self._burst = burst
        self._check_s = check_s
        self._clock = clock

    def freeze_now(self) -> int:
        """Collect, then freeze what is left; returns how many objects are frozen in all."""
        gc.collect()
        gc.freeze()
        return gc.get_freeze_count()

    async def run(self) -> None:
        """Freeze again every `interval_s` seconds, and after a burst, until cancelled.

        With a population, the first check (`check_s` after the start) also freezes: what the
        start-up built since app.main's freeze, collected once the service already answers
        rather than before (a full collection is ~15 ms the first `/health` need not wait)."""
        if self._population is None:
            while True:
                await self._sleep(self._interval_s)
                log.debug("gc_frozen", objects=self.freeze_now())
        count = self._population
        last: float | None = None
        base = count()
        while True:
            await self._sleep(self._check_s)
            now, size = self._clock(), count()
            base = min(base, size)  # growth is counted from the lowest point since
            if last is None or size - base >= self._burst or now - last >= self._interval_s:
                log.debug("gc_frozen", objects=self.freeze_now(), population=size)
                last, base = now, size
