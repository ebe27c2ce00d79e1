"""retry_tasks: failed (or cancelled) tasks run again as new tasks, linked to the originals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from app.domain.mesh import NewTask
from app.mesh.peers import PeerError, PeerRejected, PeerUnavailable
from app.tools.base import Channel, Cues, HelpEntry, Item, Outcome, Prepared, Slot, Tool, ToolArgs
from app.tools.bulk import render_items
from app.tools.bulk import with_note as _with_note
from app.tools.context import RunContext
from app.tools.selection import MAX_BULK, TooMany, describe_filter, listing, select_tasks
from app.tools.vocabulary import DropletId, TaskId, TaskType
from app.utils.markup import plural

RETRYABLE = ("failed", "cancelled")


class RetryTasksArgs(ToolArgs):
    task_ids: list[TaskId] | None = Field(default=None, min_length=1, max_length=MAX_BULK)
    status: Literal["failed"] | None = None
    droplet_id: DropletId | None = None
    task_type: TaskType | None = None


class RetryTasks(Tool[RetryTasksArgs]):
    name = "retry_tasks"
    description = (
        "Run failed tasks again: a new task per source task with the same type, title, "
        "payload and priority, linked to it (payload.retry_of). task_ids (also for one task), "
        "or status failed with optional droplet_id and task_type."
    )
    Args = RetryTasksArgs
    writes = True
    permission = "write"
    peers = ("orchestrator",)
    slots = {
        "task_ids": Slot(
            "tasks",
            question="Which tasks? Give me their numbers, or say for example **the failed "
            "deploys**.",
            spoken="Which tasks? Tell me their numbers, or say the failed deploys.",
        ),
        "status": Slot("task_status"),
        "droplet_id": Slot("droplet"),
        "task_type": Slot("task_type"),
    }
    cues = Cues(
        verbs=(
            "retry",
            "rerun",
            "re-run",
            "redo",
            "try again",
            "run again",
            "restart",
            "resubmit",
            "requeue",
            "re-queue",
            "relaunch",
            "kick again",
            "give another go",
        ),
        nouns=(
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
            "try again",
            "run again",
            "one more time",
            "another go",
            "another shot",
            "again",
            "be retried",
            "be rerun",
            "be restarted",
            "get retried",
            "bulk retry",
            "mass retry",
            "retry in bulk",
        ),
        entities=("tasks", "task", "all"),
        against=("cancel", "list", "show"),
    )
    help = HelpEntry("Retry tasks", ("retry task 2", "retry the failed deploys"))
    action = "retry those tasks"
    done = "retried"

    async def prepare(self, args: RetryTasksArgs, ctx: RunContext) -> Prepared:
        statuses = ["failed"]
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
            return Prepared(None, answer=f"That is {exc.count} {what}; narrow it down.")
        note = f"No task {', '.join(map(str, missing))}. " if missing else ""
        sources = [t for t in tasks if t.status.value in RETRYABLE]
        busy = [t for t in tasks if t.status.value not in RETRYABLE]
        if busy:
            note += (
                "Only failed or cancelled tasks are retried; "
                + ", ".join(f"task {t.id} is {t.status.value.replace('_', ' ')}" for t in busy)
                + ". "
            )
        if not sources:
            if args.task_ids:
                return Prepared(None, answer=(note + "Nothing to retry.").strip())
            return Prepared(None, answer=f"No {what}: nothing to retry.")
        if len(sources) > MAX_BULK:
            return Prepared(
                None, answer=f"That is {len(sources)} {what}; I retry at most {MAX_BULK} at once."
            )
        return Prepared(
            {"task_ids": [t.id for t in sources]},
            preview=_with_note(note, listing(sources, spoken=False)),
            spoken=_with_note(note, listing(sources, spoken=True)),
        )

    async def run(self, args: RetryTasksArgs, ctx: RunContext, out: Outcome) -> None:
        orchestrator = ctx.mesh.orchestrator
        created: list[int] = []
        for ident in args.task_ids or []:
            try:
                source = await orchestrator.get_task(ident, trace_id=ctx.trace_id)
                payload = dict(source.payload or {})
                payload["retry_of"] = source.id
                request = NewTask(
                    task_type=source.task_type,
                    title=source.title,
                    description=f"Retry of task {source.id}"
                    + (f": {source.description}" if source.description else ""),
                    priority=source.priority,
                    payload=payload,
                    created_by=f"droplet_{ctx.mesh.droplet_id}",
                )
                new = await orchestrator.create_task(request, trace_id=ctx.trace_id)
                created.append(new.task_id)
                out.items.append(Item(ident, "done", title=source.title, new_id=new.task_id))
            except PeerRejected as exc:
                out.items.append(Item(ident, "refused", message=exc.message))
            except PeerUnavailable as exc:
                out.items.append(Item(ident, "unavailable", message=exc.message))
            except PeerError as exc:
                out.items.append(Item(ident, "failed", message=exc.message))
        out.result = out.items
        if created:
            out.context["last_task_id"] = created[-1]
            out.undo = {"created": created}
        if out.items and all(i.status == "unavailable" for i in out.items):
            out.status, out.peer = "unavailable", "orchestrator"
            out.message = out.items[0].message

    def render(self, out: Outcome, channel: Channel) -> str:
        return render_items(out.items, verb="retried", channel=channel)

    def propose(self, args: RetryTasksArgs, channel: Channel) -> str:
        n = len(args.task_ids or [])
        return f"I will create {n} new {plural(n, 'task')}, one per task to retry:"

    def summary(self, args: Mapping[str, Any]) -> str:
        ids = args.get("task_ids") or []
        return f"retry {plural(len(ids), 'task')} {', '.join(map(str, ids))}" if ids else "retry"
