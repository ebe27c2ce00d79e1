from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.mesh.registry import RegistryClient
from app.mesh.tokens import TokenProvider, TokenSource, TokenUnavailable
from tests.conftest import KeyPair
from tests.fakes._server import ThreadedServer


@dataclass
class Issuer:
    """A loopback token endpoint in the shape of the Orchestrator's or the deployed Registry's."""

    keys: KeyPair
    kind: str
    lifetime: int = 3600
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def app(self) -> Starlette:
        async def token(request: Request) -> JSONResponse:
            body = json.loads(await request.body() or b"{}")
            self.requests.append(
                {
                    "body": body,
                    "query": dict(request.query_params),
                    "key": request.headers.get("x-registry-key"),
                }
            )
            assert self.server is not None
            await self.server.sleep(self.delay)
            now = int(time.time())
            if self.kind == "orchestrator":
                if body.get("secret_key") != "orch-secret":
                    return JSONResponse({"detail": "Invalid secret key"}, status_code=401)
                claims = {
                    "droplet_id": body["droplet_id"],
                    "permissions": ["read", "write"],
                    "iat": now,
                    "exp": now + self.lifetime,
                }
                return JSONResponse(
                    {
                        "access_token": self.keys.token(**claims),
                        "token_type": "bearer",
                        "expires_in": self.lifetime,
                    }
                )
            if request.headers.get("x-registry-key") != "reg-key":
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            claims = {
                "sub": f"droplet-{request.query_params['droplet_id']}",
                "aud": "fullpotential.droplets",
                "iat": now,
                "exp": now + self.lifetime,
            }
            return JSONResponse({"token": self.keys.token(**claims)})

        return Starlette(routes=[Route("/auth/token", token, methods=["POST"])])


@pytest.fixture
def orchestrator_issuer(keys: KeyPair) -> Iterator[Issuer]:
    issuer = Issuer(keys=keys, kind="orchestrator")
    issuer.server = ThreadedServer(issuer.app(), name="fake-orchestrator-auth")
    issuer.server.start()
    yield issuer
    issuer.server.stop()


@pytest.fixture
def registry_issuer(keys: KeyPair) -> Iterator[Issuer]:
    issuer = Issuer(keys=keys, kind="registry")
    issuer.server = ThreadedServer(issuer.app(), name="fake-registry-auth")
    issuer.server.start()
    yield issuer
    issuer.server.stop()


@pytest.fixture
def key_file(tmp_path: Path, keys: KeyPair) -> Path:
    path = tmp_path / "orchestrator_private_key.pem"
    path.write_bytes(keys.private_pem)
    return path


@pytest.fixture
async def closing() -> AsyncIterator[list[TokenProvider | RegistryClient]]:
    owned: list[TokenProvider | RegistryClient] = []
    yield owned
    for item in owned:
        await item.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_minted_token_has_exactly_the_claims_the_orchestrator_reads(
    key_file: Path, keys: KeyPair, closing: list[Any]
) -> None:
    provider = TokenProvider(droplet_id=12, private_key_path=key_file, lifetime=600)
    closing.append(provider)
    token = await provider.get()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, keys.public_pem, algorithms=["RS256"])
    assert set(claims) == {"droplet_id", "permissions", "iat", "exp"}
    assert claims["droplet_id"] == 12 and isinstance(claims["droplet_id"], int)
    assert claims["permissions"] == ["read", "write"]
    assert claims["exp"] - claims["iat"] == 600
    assert provider.describe()["source"] == "private_key"


async def test_a_pre_issued_token_is_preferred(
    key_file: Path, keys: KeyPair, closing: list[Any]
) -> None:
    static = keys.token(droplet_id=12, permissions=["read"])
    provider = TokenProvider(static_token=static, private_key_path=key_file)
    closing.append(provider)
    assert await provider.get() == static
    assert provider.describe()["source"] == "static"


async def test_an_expired_pre_issued_token_falls_through_to_the_key(
    key_file: Path, keys: KeyPair, closing: list[Any]
) -> None:
    expired = keys.token(ttl=-60, droplet_id=12)
    provider = TokenProvider(static_token=expired, private_key_path=key_file)
    closing.append(provider)
    assert await provider.get() != expired
    assert provider.describe()["source"] == "private_key"


async def test_refreshes_at_eighty_percent_of_lifetime(key_file: Path, closing: list[Any]) -> None:
    clock = Clock()
    provider = TokenProvider(private_key_path=key_file, lifetime=100, clock=clock)
    closing.append(provider)
    first = await provider.get()
    clock.now += 79
    assert await provider.get() == first
    clock.now += 2
    second = await provider.get()
    assert second != first
    assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(clock.now)


async def test_orchestrator_auth_endpoint_is_used_without_a_key(
    orchestrator_issuer: Issuer, keys: KeyPair, closing: list[Any]
) -> None:
    provider = TokenProvider(
        droplet_id=12, orchestrator_url=orchestrator_issuer.url, orchestrator_secret="orch-secret"
    )
    closing.append(provider)
    token = await provider.get()
    assert jwt.decode(token, keys.public_pem, algorithms=["RS256"])["droplet_id"] == 12
    assert orchestrator_issuer.requests[0]["body"] == {
        "droplet_id": 12,
        "secret_key": "orch-secret",
    }
    described = provider.describe()
    assert described["source"] == "orchestrator_auth"
    assert "orch-secret" not in json.dumps(described) and token not in json.dumps(described)


async def test_concurrent_callers_share_one_refresh(
    orchestrator_issuer: Issuer, closing: list[Any]
) -> None:
    orchestrator_issuer.delay = 0.2
    provider = TokenProvider(
        orchestrator_url=orchestrator_issuer.url, orchestrator_secret="orch-secret"
    )
    closing.append(provider)
    tokens = await asyncio.gather(*(provider.get() for _ in range(20)))
    assert len(set(tokens)) == 1
    assert len(orchestrator_issuer.requests) == 1


async def test_registry_is_the_last_resort(
    orchestrator_issuer: Issuer, registry_issuer: Issuer, closing: list[Any]
) -> None:
    registry = RegistryClient(base_url=registry_issuer.url, api_key="reg-key", timeout=2)
    provider = TokenProvider(
        orchestrator_url=orchestrator_issuer.url,
        orchestrator_secret="wrong-secret",
        registry=registry,
    )
    closing.extend([provider, registry])
    token = await provider.get()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "droplet-12"
    assert registry_issuer.requests[0]["query"] == {"droplet_id": "12"}
    assert registry_issuer.requests[0]["key"] == "reg-key"
    assert provider.describe()["source"] == TokenSource.REGISTRY.value


async def test_a_rejected_token_moves_to_the_next_source(
    key_file: Path, other_keys: KeyPair, closing: list[Any]
) -> None:
    static = other_keys.token(droplet_id=12)
    provider = TokenProvider(static_token=static, private_key_path=key_file)
    closing.append(provider)
    assert await provider.get() == static
    await provider.invalidate(static)
    minted = await provider.get()
    assert minted != static
    assert provider.describe()["source"] == "private_key"
    # A stale rejection of a token already replaced changes nothing.
    await provider.invalidate(static)
    assert await provider.get() == minted


async def test_nothing_configured_is_a_clear_error(closing: list[Any]) -> None:
    provider = TokenProvider()
    closing.append(provider)
    with pytest.raises(TokenUnavailable) as caught:
        await provider.get()
    assert caught.value.peer == "orchestrator"
    assert provider.describe()["configured_sources"] == []
    assert provider.describe()["last_error"] == "no credentials for the Orchestrator are configured"


async def test_an_unreachable_issuer_keeps_the_still_valid_token(
    orchestrator_issuer: Issuer, closing: list[Any]
) -> None:
    clock = Clock()
    provider = TokenProvider(
        orchestrator_url=orchestrator_issuer.url, orchestrator_secret="orch-secret", clock=clock
    )
    closing.append(provider)
    orchestrator_issuer.lifetime = 100
    first = await provider.get()
    assert orchestrator_issuer.server is not None
    orchestrator_issuer.server.stop()
    clock.now += 90  # past the refresh point, before expiry
    assert await provider.get() == first
    clock.now += 20  # expired, and no way to get another
    with pytest.raises(TokenUnavailable):
        await provider.get()
    assert "unreachable" in (provider.describe()["last_error"] or "")
