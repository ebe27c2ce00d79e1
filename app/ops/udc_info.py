"""Builds the UDC information bodies from what is really configured and running."""

from __future__ import annotations

import psutil

from app import __version__
from app.domain.udc import (
    CapabilitiesResponse,
    DependenciesResponse,
    DependencyStatus,
    StateResponse,
)
from app.ops.health import CheckState
from app.runtime import Runtime

_PEERS = (("orchestrator", 10, "Orchestrator"), ("registry", 1, "Registry"))


def _dep_status(state: CheckState | None) -> str:
    return {
        "ok": "connected",
        "failing": "unavailable",
        "disabled": "disabled",
    }.get(state or "unknown", "unknown")


def capabilities(runtime: Runtime) -> CapabilitiesResponse:
    features = list(runtime.features)
    return CapabilitiesResponse(
        version=__version__,
        features=features,
        dependencies=["registry", "orchestrator"],
        metadata={
            "droplet_id": runtime.settings.droplet_id,
            "name": runtime.settings.droplet_name,
            "steward": runtime.settings.steward,
            "environment": runtime.settings.environment.value,
            "planner": runtime.planner_name,
            "session_store": runtime.store_backend,
            "event_bus": runtime.event_bus_backend,
            "endpoints": [
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
            ],
        },
    )


def state(runtime: Runtime) -> StateResponse:
    snap = runtime.metrics.snapshot()
    process = runtime.process
    return StateResponse(
        cpu_percent=process.cpu_percent(interval=None),
        memory_mb=round(process.memory_info().rss / (1024 * 1024), 2),
        uptime_seconds=runtime.uptime_seconds(),
        requests_total=snap.requests_total,
        requests_per_minute=snap.requests_per_minute,
        errors_last_hour=snap.errors_last_hour,
        active_sessions=runtime.active_sessions(),
        active_connections=runtime.active_connections(),
        average_response_time_ms=snap.average_response_time_ms,
    )


def dependencies(runtime: Runtime) -> DependenciesResponse:
    checks = {c.name: c for c in runtime.health.checks()}
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
