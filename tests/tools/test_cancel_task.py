"""cancel_task: the proposal, the answer, and what the live Orchestrator allows."""

from __future__ import annotations

import pytest

from app.conversation import replies
from app.domain.mesh import CancelledTask, TaskState
from app.tools.base import ArgsInvalid
from app.tools.cancel_task import CancelTask
from sandbox.testing import MeshHandle
from tests.tools.support import (
    READER,
    LiveMesh,
    assert_speakable,
    plain_schema_problems,
    say,
    tool,
)

NAME = "cancel_task"
CANCEL = CancelTask()


# ---- the answer ----------------------------------------------------------------------------------


def test_cancelled_for_chat_and_voice() -> None:
    done = CancelledTask(task_id=7, status=TaskState.CANCELLED)
    assert say(NAME, done, "chat") == "🚫 Task **7** is cancelled."
    assert say(NAME, done, "voice") == "Task 7 is cancelled."


def test_the_state_is_said_as_words() -> None:
    odd = CancelledTask(task_id=7, status=TaskState.IN_PROGRESS)
    assert say(NAME, odd, "voice") == "Task 7 is in progress."
    assert_speakable(say(NAME, odd, "voice"))


# ---- the proposal --------------------------------------------------------------------------------


def test_the_proposal() -> None:
    args = CANCEL.parse({"task_id": 7})
    assert CANCEL.propose(args, "chat") == "I will cancel task **7**."
    assert CANCEL.propose(args, "voice") == "I will cancel task 7."
    assert CANCEL.summary({"task_id": 7}) == "cancel task 7"
    assert CANCEL.action_for({"task_id": 7}) == "cancel task 7"
    assert CANCEL.action_for({}) == "cancel task"


# ---- arguments -----------------------------------------------------------------------------------


def test_the_task_is_required_and_asked_for() -> None:
    cancel = tool(NAME)
    assert cancel.required() == ("task_id",)
    assert cancel.missing({}) == ["task_id"]
    assert cancel.missing({"task_id": 7}) == []
    assert cancel.question(["task_id"], "chat") == (
        "Which task? Give me its number, for example **task 7**."
    )
    assert cancel.question(["task_id"], "voice") == (
        "Which task? Tell me its number, for example task 7."
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "task_id: Field required"),
        ({"task_id": 0}, "task_id: Input should be greater than or equal to 1"),
        ({"task_id": 10**12 + 1}, "task_id: Input should be less than or equal to 1000000000000"),
        ({"task_id": 7, "force": True}, "force: is not an argument of this tool"),
    ],
)
def test_invalid_arguments_are_refused(args: dict[str, object], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        CANCEL.parse(args)
    assert problem in caught.value.problems


def test_schema_and_permission() -> None:
    assert plain_schema_problems(CANCEL.schema()) == []
    assert CANCEL.schema()["required"] == ["task_id"]
    assert CANCEL.writes and CANCEL.permission == "write"
    assert not CANCEL.allowed(READER)


# ---- against the sandbox mesh --------------------------------------------------------------------


async def _new_task(live: LiveMesh) -> int:
    out = await live.run("create_task", {"task_type": "build", "payload": {"target_droplet_id": 3}})
    assert out.status == "ok", out.message
    task_id: int = out.result.created.task_id
    return task_id


async def test_a_pending_task_is_cancelled(live: LiveMesh) -> None:
    task_id = await _new_task(live)
    out = await live.run(NAME, {"task_id": task_id})
    assert out.status == "ok", out.message
    assert out.context == {"last_task_id": task_id}
    assert out.result.status is TaskState.CANCELLED
    assert (await live.peers.orchestrator.get_task(task_id)).status is TaskState.CANCELLED
    assert say(NAME, out.result, "chat") == f"🚫 Task **{task_id}** is cancelled."


async def test_a_finished_task_cannot_be_cancelled_again(live: LiveMesh) -> None:
    task_id = await _new_task(live)
    await live.run(NAME, {"task_id": task_id})
    again = await live.run(NAME, {"task_id": task_id})
    assert again.status == "rejected"
    assert again.message == f"task {task_id} is cancelled and can no longer be cancelled"
    assert replies.failure(tool(NAME), again, "chat") == (
        f"I couldn't cancel task {task_id}: the Orchestrator refused "
        f"(task {task_id} is cancelled and can no longer be cancelled)."
    )


async def test_another_droplets_task_is_refused(live: LiveMesh) -> None:
    listed = await live.run("list_tasks", {"status": "pending"})
    theirs = next(t for t in listed.result.tasks if t.title == "Verify Droplet #14")
    out = await live.run(NAME, {"task_id": theirs.id})
    assert out.status == "rejected"
    assert out.message == (
        f"only the droplet that created task {theirs.id} (or an admin) may cancel it"
    )
    assert (await live.peers.orchestrator.get_task(theirs.id)).status is TaskState.PENDING


async def test_an_unknown_task_is_not_found(live: LiveMesh) -> None:
    out = await live.run(NAME, {"task_id": 9999})
    assert out.status == "not_found"
    assert replies.failure(tool(NAME), out, "voice") == "Task 9999 doesn't exist."


async def test_a_reader_cancels_nothing(live: LiveMesh) -> None:
    task_id = await _new_task(live)
    out = await live.run(NAME, {"task_id": task_id}, caller=READER)
    assert out.status == "forbidden"
    assert (await live.peers.orchestrator.get_task(task_id)).status is TaskState.PENDING


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    task_id = await _new_task(live)
    sandbox.stop_orchestrator()
    out = await live.run(NAME, {"task_id": task_id})
    assert out.status == "unavailable"
    sandbox.start_orchestrator()
    assert (await live.peers.orchestrator.get_task(task_id)).status is TaskState.PENDING
