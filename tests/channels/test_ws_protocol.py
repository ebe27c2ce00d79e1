"""The lean WebSocket protocol: uvicorn's behaviour, less held per idle connection, and a
direct write that refuses whenever the ordinary `send` would have to wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from app.channels.ws_protocol import WRITE_NOW, LeanWebSocketProtocol, _Inbox, _Writable
from tests.conftest import free_port


async def test_the_inbox_hands_items_over_in_order_and_wakes_a_waiting_reader() -> None:
    inbox = _Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()  # nothing yet: it waits
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await reader == "a"
    assert not inbox.empty()
    assert await inbox.get() == "b"
    assert inbox.empty() and inbox._items is None and inbox._waiter is None


async def test_writable_blocks_while_cleared_and_holds_nothing_while_set() -> None:
    writable = _Writable()
    assert await writable.wait() is True
    writable.clear()
    waiter = asyncio.create_task(writable.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    writable.set()
    assert await waiter is True
    assert writable._waiters is None


class _App:
    """Accepts, writes one frame through `send` and one directly, echoes what it receives."""

    def __init__(self) -> None:
        self.write_now: Any = None
        self.refused_before_accept: bool | None = None
        self.refused_after_close: bool | None = None
        self.done = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        self.write_now = scope["extensions"][WRITE_NOW]
        self.refused_before_accept = not self.write_now(b"too early")
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "one"})
        assert self.write_now("two ✓".encode())
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await send({"type": "websocket.close", "code": 1000})
        self.refused_after_close = not self.write_now(b"too late")
        self.done.set()


@pytest.fixture
async def served() -> AsyncIterator[tuple[_App, uvicorn.Server, int]]:
    app = _App()
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=LeanWebSocketProtocol, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # uvicorn offers no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    yield app, server, port
    server.should_exit = True
    await task


async def test_frames_written_directly_and_through_send_arrive_in_order(
    served: tuple[_App, uvicorn.Server, int],
) -> None:
    app, server, port = served
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        assert await ws.recv() == "one"
        assert await ws.recv() == "two ✓"
        protocols = [
            p for p in server.server_state.connections if isinstance(p, LeanWebSocketProtocol)
        ]
        assert len(protocols) == 1
        # The handshake is let go once written; the queue and the event are the lean ones.
        assert protocols[0].request is None and protocols[0].response is None
        assert isinstance(protocols[0].queue, _Inbox)
        assert isinstance(protocols[0].writable, _Writable)
        await ws.send("hello")
        assert await ws.recv() == "echo hello"
        await app.done.wait()
    assert app.refused_before_accept is True
    assert app.refused_after_close is True


async def test_a_lost_connection_lets_go_of_the_direct_write(
    served: tuple[_App, uvicorn.Server, int],
) -> None:
    app, server, port = served
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.recv()
        await ws.recv()
        protocol = next(
            p for p in server.server_state.connections if isinstance(p, LeanWebSocketProtocol)
        )
        await ws.send("bye")
        await ws.recv()
        await app.done.wait()
    for _ in range(100):
        if protocol.disconnected:
            break
        await asyncio.sleep(0.01)
    assert WRITE_NOW not in protocol.scope["extensions"]  # no cycle back to the protocol
    assert protocol.send_text_nowait(b"x") is False


def test_paused_writing_refuses_the_direct_write() -> None:
    protocol = LeanWebSocketProtocol.__new__(LeanWebSocketProtocol)
    protocol.handshake_complete = True
    protocol.close_sent = False
    protocol.disconnected = False
    protocol.initial_response = None
    protocol.writable = _Writable()  # type: ignore[assignment]
    protocol.pause_writing()  # the transport's buffer is over its high-water mark
    assert protocol.send_text_nowait(b"x") is False
