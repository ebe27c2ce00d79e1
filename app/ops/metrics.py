"""Live request and turn metrics for /state, and their Prometheus twins for /metrics."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_CHILDREN = 1024
"""Label combinations remembered per metric: routes, channels, planners, tools, outcomes and
status codes are few, so this is never reached in practice; it bounds memory if it were."""


Metric = TypeVar("Metric", Counter, Histogram)


def _children(metric: Metric) -> Callable[..., Metric]:
    """`metric.labels`, each label combination's child looked up once (see Metrics)."""
    return lru_cache(maxsize=_CHILDREN)(metric.labels)


class SlidingCounter:
    """Events in the last `window` seconds, in per-second buckets (bounded memory)."""

    def __init__(self, *, window: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._buckets: deque[list[float]] = deque()  # [second, count]

    def add(self, n: int = 1) -> None:
        second = float(int(self._clock()))
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, float(n)])
        self._trim(second)

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self._window:
            self._buckets.popleft()

    def total(self) -> int:
        self._trim(float(int(self._clock())))
        return int(sum(count for _, count in self._buckets))


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    requests_total: int
    requests_per_minute: int
    errors_last_hour: int
    average_response_time_ms: float


class Metrics:
    """One per app: a private Prometheus registry plus the windows /state reports."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._requests_total = 0
        self._last_minute = SlidingCounter(window=60, clock=clock)
        self._errors_hour = SlidingCounter(window=3600, clock=clock)
        # Recent latencies only: an average over the service's whole life hides today's problems.
        self._recent_latency: deque[float] = deque(maxlen=1000)
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.turns = Counter(
            "chat_turns_total", "Chat turns", ["channel", "planner"], registry=self.registry
        )
        self.turn_latency = Histogram(
            "chat_turn_duration_seconds",
            "Chat turn latency",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "chat_tool_calls_total", "Tool executions", ["tool", "outcome"], registry=self.registry
        )
        self.upstream_latency = Histogram(
            "mesh_upstream_duration_seconds",
            "Latency of calls to mesh peers",
            ["peer"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ws_connections = Gauge(
            "websocket_connections", "Live WebSocket connections", registry=self.registry
        )
        self.sessions = Gauge("chat_sessions", "Stored chat sessions", registry=self.registry)
        # Read at scrape time from the turn service's loop budget (app.utils.loop_budget): above
        # zero, more turns arrive at once than this replica's core starts.
        self.turns_waiting = Gauge(
            "chat_turns_waiting_to_start",
            "Chat turns waiting for an event-loop iteration to start in",
            registry=self.registry,
        )

        # Each label combination's child, looked up once: prometheus_client's `labels()`
        # checks its arguments and takes a lock on every call (2-3 µs), and a chat turn makes
        # six of them. A child stays the metric's own as long as nothing removes it (nothing
        # here does: no `remove()` or `clear()`).
        self._http_requests_of = _children(self.http_requests)
        self._http_latency_of = _children(self.http_latency)
        self._turns_of = _children(self.turns)
        self._turn_latency_of = _children(self.turn_latency)
        self._tool_calls_of = _children(self.tool_calls)
        self._upstream_latency_of = _children(self.upstream_latency)

    def observe_request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self._requests_total += 1
        self._last_minute.add()
        if status >= 500:
            self._errors_hour.add()
        self._recent_latency.append(seconds)
        self._http_requests_of(method, route, str(status)).inc()
        self._http_latency_of(method, route).observe(seconds)

    def observe_turn(self, *, channel: str, planner: str, seconds: float) -> None:
        self._turns_of(channel, planner).inc()
        self._turn_latency_of(channel).observe(seconds)

    def count_tool_call(self, *, tool: str, outcome: str) -> None:
        self._tool_calls_of(tool, outcome).inc()

    def observe_upstream(self, peer: str, seconds: float) -> None:
        self._upstream_latency_of(peer).observe(seconds)

    def record_error(self) -> None:
        """Errors outside a request (a failed turn over WebSocket, a failed task)."""
        self._errors_hour.add()

    def snapshot(self) -> RequestSnapshot:
        latencies = list(self._recent_latency)
        average = (sum(latencies) / len(latencies) * 1000) if latencies else 0.0
        return RequestSnapshot(
            requests_total=self._requests_total,
            requests_per_minute=self._last_minute.total(),
            errors_last_hour=self._errors_hour.total(),
            average_response_time_ms=round(average, 2),
        )
