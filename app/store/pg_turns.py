"""PostgreSQL: a batch of turns (and a new session's row) written with constant SQL on the
asyncpg driver directly.

Why not through SQLAlchemy's `execute`: a turn is four or five statements, and SQLAlchemy's
per-execution work (compiling from the cache, binding, the asyncpg adapter's wrappers) cost
about as much CPU as the rest of a read turn. Here the statements are constant text that asyncpg
prepares once per connection, and the whole batch is one transaction, as before.

The connection still comes from the store's engine (its pool, its ping after an idle spell,
its settings), and values are stored exactly as SQLAlchemy stores them (JSON as `json.dumps`
text, timestamps timezone-aware, SQL NULL for no pending action), so every other read sees the
same rows; a test compares the two. Errors are raised as SQLAlchemy's exception types, so
callers keep one contract whichever path wrote the row.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError

from app.store.engine import StaleConnection
from app.store.turns import Created, MissingSession, TurnCommitted, TurnWrite, committed

if TYPE_CHECKING:
    from asyncpg import Connection

Item = TypeVar("Item")
Result = TypeVar("Result")

_UPDATE: Final = (
    "UPDATE sessions SET message_count = message_count + 2, last_activity = $1, "
    "title = coalesce(title, $2) WHERE id = $3 RETURNING message_count, context"
)
_UPDATE_WITH_PENDING: Final = (
    "UPDATE sessions SET message_count = message_count + 2, last_activity = $1, "
    "title = coalesce(title, $2), pending_action = $3 WHERE id = $4 "
    "RETURNING message_count, context"
)
_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (session_id, seq, role, text, trace_id, created_at, meta) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_INSERT_AUDIT: Final = (
    "INSERT INTO audit (at, actor, session_id, source, tool, args, outcome, detail, "
    "duration_ms, trace_id, planner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
)
_UPDATE_CONTEXT: Final = "UPDATE sessions SET context = $1 WHERE id = $2"
# Creations of one owner's sessions queue behind each other, so the count below holds.
_OWNER_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext($1))"
_EXISTS: Final = "SELECT 1 FROM sessions WHERE id = $1"
_OWNED: Final = "SELECT count(*) FROM sessions WHERE owner = $1"
_CREATE: Final = (
    "INSERT INTO sessions (id, source, owner, title, created_at, last_activity, message_count, "
    "pending_action, context) VALUES ($1, $2, $3, NULL, $4, $4, 0, NULL, '{}') "
    "ON CONFLICT (id) DO NOTHING"
)


async def write_batch(
    driver: Connection, batch: Sequence[TurnWrite]
) -> list[TurnCommitted | BaseException]:
    """Write `batch` in one transaction; one result per turn. Raises SQLAlchemy's
    IntegrityError or OperationalError when the transaction fails, StaleConnection (an
    OperationalError) when the connection was closed before the transaction began."""
    return await run_batch(driver, batch, _write_one, what="turn batch")


async def run_batch(
    driver: Connection,
    batch: Sequence[Item],
    one: Callable[[Connection, Item], Awaitable[Result | BaseException]],
    *,
    what: str,
) -> list[Result | BaseException]:
    """`one` for each item of `batch`, in one transaction, with write_batch's errors."""
    import asyncpg  # imported with the PostgreSQL driver only

    if driver.is_in_transaction():
        # Our transaction would be a savepoint inside someone else's, committed with theirs.
        raise RuntimeError(f"the {what} writer's connection is already in a transaction")
    begun = False
    try:
        async with driver.transaction():
            begun = True
            return [await one(driver, item) for item in batch]
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(what, None, exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise _failed(driver, exc, begun=begun, what=what) from exc


async def create_session(
    driver: Connection,
    *,
    session_id: str,
    source: str,
    owner: str,
    at: datetime,
    max_for_owner: int | None,
) -> Created:
    """Insert an empty session row in a transaction of its own; with `max_for_owner`, the
    owner's sessions are counted in it, under a lock per owner, so concurrent creations on any
    instance never exceed it. Raises SQLAlchemy's OperationalError when the database fails
    (StaleConnection when the connection was closed before the transaction began)."""
    import asyncpg  # imported with the PostgreSQL driver only

    if driver.is_in_transaction():
        raise RuntimeError("the session writer's connection is already in a transaction")
    begun = False
    try:
        async with driver.transaction():
            begun = True
            if max_for_owner is not None:
                await driver.execute(_OWNER_LOCK, owner)
            if await driver.fetchval(_EXISTS, session_id) is not None:
                return "exists"
            if max_for_owner is not None and int(await driver.fetchval(_OWNED, owner)) >= (
                max_for_owner
            ):
                return "over_quota"
            status = await driver.execute(_CREATE, session_id, source, owner, at)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError("new session", None, exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise _failed(driver, exc, begun=begun, what="new session") from exc
    # "INSERT 0 0": another instance made it between the look and the insert (no quota lock).
    return "created" if status.endswith(" 1") else "exists"


def _failed(
    driver: Connection, error: BaseException, *, begun: bool, what: str
) -> OperationalError:
    if not begun and driver.is_closed():
        # Closed before BEGIN reached the server: nothing was written, so it may run again on
        # another connection.
        return StaleConnection(what, None, error)
    return OperationalError(what, None, error)


async def _write_one(driver: Connection, turn: TurnWrite) -> TurnCommitted | BaseException:
    if turn.pending_changed:
        pending = None if turn.pending_json is None else json.dumps(turn.pending_json)
        row = await driver.fetchrow(
            _UPDATE_WITH_PENDING, turn.at, turn.title, pending, turn.session_id
        )
    else:
        row = await driver.fetchrow(_UPDATE, turn.at, turn.title, turn.session_id)
    if row is None:
        return MissingSession(turn.session_id)
    count = int(row["message_count"])
    await driver.executemany(_INSERT_MESSAGE, turn.message_rows(last_seq=count, at=turn.at))
    if turn.audit:
        await driver.executemany(_INSERT_AUDIT, turn.audit_rows(stamp=_same))
    context = _json_object(row["context"])
    if turn.context_update:
        context = {**context, **turn.context_update}
        await driver.execute(_UPDATE_CONTEXT, json.dumps(context), turn.session_id)
    return committed(turn, message_count=count, context=context)


def _same(value: datetime) -> datetime:
    return value  # asyncpg takes timezone-aware datetimes as they are


def _json_object(value: Any) -> dict[str, Any]:
    """A JSON column as read: SQLAlchemy's asyncpg codec hands back the parsed value on its
    connections; a plain asyncpg connection gives the text."""
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    return dict(parsed) if isinstance(parsed, dict) else {}
