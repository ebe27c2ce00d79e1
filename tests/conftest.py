"""Fixtures shared by the whole suite: settings isolated from the machine, keys, a client."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config import Settings


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's .env or environment by accident."""
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.upper() in Settings.model_fields or key.upper() in {
            f.upper() for f in Settings.model_fields
        }:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test, after it.

    Every app a test builds configures logging, and its handler writes to the stream that was
    `sys.stderr` then: in a test with `capfd` or `capsys`, a capture that closes with the test.
    Left in place, that handler fails (EBADF) for whatever logs after the test. An autouse
    fixture is set up before the test's other fixtures, so this restores after they are all
    torn down (a live app's server thread included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class KeyPair:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, ttl: float = 300, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"sub": "droplet-1", "iat": now, "exp": now + int(ttl)}
        body.update(claims)
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None}, self.private_pem, algorithm="RS256"
        )


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return KeyPair()


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return KeyPair()


@pytest.fixture
def public_key_file(tmp_path: Path, keys: KeyPair) -> Path:
    path = tmp_path / "keys" / "registry_public_key.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(keys.public_pem)
    return path


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str | None:
    """TEST_STORE=postgresql runs the app's tests on a fresh PostgreSQL database each."""
    import os

    if os.environ.get("TEST_STORE", "sqlite") == "postgresql":
        url: str = request.getfixturevalue("pg_database_url")
        return url
    return None


@pytest.fixture
def make_settings(
    tmp_path: Path, public_key_file: Path, store_url: str | None
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": store_url,
            "registry_public_key_file": public_key_file,
            "data_dir": tmp_path / "data",
            "mesh_enabled": False,
            "log_format": "json",
            # Tests fire many turns from one address; the limiter has tests of its own.
            "chat_rate_limit_per_minute": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return build


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from app.factory import create_app

    with TestClient(create_app(make_settings()), client=("127.0.0.1", 50000)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def sandbox_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RSA generation is the slow part of a mesh start: one key pair for the whole run."""
    from sandbox.keys import write_key_pair

    path = tmp_path_factory.mktemp("mesh-keys")
    write_key_pair(path)
    return path


@pytest.fixture
def sandbox(sandbox_key_dir: Path) -> Iterator[Any]:
    """A seeded sandbox Registry + Orchestrator on loopback.

    Its router runs every 30 s, so tasks a test creates stay pending (cancellable) unless the
    test routes them at once with `POST /_sandbox/tick`.
    """
    from sandbox.testing import mesh

    with mesh(key_dir=sandbox_key_dir, router_interval=30) as handle:
        yield handle


@pytest.fixture
def mesh_settings(make_settings: Callable[..., Settings], sandbox: Any) -> Callable[..., Settings]:
    """Settings for a droplet 12 wired to the sandbox mesh (tokens minted from its key)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mesh_enabled": True,
            "registry_url": sandbox.registry_url,
            "orchestrator_url": sandbox.orchestrator_url,
            "droplet_secret": sandbox.registry_key,
            "orchestrator_private_key_file": sandbox.private_key_path,
            "registry_public_key_file": sandbox.public_key_path,
            "heartbeat_interval_s": 1.0,
            "task_poll_interval_s": 0.3,
            "peer_timeout_s": 2.0,
            "peer_breaker_reset_s": 1.0,
            "registration_backoff_max_s": 2.0,
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
def mesh_client(mesh_settings: Callable[..., Settings]) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from app.factory import create_app

    with TestClient(create_app(mesh_settings()), client=("127.0.0.1", 50000)) as test_client:
        yield test_client


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment_without_settings() -> dict[str, str]:
    """This process's environment minus every variable the service reads: a service a test
    starts (`python -m app.main`) reads only what the test sets."""
    names = {f.upper() for f in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k.upper() not in names}


def wait_up(url: str, *, proc: subprocess.Popen[Any] | None = None, within: float = 60.0) -> bool:
    """True once `url` answers `/health` with 200; False after `within` seconds, or as soon as
    `proc` (the service's process, when given) has exited."""
    import httpx2

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                return True
        except httpx2.HTTPError:
            pass
        time.sleep(0.05)
    return False


class LiveApp:
    """droplet 12 served by uvicorn on a real loopback port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        import threading

        import uvicorn

        from app.factory import create_app, server_config

        self.port = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        # The shipped server configuration (header bounds, proxy trust), on loopback.
        config = server_config(create_app(settings), settings, host="127.0.0.1", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live app did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_app(mesh_settings: Callable[..., Settings]) -> Iterator[Callable[..., LiveApp]]:
    """`live_app(**overrides)` starts droplet 12 on a free port wired to the sandbox."""
    started: list[LiveApp] = []

    def start(**overrides: Any) -> LiveApp:
        port = free_port()
        values: dict[str, Any] = {"port": port, "droplet_url": f"http://127.0.0.1:{port}"}
        values.update(overrides)
        app = LiveApp(mesh_settings(**values)).start()
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _run_pg(sql: str) -> None:
    import asyncio
    import os
    import threading

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(os.environ.get("TEST_PG_ADMIN_URL", PG_ADMIN_URL))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # In its own thread: an async test's event loop may already be running here.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import uuid

    name = f"t_{uuid.uuid4().hex[:12]}"
    _run_pg(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _run_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
