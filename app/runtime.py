"""Everything the app builds at start-up, in one place the routes reach through `deps`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil

from app.config import Settings

if TYPE_CHECKING:
    from app.channels.gate import Gate
from app.channels.events import EventBus
from app.channels.ws_hub import WebSocketHub
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService
from app.mesh.alerts import AlertLog
from app.mesh.keys import PublicKeySource
from app.mesh.leadership import Leader
from app.mesh.lifecycle import Lifecycle
from app.mesh.orchestrator import OrchestratorClient
from app.mesh.registry import RegistryClient
from app.ops.health import HealthMonitor
from app.ops.metrics import Metrics
from app.store.sessions import SessionStore


def _zero() -> int:
    return 0


@dataclass(slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    public_keys: PublicKeySource
    health: HealthMonitor
    process: psutil.Process
    store: SessionStore
    conversation: ConversationService
    hub: WebSocketHub
    bus: EventBus
    alerts: AlertLog
    leader: Leader
    gate: Gate
    lifecycle: Lifecycle | None = None
    orchestrator: OrchestratorClient | None = None
    registry: RegistryClient | None = None
    summarizer: Summarizer | None = None
    features: list[str] = field(default_factory=list)
    planner_name: str = "rules"
    store_backend: str = "sqlite"
    event_bus_backend: str = "in-process"
    active_connections: Callable[[], int] = _zero
    recent_sessions: int = 0
    """Sessions active in the last 15 minutes, refreshed by the health probe (no I/O in /state)."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    started_monotonic: float = field(default_factory=time.monotonic)

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)

    def active_sessions(self) -> int:
        return self.recent_sessions
