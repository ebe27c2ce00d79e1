"""Peers over https: their certificate is verified against the system's CA store, or the bundle
`SSL_CERT_FILE` names (DEPLOYMENT.md); an unknown one is refused, never trusted."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.config import Settings
from app.mesh.peers import PeerUnavailable
from app.mesh.registry import RegistryClient
from app.wiring.mesh import build_mesh
from tests.fakes.certs import self_signed
from tests.fakes.fixed_answer import fixed_answer


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An https peer on loopback answering `{"status":"ok"}`, and its certificate."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with fixed_answer(b'{"status":"ok"}', tls=context) as base_url:
        yield base_url, cert


@asynccontextmanager
async def _registry(base_url: str) -> AsyncIterator[RegistryClient]:
    """The Registry's client as the service builds it (TLS context included)."""
    mesh = build_mesh(_settings(base_url))
    assert mesh.registry is not None
    try:
        yield mesh.registry
    finally:
        await mesh.aclose()


def _settings(base_url: str) -> Settings:
    return Settings(
        _env_file=None,
        registry_url=base_url,
        orchestrator_url=base_url,
    )


async def test_a_peer_with_an_unknown_certificate_is_refused(
    peer: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, _ = peer
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with _registry(base_url) as registry:
        assert await registry.health() is False
        with pytest.raises(PeerUnavailable, match="unreachable"):
            await registry.list_droplets()


async def test_the_ca_named_by_ssl_cert_file_is_trusted(
    peer: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, cert = peer
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    async with _registry(base_url) as registry:
        assert await registry.health() is True
