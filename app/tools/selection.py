"""Which tasks a filter means: "all pending tasks for droplet 14", "every failed verify task",
"tasks 4, 7 and 9". Resolved against the Orchestrator into a concrete list before anything is
proposed, so a yes acts on exactly the tasks it was shown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.domain.mesh import Task
from app.mesh.peers import PeerNotFound
from app.tools.context import RunContext
from app.tools.render import task_status_word
from app.utils.markup import escape_markdown, plain_name

MAX_BULK = 50
"""At most this many tasks in one proposal."""
DETAIL_LOOKUPS = 100
"""Pending tasks are not assigned yet: their target droplet is in their payload, one lookup
each. Beyond this many candidates the filter is refused as too broad."""


class TooMany(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} tasks")
        self.count = count


async def select_tasks(
    ctx: RunContext,
    *,
    task_ids: Sequence[int] | None,
    statuses: Sequence[str],
    droplet_id: int | None,
    task_type: str | None,
) -> tuple[list[Task], list[int]]:
    """The tasks meant, and the ids asked for that do not exist."""
    orchestrator = ctx.mesh.orchestrator
    if task_ids:
        found = await asyncio.gather(
            *(orchestrator.get_task(i, trace_id=ctx.trace_id) for i in task_ids),
            return_exceptions=True,
        )
        tasks: list[Task] = []
        missing: list[int] = []
        for ident, result in zip(task_ids, found, strict=True):
            if isinstance(result, PeerNotFound):
                missing.append(ident)
            elif isinstance(result, BaseException):
                raise result
            else:
                tasks.append(result)
        return tasks, missing
    listed: list[Task] = []
    for status in statuses:
        listed += await orchestrator.list_tasks(
            status=status, task_type=task_type, limit=500, trace_id=ctx.trace_id
        )
    if droplet_id is None:
        return listed, []
    mine = [t for t in listed if t.assigned_droplet_id == droplet_id]
    others = [t for t in listed if t.assigned_droplet_id is None]
    if len(others) > DETAIL_LOOKUPS:
        raise TooMany(len(others))
    details = await asyncio.gather(
        *(orchestrator.get_task(t.id, trace_id=ctx.trace_id) for t in others),
        return_exceptions=True,
    )
    for detail in details:
        if (
            isinstance(detail, Task)
            and (detail.payload or {}).get("target_droplet_id") == droplet_id
        ):
            mine.append(detail)
    return sorted(mine, key=lambda t: t.id), []


def describe_filter(
    *,
    statuses: Sequence[str],
    droplet_id: int | None,
    task_type: str | None,
) -> str:
    words = [" or ".join(s.replace("_", " ") for s in statuses)] if statuses else []
    if task_type:
        words.append(task_type)
    words.append("tasks")
    if droplet_id is not None:
        words.append(f"for droplet {droplet_id}")
    return " ".join(words)


def listing(tasks: Sequence[Task], *, spoken: bool) -> str:
    """The tasks a proposal will act on, one line each (chat) or a short sentence (voice)."""
    if spoken:
        named = [f"task {t.id}, {plain_name(t.title, limit=60)}" for t in tasks[:5]]
        more = f" and {len(tasks) - 5} more" if len(tasks) > 5 else ""
        return "; ".join(named) + more + "."
    return "\n".join(
        f"- **{t.id}** {escape_markdown(t.title, limit=80)} ({task_status_word(t.status)})"
        for t in tasks
    )
