"""The mesh's wiring: one adapter per peer, the Registry's public key, the lifecycle, leadership."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from app import __version__
from app.config import Settings
from app.mesh.directory import DropletDirectory
from app.mesh.keys import PublicKeySource
from app.mesh.leadership import Leader, build_leader
from app.mesh.lifecycle import (
    ClaimedStore,
    DropletProfile,
    EventSink,
    Lifecycle,
    LifecycleTiming,
    TaskDuty,
    TaskRunner,
)
from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.mesh.registry import RegistryClient
from app.utils.http_transport import SharedTls

LeaderDuty = Callable[[], Coroutine[Any, Any, None]]
"""A loop only the leader runs (until cancelled), such as the watch checks."""

CAPABILITIES = (
    "chat",
    "natural_language_understanding",
    "conversation_memory",
    "task_execution",
    "voice_formatting",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshParts:
    """The peer adapters; None where the deployment does not configure the peer."""

    registry: RegistryClient | None
    orchestrator: OrchestratorClient | None
    directory: DropletDirectory | None
    public_keys: PublicKeySource

    async def aclose(self) -> None:
        """Close the peers' clients (their connection pools)."""
        for client in (self.orchestrator, self.registry):
            if client is not None:
                await client.aclose()


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text: str = value.get_secret_value()
    return text or None


def build_mesh(settings: Settings) -> MeshParts:
    # One TLS context for both peers' clients, made by the first https request: each would
    # otherwise load the CA bundle again, and start-up would pay for it (SharedTls).
    tls = SharedTls()
    registry: RegistryClient | None = None
    if settings.mesh_enabled or settings.registry_public_key_url:
        # The Registry's adapter also fetches the key for inbound JWTs, mesh or no mesh.
        registry = RegistryClient(
            base_url=settings.registry_url,
            api_key=settings.registry_key() or "",
            timeout=settings.peer_timeout_s,
            tls=tls,
            reset_timeout=settings.peer_breaker_reset_s,
        )
    public_keys = PublicKeySource(
        key_file=settings.registry_public_key_file,
        fetch=(
            partial(registry.fetch_public_key, url=settings.registry_public_key_url)
            if registry is not None and settings.registry_public_key_url
            else None
        ),
        refresh_interval=settings.registry_public_key_refresh_s,
    )
    public_keys.load_file()

    orchestrator: OrchestratorClient | None = None
    directory: DropletDirectory | None = None
    if settings.mesh_enabled:
        assert registry is not None
        orchestrator = OrchestratorClient(
            base_url=settings.orchestrator_url,
            credentials=OrchestratorCredentials(
                token=_secret(settings.orchestrator_token),
                private_key_path=settings.orchestrator_private_key_file,
                secret=_secret(settings.droplet_secret),
                registry=registry if settings.registry_key() else None,
            ),
            timeout=settings.peer_timeout_s,
            tls=tls,
            droplet_id=settings.droplet_id,
            reset_timeout=settings.peer_breaker_reset_s,
        )
        directory = DropletDirectory(
            registry=registry, orchestrator=orchestrator, ttl=settings.directory_ttl_s
        )
    return MeshParts(
        registry=registry, orchestrator=orchestrator, directory=directory, public_keys=public_keys
    )


def build_lifecycle(
    settings: Settings,
    mesh: MeshParts,
    *,
    run_task: TaskRunner,
    claims: ClaimedStore,
    event_sink: EventSink,
) -> Lifecycle | None:
    """Registration, heartbeats and assigned tasks; None when the mesh is off."""
    if mesh.registry is None or mesh.orchestrator is None:
        return None
    return Lifecycle(
        registry=mesh.registry if settings.registry_key() else None,
        orchestrator=mesh.orchestrator,
        profile=DropletProfile(
            droplet_id=settings.droplet_id,
            name=settings.droplet_name,
            steward=settings.steward,
            endpoint=settings.droplet_url,
            capabilities=CAPABILITIES,
            version=__version__,
            env=settings.environment.value,
        ),
        timing=LifecycleTiming(
            heartbeat_interval=settings.heartbeat_interval_s,
            poll_interval=settings.task_poll_interval_s,
            registration_backoff=(1.0, settings.registration_backoff_max_s),
        ),
        tasks=TaskDuty(runner=run_task, claimed=claims),
        event_sink=event_sink,
    )


def redis_url(settings: Settings) -> str | None:
    """The Redis behind EVENT_BUS_URL, shared by leadership and the rate limits; None without."""
    url = settings.event_bus_url or ""
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def build_leadership(
    settings: Settings, lifecycle: Lifecycle | None, *, duties: Sequence[LeaderDuty] = ()
) -> Leader:
    """One replica at a time runs the lifecycle and the other duties, such as checking the
    watches (every replica when there is no Redis)."""
    running: list[asyncio.Task[None]] = []

    async def elected() -> None:
        if lifecycle is not None:
            await lifecycle.start()
        running.extend(asyncio.create_task(duty(), name="leader-duty") for duty in duties)

    async def demoted() -> None:
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running.clear()
        if lifecycle is not None:
            await lifecycle.stop()

    return build_leader(
        url=redis_url(settings),
        on_elected=elected,
        on_demoted=demoted,
        ttl_s=settings.heartbeat_interval_s,
    )
