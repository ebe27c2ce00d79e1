from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import jwt
import pytest

from app.mesh.peers import PeerNotFound, PeerRejected, PeerUnavailable
from app.mesh.registry import RegistryClient, droplet_id_from_wire
from app.mesh.resilience import CircuitOpen, CircuitState
from sandbox.testing import MeshHandle, start_mesh
from tests.conftest import KeyPair
from tests.mesh.support import FAST_RETRY, Clock, no_wait, set_fault


def state_of(client: RegistryClient) -> CircuitState:
    return client.breaker.state


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def mesh(key_dir: Path) -> Iterator[MeshHandle]:
    handle = start_mesh(key_dir=key_dir, deployed_registry=True)
    yield handle
    handle.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def registry(mesh: MeshHandle, clock: Clock) -> AsyncIterator[RegistryClient]:
    client = RegistryClient(
        base_url=mesh.registry_url,
        api_key=mesh.registry_key,
        timeout=1.0,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
        failure_threshold=3,
        reset_timeout=30.0,
        clock=clock,
    )
    yield client
    await client.aclose()
    await set_fault(mesh.registry_url, "none")


async def raw_rows(mesh: MeshHandle) -> list[dict[str, object]]:
    async with httpx2.AsyncClient() as client:
        response = await client.get(
            f"{mesh.registry_url}/registry/droplets", headers={"X-Registry-Key": mesh.registry_key}
        )
        rows: list[dict[str, object]] = response.json()
        return rows


@pytest.mark.parametrize(
    ("wire", "fqdn", "expected"),
    [
        ("droplet-12", None, 12),
        ("droplet_7", None, 7),
        ("14", None, 14),
        (5, None, 5),
        ("drop14.local", "drop14.local", 14),
        (None, "drop18.fullpotential.ai", 18),
        ("chat.example.com", "chat.example.com", None),
    ],
)
def test_wire_ids(wire: str | int | None, fqdn: str | None, expected: int | None) -> None:
    assert droplet_id_from_wire(wire, fqdn) == expected


async def test_register_sends_every_field_and_heartbeat_updates_the_row(
    registry: RegistryClient, mesh: MeshHandle
) -> None:
    await registry.register(
        droplet_id=41,
        name="chat-orchestrator",
        fqdn="drop41.local",
        ip="127.0.0.1",
        role="chat_orchestrator",
        env="test",
        version="1.2.3",
        cost_hour=0.5,
        trace_id="trace-1",
    )
    row = next(r for r in await raw_rows(mesh) if r["id"] == "droplet-41")
    assert {k: row[k] for k in ("name", "fqdn", "ip", "role", "env", "version", "cost_hour")} == {
        "name": "chat-orchestrator",
        "fqdn": "drop41.local",
        "ip": "127.0.0.1",
        "role": "chat_orchestrator",
        "env": "test",
        "version": "1.2.3",
        "cost_hour": 0.5,
    }
    await registry.heartbeat(droplet_id=41, cpu=12.5, mem=140.0, disk=-3)
    droplet = next(d for d in await registry.list_droplets() if d.id == 41)
    assert (droplet.cpu, droplet.mem, droplet.disk) == (12.5, 100.0, 0.0)
    assert droplet.status == "healthy"
    assert droplet.last_seen is not None and droplet.last_seen.tzinfo is not None
    assert droplet.sources == ["registry"]


async def test_heartbeat_for_an_unknown_droplet_is_not_found(registry: RegistryClient) -> None:
    with pytest.raises(PeerNotFound) as caught:
        await registry.heartbeat(droplet_id=99, cpu=1, mem=1, disk=1)
    assert caught.value.message == "droplet 99 is not registered with the Registry"


async def test_the_list_parses_string_ids(registry: RegistryClient) -> None:
    droplets = {d.id: d for d in await registry.list_droplets()}
    assert {1, 2, 10, 14, 16, 18} <= droplets.keys()
    assert droplets[14].role == "visibility_deck"
    assert await registry.health() is True


async def test_a_wrong_key_is_rejected(mesh: MeshHandle) -> None:
    client = RegistryClient(base_url=mesh.registry_url, api_key="wrong", timeout=1.0)
    try:
        with pytest.raises(PeerRejected) as caught:
            await client.list_droplets()
        assert caught.value.status_code == 401
        assert "wrong" not in caught.value.message
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error500", "the Registry failed to process the request"),
        ("garbage", "the Registry answered with something unreadable"),
        ("drop", "the connection to the Registry broke off"),
    ],
)
async def test_faults_become_safe_unavailability(
    registry: RegistryClient, mesh: MeshHandle, mode: str, message: str
) -> None:
    await set_fault(mesh.registry_url, mode)
    with pytest.raises(PeerUnavailable) as caught:
        await registry.list_droplets()
    assert caught.value.message == message
    assert await registry.health() is False


async def test_slow_answers_time_out(registry: RegistryClient, mesh: MeshHandle) -> None:
    impatient = RegistryClient(
        base_url=mesh.registry_url,
        api_key=mesh.registry_key,
        timeout=0.2,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
    )
    await set_fault(mesh.registry_url, "slow", delay=0.5)
    try:
        with pytest.raises(PeerUnavailable) as caught:
            await impatient.list_droplets()
        assert caught.value.message == "the Registry did not answer in time"
    finally:
        await impatient.aclose()


async def test_breaker_opens_on_a_failing_registry_and_closes_once_it_recovers(
    registry: RegistryClient, mesh: MeshHandle, clock: Clock
) -> None:
    await set_fault(mesh.registry_url, "error500")
    for _ in range(2):  # 2 calls x 2 attempts >= threshold 3
        with pytest.raises(PeerUnavailable):
            await registry.list_droplets()
    assert state_of(registry) is CircuitState.OPEN
    with pytest.raises(CircuitOpen):
        await registry.heartbeat(droplet_id=1, cpu=1, mem=1, disk=1)
    await set_fault(mesh.registry_url, "none")
    clock.now += 30.0
    assert state_of(registry) is CircuitState.HALF_OPEN
    assert len(await registry.list_droplets()) >= 6
    assert state_of(registry) is CircuitState.CLOSED


async def test_deployed_registry_token_and_public_key(
    registry: RegistryClient, mesh: MeshHandle
) -> None:
    issued = await registry.issue_token(12)
    key = await registry.fetch_public_key()
    claims = jwt.decode(
        issued.token, key.pem, algorithms=["RS256"], audience="fullpotential.droplets"
    )
    assert claims["sub"] in ("droplet-12", "12")
    assert issued.expires_at == claims["exp"] and issued.issued_at == claims["iat"]
    assert mesh.registry_public_key_path is not None
    expected = await asyncio.to_thread(Path(mesh.registry_public_key_path).read_bytes)
    assert key.pem.strip() == expected.strip()


async def test_public_registry_has_no_token_routes(key_dir: Path) -> None:
    handle = start_mesh(key_dir=key_dir, seed=False)
    client = RegistryClient(base_url=handle.registry_url, api_key=handle.registry_key)
    try:
        with pytest.raises(PeerNotFound):
            await client.issue_token(12)
        with pytest.raises(PeerNotFound):
            await client.fetch_public_key()
    finally:
        await client.aclose()
        await asyncio.to_thread(handle.stop)


def published(body: object) -> RegistryClient:
    """A Registry whose key URL answers `body` (text when a str), on a scripted transport."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        if isinstance(body, str):
            return httpx2.Response(200, text=body)
        return httpx2.Response(200, json=body)

    return RegistryClient(
        base_url="http://registry.test",
        api_key="k",
        client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
    )


def jwks(keys: KeyPair) -> dict[str, object]:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    public = load_pem_public_key(keys.public_pem)
    assert isinstance(public, RSAPublicKey)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    return {"keys": [{**jwk, "kid": "k-1"}]}


@pytest.mark.parametrize("shape", ["bare", "deployed", "jwks"])
async def test_the_published_key_comes_in_each_of_its_shapes(keys: KeyPair, shape: str) -> None:
    body: object = {
        "bare": keys.public_pem.decode(),
        "deployed": {"public_key": keys.public_pem.decode()},
        "jwks": jwks(keys),
    }[shape]
    key = await published(body).fetch_public_key(url="http://keys.test/registry.pem")
    token = keys.token(droplet_id=18)
    assert jwt.decode(token, key.pem, algorithms=["RS256"])["droplet_id"] == 18
    assert key.kid == ("k-1" if shape == "jwks" else None)


@pytest.mark.parametrize(
    "body",
    [
        "not a key",
        {"public_key": "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----"},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        {"something": "else"},
    ],
)
async def test_an_answer_without_a_usable_key_is_unexpected(body: object) -> None:
    with pytest.raises(PeerUnavailable) as caught:
        await published(body).fetch_public_key()
    assert caught.value.message == "the Registry answered in an unexpected format"
