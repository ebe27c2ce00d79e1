from __future__ import annotations

import asyncio
import gc

import pytest

from app.mesh.shared_reads import SharedReads


class Peer:
    """A read whose answers the test releases one by one; counts the calls made."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = asyncio.Event()
        self.fail: str | None = None
        """Each call then raises a new ConnectionError with this message."""

    async def read(self) -> int:
        self.calls += 1
        number = self.calls
        await self.answer.wait()
        if self.fail is not None:
            raise ConnectionError(self.fail)
        return number


async def test_concurrent_identical_reads_share_one_call() -> None:
    reads: SharedReads[int] = SharedReads()
    peer = Peer()
    waiting = [asyncio.create_task(reads.read("tasks", peer.read)) for _ in range(3)]
    await asyncio.sleep(0)
    peer.answer.set()
    assert await asyncio.gather(*waiting) == [1, 1, 1]
    assert peer.calls == 1


async def test_different_keys_are_different_calls() -> None:
    reads: SharedReads[int] = SharedReads()
    peer = Peer()
    peer.answer.set()
    answers = await asyncio.gather(reads.read("tasks", peer.read), reads.read("state", peer.read))
    assert sorted(answers) == [1, 2]
    assert peer.calls == 2


async def test_a_landed_call_is_never_reused() -> None:
    reads: SharedReads[int] = SharedReads()
    peer = Peer()
    peer.answer.set()
    assert await reads.read("tasks", peer.read) == 1
    assert await reads.read("tasks", peer.read) == 2


async def test_a_read_after_a_write_does_not_join_a_call_sent_before_it() -> None:
    reads: SharedReads[int] = SharedReads()
    peer = Peer()
    before = asyncio.create_task(reads.read("tasks", peer.read))
    await asyncio.sleep(0)
    reads.wrote()
    after = asyncio.create_task(reads.read("tasks", peer.read))
    also_after = asyncio.create_task(reads.read("tasks", peer.read))
    await asyncio.sleep(0)
    peer.answer.set()
    assert (await before, await after, await also_after) == (1, 2, 2)


async def test_a_failure_reaches_every_waiter_and_the_next_read_tries_again() -> None:
    reads: SharedReads[int] = SharedReads()
    peer = Peer()
    peer.fail = "down"
    waiting = [asyncio.create_task(reads.read("tasks", peer.read)) for _ in range(2)]
    await asyncio.sleep(0)
    peer.answer.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]
    peer.fail = None
    assert await reads.read("tasks", peer.read) == 2


async def three_readers(peer: Peer) -> list[asyncio.Task[int]]:
    """Three turns reading the same thing at once; the first one asks the peer."""
    reads: SharedReads[int] = SharedReads()
    readers = [asyncio.create_task(reads.read("tasks", peer.read)) for _ in range(3)]
    await asyncio.sleep(0)  # each reader has started, the first has asked
    assert peer.calls == 1
    return readers


async def test_a_joiner_that_gives_up_changes_nothing_for_the_others() -> None:
    peer = Peer()
    first, joiner, third = await three_readers(peer)
    joiner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joiner
    peer.answer.set()
    assert (await first, await third) == (1, 1)
    assert peer.calls == 1


async def test_when_the_first_asker_gives_up_the_others_ask_again() -> None:
    peer = Peer()
    first, second, third = await three_readers(peer)
    first.cancel()  # its call stops with it
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.sleep(0)
    peer.answer.set()
    # One of the two still waiting asks again, for both.
    assert (await second, await third) == (2, 2)
    assert peer.calls == 2


async def test_an_outcome_nobody_joined_is_not_reported_as_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        reads: SharedReads[int] = SharedReads()
        peer = Peer()
        peer.fail = "down"
        peer.answer.set()
        outcomes: list[str] = []

        async def alone(*, give_up: bool) -> None:
            # Outcomes are caught here and dropped, so nothing keeps the call's future alive.
            task = asyncio.create_task(reads.read("tasks", peer.read))
            await asyncio.sleep(0)
            if give_up:
                task.cancel()
            try:
                await task
            except (ConnectionError, asyncio.CancelledError) as exc:
                outcomes.append(type(exc).__name__)

        await alone(give_up=False)
        peer.answer.clear()
        await alone(give_up=True)
        assert outcomes == ["ConnectionError", "CancelledError"]
        gc.collect()  # "exception was never retrieved" is reported when a future is collected
        assert unhandled == []
        # Nothing is left behind: the next read makes a new call.
        peer.fail = None
        peer.answer.set()
        assert await reads.read("tasks", peer.read) == 3
    finally:
        loop.set_exception_handler(None)
