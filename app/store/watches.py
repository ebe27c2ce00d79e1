"""Watches, stored in the session store's database: they survive a restart, and several
instances sharing the database notify each firing exactly once.

The watch tools see `add`, `active` and `remove` (app/tools/context.py `WatchBook`); the watch
engine sees `pending`, `observe`, `claim`, `release` and `expire`. A watch is active while it is
unfired and unexpired; a fired watch stays (out of every listing) until it expires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, insert, select, text, update

from app.domain.watch import TooManyWatches, Watch, WatchFilter
from app.store.sessions import SessionStore
from app.store.tables import WatchRow
from app.utils.time import utcnow

__all__ = ["TooManyWatches", "WatchStore"]


class WatchStore:
    """Keyword-only, like every store; shares `sessions`' engine (open and migrate that one)."""

    def __init__(self, *, sessions: SessionStore) -> None:
        self._db = sessions

    # ---- the watch tools (WatchBook) ---------------------------------------------------------

    async def add(self, watch: Watch, *, limit: int) -> Watch:
        """Store `watch` (its id is set on the copy returned).

        The owner's active watches are counted in the insert's transaction, so concurrent adds
        never exceed `limit` (raises TooManyWatches). "Now" is the watch's `created_at`.
        """
        async with self._db.writing() as conn:
            if conn.dialect.name == "postgresql":
                # Serialise adds per owner; SQLite's write transaction already does.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"watches:{watch.owner}"},
                )
            count = (
                await conn.execute(
                    select(func.count())
                    .select_from(WatchRow)
                    .where(WatchRow.owner == watch.owner, _active(watch.created_at))
                )
            ).scalar_one()
            if int(count) >= limit:
                raise TooManyWatches(limit)
            values = watch.model_dump(exclude={"id"})
            new_id = (
                await conn.execute(insert(WatchRow).values(**values).returning(WatchRow.id))
            ).scalar_one()
        return watch.model_copy(update={"id": int(new_id)})

    async def active(self, *, owner: str, now: datetime | None = None) -> list[Watch]:
        """The owner's unfired, unexpired watches, oldest first."""
        return await self._select(_query().where(WatchRow.owner == owner, _active(now or utcnow())))

    async def remove(
        self, *, owner: str, which: WatchFilter, now: datetime | None = None
    ) -> list[Watch]:
        """Delete the owner's active watches that `which` names; returns them.

        `all` names every one; otherwise the given fields must all match. A filter naming
        nothing removes nothing (a vague request must not wipe every watch).
        """
        conditions: list[ColumnElement[bool]] = [
            WatchRow.owner == owner,
            _active(now or utcnow()),
        ]
        if not which.all:
            named = [
                column == value
                for column, value in (
                    (WatchRow.id, which.watch_id),
                    (WatchRow.task_id, which.task_id),
                    (WatchRow.droplet_id, which.droplet_id),
                )
                if value is not None
            ]
            if not named:
                return []
            conditions += named
        async with self._db.writing() as conn:
            rows = (await conn.execute(_query().where(*conditions))).all()
            ids = [r.id for r in rows]
            if ids:
                await conn.execute(delete(WatchRow).where(WatchRow.id.in_(ids)))
        return [_watch(r) for r in rows]

    # ---- the watch engine --------------------------------------------------------------------

    async def pending(self, *, now: datetime) -> list[Watch]:
        """Every owner's unfired, unexpired watches, oldest first."""
        return await self._select(_query().where(_active(now)))

    async def get(self, watch_id: int) -> Watch | None:
        rows = await self._select(_query().where(WatchRow.id == watch_id))
        return rows[0] if rows else None

    async def observe(self, watch_id: int, last_seen: str) -> None:
        """Remember what was last seen, to notice a change on a later check."""
        async with self._db.writing() as conn:
            await conn.execute(
                update(WatchRow)
                .where(WatchRow.id == watch_id, WatchRow.fired_at.is_(None))
                .values(last_seen=last_seen)
            )

    async def claim(self, watch_id: int, *, now: datetime) -> bool:
        """Mark the watch fired; True for exactly one caller, whatever the number of instances.

        One conditional UPDATE: on PostgreSQL a concurrent claimer waits for the winner's commit,
        re-reads the row and matches nothing; on SQLite writers are serialised anyway.
        """
        async with self._db.writing() as conn:
            result = await conn.execute(
                update(WatchRow)
                .where(WatchRow.id == watch_id, WatchRow.fired_at.is_(None))
                .values(fired_at=now)
            )
        return int(result.rowcount) == 1

    async def release(self, watch_id: int) -> None:
        """Undo a claim whose notification could not be recorded, so a later check retries."""
        async with self._db.writing() as conn:
            await conn.execute(
                update(WatchRow).where(WatchRow.id == watch_id).values(fired_at=None)
            )

    async def expire(self, *, now: datetime) -> int:
        """Delete watches (fired or not) whose time is up; returns how many."""
        async with self._db.writing() as conn:
            result = await conn.execute(delete(WatchRow).where(WatchRow.expires_at <= now))
        return int(result.rowcount)

    # ---- internals -----------------------------------------------------------------------------

    async def _select(self, query: Select[Any]) -> list[Watch]:
        async with self._db.reading() as conn:
            rows = (await conn.execute(query.order_by(WatchRow.id))).all()
        return [_watch(r) for r in rows]


def _active(now: datetime) -> ColumnElement[bool]:
    return and_(WatchRow.fired_at.is_(None), WatchRow.expires_at > now)


def _query() -> Select[Any]:
    return select(*(getattr(WatchRow, name) for name in _FIELDS))


_FIELDS = tuple(name for name in Watch.model_fields)


def _watch(row: Any) -> Watch:
    return Watch.model_validate({name: getattr(row, name) for name in _FIELDS})
