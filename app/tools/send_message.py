"""send_message: a message to another droplet, relayed by the Orchestrator (a write)."""

from __future__ import annotations

from pydantic import Field

from app.domain.mesh import SentMessage
from app.mesh.catalogue import known_name
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import droplet_ref
from app.tools.vocabulary import DropletId
from app.utils.markup import escape_markdown, plain_name


class SendMessageArgs(ToolArgs):
    target_droplet_id: DropletId
    message: str = Field(min_length=1, max_length=5000)


class SendMessage(Tool[SendMessageArgs]):
    name = "send_message"
    description = (
        "Send a message to another droplet through the Orchestrator (the text only, without "
        "lead-ins like 'tell it that'). Needs the operator's yes."
    )
    Args = SendMessageArgs
    writes = True
    permission = "write"
    peers = ("orchestrator",)
    slots = {
        "target_droplet_id": Slot(
            "droplet",
            question="Which droplet should get it? Give me its number or name, "
            "for example **droplet 18**.",
            spoken="Which droplet should get it? Tell me its number or name.",
        ),
        "message": Slot(
            "message", question="What should the message say?", spoken="What should it say?"
        ),
    }
    cues = Cues(
        verbs=(
            "tell",
            "message",
            "msg",
            "send",
            "notify",
            "dm",
            "say",
            "let know",
            "inform",
            "write to",
            "relay",
            "forward",
            "remind",
            "ask",
            "ping",
            "shoot",
            "drop a line",
            "broadcast",
            "text",
            "pass on",
            "pass along",
            "fyi",
            "post",
        ),
        nouns=("message", "note", "heads up", "word"),
        phrases=(
            "know that",
            "a message to",
            "a message for",
            "a note to",
            "message to",
            "word to",
            "let * know",
            "give * a heads up",
            "give * heads up",
            "drop * a line",
            "drop * a note",
            "drop * a quick line",
            "drop * a quick note",
            "shoot * a note",
            "shoot * a message",
            "pass * on to",
            "pass * along to",
            "send * a note",
            "send * a message",
        ),
        entities=("message",),
        against=("tasks", "task", "alerts", "status"),
        to_someone=True,
    )
    help = HelpEntry("Message a droplet", ("tell droplet 18 the deploy is done",))
    action = "send the message"
    done = "sent"

    async def run(self, args: SendMessageArgs, ctx: RunContext, out: Outcome) -> None:
        out.result = await ctx.mesh.orchestrator.send(
            args.target_droplet_id,
            "command",
            {"message": args.message, "from": f"droplet-{ctx.mesh.droplet_id}"},
            trace_id=ctx.trace_id,
        )
        out.context["last_droplet_id"] = args.target_droplet_id

    def render(self, out: Outcome, channel: Channel) -> str:
        sent: SentMessage = out.result
        who = droplet_ref(sent.target_droplet_id, sent.target_name, spoken=channel == "voice")
        if channel == "voice":
            return (
                f"Message sent to {who}."
                if sent.delivered
                else f"The message to {who} was not delivered."
            )
        if not sent.delivered:
            return f"⚠️ The Orchestrator accepted the message but could not deliver it to {who}."
        return f"📨 Sent your message to {who}."

    def propose(self, args: SendMessageArgs, channel: Channel) -> str:
        target = args.target_droplet_id
        who = droplet_ref(target, known_name(target), spoken=channel == "voice")
        if channel == "voice":
            return f"I will send {who} this message: {plain_name(args.message, limit=200)}."
        return f"I will send {who} this message: “{escape_markdown(args.message, limit=500)}”."
