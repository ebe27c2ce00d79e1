"""UDC messaging: inbound `/message` and `/heartbeat`, outbound `/send` through the Orchestrator."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from app.channels.deps import (
    AUTH_RESPONSES,
    AlertsDep,
    CurrentCaller,
    GateDep,
    OrchestratorDep,
    SessionsDep,
    SettingsDep,
    TurnServiceDep,
    client_address,
)
from app.channels.errors import ApiError
from app.channels.gate import forbidden
from app.domain.identity import Caller
from app.domain.mesh import MeshEvent
from app.domain.session import AuditEntry
from app.domain.udc import Envelope, ErrorCode, normalise_droplet_ref
from app.mesh.peers import PeerError, PeerNotFound, PeerUnavailable
from app.utils.time import isoformat_z, utcnow

log = structlog.get_logger(__name__)

router = APIRouter(tags=["udc messaging"])

EVENT_SUMMARY_CHARS = 300
EVENT_FIELDS = 20
EVENT_VALUE_CHARS = 200


def _claims_source(caller: Caller, source: str) -> None:
    """A token-carrying sender may only speak for itself: droplet N sends as droplet N."""
    if caller.authenticated and (caller.identity.kind != "droplet" or caller.identity.id != source):
        raise forbidden(
            f"This token identifies {caller.identity}, not droplet {source}: "
            "a droplet may only send its own events and heartbeats"
        )


@router.post(
    "/message",
    summary="Inbound UDC envelope (policy: INBOUND_MESSAGE_AUTH)",
    responses={
        **AUTH_RESPONSES,
        202: {"description": "Event or other message accepted"},
        429: {"description": "Too many messages from this sender"},
    },
)
async def inbound_message(
    envelope: Annotated[Envelope, Body()],
    request: Request,
    settings: SettingsDep,
    turns: TurnServiceDep,
    alerts: AlertsDep,
    gate: GateDep,
) -> Any:
    source = normalise_droplet_ref(envelope.source)
    caller = await gate.inbound_caller(
        authorization=request.headers.get("authorization"),
        address=client_address(request),
        source=source,
    )
    text = envelope.payload.get("message", envelope.payload.get("text"))
    if envelope.message_type in ("query", "command") and isinstance(text, str) and text.strip():
        await gate.throttle(caller, "turn")
        # A droplet's own conversation, in its own namespace; a tokenless sender gets one that
        # only it can continue, and (read-only) can never propose a change.
        turn = gate.turn(
            caller,
            channel="message",
            text=text.strip()[:5000],
            trace_id=envelope.trace_id,
            session_id=f"droplet-{source}:message"[:128] if _safe(source) else "message",
            source="voice" if source == "18" else "chat",
        )
        reply = await turns.handle(turn)
        return Envelope(
            trace_id=envelope.trace_id,
            source=str(settings.droplet_id),
            target=source,
            message_type="response",
            payload={
                "response": reply.text,
                "session_id": reply.session_id,
                "actions": reply.actions,
            },
        )
    if envelope.message_type == "event":
        _claims_source(caller, source)
        await gate.throttle(caller, "mesh")
        await alerts.add(_event_from(envelope, source, caller), bucket=_bucket(caller))
    return JSONResponse(
        {"status": "accepted", "trace_id": envelope.trace_id, "timestamp": isoformat_z()},
        status_code=202,
    )


def _safe(source: str) -> bool:
    return bool(source) and all(c.isalnum() or c in "._:@-" for c in source)


def _bucket(caller: Caller) -> str:
    """Where an event is kept: per verified droplet, or per sending address when unverified,
    so no sender can evict another's alerts."""
    return str(caller.identity) if caller.authenticated else f"unverified:{caller.address}"


def _bounded(value: object) -> object:
    if isinstance(value, str):
        return value[:EVENT_VALUE_CHARS]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return json.dumps(value, default=str)[:EVENT_VALUE_CHARS]


def _event_from(envelope: Envelope, source: str, caller: Caller) -> MeshEvent:
    payload = envelope.payload
    kind = str(
        payload.get("event_type") or payload.get("event") or payload.get("type") or "message"
    )
    severity = payload.get("severity")
    summary = payload.get("summary") or payload.get("message") or f"{kind} from droplet {source}"
    data = {
        k[:64]: _bounded(v) for k, v in list(payload.items())[:EVENT_FIELDS] if isinstance(k, str)
    }
    return MeshEvent(
        kind=kind[:64],
        severity=severity if severity in ("info", "warning", "critical") else "info",
        summary=str(summary)[:EVENT_SUMMARY_CHARS],
        at=utcnow(),
        source=f"droplet-{source[:32]}",
        droplet_id=int(source) if source.isdigit() and len(source) < 10 else None,
        data=data,
        verified=caller.authenticated,
        via=None if caller.authenticated else caller.address,
    )


class SendRequest(BaseModel):
    target: str = Field(description='"droplet-1", "1" or 1', max_length=64)
    message_type: Literal["status", "event", "command", "query"] = "command"
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


@router.post(
    "/send",
    summary="Relay a message through the Orchestrator (needs 'write')",
    responses={
        **AUTH_RESPONSES,
        502: {"description": "Delivery failed"},
        503: {"description": "Orchestrator unavailable"},
    },
)
async def send(
    body: SendRequest,
    request: Request,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    sessions: SessionsDep,
    gate: GateDep,
    caller: CurrentCaller,
) -> SendResult:
    # Relaying speaks with droplet 12's credentials: a change to the mesh like any other.
    gate.require(caller, "write", to="Relaying a message")
    await gate.throttle(caller, "mesh")
    target = normalise_droplet_ref(body.target)
    if not target.isdigit() or not 1 <= int(target) <= 10**9:
        raise ApiError(
            422,
            'target must be a droplet id such as 1, "1" or "droplet-1"',
            details={"field": "target"},
        )
    if int(target) == settings.droplet_id:
        raise ApiError(
            422,
            "target is this droplet itself; send it a /message instead",
            details={"field": "target"},
        )
    if orchestrator is None:
        raise ApiError(
            503, "The mesh is not configured on this droplet", code=ErrorCode.DEPENDENCY_UNAVAILABLE
        )
    trace_id = str(request.scope.get("state", {}).get("trace_id", ""))
    started = time.perf_counter()
    outcome, detail = "error", None
    try:
        receipt = await orchestrator.send(
            int(target),
            body.message_type,
            body.payload,
            trace_id=trace_id,
        )
        outcome = "ok"
    except PeerNotFound as exc:
        detail = exc.message
        raise ApiError(404, exc.message, code=ErrorCode.NOT_FOUND) from exc
    except (PeerUnavailable, PeerError) as exc:
        detail = exc.message
        raise ApiError(502, exc.message, code=ErrorCode.DEPENDENCY_UNAVAILABLE) from exc
    finally:
        # Who relayed what, under the trace id the receiver sees: the real caller is kept.
        await sessions.record_audit(
            [
                AuditEntry(
                    actor=str(caller.identity),
                    source="send",
                    tool="relay_message",
                    args={"target_droplet_id": int(target), "message_type": body.message_type},
                    outcome="ok" if outcome == "ok" else "error",
                    detail=detail,
                    trace_id=trace_id,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            ]
        )
    return SendResult(
        sent=receipt.delivered,
        target_droplet_id=receipt.target_droplet_id,
        trace_id=receipt.trace_id,
    )


class HeartbeatAck(BaseModel):
    received: bool
    droplet_id: str
    next_heartbeat_deadline: float
    timestamp: str


@router.post(
    "/heartbeat",
    summary="Receive another droplet's heartbeat (its own token)",
    responses=AUTH_RESPONSES,
)
async def heartbeat(
    envelope: Annotated[Envelope, Body()],
    settings: SettingsDep,
    alerts: AlertsDep,
    gate: GateDep,
    caller: CurrentCaller,
) -> HeartbeatAck:
    source = normalise_droplet_ref(envelope.source)
    _claims_source(caller, source)
    await gate.throttle(caller, "mesh")
    status = envelope.payload.get("status", "active")
    if status not in ("active", "inactive", "error"):
        raise ApiError(
            422,
            "payload.status must be active, inactive or error",
            details={"field": "payload.status"},
        )
    if status != "active":
        await alerts.add(
            MeshEvent(
                kind="droplet_health_changed",
                severity="warning" if status == "inactive" else "critical",
                summary=f"droplet {source} reports status {status}",
                at=utcnow(),
                source=f"droplet-{source}",
                droplet_id=int(source) if source.isdigit() else None,
                data={"status": status},
            ),
            bucket=_bucket(caller),
        )
    interval = settings.heartbeat_interval_s
    return HeartbeatAck(
        received=True,
        droplet_id=source,
        next_heartbeat_deadline=time.time() + interval * 1.5,
        timestamp=isoformat_z(),
    )
