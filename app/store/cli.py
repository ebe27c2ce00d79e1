"""Operator commands for the session store.

    python -m app.store.sessions migrate               # alembic upgrade head (also done on start)
    python -m app.store.sessions revision              # the schema revision of the database
    python -m app.store.sessions backup data/backup.db # consistent copy, safe while serving
    python -m app.store.sessions restore data/backup.db   # ONLY with the service stopped

The database is DATABASE_URL (or DATA_DIR/chat.db), or --database-url.
Backup/restore are for SQLite; for PostgreSQL use pg_dump / pg_restore.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from app.store.backup import BackupError, restore_sqlite
from app.store.engine import UnsupportedDatabase, normalise_url, sqlite_path
from app.store.locks import StoreInUse
from app.store.sessions import SessionStore


def _default_url() -> str:
    from app.config import Settings

    return Settings().resolved_database_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.store.sessions", description="Chat Orchestrator session store"
    )
    parser.add_argument(
        "--database-url", help="default: DATABASE_URL, else sqlite in DATA_DIR/chat.db"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply migrations (alembic upgrade)")
    migrate.add_argument("--revision", default="head")
    commands.add_parser("revision", help="print the database's schema revision")
    backup = commands.add_parser("backup", help="consistent copy of a live SQLite store")
    backup.add_argument("dest", type=Path)
    restore = commands.add_parser(
        "restore", help="replace the SQLite store with a backup (service must be stopped)"
    )
    restore.add_argument("source", type=Path)
    return parser


async def _migrate(url: str, revision: str) -> str | None:
    async with SessionStore(database_url=url) as store:
        await store.migrate(revision=revision)
        return await store.revision()


async def _revision(url: str) -> str | None:
    async with SessionStore(database_url=url) as store:
        return await store.revision()


async def _backup(url: str, dest: Path) -> Path:
    async with SessionStore(database_url=url) as store:
        return await store.backup(dest)


def _restore(url: str, source: Path) -> str:
    target = sqlite_path(normalise_url(url))
    if target is None:
        raise BackupError("restore is built in for SQLite only; use pg_restore for PostgreSQL")
    previous = restore_sqlite(source=source, target=target)
    kept = f"; the replaced database was saved as {previous}" if previous else ""
    return f"restored {source} into {target}{kept}. Start the service: it migrates on start."


def run(argv: Sequence[str] | None = None) -> str:
    """Execute a command; returns what to tell the operator. Raises on failure."""
    args = _parser().parse_args(argv)
    url: str = args.database_url or _default_url()
    if args.command == "migrate":
        revision = asyncio.run(_migrate(url, args.revision))
        return f"database at revision {revision}"
    if args.command == "revision":
        return f"database at revision {asyncio.run(_revision(url))}"
    if args.command == "backup":
        return f"backup written to {asyncio.run(_backup(url, args.dest))}"
    return _restore(url, args.source)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        message = run(argv)
    except (BackupError, StoreInUse, UnsupportedDatabase) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(message + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
