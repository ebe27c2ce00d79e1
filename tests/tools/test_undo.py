"""undo: the conversation's last change reversed where the mesh allows it, said honestly where
it does not."""

from __future__ import annotations

from typing import Any

import pytest

from app.conversation import replies
from app.domain.mesh import TaskState
from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid, Item, Prepared
from app.tools.undo import LAST_WRITE, Undo
from sandbox.testing import MeshHandle
from tests.tools.support import (
    READER,
    WRITER,
    LiveMesh,
    assert_speakable,
    plain_schema_problems,
    say_items,
    tool,
    work_on,
)

NAME = "undo"
UNDO = Undo()


def last_write(tool_name: str, *created: int) -> dict[str, Any]:
    """The session context as the turn service leaves it after a write."""
    write: dict[str, Any] = {"tool": tool_name}
    if created:
        write["created"] = list(created)
    return {LAST_WRITE: write}


async def prepare(live: LiveMesh, session: dict[str, Any] | None) -> Prepared:
    return await live.executor.prepare(
        ToolCall(tool=NAME, args={}),
        caller=WRITER,
        trace_id="trace-tools-test",
        session=session,
        session_key="tools-test.s1",
    )


async def new_task(live: LiveMesh, target: int = 3) -> int:
    out = await live.run(
        "create_task", {"task_type": "build", "payload": {"target_droplet_id": target}}
    )
    assert out.status == "ok", out.message
    task_id: int = out.result.created.task_id
    return task_id


async def status_of(live: LiveMesh, task_id: int) -> TaskState:
    return (await live.peers.orchestrator.get_task(task_id)).status


# ---- the answer, the proposal, the arguments -----------------------------------------------------


def test_the_undone_tasks_are_said() -> None:
    items = [Item(7, "done"), Item(8, "already_finished", message="task 8 is in progress")]
    assert say_items(NAME, items, "chat") == (
        "**1 of 2 tasks cancelled (undone); 1 already finished, so not cancelled (undone)**\n\n"
        "- ✅ task **7**: cancelled (undone)\n"
        "- ⚠️ task **8**: already finished, so not cancelled (undone) (task 8 is in progress)"
    )
    voice = say_items(NAME, items[:1], "voice")
    assert voice == "1 of 1 task cancelled (undone). Task 7: done."
    assert_speakable(voice)


def test_the_proposal_and_summary() -> None:
    assert UNDO.propose(UNDO.parse({"task_ids": [7]}), "chat") == (
        "To undo it I will cancel the task it created:"
    )
    assert UNDO.propose(UNDO.parse({"task_ids": [7, 8]}), "voice") == (
        "To undo it I will cancel the tasks it created:"
    )
    assert UNDO.summary({"task_ids": [7, 8]}) == "undo: cancel task 7, 8"
    assert UNDO.summary({}) == "undo the last change"


def test_arguments_schema_and_permission() -> None:
    assert UNDO.parse({}).task_ids is None
    with pytest.raises(ArgsInvalid) as caught:
        UNDO.parse({"task_ids": list(range(1, 52))})
    assert caught.value.problems[0].startswith("task_ids: List should have at most 50 items")
    assert tool(NAME).required() == ()
    assert plain_schema_problems(UNDO.schema()) == []
    assert UNDO.writes and UNDO.permission == "write"
    assert not UNDO.allowed(READER)


# ---- prepared against the sandbox mesh -----------------------------------------------------------


async def test_a_created_task_is_proposed_for_cancelling(live: LiveMesh) -> None:
    task_id = await new_task(live)
    prepared = await prepare(live, last_write("create_task", task_id))
    assert prepared == Prepared(
        {"task_ids": [task_id]}, preview=f"- **{task_id}** Build droplet 3 (pending)"
    )
    assert await status_of(live, task_id) is TaskState.PENDING  # preparing changes nothing


async def test_a_task_already_running_cannot_be_undone(live: LiveMesh) -> None:
    task_id = await new_task(live)
    await work_on(live, [task_id], TaskState.IN_PROGRESS)
    prepared = await prepare(live, last_write("create_task", task_id))
    assert prepared == Prepared(
        None,
        answer=f"I can't undo it: task {task_id} is in progress, and only a pending or "
        "assigned task can be cancelled. Nothing was changed.",
    )
    assert await status_of(live, task_id) is TaskState.IN_PROGRESS


async def test_a_finished_task_cannot_be_undone(live: LiveMesh) -> None:
    task_id = await new_task(live)
    await work_on(live, [task_id], TaskState.COMPLETED)
    prepared = await prepare(live, last_write("create_task", task_id))
    assert prepared.args is None
    assert prepared.answer == (
        f"I can't undo it: task {task_id} is completed, and only a pending or assigned task can "
        "be cancelled. Nothing was changed."
    )


async def test_a_task_that_is_gone_cannot_be_undone(live: LiveMesh) -> None:
    prepared = await prepare(live, last_write("create_task", 9999))
    assert prepared == Prepared(
        None,
        answer="I can't undo it: the task is gone, and only a pending or assigned task can be "
        "cancelled. Nothing was changed.",
    )


async def test_only_what_is_still_waiting_is_proposed(live: LiveMesh) -> None:
    running, waiting = await new_task(live), await new_task(live, target=14)
    await work_on(live, [running], TaskState.IN_PROGRESS)  # both routed: waiting is assigned
    prepared = await prepare(live, last_write("retry_tasks", running, waiting))
    assert prepared.args == {"task_ids": [waiting]} and prepared.answer is None
    # The note on its own paragraph, then the list.
    assert prepared.preview is not None
    assert prepared.preview.startswith(f"Not undoable: task {running} is in progress.\n\n- ")
    assert prepared.preview.endswith(f"- **{waiting}** Build droplet 14 (assigned)")


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        ("cancel_task", "a cancelled task cannot be brought back"),
        ("cancel_tasks", "cancelled tasks cannot be brought back"),
        ("send_message", "a sent message cannot be unsent"),
        ("create_task", "the mesh has no way to reverse it"),
    ],
)
async def test_what_cannot_be_undone_is_said(live: LiveMesh, write: str, reason: str) -> None:
    prepared = await prepare(live, last_write(write))
    assert prepared == Prepared(
        None, answer=f"I can't undo the last change: {reason}. Nothing was changed."
    )


@pytest.mark.parametrize("session", [None, {}, {LAST_WRITE: None}, {LAST_WRITE: "create_task"}])
async def test_without_a_last_write_there_is_nothing_to_undo(
    live: LiveMesh, session: dict[str, Any] | None
) -> None:
    assert await prepare(live, session) == Prepared(
        None, answer="There is no change in this conversation to undo."
    )


async def test_nothing_is_proposed_while_the_orchestrator_is_down(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    task_id = await new_task(live)
    sandbox.stop_orchestrator()
    try:
        prepared = await prepare(live, last_write("create_task", task_id))
    finally:
        sandbox.start_orchestrator()
    assert prepared == Prepared(
        None,
        answer="I couldn't prepare that (undo the last change): the Orchestrator is unreachable "
        "right now. Nothing was changed; try again in a moment.",
    )
    assert await status_of(live, task_id) is TaskState.PENDING


# ---- run against the sandbox mesh ----------------------------------------------------------------


async def test_the_created_task_is_cancelled(live: LiveMesh) -> None:
    task_id = await new_task(live)
    session = last_write("create_task", task_id)
    prepared = await prepare(live, session)
    assert prepared.args is not None
    out = await live.run(NAME, prepared.args, session=session)
    assert out.status == "ok", out.message
    assert out.items == [Item(task_id, "done")]
    assert out.context == {LAST_WRITE: None}  # undone once: nothing left to undo
    assert await status_of(live, task_id) is TaskState.CANCELLED
    assert say_items(NAME, out.items, "chat") == (
        f"**1 of 1 task cancelled (undone)**\n\n- ✅ task **{task_id}**: cancelled (undone)"
    )


async def test_a_retry_is_undone_by_cancelling_what_it_created(live: LiveMesh) -> None:
    retried = await live.run("retry_tasks", {"task_ids": [2, 6]})
    assert retried.undo is not None
    session = {LAST_WRITE: {"tool": "retry_tasks", **retried.undo}}
    prepared = await prepare(live, session)
    assert prepared.args == {"task_ids": retried.undo["created"]}
    out = await live.run(NAME, prepared.args, session=session)
    assert [i.status for i in out.items] == ["done", "done"]
    for new_id in retried.undo["created"]:
        assert await status_of(live, new_id) is TaskState.CANCELLED


async def test_a_task_that_moved_on_meanwhile_is_said(live: LiveMesh) -> None:
    task_id = await new_task(live)
    await live.peers.orchestrator.cancel_task(task_id)
    out = await live.run(NAME, {"task_ids": [task_id, 9999]})
    assert out.status == "ok"
    assert out.items == [
        Item(
            task_id,
            "already_finished",
            message=f"task {task_id} is cancelled and can no longer be cancelled",
        ),
        Item(9999, "failed", message="task 9999 does not exist"),
    ]
    voice = say_items(NAME, out.items, "voice")
    assert voice.startswith("0 of 2 tasks cancelled (undone); 1 already finished")
    assert_speakable(voice)


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    task_id = await new_task(live)
    sandbox.stop_orchestrator()
    try:
        out = await live.run(NAME, {"task_ids": [task_id]})
    finally:
        sandbox.start_orchestrator()
    assert out.status == "unavailable"
    assert out.peer == "orchestrator"
    assert [i.status for i in out.items] == ["unavailable"]
    assert replies.failure(tool(NAME), out, "chat").startswith(
        "I couldn't undo the last change: the Orchestrator is unreachable right now."
    )
    assert await status_of(live, task_id) is TaskState.PENDING


async def test_a_reader_undoes_nothing(live: LiveMesh) -> None:
    task_id = await new_task(live)
    out = await live.run(
        NAME, {"task_ids": [task_id]}, caller=READER, session=last_write("create_task", task_id)
    )
    assert out.status == "forbidden"
    assert out.message == "that needs the 'write' permission"
    assert await status_of(live, task_id) is TaskState.PENDING
