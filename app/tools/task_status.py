"""task_status: one task, with its history."""

from __future__ import annotations

from app.domain.mesh import Task
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import CHAT_ROWS, assignee, table, task_is, task_mark
from app.tools.render import task_status_word as status_word
from app.tools.vocabulary import TaskId
from app.utils.markup import escape_markdown, plain_name, when


class TaskStatusArgs(ToolArgs):
    task_id: TaskId


class TaskStatus(Tool[TaskStatusArgs]):
    name = "task_status"
    description = "Status and history of one task: who has it, what happened, any error."
    Args = TaskStatusArgs
    peers = ("orchestrator",)
    slots = {
        "task_id": Slot(
            "task",
            question="Which task? Give me its number, for example **task 7**.",
            spoken="Which task? Tell me its number, for example task 7.",
        )
    }
    fan_out = "task_id"
    cues = Cues(
        verbs=("check", "look up", "lookup", "track", "inspect", "find"),
        nouns=("status", "state", "progress", "history", "details", "info", "result"),
        phrases=(
            "how is",
            "how's",
            "what happened to",
            "where is",
            "is it done",
            "is it finished",
            "did it finish",
            "did it fail",
            "is it running",
            "working on task",
            "what is task * doing",
            "what is job * doing",
            "who has task",
            "who is on task",
            "tell me about task",
            "going on with",
            "up with",
            "happening with",
            "the matter with",
            "wrong with",
            "still running",
            "still pending",
            "still going",
            "still in progress",
        ),
        context=(
            "done",
            "finished",
            "complete",
            "completed",
            "running",
            "stuck",
            "pending",
            "assigned",
            "failed",
            "cancelled",
            "in progress",
            "yet",
            "doing",
            "show",
        ),
        entities=("task",),
        against=("cancel", "retry"),
        needs=("task",),
    )
    help = HelpEntry("Look up a task", ("status of task 7", "what happened to task 12?"))
    action = "look up task {task_id}"
    done = "looked up"

    async def run(self, args: TaskStatusArgs, ctx: RunContext, out: Outcome) -> None:
        task = await ctx.mesh.orchestrator.get_task(args.task_id, trace_id=ctx.trace_id)
        out.result = task
        out.context["last_task_id"] = task.id

    def render(self, out: Outcome, channel: Channel) -> str:
        return render_task(out.result, channel=channel)


def render_task(task: Task, *, channel: Channel) -> str:
    """One task with its history (oldest first)."""
    status = status_word(task.status)
    if channel == "voice":
        parts = [
            f"Task {task.id}, {plain_name(task.title)}, {task_is(task.status)}, "
            f"priority {task.priority}."
        ]
        parts.append(
            "It is not assigned yet."
            if task.assigned_droplet_id is None
            else f"It is assigned to {assignee(task, spoken=True)}."
        )
        if task.error_message:
            parts.append(f"Error: {plain_name(task.error_message, limit=120)}.")
        if task.history:
            last = task.history[-1]
            moved = f"It last moved to {status_word(last.to_status)}"
            if last.changed_at is not None:
                moved += f" at {when(last.changed_at, spoken=True)}"
            parts.append(moved + ".")
        return " ".join(parts)
    kind = escape_markdown(task.task_type, limit=30)
    who = assignee(task, spoken=False) if task.assigned_droplet_id else "not assigned yet"
    lines = [
        f"**Task {task.id}**: {escape_markdown(task.title, limit=120)}",
        "",
        f"- Status: {task_mark(task.status)} {status} · Type: {kind} · Priority: {task.priority}",
        f"- Assigned to: {who}",
    ]
    if task.created_at is not None:
        created = f"- Created: {when(task.created_at)}"
        if task.completed_at is not None:
            created += f" · Completed: {when(task.completed_at)}"
        lines.append(created)
    if task.description:
        lines.append(f"- Description: {escape_markdown(task.description, limit=300)}")
    if task.error_message:
        lines.append(f"- Error: {escape_markdown(task.error_message, limit=300)}")
    if task.trace_id:
        lines.append(f"- Trace: {escape_markdown(task.trace_id, limit=64)}")
    if task.history:
        rows = [
            [
                when(h.changed_at) if h.changed_at else "—",
                escape_markdown(h.from_status or "—", limit=20),
                escape_markdown(h.to_status, limit=20),
                escape_markdown(h.changed_by or "—", limit=30),
                escape_markdown(h.reason or "—", limit=80),
            ]
            for h in task.history[-CHAT_ROWS:]
        ]
        history = table(["When", "From", "To", "By", "Reason"], ["---"] * 5, rows)
        lines += ["", "**History**", "", history]
    return "\n".join(lines)
