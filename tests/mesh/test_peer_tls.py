"""Peers over https: their certificate is verified against the system's CA store, or the bundle
`SSL_CERT_FILE` names (DEPLOYMENT.md); an unknown one is refused, never trusted."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.config import Settings
from app.mesh.peers import PeerUnavailable
from app.mesh.registry import RegistryClient
from app.wiring.mesh import build_mesh
from tests.fakes.fixed_answer import fixed_answer


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a private mesh CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "peer.pem", directory / "peer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An https peer on loopback answering `{"status":"ok"}`, and its certificate."""
    cert, key = _self_signed(tmp_path)
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
        await mesh.registry.aclose()
        if mesh.orchestrator is not None:
            await mesh.orchestrator.aclose()


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
