"""`python -m bench.stall_probe`: droplet 12 exactly as `python -m app.main`, plus a 1 ms ticker.

How long can the service's event loop go without getting back to a waiting task? A client
cannot tell from outside (its own round trip and the HTTP layer blur a few milliseconds), so
this wrapper runs a task *inside* the service's loop:

    while True: await asyncio.sleep(0.001); gap = now - previous wake-up

A healthy idle loop wakes it every ~1.1 ms (uvloop's timers have millisecond resolution). When
the loop is busy, the ticker's timer fires but its callback waits for the current iteration's
other callbacks (request parsing, a planner call, a store step, a GC pause): the gap is how long
every other ready I/O callback waited too. So the largest gap is the loop's worst stall.

Nothing in `app/` changes: this module imports `app.main` (which builds the app as usual),
wraps the FastAPI app's lifespan so the ticker starts after the app's own start-up (in the
loop uvicorn runs) and stops before its shutdown, then calls `app.main.main()`.

Windows are driven by signals from the load generator (`stall_probe_pid` in its job):
SIGUSR1 starts a window (drops the gaps so far), SIGUSR2 writes the window's summary as JSON to
`$BENCH_STALL_FILE` (written to `<file>.tmp`, then renamed, so a reader never sees half).
Each gap also records the loop thread's CPU time over it (`time.thread_time`): on a shared
machine a long gap can be the kernel running another process on the service's core, and the
CPU time says how much of the gap was the loop's own work (`busy`: the same statistics over
those CPU times; `own_gap_max_ms`: the largest gap that was >= 80% on the CPU).
The ticker costs the service ~1,000 wake-ups a second; its CPU per turn is therefore reported
separately from the un-probed service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

TICK_S = 0.001
STALL_MS = 10.0
ENV_FILE = "BENCH_STALL_FILE"


class Ticker:
    """The 1 ms ticker and its current window of gaps (one instance per service process)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.gaps_s: list[float] = []
        self.busy_s: list[float] = []
        """The loop thread's CPU time within each gap (same index)."""
        self.window_started = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self.reset)
        loop.add_signal_handler(signal.SIGUSR2, self.dump)
        self._task = loop.create_task(self._run(), name="bench-stall-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        # Wall time alone cannot tell the loop's own work from the kernel running another
        # process on this core (a busy shared machine): the thread's CPU time over the same gap
        # can. The loop runs on this (the main) thread, so its CPU time is the loop's work.
        previous, previous_cpu = time.perf_counter(), time.thread_time()
        while True:
            await asyncio.sleep(TICK_S)
            now, cpu = time.perf_counter(), time.thread_time()
            self.gaps_s.append(now - previous)
            self.busy_s.append(cpu - previous_cpu)
            previous, previous_cpu = now, cpu

    def reset(self) -> None:
        self.gaps_s = []
        self.busy_s = []
        self.window_started = time.perf_counter()

    def dump(self) -> None:
        summary = summarise(self.gaps_s, time.perf_counter() - self.window_started)
        summary["busy"] = summarise(self.busy_s, 0.0)
        # The gaps the loop spent on its own work (>= 80% of the gap on the CPU): stalls the
        # service causes, as opposed to the core being taken by another process.
        own = [g for g, b in zip(self.gaps_s, self.busy_s, strict=True) if b >= 0.8 * g]
        summary["own_gap_max_ms"] = round(max(own) * 1000, 3) if own else None
        summary["own_gaps_over_10ms"] = sum(1 for g in own if g * 1000 > STALL_MS)
        tmp = self.output.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary))
        tmp.replace(self.output)


def summarise(gaps_s: list[float], window_s: float) -> dict[str, Any]:
    ms = sorted(g * 1000 for g in gaps_s)

    def rank(fraction: float) -> float | None:
        if not ms:
            return None
        return round(ms[max(1, math.ceil(fraction * len(ms))) - 1], 3)  # nearest rank

    return {
        "window_s": round(window_s, 3),
        "ticks": len(ms),
        "tick_ms": TICK_S * 1000,
        "gap_p50_ms": rank(0.50),
        "gap_p99_ms": rank(0.99),
        "gap_max_ms": round(ms[-1], 3) if ms else None,
        "gaps_over_10ms": sum(1 for g in ms if g > STALL_MS),
        "stalled_ms_over_10ms": round(sum(g for g in ms if g > STALL_MS), 1),
        "largest_ms": [round(g, 2) for g in ms[-5:][::-1]],
    }


def main() -> None:
    output = Path(os.environ[ENV_FILE])
    import app.main as service  # builds the app, as `python -m app.main` does

    router = service.app.router
    inner = router.lifespan_context
    ticker = Ticker(output)

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            ticker.start()
            try:
                yield state
            finally:
                await ticker.stop()

    router.lifespan_context = lifespan
    service.main()


if __name__ == "__main__":
    main()
