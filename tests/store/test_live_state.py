"""A session's state kept in memory between turns, and turns committed in groups (both stores).

What must hold: a turn sees exactly what the database holds (other instances, notifications,
deletions included), and an answered turn is durable. What the memory buys is shown by one
test that changes messages behind the store's back without changing the row's version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from app.domain.plan import PendingCall, ToolCall
from app.store.engine import build_engine, normalise_url
from app.store.locks import PostgresAdvisoryLocks
from app.store.sessions import SessionNotFound, SessionStore
from app.store.tables import MessageRow
from tests.store.support import BACKENDS, Backend, make_backend


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with make_backend(request.param, tmp_path) as made:
        yield made


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SessionStore]:
    opened = backend.store(history_window=4)
    await opened.open()
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other(backend: Backend, store: SessionStore) -> AsyncIterator[SessionStore]:
    """A second instance on the same database."""
    opened = backend.store(history_window=4)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def _state(store: SessionStore, sid: str, owner: str = "user:a") -> Any:
    return await store.turn_state(session_id=sid, source="chat", owner=owner)


async def _turn(store: SessionStore, sid: str, n: int, **extra: Any) -> tuple[int, int]:
    async with store.lock(sid):
        await _state(store, sid)
        return await store.record_turn(
            session_id=sid,
            user_text=f"question {n}",
            answer_text=f"answer {n}",
            trace_id=f"trace-{n}",
            **extra,
        )


def _texts(live: Any) -> list[str]:
    return [t.text for t in live.turns]


async def test_new_session_is_created_with_its_owner(store: SessionStore) -> None:
    live = await _state(store, "u.s1", owner="user:alice")
    assert live.info.owner == "user:alice"
    assert live.info.message_count == 0
    assert live.turns == ()
    assert (await store.get("u.s1")) == live.info


async def test_state_after_turns_matches_the_database(store: SessionStore) -> None:
    pending = PendingCall(call=ToolCall(tool="create_task", args={"droplet_id": 14}))
    for n in range(3):
        await _turn(store, "u.s2", n)
    await _turn(store, "u.s2", 3, pending=pending, context_update={"last_droplet_id": 14})

    live = await _state(store, "u.s2")
    stored = await store.get("u.s2")
    assert live.info == stored
    assert live.info.pending == pending
    assert live.info.context == {"last_droplet_id": 14}
    assert live.info.title == "question 0"
    # The window (4) of the 8 messages, oldest first, equal to what the database returns.
    assert live.turns == tuple(m.as_turn() for m in await store.history("u.s2", limit=4))
    assert _texts(live) == ["question 2", "answer 2", "question 3", "answer 3"]


async def test_memory_serves_while_the_row_version_is_unchanged(store: SessionStore) -> None:
    await _turn(store, "u.s3", 0)
    # Messages removed behind the store's back, the session row (its version) untouched:
    # the turn is still served from memory, proof that it does not read them again.
    async with store.writing() as conn:
        await conn.execute(delete(MessageRow).where(MessageRow.session_id == "u.s3"))
    assert _texts(await _state(store, "u.s3")) == ["question 0", "answer 0"]
    assert store.live_sessions == 1


async def test_another_instance_turn_is_seen(store: SessionStore, other: SessionStore) -> None:
    await _turn(store, "u.s4", 0)
    assert _texts(await _state(store, "u.s4")) == ["question 0", "answer 0"]

    pending = PendingCall(call=ToolCall(tool="cancel_task", args={"task_id": 7}))
    await _turn(other, "u.s4", 1, pending=pending, context_update={"last_task_id": 7})

    live = await _state(store, "u.s4")
    assert live.info.message_count == 4
    assert live.info.pending == pending
    assert live.info.context == {"last_task_id": 7}
    assert _texts(live) == ["question 0", "answer 0", "question 1", "answer 1"]
    # And the turn after continues the numbering from what the other instance wrote.
    assert await _turn(store, "u.s4", 2) == (5, 6)


async def test_a_notification_in_between_is_seen(store: SessionStore) -> None:
    await _turn(store, "u.s5", 0)
    await _state(store, "u.s5")
    await store.append_notification("u.s5", text="droplet 7 is back", meta={"kind": "watch"})
    assert _texts(await _state(store, "u.s5")) == ["question 0", "answer 0", "droplet 7 is back"]
    assert await _turn(store, "u.s5", 1) == (4, 5)
    live = await _state(store, "u.s5")
    assert _texts(live) == ["answer 0", "droplet 7 is back", "question 1", "answer 1"]


async def test_notification_during_a_turn_leaves_no_gap_in_memory(store: SessionStore) -> None:
    await _turn(store, "u.s6", 0)
    async with store.lock("u.s6"):
        await _state(store, "u.s6")
        # Lands after the state was read, before the turn commits: the turn takes 4 and 5.
        await store.append_notification("u.s6", text="task 9 failed")
        seqs = await store.record_turn(
            session_id="u.s6", user_text="q", answer_text="a", trace_id=None
        )
    assert seqs == (4, 5)
    live = await _state(store, "u.s6")
    assert _texts(live) == ["answer 0", "task 9 failed", "q", "a"]


async def test_deleted_and_recreated_session_starts_empty(
    store: SessionStore, other: SessionStore
) -> None:
    await _turn(store, "u.s7", 0)
    await _state(store, "u.s7")
    assert await other.delete("u.s7")
    live = await _state(store, "u.s7", owner="user:b")
    assert live.info.owner == "user:b"
    assert live.turns == ()
    assert live.info.pending is None


async def test_turn_for_a_session_deleted_meanwhile_is_refused(
    store: SessionStore, other: SessionStore
) -> None:
    await _turn(store, "u.s8", 0)
    await _state(store, "u.s8")
    await other.delete("u.s8")
    with pytest.raises(SessionNotFound):
        await store.record_turn(session_id="u.s8", user_text="q", answer_text="a", trace_id=None)
    assert await store.get("u.s8") is None


async def test_concurrent_turns_share_commits_and_all_are_durable(
    backend: Backend, store: SessionStore
) -> None:
    sids = [f"u.g{i}" for i in range(40)]
    for sid in sids:
        await _state(store, sid)
    before = store.turn_commits
    results = await asyncio.gather(*(_turn(store, sid, 0) for sid in sids))
    assert results == [(1, 2)] * len(sids)
    commits = store.turn_commits - before
    assert 1 <= commits < len(sids)  # grouped: fewer transactions than turns

    # Durable: a fresh instance (nothing in memory) reads every turn back.
    fresh = backend.store(history_window=4)
    await fresh.open()
    try:
        for sid in sids:
            assert [m.text for m in await fresh.history(sid)] == ["question 0", "answer 0"]
    finally:
        await fresh.close()


async def test_one_failing_turn_does_not_fail_the_others_in_its_group(
    store: SessionStore, other: SessionStore
) -> None:
    for sid in ("u.h1", "u.h2", "u.h3"):
        await _state(store, sid)
    await other.delete("u.h2")
    results = await asyncio.gather(
        *(
            store.record_turn(session_id=sid, user_text="q", answer_text="a", trace_id=None)
            for sid in ("u.h1", "u.h2", "u.h3")
        ),
        return_exceptions=True,
    )
    assert results[0] == (1, 2)
    assert isinstance(results[1], SessionNotFound)
    assert results[2] == (1, 2)


async def test_no_memory_kept_when_disabled(backend: Backend) -> None:
    opened = backend.store(live_sessions=0)
    await opened.open()
    try:
        await opened.migrate()
        await _turn(opened, "u.n1", 0)
        assert opened.live_sessions == 0
        assert _texts(await _state(opened, "u.n1")) == ["question 0", "answer 0"]
    finally:
        await opened.close()


async def test_close_writes_what_was_accepted(backend: Backend, store: SessionStore) -> None:
    await _state(store, "u.c1")
    pending = asyncio.ensure_future(
        store.record_turn(session_id="u.c1", user_text="q", answer_text="a", trace_id=None)
    )
    await asyncio.sleep(0)  # queued, not yet committed
    await store.close()
    assert pending.done()
    assert pending.result() == (1, 2)
    reopened = backend.store()
    await reopened.open()
    try:
        assert [m.text for m in await reopened.history("u.c1")] == ["q", "a"]
    finally:
        await reopened.close()


async def test_postgres_lock_lends_its_connection_to_the_holder_only(tmp_path: Path) -> None:
    """On PostgreSQL the turn's version read runs on the connection that holds the session's
    advisory lock (no second checkout); it is there only while the lock is held."""
    async with make_backend("postgresql", tmp_path) as pg:
        opened = pg.store()
        await opened.open()
        try:
            await opened.migrate()
            engine = build_engine(
                normalise_url(pg.url), connect_args=pg.connect_args, isolation_level="AUTOCOMMIT"
            )
            locks = PostgresAdvisoryLocks(engine=engine)
            assert locks.held("u.l1") is None
            release = await locks.acquire("u.l1")
            conn = locks.held("u.l1")
            assert conn is not None
            assert locks.held("u.l2") is None
            # The lent connection sees the store's tables (same database and search path).
            await opened.get_or_create(session_id="u.l1", source="chat", owner="user:a")
            assert await conn.fetchval("SELECT count(*) FROM sessions") == 1
            await release()
            assert locks.held("u.l1") is None
            await engine.dispose()
            # And a whole turn under the store's own lock reads its version that way.
            assert await _turn(opened, "u.l1", 0) == (1, 2)
            assert _texts(await _state(opened, "u.l1")) == ["question 0", "answer 0"]
        finally:
            await opened.close()
