"""list_watches: the operator's active watches."""

from __future__ import annotations

from app.domain.watch import Watch
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Tool, ToolArgs
from app.tools.context import RunContext
from app.utils.markup import number_word, plural, when


class ListWatchesArgs(ToolArgs):
    pass


class ListWatches(Tool[ListWatchesArgs]):
    name = "list_watches"
    description = "The operator's active watches: what will be notified, and until when."
    Args = ListWatchesArgs
    cues = Cues(
        nouns=("watches", "watchlist", "subscriptions", "notifications i set"),
        phrases=(
            "what am i watching",
            "what i am watching",
            "what i am tracking",
            "what i am subscribed to",
            "what i watch",
            "what we are watching",
            "what are we watching",
            "what are you watching",
            "what am i tracking",
            "my watches",
            "list my watches",
            "show my watches",
            "active watches",
            "what will you tell me",
            "what are you keeping an eye on",
            "what am i subscribed to",
            "which watches",
        ),
        against=("stop", "cancel", "unwatch"),
    )
    help = HelpEntry("Your watches", ("what am I watching?",), spoken="list your watches")
    action = "list your watches"
    done = "listed"

    async def run(self, args: ListWatchesArgs, ctx: RunContext, out: Outcome) -> None:
        if ctx.watches is None:
            # Not an outage: this droplet keeps no watches (no store), so retrying won't help.
            out.status, out.message = "invalid", "watches are not kept on this droplet"
            return
        out.result = await ctx.watches.active(owner=str(ctx.caller.identity))

    def render(self, out: Outcome, channel: Channel) -> str:
        watches: list[Watch] = out.result
        n = len(watches)
        if not watches:
            return (
                "You are not watching anything. Say, for example, tell me when droplet 16 is back."
            )
        if channel == "voice":
            said = "; ".join(f"when {w.describe()}" for w in watches[:5])
            count = f"{number_word(n, capital=True)} {plural(n, 'watch', 'watches')}"
            return f"{count}: I'll tell you {said}."
        lines = [f"- **{w.id}**: when {w.describe()} (until {when(w.expires_at)})" for w in watches]
        return f"**{n} {plural(n, 'watch', 'watches')}**:\n\n" + "\n".join(lines)
