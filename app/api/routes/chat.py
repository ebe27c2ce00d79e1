"""REST chat channels: /api/chat for people, /api/process for droplets, /api/analyze."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request

from app.api.deps import ChatPrincipal, RateLimitedPrincipal, RuntimeDep
from app.api.errors import ApiError
from app.models.chat import (
    Action,
    Analysis,
    AnalyzedCall,
    AnalyzeRequest,
    AnalyzeResponse,
    ChatRequest,
    ChatResponse,
)
from app.models.udc import Envelope, normalise_droplet_ref
from app.services.conversation import Reply, Turn
from app.services.delivery import deliver_reply
from app.services.tools import get_spec
from app.utils.time import isoformat_z

router = APIRouter(prefix="/api", tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "CHAT_AUTH=jwt and no valid token"},
    429: {"description": "Too many chat turns (Retry-After says when to retry)"},
    403: {"description": "The session belongs to someone else"},
    422: {"description": "Invalid request (standard error body)"},
}


def _trace_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("trace_id", ""))


def _chat_response(reply: Reply) -> ChatResponse:
    return ChatResponse(
        response=reply.text,
        session_id=reply.session_id,
        trace_id=reply.trace_id,
        timestamp=reply.timestamp,
        actions=[Action(tool=a["tool"], status=a["status"]) for a in reply.actions],
        pending_confirmation=reply.pending_confirmation,
        planner=reply.planner,
        notes=reply.notes,
    )


@router.post("/chat", summary="One chat turn", responses=_ERRORS)
async def chat(
    body: ChatRequest, request: Request, runtime: RuntimeDep, principal: RateLimitedPrincipal
) -> ChatResponse:
    turn = Turn(
        text=body.message,
        trace_id=_trace_id(request),
        session_id=body.session_id,
        source="chat",
        channel="rest",
        actor=principal.subject,
        owner=principal.subject if principal.authenticated else None,
        can_write=principal.can("write"),
    )
    reply = await runtime.conversation.handle(turn)
    return _chat_response(reply)


@router.post(
    "/process",
    summary="A turn from another droplet (the Voice droplet's envelope)",
    responses=_ERRORS,
)
async def process(
    envelope: Annotated[Envelope, Body()],
    request: Request,
    runtime: RuntimeDep,
    principal: RateLimitedPrincipal,
) -> Envelope:
    message = envelope.payload.get("message", envelope.payload.get("text"))
    if not isinstance(message, str) or not message.strip():
        raise ApiError(422, "payload.message must be a non-empty string",
                       details={"field": "payload.message"})
    if len(message.strip()) > 5000:
        raise ApiError(422, "payload.message must be at most 5000 characters",
                       details={"field": "payload.message"})
    source = normalise_droplet_ref(envelope.source)
    metadata = envelope.payload.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    session_id = envelope.payload.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        # One session per (source, user); a caller without a user id gets a session per
        # trace, so two anonymous callers never share a conversation.
        who = str(user_id) if user_id else f"trace-{envelope.trace_id}"
        session_id = f"droplet-{source}:{who}"[:128]
    is_voice = source == "18" or envelope.payload.get("channel") == "voice"
    turn = Turn(
        text=message.strip(),
        trace_id=envelope.trace_id,
        session_id=session_id,
        source="voice" if is_voice else "chat",
        channel="process",
        actor=principal.subject if principal.authenticated else f"droplet-{source}",
        owner=principal.subject if principal.authenticated else None,
        can_write=principal.can("write"),
    )
    reply = await runtime.conversation.handle(turn)
    target = normalise_droplet_ref(envelope.route_back or envelope.source)
    if runtime.settings.route_back_delivery == "orchestrator" and runtime.orchestrator:
        await deliver_reply(orchestrator=runtime.orchestrator, target=target, text=reply.text,
                            session_id=reply.session_id, trace_id=reply.trace_id)
    return Envelope(
        trace_id=envelope.trace_id,
        source=str(runtime.settings.droplet_id),
        target=target,
        message_type="response",
        payload={
            "response": reply.text,
            "session_id": reply.session_id,
            "actions": reply.actions,
            "pending_confirmation": reply.pending_confirmation,
        },
        timestamp=isoformat_z(),
    )


@router.post("/analyze", summary="Parse a message without executing anything",
             responses=_ERRORS)
async def analyze(
    body: AnalyzeRequest, runtime: RuntimeDep, _principal: ChatPrincipal
) -> AnalyzeResponse:
    plan = await runtime.conversation.analyze(body.text)
    return AnalyzeResponse(
        analysis=Analysis(
            intent=plan.intent,
            tool_calls=[AnalyzedCall(tool=c.tool, args=c.args) for c in plan.calls],
            missing=plan.missing,
            confidence=plan.confidence,
            planner=plan.planner,
            writes=[c.tool for c in plan.calls if (s := get_spec(c.tool)) and s.writes],
            answer=plan.answer,
        ),
        timestamp=isoformat_z(),
    )
