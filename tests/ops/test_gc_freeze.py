"""Long-lived objects leave the cyclic collector's walk: once at start-up, then periodically."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from app.ops.gc_freeze import GcFreezer


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
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
