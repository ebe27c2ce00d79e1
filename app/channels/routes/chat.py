"""REST chat channels: /api/chat for people, /api/process for droplets, /api/analyze."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.channels.deps import (
    GateDep,
    OrchestratorDep,
    SettingsDep,
    ThrottledChatCaller,
    TurnServiceDep,
)
from app.channels.errors import ApiError
from app.channels.gate import Gate, valid_session_id
from app.channels.schemas import (
    Action,
    Analysis,
    AnalyzedCall,
    AnalyzeRequest,
    AnalyzeResponse,
    ChatRequest,
    ChatResponse,
)
from app.conversation.service import ConversationService, Reply
from app.domain.identity import Caller
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


async def _chat_turn(
    body: ChatRequest,
    *,
    caller: Caller,
    gate: Gate,
    turns: ConversationService,
    trace_id: str,
    admitted: bool = False,
) -> ChatResponse:
    turn = gate.turn(
        caller,
        channel="rest",
        text=body.message,
        trace_id=trace_id,
        session_id=body.session_id,
        proposal_id=body.proposal_id,
    )
    return _chat_response(await turns.handle(turn, admitted=admitted))


@router.post("/chat", summary="One chat turn", responses=_ERRORS)
async def chat(
    body: ChatRequest,
    request: Request,
    turns: TurnServiceDep,
    gate: GateDep,
    caller: ThrottledChatCaller,
) -> ChatResponse:
    """The documented operation. The shipped app answers it with `ChatEndpoint` (below),
    which runs the same steps without FastAPI's per-request machinery; this route serves an
    app built without that endpoint, and the parity tests compare the two."""
    return await _chat_turn(
        body, caller=caller, gate=gate, turns=turns, trace_id=_trace_id(request)
    )


# ---- POST /api/chat as a plain ASGI endpoint ----------------------------------------------

ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]
_JSON_TYPE = re.compile(r"^application/([^;\s]+\+)?json\s*(;|$)", re.IGNORECASE)


class ChatEndpoint:
    """POST /api/chat without FastAPI's dependency resolution and response re-validation
    (together about a fifth of a read turn's CPU, docs/performance.md).

    The steps and their order are FastAPI's, so every answer is the one the route above
    gives: the body is read (413 past the limit) and decoded as JSON when the content type
    says JSON (422 json_invalid), then the caller is verified (401/403) and throttled (429),
    then the body is validated (422 with the fields), then the turn runs. Every exception goes
    to the app's own handlers: one error format whichever path answered.
    """

    def __init__(
        self,
        *,
        gate: Gate,
        turns: ConversationService,
        handlers: Mapping[Any, ExceptionHandler],
        route: Any,
    ) -> None:
        self._gate = gate
        self._turns = turns
        self._handlers = handlers
        self._route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self._route  # the metrics' route label, as the router would set it
        request = Request(scope, receive)
        try:
            response: Response = await self._answer(request, scope)
        except Exception as exc:
            handled = self._handler_for(exc)(request, exc)
            response = await handled if inspect.isawaitable(handled) else handled
        await response(scope, receive, send)

    async def _answer(self, request: Request, scope: Scope) -> Response:
        # The loop budget is asked before anything else, not by `handle` after the body, the
        # caller and the rate limit: under a saturated load one group commit answers dozens of
        # clients, they all send again at once, and those first steps of theirs ran in one loop
        # iteration (docs/performance.md, the fourteenth session).
        await self._turns.admit()
        try:
            raw = await request.body()
        except HTTPException:
            raise  # the body limit's 413
        except Exception as exc:  # the client went away mid-body, ...: as FastAPI answers
            raise HTTPException(400, "There was an error parsing the body") from exc
        data: Any = None
        if raw:
            content_type = request.headers.get("content-type")
            data = raw
            if content_type and _JSON_TYPE.match(content_type):
                try:
                    data = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise RequestValidationError(
                        [
                            {
                                "type": "json_invalid",
                                "loc": ("body", exc.pos),
                                "msg": "JSON decode error",
                                "input": {},
                                "ctx": {"error": exc.msg},
                            }
                        ],
                        body=exc.doc,
                    ) from exc
                except Exception as exc:  # too deep (RecursionError), bad UTF-8: as FastAPI
                    raise HTTPException(400, "There was an error parsing the body") from exc
        client = scope.get("client")
        caller = await self._gate.chat_caller(
            authorization=request.headers.get("authorization"),
            query_token=None,
            address=client[0] if client else None,
        )
        await self._gate.throttle(caller, "turn")
        if not raw:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        try:
            # from_attributes: FastAPI's mode, so a non-object body gets its wording too.
            body = ChatRequest.model_validate(data, from_attributes=True)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from exc
        answer = await _chat_turn(
            body,
            caller=caller,
            gate=self._gate,
            turns=self._turns,
            trace_id=_trace_id(request),
            admitted=True,
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    def _handler_for(self, exc: Exception) -> ExceptionHandler:
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        raise exc  # no handler at all (not the shipped app): let the server answer 500


class ChatPath:
    """Sends POST /api/chat to `endpoint`, everything else to the app behind it. Added inside
    the request middleware and CORS, so trace ids, body limits, headers, logs and metrics are
    the same for both."""

    def __init__(self, app: ASGIApp, *, endpoint: ASGIApp, path: str = "/api/chat") -> None:
        self.app = app
        self._endpoint = endpoint
        self._path = path

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and scope["path"] == self._path and scope["method"] == "POST":
            return self._endpoint(scope, receive, send)
        return self.app(scope, receive, send)


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
