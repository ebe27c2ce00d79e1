"""system_alerts: recent warnings and worse: droplets going down, failed tasks, peers lost."""

from __future__ import annotations

from pydantic import Field

from app.domain.mesh import MeshEvent
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import CHAT_ROWS, alert_line, more
from app.utils.markup import number_word, plain_name, plural

DEFAULT_LIMIT = 10


class SystemAlertsArgs(ToolArgs):
    limit: int | None = Field(default=None, ge=1, le=100)


class SystemAlerts(Tool[SystemAlertsArgs]):
    name = "system_alerts"
    description = (
        "Recent alerts: droplets going down or recovering, missed heartbeats, failed tasks, "
        "unreachable peers; newest first, up to limit."
    )
    Args = SystemAlertsArgs
    slots = {"limit": Slot("limit")}
    cues = Cues(
        nouns=(
            "alerts",
            "alert",
            "warnings",
            "warning",
            "alarms",
            "incidents",
            "incident",
            "notifications",
            "errors",
            "problems",
            "issues",
            "events",
            "pages",
            "outages",
            "outage",
            "failures",
            "alarming",
            "alert",
        ),
        phrases=(
            "anything wrong",
            "something wrong",
            "what is wrong",
            "what's wrong",
            "what went wrong",
            "anything broken",
            "anything on fire",
            "any fires",
            "latest alerts",
            "recent alerts",
            "system alerts",
            "any problems",
            "any issues",
            "what is broken",
            "anything broken",
            "what broke",
            "any outages",
            "what happened",
            "went down",
            "go down",
            "gone down",
            "went offline",
            "anything alarming",
            "what fired",
        ),
        context=("fired", "triggered", "raised", "show", "list"),
        entities=("limit",),
        against=("tasks", "task"),
    )
    help = HelpEntry("Alerts", ("any alerts?", "the last five alerts"), spoken="read the alerts")
    action = "get the alerts"
    done = "shown"

    async def run(self, args: SystemAlertsArgs, ctx: RunContext, out: Outcome) -> None:
        out.result = ctx.mesh.alerts(args.limit or DEFAULT_LIMIT)

    def render(self, out: Outcome, channel: Channel) -> str:
        events: list[MeshEvent] = sorted(out.result, key=lambda e: (e.verified, e.at), reverse=True)
        n = len(events)
        if channel == "voice":
            if not events:
                return "No alerts. All quiet."
            said = [
                f"{e.severity.capitalize()}{'' if e.verified else ', unverified'}: "
                f"{plain_name(e.summary, limit=120)}."
                for e in events[:3]
            ]
            tail = [f"And {n - 3} more."] if n > 3 else []
            return " ".join([f"{number_word(n, capital=True)} {plural(n, 'alert')}.", *said, *tail])
        if not events:
            return "No alerts. All quiet. ✅"
        items = "\n".join(f"- {alert_line(e)}" for e in events[:CHAT_ROWS])
        return f"**{n} {plural(n, 'alert')}**, newest first:\n\n{items}{more(n, CHAT_ROWS)}"
