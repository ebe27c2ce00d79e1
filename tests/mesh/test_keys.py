"""Which key verifies inbound JWTs, and when it is fetched again (no test waits for real)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.mesh.keys import PublicKeySource, PublishedKey
from app.mesh.peers import PeerUnavailable
from tests.mesh.support import Clock, Ticks


class Publisher:
    """The Registry's key endpoint, in memory: serves `key`, or fails while `down`."""

    def __init__(self, pem: bytes = b"-----BEGIN PUBLIC KEY-----\none\n", kid: str | None = None):
        self.key = PublishedKey(pem=pem, kid=kid)
        self.down = False
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self) -> PublishedKey:
        self.calls += 1
        self.called.set()
        if self.down:
            raise PeerUnavailable("registry", "the Registry is unreachable")
        return self.key


async def fetched(publisher: Publisher, calls: int) -> None:
    """Wait until the publisher has been asked `calls` times. Its answer involves no await, so
    by the time this returns the refresh that asked has finished too."""
    async with asyncio.timeout(5):
        while publisher.calls < calls:
            await publisher.called.wait()
            publisher.called.clear()


@pytest.fixture
async def stopping() -> AsyncIterator[list[PublicKeySource]]:
    sources: list[PublicKeySource] = []
    yield sources
    for source in sources:
        await source.stop()


def make(
    stopping: list[PublicKeySource],
    publisher: Publisher | None,
    *,
    key_file: Path = Path("/nonexistent/registry_public_key.pem"),
    clock: Clock | None = None,
    sleep: Ticks | None = None,
) -> PublicKeySource:
    source = PublicKeySource(
        key_file=key_file,
        fetch=publisher,
        refresh_interval=300.0,
        min_gap=30.0,
        clock=clock or Clock(),
        sleep=sleep or Ticks(),
    )
    stopping.append(source)
    return source


async def test_a_file_wins_and_is_never_fetched_again(
    tmp_path: Path, stopping: list[PublicKeySource]
) -> None:
    key_file = tmp_path / "registry_public_key.pem"
    key_file.write_bytes(b"-----BEGIN PUBLIC KEY-----\nfile\n")
    publisher = Publisher()
    source = make(stopping, publisher, key_file=key_file)
    assert source.load_file()
    await source.start()
    source.request_refresh()
    source.signature_failed(None)
    assert source.pem == key_file.read_bytes()
    assert not source.refreshable and publisher.calls == 0


async def test_the_published_key_is_fetched_at_start_and_every_interval(
    stopping: list[PublicKeySource],
) -> None:
    publisher, ticks = Publisher(), Ticks()
    source = make(stopping, publisher, sleep=ticks)
    await source.start()
    assert source.pem == publisher.key.pem and publisher.calls == 1
    publisher.key = PublishedKey(pem=b"-----BEGIN PUBLIC KEY-----\ntwo\n")
    await ticks.round()
    assert source.pem == publisher.key.pem and publisher.calls == 2
    assert ticks.asked == [300.0, 300.0]


async def test_a_publisher_down_at_boot_is_asked_again_soon_and_its_key_used(
    stopping: list[PublicKeySource],
) -> None:
    publisher, ticks = Publisher(), Ticks()
    publisher.down = True
    source = make(stopping, publisher, sleep=ticks)
    await source.start()
    assert source.pem is None
    await ticks.round()  # still down
    assert source.pem is None
    publisher.down = False
    await ticks.round()
    assert source.pem == publisher.key.pem
    # Without a key the loop comes back after the short gap; with one, after the interval.
    assert ticks.asked == [30.0, 30.0, 300.0]


async def test_on_demand_refreshes_are_rate_limited(stopping: list[PublicKeySource]) -> None:
    clock, publisher = Clock(), Publisher()
    source = make(stopping, publisher, clock=clock)
    await source.start()
    clock.now += 29.0
    source.request_refresh()
    assert publisher.calls == 1  # too soon after the last fetch
    clock.now += 1.0
    source.request_refresh()
    source.request_refresh()  # one is already on its way
    await fetched(publisher, 2)
    clock.now += 10.0
    source.request_refresh()
    await asyncio.sleep(0)
    assert publisher.calls == 2


async def test_a_signature_failure_under_an_unknown_key_id_looks_for_a_new_key(
    stopping: list[PublicKeySource],
) -> None:
    clock, publisher = Clock(), Publisher(kid="k1")
    source = make(stopping, publisher, clock=clock)
    await source.start()
    source.verified("seen-before")
    clock.now += 60
    # Under the published key's id or one seen to verify, a failure is a forgery: no fetch.
    source.signature_failed("k1")
    source.signature_failed("seen-before")
    await asyncio.sleep(0)
    assert publisher.calls == 1
    # Under a new id (or none at all) the signer may have rotated its key.
    publisher.key = PublishedKey(pem=b"-----BEGIN PUBLIC KEY-----\nk2\n", kid="k2")
    source.signature_failed("k2")
    await fetched(publisher, 2)
    assert source.pem == publisher.key.pem
    # Ids that verified with the old key are forgotten with it.
    clock.now += 60
    source.signature_failed("seen-before")
    await fetched(publisher, 3)


async def test_a_failed_fetch_keeps_the_key_we_have(stopping: list[PublicKeySource]) -> None:
    clock, publisher = Clock(), Publisher()
    source = make(stopping, publisher, clock=clock)
    await source.start()
    publisher.down = True
    clock.now += 60
    source.signature_failed(None)
    await fetched(publisher, 2)
    assert source.pem == publisher.key.pem


async def test_a_publisher_that_does_not_answer_does_not_hold_back_the_start(
    stopping: list[PublicKeySource],
) -> None:
    answer = asyncio.Event()
    key = PublishedKey(pem=b"-----BEGIN PUBLIC KEY-----\nslow\n")

    async def silent() -> PublishedKey:
        await answer.wait()  # accepts the connection, answers only when told to
        return key

    source = PublicKeySource(
        key_file=Path("/nonexistent/registry_public_key.pem"),
        fetch=silent,
        clock=Clock(),
        sleep=Ticks(),
        start_wait_s=0.0,
    )
    stopping.append(source)
    await source.start()  # returns although the fetch is pending
    assert source.pem is None
    source.request_refresh()  # the first fetch is still the one in flight: no second one
    answer.set()
    for _ in range(10):  # the pending fetch finishes within a few loop steps
        await asyncio.sleep(0)
    assert source.pem == key.pem
