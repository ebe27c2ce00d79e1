"""UDC messaging: inbound `/message` and `/heartbeat`, outbound `/send` through the Orchestrator."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from app.api.deps import (
    AUTH_RESPONSES,
    CurrentPrincipal,
    RuntimeDep,
    authenticate,
    bearer_token,
    client_in_allowlist,
)
from app.api.errors import ApiError
from app.models.mesh import MeshEvent
from app.models.udc import Envelope, ErrorCode, normalise_droplet_ref
from app.services.conversation import Turn
from app.services.peers import PeerError, PeerNotFound, PeerUnavailable
from app.utils.time import isoformat_z, utcnow

router = APIRouter(tags=["udc messaging"])


def _inbound_principal(request: Request, runtime: RuntimeDep) -> str:
    """Who sent a /message: a verified token, or (policy permitting) an allow-listed network."""
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        return authenticate(runtime, token).subject
    host = request.client.host if request.client else None
    if (
        runtime.settings.inbound_message_auth == "jwt_or_allowlist"
        and client_in_allowlist(runtime, host)
    ):
        return f"network:{host}"
    return authenticate(runtime, None).subject  # raises the standard 401


@router.post(
    "/message",
    summary="Inbound UDC envelope (policy: INBOUND_MESSAGE_AUTH)",
    responses={**AUTH_RESPONSES, 202: {"description": "Event or other message accepted"}},
)
async def inbound_message(
    envelope: Annotated[Envelope, Body()], request: Request, runtime: RuntimeDep
) -> Any:
    sender = _inbound_principal(request, runtime)
    source = normalise_droplet_ref(envelope.source)
    text = envelope.payload.get("message", envelope.payload.get("text"))
    if envelope.message_type in ("query", "command") and isinstance(text, str) and text.strip():
        turn = Turn(
            text=text.strip()[:5000],
            trace_id=envelope.trace_id,
            session_id=f"droplet-{source}:message"[:128],
            source="voice" if source == "18" else "chat",
            channel="message",
            actor=sender,
            owner=None,
            can_write=True,
        )
        reply = await runtime.conversation.handle(turn)
        return Envelope(
            trace_id=envelope.trace_id,
            source=str(runtime.settings.droplet_id),
            target=source,
            message_type="response",
            payload={"response": reply.text, "session_id": reply.session_id,
                     "actions": reply.actions},
        )
    if envelope.message_type == "event":
        await runtime.alerts.add(_event_from(envelope, source))
    return JSONResponse(
        {"status": "accepted", "trace_id": envelope.trace_id, "timestamp": isoformat_z()},
        status_code=202,
    )


def _event_from(envelope: Envelope, source: str) -> MeshEvent:
    payload = envelope.payload
    kind = str(payload.get("event_type") or payload.get("event") or payload.get("type")
               or "message")
    severity = payload.get("severity")
    summary = payload.get("summary") or payload.get("message") or f"{kind} from droplet {source}"
    return MeshEvent(
        kind=kind[:64],
        severity=severity if severity in ("info", "warning", "critical") else "info",
        summary=str(summary)[:500],
        at=utcnow(),
        source=f"droplet-{source}",
        droplet_id=int(source) if source.isdigit() else None,
        data={k: v for k, v in payload.items() if isinstance(k, str)},
    )


class SendRequest(BaseModel):
    target: str = Field(description='"droplet-1", "1" or 1', max_length=64)
    message_type: str = Field(default="command", pattern=r"^(status|event|command|query)$")
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("target", mode="before")
    @classmethod
    def _target_text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class SendResult(BaseModel):
    sent: bool
    target_droplet_id: int
    trace_id: str | None = None


@router.post("/send", summary="Relay a message through the Orchestrator",
             responses={**AUTH_RESPONSES, 502: {"description": "Delivery failed"},
                        503: {"description": "Orchestrator unavailable"}})
async def send(body: SendRequest, request: Request, runtime: RuntimeDep,
               _principal: CurrentPrincipal) -> SendResult:
    target = normalise_droplet_ref(body.target)
    if not target.isdigit() or int(target) < 1:
        raise ApiError(422, "target must be a droplet id such as 1, \"1\" or \"droplet-1\"",
                       details={"field": "target"})
    if runtime.orchestrator is None:
        raise ApiError(503, "The mesh is not configured on this droplet",
                       code=ErrorCode.DEPENDENCY_UNAVAILABLE)
    trace_id = str(request.scope.get("state", {}).get("trace_id", ""))
    try:
        receipt = await runtime.orchestrator.send(
            int(target), body.message_type, body.payload, trace_id=trace_id  # type: ignore[arg-type]
        )
    except PeerNotFound as exc:
        raise ApiError(404, exc.message, code=ErrorCode.NOT_FOUND) from exc
    except PeerUnavailable as exc:
        raise ApiError(502, exc.message, code=ErrorCode.DEPENDENCY_UNAVAILABLE) from exc
    except PeerError as exc:
        raise ApiError(502, exc.message, code=ErrorCode.DEPENDENCY_UNAVAILABLE) from exc
    return SendResult(sent=receipt.delivered, target_droplet_id=receipt.target_droplet_id,
                      trace_id=receipt.trace_id)


class HeartbeatAck(BaseModel):
    received: bool
    droplet_id: str
    next_heartbeat_deadline: float
    timestamp: str


@router.post("/heartbeat", summary="Receive another droplet's heartbeat",
             responses=AUTH_RESPONSES)
async def heartbeat(
    envelope: Annotated[Envelope, Body()], runtime: RuntimeDep, principal: CurrentPrincipal
) -> HeartbeatAck:
    source = normalise_droplet_ref(envelope.source)
    status = envelope.payload.get("status", "active")
    if status not in ("active", "inactive", "error"):
        raise ApiError(422, "payload.status must be active, inactive or error",
                       details={"field": "payload.status"})
    if status != "active":
        await runtime.alerts.add(MeshEvent(
            kind="droplet_health_changed",
            severity="warning" if status == "inactive" else "critical",
            summary=f"droplet {source} reports status {status}",
            at=utcnow(), source=f"droplet-{source}",
            droplet_id=int(source) if source.isdigit() else None,
            data={"status": status},
        ))
    interval = runtime.settings.heartbeat_interval_s
    return HeartbeatAck(received=True, droplet_id=source,
                        next_heartbeat_deadline=time.time() + interval * 1.5,
                        timestamp=isoformat_z())
