from __future__ import annotations

import asyncio

import pytest
from tenacity import RetryCallState

from app.utils.retry import (
    RetryPolicy,
    any_failure,
    call_with_retry,
    restart_backoff,
    retrying,
)


class Flaky:
    """Fails with the queued errors, then answers "ok"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    """A sleep that only records: no test waits for real."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def is_oserror(failure: Exception) -> bool:
    return isinstance(failure, OSError)


async def test_full_jitter_stays_in_a_growing_capped_window() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=1.5)
    op = Flaky(*(OSError() for _ in range(5)))
    assert await call_with_retry(op, policy, retry=is_oserror, sleep=sleeps) == "ok"
    assert op.calls == 6
    windows = [0.5, 1.0, 1.5, 1.5, 1.5]  # base * 2**(n-1), capped
    assert all(0.0 <= wait <= top for wait, top in zip(sleeps.waits, windows, strict=True))


async def test_the_last_failure_is_raised_as_it_is() -> None:
    sleeps = Sleeps()
    op = Flaky(OSError("1"), OSError("2"), OSError("3"))
    with pytest.raises(OSError, match="2"):
        await call_with_retry(op, RetryPolicy(attempts=2), retry=is_oserror, sleep=sleeps)
    assert op.calls == 2 and len(sleeps.waits) == 1


async def test_failures_the_predicate_refuses_are_not_retried() -> None:
    sleeps = Sleeps()
    op = Flaky(ValueError("no"))
    with pytest.raises(ValueError):
        await call_with_retry(op, RetryPolicy(attempts=5), retry=is_oserror, sleep=sleeps)
    assert op.calls == 1 and sleeps.waits == []


async def test_each_failure_reaches_the_hook_with_its_attempt_number() -> None:
    sleeps = Sleeps()
    seen: list[tuple[int, str]] = []

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        seen.append((state.attempt_number, str(state.outcome.exception())))

    op = Flaky(OSError("first"), OSError("second"))
    result = await call_with_retry(
        op, RetryPolicy(attempts=3), retry=is_oserror, sleep=sleeps, before_sleep=before_sleep
    )
    assert result == "ok" and op.calls == 3
    assert seen == [(1, "first"), (2, "second")]


async def test_a_single_attempt_policy_raises_the_first_failure() -> None:
    sleeps = Sleeps()
    op = Flaky(OSError("only"))
    with pytest.raises(OSError, match="only"):
        await call_with_retry(op, RetryPolicy(attempts=1), retry=is_oserror, sleep=sleeps)
    assert op.calls == 1 and sleeps.waits == []


async def test_cancellation_is_never_retried() -> None:
    sleeps = Sleeps()

    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await call_with_retry(cancelled, RetryPolicy(attempts=5), retry=any_failure, sleep=sleeps)
    assert sleeps.waits == []


async def test_without_jitter_the_waits_double_up_to_the_cap() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=None, base_delay=0.5, max_delay=3.0, jitter=False)
    op = Flaky(*(OSError() for _ in range(5)))
    assert await call_with_retry(op, policy, retry=is_oserror, sleep=sleeps) == "ok"
    assert sleeps.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_a_floor_keeps_never_ending_loops_from_spinning() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=None, base_delay=1.0, max_delay=4.0, min_delay=0.5)
    op = Flaky(*(OSError() for _ in range(30)))
    await call_with_retry(op, policy, retry=is_oserror, sleep=sleeps)
    assert all(0.5 <= wait <= 4.0 for wait in sleeps.waits)


class Asked(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def asked(failure: Exception) -> float | None:
    return failure.seconds if isinstance(failure, Asked) else None


async def test_a_failure_may_ask_for_a_longer_wait_within_the_cap() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=2, base_delay=0.25, max_delay=2.0, jitter=False)
    op = Flaky(Asked(1.5))
    result = await call_with_retry(op, policy, retry=any_failure, sleep=sleeps, retry_after=asked)
    assert result == "ok" and sleeps.waits == [1.5]


async def test_a_wait_longer_than_the_cap_fails_at_once() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=2, base_delay=0.25, max_delay=2.0, jitter=False)
    op = Flaky(Asked(30))
    with pytest.raises(Asked):
        await call_with_retry(op, policy, retry=any_failure, sleep=sleeps, retry_after=asked)
    assert op.calls == 1 and sleeps.waits == []


async def test_restarting_the_backoff_after_getting_through() -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=None, base_delay=1.0, max_delay=60.0, jitter=False)
    outcomes = ["fail", "fail", "fail", "through", "fail", "done"]
    async for attempt in retrying(policy, retry=any_failure, sleep=sleeps):
        with attempt:
            outcome = outcomes.pop(0)
            if outcome == "through":
                restart_backoff(attempt.retry_state)
            if outcome != "done":
                raise OSError(outcome)
    # 1, 2, 4 while failing; after getting through the next outage starts at 1 again.
    assert sleeps.waits == [1.0, 2.0, 4.0, 1.0, 2.0]


def test_policies_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(min_delay=3.0, max_delay=2.0)


def test_restart_backoff_counts_from_the_first_attempt() -> None:
    state = RetryCallState(
        retry_object=retrying(RetryPolicy(), retry=any_failure), fn=None, args=(), kwargs={}
    )
    state.attempt_number = 7
    restart_backoff(state)
    assert state.attempt_number == 1
