"""Helpers for tests that run against the sandbox mesh (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.mesh.registry import RegistryClient
from app.utils.retry import RetryPolicy
from sandbox.testing import MeshHandle

FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


class Clock:
    """A clock a test moves by hand (breakers, token lifetimes, caches)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Ticks:
    """An injected sleep for a loop: each call blocks until the test lets one round through, so
    a test moves a periodic loop round by round and never waits for real."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._go = asyncio.Semaphore(0)
        self._slept = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        async with self._slept:
            self.asked.append(seconds)
            self._slept.notify_all()
        await self._go.acquire()

    async def settled(self) -> None:
        """Wait until the loop has finished its current round and sleeps."""
        await self._sleeps(1)

    async def round(self) -> None:
        """Let the sleeping loop run one more round, and wait until it sleeps again."""
        await self.settled()
        done = len(self.asked)
        self._go.release()
        await self._sleeps(done + 1)

    async def _sleeps(self, count: int) -> None:
        async with asyncio.timeout(5), self._slept:
            await self._slept.wait_for(lambda: len(self.asked) >= count)


@dataclass
class Peers:
    registry: RegistryClient
    orchestrator: OrchestratorClient

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.orchestrator.aclose()


def peers_for(
    handle: MeshHandle, *, droplet_id: int = 12, timeout: float = 2.0, **breaker: Any
) -> Peers:
    registry = RegistryClient(
        base_url=handle.registry_url,
        api_key=handle.registry_key,
        timeout=timeout,
        retry_policy=FAST_RETRY,
        **breaker,
    )
    orchestrator = OrchestratorClient(
        base_url=handle.orchestrator_url,
        credentials=OrchestratorCredentials(private_key_path=handle.private_key_path),
        timeout=timeout,
        droplet_id=droplet_id,
        retry_policy=FAST_RETRY,
        **breaker,
    )
    return Peers(registry=registry, orchestrator=orchestrator)


async def sandbox_post(base_url: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        response = await client.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def set_fault(base_url: str, mode: str, delay: float | None = None) -> None:
    body: dict[str, Any] = {"mode": mode}
    if delay is not None:
        body["delay"] = delay
    await sandbox_post(base_url, "/_sandbox/fault", body)


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, within: float = 10.0, every: float = 0.05
) -> None:
    """Wait until `check()` holds; fail with a clear message when it never does."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)
