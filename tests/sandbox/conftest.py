"""Fixtures for the sandbox tests: real servers on loopback and a recording `/message` receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sandbox.keys import write_key_pair
from sandbox.testing import MeshHandle, start_mesh

CHAT_CAPABILITIES = ["natural_language_understanding", "conversation_memory", "chat"]


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key directory for the whole run: RSA generation is the slow part of a mesh start."""
    path = tmp_path_factory.mktemp("sandbox-keys")
    write_key_pair(path)
    write_key_pair(path, "registry")
    return path


@pytest.fixture
def start(key_dir: Path) -> Iterator[Callable[..., MeshHandle]]:
    """`start(**kwargs)` starts a mesh (fast intervals by default); all are stopped afterwards."""
    started: list[MeshHandle] = []

    def _start(**kwargs: Any) -> MeshHandle:
        options: dict[str, Any] = {"key_dir": key_dir, "router_interval": 0.1}
        options.update(kwargs)
        handle = start_mesh(**options)
        started.append(handle)
        return handle

    yield _start
    for handle in started:
        handle.stop()


@pytest.fixture
def mesh(start: Callable[..., MeshHandle]) -> MeshHandle:
    return start()


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5.0) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def envelope(payload: dict[str, Any], message_type: str = "command") -> dict[str, Any]:
    return {
        "udc_version": "1.0",
        "trace_id": "d2255dd6-0b49-4d13-babc-c44b5470dc54",
        "source": "droplet-12",
        "target": "droplet-10",
        "message_type": message_type,
        "timestamp": "2026-11-27T16:10:12Z",
        "payload": payload,
    }


def register(
    http: httpx2.Client,
    mesh: MeshHandle,
    *,
    droplet_id: int = 12,
    endpoint: str = "http://127.0.0.1:9",
    capabilities: list[str] | None = None,
    token: str | None = None,
) -> httpx2.Response:
    """Register at the Orchestrator the way an adapter must: retry once past the first-time 500."""
    body = {
        "droplet_id": droplet_id,
        "name": "Chat Orchestrator" if droplet_id == 12 else f"Droplet {droplet_id}",
        "steward": "local-test",
        "endpoint": endpoint,
        "capabilities": CHAT_CAPABILITIES if capabilities is None else capabilities,
    }
    headers = bearer(token or mesh.mint_token(droplet_id))
    response = http.post(f"{mesh.orchestrator_url}/droplets/register", json=body, headers=headers)
    if response.status_code == 500:
        response = http.post(
            f"{mesh.orchestrator_url}/droplets/register", json=body, headers=headers
        )
    return response


def wait_for(check: Callable[[], Any], *, timeout: float = 5.0, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(every)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class Receiver:
    """A tiny droplet endpoint on loopback that records what reaches `POST /message`."""

    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                receiver.received.append(
                    Received(
                        "POST", self.path, dict(self.headers.items()), json.loads(raw or b"null")
                    )
                )
                time.sleep(receiver.delay)
                body = b'{"status":"accepted"}'
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a slow answer is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()
