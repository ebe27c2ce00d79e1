"""droplet_capabilities: what one droplet can do, as it registered with the Orchestrator.

Added as one module (plus its corpus rows) to show what adding a tool takes.
"""

from __future__ import annotations

from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.droplet_status import DropletReport
from app.tools.render import droplet_ref, name_list, peer_display, unavailable_note, with_note
from app.tools.vocabulary import DropletId
from app.utils.markup import escape_markdown, number_word, plural


class DropletCapabilitiesArgs(ToolArgs):
    droplet_id: DropletId


class DropletCapabilities(Tool[DropletCapabilitiesArgs]):
    name = "droplet_capabilities"
    description = (
        "What one droplet can do: the capabilities it registered with the Orchestrator "
        "(the work it can be assigned)."
    )
    Args = DropletCapabilitiesArgs
    peers = ("orchestrator",)
    slots = {
        "droplet_id": Slot(
            "droplet",
            question="Which droplet? Give me its number or name, for example **droplet 16**.",
            spoken="Which droplet? Tell me its number or name, for example droplet 16.",
        )
    }
    fan_out = "droplet_id"
    cues = Cues(
        nouns=("capabilities", "capability", "skills", "features", "abilities"),
        phrases=(
            "what can it do",
            "what does it do",
            "what is it capable of",
            "can do",
            "able to do",
            "what does it offer",
            "what does it support",
            "capable of",
            "what work can",
            "what kind of work",
            "good for",
            "what is it for",
            "what can * do",
            "what does * do",
            "what is * capable of",
            "what does * support",
            "what does * offer",
            "what * can do",
            "what is * for",
            "what work can * do",
            "capabilities of",
        ),
        context=("offer", "offers", "support", "supports", "handle", "handles"),
        entities=("droplet",),
        against=("you", "task", "tasks"),
        needs=("droplet",),
        excludes=("task_status",),
    )
    help = HelpEntry(
        "What a droplet can do",
        ("what can droplet 16 do?",),
        spoken="say what a droplet can do",
    )
    action = "look up what droplet {droplet_id} can do"
    done = "looked up"

    async def run(self, args: DropletCapabilitiesArgs, ctx: RunContext, out: Outcome) -> None:
        droplet, failures = await ctx.mesh.directory.get(args.droplet_id, trace_id=ctx.trace_id)
        out.result = DropletReport(args.droplet_id, droplet, list(failures))
        out.context["last_droplet_id"] = args.droplet_id
        orchestrator_failed = any(f.peer == "orchestrator" for f in failures)
        if droplet is None:
            out.status = "unavailable" if failures else "not_found"
            out.message = (
                "; ".join(f"{f.peer}: {f.message}" for f in failures)
                or f"droplet {args.droplet_id} is not known to the mesh"
            )
        elif orchestrator_failed:
            # Capabilities come from the Orchestrator only: without it there is nothing to say.
            out.status = "unavailable"
            out.peer = "orchestrator"
            out.message = next(f.message for f in failures if f.peer == "orchestrator")

    def render(self, out: Outcome, channel: Channel) -> str:
        report: DropletReport = out.result
        d = report.droplet
        assert d is not None
        unavailable = [peer_display(f.peer) for f in report.failures]
        note = unavailable_note(unavailable, known_from=["Orchestrator"], channel=channel)
        who = droplet_ref(d.id, d.name, spoken=channel == "voice")
        caps = list(d.capabilities)
        if not caps:
            body = f"{who} registered no capabilities, so no work is routed to it by capability."
        elif channel == "voice":
            count = f"{number_word(len(caps))} {plural(len(caps), 'thing')}"
            body = f"{who} can do {count}: {name_list(caps, cap=8)}."
        else:
            items = "\n".join(f"- {escape_markdown(c, limit=80)}" for c in caps)
            body = f"**{who}** can do:\n\n{items}"
        return with_note(note, body, channel)
