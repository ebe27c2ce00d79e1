"""Per-session serialisation of turns, inside one process and across processes.

Two layers, taken in this order and released in reverse:

1. In-process: one `asyncio.Lock` per session id, FIFO, created on first use and dropped as
   soon as nobody holds or waits for it (the dict never outgrows the sessions in flight).
2. Cross-process, so two instances serving the same session never interleave turns:
   - PostgreSQL: a session-level `pg_advisory_lock(key)` on a dedicated connection (from a
     separate AUTOCOMMIT pool, so lock holders never starve the store's queries), held for the
     whole turn and unlocked before the connection goes back to the pool. If the process dies,
     PostgreSQL ends the backend session and the lock disappears with it.
   - SQLite (one host): `flock` on a per-session lock file next to the database. The holder
     unlinks the file on release; a waiter that then wins the lock on the old inode sees it
     is no longer the file at that path and retries, so only one holder exists and the lock
     directory does not grow. The kernel drops flocks of a killed process.
Only one process per session reaches the (expensive) cross-process step at a time, because
the in-process lock is taken first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)

Release = Callable[[], Awaitable[None]]


class SessionBusy(TimeoutError):
    """The session's lock was not obtained within the timeout (another turn is running)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} is busy with another turn")
        self.session_id = session_id


class StoreInUse(RuntimeError):
    """The database is open in a running service (or a restore holds it)."""


class CrossProcessLock(Protocol):
    async def acquire(self, key: str) -> Release:
        """Block until `key` is held; on any exception nothing stays held."""
        ...


def advisory_key(key: str) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key for a session id."""
    digest = hashlib.blake2b(f"chat-session:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresAdvisoryLocks:
    """Session-level advisory locks, one dedicated connection per held lock."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        # Expected to be an AUTOCOMMIT engine: a held lock must not keep a transaction open.
        self._engine = engine
        self._held: dict[str, AsyncConnection] = {}

    def held(self, key: str) -> AsyncConnection | None:
        """The connection holding `key`'s lock, for a read the holder makes under it (saves
        a pool checkout and its ping). Only the holder may use it, and only while it holds."""
        return self._held.get(key)

    async def acquire(self, key: str) -> Release:
        lock_id = advisory_key(key)
        conn = await self._engine.connect()
        try:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
        except BaseException:
            # Cancelled or failed mid-wait: the server may still grant the lock to this
            # backend, so end the backend rather than return it to the pool.
            await _discard(conn)
            raise

        self._held[key] = conn

        async def release() -> None:
            if self._held.get(key) is conn:
                del self._held[key]
            try:
                result = await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                unlocked = bool(result.scalar())
            except BaseException:
                await _discard(conn)
                raise
            if not unlocked:
                log.warning("session_lock_not_held_on_release", lock_id=lock_id)
                await _discard(conn)
                return
            await conn.close()

        return release


async def _discard(conn: AsyncConnection) -> None:
    # Invalidating closes the DBAPI connection: PostgreSQL then drops the backend's locks.
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


class FileLocks:
    """flock-based per-key locks in one directory (SQLite deployments: one host)."""

    def __init__(self, *, directory: Path, max_poll_seconds: float = 0.05) -> None:
        self._directory = directory
        self._max_poll = max_poll_seconds

    def path_for(self, key: str) -> Path:
        name = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self._directory / f"{name}.lock"

    async def acquire(self, key: str) -> Release:
        path = self.path_for(key)
        delay = 0.002
        while True:
            fd = _try_lock(path)
            if fd is not None:
                break
            # flock has no async wait; the in-process lock already queues local waiters,
            # so this poll only runs while another process holds the session.
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_poll)

        async def release() -> None:
            # Unlink while still holding: see the module docstring.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)

        return release


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    try:
        held = os.fstat(fd)
        current = os.stat(path)
        same = (held.st_ino, held.st_dev) == (current.st_ino, current.st_dev)
    except FileNotFoundError:
        same = False
    except BaseException:
        os.close(fd)
        raise
    if not same:
        os.close(fd)
        return None
    return fd


class OpenMarker:
    """A shared flock held while a store has the database open; restore needs it exclusive."""

    def __init__(self, *, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def hold_shared(self) -> None:
        self._take(fcntl.LOCK_SH, "a restore is running on this database; try again after it")

    def hold_exclusive(self) -> None:
        self._take(
            fcntl.LOCK_EX,
            "the database is open in a running service; stop the service before restoring",
        )

    def _take(self, mode: int, busy_message: str) -> None:
        if self._fd is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise StoreInUse(busy_message) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SessionLocks:
    """The two-layer lock described in the module docstring."""

    def __init__(self, *, cross_process: CrossProcessLock | None) -> None:
        self._cross = cross_process
        self._slots: dict[str, _Slot] = {}

    @contextlib.asynccontextmanager
    async def hold(self, session_id: str, *, max_wait: float | None = None) -> AsyncIterator[None]:
        slot = self._slots.get(session_id)
        if slot is None:
            slot = self._slots[session_id] = _Slot()
        slot.users += 1
        try:
            release = await self._acquire(slot, session_id, max_wait)
            try:
                yield
            finally:
                try:
                    if release is not None:
                        await release()
                finally:
                    slot.lock.release()
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[session_id]

    async def _acquire(
        self, slot: _Slot, session_id: str, max_wait: float | None
    ) -> Release | None:
        try:
            async with asyncio.timeout(max_wait):
                await slot.lock.acquire()
                try:
                    return await self._cross.acquire(session_id) if self._cross else None
                except BaseException:
                    slot.lock.release()
                    raise
        except TimeoutError as exc:
            raise SessionBusy(session_id) from exc
