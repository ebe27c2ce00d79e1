"""The lock building blocks, without a database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.store.locks import (
    FileLocks,
    OpenMarker,
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


async def test_file_locks_exclude_each_other_and_clean_up(tmp_path: Path) -> None:
    first, second = FileLocks(directory=tmp_path), FileLocks(directory=tmp_path)
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
    await release_second()
    assert _listing(tmp_path) == []


async def test_file_lock_on_a_replaced_file_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A waiter that wins the flock on an inode the previous holder already unlinked must not
    # count it as held: simulate "the path now names another file" once.
    locks = FileLocks(directory=tmp_path)
    real_stat = os.stat
    replaced = {"times": 0}

    def stat(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> os.stat_result:
        result = real_stat(path)
        if replaced["times"] == 0:
            replaced["times"] += 1
            fields = list(result)
            fields[1] = result.st_ino + 1  # st_ino
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(os, "stat", stat)
    release = await asyncio.wait_for(locks.acquire("s"), 2)
    assert replaced["times"] == 1
    await release()
    assert _listing(tmp_path) == []


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
