"""Background health probes, so /health and /dependencies answer from memory, never from I/O."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import structlog

log = structlog.get_logger(__name__)

ProbeResult = tuple[bool, str | None]
Probe = Callable[[], Awaitable[ProbeResult]]
CheckState = Literal["ok", "failing", "unknown", "disabled"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    state: CheckState
    detail: str | None
    critical: bool
    checked_at: float | None


@dataclass(slots=True)
class _ProbeEntry:
    probe: Probe | None
    critical: bool
    state: CheckState = "unknown"
    detail: str | None = None
    checked_at: float | None = None


class CachedProbe:
    """A probe whose answer is reused for `ttl_s` seconds.

    For a probe that costs something upstream (a model look-up): however often probe rounds run
    (every replica, a round at start-up and then every interval), the peer is asked at most once
    per `ttl_s`.
    """

    def __init__(
        self, probe: Probe, *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probe = probe
        self._ttl_s = ttl_s
        self._clock = clock
        self._last: tuple[float, ProbeResult] | None = None

    async def __call__(self) -> ProbeResult:
        now = self._clock()
        if self._last is not None and now - self._last[0] < self._ttl_s:
            return self._last[1]
        result = await self._probe()
        self._last = (now, result)
        return result


class HealthMonitor:
    """Runs each probe every `interval` seconds with a timeout and keeps the latest results.

    A failing critical probe (the session store) makes the droplet `error`; a failing optional
    one (a mesh peer) makes it degraded but still `active`, because chat keeps working.
    """

    def __init__(
        self, *, interval: float = 10.0, probe_timeout: float = 3.0, start_wait_s: float = 0.25
    ) -> None:
        self._interval = interval
        self._timeout = probe_timeout
        self._start_wait_s = start_wait_s
        self._entries: dict[str, _ProbeEntry] = {}
        self._task: asyncio.Task[None] | None = None
        self._first_round = asyncio.Event()

    def add_probe(
        self, name: str, probe: Probe | None, *, critical: bool, detail: str | None = None
    ) -> None:
        """Register a probe; `None` marks a dependency that is disabled by configuration
        (`detail` then says what would enable it)."""
        entry = _ProbeEntry(probe=probe, critical=critical)
        if probe is None:
            entry.state, entry.detail = "disabled", detail
        self._entries[name] = entry

    async def run_once(self) -> None:
        await asyncio.gather(*(self._run(name, e) for name, e in self._entries.items() if e.probe))

    async def _run(self, name: str, entry: _ProbeEntry) -> None:
        assert entry.probe is not None
        try:
            ok, detail = await asyncio.wait_for(entry.probe(), self._timeout)
        except TimeoutError:
            ok, detail = False, f"no answer within {self._timeout:g}s"
        except Exception as exc:  # a probe must never take the monitor down
            ok, detail = False, type(exc).__name__
        new_state: CheckState = "ok" if ok else "failing"
        if new_state != entry.state:
            log.info("health_check_changed", check=name, state=new_state, detail=detail)
        entry.state, entry.detail, entry.checked_at = new_state, detail, time.time()

    async def start(self) -> None:
        """Start the rounds, waiting for the first one at most `start_wait_s`.

        Local probes answer within milliseconds, so the first `/health` normally has every
        result; a peer that accepts connections but does not answer would otherwise hold the
        whole start-up for the probe timeout (issue 17). Its check stays `unknown` (the service
        `active`) until its probe returns."""
        self._task = asyncio.create_task(self._loop(), name="health-monitor")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_round.wait(), self._start_wait_s)

    async def _loop(self) -> None:
        await self.run_once()
        self._first_round.set()
        while True:
            await asyncio.sleep(self._interval)
            await self.run_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def checks(self) -> list[Check]:
        return [
            Check(name, e.state, e.detail, e.critical, e.checked_at)
            for name, e in self._entries.items()
        ]

    def status(self) -> tuple[Literal["active", "error"], list[str]]:
        """The UDC status word and the names of failing checks."""
        failing = [c for c in self.checks() if c.state == "failing"]
        if any(c.critical for c in failing):
            return "error", [c.name for c in failing]
        return "active", [c.name for c in failing]
