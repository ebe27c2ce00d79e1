"""The UDC endpoints every droplet serves."""

from __future__ import annotations

import platform

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import __version__
from app.channels.deps import AUTH_RESPONSES, CurrentCaller, OperatorAccess, RuntimeDep
from app.domain.udc import (
    CapabilitiesResponse,
    DependenciesResponse,
    HealthResponse,
    StateResponse,
    VersionResponse,
)
from app.ops import udc_info
from app.utils.time import isoformat_z

router = APIRouter(tags=["udc"])


@router.get("/health", summary="Liveness and status (public, answered from memory)")
async def health(runtime: RuntimeDep) -> HealthResponse:
    status, failing = runtime.health.status()
    message = (
        "All systems operational"
        if not failing
        else "Degraded: " + ", ".join(f"{name} unavailable" for name in failing)
    )
    return HealthResponse(
        id=runtime.settings.droplet_id,
        name=runtime.settings.droplet_name,
        steward=runtime.settings.steward,
        status=status,
        endpoint=runtime.settings.droplet_url,
        version=__version__,
        uptime_seconds=runtime.uptime_seconds(),
        updated_at=isoformat_z(),
        message=message,
        checks={c.name: c.state for c in runtime.health.checks()},
    )


@router.get(
    "/capabilities", summary="What this droplet can do, as configured", responses=AUTH_RESPONSES
)
async def capabilities(runtime: RuntimeDep, _caller: CurrentCaller) -> CapabilitiesResponse:
    return udc_info.capabilities(runtime)


@router.get("/state", summary="Live metrics", responses=AUTH_RESPONSES)
async def state(runtime: RuntimeDep, _caller: CurrentCaller) -> StateResponse:
    return udc_info.state(runtime)


@router.get(
    "/dependencies",
    summary="Peers and backing services, from cached probes",
    responses=AUTH_RESPONSES,
)
async def dependencies(runtime: RuntimeDep, _caller: CurrentCaller) -> DependenciesResponse:
    return udc_info.dependencies(runtime)


@router.get("/version", summary="Version, build and environment", responses=AUTH_RESPONSES)
async def version(runtime: RuntimeDep, _caller: CurrentCaller) -> VersionResponse:
    return VersionResponse(
        version=__version__,
        build=runtime.settings.build,
        environment=runtime.settings.environment.value,
        python=platform.python_version(),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (OPERATOR_ENDPOINTS)",
    include_in_schema=False,
    dependencies=[OperatorAccess],
)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
