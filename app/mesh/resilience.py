"""Failure handling shared by the peer adapters: a circuit breaker and what they retry.

A dead peer must cost a chat turn microseconds, not a connect timeout per call, so each adapter
puts its calls behind one breaker; only idempotent calls are retried (`app.utils.retry`, full
jitter, so a fleet of droplets recovering together does not hammer a peer in lock-step).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

import structlog

from app.mesh.peers import PeerUnavailable
from app.mesh.tokens import TokenUnavailable
from app.utils.retry import RetryPolicy, Sleep, call_with_retry

log = structlog.get_logger(__name__)

T = TypeVar("T")

Clock = Callable[[], float]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(PeerUnavailable):
    """Raised without touching the network while a peer's breaker is open."""


class CircuitBreaker:
    """Closed -> open after `failure_threshold` consecutive failures; half-open after
    `reset_timeout`, where a single trial call decides between closed and open again.

    Only `PeerUnavailable` counts as a failure: a peer that answers "no" (4xx) is healthy.
    """

    def __init__(
        self,
        *,
        peer: str,
        label: str | None = None,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._peer = peer
        self._label = label or peer
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self._reset_timeout
        ):
            self._state = CircuitState.HALF_OPEN
            self._trial_in_flight = False
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._reset_timeout - (self._clock() - self._opened_at))

    def _before_call(self) -> None:
        state = self.state
        if state is CircuitState.CLOSED:
            return
        if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        raise CircuitOpen(
            self._peer,
            f"the {self._label} is unavailable (recent calls failed; retrying in "
            f"{max(1, round(self.retry_after()))} s)",
            reached=False,
        )

    def record_success(self) -> None:
        if self._state is not CircuitState.CLOSED:
            log.info("circuit_closed", peer=self._peer)
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            if self._state is not CircuitState.OPEN:
                log.warning("circuit_opened", peer=self._peer, failures=self._failures)
            self._state = CircuitState.OPEN
            self._opened_at = self._clock()
            self._trial_in_flight = False

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        self._before_call()
        try:
            result = await operation()
        except TokenUnavailable:
            # We never got to ask the peer (no usable token): that proves nothing either way.
            self._trial_in_flight = False
            raise
        except PeerUnavailable:
            self.record_failure()
            raise
        except asyncio.CancelledError:
            # A cancelled trial proves nothing either way; let the next caller try.
            self._trial_in_flight = False
            raise
        except BaseException:
            # The peer answered (or our own code failed): not the peer's fault.
            self.record_success()
            raise
        self.record_success()
        return result


PEER_RETRY = RetryPolicy(attempts=3, base_delay=0.2, max_delay=2.0)
"""Idempotent peer calls: three tries within about two seconds, so a blip costs a turn little."""


def transient(failure: Exception) -> bool:
    """What an idempotent peer call may retry: the peer could not be reached. Never an answer
    (4xx) and never an open breaker, whose whole point is not to call."""
    return isinstance(failure, PeerUnavailable) and not isinstance(failure, CircuitOpen)


async def send(
    attempt: Callable[[], Awaitable[T]], *, idempotent: bool, policy: RetryPolicy, sleep: Sleep
) -> T:
    """One peer call: retried on transient failures when idempotent, else sent exactly once (a
    lost answer to a POST may still have changed the peer)."""
    if idempotent:
        return await call_with_retry(attempt, policy, retry=transient, sleep=sleep)
    return await attempt()
