"""The token provider (which source, when to refresh) and the adapters' token sources."""

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

from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.mesh.peers import PeerUnavailable
from app.mesh.registry import RegistryClient
from app.mesh.tokens import IssuedToken, Issuer, TokenProvider, TokenSource, TokenUnavailable
from tests.conftest import KeyPair
from tests.fakes._server import ThreadedServer
from tests.fakes.clock import Clock

START = 1_800_000_000.0
"""The tests' epoch time: tokens carry real-looking expiry times."""


class Source:
    """An in-memory token source: hands out numbered tokens living `lifetime` seconds."""

    def __init__(self, name: str, clock: Clock, *, lifetime: float | None = 100.0) -> None:
        self.name = name
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> IssuedToken:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        now = self.clock()
        expires = None if self.lifetime is None else now + self.lifetime
        return IssuedToken(f"{self.name}-{self.calls}", now, expires)


def provider(clock: Clock, *sources: tuple[TokenSource, Issuer]) -> TokenProvider:
    return TokenProvider(peer="orchestrator", label="Orchestrator", sources=sources, clock=clock)


async def test_the_first_source_that_has_a_token_wins() -> None:
    clock = Clock(START)
    static, minted = Source("static", clock, lifetime=-1.0), Source("minted", clock)
    tokens = provider(clock, (TokenSource.STATIC, static), (TokenSource.PRIVATE_KEY, minted))
    # The pre-issued token has already expired, so the key mints one.
    assert await tokens.get() == "minted-1"
    assert (static.calls, minted.calls) == (1, 1)


async def test_refreshes_at_eighty_percent_of_lifetime() -> None:
    clock = Clock(START)
    minted = Source("minted", clock, lifetime=100.0)
    tokens = provider(clock, (TokenSource.PRIVATE_KEY, minted))
    first = await tokens.get()
    clock.now += 79
    assert await tokens.get() == first
    clock.now += 2
    assert await tokens.get() == "minted-2"


async def test_a_token_without_expiry_is_kept() -> None:
    clock = Clock(START)
    static = Source("static", clock, lifetime=None)
    tokens = provider(clock, (TokenSource.STATIC, static))
    await tokens.get()
    clock.now += 10 * 365 * 86400
    assert await tokens.get() == "static-1" and static.calls == 1


async def test_concurrent_callers_share_one_refresh() -> None:
    clock = Clock(START)
    issuer = Source("issued", clock)
    issuer.gate = asyncio.Event()
    tokens = provider(clock, (TokenSource.ORCHESTRATOR, issuer))
    callers = [asyncio.create_task(tokens.get()) for _ in range(20)]
    await asyncio.sleep(0)  # every caller is now waiting on the one refresh
    issuer.gate.set()
    assert set(await asyncio.gather(*callers)) == {"issued-1"}
    assert issuer.calls == 1


async def test_a_rejected_token_cools_its_source_down() -> None:
    clock = Clock(START)
    static, minted = Source("static", clock), Source("minted", clock)
    tokens = provider(clock, (TokenSource.STATIC, static), (TokenSource.PRIVATE_KEY, minted))
    assert await tokens.get() == "static-1"
    await tokens.invalidate("static-1")
    assert await tokens.get() == "minted-1"
    # A stale rejection of a token already replaced changes nothing.
    await tokens.invalidate("static-1")
    assert await tokens.get() == "minted-1"
    # Once the cool-down is over, the preferred source is first again.
    clock.now += 301
    await tokens.invalidate("minted-1")
    assert await tokens.get() == "static-2"


async def test_failing_sources_fall_through_and_the_last_resort_is_a_clear_error() -> None:
    clock = Clock(START)
    broken, missing = Source("broken", clock), Source("missing", clock)
    broken.failure = OSError("no such file")
    missing.failure = PeerUnavailable("orchestrator", "the Orchestrator does not issue tokens")
    tokens = provider(clock, (TokenSource.PRIVATE_KEY, broken), (TokenSource.ORCHESTRATOR, missing))
    with pytest.raises(TokenUnavailable) as caught:
        await tokens.get()
    assert caught.value.message == "no usable credentials for the Orchestrator"
    # The request that needed the token was never sent: a write waiting on it may be retried.
    assert caught.value.reached is False


async def test_nothing_configured_is_a_state_and_a_clear_error() -> None:
    tokens = provider(Clock(START))
    assert not tokens.configured
    with pytest.raises(TokenUnavailable) as caught:
        await tokens.get()
    assert caught.value.peer == "orchestrator"
    assert caught.value.message == "no credentials for the Orchestrator are configured"


async def test_a_failed_refresh_keeps_the_still_valid_token() -> None:
    clock = Clock(START)
    issuer = Source("issued", clock, lifetime=100.0)
    tokens = provider(clock, (TokenSource.ORCHESTRATOR, issuer))
    first = await tokens.get()
    issuer.failure = PeerUnavailable("orchestrator", "the Orchestrator is unreachable")
    clock.now += 90  # past the refresh point, before expiry
    assert await tokens.get() == first
    clock.now += 20  # expired, and no way to get another
    with pytest.raises(TokenUnavailable):
        await tokens.get()


# -- the adapters' sources -----------------------------------------------------------------


@dataclass
class IssuerServer:
    """A loopback token endpoint in the shape of the Orchestrator's or the deployed Registry's."""

    keys: KeyPair
    kind: str
    lifetime: int = 3600
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
                    "authorization": request.headers.get("authorization"),
                }
            )
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


def serve(issuer: IssuerServer) -> Iterator[IssuerServer]:
    issuer.server = ThreadedServer(issuer.app(), name=f"fake-{issuer.kind}-auth")
    issuer.server.start()
    yield issuer
    issuer.server.stop()


@pytest.fixture
def orchestrator_issuer(keys: KeyPair) -> Iterator[IssuerServer]:
    yield from serve(IssuerServer(keys=keys, kind="orchestrator"))


@pytest.fixture
def registry_issuer(keys: KeyPair) -> Iterator[IssuerServer]:
    yield from serve(IssuerServer(keys=keys, kind="registry"))


@pytest.fixture
def key_file(tmp_path: Path, keys: KeyPair) -> Path:
    path = tmp_path / "orchestrator_private_key.pem"
    path.write_bytes(keys.private_pem)
    return path


@pytest.fixture
async def closing() -> AsyncIterator[list[OrchestratorClient | RegistryClient]]:
    owned: list[OrchestratorClient | RegistryClient] = []
    yield owned
    for item in owned:
        await item.aclose()


def orchestrator(
    closing: list[Any], base_url: str = "http://127.0.0.1:9", **given: Any
) -> OrchestratorClient:
    client = OrchestratorClient(
        base_url=base_url, credentials=OrchestratorCredentials(**given), droplet_id=12
    )
    closing.append(client)
    return client


async def test_minted_tokens_carry_exactly_the_claims_the_orchestrator_reads(
    key_file: Path, keys: KeyPair, closing: list[Any]
) -> None:
    client = orchestrator(closing, private_key_path=key_file, lifetime=600)
    token = await client.tokens.get()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, keys.public_pem, algorithms=["RS256"])
    assert set(claims) == {"droplet_id", "permissions", "iat", "exp"}
    assert claims["droplet_id"] == 12 and isinstance(claims["droplet_id"], int)
    assert claims["permissions"] == ["read", "write"]
    assert claims["exp"] - claims["iat"] == 600


async def test_a_pre_issued_token_is_preferred_until_it_expires(
    key_file: Path, keys: KeyPair, closing: list[Any]
) -> None:
    static = keys.token(droplet_id=12, permissions=["read"])
    assert await orchestrator(closing, token=static, private_key_path=key_file).tokens.get() == (
        static
    )
    expired = keys.token(ttl=-60, droplet_id=12)
    minted = await orchestrator(closing, token=expired, private_key_path=key_file).tokens.get()
    assert minted != expired
    assert set(jwt.decode(minted, options={"verify_signature": False})) == {
        "droplet_id",
        "permissions",
        "iat",
        "exp",
    }


async def test_the_orchestrator_auth_endpoint_is_used_without_a_key(
    orchestrator_issuer: IssuerServer, keys: KeyPair, closing: list[Any]
) -> None:
    client = orchestrator(closing, orchestrator_issuer.url, secret="orch-secret")
    token = await client.tokens.get()
    assert jwt.decode(token, keys.public_pem, algorithms=["RS256"])["droplet_id"] == 12
    (request,) = orchestrator_issuer.requests
    assert request["body"] == {"droplet_id": 12, "secret_key": "orch-secret"}
    assert request["authorization"] is None  # the token endpoint is not behind the token


async def test_the_registry_is_the_last_resort(
    orchestrator_issuer: IssuerServer, registry_issuer: IssuerServer, closing: list[Any]
) -> None:
    registry = RegistryClient(base_url=registry_issuer.url, api_key="reg-key", timeout=2)
    closing.append(registry)
    client = orchestrator(
        closing, orchestrator_issuer.url, secret="wrong-secret", registry=registry
    )
    token = await client.tokens.get()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "droplet-12"
    assert len(orchestrator_issuer.requests) == 1  # tried first, refused
    assert registry_issuer.requests[0]["query"] == {"droplet_id": "12"}
    assert registry_issuer.requests[0]["key"] == "reg-key"
