"""Everything the app builds at start-up, in one place the routes reach through `deps`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from app.config import Settings
from app.services.health import HealthMonitor
from app.services.keys import PublicKeySource
from app.services.metrics import Metrics


def _zero() -> int:
    return 0


@dataclass(slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    public_keys: PublicKeySource
    health: HealthMonitor
    process: psutil.Process
    features: list[str] = field(default_factory=list)
    planner_name: str = "rules"
    store_backend: str = "none"
    event_bus_backend: str = "in-process"
    active_sessions: Callable[[], int] = _zero
    active_connections: Callable[[], int] = _zero
    started_monotonic: float = field(default_factory=time.monotonic)

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)
