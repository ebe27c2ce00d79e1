"""Alembic environment for the session store (SQLite and PostgreSQL, async drivers).

Two ways in:
- The service (`SessionStore.migrate()`) passes its own connection, already inside a
  transaction, in `config.attributes["connection"]`: migrations run on it.
- The `alembic` CLI: the URL comes from `config.attributes["database_url"]`, else the
  DATABASE_URL environment variable, else the service's settings (DATA_DIR/chat.db).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from sqlalchemy import Connection, text

from alembic import context
from app.store.engine import (
    build_engine,
    enable_wal,
    normalise_url,
    sqlite_path,
    write_engine,
)
from app.store.migrations import MIGRATION_LOCK_KEY
from app.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    if url:
        return str(url)
    from app.config import Settings

    return Settings().resolved_database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several instances starting together: one migrates, the others wait, then see head.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    url = normalise_url(_database_url())
    path = sqlite_path(url)
    if path is not None:
        await asyncio.to_thread(enable_wal, path)
    engine = build_engine(url, pool_size=1, max_overflow=0)
    try:
        async with write_engine(engine).begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=normalise_url(_database_url()).render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_with_own_engine())


if config.attributes.get("connection") is None and config.config_file_name is not None:
    # CLI only: the service has its own logging and must not have it reconfigured.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
