"""A real HTTP server on loopback for fakes: a Starlette app served by uvicorn in a thread.

Fakes run in a thread (not in the test's event loop) so a test can drive a client with the same
loop it awaits on, and so a deliberately slow reply does not block the client side.

`ScriptedFake` is the scripting scaffolding the model fakes share (reply queue, responder,
default, recorded requests, lifecycle); each fake adds its routes, `base_url` and wire format.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from sandbox.testing import tcp_listener

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
    content: bytes = b""
    """The body's bytes exactly as received."""
    peer: str = ""
    """The client's `host:port`: the same port for two requests means one kept-alive connection."""


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
        sock = tcp_listener("127.0.0.1", 0)
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


ReplyT = TypeVar("ReplyT")


class ScriptedFake(ABC, Generic[ReplyT]):
    """A scriptable fake API on a `ThreadedServer`. Thread-safe: the server runs in its own thread.

    Replies are served from the `push(...)` queue in order; when it is empty the `responder` (if
    any) is asked, then `default` is used (None: the subclass answers with an error). Every
    request the subclass handles is recorded with `_record` and visible in `requests`.

    Subclasses set `server_name`, and implement `_routes()` (called once, from `__init__`) and
    `base_url`.
    """

    server_name: ClassVar[str]

    def __init__(
        self,
        *,
        default: ReplyT | None = None,
        responder: Callable[[RecordedRequest], ReplyT | None] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.default = default
        self.responder = responder
        self.delay_s = delay_s
        self._queue: deque[ReplyT] = deque()
        self._requests: list[RecordedRequest] = []
        # Model look-ups (health probes) are counted apart from the scripted requests, so a
        # test's request counts are the same whether or not a probe ran in between.
        self.model_status = 200
        """What a model look-up answers: 200 (the model exists) or an error status."""
        self._model_lookups = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadedServer(Starlette(routes=self._routes()), name=self.server_name)

    @abstractmethod
    def _routes(self) -> Sequence[BaseRoute]:
        """The routes of the fake's Starlette app."""

    @property
    @abstractmethod
    def base_url(self) -> str:
        """The URL a client (a planner's base URL) is pointed at."""

    # Lifecycle
    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Scripting and inspection
    def push(self, *replies: ReplyT) -> None:
        with self._lock:
            self._queue.extend(replies)

    def extend(self, replies: Iterable[ReplyT]) -> None:
        self.push(*replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    @property
    def model_lookups(self) -> int:
        with self._lock:
            return self._model_lookups

    def _model_lookup(self) -> int:
        """Count one look-up; the status it should answer."""
        with self._lock:
            self._model_lookups += 1
            return self.model_status

    # Serving
    def _record(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(recorded)

    def _next_reply(self, recorded: RecordedRequest) -> ReplyT | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            reply = self.responder(recorded)
            if reply is not None:
                return reply
        return self.default
