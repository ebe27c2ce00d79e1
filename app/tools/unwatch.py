"""unwatch: stop watching (one watch, those on a task or droplet, or all)."""

from __future__ import annotations

from pydantic import Field

from app.domain.watch import Watch, WatchFilter
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.vocabulary import DropletId, TaskId
from app.utils.markup import plural


class UnwatchArgs(ToolArgs):
    watch_id: int | None = Field(default=None, ge=1)
    task_id: TaskId | None = None
    droplet_id: DropletId | None = None
    all: bool | None = None


class Unwatch(Tool[UnwatchArgs]):
    name = "unwatch"
    description = "Stop watching: one watch by id, those on a task or droplet, or all of them."
    Args = UnwatchArgs
    slots = {
        "watch_id": Slot("watch"),
        "task_id": Slot("task"),
        "droplet_id": Slot("droplet"),
        "all": Slot("all"),
    }
    cues = Cues(
        verbs=(
            "unwatch",
            "stop watching",
            "stop monitoring",
            "stop tracking",
            "stop following",
            "unsubscribe",
            "stop notifying",
            "stop alerting",
            "forget about",
            "drop the watch",
            "cancel the watch",
            "remove the watch",
        ),
        nouns=("watch", "watches"),
        phrases=(
            "stop watching",
            "no longer watch",
            "don't watch",
            "do not watch",
            "stop telling me",
            "stop the watch",
            "cancel my watch",
            "cancel the watch",
            "remove my watch",
            "clear my watches",
            "clear watches",
            "stop all watches",
            "stop all watch",
            "stop watch",
            "stop * watch",
            "cancel * watch",
            "remove * watch",
            "clear * watch",
            "cancel all watches",
            "no more notifications",
            "stop notifications",
            "clear * watches",
            "stop * watches",
            "cancel * watches",
            "remove * watches",
            "not need to watch",
            "no longer need to watch",
            "stop notifying me",
            "stop telling me about",
            "not need updates",
            "no longer need updates",
            "stop updates",
            "stop the updates",
            "no more updates",
            "stop pinging me",
            "remove watch",
            "cancel watch",
            "delete watch",
            "drop watch",
            "kill watch",
            "end watch",
        ),
        context=("anymore", "any more"),
        against=("what am i",),
        entities=("watch",),
    )
    help = HelpEntry("Stop watching", ("stop watching task 7",))
    action = "stop the watch"
    done = "stopped"

    async def run(self, args: UnwatchArgs, ctx: RunContext, out: Outcome) -> None:
        if ctx.watches is None:
            # Not an outage: this droplet keeps no watches (no store), so retrying won't help.
            out.status, out.message = "invalid", "watches are not kept on this droplet"
            return
        which = WatchFilter(
            watch_id=args.watch_id,
            task_id=args.task_id,
            droplet_id=args.droplet_id,
            # "stop watching" alone means all of them; an explicit all=false with nothing
            # named stops nothing.
            all=args.all is True
            or (args.all is None and not (args.watch_id or args.task_id or args.droplet_id)),
        )
        out.result = await ctx.watches.remove(owner=str(ctx.caller.identity), which=which)

    def render(self, out: Outcome, channel: Channel) -> str:
        stopped: list[Watch] = out.result
        if not stopped:
            return "No such watch: nothing was stopped."
        n = len(stopped)
        what = "; ".join(f"when {w.describe()}" for w in stopped[:5])
        return f"Stopped {n} {plural(n, 'watch', 'watches')}: I won't tell you {what}."
