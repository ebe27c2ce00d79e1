"""What the bulk and watch tools say when something is refused, missing or counted: a refusal
is not "already finished", our own limits are not blamed on the mesh, plurals are right."""

from __future__ import annotations

import pytest

from app.conversation import replies
from app.domain.mesh import NewTask, TaskState
from app.domain.plan import ToolCall
from app.store.watches import WatchStore
from app.tools.base import Item
from app.tools.executor import ToolExecutor
from tests.tools.support import (
    TOOLS,
    WRITER,
    LiveMesh,
    mesh_off,
    say,
    tool,
    watch_desk,
)


# app/tools/undo.py:115-116: every PeerRejected becomes "already_finished", a 403 too.
async def test_undo_says_a_refusal_as_a_refusal(live: LiveMesh) -> None:
    theirs = await live.peers.orchestrator.create_task(
        NewTask(task_type="build", title="Theirs", payload={}, created_by="droplet_2")
    )
    out = await live.run("undo", {"task_ids": [theirs.task_id]})
    assert out.items == [
        Item(
            theirs.task_id,
            "refused",
            message=f"only the droplet that created task {theirs.task_id} (or an admin) may "
            "cancel it",
        )
    ]
    assert (await live.peers.orchestrator.get_task(theirs.task_id)).status is TaskState.PENDING


# app/tools/explain_last.py:102 and :108: escape_markdown inside a code span; backslashes show.
def test_explain_last_shows_tool_names_as_they_are() -> None:
    turn = {"text": "x", "calls": [{"tool": "cancel_tasks", "status": "ok"}], "trace_id": "a_b"}
    chat = say("explain_last", turn, "chat")
    assert "`cancel_tasks`" in chat
    assert "`a_b`" in chat


# app/tools/watch.py:121-122 (status "rejected", no peer) read by replies.failure: "the mesh
# refused" for a limit the mesh knows nothing of.
async def test_the_watch_limit_is_not_blamed_on_the_mesh(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live, max_watches=2)
    await desk.run("watch", {"task_id": 1})
    await desk.run("watch", {"task_id": 2})
    out = await desk.run("watch", {"task_id": 3})
    assert replies.failure(tool("watch"), out, "chat") == (
        "I couldn't set up the watch: you already have 2 watches; stop one first."
    )


# app/tools/watch.py:101, list_watches.py:42, unwatch.py:94: "unavailable" with no
# peer reads as "the mesh is unreachable right now. Try again in a moment."
@pytest.mark.parametrize("name", ["watch", "list_watches", "unwatch"])
async def test_watches_not_configured_is_not_a_mesh_outage(name: str) -> None:
    bare = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    out = await bare.execute(
        ToolCall(tool=name, args={}), caller=WRITER, trace_id="t", session_key="s"
    )
    said = replies.failure(tool(name), out, "chat")
    assert "mesh" not in said, said


# app/tools/list_watches.py:55 and :57, unwatch.py:110: plural(n, "watch") gives "watchs".
async def test_watches_is_spelt_right(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live)
    for n in (1, 2):
        await desk.run("watch", {"task_id": n})
    listed = (await desk.run("list_watches")).result
    assert say("list_watches", listed, "chat").startswith("**2 watches**")
    assert say("list_watches", listed, "voice").startswith("Two watches:")
    stopped = (await desk.run("unwatch", {"all": True})).result
    assert say("unwatch", stopped, "voice").startswith("Stopped 2 watches:")


# app/tools/watch.py:133: "I'll watch for 1 hours."
async def test_one_hour_is_singular(store: WatchStore, live: LiveMesh) -> None:
    out = await watch_desk(store, live, ttl_s=3600).run("watch", {})
    assert say("watch", out.result, "voice").endswith("I'll watch for 1 hour.")


# app/tools/unwatch.py:100: all=bool(args.all) or not (...): an explicit all=false with nothing
# else named stops every watch, against WatchStore.remove's "a filter naming nothing removes
# nothing (a vague request must not wipe every watch)".
async def test_all_false_does_not_stop_everything(store: WatchStore, live: LiveMesh) -> None:
    desk = watch_desk(store, live)
    await desk.run("watch", {"task_id": 1})
    out = await desk.run("unwatch", {"all": False})
    assert out.result == []
    assert len(await store.active(owner="user:operator")) == 1


# app/tools/cancel_tasks.py:146, retry_tasks.py:134, undo.py:107: preview=note + listing(...):
# the note and the first "- **id**" item share a line, so in markdown the first task is not a
# list item (it runs on in the note's paragraph).
async def test_a_note_does_not_swallow_the_first_task(live: LiveMesh) -> None:
    created = await live.peers.orchestrator.create_task(
        NewTask(task_type="build", title="Build droplet 3", payload={"target_droplet_id": 3})
    )
    previews = [
        await live.executor.prepare(
            ToolCall(tool=name, args=args), caller=WRITER, trace_id="t", session=session
        )
        for name, args, session in (
            ("cancel_tasks", {"task_ids": [created.task_id, 4, 1]}, None),
            ("retry_tasks", {"task_ids": [2, 6, 5]}, None),
            ("undo", {}, {"last_write": {"tool": "x", "created": [created.task_id, 1]}}),
        )
    ]
    for prepared, tasks in zip(previews, (2, 2, 1), strict=True):
        assert prepared.preview is not None
        items = [line for line in prepared.preview.splitlines() if line.startswith("- **")]
        assert len(items) == tasks, prepared.preview
