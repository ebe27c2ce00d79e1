"""The store's wiring: the session store from Settings, and the claims record the lifecycle uses.

Kept outside `app/store/` so the store package holds no knowledge of Settings or the lifecycle.
"""

from __future__ import annotations

from app.config import Settings
from app.store.sessions import SessionStore


def build_store(settings: Settings) -> SessionStore:
    return SessionStore(
        database_url=settings.resolved_database_url,
        history_window=settings.history_window,
        idle_expiry_seconds=settings.session_idle_expiry_s,
    )


class StoreClaims:
    """Lets the lifecycle remember claimed tasks in the database, so restarts never rerun one."""

    def __init__(self, *, store: SessionStore) -> None:
        self._store = store

    async def seen(self, task_id: int) -> bool:
        return await self._store.task_seen(task_id)

    async def mark(self, task_id: int) -> None:
        await self._store.claim_task(task_id)
