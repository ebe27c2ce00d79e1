"""WebSocket chat: `/ws` streams ack, progress and the answer; mesh events arrive as they happen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.api.deps import RuntimeDep, chat_principal_from, check_rate, rate_limit_key
from app.api.errors import ApiError
from app.models.chat import MAX_MESSAGE_CHARS
from app.services.conversation import SessionAccessDenied, SessionQuotaExceeded, Turn
from app.services.runtime import Runtime
from app.services.ws_hub import Connection, WebSocketHub, frame
from app.utils.jwt import Principal

log = structlog.get_logger(__name__)

router = APIRouter(tags=["websocket"])

MAX_TURNS_IN_FLIGHT = 4
MAX_FRAME_CHARS = 16 * 1024
_KNOWN_TYPES = ("message", "confirm", "cancel", "ping", "follow")


def _origin_allowed(runtime: Runtime, origin: str | None, host: str | None) -> bool:
    # Non-browser clients (wscat, droplets) send no Origin; browsers always do. The page this
    # droplet serves itself is same-origin, whatever name the operator reaches it by.
    if origin is None:
        return True
    allowed = runtime.settings.cors_origins
    if "*" in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


@router.get("/ws/connections", summary="Live WebSocket connections on this instance")
async def connections(runtime: RuntimeDep) -> dict[str, int]:
    return {"active_connections": runtime.hub.count()}


@router.websocket("/ws")
async def chat_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
    if not _origin_allowed(runtime, origin, host):
        await websocket.close(code=1008, reason="origin not allowed")
        return
    try:
        principal = chat_principal_from(
            runtime, websocket.headers.get("authorization"), websocket.query_params.get("token")
        )
    except ApiError as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return
    await websocket.accept()
    hub = runtime.hub

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)

    conn = hub.register(send_text=websocket.send_text, close=close,
                        owner=principal.subject if principal.authenticated else None)
    runtime.metrics.ws_connections.set(hub.count())
    followed = websocket.query_params.get("session_id")
    if followed:
        hub.follow(conn, followed[:128])
    hub.send(conn, frame("welcome", conn.session_id, connection_id=conn.id,
                         droplet_id=runtime.settings.droplet_id,
                         message="Connected to the Chat Orchestrator. Say 'help' to begin."))
    in_flight: set[asyncio.Task[None]] = set()
    host = websocket.client.host if websocket.client else None
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is not None and len(text) > MAX_FRAME_CHARS:
                hub.send(conn, frame("error", conn.session_id,
                                     error=f"Frame too large (limit {MAX_FRAME_CHARS} characters)"))
                continue
            if text is None:
                hub.send(conn, frame("error", conn.session_id,
                                     error="Binary frames are not supported; send JSON text"))
                continue
            _handle_frame(runtime, hub, conn, principal, host, text, in_flight)
    except WebSocketDisconnect:
        pass
    finally:
        for task in in_flight:
            task.cancel()
        await hub.unregister(conn)
        runtime.metrics.ws_connections.set(hub.count())
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


def _handle_frame(
    runtime: Runtime,
    hub: WebSocketHub,
    conn: Connection,
    principal: Principal,
    host: str | None,
    text: str,
    in_flight: set[asyncio.Task[None]],
) -> None:
    def error(message: str, **extra: Any) -> None:
        hub.send(conn, frame("error", conn.session_id, error=message, **extra))

    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        error("Invalid JSON: send an object like "
              '{"type":"message","content":"hello","session_id":"..."}')
        return
    if not isinstance(data, dict):
        error("Each frame must be a JSON object with a 'type'")
        return
    kind = data.get("type")
    if kind not in _KNOWN_TYPES:
        error(f"Unknown frame type {kind!r}; expected one of: {', '.join(_KNOWN_TYPES)}")
        return
    if kind == "ping":
        hub.send(conn, frame("pong", conn.session_id))
        return
    session_id = data.get("session_id", conn.session_id)
    if session_id is not None and (
        not isinstance(session_id, str) or not 0 < len(session_id) <= 128
        or not all(c.isalnum() or c in "._:@-" for c in session_id)
    ):
        error("session_id must be 1 to 128 characters of letters, digits and . _ : @ -")
        return
    if kind == "follow":
        if not session_id:
            error("follow needs a session_id")
            return
        hub.follow(conn, session_id)
        hub.send(conn, frame("ack", session_id, received="follow"))
        return
    if kind == "message":
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            error("'content' must be a non-empty string")
            return
        content = content.strip()
        if len(content) > MAX_MESSAGE_CHARS:
            error(f"'content' must be at most {MAX_MESSAGE_CHARS} characters")
            return
    else:
        if not session_id:
            error(f"{kind} needs the session_id of the pending action")
            return
        content = "yes" if kind == "confirm" else "no"
    if len(in_flight) >= MAX_TURNS_IN_FLIGHT:
        error("Too many messages in flight on this connection; wait for an answer")
        return
    trace_id = str(uuid.uuid4())
    hub.send(conn, frame("ack", session_id, trace_id=trace_id, received=kind))
    task = asyncio.create_task(
        _run_turn(runtime, hub, conn, principal, host, content, session_id, trace_id)
    )
    in_flight.add(task)
    task.add_done_callback(in_flight.discard)


async def _run_turn(
    runtime: Runtime,
    hub: WebSocketHub,
    conn: Connection,
    principal: Principal,
    host: str | None,
    content: str,
    session_id: str | None,
    trace_id: str,
) -> None:
    try:
        await check_rate(runtime, rate_limit_key(principal, host))
    except ApiError as exc:
        hub.send(conn, frame("error", session_id, trace_id=trace_id, error=exc.message,
                             code="RATE_LIMITED", retry_after_s=exc.details["retry_after_s"]))
        return
    hub.send(conn, frame("typing", session_id, trace_id=trace_id))

    async def progress(step: str, data: dict[str, Any]) -> None:
        hub.send(conn, frame("progress", session_id, trace_id=trace_id, **data))

    turn = Turn(
        text=content,
        trace_id=trace_id,
        session_id=session_id,
        source="chat",
        channel="ws",
        actor=principal.subject,
        owner=principal.subject if principal.authenticated else None,
        can_write=principal.can("write"),
        origin=conn.id,
    )
    try:
        reply = await runtime.conversation.handle(turn, progress=progress)
    except SessionAccessDenied:
        hub.send(conn, frame("error", session_id, trace_id=trace_id,
                             error="This session belongs to another identity"))
        return
    except SessionQuotaExceeded as exc:
        hub.send(conn, frame("error", session_id, trace_id=trace_id,
                             error=f"Session limit reached ({exc.limit} per identity)"))
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        runtime.metrics.record_error()
        log.error("ws_turn_failed", error_type=type(exc).__name__, trace_id=trace_id,
                  exc_info=exc)
        hub.send(conn, frame("error", session_id, trace_id=trace_id,
                             error="The turn failed inside the Chat Orchestrator; try again"))
        return
    if conn.session_id is None or conn.session_id != reply.session_id:
        hub.follow(conn, reply.session_id)
    message = frame(
        "message", reply.session_id,
        role="assistant",
        content=reply.text,
        actions=reply.actions,
        pending_confirmation=reply.pending_confirmation,
        planner=reply.planner,
        notes=reply.notes,
        trace_id=reply.trace_id,
    )
    hub.send(conn, message)
    if runtime.summarizer is not None and any(a["status"] == "ok" for a in reply.actions):
        await _stream_summary(runtime, hub, conn, reply.session_id, reply.text, trace_id)


async def _stream_summary(
    runtime: Runtime, hub: WebSocketHub, conn: Connection, session_id: str, facts: str,
    trace_id: str,
) -> None:
    """A model's phrasing of the answer, piece by piece; the deterministic answer stays the
    record. Any model failure just ends the stream: the client already has the facts."""
    assert runtime.summarizer is not None
    pieces: list[str] = []
    try:
        async for piece in runtime.summarizer.summarize_stream(facts):
            pieces.append(piece)
            hub.send(conn, frame("summary_delta", session_id, trace_id=trace_id, content=piece))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("summary_failed", reason=type(exc).__name__, trace_id=trace_id)
    hub.send(conn, frame("summary", session_id, trace_id=trace_id, content="".join(pieces),
                         complete=bool(pieces)))
