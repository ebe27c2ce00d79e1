"""cancel_task: cancel one pending or assigned task (a write: proposed first)."""

from __future__ import annotations

from app.domain.mesh import CancelledTask
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import task_status_word as status_word
from app.tools.vocabulary import TaskId


class CancelTaskArgs(ToolArgs):
    task_id: TaskId


class CancelTask(Tool[CancelTaskArgs]):
    name = "cancel_task"
    description = "Cancel one pending or assigned task. Needs the operator's yes."
    Args = CancelTaskArgs
    writes = True
    permission = "write"
    peers = ("orchestrator",)
    slots = {
        "task_id": Slot(
            "task",
            question="Which task? Give me its number, for example **task 7**.",
            spoken="Which task? Tell me its number, for example task 7.",
        )
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
            "revoke",
            "call off",
            "pull",
            "get rid of",
            "withdraw",
            "cancelled",
            "canceled",
            "nuke",
        ),
        phrases=(
            "be cancelled",
            "be canceled",
            "be killed",
            "be aborted",
            "be stopped",
            "be dropped",
            "get cancelled",
        ),
        entities=("task",),
        against=(
            "all",
            "every",
            "tasks",
            "jobs",
            "retry",
            "droplet",
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
        excludes=("tasks", "watch"),
    )
    help = HelpEntry("Cancel a task", ("cancel task 7", "cancel it"))
    action = "cancel task {task_id}"
    done = "cancelled"

    async def run(self, args: CancelTaskArgs, ctx: RunContext, out: Outcome) -> None:
        cancelled = await ctx.mesh.orchestrator.cancel_task(args.task_id, trace_id=ctx.trace_id)
        out.result = cancelled
        out.context["last_task_id"] = cancelled.task_id

    def render(self, out: Outcome, channel: Channel) -> str:
        cancelled: CancelledTask = out.result
        status = status_word(cancelled.status)
        if channel == "voice":
            return f"Task {cancelled.task_id} is {status}."
        return f"🚫 Task **{cancelled.task_id}** is {status}."

    def propose(self, args: CancelTaskArgs, channel: Channel) -> str:
        if channel == "voice":
            return f"I will cancel task {args.task_id}."
        return f"I will cancel task **{args.task_id}**."
