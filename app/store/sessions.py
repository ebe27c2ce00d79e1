"""The durable session store: sessions, their messages, pending actions, the audit log.

SQLAlchemy 2 async on SQLite (default, a file in DATA_DIR, WAL mode) or PostgreSQL
(`postgresql+asyncpg://...`), one code path and one set of Alembic migrations.

A turn is used like this by the conversation service::

    async with store.lock(session_id):           # one turn per session at a time, all processes
        info = await store.get(session_id)
        history = await store.history(session_id)
        ...plan, execute...
        await store.record_turn(session_id=..., user_text=..., answer_text=..., ...)

`record_turn` writes the user message, the answer, the audit rows, the pending-action change
and the context change in one transaction: once it returns, the turn survives SIGKILL.

Operator commands: `chat-orchestrator db migrate | revision | backup DEST | restore SRC`
(app/store/cli.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import structlog
from pydantic import ValidationError
from sqlalchemy import Select, case, delete, func, insert, select, text, update
from sqlalchemy.engine import URL, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.domain.plan import PendingCall
from app.domain.session import (
    AuditEntry,
    AuditOutcome,
    SessionInfo,
    SessionSource,
    SessionStats,
    StoredMessage,
    utc_now,
)
from app.store import claims, migrations, pg_turns
from app.store.backup import (
    BackupError,
    backup_sqlite,
    lock_directory_for,
    open_marker_for,
)
from app.store.claims import ProposalClaim
from app.store.engine import (
    PING_AFTER_IDLE_S,
    StaleConnection,
    build_engine,
    enable_wal,
    insert_for,
    invalidate_pool,
    normalise_url,
    once_more_if_stale,
    safe_url,
    sqlite_path,
    write_engine,
)
from app.store.group_commit import GroupCommit
from app.store.live import LiveSession, LiveSessions, Version
from app.store.locks import (
    OpenMarker,
    PostgresAdvisoryLocks,
    RangeLocks,
    SessionBusy,
    SessionLocks,
    StoreInUse,
)
from app.store.sqlite_turns import SqliteTurns
from app.store.tables import (
    SESSION_ID_MAX,
    AuditRow,
    ClaimedProposalRow,
    ClaimedTaskRow,
    MessageRow,
    SessionRow,
)
from app.store.turns import Created, MissingSession, TurnCommitted, TurnWrite, jsonable

__all__ = [
    "UNSET",
    "BackupError",
    "SessionBusy",
    "SessionNotFound",
    "SessionQuotaExceeded",
    "SessionStore",
    "StoreInUse",
    "StoreNotOpen",
    "Unset",
]

if TYPE_CHECKING:  # asyncpg is imported by SQLAlchemy's dialect only when PostgreSQL is used
    from asyncpg import Connection as DriverConnection

log = structlog.get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")

SOURCES: Final = ("chat", "voice")
LIVE_SESSIONS_MAX = 4096
"""Sessions whose state an instance keeps in memory (least recently used go first)."""


class Unset(Enum):
    """Marker for "leave it as it is" where None is a meaningful value (clear the pending)."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


class StoreNotOpen(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the session store is not open; call open() first")


class SessionQuotaExceeded(Exception):
    """The identity already has as many sessions as it may keep."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} sessions per identity")
        self.limit = limit


class SessionNotFound(LookupError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session {session_id!r}")
        self.session_id = session_id


class SessionStore:
    def __init__(
        self,
        *,
        database_url: str,
        history_window: int = 20,
        idle_expiry_seconds: float = 86400 * 7,
        connect_args: Mapping[str, Any] | None = None,
        pool_size: int = 10,
        lock_pool_size: int = 10,
        instance_id: str | None = None,
        live_sessions: int = LIVE_SESSIONS_MAX,
        ping_after_idle_s: float = PING_AFTER_IDLE_S,
    ) -> None:
        """`history_window`: messages given to the planner by default (every turn is stored).

        `live_sessions`: how many sessions' state this instance keeps in memory between turns
        (app/store/live.py); 0 reads every turn's session from the database.

        `connect_args` go to the driver (e.g. asyncpg `server_settings`, `ssl`).
        `lock_pool_size`: PostgreSQL connections kept for per-session locks (each turn in
        flight holds one; more are opened on demand).
        `ping_after_idle_s`: a pooled PostgreSQL connection idle longer is pinged before use
        (app/store/engine.py).
        """
        if history_window < 0:
            raise ValueError("history_window must be >= 0")
        if idle_expiry_seconds <= 0:
            raise ValueError("idle_expiry_seconds must be > 0")
        self._url: URL = normalise_url(database_url)
        self.history_window = history_window
        self.idle_expiry = timedelta(seconds=idle_expiry_seconds)
        self._connect_args = dict(connect_args or {})
        self._pool_size = pool_size
        self._lock_pool_size = lock_pool_size
        self._ping_after_idle_s = ping_after_idle_s
        self.instance_id = instance_id
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        self._lock_engine: AsyncEngine | None = None
        self._marker: OpenMarker | None = None
        self._write_gate: asyncio.Lock | None = None
        self._locks = SessionLocks(cross_process=None)
        self._live = LiveSessions(capacity=live_sessions, window=history_window)
        self._sqlite: SqliteTurns | None = None
        self._pg_locks: PostgresAdvisoryLocks | None = None
        self._range_locks: RangeLocks | None = None
        self._turns: GroupCommit[TurnWrite, TurnCommitted] | None = None
        self._claims: GroupCommit[ProposalClaim, bool] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return "postgresql" if self._url.drivername.startswith("postgresql") else "sqlite"

    @property
    def url(self) -> str:
        """The database URL without its password."""
        return safe_url(self._url)

    @property
    def sqlite_file(self) -> Path | None:
        return sqlite_path(self._url)

    @property
    def turn_commits(self) -> int:
        """Transactions that wrote turns since open (fewer than turns under load)."""
        return 0 if self._turns is None else self._turns.batches

    @property
    def live_sessions(self) -> int:
        """Sessions whose state this instance holds in memory now."""
        return len(self._live)

    async def open(self) -> None:
        """Create the engines (idempotent). Does not migrate: call migrate() after."""
        if self._engine is not None:
            return
        path = self.sqlite_file
        if path is not None:
            marker = open_marker_for(path)
            marker.hold_shared()
            self._marker = marker
        try:
            if path is not None:
                await asyncio.to_thread(enable_wal, path)
            self._create_engines(path)
        except BaseException:
            await self.close()
            raise
        log.info("session_store_opened", url=self.url, dialect=self.dialect)

    def _create_engines(self, path: Path | None) -> None:
        engine = build_engine(
            self._url,
            connect_args=self._connect_args,
            pool_size=self._pool_size,
            max_overflow=self._pool_size * 2,
            ping_after_idle_s=self._ping_after_idle_s,
        )
        self._engine = engine
        self._writer = write_engine(engine)
        if path is not None:
            self._sqlite = SqliteTurns(path=path)
            self._turns = GroupCommit(write_batch=self._write_sqlite_turns)
            self._claims = GroupCommit(write_batch=self._write_sqlite_claims)
            directory = lock_directory_for(path)
            directory.mkdir(parents=True, exist_ok=True)
            self._range_locks = RangeLocks(path=directory / "sessions.lock")
            self._locks = SessionLocks(cross_process=self._range_locks)
            self._write_gate = asyncio.Lock()
        else:
            self._lock_engine = build_engine(
                self._url,
                connect_args=self._connect_args,
                pool_size=self._lock_pool_size,
                max_overflow=self._lock_pool_size * 4,
                isolation_level="AUTOCOMMIT",
                ping_after_idle_s=self._ping_after_idle_s,
            )
            self._pg_locks = PostgresAdvisoryLocks(engine=self._lock_engine)
            self._locks = SessionLocks(cross_process=self._pg_locks)
            self._turns = GroupCommit(write_batch=self._write_turns)
            self._claims = GroupCommit(write_batch=self._write_pg_claims)

    async def close(self) -> None:
        if self._turns is not None:
            await self._turns.flush()  # every accepted turn is written before the engines go
            self._turns = None
        if self._claims is not None:
            await self._claims.flush()
            self._claims = None
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None
        self._live.clear()
        engines = [e for e in (self._lock_engine, self._engine) if e is not None]
        self._engine = self._writer = self._lock_engine = None
        self._pg_locks = None
        for engine in engines:
            await engine.dispose()
        if self._range_locks is not None:
            self._range_locks.close()
            self._range_locks = None
        if self._marker is not None:
            self._marker.release()
            self._marker = None
        if engines:
            log.info("session_store_closed", url=self.url)

    async def __aenter__(self) -> SessionStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def migrate(self, *, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision` (safe with several instances starting)."""
        async with self._write() as conn:
            # Taken before Alembic runs (env.py takes it again, harmlessly): Alembic's context
            # is process-global, so even two stores in one process must not overlap in it.
            # On SQLite the write transaction's BEGIN IMMEDIATE already serialises.
            if self.dialect == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"),
                    {"k": migrations.MIGRATION_LOCK_KEY},
                )
            before = await conn.run_sync(migrations.current_revision)
            target = migrations.head_revision() if revision == "head" else revision
            if before is None or before != target:
                await conn.run_sync(lambda sync: migrations.upgrade(sync, revision=revision))
                after = await conn.run_sync(migrations.current_revision)
            else:
                after = before  # already there: Alembic is not even imported
        log.info("session_store_migrated", url=self.url, from_revision=before, to_revision=after)

    async def revision(self) -> str | None:
        """The schema revision of the database (None before the first migration)."""
        async with self._read() as conn:
            return await conn.run_sync(migrations.current_revision)

    async def ping(self, *, within_seconds: float = 2.0) -> bool:
        """Cheap health probe: the database answers a trivial query in `within_seconds`."""
        if self._engine is None:
            return False
        try:
            async with asyncio.timeout(within_seconds), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # a health probe reports; it never raises
            log.warning("session_store_ping_failed", error=type(exc).__name__)
            return False
        return True

    def lock(
        self, session_id: str, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Hold `session_id` for one turn, in this process and across processes.

        Raises SessionBusy if not obtained within `timeout` seconds (None: wait).
        See app/store/locks.py for how the cross-process part works on each database.
        """
        if self._engine is None:
            raise StoreNotOpen()
        return self._locks.hold(session_id, max_wait=timeout)

    # ---- sessions --------------------------------------------------------------------------

    async def get_or_create(
        self,
        *,
        session_id: str | None,
        source: SessionSource,
        owner: str,
        max_for_owner: int | None = None,
    ) -> SessionInfo:
        """The session `session_id`, created (with a fresh id when None) if it does not exist.

        An existing session is returned as stored; whether the caller may use it is the
        caller's decision (compare `owner`). Creating one counts the owner's sessions in the
        same transaction as the insert, so concurrent creations never exceed `max_for_owner`
        (raises SessionQuotaExceeded).
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        if session_id is None:
            session_id = secrets.token_urlsafe(18)
        _check_session_id(session_id)
        existing = await self.get(session_id)
        if existing is not None:
            return existing
        return await self._create(
            session_id=session_id, source=source, owner=owner, max_for_owner=max_for_owner
        )

    async def _create(
        self, *, session_id: str, source: SessionSource, owner: str, max_for_owner: int | None
    ) -> SessionInfo:
        """A new session row, or the one someone else made with that id meanwhile."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        _check_session_id(session_id)
        now = utc_now()
        outcome = await self._create_row(
            session_id=session_id, source=source, owner=owner, at=now, max_for_owner=max_for_owner
        )
        if outcome == "over_quota":
            assert max_for_owner is not None  # only counted against a quota
            raise SessionQuotaExceeded(max_for_owner)
        if outcome == "created":
            return SessionInfo(
                session_id=session_id,
                source=source,
                owner=owner,
                created_at=now,
                last_activity=now,
                message_count=0,
            )
        existing = await self.get(session_id)
        if existing is None:  # made and deleted again in between
            raise SessionNotFound(session_id)
        return existing

    async def _create_row(
        self,
        *,
        session_id: str,
        source: SessionSource,
        owner: str,
        at: datetime,
        max_for_owner: int | None,
    ) -> Created:
        # Constant SQL in one transaction, on SQLite by the turns' writer thread, on PostgreSQL
        # on the asyncpg driver: through SQLAlchemy's asyncio layer the same transaction made a
        # new session's first turn cost about twice a later one.
        if self._sqlite is not None:
            async with self._write_gate or contextlib.nullcontext():  # as _write_sqlite_turns
                return await self._sqlite.create(
                    session_id=session_id,
                    source=source,
                    owner=owner,
                    at=at,
                    max_for_owner=max_for_owner,
                )
        return await self._on_pg_writer(
            lambda driver: pg_turns.create_session(
                driver,
                session_id=session_id,
                source=source,
                owner=owner,
                at=at,
                max_for_owner=max_for_owner,
            )
        )

    async def get(self, session_id: str) -> SessionInfo | None:
        async with self._read() as conn:
            row = (
                await conn.execute(_session_query().where(SessionRow.id == session_id))
            ).one_or_none()
        return None if row is None else _session_info(row)

    async def turn_state(
        self,
        *,
        session_id: str,
        source: SessionSource,
        owner: str,
        max_for_owner: int | None = None,
    ) -> LiveSession:
        """The session (created as get_or_create does) with its last `history_window` messages.

        Call it inside `lock(session_id)` when the session may exist: the state comes from this
        instance's memory when the database row still has the version it was kept at (one
        primary-key read), else from the database. The caller checks the owner.
        """
        version = await self._version(session_id)
        if version is not None:
            live = self._live.current(session_id, version)
            if live is not None:
                return live
            return await self._load(session_id)
        # No row a moment ago: create it, without reading it again first.
        info = await self._create(
            session_id=session_id, source=source, owner=owner, max_for_owner=max_for_owner
        )
        if info.message_count:  # created by someone else a moment ago, and already used
            return await self._load(session_id)
        return self._live.put(info, ())

    async def _version(self, session_id: str) -> Version | None:
        if self._sqlite is not None:
            return self._sqlite.version(session_id)
        held = self._pg_locks.held(session_id) if self._pg_locks is not None else None
        if held is not None:  # inside the turn's lock: read on the connection that holds it
            found = await held.fetchrow(_PG_VERSION, session_id)
            if found is None:
                return None
            return (found["created_at"].astimezone(UTC), int(found["message_count"]))
        async with self._read() as conn:
            row = (await conn.execute(_VERSION.where(SessionRow.id == session_id))).one_or_none()
        return None if row is None else (row.created_at, int(row.message_count))

    async def _load(self, session_id: str) -> LiveSession:
        return await once_more_if_stale(lambda: self._load_once(session_id))

    async def _load_once(self, session_id: str) -> LiveSession:
        async with self._read() as conn:
            row = (
                await conn.execute(_session_query().where(SessionRow.id == session_id))
            ).one_or_none()
            rows = (
                (await conn.execute(_history_query(session_id, self.history_window))).all()
                if row is not None and self.history_window
                else []
            )
        if row is None:  # deleted between the version read and now
            raise SessionNotFound(session_id)
        return self._live.put(_session_info(row), [_stored_message(r) for r in reversed(rows)])

    async def history(
        self, session_id: str, *, limit: int | None = None, before_seq: int | None = None
    ) -> list[StoredMessage]:
        """The last `limit` messages (default: history_window), oldest first.

        `before_seq` pages backwards: only messages with a smaller seq.
        """
        limit = self.history_window if limit is None else limit
        if limit <= 0:
            return []
        query = _history_query(session_id, limit)
        if before_seq is not None:
            query = query.where(MessageRow.seq < before_seq)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_stored_message(r) for r in reversed(rows)]

    async def record_turn(
        self,
        *,
        session_id: str,
        user_text: str,
        answer_text: str,
        trace_id: str | None,
        actions: Sequence[Mapping[str, Any]] = (),
        audit: Sequence[AuditEntry] = (),
        pending: PendingCall | Unset | None = UNSET,
        context_update: Mapping[str, Any] | None = None,
        answer_meta: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Store one turn atomically; returns the (user, answer) message seq numbers.

        In one transaction: the user message and the answer (consecutive seq numbers taken
        from the session row, which the UPDATE locks until commit, so concurrent writers to
        the same session queue and never leave gaps), the audit rows, the pending action
        (UNSET leaves it, None clears it) and `context_update` merged into the context
        (shallow; a key set to None is stored as None). Raises SessionNotFound.

        Turns arriving while another commit runs share the next transaction (group commit);
        this returns only after the transaction holding this turn has committed.
        """
        if self._turns is None:
            raise StoreNotOpen()
        pending_changed = not isinstance(pending, Unset)
        write = TurnWrite(
            session_id=session_id,
            user_text=user_text,
            answer_text=answer_text,
            trace_id=trace_id,
            at=utc_now(),
            answer_meta={"actions": jsonable(list(actions)), **jsonable(dict(answer_meta or {}))},
            audit=tuple(audit),
            pending_changed=pending_changed,
            pending=pending if isinstance(pending, PendingCall) else None,
            context_update=jsonable(dict(context_update or {})),
        )
        try:
            change = await self._turns.submit(write)
        except MissingSession:
            self._live.drop(session_id)
            raise SessionNotFound(session_id) from None
        self._live.committed(change)
        return change.seqs

    async def _write_turns(self, batch: Sequence[TurnWrite]) -> list[TurnCommitted | BaseException]:
        """Group commit's batch function for PostgreSQL: constant SQL on the asyncpg driver of
        a connection from the write engine (app/store/pg_turns.py says why)."""
        return await self._pg_batch(batch, pg_turns.write_batch)

    async def _write_pg_claims(self, batch: Sequence[ProposalClaim]) -> list[bool | BaseException]:
        return await self._pg_batch(
            batch,
            lambda driver, claims_: pg_turns.run_batch(
                driver, claims_, claims.pg_one, what="proposal claims"
            ),
        )

    async def _pg_batch(
        self,
        batch: Sequence[T],
        write: Callable[[DriverConnection, Sequence[T]], Awaitable[list[R | BaseException]]],
    ) -> list[R | BaseException]:
        try:
            return await self._on_pg_writer(lambda driver: write(driver, batch))
        except SQLAlchemyError as exc:
            if len(batch) == 1 or not isinstance(exc, IntegrityError):
                # The database itself failed: every item of the batch gets the error.
                return [exc] * len(batch)
            # One bad item must not take the others with it: write each alone.
            return [(await self._pg_batch([item], write))[0] for item in batch]

    async def _on_pg_writer(self, work: Callable[[DriverConnection], Awaitable[T]]) -> T:
        """`work` on the asyncpg driver of a connection from the write engine, once more on a
        new connection if that one was found closed before anything was written."""
        return await once_more_if_stale(lambda: self._on_pg_writer_once(work))

    async def _on_pg_writer_once(self, work: Callable[[DriverConnection], Awaitable[T]]) -> T:
        if self._writer is None:
            raise StoreNotOpen()
        async with self._writer.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection always has its driver
            try:
                return await work(driver)
            except StaleConnection:
                await invalidate_pool(conn)
                raise

    async def append_notification(
        self,
        session_id: str,
        *,
        text: str,
        meta: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> int:
        """Add one assistant message that answers no question (a watch firing); returns its seq.

        The seq comes from the session row like record_turn's (the UPDATE locks it until
        commit), so a notification landing during a turn takes the next number, never a taken
        one. `meta["kind"]` tells it apart from answers. Raises SessionNotFound.
        """
        now = utc_now()
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(SessionRow)
                    .where(SessionRow.id == session_id)
                    .values(message_count=SessionRow.message_count + 1, last_activity=now)
                    .returning(SessionRow.message_count)
                )
            ).one_or_none()
            if row is None:
                raise SessionNotFound(session_id)
            seq = int(row.message_count)
            await conn.execute(
                insert(MessageRow).values(
                    session_id=session_id,
                    seq=seq,
                    role="assistant",
                    text=text,
                    trace_id=trace_id,
                    created_at=now,
                    meta=jsonable(dict(meta or {})),
                )
            )
        return seq

    async def list_sessions(
        self, *, owner: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[SessionInfo], int]:
        """Sessions, most recently active first, and the total count (for paging)."""
        query = _session_query()
        count = select(func.count()).select_from(SessionRow)
        if owner is not None:
            query = query.where(SessionRow.owner == owner)
            count = count.where(SessionRow.owner == owner)
        query = (
            query.order_by(SessionRow.last_activity.desc(), SessionRow.id)
            .limit(max(limit, 0))
            .offset(max(offset, 0))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
            total = int((await conn.execute(count)).scalar_one())
        return [_session_info(r) for r in rows], total

    async def count_active(self, *, since: datetime) -> int:
        """Sessions with activity at or after `since` (for /state's active_sessions)."""
        async with self._read() as conn:
            result = await conn.execute(
                select(func.count())
                .select_from(SessionRow)
                .where(SessionRow.last_activity >= since)
            )
            return int(result.scalar_one())

    async def stats(self, *, owner: str | None = None) -> SessionStats:
        query = select(
            func.count(),
            func.coalesce(func.sum(case((SessionRow.source == "chat", 1), else_=0)), 0),
            func.coalesce(func.sum(case((SessionRow.source == "voice", 1), else_=0)), 0),
            func.coalesce(func.sum(case((SessionRow.pending_action.is_not(None), 1), else_=0)), 0),
            func.coalesce(func.sum(SessionRow.message_count), 0),
        ).select_from(SessionRow)
        if owner is not None:
            query = query.where(SessionRow.owner == owner)
        async with self._read() as conn:
            total, chat, voice, pending, messages = (await conn.execute(query)).one()
        return SessionStats(
            total_sessions=int(total),
            by_source={"chat": int(chat), "voice": int(voice)},
            with_pending_actions=int(pending),
            total_messages=int(messages),
        )

    async def delete(self, session_id: str) -> bool:
        """Delete a session and its messages (the audit trail stays). False if absent."""
        async with self._write() as conn:
            result = await conn.execute(delete(SessionRow).where(SessionRow.id == session_id))
        self._live.drop(session_id)
        return result.rowcount > 0

    async def delete_all(self, *, owner: str | None = None) -> int:
        """Delete every session (or every session of `owner`); returns how many."""
        statement = delete(SessionRow)
        if owner is not None:
            statement = statement.where(SessionRow.owner == owner)
        async with self._write() as conn:
            result = await conn.execute(statement)
        self._live.clear()  # the version check would catch it; this frees the memory now
        log.info("sessions_deleted", count=result.rowcount, owner=owner)
        return int(result.rowcount)

    async def cleanup_idle(self, *, now: datetime | None = None) -> int:
        """Delete sessions idle for longer than idle_expiry; returns how many."""
        cutoff = (now or utc_now()) - self.idle_expiry
        async with self._write() as conn:
            result = await conn.execute(delete(SessionRow).where(SessionRow.last_activity < cutoff))
        if result.rowcount:
            self._live.clear()
            log.info("idle_sessions_expired", count=result.rowcount, cutoff=cutoff.isoformat())
        return int(result.rowcount)

    async def run_cleanup(self, *, interval_seconds: float) -> None:
        """Expire idle sessions every `interval_seconds`, until cancelled (a lifespan task).

        Idempotent, so every instance may run it.
        """
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.cleanup_idle()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("idle_session_cleanup_failed", error=type(exc).__name__)

    async def _write_sqlite_turns(
        self, batch: Sequence[TurnWrite]
    ) -> list[TurnCommitted | BaseException]:
        return await self._on_sqlite_writer(lambda sqlite: sqlite.write(batch))

    async def _write_sqlite_claims(
        self, batch: Sequence[ProposalClaim]
    ) -> list[bool | BaseException]:
        return await self._on_sqlite_writer(
            lambda sqlite: sqlite.run_batch(batch, claims.sqlite_one)
        )

    async def _on_sqlite_writer(self, work: Callable[[SqliteTurns], Awaitable[T]]) -> T:
        if self._sqlite is None:
            raise StoreNotOpen()
        # The engine's writers (watches, task claims, deletions) queue behind the batch in FIFO
        # order instead of polling in SQLite's busy handler.
        async with self._write_gate or contextlib.nullcontext():
            return await work(self._sqlite)

    # ---- audit -----------------------------------------------------------------------------

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Audit tool executions that happen outside a chat turn (e.g. assigned tasks)."""
        if not entries:
            return
        async with self._write() as conn:
            await _insert_audit(conn, entries, session_id=None, trace_id=None)

    async def audit(
        self,
        *,
        session_id: str | None = None,
        tool: str | None = None,
        actor: str | None = None,
        outcome: AuditOutcome | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Audit entries matching every given filter, newest first."""
        query = select(AuditRow)
        if session_id is not None:
            query = query.where(AuditRow.session_id == session_id)
        if tool is not None:
            query = query.where(AuditRow.tool == tool)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if outcome is not None:
            query = query.where(AuditRow.outcome == outcome)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        query = (
            query.order_by(AuditRow.at.desc(), AuditRow.id.desc())
            .limit(max(limit, 0))
            .offset(max(offset, 0))
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEntry(
                id=r.id,
                at=r.at,
                actor=r.actor,
                session_id=r.session_id,
                source=r.source,
                tool=r.tool,
                args=r.args or {},
                outcome=r.outcome,
                detail=r.detail,
                duration_ms=r.duration_ms,
                trace_id=r.trace_id,
                planner=r.planner,
            )
            for r in rows
        ]

    # ---- confirmed proposals (app/store/claims.py) -------------------------------------------

    async def claim_proposal(self, *, proposal_id: str, session_id: str, tool: str) -> bool:
        """True for exactly one caller per proposal id, across instances and restarts: call it
        before a confirmed write runs, and run it only on True. Committed when it returns.
        Raises SessionNotFound when the session is gone."""
        return await self._claim(
            ProposalClaim(proposal_id=proposal_id, session_id=session_id, tool=tool, at=utc_now())
        )

    async def release_proposal(self, *, proposal_id: str, session_id: str) -> None:
        """Give a claim back: its write changed nothing and the proposal stays waiting."""
        await self._claim(
            ProposalClaim(
                proposal_id=proposal_id,
                session_id=session_id,
                tool="",
                at=utc_now(),
                release=True,
            )
        )

    async def proposal_claimed(self, proposal_id: str) -> bool:
        """Whether a write was started for this proposal (its claim is held)."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(ClaimedProposalRow.proposal_id).where(
                        ClaimedProposalRow.proposal_id == proposal_id
                    )
                )
            ).one_or_none()
        return row is not None

    async def _claim(self, claim: ProposalClaim) -> bool:
        if self._claims is None:
            raise StoreNotOpen()
        try:
            return await self._claims.submit(claim)
        except (MissingSession, IntegrityError):
            # IntegrityError: on PostgreSQL, the session deleted between the look and the insert.
            raise SessionNotFound(claim.session_id) from None

    # ---- tasks assigned to this droplet ----------------------------------------------------

    async def claim_task(self, task_id: int) -> bool:
        """True for exactly one caller per task id, across processes and restarts."""
        now = utc_now()
        statement = (
            insert_for(self.dialect, ClaimedTaskRow)
            .values(
                task_id=task_id,
                claimed_at=now,
                updated_at=now,
                state="claimed",
                claimed_by=self.instance_id,
            )
            .on_conflict_do_nothing(index_elements=["task_id"])
            .returning(ClaimedTaskRow.task_id)
        )
        async with self._write() as conn:
            claimed = (await conn.execute(statement)).one_or_none() is not None
        log.debug("task_claim", task_id=task_id, claimed=claimed)
        return claimed

    async def task_seen(self, task_id: int) -> bool:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(ClaimedTaskRow.task_id).where(ClaimedTaskRow.task_id == task_id)
                )
            ).one_or_none()
        return row is not None

    # ---- backup ----------------------------------------------------------------------------

    async def backup(self, dest: Path) -> Path:
        """A consistent copy of the live SQLite database at `dest` (safe while serving).

        PostgreSQL: raises BackupError; use `pg_dump` (see DEPLOYMENT.md).
        """
        path = self.sqlite_file
        if path is None:
            raise BackupError(
                "online backup is built in for SQLite only; for PostgreSQL use "
                "pg_dump --format=custom (and pg_restore) against DATABASE_URL"
            )
        written = await asyncio.to_thread(backup_sqlite, source=path, dest=dest)
        log.info("session_store_backup_written", dest=str(written))
        return written

    # ---- shared with the other repositories of app/store ------------------------------------

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads, for repositories that live in this database (watches)."""
        return self._read()

    def writing(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction, for repositories that live in this database (watches).

        Sharing it (rather than a second engine) keeps one pool and, on SQLite, one queue of
        writers: a second engine's writers would wait in SQLite's busy handler instead.
        """
        return self._write()

    # ---- internals -------------------------------------------------------------------------

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            raise StoreNotOpen()
        async with self._engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._writer is None:
            raise StoreNotOpen()
        if self._write_gate is None:
            async with self._writer.begin() as conn:
                yield conn
            return
        # SQLite has one writer at a time anyway; queueing here (FIFO, no polling) is much
        # cheaper than letting pooled connections sleep in SQLite's busy handler.
        async with self._write_gate, self._writer.begin() as conn:
            yield conn


def _check_session_id(session_id: str) -> None:
    if not session_id or len(session_id) > SESSION_ID_MAX:
        raise ValueError(f"session id must be 1..{SESSION_ID_MAX} characters")


def _session_query() -> Select[Any]:
    return select(
        SessionRow.id,
        SessionRow.source,
        SessionRow.owner,
        SessionRow.title,
        SessionRow.created_at,
        SessionRow.last_activity,
        SessionRow.message_count,
        SessionRow.pending_action,
        SessionRow.context,
    )


_VERSION: Final = select(SessionRow.created_at, SessionRow.message_count)
# The same read as asyncpg SQL, for the connection holding the session's advisory lock.
_PG_VERSION: Final = "SELECT created_at, message_count FROM sessions WHERE id = $1"


def _history_query(session_id: str, limit: int) -> Select[Any]:
    return (
        select(
            MessageRow.seq,
            MessageRow.role,
            MessageRow.text,
            MessageRow.trace_id,
            MessageRow.created_at,
            MessageRow.meta,
        )
        .where(MessageRow.session_id == session_id)
        .order_by(MessageRow.seq.desc())
        .limit(limit)
    )


def _stored_message(r: Row[Any]) -> StoredMessage:
    return StoredMessage(
        seq=r.seq,
        role=r.role,
        text=r.text,
        trace_id=r.trace_id,
        created_at=r.created_at,
        meta=r.meta or {},
    )


def _session_info(row: Row[Any]) -> SessionInfo:
    pending: PendingCall | None = None
    if row.pending_action is not None:
        try:
            pending = PendingCall.model_validate(row.pending_action)
        except ValidationError:
            # Stored by an older version with another shape: drop it rather than fail the turn.
            log.warning("session_pending_unreadable", session_id=row.id)
    return SessionInfo(
        session_id=row.id,
        source=row.source,
        owner=row.owner,
        title=row.title,
        created_at=row.created_at,
        last_activity=row.last_activity,
        message_count=row.message_count,
        pending=pending,
        context=row.context or {},
    )


async def _insert_audit(
    conn: AsyncConnection,
    entries: Sequence[AuditEntry],
    *,
    session_id: str | None,
    trace_id: str | None,
) -> None:
    if not entries:
        return
    await conn.execute(
        insert(AuditRow),
        [
            {
                "at": entry.at,
                "actor": entry.actor,
                "session_id": entry.session_id or session_id,
                "source": entry.source,
                "tool": entry.tool,
                "args": jsonable(entry.args),
                "outcome": entry.outcome,
                "detail": entry.detail,
                "duration_ms": entry.duration_ms,
                "trace_id": entry.trace_id or trace_id,
                "planner": entry.planner,
            }
            for entry in entries
        ],
    )
