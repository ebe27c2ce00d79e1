"""cancel_tasks: several tasks in one go, after one confirmation of the exact list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from app.domain.mesh import TaskState
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.tools.base import (
    Channel,
    Cues,
    HelpEntry,
    Item,
    Outcome,
    Prepared,
    Slot,
    Tool,
    ToolArgs,
)
from app.tools.bulk import render_items
from app.tools.bulk import with_note as _with_note
from app.tools.context import RunContext
from app.tools.selection import MAX_BULK, TooMany, describe_filter, listing, select_tasks
from app.tools.vocabulary import CANCELLABLE, DropletId, TaskId, TaskType
from app.utils.markup import plural


class CancelTasksArgs(ToolArgs):
    task_ids: list[TaskId] | None = Field(default=None, min_length=1, max_length=MAX_BULK)
    status: Literal["pending", "assigned"] | None = None
    droplet_id: DropletId | None = None
    task_type: TaskType | None = None


class CancelTasks(Tool[CancelTasksArgs]):
    name = "cancel_tasks"
    description = (
        "Cancel several tasks after one confirmation: either task_ids, or a filter (status "
        "pending or assigned, droplet_id: tasks for or assigned to that droplet, task_type); "
        "with no filter, every cancellable task. The exact list is shown before the yes."
    )
    Args = CancelTasksArgs
    writes = True
    permission = "write"
    peers = ("orchestrator",)
    slots = {
        "task_ids": Slot("tasks"),
        "status": Slot("task_status"),
        "droplet_id": Slot("droplet"),
        "task_type": Slot("task_type"),
    }
    cues = Cues(
        verbs=(
            "cancel",
            "kill",
            "abort",
            "stop",
            "delete",
            "drop",
            "remove",
            "terminate",
            "scrap",
            "clear",
            "purge",
            "flush",
            "nuke",
            "call off",
            "get rid of",
        ),
        nouns=(
            "tasks",
            "jobs",
            "deploys",
            "builds",
            "verifications",
            "deployments",
            "provisions",
            "verifies",
            "monitors",
            "backups",
            "tests",
        ),
        phrases=(
            "cancel all",
            "cancel every",
            "cancel everything",
            "kill all",
            "delete all",
            "clear the queue",
            "flush the queue",
            "purge the queue",
            "cancel them all",
            "cancel all of them",
            "be cancelled",
            "all cancelled",
            "be canceled",
            "be killed",
            "be aborted",
            "be stopped",
            "be dropped",
            "get cancelled",
            "bulk cancel",
            "mass cancel",
            "cancel in bulk",
        ),
        entities=("tasks", "all"),
        against=("retry", "rerun", "restart", "list", "show", "watches", "watch", "watching"),
        excludes=("watch",),
    )
    help = HelpEntry("Cancel many tasks", ("cancel all pending tasks for droplet 14",))
    action = "cancel those tasks"
    done = "cancelled"

    async def prepare(self, args: CancelTasksArgs, ctx: RunContext) -> Prepared:
        statuses = [args.status] if args.status else list(CANCELLABLE)
        what = describe_filter(
            statuses=statuses, droplet_id=args.droplet_id, task_type=args.task_type
        )
        try:
            tasks, missing = await select_tasks(
                ctx,
                task_ids=args.task_ids,
                statuses=statuses,
                droplet_id=args.droplet_id,
                task_type=args.task_type,
            )
        except TooMany as exc:
            return Prepared(None, answer=_too_many(exc.count, what))
        note = f"No task {', '.join(map(str, missing))}. " if missing else ""
        cancellable = [t for t in tasks if t.status.value in CANCELLABLE]
        finished = [t for t in tasks if t.status.value not in CANCELLABLE]
        if args.task_ids and finished:
            note += (
                f"{_ids(finished)} {'is' if len(finished) == 1 else 'are'} already past "
                "pending or assigned and can't be cancelled. "
            )
        if not cancellable:
            if args.task_ids:
                return Prepared(None, answer=(note + "Nothing to cancel.").strip())
            return Prepared(None, answer=f"No {what}: nothing to cancel.")
        if len(cancellable) > MAX_BULK:
            return Prepared(None, answer=_too_many(len(cancellable), what))
        return Prepared(
            {"task_ids": [t.id for t in cancellable]},
            preview=_with_note(note, listing(cancellable, spoken=False)),
            spoken=_with_note(note, listing(cancellable, spoken=True)),
        )

    async def run(self, args: CancelTasksArgs, ctx: RunContext, out: Outcome) -> None:
        ids = args.task_ids or []
        for ident in ids:
            try:
                cancelled = await ctx.mesh.orchestrator.cancel_task(ident, trace_id=ctx.trace_id)
                done = cancelled.status == TaskState.CANCELLED
                out.items.append(Item(ident, "done" if done else "failed"))
            except PeerRejected as exc:
                finished = exc.status_code == 400
                out.items.append(
                    Item(ident, "already_finished" if finished else "refused", message=exc.message)
                )
            except PeerNotFound as exc:
                out.items.append(Item(ident, "failed", message=exc.message))
            except PeerUnavailable as exc:
                out.items.append(Item(ident, "unavailable", message=exc.message))
            except PeerError as exc:
                out.items.append(Item(ident, "failed", message=exc.message))
        out.result = out.items
        if ids and all(i.status == "unavailable" for i in out.items):
            out.status, out.peer = "unavailable", "orchestrator"
            out.message = out.items[0].message

    def render(self, out: Outcome, channel: Channel) -> str:
        return render_items(out.items, verb="cancelled", channel=channel)

    def propose(self, args: CancelTasksArgs, channel: Channel) -> str:
        n = len(args.task_ids or [])
        return f"I will cancel {n} {plural(n, 'task')}:"

    def summary(self, args: Mapping[str, Any]) -> str:
        ids = args.get("task_ids") or []
        if ids:
            return f"cancel {len(ids)} {plural(len(ids), 'task')}: {', '.join(map(str, ids))}"
        return "cancel several tasks"


def _ids(tasks: Any) -> str:
    return "Task " + ", ".join(str(t.id) for t in tasks)


def _too_many(count: int, what: str) -> str:
    return (
        f"That is {count} {what}; I cancel at most {MAX_BULK} at once. Narrow it down, for "
        "example by droplet or type."
    )
