"""Exactly one instance performs the mesh duties: a Redis lock with a TTL, renewed by its holder.

Without Redis there is one instance by definition and it always leads. With Redis, the holder
renews the lock every third of its TTL; if the holder dies, the lock expires and another
instance takes over within one TTL plus one attempt interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

Duty = Callable[[], Awaitable[None]]

# Renew or release only if we still hold the lock (compare-and-set in one round trip).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


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
        url: str,
        on_elected: Duty,
        on_demoted: Duty,
        key: str = "droplet12:leader",
        ttl_s: float = 30.0,
        instance_id: str | None = None,
    ) -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._key = key
        self._ttl_ms = int(ttl_s * 1000)
        self._interval = ttl_s / 3
        self._token = instance_id or uuid.uuid4().hex
        self._on_elected = on_elected
        self._on_demoted = on_demoted
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False

    @property
    def instance_id(self) -> str:
        return self._token

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def _run(self) -> None:
        while True:
            try:
                if self.is_leader:
                    renewed = await self._redis.eval(
                        _RENEW, 1, self._key, self._token, str(self._ttl_ms)
                    )
                    if not renewed:
                        await self._demote("lock lost")
                else:
                    acquired = await self._redis.set(
                        self._key, self._token, nx=True, px=self._ttl_ms
                    )
                    if acquired:
                        self.is_leader = True
                        log.info("leader_elected", instance=self._token[:8])
                        await self._on_elected()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis unreachable: we can no longer prove we hold the lock, so step down
                # rather than risk two instances heartbeating for droplet 12.
                log.warning("leader_check_failed", error=type(exc).__name__)
                if self.is_leader:
                    await self._demote("redis unreachable")
            await asyncio.sleep(self._interval)

    async def _demote(self, reason: str) -> None:
        self.is_leader = False
        log.warning("leader_demoted", instance=self._token[:8], reason=reason)
        await self._on_demoted()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.is_leader:
            self.is_leader = False
            await self._on_demoted()
            with contextlib.suppress(Exception):
                await self._redis.eval(_RELEASE, 1, self._key, self._token)
        await self._redis.aclose()


Leader = AlwaysLeader | RedisLeader


def build_leader(*, url: str | None, on_elected: Duty, on_demoted: Duty, ttl_s: float) -> Leader:
    if url:
        return RedisLeader(url=url, on_elected=on_elected, on_demoted=on_demoted, ttl_s=ttl_s)
    return AlwaysLeader(on_elected=on_elected, on_demoted=on_demoted)
