"""Chat-turn rate limits per identity (or client address): in memory, or in Redis across instances.

A sliding window of one minute approximated by two fixed windows (the Cloudflare method): cheap,
bounded memory, and no burst of twice the limit at a window edge.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0
    remaining: int = 0


class RateLimiter(Protocol):
    backend: str

    async def hit(self, key: str) -> Decision: ...

    async def aclose(self) -> None: ...


def _estimate(previous: int, current: int, elapsed_in_window: float) -> float:
    weight = max(0.0, (WINDOW_S - elapsed_in_window) / WINDOW_S)
    return previous * weight + current


def _retry_after(limit: int, previous: int, current: int, elapsed: float) -> int:
    # When does the weighted previous window decay enough to let one more through?
    if previous <= 0:
        return max(1, math.ceil(WINDOW_S - elapsed))
    needed = (previous + current + 1 - limit) / previous * WINDOW_S
    return max(1, min(WINDOW_S, math.ceil(needed - (WINDOW_S - elapsed) + 1)))


class MemoryRateLimiter:
    backend = "memory"

    def __init__(
        self,
        *,
        per_minute: int,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limit = per_minute
        self._max_keys = max_keys
        self._clock = clock
        # key -> (window start, previous count, current count); LRU-bounded.
        self._windows: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    async def hit(self, key: str) -> Decision:
        now = self._clock()
        window = int(now // WINDOW_S) * WINDOW_S
        start, previous, current = self._windows.get(key, (window, 0, 0))
        if start != window:
            previous = current if start == window - WINDOW_S else 0
            current = 0
            start = window
        elapsed = now - window
        if _estimate(previous, current + 1, elapsed) > self._limit:
            self._store(key, (start, previous, current))
            return Decision(False, _retry_after(self._limit, previous, current, elapsed))
        current += 1
        self._store(key, (start, previous, current))
        remaining = max(0, int(self._limit - _estimate(previous, current, elapsed)))
        return Decision(True, remaining=remaining)

    def _store(self, key: str, value: tuple[int, int, int]) -> None:
        self._windows[key] = value
        self._windows.move_to_end(key)
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)

    async def aclose(self) -> None:
        return None


class RedisRateLimiter:
    """The same windows as counters in Redis, so every instance sees every turn."""

    backend = "redis"

    def __init__(
        self,
        *,
        url: str,
        per_minute: int,
        prefix: str = "droplet12:rl",
        clock: Callable[[], float] = time.time,
    ) -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._limit = per_minute
        self._prefix = prefix
        self._clock = clock
        self._fallback = MemoryRateLimiter(per_minute=per_minute, clock=clock)

    async def hit(self, key: str) -> Decision:
        now = self._clock()
        window = int(now // WINDOW_S) * WINDOW_S
        current_key = f"{self._prefix}:{key}:{window}"
        previous_key = f"{self._prefix}:{key}:{window - WINDOW_S}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(current_key)
                pipe.expire(current_key, WINDOW_S * 2)
                pipe.get(previous_key)
                current, _, previous_raw = await pipe.execute()
        except Exception as exc:
            # Redis down: keep limiting on this instance rather than not at all.
            log.warning("rate_limit_redis_unavailable", error=type(exc).__name__)
            return await self._fallback.hit(key)
        previous = int(previous_raw or 0)
        elapsed = now - window
        if _estimate(previous, int(current), elapsed) > self._limit:
            return Decision(False, _retry_after(self._limit, previous, int(current) - 1, elapsed))
        remaining = max(0, int(self._limit - _estimate(previous, int(current), elapsed)))
        return Decision(True, remaining=remaining)

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_rate_limiter(
    *, per_minute: int, redis_url: str | None, prefix: str = "droplet12:rl"
) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(url=redis_url, per_minute=per_minute, prefix=prefix)
    return MemoryRateLimiter(per_minute=per_minute)
