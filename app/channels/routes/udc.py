"""The UDC endpoints every droplet serves."""

from __future__ import annotations

import platform

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import __version__
from app.channels.deps import (
    AUTH_RESPONSES,
    AboutDep,
    CurrentCaller,
    HealthDep,
    HubDep,
    MetricsDep,
    OperatorAccess,
    OptionalCaller,
    SettingsDep,
    VitalsDep,
)
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
async def health(settings: SettingsDep, health: HealthDep, vitals: VitalsDep) -> HealthResponse:
    status, failing = health.status()
    message = (
        "All systems operational"
        if not failing
        else "Degraded: " + ", ".join(f"{name} unavailable" for name in failing)
    )
    return HealthResponse(
        id=settings.droplet_id,
        name=settings.droplet_name,
        steward=settings.steward,
        status=status,
        endpoint=settings.droplet_url,
        version=__version__,
        uptime_seconds=vitals.uptime_seconds(),
        updated_at=isoformat_z(),
        message=message,
        checks={c.name: c.state for c in health.checks()},
    )


# HEAD too: `curl -I /health` is the deployment guide's troubleshooting step, and load balancers
# probe with HEAD. Out of the schema: one operation per path and method there.
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)


@router.get(
    "/capabilities",
    summary="What this droplet can do (public; the configuration details with a valid token)",
    responses=AUTH_RESPONSES,
)
async def capabilities(
    settings: SettingsDep, about: AboutDep, caller: OptionalCaller
) -> CapabilitiesResponse:
    # Open like the real peers' /capabilities; what is withheld without a token, and why, is
    # said in udc_info.capabilities.
    return udc_info.capabilities(settings, about, verified=caller is not None)


@router.get("/state", summary="Live metrics", responses=AUTH_RESPONSES)
async def state(
    metrics: MetricsDep, vitals: VitalsDep, hub: HubDep, _caller: CurrentCaller
) -> StateResponse:
    return udc_info.state(metrics=metrics, vitals=vitals, active_connections=hub.count())


@router.get(
    "/dependencies",
    summary="Peers and backing services, from cached probes",
    responses=AUTH_RESPONSES,
)
async def dependencies(health: HealthDep, _caller: CurrentCaller) -> DependenciesResponse:
    return udc_info.dependencies(health)


@router.get("/version", summary="Version, build and environment", responses=AUTH_RESPONSES)
async def version(settings: SettingsDep, _caller: CurrentCaller) -> VersionResponse:
    return VersionResponse(
        version=__version__,
        build=settings.build,
        environment=settings.environment.value,
        python=platform.python_version(),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (OPERATOR_ENDPOINTS)",
    include_in_schema=False,
    dependencies=[OperatorAccess],
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
