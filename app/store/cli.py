"""`chat-orchestrator db ...`: the operator's commands for the session store.

    chat-orchestrator db migrate [--revision REV]   alembic upgrade head (also done on start)
    chat-orchestrator db revision                   the schema revision of the database
    chat-orchestrator db backup data/backup.db      consistent copy, safe while serving
    chat-orchestrator db restore data/backup.db     ONLY with the service stopped

Every command takes `--database-url`; the default is DATABASE_URL, else sqlite in
DATA_DIR/chat.db. Backup and restore are for SQLite; for PostgreSQL use pg_dump / pg_restore.
A failure is one line on stderr (`error: ...`) and exit code 1.

The store's modules are imported inside the commands: `chat-orchestrator ask` and `chat` build
the same command tree and should not pay for SQLAlchemy and Alembic on every start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

EXIT_FAILED = 1

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Default: DATABASE_URL, else sqlite in DATA_DIR/chat.db.",
        show_default=False,
    ),
]


def _url(database_url: str | None) -> str:
    if database_url:
        return database_url
    from app.config import Settings

    return Settings().resolved_database_url


@contextmanager
def _operator_errors() -> Iterator[None]:
    """What an operator can fix becomes one line and exit 1; anything else is a bug (trace)."""
    from app.store.backup import BackupError
    from app.store.engine import UnsupportedDatabase
    from app.store.locks import StoreInUse

    try:
        yield
    except (BackupError, StoreInUse, UnsupportedDatabase) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def migrate(
    database_url: DatabaseUrl = None,
    revision: Annotated[str, typer.Option(help="Migrate up to this revision.")] = "head",
) -> None:
    """Apply the migrations (alembic upgrade); the service also does it when it starts."""
    from app.store.sessions import SessionStore

    async def run(url: str) -> str | None:
        async with SessionStore(database_url=url) as store:
            await store.migrate(revision=revision)
            return await store.revision()

    with _operator_errors():
        typer.echo(f"database at revision {asyncio.run(run(_url(database_url)))}")


def revision(database_url: DatabaseUrl = None) -> None:
    """Print the database's schema revision."""
    from app.store.sessions import SessionStore

    async def run(url: str) -> str | None:
        async with SessionStore(database_url=url) as store:
            return await store.revision()

    with _operator_errors():
        typer.echo(f"database at revision {asyncio.run(run(_url(database_url)))}")


def backup(
    dest: Annotated[
        Path, typer.Argument(help="Where to write the copy.", metavar="DEST", show_default=False)
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Write a consistent copy of the SQLite store (safe while the service runs)."""
    from app.store.sessions import SessionStore

    async def run(url: str) -> Path:
        async with SessionStore(database_url=url) as store:
            return await store.backup(dest)

    with _operator_errors():
        typer.echo(f"backup written to {asyncio.run(run(_url(database_url)))}")


def restore(
    source: Annotated[
        Path, typer.Argument(help="A backup file.", metavar="SRC", show_default=False)
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Replace the SQLite store with a backup. Only with the service stopped."""
    from app.store.backup import BackupError, restore_sqlite
    from app.store.engine import normalise_url, sqlite_path

    with _operator_errors():
        target = sqlite_path(normalise_url(_url(database_url)))
        if target is None:
            raise BackupError("restore is built in for SQLite only; use pg_restore for PostgreSQL")
        previous = restore_sqlite(source=source, target=target)
        kept = f"; the replaced database was saved as {previous}" if previous else ""
        typer.echo(
            f"restored {source} into {target}{kept}. Start the service: it migrates on start."
        )


def build_db_cli() -> typer.Typer:
    db = typer.Typer(
        name="db",
        help="The session store: migrations, revision, backup and restore.",
        no_args_is_help=True,
    )
    for command in (migrate, revision, backup, restore):
        db.command()(command)
    return db
