"""PostgreSQL: a batch of turns written with constant SQL on the asyncpg driver directly.

Why not through SQLAlchemy's `execute`: a turn is four or five statements, and SQLAlchemy's
per-execution work (compiling from the cache, binding, the asyncpg adapter's wrappers) cost
about as much CPU as the rest of a read turn. Here the statements are constant text that asyncpg
prepares once per connection, and the whole batch is one transaction, as before.

The connection still comes from the store's engine (its pool, pre-ping and settings), and
values are stored exactly as SQLAlchemy stores them (JSON as `json.dumps` text, timestamps
timezone-aware, SQL NULL for no pending action), so every other read sees the same rows; a
test compares the two. Errors are raised as SQLAlchemy's exception types, so callers keep one
contract whichever path wrote the row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.exc import IntegrityError, OperationalError

from app.store.turns import MissingSession, TurnCommitted, TurnWrite, committed

if TYPE_CHECKING:
    from asyncpg import Connection

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


async def write_batch(
    driver: Connection, batch: Sequence[TurnWrite]
) -> list[TurnCommitted | BaseException]:
    """Write `batch` in one transaction; one result per turn. Raises SQLAlchemy's
    IntegrityError or OperationalError when the transaction fails."""
    import asyncpg  # imported with the PostgreSQL driver only

    if driver.is_in_transaction():
        # Our transaction would be a savepoint inside someone else's, committed with theirs.
        raise RuntimeError("the turn writer's connection is already in a transaction")
    try:
        async with driver.transaction():
            return [await _write_one(driver, turn) for turn in batch]
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError("turn batch", None, exc) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise OperationalError("turn batch", None, exc) from exc


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
