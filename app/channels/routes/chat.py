"""REST chat channels: /api/chat for people, /api/process for droplets, /api/analyze."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request

from app.channels.deps import (
    GateDep,
    OrchestratorDep,
    SettingsDep,
    ThrottledChatCaller,
    TurnServiceDep,
)
from app.channels.errors import ApiError
from app.channels.gate import valid_session_id
from app.channels.schemas import (
    Action,
    Analysis,
    AnalyzedCall,
    AnalyzeRequest,
    AnalyzeResponse,
    ChatRequest,
    ChatResponse,
)
from app.conversation.service import Reply
from app.domain.udc import Envelope, normalise_droplet_ref
from app.mesh.delivery import deliver_reply
from app.utils.time import isoformat_z

router = APIRouter(prefix="/api", tags=["chat"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "CHAT_AUTH=jwt and no valid token"},
    403: {"description": "The token lacks the 'read' permission"},
    404: {"description": "No such session for this identity"},
    429: {"description": "Too many requests or sessions (Retry-After says when to retry)"},
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
    body: ChatRequest,
    request: Request,
    turns: TurnServiceDep,
    gate: GateDep,
    caller: ThrottledChatCaller,
) -> ChatResponse:
    turn = gate.turn(
        caller,
        channel="rest",
        text=body.message,
        trace_id=_trace_id(request),
        session_id=body.session_id,
        proposal_id=body.proposal_id,
    )
    return _chat_response(await turns.handle(turn))


def _payload_text(envelope: Envelope, field: str, *, limit: int, required: bool) -> str | None:
    value = envelope.payload.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(
            422,
            f"payload.{field} must be a non-empty string",
            details={"field": f"payload.{field}"},
        )
    if len(value.strip()) > limit:
        raise ApiError(
            422,
            f"payload.{field} must be at most {limit} characters",
            details={"field": f"payload.{field}"},
        )
    return value.strip()


@router.post(
    "/process",
    summary="A turn from another droplet (the Voice droplet's envelope)",
    responses=_ERRORS,
)
async def process(
    envelope: Annotated[Envelope, Body()],
    request: Request,
    turns: TurnServiceDep,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    gate: GateDep,
    caller: ThrottledChatCaller,
) -> Envelope:
    field = "message" if "message" in envelope.payload else "text"
    message = _payload_text(envelope, field, limit=5000, required=True)
    assert message is not None
    source = normalise_droplet_ref(envelope.source)
    metadata = envelope.payload.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    session_id = envelope.payload.get("session_id")
    if session_id is not None and not valid_session_id(session_id):
        raise ApiError(
            422,
            "payload.session_id must be 1 to 128 characters of letters, digits and . _ : @ -",
            details={"field": "payload.session_id"},
        )
    if session_id is None:
        # One session per (source, user) in the caller's namespace; a caller without a user id
        # gets a session per trace, so two anonymous callers never share a conversation.
        who = str(user_id) if user_id else f"trace-{envelope.trace_id}"
        session_id = "".join(
            c if c.isalnum() or c in "._:@-" else "_" for c in f"droplet-{source}:{who}"
        )[:128]
    proposal = envelope.payload.get("proposal_id")
    is_voice = source == "18" or envelope.payload.get("channel") == "voice"
    target = normalise_droplet_ref(envelope.route_back or envelope.source)
    turn = gate.turn(
        caller,
        channel="process",
        text=message,
        trace_id=envelope.trace_id,
        session_id=session_id,
        source="voice" if is_voice else "chat",
        proposal_id=proposal if isinstance(proposal, str) and proposal else None,
        route_back=target,
    )
    reply = await turns.handle(turn)
    if settings.route_back_delivery == "orchestrator" and orchestrator:
        await deliver_reply(
            orchestrator=orchestrator,
            target=target,
            text=reply.text,
            session_id=reply.session_id,
            trace_id=reply.trace_id,
        )
    return Envelope(
        trace_id=envelope.trace_id,
        source=str(settings.droplet_id),
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


@router.post("/analyze", summary="Parse a message without executing anything", responses=_ERRORS)
async def analyze(
    body: AnalyzeRequest, turns: TurnServiceDep, gate: GateDep, caller: ThrottledChatCaller
) -> AnalyzeResponse:
    gate.require(caller, "read", to="Analysing a message")
    plan = await turns.analyze(body.text)
    return AnalyzeResponse(
        analysis=Analysis(
            intent=plan.intent,
            tool_calls=[AnalyzedCall(tool=c.tool, args=c.args) for c in plan.calls],
            missing=plan.missing,
            confidence=plan.confidence,
            planner=plan.planner,
            writes=[c.tool for c in plan.calls if turns.tools.writes(c.tool)],
            answer=plan.answer,
        ),
        timestamp=isoformat_z(),
    )
