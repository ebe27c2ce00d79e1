"""Real databases for session store tests: a SQLite file, or a private PostgreSQL schema.

PostgreSQL comes from TEST_DATABASE_URL (default: the local trust-auth server). Each test gets
its own schema (search_path set through the driver), so parallel runs never share tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.store.sessions import SessionStore

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
