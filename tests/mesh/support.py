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
