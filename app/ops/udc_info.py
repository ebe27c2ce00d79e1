"""Builds the UDC information bodies from what is really configured and running."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from app import __version__
from app.config import Settings
from app.domain.udc import (
    CapabilitiesResponse,
    DependenciesResponse,
    DependencyStatus,
    StateResponse,
)
from app.ops.health import CheckState, HealthMonitor
from app.ops.metrics import Metrics

_PEERS = (("orchestrator", 10, "Orchestrator"), ("registry", 1, "Registry"))


def _dep_status(state: CheckState | None) -> str:
    return {
        "ok": "connected",
        "failing": "unavailable",
        "disabled": "disabled",
    }.get(state or "unknown", "unknown")


@dataclass(frozen=True, slots=True, kw_only=True)
class About:
    """What this deployment is built with, fixed at start-up (for /capabilities)."""

    features: tuple[str, ...]
    public_features: tuple[str, ...]
    """The features every deployment has, shown without a token (see `capabilities`)."""
    planner: str
    session_store: str
    event_bus: str


class Vitals:
    """The process's own figures for /health and /state, read from memory (no I/O per request).

    `recent_sessions` is refreshed by the session store's health probe, so /state never queries
    the database.
    """

    def __init__(
        self, *, process: psutil.Process, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.process = process
        self.recent_sessions = 0
        self._clock = clock
        self._started = clock()

    def uptime_seconds(self) -> float:
        return round(self._clock() - self._started, 3)


# /capabilities answers without a token, as the Registry's and the Orchestrator's do and as the
# deployment guide's post-deploy check expects. Without a verified token it says only what is
# public anyway (who we are, the UDC endpoints, what any deployment of droplet 12 can do). These
# need a token, because they describe this deployment's configuration and help an attacker aim:
# - the environment (a development instance is a softer target);
# - the planner (which model vendor reads operator text: prompt-injection and cost attacks);
# - the session store and event bus backends (PostgreSQL? Redis? the infrastructure behind us);
# - configuration-dependent features: whether chat needs a token at all (`chat_authentication`
#   absent says "talk to me anonymously") and whether a model phrases answers (`llm_summaries`).
_ENDPOINTS = (
    "/health",
    "/capabilities",
    "/state",
    "/dependencies",
    "/version",
    "/message",
    "/send",
    "/heartbeat",
    "/api/chat",
    "/api/process",
    "/api/analyze",
    "/api/sessions",
    "/ws",
)


def capabilities(settings: Settings, about: About, *, verified: bool) -> CapabilitiesResponse:
    """The whole description for a verified caller; the public part for anyone else."""
    metadata: dict[str, object] = {
        "droplet_id": settings.droplet_id,
        "name": settings.droplet_name,
        "steward": settings.steward,
        "endpoints": list(_ENDPOINTS),
    }
    features = list(about.features)
    if verified:
        metadata |= {
            "environment": settings.environment.value,
            "planner": about.planner,
            "session_store": about.session_store,
            "event_bus": about.event_bus,
        }
    else:
        features = [f for f in features if f in about.public_features]
    return CapabilitiesResponse(
        version=__version__,
        features=features,
        dependencies=["registry", "orchestrator"],
        metadata=metadata,
    )


def state(*, metrics: Metrics, vitals: Vitals, active_connections: int) -> StateResponse:
    snap = metrics.snapshot()
    process = vitals.process
    return StateResponse(
        cpu_percent=process.cpu_percent(interval=None),
        memory_mb=round(process.memory_info().rss / (1024 * 1024), 2),
        uptime_seconds=vitals.uptime_seconds(),
        requests_total=snap.requests_total,
        requests_per_minute=snap.requests_per_minute,
        errors_last_hour=snap.errors_last_hour,
        active_sessions=vitals.recent_sessions,
        active_connections=active_connections,
        average_response_time_ms=snap.average_response_time_ms,
    )


def dependencies(health: HealthMonitor) -> DependenciesResponse:
    checks = {c.name: c for c in health.checks()}
    required = []
    missing = []
    for key, droplet_id, name in _PEERS:
        check = checks.get(key)
        status = _dep_status(check.state if check else None)
        required.append(
            DependencyStatus.model_validate(
                {
                    "id": droplet_id,
                    "name": name,
                    "status": status,
                    "detail": check.detail if check else None,
                }
            )
        )
        if status in ("unavailable", "disabled"):
            missing.append(name)
    optional = [
        DependencyStatus.model_validate(
            {"name": name, "status": _dep_status(check.state), "detail": check.detail}
        )
        for name, check in checks.items()
        if name not in {key for key, _, _ in _PEERS}
    ]
    return DependenciesResponse(required=required, optional=optional, missing=missing)


def new_process_probe() -> psutil.Process:
    process = psutil.Process()
    process.cpu_percent(interval=None)  # primes the counter; the first reading is meaningless
    return process
