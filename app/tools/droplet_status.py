"""droplet_status: the health and details of one droplet."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.mesh import Droplet
from app.mesh.directory import PeerFailure
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import (
    SOURCE_NAMES,
    capabilities,
    droplet_is,
    heartbeat,
    known_from,
    mark,
    name_list,
    peer_display,
    unavailable_note,
    with_note,
)
from app.tools.vocabulary import DropletId
from app.utils.markup import escape_markdown, markdown_link, plain_name


@dataclass(frozen=True, slots=True)
class DropletReport:
    """One droplet, or None when no reachable peer knows it."""

    droplet_id: int
    droplet: Droplet | None
    failures: list[PeerFailure]


class DropletStatusArgs(ToolArgs):
    droplet_id: DropletId


class DropletStatus(Tool[DropletStatusArgs]):
    name = "droplet_status"
    description = "Health and details of one droplet: status, last heartbeat, capabilities, load."
    Args = DropletStatusArgs
    peers = ("orchestrator", "registry")
    slots = {
        "droplet_id": Slot(
            "droplet",
            question="Which droplet? Give me its number or name, for example **droplet 14**.",
            spoken="Which droplet? Tell me its number or name, for example droplet 14.",
        )
    }
    fan_out = "droplet_id"
    cues = Cues(
        # "ping droplet 5" with nothing to say is a liveness check; with a text, a message.
        verbs=("check", "inspect", "look at", "examine", "describe", "ping"),
        nouns=(
            "status",
            "health",
            "healthy",
            "state",
            "details",
            "info",
            "information",
            "heartbeat",
            "heartbeats",
            "uptime",
            "load",
        ),
        phrases=(
            "how is",
            "how are",
            "how's",
            "is it up",
            "is it down",
            "is it healthy",
            "is it ok",
            "is it okay",
            "is it alive",
            "is it running",
            "is it working",
            "is up",
            "is down",
            "up and running",
            "doing ok",
            "doing okay",
            "tell me about",
            "last heartbeat",
            "details of",
            "info on",
            "how is it doing",
            "going on with",
            "up with",
            "happening with",
            "the matter with",
            "wrong with",
        ),
        context=(
            "up",
            "down",
            "alive",
            "ok",
            "okay",
            "fine",
            "running",
            "working",
            "online",
            "offline",
            "responding",
            "reachable",
            "show",
            "display",
        ),
        entities=("droplet",),
        against=(
            "tasks",
            "task",
            "alerts",
            "capabilities",
            "capability",
            "can do",
            "offer",
            "working on",
        ),
        needs=("droplet",),
        excludes=("message", "limit"),
    )
    help = HelpEntry("Check a droplet", ("is droplet 14 healthy?", "status of droplets 1 and 10"))
    action = "check droplet {droplet_id}"
    done = "checked"

    async def run(self, args: DropletStatusArgs, ctx: RunContext, out: Outcome) -> None:
        droplet, failures = await ctx.mesh.directory.get(args.droplet_id, trace_id=ctx.trace_id)
        out.result = DropletReport(args.droplet_id, droplet, list(failures))
        out.context["last_droplet_id"] = args.droplet_id
        if failures:
            out.peer = ", ".join(f.peer for f in failures)
            out.message = "; ".join(f"{f.peer}: {f.message}" for f in failures)
        if droplet is None:
            if failures:
                out.status = "unavailable"
            else:
                out.status = "not_found"
                out.message = f"droplet {args.droplet_id} is not known to the mesh"
        elif droplet.sources == ["catalogue"]:
            out.status = "degraded"

    def render(self, out: Outcome, channel: Channel) -> str:
        report: DropletReport = out.result
        unavailable = [peer_display(f.peer) for f in report.failures]
        d = report.droplet
        note = unavailable_note(
            unavailable, known_from=known_from([d] if d else [], unavailable), channel=channel
        )
        if d is None:
            return with_note(note, f"No reachable peer knows droplet {report.droplet_id}.", channel)
        if channel == "voice":
            parts = [f"{plain_name(d.name)}, droplet {d.id}, is {droplet_is(d.status)}."]
            if d.seconds_since_heartbeat is not None or d.last_seen is not None:
                parts.append(f"Its last heartbeat was {heartbeat(d, spoken=True)}.")
            if d.capabilities:
                parts.append(f"It offers {name_list(list(d.capabilities), cap=4)}.")
            return with_note(note, " ".join(parts), channel)
        lines = [
            f"**{escape_markdown(d.name, limit=80)}** (droplet {d.id}): "
            f"{mark(d.status)} {escape_markdown(d.status)}",
            "",
            f"- Last heartbeat: {heartbeat(d, spoken=False)}",
        ]
        for label, value in (("Steward", d.steward), ("Role", d.role), ("Version", d.version)):
            if value:
                lines.append(f"- {label}: {escape_markdown(value, limit=80)}")
        if d.endpoint:
            lines.append(f"- Endpoint: {markdown_link(d.endpoint)}")
        lines.append(f"- Capabilities: {capabilities(d.capabilities, limit=20)}")
        load = [
            f"{label} {value:.0f}%"
            for label, value in (("CPU", d.cpu), ("memory", d.mem), ("disk", d.disk))
            if value is not None
        ]
        if load:
            lines.append(f"- Load: {' · '.join(load)}")
        if d.sources:
            lines.append(f"- Known to: {', '.join(SOURCE_NAMES.get(s, s) for s in d.sources)}")
        return with_note(note, "\n".join(lines), channel)
