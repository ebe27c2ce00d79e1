"""undo: reverse this conversation's last change where the mesh allows it.

A created task still pending or assigned is cancelled; a cancellation, a sent message or a task
already running cannot be taken back, and the answer says so plainly, changing nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from app.domain.mesh import Task
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.tools.base import Channel, Cues, HelpEntry, Item, Outcome, Prepared, Tool, ToolArgs
from app.tools.bulk import render_items
from app.tools.bulk import with_note as _with_note
from app.tools.context import RunContext
from app.tools.selection import listing
from app.tools.vocabulary import CANCELLABLE, TaskId
from app.utils.markup import plural

LAST_WRITE = "last_write"
"""The session context key where the service keeps what the last change can be undone by."""

_CANNOT = {
    "cancel_task": "a cancelled task cannot be brought back",
    "cancel_tasks": "cancelled tasks cannot be brought back",
    "send_message": "a sent message cannot be unsent",
}


class UndoArgs(ToolArgs):
    task_ids: list[TaskId] | None = Field(default=None, max_length=50)
    """Filled when the undo is prepared: the created tasks it will cancel."""


class Undo(Tool[UndoArgs]):
    name = "undo"
    description = (
        "Reverse the last change made in this conversation where the mesh allows it: tasks it "
        "created are cancelled while still pending or assigned. Cancellations and sent "
        "messages cannot be undone."
    )
    Args = UndoArgs
    writes = True
    permission = "write"
    peers = ("orchestrator",)
    cues = Cues(
        verbs=("undo", "revert", "reverse", "roll back", "rollback", "take back", "unsend"),
        phrases=(
            "undo that",
            "undo it",
            "take that back",
            "take it back",
            "revert that",
            "never mind what i did",
            "roll that back",
            "i did not mean that",
            "didn't mean that",
            "that was a mistake",
            "scratch that",
        ),
        context=("last", "change", "action", "step", "command", "mistake", "previous"),
    )
    help = HelpEntry("Undo the last change", ("undo", "take that back"))
    action = "undo the last change"
    done = "undone"

    async def prepare(self, args: UndoArgs, ctx: RunContext) -> Prepared:
        last = ctx.session.get(LAST_WRITE)
        if not isinstance(last, Mapping):
            return Prepared(None, answer="There is no change in this conversation to undo.")
        tool = str(last.get("tool"))
        created = [i for i in last.get("created", []) if isinstance(i, int)]
        if not created:
            reason = _CANNOT.get(tool, "the mesh has no way to reverse it")
            return Prepared(
                None, answer=f"I can't undo the last change: {reason}. Nothing was changed."
            )
        found = await asyncio.gather(
            *(ctx.mesh.orchestrator.get_task(i, trace_id=ctx.trace_id) for i in created),
            return_exceptions=True,
        )
        tasks = [t for t in found if isinstance(t, Task)]
        for failure in found:
            if isinstance(failure, PeerUnavailable):
                raise failure
        live = [t for t in tasks if t.status.value in CANCELLABLE]
        gone = [t for t in tasks if t.status.value not in CANCELLABLE]
        if not live:
            states = ", ".join(f"task {t.id} is {t.status.value.replace('_', ' ')}" for t in gone)
            return Prepared(
                None,
                answer=f"I can't undo it: {states or 'the task is gone'}, and only a pending "
                "or assigned task can be cancelled. Nothing was changed.",
            )
        note = ""
        if gone:
            note = (
                "Not undoable: "
                + ", ".join(f"task {t.id} is {t.status.value.replace('_', ' ')}" for t in gone)
                + ". "
            )
        return Prepared(
            {"task_ids": [t.id for t in live]},
            preview=_with_note(note, listing(live, spoken=False)),
            spoken=_with_note(note, listing(live, spoken=True)),
        )

    async def run(self, args: UndoArgs, ctx: RunContext, out: Outcome) -> None:
        for ident in args.task_ids or []:
            try:
                await ctx.mesh.orchestrator.cancel_task(ident, trace_id=ctx.trace_id)
                out.items.append(Item(ident, "done"))
            except PeerRejected as exc:
                # 400: no longer pending or assigned; anything else is the Orchestrator's no.
                finished = exc.status_code == 400
                out.items.append(
                    Item(ident, "already_finished" if finished else "refused", message=exc.message)
                )
            except PeerNotFound as exc:
                out.items.append(Item(ident, "failed", message=exc.message))
            except PeerUnavailable as exc:
                out.items.append(Item(ident, "unavailable", message=exc.message))
            except PeerError as exc:
                out.items.append(Item(ident, "failed", message=exc.message))
        out.result = out.items
        out.context[LAST_WRITE] = None
        if out.items and all(i.status == "unavailable" for i in out.items):
            out.status, out.peer = "unavailable", "orchestrator"
            out.message = out.items[0].message

    def render(self, out: Outcome, channel: Channel) -> str:
        return render_items(out.items, verb="cancelled (undone)", channel=channel)

    def propose(self, args: UndoArgs, channel: Channel) -> str:
        n = len(args.task_ids or [])
        return f"To undo it I will cancel the {plural(n, 'task')} it created:"

    def summary(self, args: Mapping[str, Any]) -> str:
        ids = args.get("task_ids") or []
        return f"undo: cancel task {', '.join(map(str, ids))}" if ids else "undo the last change"
