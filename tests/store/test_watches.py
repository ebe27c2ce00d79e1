"""Watches in the store, on a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain.watch import TooManyWatches, Watch, WatchFilter
from app.store.sessions import SessionNotFound, SessionStore
from app.store.watches import WatchStore
from tests.store.support import BACKENDS, Backend, make_backend

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with make_backend(request.param, tmp_path) as made:
        yield made


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[SessionStore]:
    store = backend.store()
    await store.open()
    try:
        await store.migrate()
        for key, owner in (("ns-a.s1", "user:alice"), ("ns-b.s1", "user:bob")):
            await store.get_or_create(session_id=key, source="chat", owner=owner)
        yield store
    finally:
        await store.close()


@pytest.fixture
def watches(sessions: SessionStore) -> WatchStore:
    return WatchStore(sessions=sessions)


def _watch(owner: str = "user:alice", **fields: Any) -> Watch:
    values: dict[str, Any] = {
        "owner": owner,
        "session_key": "ns-a.s1" if owner == "user:alice" else "ns-b.s1",
        "event": "change",
        "created_at": T0,
        "expires_at": T0 + DAY,
    }
    values.update(fields)
    return Watch(**values)


async def test_add_list_and_remove_per_owner(watches: WatchStore) -> None:
    task = await watches.add(_watch(task_id=7, event="done"), limit=5)
    droplet = await watches.add(_watch(droplet_id=16, event="up", source="voice"), limit=5)
    await watches.add(_watch("user:bob", task_id=7), limit=5)
    assert task.id is not None and droplet.id is not None and droplet.id > task.id
    assert droplet.source == "voice" and droplet.created_at == T0

    mine = await watches.active(owner="user:alice", now=T0)
    assert mine == [task, droplet]
    assert [w.owner for w in await watches.active(owner="user:bob", now=T0)] == ["user:bob"]

    # Bob cannot stop Alice's watch, even by its id.
    assert await watches.remove(owner="user:bob", which=WatchFilter(watch_id=task.id), now=T0) == []
    assert await watches.remove(owner="user:alice", which=WatchFilter(task_id=7), now=T0) == [task]
    assert (
        await watches.remove(owner="user:alice", which=WatchFilter(), now=T0) == []
    )  # names nothing
    assert await watches.remove(owner="user:alice", which=WatchFilter(all=True), now=T0) == [
        droplet
    ]
    assert await watches.active(owner="user:alice", now=T0) == []
    assert len(await watches.active(owner="user:bob", now=T0)) == 1


async def test_the_per_owner_limit_counts_only_active_watches(watches: WatchStore) -> None:
    first = await watches.add(_watch(task_id=1), limit=2)
    await watches.add(_watch(task_id=2), limit=2)
    with pytest.raises(TooManyWatches) as refused:
        await watches.add(_watch(task_id=3), limit=2)
    assert refused.value.limit == 2
    await watches.add(_watch("user:bob", task_id=3), limit=2)  # another owner's budget

    assert first.id is not None
    assert await watches.claim(first.id, now=T0)  # a fired watch no longer counts
    await watches.add(_watch(task_id=3), limit=2)
    # Nor does an expired one.
    later = T0 + DAY + timedelta(seconds=1)
    await watches.add(_watch(task_id=4, created_at=later, expires_at=later + DAY), limit=2)


async def test_concurrent_adds_never_exceed_the_limit(watches: WatchStore) -> None:
    results = await asyncio.gather(
        *(watches.add(_watch(task_id=n), limit=3) for n in range(1, 9)), return_exceptions=True
    )
    assert sum(isinstance(r, Watch) for r in results) == 3
    assert all(isinstance(r, Watch | TooManyWatches) for r in results)


async def test_pending_observe_claim_release_and_expire(watches: WatchStore) -> None:
    a = await watches.add(_watch(task_id=1), limit=10)
    b = await watches.add(_watch("user:bob", droplet_id=16, event="down"), limit=10)
    short = await watches.add(_watch(task_id=2, expires_at=T0 + timedelta(minutes=5)), limit=10)
    assert a.id is not None and b.id is not None and short.id is not None

    assert [w.id for w in await watches.pending(now=T0)] == [a.id, b.id, short.id]
    await watches.observe(a.id, "pending")
    assert (await watches.get(a.id)) == a.model_copy(update={"last_seen": "pending"})

    assert await watches.claim(b.id, now=T0 + timedelta(minutes=1))
    assert not await watches.claim(b.id, now=T0 + timedelta(minutes=2))
    fired = await watches.get(b.id)
    assert fired is not None and fired.fired_at == T0 + timedelta(minutes=1)
    await watches.observe(b.id, "up")  # a fired watch is left as it fired
    assert (await watches.get(b.id)) == fired
    assert [w.id for w in await watches.pending(now=T0)] == [a.id, short.id]

    await watches.release(b.id)
    assert [w.id for w in await watches.pending(now=T0)] == [a.id, b.id, short.id]

    assert await watches.expire(now=T0 + timedelta(minutes=5)) == 1
    assert await watches.get(short.id) is None
    assert [w.id for w in await watches.pending(now=T0 + timedelta(minutes=10))] == [a.id, b.id]
    assert await watches.pending(now=T0 + DAY) == []
    assert await watches.expire(now=T0 + DAY) == 2


async def test_one_claim_wins_among_concurrent_claimers(
    watches: WatchStore, backend: Backend
) -> None:
    watch = await watches.add(_watch(task_id=1), limit=10)
    assert watch.id is not None
    # A second store on the same database: another instance.
    other_sessions = backend.store()
    await other_sessions.open()
    try:
        other = WatchStore(sessions=other_sessions)
        wins = await asyncio.gather(
            *(s.claim(watch.id, now=T0) for s in (watches, other) for _ in range(5))
        )
    finally:
        await other_sessions.close()
    assert sum(wins) == 1


async def test_deleting_a_session_deletes_its_watches(
    watches: WatchStore, sessions: SessionStore
) -> None:
    await watches.add(_watch(task_id=1), limit=10)
    kept = await watches.add(_watch("user:bob", task_id=1), limit=10)
    assert await sessions.delete("ns-a.s1")
    assert await watches.pending(now=T0) == [kept]


async def test_a_notification_joins_the_session_history(sessions: SessionStore) -> None:
    await sessions.record_turn(
        session_id="ns-a.s1", user_text="watch task 7", answer_text="ok", trace_id="t1"
    )
    seq = await sessions.append_notification(
        "ns-a.s1", text="Task 7 finished.", meta={"kind": "notification", "watch_id": 3}
    )
    assert seq == 3
    history = await sessions.history("ns-a.s1")
    assert [(m.seq, m.role, m.text) for m in history] == [
        (1, "user", "watch task 7"),
        (2, "assistant", "ok"),
        (3, "assistant", "Task 7 finished."),
    ]
    assert history[-1].meta == {"kind": "notification", "watch_id": 3}
    assert await sessions.record_turn(
        session_id="ns-a.s1", user_text="thanks", answer_text="welcome", trace_id="t2"
    ) == (4, 5)
    info = await sessions.get("ns-a.s1")
    assert info is not None and info.message_count == 5
    with pytest.raises(SessionNotFound):
        await sessions.append_notification("ns-x.none", text="lost")
