"""create_task: a new task in the Orchestrator for one droplet (a write: proposed first)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.mesh import CreatedTask, NewTask
from app.mesh.catalogue import known_name
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import droplet_ref
from app.tools.render import task_status_word as status_word
from app.tools.vocabulary import DropletId, TaskType
from app.utils.markup import escape_markdown, join_words, markdown_link, plain_name

DEFAULT_PRIORITY = 5
"""Priority when none is said: "normal". Shown in the confirmation, so it is easy to change."""
# "droplet 40 - verification needed": a task named by its noun and a need, without a verb.
NEEDED_NOUNS = (
    "verification", "verify", "validation", "deploy", "deployment", "redeploy", "build",
    "rebuild", "provisioning", "monitoring", "provision",
)  # fmt: skip
TITLE_VERB: Mapping[str, str] = {
    "verify": "Verify",
    "build": "Build",
    "deploy": "Deploy",
    "monitor": "Monitor",
    "provision": "Provision",
    "custom": "Custom task for",
}


class TaskPayload(BaseModel):
    """What the task is about; other keys the operator gives (branch: main) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    target_droplet_id: DropletId
    code_url: str | None = Field(default=None, max_length=2000)
    spec_url: str | None = Field(default=None, max_length=2000)


class CreateTaskArgs(ToolArgs):
    task_type: TaskType
    payload: TaskPayload
    priority: int = Field(default=DEFAULT_PRIORITY, ge=1, le=10, description="1 highest, 10 lowest")
    title: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=5000)
    required_capability: str | None = Field(default=None, min_length=1, max_length=100)

    @property
    def effective_title(self) -> str:
        return self.title or default_title(self.task_type, self.payload.target_droplet_id)


def default_title(task_type: str, droplet_id: int) -> str:
    return f"{TITLE_VERB.get(task_type, task_type.capitalize())} droplet {droplet_id}"


@dataclass(frozen=True, slots=True)
class CreatedTaskReport:
    created: CreatedTask
    request: NewTask


class CreateTask(Tool[CreateTaskArgs]):
    name = "create_task"
    description = (
        "Create a task in the Orchestrator for one droplet (payload.target_droplet_id). "
        "Priority 1 is the highest, 10 the lowest (default 5). Needs the operator's yes."
    )
    Args = CreateTaskArgs
    writes = True
    permission = "write"
    peers = ("orchestrator",)
    slots = {
        "task_type": Slot(
            "task_type",
            question="What kind of task? **verify**, **build**, **deploy**, **monitor**, "
            "**provision** or **custom**.",
            spoken="What kind of task? verify, build, deploy, monitor, provision or custom.",
        ),
        "payload.target_droplet_id": Slot(
            "droplet",
            question="Which droplet is the task for? Give me its number or name, "
            "for example **droplet 14**.",
            spoken="Which droplet is the task for? Tell me its number or name.",
        ),
        "priority": Slot("priority", default=DEFAULT_PRIORITY),
        "payload.code_url": Slot("code_url"),
        "payload.spec_url": Slot("spec_url"),
        "payload": Slot("pairs"),
        "title": Slot("title"),
        "description": Slot("description"),
        "required_capability": Slot("capability"),
    }
    fan_out = "payload.target_droplet_id"
    cues = Cues(
        verbs=(
            "create",
            "add",
            "make",
            "schedule",
            "queue",
            "enqueue",
            "submit",
            "launch",
            "kick off",
            "open",
            "file",
            "raise",
            "trigger",
            "spin up",
            "set up",
            "fire off",
            "initiate",
            "request",
            "issue",
            "put in",
            "verify",
            "validate",
            "build",
            "rebuild",
            "deploy",
            "redeploy",
            "provision",
            "monitor",
            "verified",
            "validated",
            "deployed",
            "redeployed",
            "rebuilt",
            "provisioned",
            "built",
        ),
        nouns=("ticket", "work item"),
        phrases=(
            "a job",
            "task for",
            "job for",
            "a deploy",
            "a build",
            "a verification",
            "a deployment",
            "a rebuild",
            "a redeploy",
            "a provision",
            "a provisioning",
            "a monitoring",
            "a validation",
            "needs a",
            "need a",
            "run a",
            "start a",
            "kick off a",
            *(
                f"{noun} {need}"
                for noun in NEEDED_NOUNS
                for need in ("needed", "required", "wanted", "requested")
            ),
            *(f"{need} {noun}" for noun in NEEDED_NOUNS for need in ("needs", "need")),
            "verification for",
            "deployment for",
            "deploy for",
            "build for",
            "provisioning for",
            "monitoring for",
            "validation for",
            "verification of droplet",
            "validation of droplet",
            "deployment of droplet",
            "deploy of droplet",
            "build of droplet",
            "rebuild of droplet",
            "redeploy of droplet",
            "provisioning of droplet",
            "a verify task",
            "a verification task",
            "a validation task",
            "a build task",
            "a deploy task",
            "a deployment task",
            "a monitor task",
            "a monitoring task",
            "a provision task",
            "a provisioning task",
            "a custom task",
            "a rebuild task",
            "a redeploy task",
            "an verify task",
            "an verification task",
            "an validation task",
            "an build task",
            "an deploy task",
            "an deployment task",
            "an monitor task",
            "an monitoring task",
            "an provision task",
            "an provisioning task",
            "an custom task",
            "an rebuild task",
            "an redeploy task",
            "new verify task",
            "new verification task",
            "new validation task",
            "new build task",
            "new deploy task",
            "new deployment task",
            "new monitor task",
            "new monitoring task",
            "new provision task",
            "new provisioning task",
            "new custom task",
            "new rebuild task",
            "new redeploy task",
            "verify task for",
            "verification task for",
            "validation task for",
            "build task for",
            "deploy task for",
            "deployment task for",
            "monitor task for",
            "monitoring task for",
            "provision task for",
            "provisioning task for",
            "custom task for",
            "rebuild task for",
            "redeploy task for",
            "verify job for",
            "verification job for",
            "validation job for",
            "build job for",
            "deploy job for",
            "deployment job for",
            "monitor job for",
            "monitoring job for",
            "provision job for",
            "provisioning job for",
            "custom job for",
            "rebuild job for",
            "redeploy job for",
        ),
        entities=("task_type", "priority", "code_url", "spec_url", "title"),
        against=(
            "any",
            "pending",
            "queued",
            "what was",
            "when was",
            "when did",
            "tasks",
            "jobs",
            "list",
            "show",
            "status",
            "failed",
            "cancel",
            "retry",
            "finished",
            "done",
            "complete",
            "completed",
            "succeeded",
            "green",
            "passed",
        ),
    )
    help = HelpEntry("Create a task", ("create a verification task for droplet 14, priority 3",))
    action = "create the task"
    done = "created"

    async def run(self, args: CreateTaskArgs, ctx: RunContext, out: Outcome) -> None:
        payload: dict[str, Any] = args.payload.model_dump(exclude_none=True)
        request = NewTask(
            task_type=args.task_type,
            title=args.effective_title,
            description=args.description,
            required_capability=args.required_capability,
            priority=args.priority,
            payload=payload,
            created_by=f"droplet_{ctx.mesh.droplet_id}",
        )
        created = await ctx.mesh.orchestrator.create_task(request, trace_id=ctx.trace_id)
        out.result = CreatedTaskReport(created=created, request=request)
        out.context["last_task_id"] = created.task_id
        out.context["last_droplet_id"] = args.payload.target_droplet_id
        out.undo = {"created": [created.task_id]}  # "undo": cancel it while still pending

    def render(self, out: Outcome, channel: Channel) -> str:
        report: CreatedTaskReport = out.result
        created, request = report.created, report.request
        status = status_word(created.status)
        if channel == "voice":
            return (
                f"Done. I created a {plain_name(request.task_type)} task, number "
                f"{created.task_id}. It is {status}."
            )
        return (
            f"✅ Created task **{created.task_id}**: {escape_markdown(request.task_type)} "
            f"'{escape_markdown(request.title, limit=120)}', priority {request.priority} "
            f"(status {status})."
        )

    def propose(self, args: CreateTaskArgs, channel: Channel) -> str:
        spoken = channel == "voice"
        target = args.payload.target_droplet_id
        who = droplet_ref(target, known_name(target), spoken=spoken)
        extras: list[str] = []
        if spoken:
            text = (
                f"I will create a {plain_name(args.task_type)} task called "
                f"{plain_name(args.effective_title, limit=120)}, priority {args.priority}, "
                f"for {who}"
            )
            if args.payload.code_url:
                extras.append("a code link")
            if args.payload.spec_url:
                extras.append("a spec link")
            if args.required_capability:
                extras.append(f"capability {plain_name(args.required_capability)}")
            return text + (f", with {join_words(extras)}." if extras else ".")
        text = (
            f"I will create a **{escape_markdown(args.task_type)}** task "
            f"'{escape_markdown(args.effective_title, limit=200)}' with priority {args.priority} "
            f"for {who}"
        )
        for value, label in ((args.payload.code_url, "code"), (args.payload.spec_url, "spec")):
            if value:
                extras.append(f"{label}: {markdown_link(value)}")
        if args.required_capability:
            extras.append(f"needs capability {escape_markdown(args.required_capability)}")
        if args.description:
            extras.append(f"description: {escape_markdown(args.description, limit=200)}")
        extras += [
            f"{escape_markdown(str(k), limit=40)}: {escape_markdown(str(v), limit=100)}"
            for k, v in (args.payload.model_extra or {}).items()
        ]
        return text + (f" ({'; '.join(extras)})." if extras else ".")

    def summary(self, args: Mapping[str, Any]) -> str:
        payload = args.get("payload")
        target = payload.get("target_droplet_id") if isinstance(payload, Mapping) else None
        kind = str(args.get("task_type") or "new")
        parts = [f"create a {kind} task"]
        if "priority" in args:
            parts.append(f"priority {args['priority']}")
        if isinstance(target, int):
            parts.append(f"target: droplet {target}" + _name_suffix(target))
        return ", ".join(parts)

    def question(self, missing: Any, channel: Channel) -> str:
        return super().question(missing, channel)


def _name_suffix(droplet_id: int) -> str:
    name = known_name(droplet_id)
    return f", {name}" if name else ""
