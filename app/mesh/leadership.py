"""Exactly one instance performs the mesh duties: redis-py's `Lock`, with a TTL, renewed by its
holder.

Without Redis there is one instance by definition and it always leads. With Redis, every
instance tries the lock every third of its TTL; the holder resets the TTL instead. If the holder
dies the lock expires, and another instance takes over within one TTL plus one interval. A
holder that cannot reach Redis can no longer prove it holds the lock, so it steps down.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from app.utils.retry import Sleep

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

Duty = Callable[[], Awaitable[None]]


class AlwaysLeader:
    """The single-instance default."""

    backend = "none"

    def __init__(self, *, on_elected: Duty, on_demoted: Duty) -> None:
        self._on_elected = on_elected
        self._on_demoted = on_demoted
        self.is_leader = False

    async def start(self) -> None:
        self.is_leader = True
        await self._on_elected()

    async def stop(self) -> None:
        if self.is_leader:
            self.is_leader = False
            await self._on_demoted()


class RedisLeader:
    backend = "redis"

    def __init__(
        self,
        *,
        redis: Redis,
        on_elected: Duty,
        on_demoted: Duty,
        key: str = "droplet12:leader",
        ttl_s: float = 30.0,
        instance_id: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        from redis.asyncio.lock import Lock

        self._redis = redis
        # The token is this instance's, not a thread's; acquiring never waits: the loop retries.
        self._lock = Lock(redis, key, timeout=ttl_s, blocking=False, thread_local=False)
        self._interval = ttl_s / 3
        self._token = instance_id or uuid.uuid4().hex
        self._on_elected = on_elected
        self._on_demoted = on_demoted
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def _run(self) -> None:
        from redis.exceptions import LockNotOwnedError

        while True:
            try:
                if self.is_leader:
                    await self._lock.reacquire()  # back to a full TTL, if still ours
                elif await self._lock.acquire(token=self._token):
                    self.is_leader = True
                    log.info("leader_elected", instance=self._token[:8])
                    await self._on_elected()
            except asyncio.CancelledError:
                raise
            except LockNotOwnedError:
                # It expired (we were too slow) and perhaps someone else holds it now.
                await self._demote("lock lost")
            except Exception as exc:
                # Redis unreachable: we can no longer prove we hold the lock, so step down
                # rather than risk two instances heartbeating for droplet 12.
                log.warning("leader_check_failed", error=type(exc).__name__)
                if self.is_leader:
                    await self._demote("redis unreachable")
            await self._sleep(self._interval)

    async def _demote(self, reason: str) -> None:
        self.is_leader = False
        log.warning("leader_demoted", instance=self._token[:8], reason=reason)
        await self._on_demoted()

    async def stop(self) -> None:
        from redis.exceptions import RedisError

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.is_leader:
            self.is_leader = False
            await self._on_demoted()
            # Hand over at once instead of making the next leader wait out the TTL.
            with contextlib.suppress(RedisError, OSError):
                await self._lock.release()
        await self._redis.aclose()


Leader = AlwaysLeader | RedisLeader


def build_leader(*, url: str | None, on_elected: Duty, on_demoted: Duty, ttl_s: float) -> Leader:
    if not url:
        return AlwaysLeader(on_elected=on_elected, on_demoted=on_demoted)
    from redis.asyncio import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries inside the client: the election loop is the retry, and a holder must learn
    # within one socket timeout that Redis is gone, long before its lock could expire.
    redis = Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=2.0, retry=Retry(NoBackoff(), 0)
    )
    return RedisLeader(redis=redis, on_elected=on_elected, on_demoted=on_demoted, ttl_s=ttl_s)
