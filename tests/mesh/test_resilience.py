from __future__ import annotations

import asyncio
import time

import pytest

from app.mesh.peers import PeerRejected, PeerUnavailable
from app.mesh.resilience import (
    PEER_RETRY,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    transient,
)
from app.utils.retry import RetryPolicy, call_with_retry
from tests.fakes.clock import Clock


def state_of(breaker: CircuitBreaker) -> CircuitState:
    # A function call, so the type checker does not narrow the property across clock moves.
    return breaker.state


class Operation:
    """Counts calls; fails with the queued errors, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def down() -> PeerUnavailable:
    return PeerUnavailable("orchestrator", "the Orchestrator is unreachable")


async def test_breaker_opens_after_threshold_and_then_fails_fast() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        peer="orchestrator",
        label="Orchestrator",
        failure_threshold=3,
        reset_timeout=30.0,
        clock=clock,
    )
    op = Operation(down(), down(), down())
    for _ in range(3):
        with pytest.raises(PeerUnavailable):
            await breaker.call(op)
    assert state_of(breaker) is CircuitState.OPEN

    started = time.perf_counter()
    for _ in range(1000):
        with pytest.raises(CircuitOpen) as caught:
            await breaker.call(op)
    per_call = (time.perf_counter() - started) / 1000
    assert op.calls == 3  # the operation was never run while open
    assert per_call < 0.001
    assert "Orchestrator is unavailable" in caught.value.message
    assert isinstance(caught.value, PeerUnavailable)
    assert caught.value.reached is False  # nothing was sent


async def test_half_open_lets_one_trial_through_and_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(peer="registry", failure_threshold=1, reset_timeout=10.0, clock=clock)
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    assert state_of(breaker) is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(10.0)

    clock.now += 10.0
    assert state_of(breaker) is CircuitState.HALF_OPEN
    release = asyncio.Event()

    async def slow_trial() -> str:
        await release.wait()
        return "trial"

    trial = asyncio.create_task(breaker.call(slow_trial))
    await asyncio.sleep(0)
    # While the trial is in flight, everyone else still fails fast.
    with pytest.raises(CircuitOpen):
        await breaker.call(Operation())
    release.set()
    assert await trial == "trial"
    assert state_of(breaker) is CircuitState.CLOSED
    assert await breaker.call(Operation()) == "ok"


async def test_failed_trial_reopens_for_a_full_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker(peer="registry", failure_threshold=2, reset_timeout=5.0, clock=clock)
    for _ in range(2):
        with pytest.raises(PeerUnavailable):
            await breaker.call(Operation(down()))
    clock.now += 5.0
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    assert state_of(breaker) is CircuitState.OPEN
    clock.now += 4.9
    assert state_of(breaker) is CircuitState.OPEN
    clock.now += 0.1
    assert await breaker.call(Operation()) == "ok"
    assert state_of(breaker) is CircuitState.CLOSED
    # The count started over: one more failure is not enough to open again.
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    assert state_of(breaker) is CircuitState.CLOSED


async def test_rejections_are_answers_not_failures() -> None:
    breaker = CircuitBreaker(peer="orchestrator", failure_threshold=2, clock=Clock())
    for _ in range(5):
        with pytest.raises(PeerRejected):
            await breaker.call(Operation(PeerRejected("orchestrator", "no")))
    assert state_of(breaker) is CircuitState.CLOSED


async def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(peer="orchestrator", failure_threshold=2, clock=Clock())
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    await breaker.call(Operation())
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    assert state_of(breaker) is CircuitState.CLOSED


async def test_peer_calls_retry_unreachable_peers_only() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    op = Operation(down(), down())
    assert await call_with_retry(op, PEER_RETRY, retry=transient, sleep=sleep) == "ok"
    assert op.calls == 3
    assert len(slept) == 2 and all(0.0 <= s <= PEER_RETRY.max_delay for s in slept)


@pytest.mark.parametrize("error", [PeerRejected("registry", "no"), CircuitOpen("registry", "open")])
async def test_rejections_and_an_open_circuit_are_never_repeated(error: Exception) -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("must not sleep")

    op = Operation(error)
    with pytest.raises(type(error)):
        await call_with_retry(op, RetryPolicy(attempts=5), retry=transient, sleep=sleep)
    assert op.calls == 1
