"""The watch engine: decides when a stored watch fires, and fires each one exactly once.

Tasks are polled, because the Orchestrator emits nothing when a task finishes. Droplet health is
also pushed (`droplet_health_changed` on its event feed): `on_event` checks the droplet's
watches at once, and the periodic check is the fallback when the feed is down.

When a watch's condition holds, the engine claims it in the store (one conditional UPDATE, so
with several instances on one database only one wins) and only the winner notifies. What a watch
waits for:

- a task (`task_id`): `done` when it reaches completed, failed or cancelled; `failed` when it is
  failed; otherwise (`change`) when its status differs from the one first seen. A task already
  finished when the watch is made fires at the first check.
- a droplet (`droplet_id`, `up`/`down`/`change`): `up` when it is healthy, `down` when it is down
  or in error, `change` when its health differs from the one first seen.
- tasks in bulk (no `task_id`, `failed`/`done`, optionally only those of `droplet_id`): a task
  that became failed (completed) after the watch was made; the ids already seen so are kept in
  `last_seen` as a JSON list.

A peer that does not answer leaves the watch as it is for the next round; nothing here raises
out of the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from app.domain.mesh import MeshEvent, Task, TaskState
from app.domain.watch import Watch
from app.mesh.catalogue import known_name
from app.mesh.directory import DropletDirectory
from app.mesh.orchestrator import OrchestratorClient
from app.mesh.peers import PeerError
from app.store.watches import WatchStore
from app.utils.retry import Sleep
from app.utils.time import utcnow

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

FINISHED = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})
HEALTH_CHANGED = "droplet_health_changed"
BULK_LIMIT = 500
"""Tasks listed per bulk watch and round (the Orchestrator's page maximum)."""
PEER_CALLS_AT_ONCE = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """A watch whose condition holds, and what was seen: everything a notification says."""

    watch: Watch
    status: str
    """A task state, a droplet health (up, down, error), or the state bulk tasks reached."""
    previous: str | None = None
    """What the watch saw before (None: nothing yet)."""
    task: Task | None = None
    tasks: tuple[Task, ...] = ()
    """Bulk watches: the tasks that newly reached the state."""
    droplet_name: str | None = None


Notify = Callable[[Firing], Awaitable[None]]
"""Delivers a firing. Raises only when nothing was delivered, so the claim can be undone."""


def droplet_health(status: str | None) -> str | None:
    """One word per health whichever peer said it (active/healthy, inactive/down, error);
    None for unknown, so a peer's silence is never taken for a change."""
    low = (status or "").lower()
    if low in ("active", "healthy"):
        return "up"
    if low in ("inactive", "down"):
        return "down"
    return "error" if low == "error" else None


def task_rule(watch: Watch, task: Task) -> tuple[Firing | None, str]:
    """(the firing if the watch's condition holds, what to remember as last seen)."""
    status = task.status
    if watch.event == "done":
        hit = status in FINISHED
    elif watch.event == "failed":
        hit = status is TaskState.FAILED
    else:
        hit = watch.last_seen is not None and status.value != watch.last_seen
    firing = Firing(watch=watch, status=status.value, previous=watch.last_seen, task=task)
    return (firing if hit else None), status.value


def droplet_rule(
    watch: Watch, health: str | None, *, name: str | None
) -> tuple[Firing | None, str | None]:
    """As task_rule; with no health known, nothing fires and nothing is remembered."""
    if health is None:
        return None, None
    if watch.event == "up":
        hit = health == "up"
    elif watch.event == "down":
        hit = health in ("down", "error")
    else:
        hit = watch.last_seen is not None and health != watch.last_seen
    firing = Firing(watch=watch, status=health, previous=watch.last_seen, droplet_name=name)
    return (firing if hit else None), health


def bulk_rule(watch: Watch, tasks: Sequence[Task]) -> tuple[Firing | None, str]:
    """`tasks`: those now in the watched state. New ones fire; all of them are remembered."""
    baseline = _ids(watch.last_seen)
    if baseline is None:
        # First look: count only what reached the state after the watch was made.
        new = [
            t for t in tasks if t.completed_at is not None and t.completed_at >= watch.created_at
        ]
    else:
        new = [t for t in tasks if t.id not in baseline]
    seen = json.dumps(sorted({t.id for t in tasks}))
    if not new:
        return None, seen
    firing = Firing(
        watch=watch,
        status=_bulk_state(watch).value,
        tasks=tuple(sorted(new, key=lambda t: t.id)),
        droplet_name=known_name(watch.droplet_id) if watch.droplet_id is not None else None,
    )
    return firing, seen


def _bulk_state(watch: Watch) -> TaskState:
    return TaskState.FAILED if watch.event == "failed" else TaskState.COMPLETED


def _ids(last_seen: str | None) -> set[int] | None:
    if last_seen is None:
        return None
    try:
        value = json.loads(last_seen)
    except ValueError:
        return None
    return {int(i) for i in value if isinstance(i, int)} if isinstance(value, list) else None


def _is_bulk(watch: Watch) -> bool:
    return watch.task_id is None and watch.event in ("failed", "done")


def _is_droplet(watch: Watch) -> bool:
    return watch.task_id is None and watch.droplet_id is not None and not _is_bulk(watch)


@dataclass(slots=True)
class _Round:
    """What the peers said during one check: each task, listing and droplet asked once."""

    tasks: dict[int, Task | None] = field(default_factory=dict)
    bulk: dict[tuple[str, int | None], list[Task] | None] = field(default_factory=dict)
    health: dict[int, tuple[str | None, str | None]] | None = None
    """Droplet id -> (health, name); None until the directory was asked."""


class WatchEngine:
    def __init__(
        self,
        *,
        store: WatchStore,
        orchestrator: OrchestratorClient,
        directory: DropletDirectory,
        notify: Notify,
        clock: Clock = utcnow,
        interval_s: float = 15.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self._store = store
        self._orchestrator = orchestrator
        self._directory = directory
        self._notify = notify
        self._clock = clock
        self._interval_s = interval_s
        self._sleep = sleep
        # One evaluation at a time in this instance: a pushed event and the periodic round
        # must not both read the same baseline and write it back.
        self._checking = asyncio.Lock()
        self._peer_calls = asyncio.Semaphore(PEER_CALLS_AT_ONCE)

    async def run(self) -> None:
        """Expire old watches and check the others every `interval_s`, until cancelled."""
        while True:
            try:
                expired = await self._store.expire(now=self._clock())
                if expired:
                    log.info("watches_expired", count=expired)
                await self.check_once()
            except Exception as exc:  # the database may be down: try again next round
                log.exception("watch_round_failed", reason=type(exc).__name__)
            await self._sleep(self._interval_s)

    async def check_once(self) -> int:
        """Evaluate every pending watch; returns how many this instance fired."""
        async with self._checking:
            watches = await self._store.pending(now=self._clock())
            seen = _Round()
            await self._ask_peers(watches, seen)
            return await self._evaluate(watches, seen)

    async def on_event(self, event: MeshEvent) -> None:
        """A pushed droplet health change: check that droplet's watches now.

        An event sink (the feed's, or the alert log's): never raises, a failed look is
        logged and the periodic round catches up.
        """
        if event.kind != HEALTH_CHANGED or event.droplet_id is None:
            return
        try:
            await self._check_droplet(event.droplet_id, event)
        except Exception as exc:
            log.exception("watch_event_check_failed", reason=type(exc).__name__)

    async def _check_droplet(self, droplet_id: int, event: MeshEvent) -> None:
        async with self._checking:
            watches = [
                w
                for w in await self._store.pending(now=self._clock())
                if _is_droplet(w) and w.droplet_id == droplet_id
            ]
            if not watches:
                return
            seen = _Round()
            await self._ask_directory(seen)
            # The feed says new_status; a droplet reporting on itself (/heartbeat) says status.
            said = event.data.get("new_status") or event.data.get("status")
            reported = droplet_health(said if isinstance(said, str) else None)
            if event.verified and reported is not None and seen.health is not None:
                # The directory may still hold the old status for a few seconds (its cache);
                # an unverified sender only prompts the look, it is not believed.
                _, name = seen.health.get(droplet_id, (None, None))
                seen.health[droplet_id] = (reported, name)
            await self._evaluate(watches, seen)

    # ---- asking the peers ------------------------------------------------------------------

    async def _ask_peers(self, watches: Sequence[Watch], seen: _Round) -> None:
        task_ids = {w.task_id for w in watches if w.task_id is not None}
        bulk_keys = {(w.event, w.droplet_id) for w in watches if _is_bulk(w)}
        asks = [self._ask_task(task_id, seen) for task_id in sorted(task_ids)]
        asks += [self._ask_bulk(key, seen) for key in sorted(bulk_keys, key=str)]
        if any(_is_droplet(w) for w in watches):
            asks.append(self._ask_directory(seen))
        await asyncio.gather(*asks)

    async def _ask_task(self, task_id: int, seen: _Round) -> None:
        async with self._peer_calls:
            try:
                seen.tasks[task_id] = await self._orchestrator.get_task(task_id)
            except PeerError as exc:
                seen.tasks[task_id] = None
                log.info("watch_check_deferred", task_id=task_id, reason=exc.message)

    async def _ask_bulk(self, key: tuple[str, int | None], seen: _Round) -> None:
        event, droplet_id = key
        state = TaskState.FAILED if event == "failed" else TaskState.COMPLETED
        async with self._peer_calls:
            try:
                seen.bulk[key] = await self._orchestrator.list_tasks(
                    status=state, assigned_droplet_id=droplet_id, limit=BULK_LIMIT
                )
            except PeerError as exc:
                seen.bulk[key] = None
                log.info("watch_check_deferred", tasks=state.value, reason=exc.message)

    async def _ask_directory(self, seen: _Round) -> None:
        # The directory absorbs peer failures (a droplet only the catalogue knows is "unknown",
        # which droplet_health maps to None: no observation).
        async with self._peer_calls:
            listing = await self._directory.list()
        for failure in listing.failures:
            log.info("watch_check_partial", peer=failure.peer, reason=failure.message)
        seen.health = {d.id: (droplet_health(d.status), d.name) for d in listing.droplets}

    # ---- deciding and firing -----------------------------------------------------------------

    async def _evaluate(self, watches: Sequence[Watch], seen: _Round) -> int:
        fired = 0
        for watch in watches:
            firing, last_seen = self._decide(watch, seen)
            if firing is not None:
                fired += await self._fire(firing)
            elif last_seen is not None and last_seen != watch.last_seen and watch.id is not None:
                await self._store.observe(watch.id, last_seen)
        return fired

    def _decide(self, watch: Watch, seen: _Round) -> tuple[Firing | None, str | None]:
        if watch.task_id is not None:
            task = seen.tasks.get(watch.task_id)
            return (None, None) if task is None else task_rule(watch, task)
        if _is_bulk(watch):
            tasks = seen.bulk.get((watch.event, watch.droplet_id))
            return (None, None) if tasks is None else bulk_rule(watch, tasks)
        if watch.droplet_id is not None and seen.health is not None:
            health, name = seen.health.get(watch.droplet_id, (None, None))
            return droplet_rule(watch, health, name=name)
        return None, None

    async def _fire(self, firing: Firing) -> int:
        watch_id = firing.watch.id
        assert watch_id is not None, "a stored watch has an id"
        if not await self._store.claim(watch_id, now=self._clock()):
            log.info("watch_fired_elsewhere", watch_id=watch_id)
            return 0
        try:
            await self._notify(firing)
        except Exception as exc:
            # Nothing was delivered (see Notify): give the watch back for the next round.
            log.exception("watch_notify_failed", watch_id=watch_id, reason=type(exc).__name__)
            await self._store.release(watch_id)
            return 0
        log.info("watch_fired", watch_id=watch_id, status=firing.status, owner=firing.watch.owner)
        return 1
