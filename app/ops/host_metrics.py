"""Host and process figures for heartbeats, sampled without ever sleeping.

`psutil.cpu_percent(interval=None)` reports usage since its previous call, so the first call is
made at construction and every heartbeat then gets the average over the interval since the last.
`sample()` makes a few syscalls; async callers run it with `asyncio.to_thread`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu_percent: float
    mem_percent: float
    disk_percent: float
    process_memory_mb: float
    uptime_seconds: float


class HostMetrics:
    def __init__(
        self, *, disk_path: str = "/", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._disk_path = disk_path
        self._clock = clock
        self._started = clock()
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)

    def sample(self) -> HostSample:
        try:
            disk = psutil.disk_usage(self._disk_path).percent
        except OSError:
            disk = 0.0
        return HostSample(
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            mem_percent=float(psutil.virtual_memory().percent),
            disk_percent=float(disk),
            process_memory_mb=round(self._process.memory_info().rss / 1_048_576, 1),
            uptime_seconds=round(self._clock() - self._started, 1),
        )
