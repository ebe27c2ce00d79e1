"""Leader election on the local Redis (127.0.0.1:6379), one loop round at a time."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from app.mesh.leadership import RedisLeader
from tests.conftest import free_port
from tests.mesh.support import Ticks

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TTL = 30.0


class Instance:
    """One droplet 12 competing for the lock; its loop moves only when the test says so."""

    def __init__(self, key: str) -> None:
        self.redis = Redis.from_url(REDIS_URL, retry=Retry(NoBackoff(), 0))
        self.ticks = Ticks()
        self.duties: list[str] = []
        self.leader = RedisLeader(
            redis=self.redis,
            on_elected=self.elected,
            on_demoted=self.demoted,
            key=key,
            ttl_s=TTL,
            sleep=self.ticks,
        )

    async def elected(self) -> None:
        self.duties.append("elected")

    async def demoted(self) -> None:
        self.duties.append("demoted")

    async def start(self) -> None:
        """Start, and wait until the first round is over."""
        await self.leader.start()
        await self.ticks.settled()


@pytest.fixture
async def election() -> AsyncIterator[Any]:
    key = f"test:leader:{uuid.uuid4().hex}"
    admin = Redis.from_url(REDIS_URL)
    made: list[Instance] = []

    def make() -> Instance:
        made.append(Instance(key))
        return made[-1]

    yield make, admin, key
    for instance in made:
        await instance.leader.stop()
    await admin.delete(key)
    await admin.aclose()


async def test_one_leader_and_a_takeover_when_its_lock_is_gone(election: Any) -> None:
    make, admin, key = election
    a, b = make(), make()
    await a.start()
    await b.start()
    assert (a.leader.is_leader, b.leader.is_leader) == (True, False)
    assert a.duties == ["elected"] and b.duties == []
    assert 0 < await admin.pttl(key) <= TTL * 1000

    await b.ticks.round()  # the lock is held: b keeps waiting
    assert not b.leader.is_leader
    await admin.pexpire(key, 5000)
    await a.ticks.round()  # the holder resets its lock to a full TTL
    assert await admin.pttl(key) > 5000

    # a dies without a word (its loop never runs again): its lock expires.
    await admin.delete(key)
    await b.ticks.round()
    assert b.leader.is_leader and b.duties == ["elected"]
    # Should a come back, it finds the lock taken and steps down.
    with capture_logs() as logs:
        await a.ticks.round()
    assert not a.leader.is_leader and a.duties == ["elected", "demoted"]
    assert [e.get("reason") for e in logs if e["event"] == "leader_demoted"] == ["lock lost"]


async def test_a_leader_that_cannot_reach_redis_steps_down(election: Any) -> None:
    make, _admin, _key = election
    a = make()
    await a.start()
    assert a.leader.is_leader
    # Redis vanishes for this instance: its connections drop, and where it was nothing listens.
    reachable = a.redis.connection_pool
    a.redis.connection_pool = ConnectionPool(host="127.0.0.1", port=free_port())
    await reachable.disconnect()
    with capture_logs() as logs:
        await a.ticks.round()
    assert not a.leader.is_leader and a.duties == ["elected", "demoted"]
    assert [e.get("reason") for e in logs if e["event"] == "leader_demoted"] == [
        "redis unreachable"
    ]


async def test_stopping_releases_the_lock_for_the_next_leader(election: Any) -> None:
    make, admin, key = election
    a, b = make(), make()
    await a.start()
    await b.start()
    await a.leader.stop()
    assert a.duties == ["elected", "demoted"]
    assert await admin.exists(key) == 0
    await b.ticks.round()
    assert b.leader.is_leader
