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
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


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
