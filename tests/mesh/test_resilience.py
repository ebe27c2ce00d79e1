from __future__ import annotations

import asyncio
import random
import time

import pytest

from app.mesh.peers import PeerRejected, PeerUnavailable
from app.mesh.resilience import (
    Backoff,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    RetryPolicy,
    backoff_delay,
    retry,
)


def state_of(breaker: CircuitBreaker) -> CircuitState:
    # A function call, so the type checker does not narrow the property across clock moves.
    return breaker.state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    clock = FakeClock()
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


async def test_half_open_lets_one_trial_through_and_success_closes() -> None:
    clock = FakeClock()
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
    clock = FakeClock()
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
    assert breaker.consecutive_failures == 0


async def test_rejections_are_answers_not_failures() -> None:
    breaker = CircuitBreaker(peer="orchestrator", failure_threshold=2, clock=FakeClock())
    for _ in range(5):
        with pytest.raises(PeerRejected):
            await breaker.call(Operation(PeerRejected("orchestrator", "no")))
    assert state_of(breaker) is CircuitState.CLOSED


async def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(peer="orchestrator", failure_threshold=2, clock=FakeClock())
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    await breaker.call(Operation())
    with pytest.raises(PeerUnavailable):
        await breaker.call(Operation(down()))
    assert state_of(breaker) is CircuitState.CLOSED


async def test_retry_backs_off_with_full_jitter_then_succeeds() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    op = Operation(down(), down())
    policy = RetryPolicy(attempts=3, base_delay=0.5, max_delay=0.75)
    assert await retry(op, policy=policy, sleep=sleep, rng=random.Random(7)) == "ok"
    assert op.calls == 3
    assert len(slept) == 2
    assert 0.0 <= slept[0] <= 0.5
    assert 0.0 <= slept[1] <= 0.75  # capped: 0.5 * 2 = 1.0 > max_delay


async def test_retry_gives_up_after_the_last_attempt() -> None:
    async def sleep(seconds: float) -> None:
        return None

    op = Operation(down(), down(), down(), down())
    with pytest.raises(PeerUnavailable):
        await retry(op, policy=RetryPolicy(attempts=3), sleep=sleep)
    assert op.calls == 3


@pytest.mark.parametrize("error", [PeerRejected("registry", "no"), CircuitOpen("registry", "open")])
async def test_retry_never_repeats_rejections_or_an_open_circuit(error: Exception) -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("must not sleep")

    op = Operation(error)
    with pytest.raises(type(error)):
        await retry(op, policy=RetryPolicy(attempts=5), sleep=sleep)
    assert op.calls == 1


def test_backoff_delays_grow_are_capped_and_never_zero() -> None:
    rng = random.Random(1)
    for attempt in range(10):
        delay = backoff_delay(attempt, base=1.0, cap=8.0, rng=rng)
        assert 0.0 <= delay <= min(8.0, 2**attempt)
    backoff = Backoff(base=1.0, cap=4.0, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(20)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    backoff.reset()
    assert backoff.next_delay() <= 1.0
