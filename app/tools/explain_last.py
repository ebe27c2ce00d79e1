"""explain_last: "why?": what the previous turn did, and how it was decided."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.tools.base import Channel, Cues, HelpEntry, Outcome, Tool, ToolArgs
from app.tools.context import RunContext
from app.utils.markup import escape_markdown, plain_name

LAST_TURN = "last_turn"
"""The session context key where the service keeps the previous turn's explanation."""


class ExplainLastArgs(ToolArgs):
    pass


class ExplainLast(Tool[ExplainLastArgs]):
    name = "explain_last"
    description = (
        "Explain the previous turn: which planner and how confident it was, each tool call "
        "with its arguments and outcome, each peer it called, and the trace id."
    )
    Args = ExplainLastArgs
    permission = "read"
    cues = Cues(
        verbs=("explain",),
        phrases=(
            "why",
            "why did you do that",
            "why that",
            "what did you just do",
            "what did you do",
            "show me the plan",
            "show the plan",
            "what was the plan",
            "how did you decide",
            "how did you get that",
            "explain that",
            "what happened there",
            "walk me through",
            "what did you call",
            "which tools did you use",
            "show your work",
            "debug that",
            "which tools did you call",
            "what did you just call",
            "what just happened",
            "what did you run",
            "why did you",
            "how did you pick",
            "which tools did you",
            "what tools did you",
            "what did you run",
            "why did that happen",
            "what was that",
            "what args did you use",
            "what arguments did you use",
            "what parameters did you use",
            "which arguments",
            "which args",
            "what did you use",
            "how did you come up with",
            "how did you arrive at",
            "how did you figure",
            "how did you work that out",
            "what made you",
            "your reasoning",
            "the reasoning",
            "how come you",
            "what parameters did you",
            "what arguments did you",
            "what did you pass",
            "what did you send",
            "break down what you",
            "what did you base that on",
            "what was that based on",
            "why did you choose",
            "why did you pick",
        ),
        against=("droplet", "task", "tasks"),
    )
    help = HelpEntry("Explain the last answer", ("why?", "what did you just do?"))
    action = "explain the last turn"
    done = "explained"

    async def run(self, args: ExplainLastArgs, ctx: RunContext, out: Outcome) -> None:
        last = ctx.session.get(LAST_TURN)
        out.result = last if isinstance(last, Mapping) else None

    def render(self, out: Outcome, channel: Channel) -> str:
        last: Mapping[str, Any] | None = out.result
        if not last:
            return "There is no earlier turn in this conversation to explain."
        planner = str(last.get("planner", "rules"))
        confidence = last.get("confidence")
        conf = f" with confidence {confidence:.2f}" if isinstance(confidence, float) else ""
        calls = [c for c in last.get("calls", []) if isinstance(c, Mapping)]
        said = str(last.get("text", ""))
        if channel == "voice":
            tools = ", ".join(plain_name(str(c.get("tool", "")).replace("_", " ")) for c in calls)
            body = f"I understood {plain_name(said, limit=80)} with the {planner} planner{conf}."
            if tools:
                body += f" I used: {tools}."
            else:
                body += " I called no tool."
            return body
        lines = [
            f"**Last turn**: “{escape_markdown(said, limit=200)}”",
            "",
            f"- Planner: **{escape_markdown(planner)}**{conf}",
        ]
        for call in calls:
            args = ", ".join(
                f"{escape_markdown(str(k))}={escape_markdown(str(v), limit=60)}"
                for k, v in (call.get("args") or {}).items()
            )
            peers = ", ".join(str(p) for p in call.get("peers", []))
            timing = call.get("duration_ms")
            took = f", {timing:.0f} ms" if isinstance(timing, int | float) else ""
            via = f" via {escape_markdown(peers)}" if peers else ""
            lines.append(
                # Inside a code span nothing is escaped: drop backticks instead.
                f"- `{str(call.get('tool')).replace('`', '')[:64]}`({args}): "
                f"{escape_markdown(str(call.get('status')))}{via}{took}"
            )
        if not calls:
            lines.append("- No tool was called.")
        if last.get("trace_id"):
            lines.append(f"- Trace: `{str(last['trace_id']).replace('`', '')[:64]}`")
        return "\n".join(lines)
