"""A real HTTP server on loopback for fakes: a Starlette app served by uvicorn in a thread.

Fakes run in a thread (not in the test's event loop) so a test can drive an SDK with the same
loop it awaits on, and so a deliberately slow reply does not block the client side.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import ASGIApp

_SLEEP_SLICE_S = 0.02


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a fake received: `body` has its keys normalised, `raw` is as sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: dict[str, Any]
    body: dict[str, Any]
    extra: dict[str, str] = field(default_factory=dict)


class ThreadedServer:
    """Serves an ASGI app on 127.0.0.1 and a free port until `stop()`."""

    def __init__(self, app: ASGIApp, *, name: str) -> None:
        self._app = app
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        # Bind first so the port is known before the thread starts and no other test can take it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            ws="none",
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 5.0
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.005)
        # The socket now belongs to uvicorn's asyncio server, which closes it on shutdown.

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._server = None
        self._thread = None

    async def sleep(self, seconds: float) -> None:
        """Sleep inside a handler, but wake up early when the server is stopping."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _SLEEP_SLICE_S))
