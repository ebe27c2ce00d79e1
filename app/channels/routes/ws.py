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
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import structlog
from fastapi import APIRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.channels.deps import HubDep, OperatorAccess
from app.channels.errors import ApiError, store_failure
from app.channels.frames import FollowFrame, FrameError, MessageFrame, PingFrame, parse_frame
from app.channels.gate import Gate
from app.channels.ws_hub import Connection, WebSocketHub, frame
from app.channels.ws_protocol import WRITE_NOW
from app.config import Settings
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService, SessionAccessDenied
from app.domain.identity import SESSION_ID_RULE, Caller, session_key, valid_session_id
from app.domain.udc import ErrorCode
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


class _Outlet:
    """How the hub writes to one socket: the raw ASGI `send`, nothing else of the request.

    It references only `send`, never the hub's `Connection`, so a closed socket's objects form
    no cycle and are freed at once by reference counting (the GC may have frozen them)."""

    __slots__ = ("_send", "closed")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.closed = False

    async def send_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


_DECIDING_HEADERS = frozenset({b"origin", b"host", b"authorization"})


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers a socket is decided by; nothing of the request is kept after.
    A repeated header counts once, its first value (as Starlette's `Headers.get`)."""
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers", ()):
        if key in _DECIDING_HEADERS and key not in found:
            found[key] = value.decode("latin-1")
    return found


class ChatSocket:
    """`/ws` as a plain ASGI app, built once with the services every socket uses.

    Not a FastAPI route: FastAPI's dependency solving, its exit stacks and the middleware
    between the server and the router stay suspended for a socket's whole life (~12 KiB each,
    issue 17), while a socket needs none of them after the handshake. `SocketPath` serves it
    ahead of that stack; the gate, the limits and the frames are the same as a route's."""

    def __init__(
        self,
        *,
        settings: Settings,
        gate: Gate,
        hub: WebSocketHub,
        turns: ConversationService,
        metrics: Metrics,
        summarizer: Summarizer | None,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.hub = hub
        self.turns = turns
        self.metrics = metrics
        self.summarizer = summarizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings, gate, hub = self.settings, self.gate, self.hub
        if (await receive())["type"] != "websocket.connect":
            return
        outlet = _Outlet(send)
        headers = _headers(scope)
        if not _origin_allowed(settings, headers.get(b"origin"), headers.get(b"host")):
            await outlet.close(1008, "origin not allowed")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), True))
        client = scope.get("client")
        try:
            caller = await gate.chat_caller(
                authorization=headers.get(b"authorization"),
                query_token=query.get("token"),
                address=client[0] if client else None,
            )
            gate.require(caller, "read", to="Talking to the Chat Orchestrator")
        except ApiError as exc:
            await outlet.close(1008, exc.message[:120])
            return
        del headers
        await send({"type": "websocket.accept"})
        if hub.count_for(caller.rate_key) >= settings.max_ws_per_identity:
            await outlet.close(
                CLOSE_TOO_MANY,
                f"at most {settings.max_ws_per_identity} connections per identity",
            )
            return
        conn = hub.register(
            send_text=outlet.send_text,
            close=outlet.close,
            owner=caller.rate_key,
            write_now=scope.get("extensions", {}).get(WRITE_NOW),
        )
        self.metrics.ws_connections.set(hub.count())
        expiry = _close_at_expiry(conn, caller)
        followed = query.get("session_id")
        del query
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
        # Made on the first frame the client sends: most sockets only listen.
        socket: _Socket | None = None
        in_flight: set[asyncio.Task[None]] | None = None
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    outlet.closed = True
                    break
                if _expired(caller):
                    await outlet.close(
                        CLOSE_TOKEN_EXPIRED, "token expired; reconnect with a new token"
                    )
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
                if socket is None or in_flight is None:
                    in_flight = set()
                    socket = _Socket(
                        gate=gate,
                        hub=hub,
                        conn=conn,
                        caller=caller,
                        turns=self.turns,
                        metrics=self.metrics,
                        summarizer=self.summarizer,
                    )
                _handle_frame(socket, text, in_flight)
        finally:
            if expiry is not None:
                expiry.cancel()
            for task in in_flight or ():
                task.cancel()
            await hub.unregister(conn)
            self.metrics.ws_connections.set(hub.count())
            await outlet.close(1000, "")


class SocketPath:
    """Serves one WebSocket path with `endpoint`, everything else with the app behind it.

    Added as the innermost of the outer middleware (after ProxyHeadersMiddleware, so the client
    address is already the trusted one). `__call__` returns the endpoint's coroutine rather than
    awaiting it, so this layer keeps no frame of its own alive while a socket is open."""

    def __init__(self, app: ASGIApp, *, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self._path = path
        self._endpoint = endpoint

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket" and scope["path"] == self._path:
            return self._endpoint(scope, receive, send)
        return self.app(scope, receive, send)


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
        _send_error(hub, conn, session_id, trace_id, exc.message, code=exc.code.value, **extra)
        return
    hub.send(conn, frame("typing", session_id, trace_id=trace_id))

    async def progress(step: str, data: dict[str, Any]) -> None:
        hub.send(conn, frame("progress", session_id, trace_id=trace_id, **data))

    try:
        reply = await socket.turns.handle(turn, progress=progress)
    except SessionAccessDenied:
        _send_error(hub, conn, session_id, trace_id, f"No session {session_id!r}", code="NOT_FOUND")
        return
    except SessionQuotaExceeded as exc:
        limit = f"Session limit reached ({exc.limit} per identity)"
        _send_error(hub, conn, session_id, trace_id, limit, code="RATE_LIMITED")
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        socket.metrics.record_error()
        failure = store_failure(exc)
        if failure is not None:
            error_type = type(exc.__cause__ or exc).__name__
            log.warning("store_unavailable", error_type=error_type, trace_id=trace_id)
            told, details = failure
            code = ErrorCode.DEPENDENCY_UNAVAILABLE.value
            _send_error(hub, conn, session_id, trace_id, told, code=code, **details)
            return
        log.error("ws_turn_failed", error_type=type(exc).__name__, trace_id=trace_id, exc_info=exc)
        failed = "The turn failed inside the Chat Orchestrator; try again"
        _send_error(hub, conn, session_id, trace_id, failed)
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


def _send_error(
    hub: WebSocketHub,
    conn: Connection,
    session_id: str | None,
    trace_id: str,
    message: str,
    *,
    code: str | None = None,
    **extra: Any,
) -> None:
    """An `error` frame for a turn: its message, its code when it has one, and `extra`."""
    fields = {"code": code, **extra} if code is not None else extra
    hub.send(conn, frame("error", session_id, trace_id=trace_id, error=message, **fields))


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
