"""list_tasks: the Orchestrator's tasks, filtered by status, type, droplet; limited."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from app.domain.mesh import Task, TaskState
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import CHAT_ROWS, assignee, more, table, task_is, task_mark
from app.tools.render import task_status_word as status_word
from app.tools.vocabulary import DropletId, TaskStatus, TaskType
from app.utils.markup import escape_markdown, join_words, number_word, plain_name, plural

DEFAULT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class TaskListing:
    tasks: Sequence[Task]
    total: int | None = None
    """The Orchestrator's total when `tasks` is one page of more."""
    filters: Mapping[str, Any] = field(default_factory=dict)


class ListTasksArgs(ToolArgs):
    status: TaskStatus | None = None
    assigned_droplet_id: DropletId | None = None
    task_type: TaskType | None = None
    limit: int | None = Field(default=None, ge=1, le=500)


class ListTasks(Tool[ListTasksArgs]):
    name = "list_tasks"
    description = (
        "List tasks in the Orchestrator, optionally filtered by status, task type or the "
        "droplet they are assigned to (what a droplet is working on), newest first, up to limit."
    )
    Args = ListTasksArgs
    peers = ("orchestrator",)
    slots = {
        "status": Slot("task_status"),
        "assigned_droplet_id": Slot("droplet"),
        "task_type": Slot("task_type"),
        "limit": Slot("limit"),
    }
    cues = Cues(
        nouns=(
            "tasks",
            "jobs",
            "queue",
            "backlog",
            "work items",
            "tickets",
            "deploys",
            "builds",
            "verifications",
            "deployments",
            "provisions",
            "verifies",
            "validations",
            "monitors",
            "rebuilds",
            "redeploys",
        ),
        phrases=(
            "working on",
            "what is * working on",
            "task list",
            "tasks list",
            "job list",
            "list of tasks",
            "busy with",
            "on its plate",
            "on the plate",
            "on * plate",
            "'s plate",
            "in the queue",
            "what is queued",
            "what is pending",
            "what failed",
            "which tasks",
            "what tasks",
            "how many tasks",
            "still pending",
            "still running",
            "in progress",
            "what is running",
            "what is * doing",
            "what are * doing",
            "what is it doing",
            "what are they doing",
            "'s tasks",
            "'s jobs",
            "its tasks",
            "their tasks",
            "running on",
            "what is failed",
            "what is still queued",
            "what is stuck",
            "any pending",
            "any failed",
            "any queued",
            "any running",
            "any stuck",
            "anything failed",
            "anything pending",
            "anything queued",
            "anything stuck",
            "what is still pending",
            "which ones failed",
        ),
        context=("doing", "list", "show", "display", "see"),
        entities=("task_status", "task_type", "limit", "all"),
        against=("alerts", "droplets", "create", "new", "capabilities", "capability"),
        excludes=("task", "task"),
    )
    help = HelpEntry(
        "Tasks",
        ("list failed tasks", "tasks for droplet 14", "last five deploys"),
        spoken="list tasks",
    )
    action = "list the tasks"
    done = "listed"

    async def run(self, args: ListTasksArgs, ctx: RunContext, out: Outcome) -> None:
        tasks = await ctx.mesh.orchestrator.list_tasks(
            status=args.status,
            assigned_droplet_id=args.assigned_droplet_id,
            task_type=args.task_type,
            limit=args.limit or DEFAULT_LIMIT,
            trace_id=ctx.trace_id,
        )
        out.result = TaskListing(tasks, filters=args.model_dump(exclude_none=True))
        if len(tasks) == 1:
            out.context["last_task_id"] = tasks[0].id

    def render(self, out: Outcome, channel: Channel) -> str:
        return render_tasks(out.result, channel=channel)


def filters_phrase(filters: Mapping[str, Any], *, spoken: bool) -> str:
    words: list[str] = []
    status = filters.get("status")
    if isinstance(status, str):
        words.append(plain_name(status) if spoken else escape_markdown(status.replace("_", " ")))
    task_type = filters.get("task_type")
    if isinstance(task_type, str):
        words.append(plain_name(task_type) if spoken else escape_markdown(task_type, limit=30))
    words.append("tasks")
    droplet = filters.get("assigned_droplet_id", filters.get("droplet_id"))
    if isinstance(droplet, int):
        words.append(f"for droplet {droplet}")
    return " ".join(words)


def render_tasks(listing: TaskListing, *, channel: Channel) -> str:
    """A task table (chat) or the first few tasks read out (voice), summary first."""
    tasks = list(listing.tasks)
    if not tasks:
        return f"No {filters_phrase(listing.filters, spoken=channel == 'voice')}."
    n = len(tasks)
    counts = Counter(str(t.status) for t in tasks)
    present = [(s.value.replace("_", " "), counts[s.value]) for s in TaskState if counts[s.value]]
    if channel == "voice":
        said = join_words([f"{number_word(c)} {s}" for s, c in present])
        lines = [f"{number_word(n, capital=True)} {plural(n, 'task')}: {said}."]
        lines += [f"Task {t.id}, {plain_name(t.title)}, {task_is(t.status)}." for t in tasks[:3]]
        if n > 3:
            lines.append(f"And {n - 3} more.")
        return " ".join(lines)
    rows = [
        [
            str(t.id),
            escape_markdown(t.task_type, limit=20),
            escape_markdown(t.title, limit=60),
            f"{task_mark(t.status)} {status_word(t.status)}",
            str(t.priority),
            assignee(t, spoken=False),
        ]
        for t in tasks[:CHAT_ROWS]
    ]
    grid = table(
        ["ID", "Type", "Title", "Status", "Priority", "Assignee"],
        ["---:", "---", "---", "---", "---:", "---"],
        rows,
    )
    of_total = f" (showing {n} of {listing.total})" if listing.total and listing.total > n else ""
    summary = ", ".join(f"{c} {s}" for s, c in present)
    return f"**{n} {plural(n, 'task')}**{of_total}: {summary}\n\n{grid}{more(n, CHAT_ROWS)}"
