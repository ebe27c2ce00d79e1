"""Fault injection shared by both sandbox peers (SANDBOX-ONLY; no real peer has this).

`POST /_sandbox/fault {"mode": ..., "delay": seconds}` switches how the peer answers every request
outside `/_sandbox/`:

- `none`     normal behaviour (the default; use it to restore);
- `error500` HTTP 500, `text/plain` body `Internal Server Error` (what a crashed ASGI app gives);
- `slow`     normal answers, each held back `delay` seconds (2.0 when not given);
- `garbage`  HTTP 200 labelled `application/json` whose body is not JSON;
- `drop`     starts a 200 answer, sends part of the body and closes the connection.

`delay` applies in every mode, so `{"mode": "error500", "delay": 1}` is a slow failure. WebSocket
handshakes are delayed the same way and refused (close before accept, i.e. HTTP 403) in
`error500`, `garbage` and `drop`. `GET /_sandbox/fault` shows the current setting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

FaultMode = Literal["none", "error500", "slow", "garbage", "drop"]
SANDBOX_PREFIX = "/_sandbox/"
DEFAULT_SLOW_DELAY = 2.0


@dataclass
class FaultState:
    mode: FaultMode = "none"
    delay: float = 0.0


class FaultRequest(BaseModel):
    mode: FaultMode
    delay: float | None = Field(default=None, ge=0)


class FaultMiddleware:
    """Pure ASGI middleware applying the current `FaultState` to everything but `/_sandbox/`."""

    def __init__(self, app: ASGIApp, faults: FaultState) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        mode, delay = self.faults.mode, self.faults.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if mode in ("none", "slow"):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1011})
        elif mode == "error500":
            await _respond(send, 500, b"text/plain; charset=utf-8", b"Internal Server Error")
        elif mode == "garbage":
            await _respond(send, 200, b"application/json", b"<html>\x00 this is not JSON {{{")
        else:  # drop: promise 4 KiB, deliver a few bytes, return; the server then closes the socket
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"4096"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def fault_router() -> APIRouter:
    """`/_sandbox/fault`; the app must hold its `FaultState` on `app.state.faults`."""
    router = APIRouter(prefix="/_sandbox", tags=["sandbox-only"])

    @router.get("/fault", summary="Sandbox only: current fault mode")
    async def get_fault(request: Request) -> dict[str, object]:
        faults: FaultState = request.app.state.faults
        return {"mode": faults.mode, "delay": faults.delay}

    @router.post("/fault", summary="Sandbox only: make this peer misbehave (or restore it)")
    async def set_fault(body: FaultRequest, request: Request) -> dict[str, object]:
        faults: FaultState = request.app.state.faults
        default_delay = DEFAULT_SLOW_DELAY if body.mode == "slow" else 0.0
        faults.mode = body.mode
        faults.delay = body.delay if body.delay is not None else default_delay
        return {"mode": faults.mode, "delay": faults.delay}

    return router
