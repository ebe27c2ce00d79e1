"""Live WebSocket connections of this instance and the fan-out of events to them.

Each connection owns a bounded send buffer drained by a writer task of its own, so a slow client
never stalls a turn or the other clients; a client that falls too far behind is disconnected
(it reconnects and reloads its history) rather than being allowed to grow memory without bound.
The writer exists only while there is something to send: an idle connection holds no task and
no queue (thousands of idle sockets are the common case; each task cost ~2 KiB). When the server
offers a direct write (`write_now`, app.channels.ws_protocol) and nothing is queued, a frame is
written at once without any task: an event fanned out to 5,000 sockets is serialised once and
written 5,000 times in one pass, instead of creating 5,000 writer tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.utils.time import isoformat_z

log = structlog.get_logger(__name__)

SendText = Callable[[str], Awaitable[None]]
WriteNow = Callable[[bytes], bool]
"""Writes one UTF-8 text frame now, or answers False when it cannot (then `send_text` is used)."""
Close = Callable[[int, str], Coroutine[Any, Any, None]]

CLOSE_TOO_SLOW = 1013


@dataclass(eq=False, slots=True)
class Connection:
    send_text: SendText
    close: Close
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    session_id: str | None = None
    """The followed session as the client names it."""
    session_key: str | None = None
    """The followed session's stored key (in the caller's namespace): what events match."""
    owner: str | None = None
    """Who opened it (the caller's rate key), for the per-identity cap."""
    pending: deque[str] | None = None
    """Frames not yet written, oldest first (None while there are none)."""
    writer: asyncio.Task[None] | None = None
    """Drains `pending`; exists only while it is not empty."""
    gone: bool = False
    """The socket failed or was unregistered: nothing more is written."""
    write_now: WriteNow | None = None


def frame(kind: str, session_id: str | None, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "session_id": session_id, "timestamp": isoformat_z(), **fields}


class WebSocketHub:
    def __init__(self, *, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._connections: dict[str, Connection] = {}
        self._per_owner: dict[str, int] = {}

    def count(self) -> int:
        return len(self._connections)

    def count_for(self, owner: str) -> int:
        return self._per_owner.get(owner, 0)

    def register(
        self,
        *,
        send_text: SendText,
        close: Close,
        owner: str | None,
        write_now: WriteNow | None = None,
    ) -> Connection:
        conn = Connection(send_text=send_text, close=close, owner=owner, write_now=write_now)
        self._connections[conn.id] = conn
        if owner is not None:
            self._per_owner[owner] = self._per_owner.get(owner, 0) + 1
        return conn

    def _forget(self, conn: Connection) -> None:
        if self._connections.pop(conn.id, None) is not None and conn.owner is not None:
            left = self._per_owner.get(conn.owner, 1) - 1
            if left > 0:
                self._per_owner[conn.owner] = left
            else:
                self._per_owner.pop(conn.owner, None)

    async def unregister(self, conn: Connection) -> None:
        """Forget it; what is already queued is still written (for up to 2 s)."""
        self._forget(conn)
        writer = conn.writer
        if writer is not None and not writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(writer), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()
        conn.gone = True
        conn.pending = None

    def _enqueue(self, conn: Connection, text: str, data: bytes | None = None) -> bool:
        """Write a frame to a live connection now if it can take it, else buffer it for the
        writer (the callers skip gone ones); False if the buffer is full. `data` is `text`
        already encoded, when the caller writes the same frame to many connections."""
        pending = conn.pending
        # Nothing queued ahead of it (order), and the socket takes it without waiting.
        if (
            pending is None
            and conn.write_now is not None
            and conn.write_now(text.encode() if data is None else data)
        ):
            return True
        if pending is None:
            pending = conn.pending = deque()
        if len(pending) >= self._queue_size:
            return False
        pending.append(text)
        if conn.writer is None:
            conn.writer = asyncio.get_running_loop().create_task(
                self._write(conn), name=f"ws-writer-{conn.id[:8]}"
            )
        return True

    async def _write(self, conn: Connection) -> None:
        try:
            while conn.pending:
                text = conn.pending.popleft()
                try:
                    await conn.send_text(text)
                except Exception:  # the socket is gone; the reader side unregisters it
                    conn.gone = True
                    return
        finally:
            conn.writer = None
            if not conn.pending:
                conn.pending = None

    def _too_slow(self, conn: Connection) -> None:
        log.warning("ws_client_too_slow", connection=conn.id[:8])
        self._forget(conn)
        conn.gone = True
        conn.pending = None
        asyncio.get_running_loop().create_task(
            conn.close(CLOSE_TOO_SLOW, "client too slow; reconnect and reload history")
        )

    def send(self, conn: Connection, payload: dict[str, Any]) -> bool:
        """Queue a frame for one connection; False (and a disconnect) when it cannot keep up."""
        if conn.gone:
            return False
        if not self._enqueue(conn, json.dumps(payload, default=str)):
            self._too_slow(conn)
            return False
        return True

    def follow(self, conn: Connection, key: str, session_id: str) -> None:
        conn.session_key = key
        conn.session_id = session_id

    async def dispatch(self, event: dict[str, Any]) -> None:
        """Handler for the event bus: mesh events go to everyone, session frames to followers."""
        kind = event.get("kind")
        payload = event.get("frame")
        if not isinstance(payload, dict):
            return
        if kind == "mesh":
            targets = list(self._connections.values())
        elif kind == "session":
            key = event.get("session_key")
            origin = event.get("origin")
            targets = [
                c
                for c in self._connections.values()
                if key is not None and c.session_key == key and c.id != origin
            ]
        else:
            return
        if not targets:
            return
        # Serialised and encoded once, whatever the number of sockets.
        text = json.dumps(payload, default=str)
        data = text.encode()
        for conn in targets:
            if not conn.gone and not self._enqueue(conn, text, data):
                self._too_slow(conn)

    async def close_all(self) -> None:
        for conn in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await conn.close(1001, "server shutting down")
            await self.unregister(conn)
