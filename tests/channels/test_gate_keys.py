"""The gate asks the key source to look again when a token's key may be newer than ours."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.channels.errors import ApiError
from app.channels.gate import Gate
from app.config import Settings
from app.mesh.keys import PublicKeySource, PublishedKey
from app.mesh.peers import PeerUnavailable
from tests.conftest import KeyPair
from tests.fakes.clock import Clock


class Publisher:
    def __init__(self, keys: KeyPair | None) -> None:
        self.keys = keys
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self) -> PublishedKey:
        self.calls += 1
        self.called.set()
        if self.keys is None:
            raise PeerUnavailable("registry", "the Registry is unreachable")
        return PublishedKey(pem=self.keys.public_pem)

    async def asked(self, times: int) -> None:
        # The fetch awaits nothing, so once it has been asked the refresh is complete.
        async with asyncio.timeout(5):
            while self.calls < times:
                await self.called.wait()
                self.called.clear()


def signed(keys: KeyPair, kid: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "alice", "permissions": ["read"], "iat": now, "exp": now + 300, **claims}
    headers = {"kid": kid} if kid else None
    return jwt.encode(body, keys.private_pem, algorithm="RS256", headers=headers)


@pytest.fixture
async def gate_for() -> AsyncIterator[Any]:
    sources: list[PublicKeySource] = []

    async def build(publisher: Publisher, *, key_file: Path | None = None) -> tuple[Gate, Clock]:
        clock = Clock()
        source = PublicKeySource(
            key_file=key_file or Path("/nonexistent/registry_public_key.pem"),
            fetch=publisher,
            clock=clock,
        )
        source.load_file()
        await source.start()
        sources.append(source)
        gate = Gate(
            settings=Settings(_env_file=None),
            public_keys=source,
            turn_limiter=None,
            mesh_limiter=None,
        )
        return gate, clock

    yield build
    for source in sources:
        await source.stop()


async def refused(gate: Gate, token: str) -> str:
    with pytest.raises(ApiError) as caught:
        await gate.verify(token)
    assert caught.value.status_code == 401
    return str(caught.value.message)


async def test_a_key_url_down_at_boot_is_picked_up_without_a_restart(
    gate_for: Any, keys: KeyPair
) -> None:
    publisher = Publisher(None)
    gate, clock = await gate_for(publisher)
    token = signed(keys)
    assert await refused(gate, token) == "The verification key is not available yet; retry shortly"
    assert publisher.calls == 1  # the boot fetch; the next is rate-limited
    publisher.keys = keys
    clock.now += 30
    assert (await refused(gate, token)).startswith("The verification key is not available yet")
    await publisher.asked(2)
    assert (await gate.verify(token)).identity.id == "alice"


async def test_a_rotated_key_is_fetched_when_a_token_names_a_new_key_id(
    gate_for: Any, keys: KeyPair, other_keys: KeyPair
) -> None:
    publisher = Publisher(keys)
    gate, clock = await gate_for(publisher)
    assert (await gate.verify(signed(keys, kid="k1"))).identity.id == "alice"
    # The Registry rotates to a new key; its tokens name the new key id.
    publisher.keys = other_keys
    clock.now += 30
    rotated = signed(other_keys, kid="k2")
    assert await refused(gate, rotated) == "token signature or claims invalid"
    await publisher.asked(2)
    assert (await gate.verify(rotated)).identity.id == "alice"


async def test_forgeries_under_a_known_key_id_and_other_refusals_fetch_nothing(
    gate_for: Any, keys: KeyPair, other_keys: KeyPair
) -> None:
    publisher = Publisher(keys)
    gate, clock = await gate_for(publisher)
    await gate.verify(signed(keys, kid="k1"))
    clock.now += 60
    await refused(gate, signed(other_keys, kid="k1"))  # signed by someone else, under our key's id
    await refused(gate, signed(keys, exp=int(time.time()) - 600))  # expired, not a key problem
    await refused(gate, jwt.encode({"sub": "x", "exp": 9e9}, "s" * 32, algorithm="HS256"))
    await asyncio.sleep(0)
    assert publisher.calls == 1


async def test_a_flood_of_bad_tokens_costs_one_fetch_per_gap(
    gate_for: Any, keys: KeyPair, other_keys: KeyPair
) -> None:
    publisher = Publisher(keys)
    gate, clock = await gate_for(publisher)
    clock.now += 30
    for n in range(10):
        await refused(gate, signed(other_keys, kid=f"random-{n}"))
    await publisher.asked(2)
    await asyncio.sleep(0)
    assert publisher.calls == 2


async def test_a_file_configured_key_is_never_replaced(
    gate_for: Any, keys: KeyPair, other_keys: KeyPair, public_key_file: Path
) -> None:
    publisher = Publisher(other_keys)
    gate, clock = await gate_for(publisher, key_file=public_key_file)
    clock.now += 60
    await refused(gate, signed(other_keys, kid="k2"))
    await asyncio.sleep(0)
    assert publisher.calls == 0
    assert (await gate.verify(signed(keys))).identity.id == "alice"
