"""Typed dependencies: who is calling (through the gate), and the services a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from app.channels.gate import Gate
from app.channels.ws_hub import WebSocketHub
from app.config import Settings
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService
from app.domain.identity import Caller
from app.mesh.alerts import AlertLog
from app.mesh.orchestrator import OrchestratorClient
from app.ops.health import HealthMonitor
from app.ops.metrics import Metrics
from app.ops.udc_info import About, Vitals
from app.store.sessions import SessionStore

# One provider per service, each reading the component start-up built (`app.state.components`,
# see app.wiring). A route names only what it uses, and a test replaces exactly one service with
# `app.dependency_overrides[get_sessions] = ...`. Providers take an HTTPConnection so the same
# ones serve HTTP routes and the WebSocket.
#
# Providers are `async def` so FastAPI runs them on the loop: a plain `def` would cost a
# thread-pool hop per dependency per request on the hot path.


async def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.components.settings
    return settings


async def get_gate(conn: HTTPConnection) -> Gate:
    gate: Gate = conn.app.state.components.gate
    return gate


async def get_sessions(conn: HTTPConnection) -> SessionStore:
    store: SessionStore = conn.app.state.components.store
    return store


async def get_turn_service(conn: HTTPConnection) -> ConversationService:
    service: ConversationService = conn.app.state.components.conversation
    return service


async def get_hub(conn: HTTPConnection) -> WebSocketHub:
    hub: WebSocketHub = conn.app.state.components.hub
    return hub


async def get_metrics(conn: HTTPConnection) -> Metrics:
    metrics: Metrics = conn.app.state.components.metrics
    return metrics


async def get_health(conn: HTTPConnection) -> HealthMonitor:
    health: HealthMonitor = conn.app.state.components.health
    return health


async def get_vitals(conn: HTTPConnection) -> Vitals:
    vitals: Vitals = conn.app.state.components.vitals
    return vitals


async def get_about(conn: HTTPConnection) -> About:
    about: About = conn.app.state.components.about
    return about


async def get_alerts(conn: HTTPConnection) -> AlertLog:
    alerts: AlertLog = conn.app.state.components.alerts
    return alerts


async def get_orchestrator(conn: HTTPConnection) -> OrchestratorClient | None:
    """The Orchestrator's adapter; None when the mesh is not configured."""
    orchestrator: OrchestratorClient | None = conn.app.state.components.mesh.orchestrator
    return orchestrator


async def get_summarizer(conn: HTTPConnection) -> Summarizer | None:
    """The model that phrases answers on the WebSocket; None without LLM_SUMMARIZE."""
    summarizer: Summarizer | None = conn.app.state.components.summarizer
    return summarizer


SettingsDep = Annotated[Settings, Depends(get_settings)]
GateDep = Annotated[Gate, Depends(get_gate)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
TurnServiceDep = Annotated[ConversationService, Depends(get_turn_service)]
HubDep = Annotated[WebSocketHub, Depends(get_hub)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
HealthDep = Annotated[HealthMonitor, Depends(get_health)]
VitalsDep = Annotated[Vitals, Depends(get_vitals)]
AboutDep = Annotated[About, Depends(get_about)]
AlertsDep = Annotated[AlertLog, Depends(get_alerts)]
OrchestratorDep = Annotated[OrchestratorClient | None, Depends(get_orchestrator)]
SummarizerDep = Annotated[Summarizer | None, Depends(get_summarizer)]


def client_address(request: Request) -> str | None:
    """The client's address, after trusted-proxy resolution (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else None


async def require_caller(request: Request, gate: GateDep) -> Caller:
    """A verified token (the UDC endpoints)."""
    return await gate.api_caller(
        authorization=request.headers.get("authorization"), address=client_address(request)
    )


CurrentCaller = Annotated[Caller, Depends(require_caller)]


async def optional_caller(request: Request, gate: GateDep) -> Caller | None:
    """/capabilities: None without an Authorization header; a token that is sent must verify
    (a wrong token is still a 401, so a client learns its token is bad)."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        return None
    return await gate.api_caller(authorization=authorization, address=client_address(request))


OptionalCaller = Annotated[Caller | None, Depends(optional_caller)]

AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid bearer token (standard error body)"},
    403: {"description": "The token lacks the permission (standard error body)"},
}


async def require_chat_caller(request: Request, gate: GateDep) -> Caller:
    """A chat channel's caller: a token with CHAT_AUTH=jwt, the developer with `none`."""
    return await gate.chat_caller(
        authorization=request.headers.get("authorization"),
        query_token=None,
        address=client_address(request),
    )


ChatCaller = Annotated[Caller, Depends(require_chat_caller)]


async def throttled_chat_caller(caller: ChatCaller, gate: GateDep) -> Caller:
    await gate.throttle(caller, "turn")
    return caller


ThrottledChatCaller = Annotated[Caller, Depends(throttled_chat_caller)]


async def require_admin(caller: ChatCaller, gate: GateDep) -> Caller:
    gate.require_admin(caller, to="This operation")
    return caller


AdminCaller = Annotated[Caller, Depends(require_admin)]


async def operator_caller(request: Request, settings: SettingsDep, gate: GateDep) -> None:
    """/metrics and /ws/connections: public, or (OPERATOR_ENDPOINTS=admin) an admin token."""
    if settings.effective_operator_endpoints == "public":
        return
    caller = await gate.api_caller(
        authorization=request.headers.get("authorization"), address=client_address(request)
    )
    gate.require(caller, "admin", to="This operator endpoint")


OperatorAccess = Depends(operator_caller)
