"""The shipped server's WebSocket protocol: uvicorn's, holding less for each idle connection.

Thousands of idle sockets are the common case, so what one holds for its whole life matters
more than what it costs per frame (issue 17: ≤ 20 KiB each). uvicorn's `websockets-sansio`
protocol keeps, per connection, an `asyncio.Queue` for the one reader (three deques and an
Event: ~3.3 KiB), an `asyncio.Event` for back-pressure (~0.8 KiB) and the parsed handshake
request and response with their header tables (~4 KiB) long after the handshake. This subclass
swaps the queue and the event for single-consumer equivalents that allocate only while someone
waits, and lets the handshake go once the 101 is written.

It also offers the app a way to write a text frame without a coroutine (`send_text_nowait`,
under the ASGI extension `WRITE_NOW`): fanning an event out to 5,000 sockets then writes each
one directly instead of creating 5,000 tasks. It answers False whenever the frame cannot be
written right now (back-pressure, closing, not yet accepted) and the caller falls back to the
ordinary ASGI `send`, which waits as uvicorn does.

uvicorn is pinned (requirements.txt): `tests/channels/test_ws_protocol.py` checks this against
the real server, so an upgrade that changes what the parent touches fails there first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

WRITE_NOW = "droplet12.websocket.send_text_nowait"
"""The scope extension holding `send_text_nowait(data: bytes) -> bool` for the connection."""


class _Inbox:
    """The connection's receive queue: one producer (the protocol), one consumer (the app)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item


class _Writable:
    """Back-pressure flag (the transport's pause/resume_writing); futures only while waited on."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if self._waiters is not None and waiter in self._waiters:
                    self._waiters.remove(waiter)
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same interface, used only as uvicorn uses them (put_nowait/get/empty; set/clear/wait).
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WRITE_NOW] = self.send_text_nowait

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope's extension points back at this protocol: break that cycle, so the closed
        # connection is freed by reference counting even if the GC froze it (app.ops.gc_freeze).
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(WRITE_NOW, None)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete:
            # Written (or refused): the parsed handshake is never read again.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

    def send_text_nowait(self, data: bytes) -> bool:
        """Write one text frame now if nothing stands in the way; False to use `send` instead."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        try:
            self.conn.send_text(data)
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True
