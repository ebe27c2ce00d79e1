"""GroupCommit: what queues during a write goes in the next one; every submitter its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.store.group_commit import MAX_BATCH, WAKE_AT_ONCE, GroupCommit


class Writer:
    """Records the batches; an item "bad" fails alone, "boom" fails its whole batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.written = asyncio.Event()

    async def write(self, batch: Sequence[str]) -> list[str | BaseException]:
        await self.release.wait()
        self.batches.append(list(batch))
        self.written.set()
        if "boom" in batch:
            raise OSError("disk gone")
        return [ValueError(item) if item == "bad" else item.upper() for item in batch]


async def queued(
    items: str, *, max_batch: int = MAX_BATCH, wake_at_once: int = WAKE_AT_ONCE
) -> tuple[Writer, GroupCommit[str, str], list[asyncio.Future[str]]]:
    """A writer held back, and `items` submitted one each and queued for it."""
    writer = Writer()
    writer.release.clear()
    group: GroupCommit[str, str] = GroupCommit(
        write_batch=writer.write, max_batch=max_batch, wake_at_once=wake_at_once
    )
    futures: list[asyncio.Future[str]] = [asyncio.ensure_future(group.submit(x)) for x in items]
    await asyncio.sleep(0)
    return writer, group, futures


async def test_items_arriving_during_a_write_share_the_next_one() -> None:
    writer = Writer()
    writer.release.clear()
    group: GroupCommit[str, str] = GroupCommit(write_batch=writer.write)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0)  # the writer task has taken "a" and waits
    rest = [asyncio.ensure_future(group.submit(x)) for x in "bcd"]
    await asyncio.sleep(0)
    writer.release.set()
    assert await first == "A"
    assert [await f for f in rest] == ["B", "C", "D"]
    assert writer.batches == [["a"], ["b", "c", "d"]]
    assert group.batches == 2


async def test_a_failing_item_fails_alone_and_a_failing_batch_fails_all() -> None:
    writer = Writer()
    group: GroupCommit[str, str] = GroupCommit(write_batch=writer.write)
    results = await asyncio.gather(
        group.submit("x"), group.submit("bad"), group.submit("y"), return_exceptions=True
    )
    assert results[0] == "X" and results[2] == "Y"
    assert isinstance(results[1], ValueError)

    failed = await asyncio.gather(group.submit("p"), group.submit("boom"), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in failed)
    assert await group.submit("after") == "AFTER"  # the writer goes on


async def test_batches_are_bounded() -> None:
    writer, _, futures = await queued("abcde", max_batch=2)
    writer.release.set()
    assert [await f for f in futures] == list("ABCDE")
    assert writer.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_caller_that_gives_up_still_has_its_item_written() -> None:
    writer = Writer()
    writer.release.clear()
    group: GroupCommit[str, str] = GroupCommit(write_batch=writer.write)
    waiting = asyncio.ensure_future(group.submit("kept"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    writer.release.set()
    await group.flush()
    assert writer.batches == [["kept"]]


async def test_flush_waits_for_everything_queued() -> None:
    writer, group, futures = await queued("ab")
    flushing = asyncio.ensure_future(group.flush())
    await asyncio.sleep(0)
    assert not flushing.done()
    writer.release.set()
    await flushing
    assert all(f.done() for f in futures)
    assert group.queued == 0
    with pytest.raises(ValueError):
        GroupCommit(write_batch=writer.write, max_batch=0)


async def test_a_committed_batch_is_answered_a_few_submitters_per_loop_iteration() -> None:
    writer = Writer()
    writer.release.clear()
    group: GroupCommit[str, str] = GroupCommit(write_batch=writer.write, wake_at_once=3)
    loop = asyncio.get_running_loop()
    iteration = 0

    def count() -> None:  # runs once per loop iteration: call_soon schedules into the next
        nonlocal iteration
        iteration += 1
        loop.call_soon(count)

    resumed: dict[str, int] = {}

    async def turn(item: str) -> None:
        await group.submit(item)
        resumed[item] = iteration

    turns = [asyncio.ensure_future(turn(x)) for x in "abcdefg"]
    await asyncio.sleep(0)
    loop.call_soon(count)
    writer.release.set()
    await asyncio.gather(*turns)
    assert writer.batches == [list("abcdefg")]
    # In order, three per iteration, each group in the iteration after the one before.
    groups = [[x for x in "abcdefg" if resumed[x] == i] for i in sorted(set(resumed.values()))]
    assert groups == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    first = resumed["a"]
    assert [resumed["d"], resumed["g"]] == [first + 1, first + 2]


async def test_a_writer_cancelled_between_two_groups_still_answers_everyone() -> None:
    writer, _, futures = await queued("abc", wake_at_once=1)
    writer.release.set()
    (drain,) = [t for t in asyncio.all_tasks() if t.get_name() == "store-group-commit"]
    await writer.written.wait()  # committed: the writer answered "a" and yields before "b"
    assert not drain.done()
    drain.cancel()  # as at shutdown
    assert [await f for f in futures] == ["A", "B", "C"]
    assert drain.cancelled()


def test_wake_at_once_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GroupCommit(write_batch=Writer().write, wake_at_once=0)
