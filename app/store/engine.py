"""Engines for the session store: URL normalisation, SQLite pragmas and transaction control.

PostgreSQL: a connection is pinged at checkout only when it has been idle in the pool for more
than `ping_after_idle_s` (1 s; `_install_idle_ping` says why), instead of at every checkout.

SQLite notes (why the hooks below exist):
- WAL lets readers run while one writer writes; busy_timeout makes a second writer wait for the
  lock instead of failing at once.
- Python's sqlite3 (3.11) begins transactions lazily and only for DML, so a transaction that
  reads and then writes can fail with "database is locked" without waiting. The store therefore
  emits BEGIN itself: BEGIN IMMEDIATE for writes (takes the write lock up front, so concurrent
  writers queue on busy_timeout) and a plain deferred BEGIN for reads (never blocks writers).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, event, exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql as pg

# Execution option carried by the store's write engine; read by the "begin" hook.
WRITE_OPTION = "chat_store_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_S = 1.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out."""
_IDLE_SINCE = "chat_store_idle_since"
T = TypeVar("T")

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class StaleConnection(exc.OperationalError):
    """A pooled PostgreSQL connection was found closed at its first statement, before anything
    that could change or lock a row had reached the server: safe to try again on another."""


async def invalidate_pool(conn: AsyncConnection) -> None:
    """After a direct driver call found `conn` closed: one statement through SQLAlchemy, which
    then sees the disconnect and invalidates the whole pool, as a failed ping does, so the
    next checkout gets a new connection rather than another one closed by the same restart."""
    with contextlib.suppress(exc.DBAPIError):
        await conn.exec_driver_sql("SELECT 1")


_STORE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "app.store")
# PostgreSQL's SQLSTATEs for a database that cannot be used at all, whatever the statement:
# class 08 (connection exception), the shutdowns of class 57P (admin or crash shutdown, starting
# up), class 53 (insufficient resources: too many connections, disk full, out of memory), class
# 28 (the login refused: the role or its password changed) and 3D000 (the database is gone).
_GONE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53", "28", "3D000")


def unavailable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached or went away (the store is
    unavailable, a 503), rather than that it refused a statement (a bug, a 500).

    Looked for along the chain of causes: SQLAlchemy's connection-level errors (operational,
    interface, pool timeout, a disconnect), PostgreSQL's SQLSTATEs for a database that cannot
    be used at all (unreachable, shut down, out of resources, login refused, dropped), SQLite's
    operational errors (locked past the busy timeout, disk full, unreadable file), and a refused
    or reset connection raised from the store's own code or its drivers.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            exc.OperationalError
            | exc.InterfaceError
            | exc.TimeoutError
            | exc.DisconnectionError
            | sqlite3.OperationalError,
        ):
            return True
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if str(getattr(current, "sqlstate", "") or "").startswith(_GONE_SQLSTATES):
            return True
        if _closed_asyncpg_connection(current):
            return True
        # TimeoutError itself (a connect that timed out), not its subclasses: a session lock not
        # obtained in time (SessionBusy) is the session being busy, not the store being down.
        connection = isinstance(current, ConnectionError) or type(current) is TimeoutError
        if connection and _raised_in_store(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _closed_asyncpg_connection(error: BaseException) -> bool:
    # asyncpg's InterfaceError, raised by a call on a closed connection (the direct driver
    # paths: app/store/locks.py), carries no SQLSTATE; its other uses are misuse, not outages.
    cls = type(error)
    return (
        cls.__module__.startswith("asyncpg")
        and cls.__name__ == "InterfaceError"
        and "connection is closed" in str(error)
    )


def _raised_in_store(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_STORE_MODULES):
            return True
        traceback = traceback.tb_next
    return False


async def once_more_if_stale(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt`, and once more if its connection was found closed (a restart within the ping
    window, `_install_idle_ping`) before anything it did could have taken effect: a
    `StaleConnection`, or SQLAlchemy's disconnect under a read. The pool is invalidated by
    then, so the second attempt gets a new connection."""
    try:
        return await attempt()
    except exc.DBAPIError as error:
        if not (isinstance(error, StaleConnection) or error.connection_invalidated):
            raise
        return await attempt()


class UnsupportedDatabase(ValueError):
    """The DATABASE_URL names a database the store does not run on."""


def normalise_url(database_url: str) -> URL:
    """The async driver URL for a SQLite or PostgreSQL DATABASE_URL (postgres:// accepted)."""
    url = make_url(database_url)
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise UnsupportedDatabase(
            f"unsupported database driver {url.drivername!r}: use sqlite+aiosqlite:///path "
            "or postgresql+asyncpg://user@host/db"
        )
    url = url.set(drivername=driver)
    if driver.startswith("sqlite") and sqlite_path(url) is None:
        raise UnsupportedDatabase(
            "an in-memory SQLite database cannot be shared between connections; "
            "use a file, e.g. sqlite+aiosqlite:///data/chat.db"
        )
    return url


def safe_url(url: URL) -> str:
    """For logs and errors: never the password."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for in-memory databases and other dialects."""
    if not url.drivername.startswith("sqlite"):
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def build_engine(
    url: URL,
    *,
    connect_args: Mapping[str, Any] | None = None,
    pool_size: int = 10,
    max_overflow: int = 20,
    isolation_level: str | None = None,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncEngine:
    """An engine with the store's conventions; the SQLite file's directory is created."""
    options: dict[str, Any] = {"connect_args": dict(connect_args or {})}
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # sqlite3's own timeout is what makes a connection wait for a lock held elsewhere.
        options["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    elif isolation_level is not None:
        options["isolation_level"] = isolation_level
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow, **options)
    if path is not None:
        _install_sqlite_hooks(engine)
    else:
        _install_idle_ping(engine, after_idle_s=ping_after_idle_s, clock=clock)
    return engine


def _install_idle_ping(
    engine: AsyncEngine, *, after_idle_s: float, clock: Callable[[], float]
) -> None:
    """Ping a pooled connection at checkout only if it has sat idle for `after_idle_s`.

    Why not `pool_pre_ping`: it pings at every checkout, and a turn checks out two
    connections (its session lock's, AUTOCOMMIT, pinged with `;`, and its write's, pinged with
    BEGIN, `;`, ROLLBACK), so at one client it was four of a turn's eleven round trips to
    PostgreSQL, each a wake-up of the event loop. A connection checked in less than a second
    ago is as good as pinged (HikariCP's `aliveBypassWindowMs`, 0.5 s, is the same trade); one
    idle longer, which a restart or a dropped link may have closed, is pinged as before. A
    failed ping invalidates the pool, as `pool_pre_ping` does, and the checkout goes on with a
    new connection. A fresh connection is not pinged (its record's `info` is cleared when it is
    replaced).

    A connection closed within the window is found by its first statement. On a turn's own
    path (its lock, the read of a session this instance does not hold in memory, the BEGIN of
    its write or of a new session's row) that statement runs again once on a new connection
    (`StaleConnection`, or SQLAlchemy's disconnect), so a restart fails no turn there. Other
    reads (the session list, a session's history, the audit log) fail once instead (a 503,
    `unavailable`), and SQLAlchemy then invalidates that pool, so the reads after it get new
    connections.
    """
    dialect = engine.sync_engine.dialect

    def checked_in(dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = clock()

    def checked_out(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: object
    ) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or clock() - idle_since <= after_idle_s:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as err:
            raise exc.InvalidatePoolError(f"ping after {clock() - idle_since:.1f} s idle") from err
        if not alive:
            raise exc.InvalidatePoolError("ping failed")

    event.listen(engine.sync_engine, "checkin", checked_in)
    event.listen(engine.sync_engine, "checkout", checked_out)


def enable_wal(path: Path, *, wait_seconds: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the database file in WAL mode (creating the file and its directory if needed).

    Blocking: call it in a thread from async code. Switching the journal mode needs the file
    to itself and SQLite answers "locked" at once rather than waiting when another connection
    is busy (e.g. several instances starting together), hence the retry loop.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.01
    while True:
        conn = sqlite3.connect(path, timeout=wait_seconds)
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() == "wal":
                return
            raise sqlite3.OperationalError(f"journal mode stays {mode!r}")
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
        finally:
            conn.close()
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def write_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, flagged so SQLite transactions start with BEGIN IMMEDIATE."""
    return engine.execution_options(**{WRITE_OPTION: True})


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the driver; _on_sqlite_begin emits it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL is set once per file by enable_wal(); it persists in the file.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: an answered turn survives a power cut too, not only a killed process.
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    write = bool(connection.get_execution_options().get(WRITE_OPTION, False))
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def insert_for(dialect_name: str, table: type[DeclarativeBase]) -> sqlite.Insert | pg.Insert:
    """An INSERT that supports ON CONFLICT on the two dialects the store runs on."""
    if dialect_name == "postgresql":
        # Imported on first use: the PostgreSQL dialect costs ~80 ms of a SQLite start-up.
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabase(f"unsupported dialect {dialect_name!r}")
