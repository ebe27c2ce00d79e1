"""help: what this assistant can do, with examples, built from every tool's own help entry."""

from __future__ import annotations

from collections.abc import Sequence

from app.tools.base import Channel, Cues, HelpEntry, Outcome, Tool, ToolArgs
from app.tools.context import RunContext
from app.utils.markup import join_words


class HelpArgs(ToolArgs):
    pass


class Help(Tool[HelpArgs]):
    name = "help"
    description = "What this assistant can do, with examples."
    Args = HelpArgs
    permission = None
    cues = Cues(
        nouns=("help", "commands", "options", "features", "manual", "instructions"),
        phrases=(
            "what can you do",
            "what can this bot do",
            "what can i do",
            "what can i ask",
            "what do you do",
            "how do i use",
            "how does this work",
            "how do you work",
            "what are you",
            "who are you",
            "what are my options",
            "show me what you can do",
            "what should i say",
            "what can i say",
            "how can you help",
            "what do you support",
            "get started",
            "new on call",
            "i'm new",
            "i am new",
            "list commands",
            "what you can do",
            "what do you understand",
            "help me with",
            "what kind of stuff",
            "what kind of things",
            "what sort of things",
            "what sort of stuff",
            "what are you good for",
            "what are you able to do",
        ),
        context=("understand", "know", "support"),
    )
    action = "answer"

    def __init__(self, entries: Sequence[HelpEntry] = ()) -> None:
        self._entries = tuple(entries)

    async def run(self, args: HelpArgs, ctx: RunContext, out: Outcome) -> None:
        out.result = None

    def render(self, out: Outcome, channel: Channel) -> str:
        if channel == "voice":
            things = join_words([e.can for e in self._entries])
            example = self._entries[1].examples[0] if len(self._entries) > 1 else "help"
            stop = "" if example.endswith(("?", ".", "!")) else "."
            return (
                f"I can {things}. For example, say: {example}{stop} "
                "I always ask before changing anything."
            )
        lines = ["Here is what I can do:", ""]
        for entry in self._entries:
            examples = ", ".join(f'"{e}"' for e in entry.examples)
            lines.append(f"- **{entry.title}**: {examples}")
        lines += [
            "",
            "I ask before changing anything: reply **yes** to go ahead or **no** to drop it.",
        ]
        return "\n".join(lines)
