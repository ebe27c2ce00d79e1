"""watch: tell the operator when something happens ("tell me when droplet 16 is back").

Not a change to the mesh, so nothing to confirm: the watch is stored for its owner and session,
expires (WATCH_TTL_S), is bounded per identity, and fires once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from app.domain.watch import TooManyWatches, Watch, WatchEvent
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.vocabulary import DropletId, TaskId
from app.utils.markup import plural
from app.utils.time import utcnow


class WatchArgs(ToolArgs):
    droplet_id: DropletId | None = None
    task_id: TaskId | None = None
    event: WatchEvent = "change"


class WatchTool(Tool[WatchArgs]):
    name = "watch"
    description = (
        "Notify the operator later: when a droplet is back (event up), goes down (down) or "
        "changes (change); when a task changes (change), finishes (done) or fails (failed); "
        "with neither id and event failed: when any task fails."
    )
    Args = WatchArgs
    peers = ("orchestrator",)
    slots = {
        "droplet_id": Slot("droplet"),
        "task_id": Slot("task"),
        "event": Slot("watch_event", default="change"),
    }
    cues = Cues(
        verbs=(
            "watch",
            "start watching",
            "start tracking",
            "monitor",
            "track",
            "follow",
            "keep an eye on",
            "keep eye on",
            "keep eyes on",
            "keep an eye out for",
            "keep tabs on",
            "observe",
            "alert me",
            "notify me",
            "ping me",
            "inform me",
            "warn me",
            "page me",
            "remind me",
        ),
        phrases=(
            "tell me when",
            "let me know when",
            "let me know if",
            "tell me if",
            "notify me when",
            "notify me if",
            "alert me when",
            "alert me if",
            "ping me when",
            "ping me if",
            "keep an eye on",
            "keep tabs on",
            "watch for",
            "give me a shout",
            "heads up when",
            "heads up if",
            "heads-up when",
            "heads-up if",
            "heads up once",
            "heads up whenever",
            "let me know once",
            "tell me once",
            "as soon as",
            "when it comes back",
            "if anything fails",
            "if any task",
            "tell me whenever",
            "let me know whenever",
            "notify me whenever",
            "wake me up if",
            "wake me up when",
            "wake me if",
            "page me if",
            "page me when",
            "ping me if",
            "ping me when",
            "ping me whenever",
            "alert me if",
            "alert me when",
        ),
        entities=("watch_event",),
        against=("stop", "cancel", "unwatch", "what am i", "list"),
        needs_any=("watch_event", "droplet", "task"),
    )
    help = HelpEntry("Watch something for you", ("tell me when droplet 16 is back", "watch task 7"))
    action = "set up the watch"
    done = "set up"

    async def run(self, args: WatchArgs, ctx: RunContext, out: Outcome) -> None:
        if ctx.watches is None or ctx.session_key is None:
            # Not an outage: this droplet keeps no watches (no store), so retrying won't help.
            out.status, out.message = "invalid", "watches are not kept on this droplet"
            return
        event: WatchEvent = args.event
        if args.task_id is None and args.droplet_id is None and event not in ("failed", "done"):
            event = "failed"
        last_seen = None
        if args.task_id is not None:
            # The status now is the baseline a change is measured from, so a change made while
            # no check ran (or while this service was down) still fires; and a task that does
            # not exist is said at once instead of being watched for a day.
            task = await ctx.mesh.orchestrator.get_task(args.task_id, trace_id=ctx.trace_id)
            last_seen = task.status.value
        now = utcnow()
        watch = Watch(
            owner=str(ctx.caller.identity),
            session_key=ctx.session_key,
            source="voice" if ctx.source == "voice" else "chat",
            droplet_id=args.droplet_id,
            task_id=args.task_id,
            event=event,
            created_at=now,
            expires_at=now + timedelta(seconds=ctx.watch_ttl_s),
            route_back=ctx.route_back,
            last_seen=last_seen,
        )
        try:
            out.result = await ctx.watches.add(watch, limit=ctx.max_watches)
        except TooManyWatches as exc:
            # Our own limit, not the mesh's refusal.
            out.status = "invalid"
            out.message = (
                f"you already have {exc.limit} {plural(exc.limit, 'watch', 'watches')}; "
                "stop one first"
            )
            return
        if args.task_id is not None:
            out.context["last_task_id"] = args.task_id
        if args.droplet_id is not None:
            out.context["last_droplet_id"] = args.droplet_id

    def render(self, out: Outcome, channel: Channel) -> str:
        watch: Watch = out.result
        hours = max(1, round((watch.expires_at - watch.created_at).total_seconds() / 3600))
        if channel == "voice":
            return (
                f"Okay, I'll tell you when {watch.describe()}. "
                f"I'll watch for {hours} {plural(hours, 'hour')}."
            )
        return (
            f"👀 I'll tell you when {watch.describe()} (watch **{watch.id}**, for the next "
            f"{hours} h). Say **what am I watching?** to see your watches."
        )


WatchScope = Literal["droplet", "task", "any"]
