"""The Redis event bus against the local Redis: delivery, and resubscribing after a failure."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from redis.asyncio import Redis
from structlog.testing import capture_logs

from app.channels.events import RedisBus

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Inbox:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.arrived.set()

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            await self.arrived.wait()
        self.arrived.clear()
        return self.events[-1]


async def test_a_lost_subscription_is_resumed_after_a_short_wait() -> None:
    channel = f"test:{uuid.uuid4().hex}"
    waits: list[float] = []
    waited = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        waited.set()

    inbox = Inbox()
    name = f"bus-{uuid.uuid4().hex[:8]}"
    bus = RedisBus(url=f"{REDIS_URL}?client_name={name}", channel=channel, sleep=sleep)
    admin = Redis.from_url(REDIS_URL)
    try:
        await bus.start(inbox)

        async def publish_until_heard(event: dict[str, Any]) -> dict[str, Any]:
            # Publishing before the subscription exists loses the message: say it until heard.
            async with asyncio.timeout(5):
                while not inbox.arrived.is_set():
                    await bus.publish(event)
                    await asyncio.sleep(0.02)
            return await inbox.next()

        assert await publish_until_heard({"n": 1}) == {"n": 1}
        with capture_logs() as logs:
            # Only this bus's connections: other test runs may share the Redis.
            for client in await admin.client_list(_type="pubsub"):
                if client.get("name") == name:
                    await admin.client_kill_filter(_id=client["id"])
            async with asyncio.timeout(5):
                await waited.wait()
            assert (await publish_until_heard({"n": 2}))["n"] == 2
        assert waits == [0.5]  # the first wait of an outage, however long the bus has run
        assert [e["event"] for e in logs].count("event_bus_disconnected") == 1
    finally:
        await bus.stop()
        await admin.aclose()
