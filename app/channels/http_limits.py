"""Bounds on a request's head for the shipped server: size (431) and read time (408).

uvicorn's httptools protocol reads a request line and headers of any size for as long as the
client takes; a 50 MB `Authorization` header or a thousand slow-header connections would be
held in memory. This subclass counts the bytes of each request head and times it, and refuses
the request the moment either bound is passed. Bodies are bounded separately (MAX_BODY_BYTES).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _refusal(status: int, reason: str) -> bytes:
    body = (
        '{"status":"error","error":{"code":"INVALID_REQUEST","message":"'
        + reason
        + '","details":{}}}'
    ).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class _GuardedProtocol(HttpToolsProtocol):
    max_head_bytes = 32 * 1024
    head_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._stop_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str) -> None:
        self._stop_timer()
        if not self.transport.is_closing():
            self.transport.write(_refusal(status, reason))
            self.transport.close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(408, "Request Timeout")

    def data_received(self, data: bytes) -> None:
        counting = self._in_head
        super().data_received(data)
        # Counted after parsing, so a body sharing the head's packet is not mistaken for it:
        # only bytes received while the head is still unfinished count.
        if counting and self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._start_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_timer()
        super().on_headers_complete()


def guarded_protocol(*, max_head_bytes: int, head_timeout_s: float) -> type[HttpToolsProtocol]:
    """An httptools protocol class bounding each request head (pass as uvicorn's `http`)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {"max_head_bytes": max_head_bytes, "head_timeout_s": head_timeout_s},
    )
