"""PostgreSQL's turn writer: rows it writes read back through SQLAlchemy exactly as written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from app.domain.plan import PendingCall, ToolCall
from app.domain.session import AuditEntry
from app.store import pg_turns
from app.store.engine import build_engine, normalise_url
from app.store.sessions import SessionStore
from app.store.turns import Created, MissingSession
from tests.store.support import (
    WRITTEN_AT,
    Backend,
    audit_violating_a_constraint,
    check_creation_outcomes,
    make_backend,
    turn_write,
)

AT = WRITTEN_AT


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Backend]:
    async with make_backend("postgresql", tmp_path) as backend:
        yield backend


@pytest.fixture
async def store(pg: Backend) -> AsyncIterator[SessionStore]:
    opened = pg.store()
    await opened.open()
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def driver(pg: Backend, store: SessionStore) -> AsyncIterator[Any]:
    """A plain connection of the store's kind (SQLAlchemy's asyncpg codecs installed)."""
    engine = build_engine(normalise_url(pg.url), connect_args=pg.connect_args)
    try:
        async with engine.connect() as conn:
            yield (await conn.get_raw_connection()).driver_connection
    finally:
        await engine.dispose()


async def test_rows_read_back_through_the_store(store: SessionStore, driver: Any) -> None:
    await store.get_or_create(session_id="u.a", source="chat", owner="user:a")
    pending = PendingCall(call=ToolCall(tool="cancel_task", args={"task_id": 7}))
    audit = AuditEntry(at=AT, actor="user:a", tool="cancel_task", args={"task_id": 7}, outcome="ok")
    [result] = await pg_turns.write_batch(
        driver,
        [
            turn_write(
                "u.a",
                audit=(audit,),
                pending_changed=True,
                pending=pending,
                context_update={"last_task_id": 7},
            )
        ],
    )
    assert not isinstance(result, BaseException)
    assert result.seqs == (1, 2) and result.context == {"last_task_id": 7}

    info = await store.get("u.a")
    assert info is not None
    assert (info.message_count, info.title, info.last_activity) == (2, "cancel task 7", AT)
    assert info.pending == pending
    assert info.context == {"last_task_id": 7}
    history = await store.history("u.a")
    assert [(m.seq, m.role, m.text, m.created_at, m.trace_id) for m in history] == [
        (1, "user", "cancel task 7", AT, "trace-1"),
        (2, "assistant", "Cancel task 7? (yes/no)", AT, "trace-1"),
    ]
    assert history[0].meta == {}
    assert history[1].meta == {
        "actions": [{"tool": "cancel_task", "status": "awaiting_confirmation"}]
    }
    [entry] = await store.audit(session_id="u.a")
    assert (entry.at, entry.actor, entry.tool, entry.args, entry.outcome, entry.trace_id) == (
        AT,
        "user:a",
        "cancel_task",
        {"task_id": 7},
        "ok",
        "trace-1",
    )
    # A second turn merges into the stored context and keeps the first title.
    [again] = await pg_turns.write_batch(
        driver, [turn_write("u.a", context_update={"last_droplet_id": 14})]
    )
    assert not isinstance(again, BaseException)
    assert again.seqs == (3, 4)
    assert again.context == {"last_task_id": 7, "last_droplet_id": 14}
    info = await store.get("u.a")
    assert info is not None and info.context == again.context and info.pending == pending


async def test_clearing_the_pending_action_stores_sql_null(
    store: SessionStore, driver: Any
) -> None:
    await store.get_or_create(session_id="u.b", source="chat", owner="user:a")
    pending = PendingCall(call=ToolCall(tool="cancel_task", args={"task_id": 7}))
    await pg_turns.write_batch(driver, [turn_write("u.b", pending_changed=True, pending=pending)])
    assert (await store.stats()).with_pending_actions == 1
    await pg_turns.write_batch(driver, [turn_write("u.b", pending_changed=True)])
    assert (await store.stats()).with_pending_actions == 0
    async with store.reading() as conn:
        stored = (
            await conn.execute(text("SELECT pending_action IS NULL FROM sessions WHERE id='u.b'"))
        ).scalar()
    assert stored is True  # SQL NULL, not JSON null


async def test_a_missing_session_writes_nothing(store: SessionStore, driver: Any) -> None:
    [result] = await pg_turns.write_batch(driver, [turn_write("u.none")])
    assert isinstance(result, MissingSession)
    assert await store.history("u.none") == []


async def test_a_constraint_violation_is_sqlalchemys_error_and_others_still_commit(
    store: SessionStore,
) -> None:
    for sid in ("u.d", "u.e"):
        await store.get_or_create(session_id=sid, source="chat", owner="user:a")
    broken = audit_violating_a_constraint()
    ok_write = turn_write("u.d")
    bad_write = turn_write("u.e", audit=(broken,))
    # One transaction for both fails as SQLAlchemy's IntegrityError; the store's batch
    # function then writes each turn alone, so only the bad one fails.
    good, bad = await store._write_turns([ok_write, bad_write])
    assert not isinstance(good, BaseException) and good.seqs == (1, 2)
    assert isinstance(bad, IntegrityError)
    assert [m.seq for m in await store.history("u.d")] == [1, 2]
    assert await store.history("u.e") == []


async def test_a_connection_in_a_transaction_is_refused(driver: Any) -> None:
    async with driver.transaction():
        with pytest.raises(RuntimeError, match="already in a transaction"):
            await pg_turns.write_batch(driver, [turn_write("u.x")])


async def test_a_failing_database_is_an_operational_error(store: SessionStore, driver: Any) -> None:
    await store.get_or_create(session_id="u.f", source="chat", owner="user:a")
    await driver.close()  # the connection is gone under the writer
    with pytest.raises(OperationalError):
        await pg_turns.write_batch(driver, [turn_write("u.f")])


async def test_a_new_session_reads_back_as_returned(store: SessionStore, driver: Any) -> None:
    created = await store.get_or_create(session_id="u.new", source="voice", owner="user:a")
    # What the turn goes on with is what any later read of the row gives.
    assert await store.get("u.new") == created
    assert (created.source, created.owner, created.message_count) == ("voice", "user:a", 0)
    assert created.created_at == created.last_activity and created.created_at.tzinfo is not None
    row = await driver.fetchrow(
        "SELECT title, pending_action IS NULL AS nothing_pending, context::text AS context "
        "FROM sessions WHERE id = 'u.new'"
    )
    # As SQLAlchemy stores them: no title, SQL NULL for nothing pending, JSON {} for context.
    assert (row["title"], row["nothing_pending"], row["context"]) == (None, True, "{}")


async def test_creating_reports_an_existing_row_and_an_owner_over_quota(
    store: SessionStore, driver: Any
) -> None:
    async def create(sid: str, owner: str, quota: int | None) -> Created:
        return await pg_turns.create_session(
            driver, session_id=sid, source="chat", owner=owner, at=AT, max_for_owner=quota
        )

    await check_creation_outcomes(store, create)
    assert not driver.is_in_transaction()


async def test_creating_on_a_failing_database_is_an_operational_error(driver: Any) -> None:
    await driver.close()
    with pytest.raises(OperationalError):
        await pg_turns.create_session(
            driver, session_id="u.g", source="chat", owner="user:a", at=AT, max_for_owner=None
        )


async def _terminate_backends(pg: Backend, application_name: str) -> int:
    """End every backend of `application_name`, as a PostgreSQL restart would, and wait until
    they are gone; returns how many there were."""
    admin = create_async_engine(pg.url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            ended = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": application_name},
                )
            ).scalar_one()
            for _ in range(500):
                left = (
                    await conn.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                        {"n": application_name},
                    )
                ).scalar_one()
                if not left:
                    break
                await asyncio.sleep(0.01)
            return int(ended)
    finally:
        await admin.dispose()


async def _turn(store: SessionStore, session_id: str, text_: str) -> tuple[int, int]:
    """A turn as the service runs one: its lock, its state, its write."""
    async with store.lock(session_id):
        await store.turn_state(session_id=session_id, source="chat", owner="user:a")
        return await store.record_turn(
            session_id=session_id, user_text=text_, answer_text="ok", trace_id=None
        )


@pytest.mark.parametrize("live_sessions", [1000, 0], ids=["held", "read-every-turn"])
async def test_a_turn_after_the_server_dropped_every_pooled_connection_succeeds(
    pg: Backend, live_sessions: int
) -> None:
    """Connections used within the ping window are not pinged (app/store/engine.py); one
    closed meanwhile is found at the turn's lock, its state's read (a session not held in
    memory) or its write's BEGIN, which then run again on a new connection. With no ping at
    all here, every connection of the pools is such a one."""
    name = f"chat-test-{uuid.uuid4().hex[:8]}"
    store = SessionStore(
        database_url=pg.url,
        connect_args={"server_settings": {"search_path": str(pg.schema), "application_name": name}},
        ping_after_idle_s=3600.0,
        live_sessions=live_sessions,
    )
    await store.open()
    try:
        await store.migrate()
        # Two turns at once: two lock connections in the pool, both closed below; the retry
        # must not be handed the second one.
        first = await asyncio.gather(_turn(store, "u.a", "one"), _turn(store, "u.b", "one"))
        assert list(first) == [(1, 2), (1, 2)]
        assert await _terminate_backends(pg, name) >= 3  # two locks' and the writer's
        assert await _turn(store, "u.a", "two") == (3, 4)
        history = await store.history("u.a")
        assert [m.text for m in history] == ["one", "ok", "two", "ok"]
    finally:
        await store.close()
