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
    from app.api.gate import Gate
from app.services.alerts import AlertLog
from app.services.conversation import ConversationService
from app.services.events import EventBus
from app.services.health import HealthMonitor
from app.services.keys import PublicKeySource
from app.services.leadership import Leader
from app.services.lifecycle import Lifecycle
from app.services.memory import SessionStore
from app.services.metrics import Metrics
from app.services.orchestrator import OrchestratorClient
from app.services.reasoning.llm_common import Summarizer
from app.services.registry import RegistryClient
from app.services.tokens import TokenProvider
from app.services.ws_hub import WebSocketHub


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
    tokens: TokenProvider | None = None
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
