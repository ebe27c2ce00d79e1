"""Live WebSocket connections of this instance and the fan-out of events to them.

Each connection owns a bounded send queue drained by its own writer task, so a slow client
never stalls a turn or the other clients; a client that falls too far behind is disconnected
(it reconnects and reloads its history) rather than being allowed to grow memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.utils.time import isoformat_z

log = structlog.get_logger(__name__)

SendText = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Coroutine[Any, Any, None]]

CLOSE_TOO_SLOW = 1013


@dataclass(eq=False, slots=True)
class Connection:
    send_text: SendText
    close: Close
    queue: asyncio.Queue[str | None]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    session_id: str | None = None
    """The followed session as the client names it."""
    session_key: str | None = None
    """The followed session's stored key (in the caller's namespace): what events match."""
    owner: str | None = None
    """Who opened it (the caller's rate key), for the per-identity cap."""
    writer: asyncio.Task[None] | None = None


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

    def register(self, *, send_text: SendText, close: Close, owner: str | None) -> Connection:
        conn = Connection(
            send_text=send_text, close=close, queue=asyncio.Queue(self._queue_size), owner=owner
        )
        conn.writer = asyncio.create_task(self._write(conn), name=f"ws-writer-{conn.id[:8]}")
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
        self._forget(conn)
        if conn.writer is not None and not conn.writer.done():
            # A None tells the writer to finish what is queued, then stop.
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(None)
            try:
                await asyncio.wait_for(conn.writer, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                conn.writer.cancel()

    async def _write(self, conn: Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                return
            try:
                await conn.send_text(text)
            except Exception:  # the socket is gone; the reader side unregisters it
                return

    def send(self, conn: Connection, payload: dict[str, Any]) -> bool:
        """Queue a frame for one connection; False (and a disconnect) when it cannot keep up."""
        try:
            conn.queue.put_nowait(json.dumps(payload, default=str))
        except asyncio.QueueFull:
            log.warning("ws_client_too_slow", connection=conn.id[:8])
            self._forget(conn)
            asyncio.get_running_loop().create_task(
                conn.close(CLOSE_TOO_SLOW, "client too slow; reconnect and reload history")
            )
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
        text = json.dumps(payload, default=str)
        for conn in targets:
            try:
                conn.queue.put_nowait(text)
            except asyncio.QueueFull:
                self.send(conn, payload)  # takes the slow-client path

    async def close_all(self) -> None:
        for conn in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await conn.close(1001, "server shutting down")
            await self.unregister(conn)
