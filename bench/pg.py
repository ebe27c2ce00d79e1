"""A throwaway PostgreSQL database for one bench run: created fresh, dropped at the end.

The server is whatever `BENCH_PG_ADMIN_URL` points at (default: the local one on
127.0.0.1:5432, trust auth, maintenance database `test`; user `root`, else `postgres`). The
database is `bench_<harness pid>`, so its backends are recognisable in /proc by their process
title (`postgres: <cluster>: <user> bench_<pid> 127.0.0.1(<port>) <state>`): that is how the
harness counts PostgreSQL's CPU apart from the service's, and pins those backends to the load
core(s) so the service keeps its core to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench import sysinfo
from bench.procs import BenchError

ADMIN_URL_ENV = "BENCH_PG_ADMIN_URL"
DEFAULT_ADMINS = (
    "postgresql://root@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/test",
)


@dataclass(frozen=True, slots=True)
class PgDatabase:
    admin_url: str
    name: str
    user: str
    host: str
    port: int
    server_version: str

    @property
    def service_url(self) -> str:
        """The DATABASE_URL droplet 12 gets."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{self.name}"

    @property
    def backend_needle(self) -> str:
        """What the process title of a backend serving this database contains."""
        return f" {self.name} "

    def pin_backends(self, cpus: list[int]) -> int:
        """Pin this database's current backends to `cpus` (best effort); how many were pinned."""
        pinned = 0
        if not cpus or not hasattr(os, "sched_setaffinity"):
            return pinned
        for pid in sysinfo.matching_pids(self.backend_needle):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, set(cpus))
                pinned += 1
        return pinned


async def _execute(url: str, *statements: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
        version: Any = await conn.fetchval("SHOW server_version")
        return str(version)
    finally:
        await conn.close()


def _admin_urls() -> tuple[str, ...]:
    configured = os.environ.get(ADMIN_URL_ENV)
    return (configured,) if configured else DEFAULT_ADMINS


@contextlib.contextmanager
def fresh_database() -> Iterator[PgDatabase]:
    """Create `bench_<pid>` (dropping a leftover of the same name first) and drop it after."""
    from sqlalchemy.engine import make_url

    name = f"bench_{os.getpid()}"
    failures = []
    for admin in _admin_urls():
        try:
            version = asyncio.run(
                _execute(
                    admin,
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    f'CREATE DATABASE "{name}"',
                )
            )
        except Exception as exc:  # OSError, or asyncpg's own (no such role, ...): next one
            failures.append(f"{admin}: {type(exc).__name__}: {exc}")
            continue
        url = make_url(admin)
        database = PgDatabase(
            admin_url=admin,
            name=name,
            user=url.username or "postgres",
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            server_version=version,
        )
        try:
            yield database
        finally:
            with contextlib.suppress(Exception):
                asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    raise BenchError("PostgreSQL unavailable: " + "; ".join(failures))
