"""The session store on real databases: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from app.domain.identity import Identity, session_key
from app.domain.plan import PendingCall, ToolCall
from app.domain.session import AuditEntry
from app.store import migrations
from app.store.backup import lock_directory_for, restore_sqlite
from app.store.engine import build_engine, normalise_url, write_engine
from app.store.sessions import (
    BackupError,
    SessionBusy,
    SessionNotFound,
    SessionQuotaExceeded,
    SessionStore,
    StoreInUse,
    StoreNotOpen,
)
from app.store.tables import Base
from tests.store.support import (
    BACKENDS,
    Backend,
    backdate,
    downgrade,
    head_revision,
    lock_users,
    locks_in_use,
    make_backend,
    mark_task,
    revisions,
    set_context,
    set_pending,
    task_state,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with make_backend(request.param, tmp_path) as made:
        yield made


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SessionStore]:
    opened = backend.store()
    await opened.open()
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


def _pending(tool: str = "create_task", **args: Any) -> PendingCall:
    return PendingCall(call=ToolCall(tool=tool, args=args or {"droplet_id": 14}))


async def _turn(store: SessionStore, session_id: str, n: int, **extra: Any) -> tuple[int, int]:
    return await store.record_turn(
        session_id=session_id,
        user_text=f"question {n}",
        answer_text=f"answer {n}",
        trace_id=f"trace-{n}",
        **extra,
    )


# ---- sessions and history ----------------------------------------------------------------


async def test_get_or_create_new_and_existing(store: SessionStore) -> None:
    created = await store.get_or_create(session_id=None, source="chat", owner="alice")
    assert len(created.session_id) == 24
    assert created.source == "chat"
    assert created.owner == "alice"
    assert created.message_count == 0
    assert created.pending is None
    assert created.context == {}
    assert created.created_at.tzinfo is not None

    again = await store.get_or_create(session_id=created.session_id, source="voice", owner="bob")
    assert again == created  # an existing session is returned as stored

    named = await store.get_or_create(session_id="test-123", source="voice", owner="user:t")
    assert named.session_id == "test-123"
    assert named.source == "voice"
    assert await store.get("test-123") == named
    assert await store.get("no-such-session") is None


async def test_get_or_create_concurrently_creates_one_session(store: SessionStore) -> None:
    results = await asyncio.gather(
        *(store.get_or_create(session_id="same", source="chat", owner="o") for _ in range(10))
    )
    assert {r.created_at for r in results} == {results[0].created_at}
    _, total = await store.list_sessions()
    assert total == 1


async def test_the_session_quota_holds_under_concurrent_creation(store: SessionStore) -> None:
    async def create(i: int) -> bool:
        try:
            await store.get_or_create(
                session_id=f"s-{i}", source="chat", owner="user:q", max_for_owner=20
            )
        except SessionQuotaExceeded:
            return False
        return True

    created = await asyncio.gather(*(create(i) for i in range(100)))
    assert sum(created) == 20
    _, total = await store.list_sessions(owner="user:q")
    assert total == 20
    # A session that exists is not a new one: it is returned even at the quota.
    existing = next(f"s-{i}" for i, ok in enumerate(created) if ok)
    again = await store.get_or_create(
        session_id=existing, source="chat", owner="user:q", max_for_owner=20
    )
    assert again.session_id == existing


async def test_get_or_create_rejects_bad_input(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="source"):
        await store.get_or_create(session_id=None, source="fax", owner="user:t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session id"):
        await store.get_or_create(session_id="x" * 161, source="chat", owner="user:t")
    with pytest.raises(ValueError, match="session id"):
        await store.get_or_create(session_id="", source="chat", owner="user:t")


async def test_history_is_oldest_first_and_limited(backend: Backend) -> None:
    async with backend.store(history_window=4) as store:
        await store.migrate()
        sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id
        for n in range(5):
            actions = [{"tool": "list_droplets", "status": "ok"}]
            assert await _turn(store, sid, n, actions=actions) == (2 * n + 1, 2 * n + 2)

        window = await store.history(sid)
        assert [m.seq for m in window] == [7, 8, 9, 10]
        assert [m.text for m in window] == ["question 3", "answer 3", "question 4", "answer 4"]
        assert [m.role for m in window] == ["user", "assistant"] * 2
        assert window[1].meta == {"actions": [{"tool": "list_droplets", "status": "ok"}]}
        assert window[0].trace_id == "trace-3"
        assert window[0].as_turn().text == "question 3"

        everything = await store.history(sid, limit=100)
        assert [m.seq for m in everything] == list(range(1, 11))
        older = await store.history(sid, limit=3, before_seq=7)
        assert [m.seq for m in older] == [4, 5, 6]
        assert await store.history(sid, limit=0) == []
        assert await store.history("unknown", limit=5) == []

        info = await store.get(sid)
        assert info is not None
        assert info.message_count == 10
        assert info.title == "question 0"
        assert info.last_activity >= info.created_at


async def test_record_turn_writes_everything_in_one_go(store: SessionStore) -> None:
    sid = (await store.get_or_create(session_id=None, source="chat", owner="u")).session_id
    entry = AuditEntry(
        actor="u",
        source="chat",
        tool="create_task",
        args={"droplet_id": 14},
        outcome="ok",
        duration_ms=12.5,
        planner="rules",
    )
    await store.record_turn(
        session_id=sid,
        user_text="create a task",
        answer_text="created task 7",
        trace_id="t-1",
        actions=[{"tool": "create_task", "status": "ok"}],
        audit=[entry],
        pending=_pending(),
        context_update={"last_task_id": 7, "last_droplet_id": 14},
        answer_meta={"planner": "rules"},
    )
    info = await store.get(sid)
    assert info is not None
    assert info.pending == _pending()
    assert info.context == {"last_task_id": 7, "last_droplet_id": 14}
    [audited] = await store.audit(session_id=sid)
    assert audited.tool == "create_task"
    assert audited.trace_id == "t-1"  # taken from the turn when the entry has none
    assert audited.session_id == sid
    assert audited.args == {"droplet_id": 14}
    assert audited.duration_ms == 12.5
    history = await store.history(sid)
    assert history[1].meta == {
        "actions": [{"tool": "create_task", "status": "ok"}],
        "planner": "rules",
    }

    # UNSET leaves the pending action, None clears it; context merges shallowly.
    await _turn(store, sid, 2, context_update={"last_task_id": 8})
    info = await store.get(sid)
    assert info is not None and info.pending == _pending()
    assert info.context == {"last_task_id": 8, "last_droplet_id": 14}
    await _turn(store, sid, 3, pending=None)
    info = await store.get(sid)
    assert info is not None and info.pending is None


async def test_failed_turn_leaves_nothing(store: SessionStore) -> None:
    sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id
    await _turn(store, sid, 0, pending=_pending(), context_update={"k": 1})
    before = (await store.get(sid), await store.history(sid, limit=50), await store.audit())

    # The audit row is written last and violates the outcome check: all of the turn must go.
    broken = AuditEntry.model_construct(
        id=None,
        at=datetime.now(UTC),
        actor=None,
        session_id=sid,
        source="chat",
        tool="create_task",
        args={},
        outcome="exploded",  # type: ignore[arg-type]
        detail=None,
        duration_ms=None,
        trace_id=None,
        planner=None,
    )
    with pytest.raises(IntegrityError):
        await _turn(store, sid, 1, audit=[broken], pending=None, context_update={"k": 2})

    after = (await store.get(sid), await store.history(sid, limit=50), await store.audit())
    assert after == before
    # And the next turn continues the numbering without a gap.
    assert await _turn(store, sid, 2) == (3, 4)


async def test_record_turn_unknown_session(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await _turn(store, "ghost", 0)
    with pytest.raises(SessionNotFound):
        await set_pending(store, "ghost", None)
    with pytest.raises(SessionNotFound):
        await set_context(store, "ghost", {"a": 1})


async def test_set_pending_and_context(store: SessionStore) -> None:
    sid = (await store.get_or_create(session_id=None, source="voice", owner="user:t")).session_id
    await set_pending(store, sid, _pending("cancel_task", task_id=3))
    assert (await store.get(sid)).pending == _pending("cancel_task", task_id=3)  # type: ignore[union-attr]
    await set_pending(store, sid, None)
    assert (await store.get(sid)).pending is None  # type: ignore[union-attr]

    assert await set_context(store, sid, {"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert await set_context(store, sid, {"b": 3}) == {"a": 1, "b": 3}
    assert await set_context(store, sid, {"c": 4}, replace=True) == {"c": 4}
    assert (await store.get(sid)).context == {"c": 4}  # type: ignore[union-attr]


# ---- serialisation -----------------------------------------------------------------------


async def test_hundred_concurrent_turns_on_one_session(store: SessionStore) -> None:
    sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id

    async def turn(n: int) -> None:
        async with store.lock(sid):
            seen = (await store.get(sid)).message_count  # type: ignore[union-attr]
            await asyncio.sleep(0)  # give others every chance to interleave
            user_seq, _ = await _turn(store, sid, n)
            assert user_seq == seen + 1

    await asyncio.gather(*(turn(n) for n in range(100)))

    history = await store.history(sid, limit=1000)
    assert len(history) == 200
    assert [m.seq for m in history] == list(range(1, 201))
    assert [m.role for m in history] == ["user", "assistant"] * 100
    # FIFO lock: turns are recorded in the order they arrived.
    assert [m.text for m in history if m.role == "user"] == [f"question {n}" for n in range(100)]
    assert (await store.get(sid)).message_count == 200  # type: ignore[union-attr]
    assert locks_in_use(store) == 0


async def test_concurrent_turns_without_lock_have_no_gaps(store: SessionStore) -> None:
    sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id
    seqs = await asyncio.gather(*(_turn(store, sid, n) for n in range(40)))
    assert sorted(s for pair in seqs for s in pair) == list(range(1, 81))
    history = await store.history(sid, limit=100)
    # Each turn's two messages are adjacent, whatever order the turns committed in.
    for user, answer in zip(history[::2], history[1::2], strict=True):
        assert (user.role, answer.role) == ("user", "assistant")
        assert user.trace_id == answer.trace_id


async def test_two_store_instances_never_interleave_turns(
    backend: Backend, store: SessionStore
) -> None:
    # A second store has its own engine, connections and lock files: another "process".
    sid = f"shared-{uuid.uuid4().hex}"
    await store.get_or_create(session_id=sid, source="chat", owner="user:t")
    async with backend.store() as other:

        async def turns(instance: SessionStore, label: str) -> None:
            for n in range(15):
                async with instance.lock(sid):
                    seen = (await instance.get(sid)).message_count  # type: ignore[union-attr]
                    await asyncio.sleep(0)  # give the other instance a chance to interleave
                    user_seq, _ = await instance.record_turn(
                        session_id=sid, user_text=f"{label}{n}", answer_text="a", trace_id=None
                    )
                    assert user_seq == seen + 1, "another instance's turn interleaved"

        await asyncio.gather(turns(store, "a"), turns(other, "b"))
    history = await store.history(sid, limit=100)
    assert [m.seq for m in history] == list(range(1, 61))


async def test_lock_timeout_across_instances(backend: Backend, store: SessionStore) -> None:
    sid = f"busy-{uuid.uuid4().hex}"
    async with backend.store() as other:
        async with store.lock(sid):
            with pytest.raises(SessionBusy):
                async with other.lock(sid, timeout=0.2):
                    pytest.fail("acquired a lock held by another instance")
            with pytest.raises(SessionBusy):
                async with store.lock(sid, timeout=0.05):
                    pytest.fail("acquired a lock held in this process")
            async with other.lock(f"{sid}-different", timeout=1):
                pass  # other sessions are not blocked
        async with other.lock(sid, timeout=5):
            pass
        assert locks_in_use(other) == 0
    assert locks_in_use(store) == 0


async def test_lock_is_released_when_the_turn_fails(store: SessionStore) -> None:
    sid = f"fail-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError):
        async with store.lock(sid):
            raise RuntimeError("planner crashed")
    async with store.lock(sid, timeout=1):
        pass
    assert locks_in_use(store) == 0


async def test_cancelled_waiter_does_not_keep_the_lock(store: SessionStore) -> None:
    sid = f"cancel-{uuid.uuid4().hex}"
    entered = asyncio.Event()

    async def waiter() -> None:
        async with store.lock(sid):
            entered.set()

    async with store.lock(sid):
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)  # only to yield: the waiter runs until it queues behind us
        assert lock_users(store, sid) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not entered.is_set()
    async with store.lock(sid, timeout=2):
        pass
    assert locks_in_use(store) == 0


async def test_many_sessions_locked_at_once_leave_no_trace(
    backend: Backend, store: SessionStore
) -> None:
    sids = [f"many-{n}-{uuid.uuid4().hex[:8]}" for n in range(12)]
    for sid in sids:
        await store.get_or_create(session_id=sid, source="chat", owner="user:t")

    async def turn(sid: str, n: int) -> None:
        async with store.lock(sid):
            await _turn(store, sid, n)

    await asyncio.gather(*(turn(sid, n) for n in range(3) for sid in sids))
    for sid in sids:
        assert [m.seq for m in await store.history(sid)] == list(range(1, 7))
    assert locks_in_use(store) == 0
    path = backend.sqlite_file
    if path is not None:
        # One lock file for every session: nothing is created per session or per turn.
        names = sorted(p.name for p in lock_directory_for(path).iterdir())
        assert names == ["open.lock", "sessions.lock"]


# ---- other processes ----------------------------------------------------------------------


async def _spawn(backend: Backend, mode: str, session_id: str) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env.update(STORE_URL=backend.url, STORE_SESSION=session_id, STORE_SCHEMA=backend.schema or "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.store.worker",
        mode,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_until(proc: asyncio.subprocess.Process, wanted: str) -> None:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        if not line:
            _, err = await proc.communicate()
            pytest.fail(f"worker exited early: {err.decode()[-2000:]}")
        if line.decode().strip() == wanted:
            return


async def _kill(proc: asyncio.subprocess.Process) -> bytes:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    out, _ = await proc.communicate()
    return out


async def test_lock_held_by_another_process_until_it_dies(
    backend: Backend, store: SessionStore
) -> None:
    sid = f"proc-{uuid.uuid4().hex}"
    proc = await _spawn(backend, "hold", sid)
    try:
        await _read_until(proc, "locked")
        with pytest.raises(SessionBusy):
            async with store.lock(sid, timeout=0.3):
                pytest.fail("acquired a lock another process holds")
    finally:
        await _kill(proc)
    # SIGKILL: the kernel drops the flock / PostgreSQL ends the backend and its advisory lock.
    async with store.lock(sid, timeout=15):
        pass


async def test_sigkill_loses_no_answered_turn(backend: Backend, store: SessionStore) -> None:
    sid = f"kill-{uuid.uuid4().hex}"
    await store.get_or_create(session_id=sid, source="chat", owner="user:t")
    proc = await _spawn(backend, "turns", sid)
    try:
        await _read_until(proc, "25")
    finally:
        out = await _kill(proc)
    answered = {int(line) for line in out.decode().split() if line.isdigit()} | set(range(26))

    history = await store.history(sid, limit=10_000)
    users = [m.text for m in history if m.role == "user"]
    assert {f"turn {n}" for n in answered} <= set(users)
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    assert len(history) % 2 == 0  # never half a turn
    assert (await store.get(sid)).message_count == len(history)  # type: ignore[union-attr]


# ---- durability, listing, stats, deletion ---------------------------------------------------


async def test_pending_survives_closing_and_reopening(backend: Backend) -> None:
    async with backend.store() as first:
        await first.migrate()
        sid = (await first.get_or_create(session_id=None, source="chat", owner="u")).session_id
        await _turn(first, sid, 0, pending=_pending(priority=3), context_update={"last_task_id": 5})

    async with backend.store() as second:
        await second.migrate()  # already at head: a no-op
        info = await second.get(sid)
        assert info is not None
        assert info.pending == _pending(priority=3)
        assert info.context == {"last_task_id": 5}
        assert [m.text for m in await second.history(sid)] == ["question 0", "answer 0"]


async def test_list_sessions_most_recent_first_with_paging(store: SessionStore) -> None:
    ids = []
    for n in range(5):
        info = await store.get_or_create(
            session_id=f"s{n}", source="chat", owner="alice" if n % 2 == 0 else "bob"
        )
        ids.append(info.session_id)
    await _turn(store, "s1", 0)  # s1 becomes the most recent

    sessions, total = await store.list_sessions(limit=2)
    assert total == 5
    assert [s.session_id for s in sessions] == ["s1", "s4"]
    page2, _ = await store.list_sessions(limit=2, offset=2)
    assert [s.session_id for s in page2] == ["s3", "s2"]
    alice, alice_total = await store.list_sessions(owner="alice")
    assert alice_total == 3
    assert {s.session_id for s in alice} == {"s0", "s2", "s4"}


async def test_stats(store: SessionStore) -> None:
    empty = await store.stats()
    assert empty.model_dump() == {
        "total_sessions": 0,
        "by_source": {"chat": 0, "voice": 0},
        "with_pending_actions": 0,
        "total_messages": 0,
    }
    await store.get_or_create(session_id="c1", source="chat", owner="alice")
    await store.get_or_create(session_id="c2", source="chat", owner="bob")
    await store.get_or_create(session_id="v1", source="voice", owner="alice")
    await _turn(store, "c1", 0, pending=_pending())
    await _turn(store, "c1", 1)
    await _turn(store, "v1", 0)

    stats = await store.stats()
    assert stats.total_sessions == 3
    assert stats.by_source == {"chat": 2, "voice": 1}
    assert stats.with_pending_actions == 1
    assert stats.total_messages == 6
    alice = await store.stats(owner="alice")
    assert (alice.total_sessions, alice.total_messages, alice.with_pending_actions) == (2, 6, 1)


async def test_delete_removes_session_and_messages_but_keeps_audit(store: SessionStore) -> None:
    await store.get_or_create(session_id="gone", source="chat", owner="user:t")
    await _turn(store, "gone", 0, audit=[AuditEntry(tool="list_droplets", outcome="ok")])
    assert await store.delete("gone") is True
    assert await store.delete("gone") is False
    assert await store.get("gone") is None
    assert await store.history("gone", limit=10) == []
    assert len(await store.audit(session_id="gone")) == 1
    # The id can be used again, starting from seq 1.
    await store.get_or_create(session_id="gone", source="chat", owner="user:t")
    assert await _turn(store, "gone", 0) == (1, 2)


async def test_delete_all_by_owner_and_everything(store: SessionStore) -> None:
    for n, owner in enumerate(["alice", "alice", "bob", "carol"]):
        await store.get_or_create(session_id=f"d{n}", source="chat", owner=owner)
        await _turn(store, f"d{n}", 0)
    assert await store.delete_all(owner="alice") == 2
    remaining, total = await store.list_sessions()
    assert total == 2
    assert {s.session_id for s in remaining} == {"d2", "d3"}
    assert await store.delete_all() == 2
    assert (await store.stats()).total_sessions == 0
    assert (await store.stats()).total_messages == 0


async def test_cleanup_idle_expires_only_idle_sessions(backend: Backend) -> None:
    async with backend.store(idle_expiry_seconds=60) as store:
        await store.migrate()
        old = await store.get_or_create(session_id="old", source="chat", owner="user:t")
        await _turn(store, "old", 0)
        await store.get_or_create(session_id="new", source="chat", owner="user:t")
        # An hour of silence, without waiting for it.
        await backdate(store, "old", by=timedelta(hours=1))
        old_activity = (await store.get("old")).last_activity  # type: ignore[union-attr]

        assert await store.cleanup_idle(now=old_activity + timedelta(seconds=59)) == 0
        assert await store.cleanup_idle(now=old_activity + timedelta(seconds=60.01)) == 1
        assert await store.get("old") is None
        assert await store.get("new") is not None
        assert await store.history(old.session_id, limit=10) == []
        assert await store.cleanup_idle() == 0  # "new" is fresh
        recent = await store.count_active(since=old_activity)
        assert recent == 1


async def test_run_cleanup_loop_expires_sessions(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with backend.store(idle_expiry_seconds=60) as store:
        await store.migrate()
        await store.get_or_create(session_id="idle", source="chat", owner="user:t")
        await backdate(store, "idle", by=timedelta(minutes=5))
        swept = asyncio.Event()
        cleanup = store.cleanup_idle

        async def observed(*, now: datetime | None = None) -> int:
            count = await cleanup(now=now)
            swept.set()
            return count

        monkeypatch.setattr(store, "cleanup_idle", observed)
        loop = asyncio.create_task(store.run_cleanup(interval_seconds=0))
        try:
            await asyncio.wait_for(swept.wait(), 30)
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
        assert await store.get("idle") is None


# ---- audit -------------------------------------------------------------------------------


async def test_audit_filters_and_order(store: SessionStore) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    await store.get_or_create(session_id="a1", source="chat", owner="user:t")
    await store.get_or_create(session_id="a2", source="voice", owner="user:t")
    await _turn(
        store,
        "a1",
        0,
        audit=[
            AuditEntry(at=base, actor="alice", tool="list_droplets", outcome="ok", source="chat"),
            AuditEntry(
                at=base + timedelta(minutes=1),
                actor="alice",
                tool="create_task",
                outcome="declined",
                source="chat",
                args={"droplet_id": 14},
            ),
        ],
    )
    await _turn(
        store,
        "a2",
        0,
        audit=[
            AuditEntry(
                at=base + timedelta(minutes=2),
                actor="bob",
                tool="create_task",
                outcome="error",
                detail="orchestrator unreachable",
                planner="gemini",
            ),
        ],
    )
    await store.record_audit(
        [
            AuditEntry(
                at=base + timedelta(minutes=3),
                actor="droplet-10",
                tool="run_task",
                outcome="ok",
                args={"task_id": 99, "when": base},
            ),
        ]
    )

    everything = await store.audit()
    assert [e.tool for e in everything] == [
        "run_task",
        "create_task",
        "create_task",
        "list_droplets",
    ]
    assert everything[0].session_id is None
    assert everything[0].args == {"task_id": 99, "when": "2026-01-01T00:00:00Z"}
    assert [e.session_id for e in await store.audit(session_id="a1")] == ["a1", "a1"]
    assert [e.actor for e in await store.audit(tool="create_task")] == ["bob", "alice"]
    assert [e.tool for e in await store.audit(actor="alice")] == ["create_task", "list_droplets"]
    [failed] = await store.audit(outcome="error")
    assert (failed.detail, failed.planner) == ("orchestrator unreachable", "gemini")
    assert [e.tool for e in await store.audit(since=base + timedelta(minutes=2))] == [
        "run_task",
        "create_task",
    ]
    assert [e.tool for e in await store.audit(limit=1, offset=1)] == ["create_task"]
    assert await store.audit(tool="create_task", actor="alice", outcome="ok") == []
    assert everything[-1].at == base


# ---- tasks ---------------------------------------------------------------------------------


async def test_claim_task_only_once_across_instances_and_restarts(backend: Backend) -> None:
    async with backend.store(instance_id="a") as first, backend.store(instance_id="b") as second:
        await first.migrate()
        results = await asyncio.gather(
            *(s.claim_task(4242) for _ in range(10) for s in (first, second))
        )
        assert results.count(True) == 1
        assert await first.task_seen(4242) and await second.task_seen(4242)
        assert not await first.task_seen(4243)
        assert await task_state(second, 4242) == "claimed"
        await mark_task(second, 4242, state="completed")
        assert await task_state(first, 4242) == "completed"
        await mark_task(first, 5000, state="failed")  # recording a state also claims
        assert await second.claim_task(5000) is False

    async with backend.store() as restarted:
        assert await restarted.claim_task(4242) is False
        assert await restarted.claim_task(4244) is True


# ---- health, lifecycle ---------------------------------------------------------------------


async def test_ping_and_use_before_open(backend: Backend) -> None:
    store = backend.store()
    assert await store.ping() is False
    with pytest.raises(StoreNotOpen):
        await store.get("x")
    with pytest.raises(StoreNotOpen):
        store.lock("x")
    await store.open()
    await store.open()  # idempotent
    try:
        assert await store.ping() is True
    finally:
        await store.close()
    await store.close()  # idempotent
    assert await store.ping() is False


async def test_ping_reports_an_unreachable_database() -> None:
    async with SessionStore(database_url="postgresql+asyncpg://postgres@127.0.0.1:9/none") as store:
        assert await store.ping(within_seconds=2) is False


# ---- migrations ----------------------------------------------------------------------------


def _schema_diff(sync_conn: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _raw_engine(backend: Backend) -> Any:
    return write_engine(
        build_engine(normalise_url(backend.url), connect_args=backend.connect_args, pool_size=1)
    )


async def test_migrate_an_existing_database_forward(backend: Backend) -> None:
    first = revisions()[0]
    async with backend.store() as store:
        await store.migrate(revision=first)
        assert await store.revision() == first

    # Data written by the first revision's schema (plain SQL: the models may have moved on).
    sessions = sa.table(
        "sessions",
        sa.column("id"),
        sa.column("source"),
        sa.column("owner"),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("last_activity", sa.DateTime(timezone=True)),
        sa.column("message_count"),
        sa.column("pending_action", sa.JSON),
        sa.column("context", sa.JSON),
    )
    messages = sa.table(
        "messages",
        sa.column("session_id"),
        sa.column("seq"),
        sa.column("role"),
        sa.column("text"),
        sa.column("trace_id"),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("meta", sa.JSON),
    )
    now = datetime.now(UTC)
    engine = await _raw_engine(backend)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sessions.insert().values(
                    id="legacy",
                    source="voice",
                    owner="voice:18:u",
                    created_at=now,
                    last_activity=now,
                    message_count=2,
                    pending_action=_pending().model_dump(mode="json"),
                    context={"last_task_id": 1},
                )
            )
            await conn.execute(
                messages.insert(),
                [
                    {
                        "session_id": "legacy",
                        "seq": 1,
                        "role": "user",
                        "text": "hi",
                        "trace_id": "t",
                        "created_at": now,
                        "meta": {},
                    },
                    {
                        "session_id": "legacy",
                        "seq": 2,
                        "role": "assistant",
                        "text": "hello",
                        "trace_id": "t",
                        "created_at": now,
                        "meta": {"actions": []},
                    },
                ],
            )
    finally:
        await engine.dispose()

    async with backend.store() as store:
        await store.migrate()
        assert await store.revision() == head_revision()
        # The session moved into its owner's namespace (an old owner without a kind is a user).
        assert await store.get("legacy") is None
        key = session_key(Identity("user", "voice:18:u"), "legacy")
        info = await store.get(key)
        assert info is not None
        assert info.owner == "user:voice:18:u"
        assert info.pending == _pending()
        assert info.context == {"last_task_id": 1}
        assert [m.text for m in await store.history(key)] == ["hi", "hello"]
        assert await _turn(store, key, 1) == (3, 4)
        await store.migrate()  # idempotent


async def test_migrations_match_the_models_and_downgrade(backend: Backend) -> None:
    engine = await _raw_engine(backend)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrations.upgrade)
            assert await conn.run_sync(_schema_diff) == []
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: downgrade(c, revision="base"))
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            assert set(tables) <= {"alembic_version"}
        async with engine.begin() as conn:
            await conn.run_sync(migrations.upgrade)
            assert await conn.run_sync(migrations.current_revision) == (head_revision())
    finally:
        await engine.dispose()


async def test_instances_starting_together_migrate_once(backend: Backend) -> None:
    stores = [backend.store() for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert {await s.revision() for s in stores} == {head_revision()}
    finally:
        for s in stores:
            await s.close()


# ---- backup and restore (SQLite) -------------------------------------------------------------


def _consistent_turns(path: Path) -> int:
    """Check a backup file on its own; returns how many messages it holds."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        total = 0
        for sid, count in conn.execute("SELECT id, message_count FROM sessions"):
            seqs = [
                s
                for (s,) in conn.execute(
                    "SELECT seq FROM messages WHERE session_id = ? ORDER BY seq", (sid,)
                )
            ]
            assert seqs == list(range(1, count + 1))
            assert count % 2 == 0
            total += count
        return total
    finally:
        conn.close()


async def test_backup_while_writing_then_restore(tmp_path: Path) -> None:
    async with make_backend("sqlite", tmp_path) as backend, backend.store() as store:
        await store.migrate()
        sid = (await store.get_or_create(session_id=None, source="chat", owner="user:t")).session_id
        written = 0
        stop = asyncio.Event()
        progressed = asyncio.Event()

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                async with store.lock(sid):
                    await _turn(store, sid, written, audit=[AuditEntry(tool="t", outcome="ok")])
                written += 1
                progressed.set()

        task = asyncio.create_task(writer())
        backups = []
        try:
            for n in range(3):
                while written < 10 * (n + 1):
                    progressed.clear()
                    await progressed.wait()
                backups.append(await store.backup(tmp_path / "backups" / f"b{n}.db"))
        finally:
            stop.set()
            await task

        counts = [_consistent_turns(b) for b in backups]
        assert counts == sorted(counts)
        assert counts[0] >= 20
        assert counts[-1] <= 2 * written

        # Restoring over a database a running store has open is refused.
        assert store.sqlite_file is not None
        with pytest.raises(StoreInUse):
            await asyncio.to_thread(restore_sqlite, source=backups[-1], target=store.sqlite_file)

    # The service is stopped now: restore over the live database.
    target = backend.sqlite_file
    assert target is not None
    previous = await asyncio.to_thread(restore_sqlite, source=backups[0], target=target)
    assert previous is not None and _consistent_turns(previous) == 2 * written
    async with backend.store() as restored:
        await restored.migrate()
        assert (await restored.get(sid)).message_count == counts[0]  # type: ignore[union-attr]
        history = await restored.history(sid, limit=10_000)
        assert [m.seq for m in history] == list(range(1, counts[0] + 1))
        assert await _turn(restored, sid, 0) == (counts[0] + 1, counts[0] + 2)

    # Restoring into an empty place works too.
    fresh = tmp_path / "elsewhere" / "chat.db"
    assert await asyncio.to_thread(restore_sqlite, source=backups[1], target=fresh) is None
    assert _consistent_turns(fresh) == counts[1]


async def test_restore_rejects_what_is_not_a_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError):
        restore_sqlite(source=junk, target=tmp_path / "chat.db")
    with pytest.raises(BackupError):
        restore_sqlite(source=tmp_path / "missing.db", target=tmp_path / "chat.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(BackupError, match="not a Chat Orchestrator"):
        restore_sqlite(source=other, target=tmp_path / "chat.db")


async def test_postgresql_backup_points_to_pg_dump(tmp_path: Path) -> None:
    async with make_backend("postgresql", tmp_path) as backend, backend.store() as store:
        with pytest.raises(BackupError, match="pg_dump"):
            await store.backup(tmp_path / "b.db")


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    async with make_backend("sqlite", tmp_path) as backend, backend.store() as store:
        await store.migrate()
        assert store.sqlite_file is not None
        conn = sqlite3.connect(store.sqlite_file)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


def test_the_head_read_from_the_scripts_is_alembics_head() -> None:
    assert migrations.head_revision() == head_revision()


def test_a_start_on_a_database_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    """Every start but the first finds the schema current and skips Alembic (~0.25 s)."""
    import subprocess

    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    script = (
        "import asyncio, sys\n"
        "from app.store.sessions import SessionStore\n"
        "async def main():\n"
        f"    async with SessionStore(database_url={url!r}) as store:\n"
        "        await store.migrate()\n"
        "        print('RESULT', await store.revision(), 'alembic' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    outputs = [
        next(
            line.split()[1:]
            for line in subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            if line.startswith("RESULT")
        )
        for _ in range(2)
    ]
    head = head_revision()
    assert outputs == [[head, "True"], [head, "False"]]
