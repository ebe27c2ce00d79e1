"""Real databases for session store tests, and what only tests ask of the store.

Databases: a SQLite file, or a private PostgreSQL schema. PostgreSQL comes from
TEST_DATABASE_URL (default: the local trust-auth server). Each test gets its own schema
(search_path set through the driver), so parallel runs never share tables.

The helpers below write or read the store's tables directly, through the store's own
connections: the service never needs them, so they are not part of SessionStore.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.domain.plan import PendingCall
from app.domain.session import AuditEntry, utc_now
from app.store.engine import insert_for
from app.store.locks import SessionLocks
from app.store.migrations import alembic_config
from app.store.sessions import SessionNotFound, SessionStore
from app.store.tables import ClaimedTaskRow, SessionRow
from app.store.turns import Created, TurnWrite

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]


def pg_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    def store(self, **options: Any) -> SessionStore:
        return SessionStore(database_url=self.url, connect_args=self.connect_args, **options)

    @property
    def sqlite_file(self) -> Path | None:
        return self.store().sqlite_file


@asynccontextmanager
async def make_backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if name == "sqlite":
        yield Backend(name=name, url=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'chat.db'}")
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(pg_url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield Backend(
                name=name,
                url=pg_url(),
                connect_args={"server_settings": {"search_path": schema}},
                schema=schema,
            )
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


# ---- migrations ------------------------------------------------------------------------------


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def revisions() -> list[str]:
    """All revision ids, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def downgrade(connection: Connection, *, revision: str) -> None:
    """Undo migrations down to `revision` inside the caller's transaction (sync; run_sync)."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


# ---- sessions --------------------------------------------------------------------------------


async def set_pending(store: SessionStore, session_id: str, pending: PendingCall | None) -> None:
    """Replace (or with None clear) a session's pending action. Raises SessionNotFound."""
    value = None if pending is None else pending.model_dump(mode="json")
    async with store._write() as conn:
        result = await conn.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(pending_action=value)
        )
        if result.rowcount == 0:
            raise SessionNotFound(session_id)


async def set_context(
    store: SessionStore, session_id: str, context: dict[str, Any], *, replace: bool = False
) -> dict[str, Any]:
    """Merge `context` into a session's context (or replace it); returns the result."""
    async with store._write() as conn:
        current = (
            await conn.execute(select(SessionRow.context).where(SessionRow.id == session_id))
        ).one_or_none()
        if current is None:
            raise SessionNotFound(session_id)
        merged = {**({} if replace else dict(current.context or {})), **context}
        await conn.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(context=merged)
        )
    return merged


async def backdate(store: SessionStore, session_id: str, *, by: timedelta) -> None:
    """Make a session look idle for `by` longer, instead of waiting for it."""
    async with store._write() as conn:
        # Computed here: SQLite keeps timestamps as text, so no date arithmetic in SQL.
        last = (
            await conn.execute(select(SessionRow.last_activity).where(SessionRow.id == session_id))
        ).scalar_one()
        await conn.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(last_activity=last - by)
        )


# ---- tasks -----------------------------------------------------------------------------------


async def mark_task(store: SessionStore, task_id: int, *, state: str) -> None:
    """Record a task's state; claims it (for `store.instance_id`) if unclaimed."""
    now = utc_now()
    statement = (
        insert_for(store.dialect, ClaimedTaskRow)
        .values(
            task_id=task_id,
            claimed_at=now,
            updated_at=now,
            state=state,
            claimed_by=store.instance_id,
        )
        .on_conflict_do_update(index_elements=["task_id"], set_={"state": state, "updated_at": now})
    )
    async with store._write() as conn:
        await conn.execute(statement)


async def task_state(store: SessionStore, task_id: int) -> str | None:
    async with store._read() as conn:
        row = (
            await conn.execute(
                select(ClaimedTaskRow.state).where(ClaimedTaskRow.task_id == task_id)
            )
        ).one_or_none()
    return None if row is None else str(row.state)


# ---- locks -----------------------------------------------------------------------------------


def sessions_in_use(locks: SessionLocks) -> int:
    """Sessions with a holder or a waiter in this process: must fall back to 0 after turns."""
    return len(locks._slots)


def locks_in_use(store: SessionStore) -> int:
    return sessions_in_use(store._locks)


def lock_users(store: SessionStore, session_id: str) -> int:
    """The holder and the waiters of one session's lock in this process."""
    slot = store._locks._slots.get(session_id)
    return 0 if slot is None else slot.users


# ---- the turn writers' tests (SQLite and PostgreSQL) -------------------------------------------

WRITTEN_AT = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


def turn_write(sid: str, **extra: Any) -> TurnWrite:
    """A proposal turn ("cancel task 7") for a writer test; `extra` sets the other fields."""
    return TurnWrite(
        session_id=sid,
        user_text="cancel task 7",
        answer_text="Cancel task 7? (yes/no)",
        trace_id="trace-1",
        at=WRITTEN_AT,
        answer_meta={"actions": [{"tool": "cancel_task", "status": "awaiting_confirmation"}]},
        **extra,
    )


def audit_violating_a_constraint() -> AuditEntry:
    """An audit entry whose outcome the table's CHECK constraint refuses (built unvalidated)."""
    return AuditEntry.model_construct(
        at=WRITTEN_AT,
        tool="x",
        args={},
        outcome="exploded",  # type: ignore[arg-type]
        actor=None,
        session_id=None,
        source=None,
    )


CreateRow = Callable[[str, str, int | None], Awaitable[Created]]
"""A writer's way of making a session row: (session id, owner, quota) -> what it did."""


async def check_creation_outcomes(store: SessionStore, create: CreateRow) -> None:
    """Every writer's contract for a new session's row, with a quota of 2 per owner: an
    existing id is reported (not made twice, not counted again), an owner at the quota is
    refused, another owner has a quota of its own, and the service's own sessions (no quota)
    are not counted."""
    assert await create("q.1", "user:q", 2) == "created"
    assert await create("q.1", "user:q", 2) == "exists"
    assert await create("q.1", "user:q", None) == "exists"
    assert await create("q.2", "user:q", 2) == "created"
    assert await create("q.3", "user:q", 2) == "over_quota"
    assert await create("q.3", "user:other", 2) == "created"
    assert await create("q.4", "user:q", None) == "created"
    listed, total = await store.list_sessions(owner="user:q")
    assert {s.session_id for s in listed} == {"q.1", "q.2", "q.4"} and total == 3
