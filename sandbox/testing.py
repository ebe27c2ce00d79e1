"""Run the sandbox mesh in-process: each peer is a uvicorn server in a background thread.

    with mesh(key_dir=tmp_path) as m:
        token = m.mint_token(droplet_id=12)
        httpx2.get(f"{m.orchestrator_url}/droplets", headers={"Authorization": f"Bearer {token}"})

Ports are bound before the servers start, so URLs are known up front, and a stopped peer comes
back on the same port with its state intact (`stop_orchestrator()` then `start_orchestrator()`
is "peer down, then up").
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.keys import REGISTRY_KEY_NAME, mint_token, write_key_pair
from sandbox.orchestrator import create_orchestrator_app
from sandbox.registry import create_registry_app

DEFAULT_REGISTRY_KEY = "sandbox-registry-key"
START_TIMEOUT = 10.0


def tcp_listener(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # protocol says TCP, and a socket made with proto 0 left Nagle on, so every keep-alive
    # answer sent as two writes waited ~40 ms for the client's delayed ACK. The listener's
    # own TCP_NODELAY is inherited by accepted sockets on Linux as well.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class ServerThread:
    """One ASGI app served by uvicorn in a daemon thread, restartable on the same port."""

    def __init__(self, app: FastAPI, sock: socket.socket, *, name: str) -> None:
        # Any ASGI app: `MeshHandle.count_requests` serves it again wrapped.
        self.app: ASGIApp = app
        self.name = name
        self.host, self.port = sock.getsockname()[:2]
        self._sock: socket.socket | None = sock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        sock = self._sock or tcp_listener(self.host, self.port)
        self._sock = None
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            loop="asyncio",
            log_level="warning",
            log_config=None,
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"{self.name} did not start on {self.url}")
            time.sleep(0.01)

    def request_stop(self) -> None:
        """Ask the server to exit without waiting (see `stop`)."""
        if self._sock is not None:  # bound but never started
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.should_exit = True

    def stop(self) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT)
        self._server = self._thread = None


class Served:
    """ASGI wrapper keeping the HTTP requests a peer served, as "METHOD /path" (lifespan and
    everything else passes through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[str] = []

    @property
    def count(self) -> int:
        return len(self.requests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@dataclass
class MeshHandle:
    registry_url: str
    orchestrator_url: str
    registry_key: str
    private_key_path: Path
    """The Orchestrator's private key: whoever holds it can mint Orchestrator tokens."""
    public_key_path: Path
    orchestrator_secret: str | None
    """Secret for the Orchestrator's `POST /auth/token` (None: the endpoint is not mounted)."""
    registry_public_key_path: Path | None = None
    """Deployed-variant Registry only: the key its `/auth/token` tokens verify with."""
    registry: ServerThread | None = field(default=None, repr=False)
    orchestrator: ServerThread | None = field(default=None, repr=False)

    def mint_token(
        self,
        droplet_id: int | str = 12,
        permissions: Iterable[str] = ("read", "write"),
        ttl: float = 3600,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An Orchestrator token signed with the sandbox's private key."""
        return mint_token(
            self.private_key_path.read_bytes(),
            droplet_id=droplet_id,
            permissions=permissions,
            ttl=ttl,
            extra_claims=extra_claims,
        )

    def _peer(self, which: str) -> ServerThread:
        server = getattr(self, which)
        if server is None:
            raise RuntimeError(f"this mesh has no {which}")
        assert isinstance(server, ServerThread)
        return server

    def stop_registry(self) -> None:
        self._peer("registry").stop()

    def start_registry(self) -> None:
        self._peer("registry").start()

    def stop_orchestrator(self) -> None:
        self._peer("orchestrator").stop()

    def start_orchestrator(self) -> None:
        self._peer("orchestrator").start()

    def count_requests(self, which: str) -> Served:
        """Serve a peer again (same port, state kept) behind a `Served` that keeps its requests."""
        server = self._peer(which)
        server.stop()
        served = Served(server.app)
        server.app = served
        server.start()
        return served

    def stop(self) -> None:
        servers = [s for s in (self.orchestrator, self.registry) if s is not None]
        for server in servers:  # both shut down at once
            server.request_stop()
        for server in servers:
            server.stop()


def start_mesh(
    *,
    key_dir: Path,
    quirks: bool = True,
    router_interval: float = 0.5,
    inactive_after: float = 90.0,
    seed: bool = True,
    registry_port: int = 0,
    orchestrator_port: int = 0,
    auth_secret: str | None = None,
    registry_key: str = DEFAULT_REGISTRY_KEY,
    deployed_registry: bool = False,
    stale_after: float = 180.0,
    ws_ping_interval: float = 30.0,
    send_timeout: float = 10.0,
    host: str = "127.0.0.1",
) -> MeshHandle:
    """Start a Registry and an Orchestrator on loopback; port 0 picks a free port.

    Keys go to `key_dir` (`orchestrator_*_key.pem`, plus `registry_*_key.pem` when
    `deployed_registry`), reusing any pair already there.
    """
    private_path, public_path = write_key_pair(key_dir)
    registry_private: Path | None = None
    registry_public: Path | None = None
    if deployed_registry:
        registry_private, registry_public = write_key_pair(key_dir, REGISTRY_KEY_NAME)

    registry_sock = tcp_listener(host, registry_port)
    try:
        orchestrator_sock = tcp_listener(host, orchestrator_port)
    except OSError:
        registry_sock.close()
        raise
    registry_app = create_registry_app(
        registry_key=registry_key,
        jwks_private_key_pem=registry_private.read_bytes() if registry_private else None,
        stale_after=stale_after,
        seed=seed,
    )
    orchestrator_host, orchestrator_bound_port = orchestrator_sock.getsockname()[:2]
    orchestrator_app = create_orchestrator_app(
        public_key_pem=public_path.read_bytes(),
        private_key_pem=private_path.read_bytes(),
        quirks=quirks,
        router_interval=router_interval,
        inactive_after=inactive_after,
        auth_secret=auth_secret,
        seed=seed,
        ws_ping_interval=ws_ping_interval,
        endpoint=f"http://{orchestrator_host}:{orchestrator_bound_port}",
        send_timeout=send_timeout,
    )
    registry = ServerThread(registry_app, registry_sock, name="sandbox-registry")
    orchestrator = ServerThread(orchestrator_app, orchestrator_sock, name="sandbox-orchestrator")
    handle = MeshHandle(
        registry_url=registry.url,
        orchestrator_url=orchestrator.url,
        registry_key=registry_key,
        private_key_path=private_path,
        public_key_path=public_path,
        orchestrator_secret=auth_secret,
        registry_public_key_path=registry_public,
        registry=registry,
        orchestrator=orchestrator,
    )
    try:
        registry.start()
        orchestrator.start()
    except BaseException:
        handle.stop()
        raise
    return handle


@contextmanager
def mesh(**kwargs: Any) -> Iterator[MeshHandle]:
    """`start_mesh(**kwargs)` for a `with` block (or a pytest fixture); stops both peers after."""
    handle = start_mesh(**kwargs)
    try:
        yield handle
    finally:
        handle.stop()
