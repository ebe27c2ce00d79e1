"""Long-lived objects leave the cyclic collector's walk: once at start-up, then periodically."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from app.ops.gc_freeze import YOUNG_THRESHOLD, GcFreezer, tune_collector


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    # What earlier tests in this worker left for the collector is collected now, before the
    # test: these tests force full collections, and a socket an earlier test left unclosed
    # warns (ResourceWarning) when it is collected, which failed them for another test's
    # leftovers (a server-side asyncio transport, on a clean clone's CI run).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    yield
    gc.unfreeze()


def test_freezing_moves_the_living_out_of_the_walk_and_not_the_garbage(unfrozen: None) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the cyclic collector frees it

    kept = Node()
    garbage = Node()
    del garbage
    frozen = GcFreezer(interval_s=60).freeze_now()
    assert frozen > 0
    assert not any(type(o) is Node for o in gc.get_objects())  # frozen ones are not walked
    assert kept.me is kept
    gc.unfreeze()
    assert sum(type(o) is Node for o in gc.get_objects()) == 1  # the garbage was collected


async def test_it_freezes_again_on_every_interval(unfrozen: None) -> None:
    waits: list[float] = []
    ticks = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 3:
            ticks.set()
            await asyncio.Event().wait()  # park until cancelled

    task = asyncio.create_task(GcFreezer(interval_s=300, sleep=sleep).run())
    await ticks.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waits == [300, 300, 300, 300]
    assert gc.get_freeze_count() > 0


class _Recording(GcFreezer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frozen_at: list[float] = []

    def freeze_now(self) -> int:
        self.frozen_at.append(self._clock())
        return 0


async def test_a_burst_of_connections_is_frozen_at_once_not_at_the_next_interval() -> None:
    now = [0.0]
    sockets = [10]
    # (seconds passed, sockets then) for each check; the freezer sleeps 1 s between checks.
    script = [(1, 200), (1, 699), (1, 710), (1, 300), (1, 799), (1, 800), (300, 800)]
    done = asyncio.Event()

    async def sleep(seconds: float) -> None:
        assert seconds == 1.0
        if not script:
            done.set()
            await asyncio.Event().wait()  # park until cancelled
        passed, count = script.pop(0)
        now[0] += passed
        sockets[0] = count

    freezer = _Recording(
        interval_s=300, sleep=sleep, population=lambda: sockets[0], burst=500, clock=lambda: now[0]
    )
    task = asyncio.create_task(freezer.run())
    await done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The first check freezes what start-up built (t=1). 200 -> 699 is +499: not yet; 710 is
    # +510: frozen at t=3. Down to 300, then 800 is +500 from that low: frozen at t=6. Then no
    # growth, but the interval passed: t=306.
    assert freezer.frozen_at == [1.0, 3.0, 6.0, 306.0]


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every collection that runs meanwhile; the thresholds restored after."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    threshold = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)
    gc.set_threshold(*threshold)


def _turns_in_flight(rounds: int, alive: int) -> None:
    """`alive` container objects held at once, then released, `rounds` times (no garbage)."""
    for _ in range(rounds):
        held: list[list[int]] = [[] for _ in range(alive)]
        del held


def test_objects_of_turns_in_flight_start_no_collection(collections: list[int]) -> None:
    tune_collector()
    _turns_in_flight(rounds=50, alive=3_000)
    assert collections == []


def test_with_the_default_threshold_the_same_objects_start_collection_after_collection(
    collections: list[int],
) -> None:
    gc.set_threshold(700, *gc.get_threshold()[1:])
    _turns_in_flight(rounds=50, alive=3_000)
    assert len(collections) >= 50


def test_cyclic_garbage_is_still_collected(collections: list[int]) -> None:
    tune_collector()
    alive = [0]

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the cyclic collector frees it
            alive[0] += 1

        def __del__(self) -> None:
            alive[0] -= 1

    for _ in range(3 * YOUNG_THRESHOLD):
        Node()
    assert collections
    assert alive[0] <= YOUNG_THRESHOLD
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
