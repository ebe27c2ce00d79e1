"""WebSocket chat: `/ws` streams ack, progress and the answer; mesh events arrive as they happen.

Every frame passes the same gate as REST: the connection's caller (checked at connect, and the
socket is closed when its token expires), rate limits per identity, session ids in the caller's
own namespace, and confirmations bound to the proposal they answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.channels.deps import (
    GateDep,
    HubDep,
    MetricsDep,
    OperatorAccess,
    SettingsDep,
    SummarizerDep,
    TurnServiceDep,
)
from app.channels.errors import ApiError
from app.channels.frames import FollowFrame, FrameError, MessageFrame, PingFrame, parse_frame
from app.channels.gate import Gate
from app.channels.ws_hub import Connection, WebSocketHub, frame
from app.config import Settings
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService, SessionAccessDenied
from app.domain.identity import SESSION_ID_RULE, Caller, session_key, valid_session_id
from app.ops.metrics import Metrics
from app.store.sessions import SessionQuotaExceeded

log = structlog.get_logger(__name__)

router = APIRouter(tags=["websocket"])

MAX_TURNS_IN_FLIGHT = 4
MAX_FRAME_CHARS = 16 * 1024
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_TOO_MANY = 4429


@dataclass(frozen=True, slots=True, kw_only=True)
class _Socket:
    """One connection and the services its turns use, handed to the frame handlers."""

    gate: Gate
    hub: WebSocketHub
    conn: Connection
    caller: Caller
    turns: ConversationService
    metrics: Metrics
    summarizer: Summarizer | None


def _origin_allowed(settings: Settings, origin: str | None, host: str | None) -> bool:
    # Non-browser clients (wscat, droplets) send no Origin; browsers always do. The page this
    # droplet serves itself is same-origin (Origin's host equals Host), whatever name the
    # operator reaches it by; any other origin must be listed in CORS_ORIGINS.
    if origin is None:
        return True
    allowed = settings.cors_origins
    if "*" in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


@router.get(
    "/ws/connections",
    summary="Live WebSocket connections on this instance",
    dependencies=[OperatorAccess],
)
async def connections(hub: HubDep) -> dict[str, int]:
    return {"active_connections": hub.count()}


@router.websocket("/ws")
async def chat_socket(
    websocket: WebSocket,
    settings: SettingsDep,
    gate: GateDep,
    hub: HubDep,
    turns: TurnServiceDep,
    metrics: MetricsDep,
    summarizer: SummarizerDep,
) -> None:
    origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
    if not _origin_allowed(settings, origin, host):
        await websocket.close(code=1008, reason="origin not allowed")
        return
    address = websocket.client.host if websocket.client else None
    try:
        caller = gate.chat_caller(
            authorization=websocket.headers.get("authorization"),
            query_token=websocket.query_params.get("token"),
            address=address,
        )
        gate.require(caller, "read", to="Talking to the Chat Orchestrator")
    except ApiError as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return
    await websocket.accept()
    if hub.count_for(caller.rate_key) >= settings.max_ws_per_identity:
        await websocket.close(
            code=CLOSE_TOO_MANY,
            reason=f"at most {settings.max_ws_per_identity} connections per identity",
        )
        return

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)

    conn = hub.register(send_text=websocket.send_text, close=close, owner=caller.rate_key)
    metrics.ws_connections.set(hub.count())
    socket = _Socket(
        gate=gate,
        hub=hub,
        conn=conn,
        caller=caller,
        turns=turns,
        metrics=metrics,
        summarizer=summarizer,
    )
    expiry = _close_at_expiry(conn, caller)
    followed = websocket.query_params.get("session_id")
    if followed is not None:
        if valid_session_id(followed):
            hub.follow(conn, session_key(caller.identity, followed), followed)
        else:
            hub.send(conn, frame("error", None, error=SESSION_ID_RULE))
    hub.send(
        conn,
        frame(
            "welcome",
            conn.session_id,
            connection_id=conn.id,
            droplet_id=settings.droplet_id,
            message="Connected to the Chat Orchestrator. Say 'help' to begin.",
        ),
    )
    in_flight: set[asyncio.Task[None]] = set()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if _expired(caller):
                await close(CLOSE_TOKEN_EXPIRED, "token expired; reconnect with a new token")
                break
            text = message.get("text")
            if text is not None and len(text) > MAX_FRAME_CHARS:
                hub.send(
                    conn,
                    frame(
                        "error",
                        conn.session_id,
                        error=f"Frame too large (limit {MAX_FRAME_CHARS} characters)",
                    ),
                )
                continue
            if text is None:
                hub.send(
                    conn,
                    frame(
                        "error",
                        conn.session_id,
                        error="Binary frames are not supported; send JSON text",
                    ),
                )
                continue
            _handle_frame(socket, text, in_flight)
    except WebSocketDisconnect:
        pass
    finally:
        if expiry is not None:
            expiry.cancel()
        for task in in_flight:
            task.cancel()
        await hub.unregister(conn)
        metrics.ws_connections.set(hub.count())
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


def _expired(caller: Caller) -> bool:
    return caller.expires_at is not None and time.time() >= caller.expires_at


def _close_at_expiry(conn: Connection, caller: Caller) -> asyncio.TimerHandle | None:
    """A socket lives no longer than the token that opened it."""
    if caller.expires_at is None:
        return None
    loop = asyncio.get_running_loop()
    delay = max(0.0, caller.expires_at - time.time())
    return loop.call_later(
        delay,
        lambda: loop.create_task(
            conn.close(CLOSE_TOKEN_EXPIRED, "token expired; reconnect with a new token")
        ),
    )


def _handle_frame(socket: _Socket, text: str, in_flight: set[asyncio.Task[None]]) -> None:
    hub, conn, caller = socket.hub, socket.conn, socket.caller

    def error(message: str, **extra: Any) -> None:
        hub.send(conn, frame("error", conn.session_id, error=message, **extra))

    try:
        incoming = parse_frame(text, session_id=conn.session_id)
    except FrameError as exc:
        error(str(exc))
        return
    if isinstance(incoming, PingFrame):
        hub.send(conn, frame("pong", conn.session_id))
        return
    session_id = incoming.session_id
    if isinstance(incoming, FollowFrame):
        # Only the caller's own namespace can be followed: another identity's session id
        # names a different (empty) session here, so nothing of theirs is ever streamed.
        hub.follow(conn, session_key(caller.identity, incoming.session_id), incoming.session_id)
        hub.send(conn, frame("ack", incoming.session_id, received="follow"))
        return
    if isinstance(incoming, MessageFrame):
        content, proposal_id = incoming.content, None
    else:
        content, proposal_id = incoming.text, incoming.proposal_id
    if len(in_flight) >= MAX_TURNS_IN_FLIGHT:
        error("Too many messages in flight on this connection; wait for an answer")
        return
    trace_id = str(uuid.uuid4())
    hub.send(conn, frame("ack", session_id, trace_id=trace_id, received=incoming.type))
    task = asyncio.create_task(_run_turn(socket, content, session_id, trace_id, proposal_id))
    in_flight.add(task)
    task.add_done_callback(in_flight.discard)


async def _run_turn(
    socket: _Socket,
    content: str,
    session_id: str | None,
    trace_id: str,
    proposal_id: str | None,
) -> None:
    gate, hub, conn, caller = socket.gate, socket.hub, socket.conn, socket.caller
    try:
        await gate.throttle(caller, "turn")
        turn = gate.turn(
            caller,
            channel="ws",
            text=content,
            trace_id=trace_id,
            session_id=session_id,
            origin=conn.id,
            proposal_id=proposal_id,
        )
    except ApiError as exc:
        extra = {"retry_after_s": exc.details["retry_after_s"]} if exc.status_code == 429 else {}
        hub.send(
            conn,
            frame(
                "error",
                session_id,
                trace_id=trace_id,
                error=exc.message,
                code=exc.code.value,
                **extra,
            ),
        )
        return
    hub.send(conn, frame("typing", session_id, trace_id=trace_id))

    async def progress(step: str, data: dict[str, Any]) -> None:
        hub.send(conn, frame("progress", session_id, trace_id=trace_id, **data))

    try:
        reply = await socket.turns.handle(turn, progress=progress)
    except SessionAccessDenied:
        hub.send(
            conn,
            frame(
                "error",
                session_id,
                trace_id=trace_id,
                code="NOT_FOUND",
                error=f"No session {session_id!r}",
            ),
        )
        return
    except SessionQuotaExceeded as exc:
        hub.send(
            conn,
            frame(
                "error",
                session_id,
                trace_id=trace_id,
                code="RATE_LIMITED",
                error=f"Session limit reached ({exc.limit} per identity)",
            ),
        )
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        socket.metrics.record_error()
        log.error("ws_turn_failed", error_type=type(exc).__name__, trace_id=trace_id, exc_info=exc)
        hub.send(
            conn,
            frame(
                "error",
                session_id,
                trace_id=trace_id,
                error="The turn failed inside the Chat Orchestrator; try again",
            ),
        )
        return
    if conn.session_key != reply.session_key:
        hub.follow(conn, reply.session_key, reply.session_id)
    message = frame(
        "message",
        reply.session_id,
        role="assistant",
        content=reply.text,
        actions=reply.actions,
        pending_confirmation=reply.pending_confirmation,
        planner=reply.planner,
        notes=reply.notes,
        trace_id=reply.trace_id,
    )
    hub.send(conn, message)
    if socket.summarizer is not None and any(a["status"] == "ok" for a in reply.actions):
        await _stream_summary(socket.summarizer, hub, conn, reply.session_id, reply.text, trace_id)


async def _stream_summary(
    summarizer: Summarizer,
    hub: WebSocketHub,
    conn: Connection,
    session_id: str,
    facts: str,
    trace_id: str,
) -> None:
    """A model's phrasing of the answer, piece by piece; the deterministic answer stays the
    record. Any model failure just ends the stream: the client already has the facts."""
    pieces: list[str] = []
    try:
        async for piece in summarizer.summarize_stream(facts):
            pieces.append(piece)
            hub.send(conn, frame("summary_delta", session_id, trace_id=trace_id, content=piece))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("summary_failed", reason=type(exc).__name__, trace_id=trace_id)
    hub.send(
        conn,
        frame(
            "summary", session_id, trace_id=trace_id, content="".join(pieces), complete=bool(pieces)
        ),
    )
