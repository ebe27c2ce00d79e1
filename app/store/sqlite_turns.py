"""SQLite: turns (and new sessions) written by one thread on one connection, and the per-turn
version read.

Why not through the store's SQLAlchemy engine: each statement there is a hop to aiosqlite's
thread plus SQLAlchemy's per-execution work, about 2 ms of CPU for a turn's four statements.
Here a whole batch of turns (group commit) is one hop to a dedicated thread that runs constant
SQL text on a plain `sqlite3` connection, the same pragmas as the engine's connections
(app/store/engine.py), and one COMMIT.

Values are stored exactly as SQLAlchemy stores them on SQLite (datetimes as
"YYYY-MM-DD HH:MM:SS.ffffff" in UTC, JSON as `json.dumps` text, SQL NULL for no pending
action), so everything else in the store reads these rows unchanged; a test compares the two.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy.exc import DBAPIError

from app.store.engine import SQLITE_BUSY_TIMEOUT_MS
from app.store.live import Version
from app.store.turns import Created, MissingSession, TurnCommitted, TurnWrite, committed

_UPDATE: Final = (
    "UPDATE sessions SET message_count = message_count + 2, last_activity = ?, "
    "title = coalesce(title, ?) WHERE id = ? RETURNING message_count, context"
)
_UPDATE_WITH_PENDING: Final = (
    "UPDATE sessions SET message_count = message_count + 2, last_activity = ?, "
    "title = coalesce(title, ?), pending_action = ? WHERE id = ? "
    "RETURNING message_count, context"
)
_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (session_id, seq, role, text, trace_id, created_at, meta) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_AUDIT: Final = (
    "INSERT INTO audit (at, actor, session_id, source, tool, args, outcome, detail, "
    "duration_ms, trace_id, planner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_CONTEXT: Final = "UPDATE sessions SET context = ? WHERE id = ?"
_VERSION: Final = "SELECT created_at, message_count FROM sessions WHERE id = ?"
_EXISTS: Final = "SELECT 1 FROM sessions WHERE id = ?"
_OWNED: Final = "SELECT count(*) FROM sessions WHERE owner = ?"
_CREATE: Final = (
    "INSERT INTO sessions (id, source, owner, title, created_at, last_activity, message_count, "
    "pending_action, context) VALUES (?, ?, ?, NULL, ?, ?, 0, NULL, '{}') "
    "ON CONFLICT (id) DO NOTHING"
)
Item = TypeVar("Item")
Result = TypeVar("Result")

# A version read never waits long: in WAL mode readers do not take locks; this only bounds
# the rare moment a new connection must wait for the WAL index.
_READ_TIMEOUT_S: Final = 1.0


def sqlite_datetime(value: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DATETIME stores it (UTC, no offset)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_sqlite_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class SqliteTurns:
    """The writer thread with its connection, and a reader on the calling (event-loop) thread."""

    def __init__(self, *, path: Path, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._conn: sqlite3.Connection | None = None  # used on the writer thread only
        self._reader: sqlite3.Connection | None = None  # used on the event-loop thread only

    # ---- the per-turn version read -----------------------------------------------------------

    def version(self, session_id: str) -> Version | None:
        """The row's (created_at, message_count), None if there is no such session.

        Synchronous on purpose: a primary-key read on a local file takes microseconds, less
        than handing it to a thread would cost.
        """
        if self._reader is None:
            reader = sqlite3.connect(
                self._path, timeout=_READ_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._reader = reader
        row = self._reader.execute(_VERSION, (session_id,)).fetchone()
        if row is None:
            return None
        return (parse_sqlite_datetime(row[0]), int(row[1]))

    # ---- the writer --------------------------------------------------------------------------

    async def create(
        self,
        *,
        session_id: str,
        source: str,
        owner: str,
        at: datetime,
        max_for_owner: int | None,
    ) -> Created:
        """Insert an empty session row in a transaction of its own (one thread hop, the
        writer's turn like any batch). With `max_for_owner`, the owner's sessions are counted
        in the same transaction, so concurrent creations, in any process, never exceed it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            self._create,
            session_id,
            source,
            owner,
            sqlite_datetime(at),
            max_for_owner,
        )

    async def write(self, batch: Sequence[TurnWrite]) -> list[TurnCommitted | BaseException]:
        """Write `batch` in one transaction (one thread hop); one result per turn."""
        return await self.run_batch(batch, _write_one)

    async def run_batch(
        self,
        batch: Sequence[Item],
        one: Callable[[sqlite3.Connection, Item], Result | BaseException],
    ) -> list[Result | BaseException]:
        """`one` for each item of `batch` on the writer's connection, in one transaction (one
        thread hop), with write's errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_batch, batch, one)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_writer)
        self._executor.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            conn.execute("PRAGMA foreign_keys=ON")
            # FULL, as the engine's connections: an answered turn survives a power cut too.
            conn.execute("PRAGMA synchronous=FULL")
            self._conn = conn
        return self._conn

    def _close_writer(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run_batch(
        self,
        batch: Sequence[Item],
        one: Callable[[sqlite3.Connection, Item], Result | BaseException],
    ) -> list[Result | BaseException]:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [one(conn, item) for item in batch]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) == 1 or not isinstance(exc, sqlite3.IntegrityError):
                # The database itself failed (locked past the busy timeout, disk, I/O): every
                # turn of the batch gets the error, none is retried into another long wait.
                return [_as_sqlalchemy_error(exc)] * len(batch)
            # One bad item must not take the others with it: write each alone.
            return [self._run_batch([item], one)[0] for item in batch]
        return results

    def _create(
        self, session_id: str, source: str, owner: str, at: str, max_for_owner: int | None
    ) -> Created:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute(_EXISTS, (session_id,)).fetchone() is not None:
                outcome: Created = "exists"
            elif max_for_owner is not None and (
                int(conn.execute(_OWNED, (owner,)).fetchone()[0]) >= max_for_owner
            ):
                outcome = "over_quota"
            else:
                conn.execute(_CREATE, (session_id, source, owner, at, at))
                outcome = "created"
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _as_sqlalchemy_error(exc) from exc
        return outcome


def _as_sqlalchemy_error(exc: sqlite3.Error) -> BaseException:
    # The store raises SQLAlchemy's exception types whatever wrote the row, so callers (and
    # the error handlers) see one contract: IntegrityError, OperationalError, ...
    return DBAPIError.instance(None, None, exc, sqlite3.Error)


def _write_one(conn: sqlite3.Connection, turn: TurnWrite) -> TurnCommitted | BaseException:
    at = sqlite_datetime(turn.at)
    if turn.pending_changed:
        pending = None if turn.pending_json is None else json.dumps(turn.pending_json)
        cursor = conn.execute(_UPDATE_WITH_PENDING, (at, turn.title, pending, turn.session_id))
    else:
        cursor = conn.execute(_UPDATE, (at, turn.title, turn.session_id))
    rows = cursor.fetchall()
    if not rows:
        return MissingSession(turn.session_id)
    count, stored_context = int(rows[0][0]), rows[0][1]
    conn.executemany(_INSERT_MESSAGE, turn.message_rows(last_seq=count, at=at))
    if turn.audit:
        conn.executemany(_INSERT_AUDIT, turn.audit_rows(stamp=sqlite_datetime))
    context: dict[str, Any] = json.loads(stored_context) if stored_context else {}
    if turn.context_update:
        context = {**context, **turn.context_update}
        conn.execute(_UPDATE_CONTEXT, (json.dumps(context), turn.session_id))
    return committed(turn, message_count=count, context=context)
