"""Helpers for tests that run against the sandbox mesh (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import structlog
from structlog.typing import EventDict

from app.domain.mesh import Droplet
from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.mesh.registry import RegistryClient
from app.utils.retry import RetryPolicy
from sandbox.testing import MeshHandle
from tests.fakes.clock import Clock as Clock  # the mesh tests import it from here

FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


async def no_wait(seconds: float) -> None:
    """The adapters' retry sleep in tests: retries happen at once, nobody waits for real."""


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
        sleep=no_wait,
        **breaker,
    )
    orchestrator = OrchestratorClient(
        base_url=handle.orchestrator_url,
        credentials=OrchestratorCredentials(private_key_path=handle.private_key_path),
        timeout=timeout,
        droplet_id=droplet_id,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
        **breaker,
    )
    return Peers(registry=registry, orchestrator=orchestrator)


async def sandbox_post(base_url: str, path: str, body: Any = None) -> Any:
    async with httpx2.AsyncClient(base_url=base_url, timeout=5.0) as client:
        response = await client.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def set_fault(base_url: str, mode: str, delay: float | None = None) -> None:
    body: dict[str, Any] = {"mode": mode}
    if delay is not None:
        body["delay"] = delay
    await sandbox_post(base_url, "/_sandbox/fault", body)


class Logs:
    """Structlog events as they happen, which a test can wait for instead of polling."""

    def __init__(self) -> None:
        self.entries: list[EventDict] = []
        self._loop = asyncio.get_running_loop()
        self._grew = asyncio.Event()

    def __call__(self, _logger: Any, method: str, event: EventDict) -> EventDict:
        # Threads log too (the sandbox's servers); wake the test's loop safely from any of them.
        self.entries.append({**event, "log_level": method})
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._grew.set)
        raise structlog.DropEvent

    def events(self) -> list[str]:
        return [str(e["event"]) for e in self.entries]

    def count(self, name: str, **fields: Any) -> int:
        return len(self.matching(name, **fields))

    def matching(self, name: str, **fields: Any) -> list[EventDict]:
        return [
            e
            for e in list(self.entries)
            if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(self, check: Callable[[], bool], *, within: float = 10.0) -> None:
        """Until `check()` holds; each new log line wakes it up (`within` only bounds a failure)."""
        async with asyncio.timeout(within):
            while True:
                self._grew.clear()
                if check():
                    return
                await self._grew.wait()

    async def event(self, name: str, *, times: int = 1, **fields: Any) -> EventDict:
        """The `times`-th event called `name` whose fields match, once it has been logged."""
        await self.wait_for(lambda: self.count(name, **fields) >= times)
        return self.matching(name, **fields)[times - 1]


@contextlib.contextmanager
def watching_logs() -> Iterator[Logs]:
    """Like structlog's `capture_logs`, but a test can await what it is waiting for."""
    logs = Logs()
    processors = structlog.get_config()["processors"]
    saved = processors.copy()
    processors.clear()
    processors.append(logs)
    structlog.configure(processors=processors)
    try:
        yield logs
    finally:
        processors.clear()
        processors.extend(saved)
        structlog.configure(processors=processors)


class CountingSleep:
    """A real sleep that counts its calls by duration, so a test can wait for loop rounds."""

    def __init__(self) -> None:
        self.calls: dict[float, int] = {}
        self._slept = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        async with self._slept:
            self.calls[seconds] = self.calls.get(seconds, 0) + 1
            self._slept.notify_all()
        await asyncio.sleep(seconds)

    async def rounds(self, seconds: float, count: int, *, within: float = 10.0) -> None:
        """Wait until `count` more sleeps of `seconds` have started."""
        target = self.calls.get(seconds, 0) + count
        async with asyncio.timeout(within), self._slept:
            await self._slept.wait_for(lambda: self.calls.get(seconds, 0) >= target)


async def droplet_row(orchestrator: OrchestratorClient, droplet_id: int) -> Droplet:
    """One droplet as the Orchestrator lists it (its `GET /droplets/{id}` is broken)."""
    for droplet in await orchestrator.list_droplets():
        if droplet.id == droplet_id:
            return droplet
    raise AssertionError(f"droplet {droplet_id} is not registered with the Orchestrator")
