"""The service's one retry policy, run by tenacity: exponential backoff, full jitter, a cap.

Every retry loop goes through here: idempotent peer calls, the lifecycle's registration, report
and reconnect loops, the Redis event bus and the model planners. Jitter keeps droplets that
recover together from hammering a peer in lock-step; the cap bounds any one wait; `sleep` is
injectable so tests run every loop without waiting for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, stop_never
from tenacity.retry import retry_if_exception
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
Retryable = Callable[[Exception], bool]
"""Whether a failure may be retried; cancellation and other non-`Exception`s never are."""
RetryAfter = Callable[[Exception], float | None]
"""How long a failure itself asks us to wait (an HTTP 429's Retry-After), if it says."""
BeforeSleep = Callable[[RetryCallState], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Before retry n (1, 2, ...) wait a random time in
    [min_delay, min(max_delay, base_delay * 2**(n-1))], or the top of that window without jitter.
    """

    attempts: int | None = 3
    """Tries in all, the first included; None: until one succeeds (loops that must get through)."""
    base_delay: float = 0.2
    max_delay: float = 2.0
    min_delay: float = 0.0
    """A floor for loops that never give up, so they cannot spin at full jitter's zero."""
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0.0 <= self.min_delay <= self.max_delay or self.base_delay < 0.0:
            raise ValueError("delays must satisfy 0 <= min_delay <= max_delay, base_delay >= 0")

    def backoff(self) -> wait_base:
        window = wait_random_exponential if self.jitter else wait_exponential
        return window(multiplier=self.base_delay, max=self.max_delay, min=self.min_delay)


class _Wait(wait_base):
    """The policy's backoff, raised to what the failure asks for (never above the cap: a longer
    request is not retried at all, see `retrying`)."""

    def __init__(self, policy: RetryPolicy, retry_after: RetryAfter | None) -> None:
        self._backoff = policy.backoff()
        self._retry_after = retry_after

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._backoff(retry_state)
        asked = _asked(retry_state, self._retry_after)
        return delay if asked is None else max(delay, asked)


def _asked(retry_state: RetryCallState, retry_after: RetryAfter | None) -> float | None:
    outcome = retry_state.outcome
    if retry_after is None or outcome is None or not outcome.failed:
        return None
    failure = outcome.exception()
    return retry_after(failure) if isinstance(failure, Exception) else None


def retrying(
    policy: RetryPolicy,
    *,
    retry: Retryable,
    sleep: Sleep = asyncio.sleep,
    retry_after: RetryAfter | None = None,
    before_sleep: BeforeSleep | None = None,
) -> AsyncRetrying:
    """A tenacity controller for one run of `policy`. A failure `retry` refuses, and the last
    one, are re-raised as they are (never wrapped), so callers catch their own errors."""

    def retryable(failure: BaseException) -> bool:
        if not isinstance(failure, Exception) or not retry(failure):
            return False
        asked = retry_after(failure) if retry_after is not None else None
        # Waiting longer than the cap is not worth it (an operator is waiting): fail at once.
        return asked is None or asked <= policy.max_delay

    return AsyncRetrying(
        stop=stop_never if policy.attempts is None else stop_after_attempt(policy.attempts),
        wait=_Wait(policy, retry_after),
        retry=retry_if_exception(retryable),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


async def call_with_retry(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retry: Retryable,
    sleep: Sleep = asyncio.sleep,
    retry_after: RetryAfter | None = None,
    before_sleep: BeforeSleep | None = None,
) -> T:
    """`operation()`, tried as `policy` allows."""
    # Most calls succeed at once, and building and running tenacity's controller costs ~40 us
    # (measured), on every peer read of every turn. So the first try runs bare; only a failure
    # sets the controller up, which is handed that failure as its first attempt's outcome, so
    # what follows (retry or not, waits, hooks, attempts counted) is exactly as before.
    try:
        return await operation()
    except Exception as failure:
        first: Exception | None = failure

    async def attempt_again() -> T:
        nonlocal first
        if first is not None:
            failure, first = first, None
            raise failure
        return await operation()

    controller = retrying(
        policy, retry=retry, sleep=sleep, retry_after=retry_after, before_sleep=before_sleep
    )
    async for attempt in controller:
        with attempt:
            return await attempt_again()
    raise AssertionError("unreachable: tenacity re-raises the last failure")


def restart_backoff(retry_state: RetryCallState) -> None:
    """Count the next wait from the first again. For loops that follow a connection forever: a
    connection that got through ends one outage, so the next one must not inherit its long waits.
    """
    retry_state.attempt_number = 1


def any_failure(failure: Exception) -> bool:
    """For loops that retry whatever went wrong (they log it themselves)."""
    return True
