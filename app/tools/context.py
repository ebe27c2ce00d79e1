"""What a tool runs against: the mesh adapters, the caller, and the conversation it serves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.domain.identity import Caller
from app.domain.mesh import MeshEvent
from app.domain.watch import Watch, WatchFilter
from app.mesh.directory import DropletDirectory
from app.mesh.orchestrator import OrchestratorClient


class MeshOff(Exception):
    """The mesh is not configured on this droplet (MESH_ENABLED=false)."""

    def __init__(self) -> None:
        super().__init__("the mesh is not configured on this droplet (MESH_ENABLED=false)")


AlertSource = Callable[[int], list[MeshEvent]]


@dataclass(frozen=True, slots=True)
class Mesh:
    """The peers as tools see them: the adapters (or MeshOff when not configured)."""

    directory_or_none: DropletDirectory | None
    orchestrator_or_none: OrchestratorClient | None
    alerts: AlertSource
    droplet_id: int = 12

    @property
    def orchestrator(self) -> OrchestratorClient:
        if self.orchestrator_or_none is None:
            raise MeshOff
        return self.orchestrator_or_none

    @property
    def directory(self) -> DropletDirectory:
        if self.directory_or_none is None:
            raise MeshOff
        return self.directory_or_none


class WatchBook(Protocol):
    """Where watches live (the store), as the watch tools see it."""

    async def add(self, watch: Watch, *, limit: int) -> Watch: ...

    async def active(self, *, owner: str) -> list[Watch]: ...

    async def remove(self, *, owner: str, which: WatchFilter) -> list[Watch]: ...


@dataclass(frozen=True, slots=True)
class RunContext:
    mesh: Mesh
    caller: Caller
    trace_id: str
    session: dict[str, Any] = field(default_factory=dict)
    """The session's context (what "it" refers to, the last write, the last turn)."""
    session_key: str | None = None
    source: str = "chat"
    """chat or voice: where a watch's notification goes."""
    route_back: str | None = None
    """The droplet that asked through the mesh, to deliver a watch's notification back to."""
    watches: WatchBook | None = None
    watch_ttl_s: float = 24 * 3600
    max_watches: int = 20
