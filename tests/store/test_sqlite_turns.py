"""SQLite's turn writer: rows it writes read back through SQLAlchemy exactly as written."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from app.domain.plan import PendingCall, ToolCall
from app.domain.session import AuditEntry
from app.store.sessions import SessionStore
from app.store.sqlite_turns import SqliteTurns, parse_sqlite_datetime
from app.store.turns import Created, MissingSession
from tests.store.support import (
    WRITTEN_AT,
    audit_violating_a_constraint,
    check_creation_outcomes,
    turn_write,
)

AT = WRITTEN_AT
# How SQLAlchemy stores a DATETIME on SQLite.
STORED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    opened = SessionStore(database_url=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}")
    await opened.open()
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def turns(store: SessionStore) -> AsyncIterator[SqliteTurns]:
    assert store.sqlite_file is not None
    writer = SqliteTurns(path=store.sqlite_file)
    try:
        yield writer
    finally:
        await writer.close()


async def test_rows_read_back_through_the_store(store: SessionStore, turns: SqliteTurns) -> None:
    await store.get_or_create(session_id="u.a", source="chat", owner="user:a")
    pending = PendingCall(call=ToolCall(tool="cancel_task", args={"task_id": 7}))
    audit = AuditEntry(at=AT, actor="user:a", tool="cancel_task", args={"task_id": 7}, outcome="ok")
    [result] = await turns.write(
        [
            turn_write(
                "u.a",
                audit=(audit,),
                pending_changed=True,
                pending=pending,
                context_update={"last_task_id": 7},
            )
        ]
    )
    assert not isinstance(result, BaseException)
    assert result.seqs == (1, 2)

    info = await store.get("u.a")
    assert info is not None
    assert (info.message_count, info.title, info.last_activity) == (2, "cancel task 7", AT)
    assert info.pending == pending
    assert info.context == {"last_task_id": 7}
    history = await store.history("u.a")
    assert [(m.seq, m.role, m.text, m.created_at) for m in history] == [
        (1, "user", "cancel task 7", AT),
        (2, "assistant", "Cancel task 7? (yes/no)", AT),
    ]
    assert history[1].meta == {
        "actions": [{"tool": "cancel_task", "status": "awaiting_confirmation"}]
    }
    [entry] = await store.audit(session_id="u.a")
    assert (entry.at, entry.tool, entry.args, entry.trace_id) == (
        AT,
        "cancel_task",
        {"task_id": 7},
        "trace-1",
    )

    # Stored in the same text form as the rows SQLAlchemy writes.
    assert store.sqlite_file is not None
    with sqlite3.connect(store.sqlite_file) as raw:
        created, last = raw.execute(
            "SELECT created_at, last_activity FROM sessions WHERE id = 'u.a'"
        ).fetchone()
    assert STORED.match(created) and STORED.match(last)
    assert parse_sqlite_datetime(last) == AT


async def test_clearing_the_pending_action_stores_sql_null(
    store: SessionStore, turns: SqliteTurns
) -> None:
    await store.get_or_create(session_id="u.b", source="chat", owner="user:a")
    pending = PendingCall(call=ToolCall(tool="cancel_task", args={"task_id": 7}))
    await turns.write(
        [
            turn_write(
                "u.b",
                pending_changed=True,
                pending=pending,
            )
        ]
    )
    await turns.write([turn_write("u.b", pending_changed=True)])
    assert (await store.stats()).with_pending_actions == 0
    info = await store.get("u.b")
    assert info is not None and info.pending is None


async def test_version_and_missing_session(store: SessionStore, turns: SqliteTurns) -> None:
    created = await store.get_or_create(session_id="u.c", source="chat", owner="user:a")
    assert turns.version("u.c") == (created.created_at, 0)
    assert turns.version("u.none") is None
    [result] = await turns.write([turn_write("u.none")])
    assert isinstance(result, MissingSession)


async def test_a_constraint_violation_is_sqlalchemys_error_and_others_still_commit(
    store: SessionStore, turns: SqliteTurns
) -> None:
    for sid in ("u.d", "u.e"):
        await store.get_or_create(session_id=sid, source="chat", owner="user:a")
    broken = audit_violating_a_constraint()
    good, bad = await turns.write([turn_write("u.d"), turn_write("u.e", audit=(broken,))])
    assert not isinstance(good, BaseException) and good.seqs == (1, 2)
    assert isinstance(bad, IntegrityError)
    assert [m.seq for m in await store.history("u.d")] == [1, 2]
    assert await store.history("u.e") == []


async def test_a_locked_database_fails_the_batch_once(store: SessionStore) -> None:
    """Locked past the busy timeout: every turn gets the error, and the batch is not retried
    turn by turn (each retry would wait the whole timeout again)."""
    assert store.sqlite_file is not None
    for sid in ("u.f", "u.g", "u.h"):
        await store.get_or_create(session_id=sid, source="chat", owner="user:a")
    writer = SqliteTurns(path=store.sqlite_file, busy_timeout_ms=300)
    holder = sqlite3.connect(store.sqlite_file, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        results = await writer.write([turn_write("u.f"), turn_write("u.g"), turn_write("u.h")])
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await writer.close()
    assert all(isinstance(r, OperationalError) for r in results)
    assert len(results) == 3
    assert elapsed < 0.9  # one wait of 0.3 s, not four
    assert await store.history("u.f") == []


async def test_a_new_session_is_made_by_the_writer_and_reads_back_as_returned(
    store: SessionStore,
) -> None:
    assert store.sqlite_file is not None
    created = await store.get_or_create(session_id="u.new", source="voice", owner="user:a")
    # What the turn goes on with is what any later read of the row gives.
    assert await store.get("u.new") == created
    assert (created.source, created.owner, created.message_count) == ("voice", "user:a", 0)
    assert created.created_at == created.last_activity
    assert created.created_at.tzinfo is not None
    with sqlite3.connect(store.sqlite_file) as raw:
        row = raw.execute(
            "SELECT created_at, last_activity, title, pending_action, context, message_count "
            "FROM sessions WHERE id = 'u.new'"
        ).fetchone()
    created_at, last_activity, title, pending, context, count = row
    assert STORED.match(created_at) and created_at == last_activity
    assert parse_sqlite_datetime(created_at) == created.created_at
    # As SQLAlchemy stores them: no title, SQL NULL for nothing pending, JSON "{}" for context.
    assert (title, pending, context, count) == (None, None, "{}", 0)


async def test_creating_reports_an_existing_row_and_an_owner_over_quota(
    turns: SqliteTurns, store: SessionStore
) -> None:
    async def create(sid: str, owner: str, quota: int | None) -> Created:
        return await turns.create(
            session_id=sid, source="chat", owner=owner, at=AT, max_for_owner=quota
        )

    await check_creation_outcomes(store, create)


async def test_creating_in_a_locked_database_is_sqlalchemys_error(store: SessionStore) -> None:
    assert store.sqlite_file is not None
    writer = SqliteTurns(path=store.sqlite_file, busy_timeout_ms=200)
    holder = sqlite3.connect(store.sqlite_file, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(OperationalError):
            await writer.create(
                session_id="u.locked", source="chat", owner="user:a", at=AT, max_for_owner=None
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:  # the writer's connection is usable again: the failed transaction was rolled back
        outcome = await writer.create(
            session_id="u.locked", source="chat", owner="user:a", at=AT, max_for_owner=None
        )
    finally:
        await writer.close()
    assert outcome == "created"
