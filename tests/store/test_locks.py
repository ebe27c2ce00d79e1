"""The lock building blocks, without a database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.store.locks import (
    OpenMarker,
    RangeLocks,
    SessionBusy,
    SessionLocks,
    StoreInUse,
    advisory_key,
)
from tests.store.support import sessions_in_use


def _listing(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def test_advisory_keys_are_stable_signed_64_bit() -> None:
    assert advisory_key("abc") == advisory_key("abc")
    assert advisory_key("abc") != advisory_key("abd")
    assert all(-(2**63) <= advisory_key(str(n)) < 2**63 for n in range(1000))


async def test_range_locks_exclude_each_other_and_leave_one_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.lock"
    first, second = RangeLocks(path=path), RangeLocks(path=path)
    try:
        release = await first.acquire("s")
        waiter = asyncio.create_task(second.acquire("s"))
        given_up = asyncio.create_task(second.acquire("s"))
        await asyncio.sleep(0)  # only to yield: both have tried once, failed, and poll
        assert not waiter.done() and not given_up.done()
        given_up.cancel()  # a waiter cancelled mid-poll holds nothing
        with pytest.raises(asyncio.CancelledError):
            await given_up
        other = await second.acquire("t")  # a different key is free
        await other()
        await release()
        release_second = await asyncio.wait_for(waiter, 2)
        with pytest.raises(TimeoutError):  # now the first instance is the one kept out
            await asyncio.wait_for(first.acquire("s"), 0.05)
        await release_second()
        await (await asyncio.wait_for(first.acquire("s"), 2))()
        assert _listing(tmp_path) == [path]
    finally:
        first.close()
        second.close()


async def test_closing_one_range_lock_keeps_the_others_held(tmp_path: Path) -> None:
    # The reason for open-file-description locks: with POSIX process locks, closing any
    # descriptor of the file would drop every lock this process holds on it.
    path = tmp_path / "sessions.lock"
    holder, bystander, contender = (RangeLocks(path=path) for _ in range(3))
    try:
        await bystander.acquire("other")
        release = await holder.acquire("s")
        bystander.close()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(contender.acquire("s"), 0.05)
        await release()
        await (await asyncio.wait_for(contender.acquire("s"), 2))()
    finally:
        for locks in (holder, bystander, contender):
            locks.close()


async def test_a_closed_range_lock_releases_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "sessions.lock"
    dead, alive = RangeLocks(path=path), RangeLocks(path=path)
    try:
        await dead.acquire("s")
        dead.close()  # as the kernel does for a killed process
        await (await asyncio.wait_for(alive.acquire("s"), 2))()
    finally:
        alive.close()


def test_range_lock_offsets_are_stable_and_valid() -> None:
    offsets = {RangeLocks.offset_for(f"session-{n}") for n in range(10_000)}
    assert len(offsets) == 10_000
    assert all(0 <= o < 2**62 for o in offsets)
    assert RangeLocks.offset_for("abc") == RangeLocks.offset_for("abc")


async def test_session_locks_are_fifo_and_bounded() -> None:
    locks = SessionLocks(cross_process=None)
    order: list[int] = []

    async def turn(n: int) -> None:
        async with locks.hold("s"):
            order.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(*(turn(n) for n in range(20)))
    assert order == list(range(20))
    assert sessions_in_use(locks) == 0
    async with locks.hold("s"):
        with pytest.raises(SessionBusy) as busy:
            async with locks.hold("s", max_wait=0.01):
                pass
        assert busy.value.session_id == "s"
        assert sessions_in_use(locks) == 1
    assert sessions_in_use(locks) == 0


def test_open_marker_shared_versus_exclusive(tmp_path: Path) -> None:
    a, b = OpenMarker(path=tmp_path / "open.lock"), OpenMarker(path=tmp_path / "open.lock")
    restore = OpenMarker(path=tmp_path / "open.lock")
    a.hold_shared()
    b.hold_shared()
    with pytest.raises(StoreInUse):
        restore.hold_exclusive()
    a.release()
    b.release()
    restore.hold_exclusive()
    with pytest.raises(StoreInUse):
        a.hold_shared()
    restore.release()
