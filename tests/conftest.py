"""Fixtures shared by the whole suite: settings isolated from the machine, keys, a client."""

from __future__ import annotations

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
        return jwt.encode({k: v for k, v in body.items() if v is not None}, self.private_pem,
                          algorithm="RS256")


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
def make_settings(tmp_path: Path, public_key_file: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "registry_public_key_file": public_key_file,
            "data_dir": tmp_path / "data",
            "mesh_enabled": False,
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from app.main import create_app

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
    """A seeded sandbox Registry + Orchestrator on loopback with fast intervals."""
    from sandbox.testing import mesh

    with mesh(key_dir=sandbox_key_dir, router_interval=0.2) as handle:
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
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
def mesh_client(mesh_settings: Callable[..., Settings]) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(mesh_settings()), client=("127.0.0.1", 50000)) as test_client:
        yield test_client
