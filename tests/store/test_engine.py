"""Database URL handling for the session store, and its PostgreSQL pool's pings."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.engine import (
    PING_AFTER_IDLE_S,
    UnsupportedDatabase,
    build_engine,
    normalise_url,
    safe_url,
    sqlite_path,
    unavailable,
)
from tests.conftest import PG_ADMIN_URL


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///data/chat.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///data/chat.db", "sqlite+aiosqlite"),
        ("postgres://u:p@db/chat", "postgresql+asyncpg"),
        ("postgresql://u@db/chat", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@db/chat", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str) -> None:
    assert normalise_url(given).drivername == driver


@pytest.mark.parametrize(
    "given", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"]
)
def test_unsupported_urls_are_refused(given: str) -> None:
    with pytest.raises(UnsupportedDatabase):
        normalise_url(given)


def test_sqlite_path_and_safe_url() -> None:
    assert sqlite_path(normalise_url("sqlite:///data/chat.db")) == Path("data/chat.db")
    assert sqlite_path(normalise_url("sqlite:////abs/chat.db")) == Path("/abs/chat.db")
    assert sqlite_path(normalise_url("postgresql://u@h/db")) is None
    assert "secret" not in safe_url(normalise_url("postgresql://u:secret@h/db"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _activity(pid: int) -> tuple[str, object]:
    """What PostgreSQL last ran on backend `pid` and when its state last changed, read over a
    connection of the test's own: a ping changes both."""
    conn = await asyncpg.connect(os.environ.get("TEST_PG_ADMIN_URL", PG_ADMIN_URL))
    try:
        row = await conn.fetchrow(
            "SELECT query, state_change FROM pg_stat_activity WHERE pid = $1", pid
        )
        assert row is not None
        return str(row["query"]), row["state_change"]
    finally:
        await conn.close()


async def _terminate(pid: int) -> None:
    conn = await asyncpg.connect(os.environ.get("TEST_PG_ADMIN_URL", PG_ADMIN_URL))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


_PID = text("SELECT pg_backend_pid()")


ISOLATION_LEVELS = pytest.mark.parametrize("isolation_level", [None, "AUTOCOMMIT"])


@asynccontextmanager
async def _one_used_connection(
    url: str, isolation_level: str | None, clock: FakeClock
) -> AsyncIterator[tuple[AsyncEngine, int, tuple[str, object]]]:
    """An engine of one pooled connection, used once and checked in: the engine, its backend's
    pid and that backend's activity then."""
    engine = build_engine(
        normalise_url(url), pool_size=1, isolation_level=isolation_level, clock=clock
    )
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(_PID)).scalar_one()
        yield engine, pid, await _activity(pid)
    finally:
        await engine.dispose()


@ISOLATION_LEVELS
@pytest.mark.parametrize(
    ("idle_s", "pinged"),
    [(PING_AFTER_IDLE_S, False), (PING_AFTER_IDLE_S + 0.01, True)],
    ids=["within-the-window", "past-it"],
)
async def test_a_connection_is_pinged_only_after_idling_past_the_window(
    pg_database_url: str, isolation_level: str | None, idle_s: float, pinged: bool
) -> None:
    clock = FakeClock()
    async with _one_used_connection(pg_database_url, isolation_level, clock) as used:
        engine, pid, before = used
        clock.now += idle_s
        async with engine.connect() as conn:
            query, changed_at = await _activity(pid)
            if pinged:
                # SQLAlchemy's asyncpg ping: ';', in a transaction rolled back outside
                # AUTOCOMMIT.
                assert query == ("ROLLBACK;" if isolation_level is None else ";")
                assert changed_at != before[1]
            else:
                assert (query, changed_at) == before
            assert (await conn.execute(_PID)).scalar_one() == pid


async def test_a_connection_the_server_dropped_while_idle_is_replaced_at_checkout(
    pg_database_url: str,
) -> None:
    clock = FakeClock()
    engine = build_engine(
        normalise_url(pg_database_url), pool_size=1, isolation_level="AUTOCOMMIT", clock=clock
    )
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(_PID)).scalar_one()
        await _terminate(pid)  # as a PostgreSQL restart or a dropped link would
        clock.now += 60.0
        async with engine.connect() as conn:
            assert (await conn.execute(_PID)).scalar_one() != pid
        # The new connection is not pinged again within the window.
        async with engine.connect() as conn:
            new_pid = (await conn.execute(_PID)).scalar_one()
        before = await _activity(new_pid)
        clock.now += 0.5
        async with engine.connect() as conn:
            assert await _activity(new_pid) == before
    finally:
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _raised(work: Callable[[], Awaitable[object]]) -> BaseException:
    try:
        await work()
    except Exception as error:
        return error
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("failure", ["refused", "database-gone", "login-refused"])
async def test_a_database_that_cannot_be_used_at_all_is_unavailable(failure: str) -> None:
    server = make_url(os.environ.get("TEST_PG_ADMIN_URL", PG_ADMIN_URL))
    if failure == "refused":
        url = server.set(port=_closed_port())
    elif failure == "database-gone":  # 3D000
        url = server.set(database="no_such_database")
    else:  # 28000
        url = server.set(username="no_such_role")
    engine = build_engine(normalise_url(url.render_as_string(hide_password=False)))

    async def select_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        assert unavailable(await _raised(select_one))
    finally:
        await engine.dispose()


async def test_a_closed_driver_connection_is_unavailable() -> None:
    conn = await asyncpg.connect(os.environ.get("TEST_PG_ADMIN_URL", PG_ADMIN_URL))
    await conn.close()
    assert unavailable(await _raised(lambda: conn.fetchval("SELECT 1")))


async def test_a_refused_statement_is_not_unavailability(tmp_path: Path) -> None:
    engine = build_engine(normalise_url(f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"))

    async def insert_twice() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))

    try:
        duplicate = await _raised(insert_twice)
        assert type(duplicate).__name__ == "IntegrityError"
        assert not unavailable(duplicate)
    finally:
        await engine.dispose()


def test_a_refused_connection_elsewhere_is_not_the_stores() -> None:
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(("127.0.0.1", _closed_port()), timeout=1)
    assert not unavailable(refused.value)
    assert not unavailable(ValueError("no"))
