"""Consistent online backups of the SQLite store, and offline restores.

A plain copy (`tar`, `cp`) of a live SQLite database is not consistent: the newest commits may
still be in the `-wal` file, and a copy taken mid-write can be torn. `VACUUM INTO` reads one
snapshot (WAL readers never block the running service's writers) and writes a compact,
self-contained file. PostgreSQL deployments use `pg_dump` instead.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from app.store.engine import SQLITE_BUSY_TIMEOUT_MS
from app.store.locks import OpenMarker


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says what to do."""


def open_marker_for(database: Path) -> OpenMarker:
    """The marker a running store holds on `database` (see OpenMarker)."""
    return OpenMarker(path=lock_directory_for(database) / "open.lock")


def lock_directory_for(database: Path) -> Path:
    return database.with_name(database.name + "-locks")


def backup_sqlite(*, source: Path, dest: Path) -> Path:
    """Write a consistent copy of `source` to `dest` (replaced atomically if it exists).

    Blocking (sqlite3 and fsync): run it in a thread from async code.
    """
    if not source.exists():
        raise BackupError(f"no database at {source}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    conn = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("VACUUM INTO ?", (str(partial),))
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    finally:
        conn.close()
    _fsync(partial)
    os.replace(partial, dest)
    _fsync_directory(dest.parent)
    return dest


def restore_sqlite(*, source: Path, target: Path) -> Path | None:
    """Replace the database at `target` with the backup at `source`.

    Only with the service stopped: refuses (StoreInUse) while a store has `target` open.
    The replaced database is first saved next to it; that path is returned (None if there was
    no database). The service applies any newer migrations when it starts.
    """
    _check_backup(source)
    marker = open_marker_for(target)
    marker.hold_exclusive()
    try:
        previous: Path | None = None
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            previous = backup_sqlite(
                source=target, dest=target.with_name(f"{target.name}.pre-restore-{stamp}")
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        # The backup API writes through SQLite, so the target's own -wal/-shm stay coherent.
        src = sqlite3.connect(_read_only_uri(source), uri=True)
        dst = sqlite3.connect(target, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return previous
    finally:
        marker.release()


def _check_backup(source: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    try:
        conn = sqlite3.connect(_read_only_uri(source), uri=True)
        try:
            (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
            listing = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {name for (name,) in listing}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{source} is not a readable SQLite database: {exc}") from exc
    if verdict != "ok":
        raise BackupError(f"{source} failed the integrity check: {verdict}")
    if "sessions" not in tables or "alembic_version" not in tables:
        raise BackupError(f"{source} is not a Chat Orchestrator session store backup")


def _read_only_uri(path: Path) -> str:
    # as_uri() percent-encodes, so "?" or "#" in a path cannot become URI syntax.
    return path.resolve().as_uri() + "?mode=ro"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    # Makes the rename durable; not supported on every platform, hence best effort.
    with contextlib.suppress(OSError):
        _fsync(path)
