"""Per-minute budgets per identity (or client address), kept by the `limits` library.

The strategy is limits' sliding window counter: the current fixed window's count plus the
previous one's, weighted by how much of it still overlaps the last minute (the Cloudflare
method). Two counters per key, no burst of twice the budget at a window edge (limits rounds
the weighted count down, so crossing an edge can let one hit more through), and the same
arithmetic in memory and in Redis (a Lua script there, so instances never race).

Storage: in memory for one instance (a window's counter expires two windows after its first
hit); in Redis when the event bus is Redis, so every instance sees every turn. If Redis fails,
the instance keeps limiting on its own (memory) rather than not at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog

from app.utils.imports import import_off_loop

# limits (~15 ms to import; 40 ms on a slow VM) is imported on the first hit, off the loop, not
# by building the app: a start-up never counts anything before its first /health answer
# (issue 17).
if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.storage import MemoryStorage, RedisStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter
    from redis.asyncio import ConnectionPool

log = structlog.get_logger(__name__)

DEFERRED_IMPORTS = ("limits.aio.storage", "limits.aio.strategies")
"""Imported by the first hit, off the loop (app.ops.deferred_imports warms them at start)."""

WINDOW_S = 60

Backend = Literal["memory", "redis"]

_REDIS_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """What limits reports about one key's two windows (its `get_sliding_window`)."""

    previous_count: int
    previous_ttl_s: float
    """How long the previous window still weighs (its weight is previous_ttl_s / window)."""
    current_count: int
    current_ttl_s: float
    """How long the current window's counter lives (the window ends one window earlier)."""


def retry_after_s(info: WindowInfo, *, window_s: int = WINDOW_S) -> int:
    """Whole seconds until the weighted count next drops by one (always 1..window_s).

    The same moment limits gives as `WindowStats.reset_time`, computed from durations rather
    than from the wall clock, so it can be checked without one: the previous window's share
    loses one hit every window/previous_count seconds, and the current window turns into the
    previous one after current_ttl % window seconds. A refused hit has a weighted count equal
    to the budget, so one step down is exactly when the next hit fits; the header is rounded
    up past that instant (at the instant itself the count is still at the budget).
    """
    waits: list[float] = []
    if info.previous_count > 0:
        waits.append(info.previous_ttl_s % (window_s / info.previous_count))
    if info.current_count > 0:
        waits.append(info.current_ttl_s % window_s)
    wait = min(waits, default=0.0)
    return min(window_s, max(1, math.floor(wait) + 1))


def storage_uri(redis_url: str) -> str:
    """limits' URI for a redis://, rediss:// or unix:// event-bus URL."""
    scheme, sep, rest = redis_url.partition("://")
    mapped = _REDIS_SCHEMES.get(scheme.lower())
    if not sep or mapped is None:
        raise ValueError(f"not a Redis URL: {redis_url!r}")
    return f"{mapped}://{rest}"


@dataclass(frozen=True, slots=True)
class _Counters:
    """One storage and the strategy over it (the strategy hides the storage's concrete type,
    and the window information needed for Retry-After is only on the storage)."""

    storage: MemoryStorage | RedisStorage
    strategy: SlidingWindowCounterRateLimiter

    @classmethod
    def over(cls, storage: MemoryStorage | RedisStorage) -> _Counters:
        from limits.aio.strategies import SlidingWindowCounterRateLimiter

        return cls(storage, SlidingWindowCounterRateLimiter(storage))


class RateLimiter:
    """`per_minute` hits per key and minute, in memory or (with `redis_url`) shared in Redis."""

    def __init__(
        self, *, per_minute: int, redis_url: str | None = None, prefix: str = "droplet12:rl"
    ) -> None:
        self._per_minute = per_minute
        self._redis_url = redis_url
        self._prefix = prefix
        self._counters: tuple[RateLimitItem, _Counters, _Counters | None] | None = None
        self._pool: ConnectionPool | None = None

    @property
    def backend(self) -> Backend:
        return "memory" if self._redis_url is None else "redis"

    def _ready(self) -> tuple[RateLimitItem, _Counters, _Counters | None]:
        """The item and the counters, built on the first hit (no await: built once)."""
        if self._counters is None:
            self._counters = self._build()
        return self._counters

    def _build(self) -> tuple[RateLimitItem, _Counters, _Counters | None]:
        from limits import RateLimitItemPerMinute
        from limits.aio.storage import MemoryStorage

        item = RateLimitItemPerMinute(self._per_minute)
        local = _Counters.over(MemoryStorage())
        shared: _Counters | None = None
        redis_url, prefix = self._redis_url, self._prefix
        if redis_url is not None:
            # Imported only when Redis is configured: redis-py costs ~70 ms of every start-up.
            from limits.aio.storage import RedisStorage
            from redis.asyncio import ConnectionPool

            # Our own pool, so aclose() can release it (limits' storage has no close), with
            # short timeouts: a hung Redis must not hold every turn for long.
            self._pool = ConnectionPool.from_url(
                redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            options: dict[str, Any] = {"connection_pool": self._pool}
            shared = _Counters.over(
                RedisStorage(
                    storage_uri(redis_url),
                    implementation="redispy",
                    wrap_exceptions=True,
                    key_prefix=prefix,
                    **options,
                )
            )
        return item, local, shared

    async def hit(self, key: str) -> Decision:
        """Count one hit for `key`, unless it is over its budget (then say when to retry)."""
        if self._counters is None:
            # The first hit: limits (and redis-py) imported off the loop (app.utils.imports).
            await import_off_loop(*DEFERRED_IMPORTS)
            if self._redis_url is not None:
                await import_off_loop("redis.asyncio")
        item, local, shared = self._ready()
        if shared is not None:
            from limits.errors import StorageError

            try:
                return await self._decide(item, shared, key)
            except StorageError as exc:
                # Redis down: keep limiting on this instance rather than not at all.
                log.warning("rate_limit_redis_unavailable", error=type(exc.storage_error).__name__)
        return await self._decide(item, local, key)

    @staticmethod
    async def _decide(item: RateLimitItem, counters: _Counters, key: str) -> Decision:
        if await counters.strategy.hit(item, key):
            return Decision(True)
        window = await counters.storage.get_sliding_window(item.key_for(key), item.get_expiry())
        return Decision(False, retry_after_s(WindowInfo(*window), window_s=item.get_expiry()))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def build_rate_limiter(
    *, per_minute: int, redis_url: str | None, prefix: str = "droplet12:rl"
) -> RateLimiter:
    return RateLimiter(per_minute=per_minute, redis_url=redis_url, prefix=prefix)
