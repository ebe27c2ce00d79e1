"""The event bus: mesh events and session messages, in-process by default, Redis across instances.

Every instance subscribes once and fans events out to its own WebSocket connections, so the
in-process and Redis buses behave the same: a publisher also receives what it publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from tenacity import RetryCallState

from app.utils.retry import RetryPolicy, Sleep, any_failure, restart_backoff, retrying

log = structlog.get_logger(__name__)

Event = dict[str, Any]
Handler = Callable[[Event], Awaitable[None]]

CHANNEL = "droplet12:events"

RECONNECT = RetryPolicy(attempts=None, base_delay=0.5, max_delay=10.0, min_delay=0.5, jitter=False)
"""Resubscribing after a Redis failure: 0.5 s, doubling, at most 10 s apart."""


class EventBus(Protocol):
    backend: str

    async def start(self, handler: Handler) -> None: ...

    async def publish(self, event: Event) -> None: ...

    async def stop(self) -> None: ...

    async def ping(self) -> tuple[bool, str | None]: ...


class InProcessBus:
    backend = "in-process"

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def publish(self, event: Event) -> None:
        if self._handler is not None:
            await self._handler(event)

    async def stop(self) -> None:
        self._handler = None

    async def ping(self) -> tuple[bool, str | None]:
        return True, None


class RedisBus:
    """Redis pub/sub. Publishing never blocks a turn for long: failures are logged, not raised."""

    backend = "redis"

    def __init__(
        self,
        *,
        url: str,
        channel: str = CHANNEL,
        reconnect: RetryPolicy = RECONNECT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._channel = channel
        self._reconnect = reconnect
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def start(self, handler: Handler) -> None:
        self._task = asyncio.create_task(self._listen(handler), name="redis-bus")

    async def _listen(self, handler: Handler) -> None:
        async for attempt in retrying(
            self._reconnect, retry=any_failure, sleep=self._sleep, before_sleep=_disconnected
        ):
            with attempt:
                await self._follow(handler, attempt.retry_state)

    async def _follow(self, handler: Handler, retry_state: RetryCallState) -> None:
        """One subscription, followed until Redis fails; raises so the loop subscribes again."""
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            # Subscribed: whatever fails next is a new outage, retried quickly again.
            restart_backoff(retry_state)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    event = json.loads(message["data"])
                except (ValueError, TypeError):
                    continue
                if isinstance(event, dict):
                    await handler(event)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        raise ConnectionError("the subscription ended")

    async def publish(self, event: Event) -> None:
        try:
            await self._redis.publish(self._channel, json.dumps(event, default=str))
        except Exception as exc:
            log.warning("event_publish_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    async def ping(self) -> tuple[bool, str | None]:
        try:
            await self._redis.ping()
        except Exception as exc:
            return False, type(exc).__name__
        return True, None


def _disconnected(retry_state: RetryCallState) -> None:
    failure = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "event_bus_disconnected",
        error=type(failure).__name__,
        retry_in=round(retry_state.upcoming_sleep, 2),
    )


def build_event_bus(url: str | None) -> EventBus:
    if url:
        return RedisBus(url=url)
    return InProcessBus()
