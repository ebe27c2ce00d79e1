"""Identical reads of a peer that are in flight at the same time share one call.

Why: under load many turns ask the Orchestrator the same question at once ("list tasks", "the
system's state"). Each HTTP exchange through httpx costs far more CPU than the turn's own work,
so the second asker waits for the answer already on its way instead of sending its own.

What keeps this from being a cache: nothing outlives the call. A read joins only a call that is
still in flight, so every answer was produced after the asker's turn began, and once the call
lands the next read sends a new one. And a read never joins a call that started before a write
made through the same client completed: the write bumps an epoch that is part of the key, so a
turn that has just created or cancelled a task always sees its own change.

The shared call runs as a task of its own: a waiter that gives up (its turn timed out, its client
went away) does not cancel it for the others, and its exception is collected even when every
waiter is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedReads(Generic[T]):
    """Single flight per key, within one write epoch."""

    def __init__(self) -> None:
        self._flights: dict[tuple[Hashable, int], asyncio.Task[T]] = {}
        self._epoch = 0

    def wrote(self) -> None:
        """A write went through this client: reads from now on do not join older calls."""
        self._epoch += 1

    async def read(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """The result of `call()`, or of the identical call already in flight."""
        flight_key = (key, self._epoch)
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(call())
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda done: self._landed(flight_key, done))
        # shield: cancelling this reader leaves the call running for the others.
        return await asyncio.shield(flight)

    def _landed(self, key: tuple[Hashable, int], flight: asyncio.Task[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            # Retrieved here so a call whose readers all gave up logs no "never retrieved".
            flight.exception()
