"""task_status: one task with its history, for chat and voice, from the live Orchestrator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from app.conversation import replies
from app.domain.mesh import Task, TaskState, TaskTransition
from app.tools.base import ArgsInvalid
from app.tools.task_status import TaskStatus
from app.utils.markup import when
from sandbox.testing import MeshHandle
from tests.tools.support import (
    HOSTILE_NAMES,
    NAMES,
    NOW,
    TASKS,
    LiveMesh,
    assert_speakable,
    cells,
    plain_schema_problems,
    say,
    table_rows,
    tool,
)

NAME = "task_status"
FAILED = TASKS[1]

# ---- chat ----------------------------------------------------------------------------------------


def test_one_task_with_history() -> None:
    chat = say(NAME, FAILED, "chat")
    lines = chat.splitlines()
    assert lines[0] == "**Task 8**: Build droplet 3"
    assert "- Status: ❌ failed · Type: build · Priority: 5" in lines
    assert "- Assigned to: Builder (droplet 3)" in lines
    assert "- Error: compiler crashed" in lines
    assert "**History**" in lines
    assert "| 2025-11-17 14:00 UTC | pending | failed | droplet\\_3 | exit 2 |" in lines


def test_every_detail_is_listed() -> None:
    task = FAILED.model_copy(
        update={
            "created_at": NOW.replace(hour=12),
            "completed_at": NOW,
            "description": "Nightly build",
            "trace_id": "abc-123",
        }
    )
    chat = say(NAME, task, "chat")
    assert "- Created: 2025-11-17 12:00 UTC · Completed: 2025-11-17 14:00 UTC" in chat
    assert "- Description: Nightly build" in chat
    assert "- Trace: abc-123" in chat


def test_an_unassigned_task_without_history() -> None:
    chat = say(NAME, TASKS[0], "chat")
    assert chat == (
        "**Task 7**: Verify droplet 14\n\n"
        "- Status: ⏳ pending · Type: verify · Priority: 3\n"
        "- Assigned to: not assigned yet"
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_text_shows_as_text(name: str) -> None:
    task = FAILED.model_copy(
        update={
            "title": name,
            "error_message": name,
            "description": name,
            "history": [TaskTransition(from_status=name, to_status=name, reason=name)],
        }
    )
    chat = say(NAME, task, "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert chat.splitlines()[0].startswith("**Task 8**: ")
    for row in table_rows(chat):
        assert cells(row) == 5


# ---- voice ---------------------------------------------------------------------------------------


def test_one_task_for_voice() -> None:
    assert say(NAME, FAILED, "voice") == (
        "Task 8, Build droplet 3, has failed, priority 5. It is assigned to Builder, droplet 3. "
        "Error: compiler crashed. It last moved to failed at 14:00 UTC on November 17."
    )


def test_an_unassigned_task_for_voice() -> None:
    assert say(NAME, TASKS[0], "voice") == (
        "Task 7, Verify droplet 14, is pending, priority 3. It is not assigned yet."
    )


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_voice_never_contains_markdown_or_emoji(name: str, title: str) -> None:
    task = Task(
        id=3,
        task_type=title,
        title=title,
        status=TaskState.FAILED,
        assigned_droplet_id=1,
        assigned_droplet_name=name,
        error_message=title,
        history=[TaskTransition(to_status=title, reason=name, changed_at=NOW)],
    )
    assert_speakable(say(NAME, task, "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_the_task_is_required_and_asked_for() -> None:
    status = tool(NAME)
    assert status.required() == ("task_id",)
    assert status.missing({}) == ["task_id"]
    assert status.question(["task_id"], "chat") == (
        "Which task? Give me its number, for example **task 7**."
    )
    assert status.question(["task_id"], "voice") == (
        "Which task? Tell me its number, for example task 7."
    )
    assert status.fan_out == "task_id"


@pytest.mark.parametrize("args", [{}, {"task_id": 0}, {"task_id": "seven"}, {"id": 7}])
def test_invalid_arguments_are_refused(args: dict[str, object]) -> None:
    with pytest.raises(ArgsInvalid):
        TaskStatus().parse(args)


def test_schema_is_plain() -> None:
    schema = TaskStatus().schema()
    assert plain_schema_problems(schema) == []
    assert schema["required"] == ["task_id"]


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_a_seeded_failed_task(live: LiveMesh) -> None:
    listed = await live.run("list_tasks", {"status": "failed"})
    (failed,) = listed.result.tasks
    out = await live.run(NAME, {"task_id": failed.id})
    assert out.status == "ok", out.message
    assert out.context == {"last_task_id": failed.id}
    task = out.result
    assert task.error_message == "Build step failed: DASHBOARD_API_URL is not set"
    assert [h.to_status for h in task.history] == ["pending", "assigned", "in_progress", "failed"]
    chat = say(NAME, task, "chat")
    assert chat.splitlines()[0] == f"**Task {failed.id}**: Deploy Dashboard v1.3"
    assert len(table_rows(chat)) == 2 + 4
    voice = say(NAME, task, "voice")
    assert voice.startswith(f"Task {failed.id}, Deploy Dashboard v1.3, has failed, priority 3.")
    assert_speakable(voice)


async def test_a_task_this_droplet_created(live: LiveMesh) -> None:
    created = await live.run(
        "create_task", {"task_type": "verify", "payload": {"target_droplet_id": 14}}
    )
    task_id = created.result.created.task_id
    out = await live.run(NAME, {"task_id": task_id})
    assert out.result.status is TaskState.PENDING
    assert out.result.title == "Verify droplet 14"
    assert say(NAME, out.result, "voice") == (
        f"Task {task_id}, Verify droplet 14, is pending, priority 5. It is not assigned yet. "
        f"It last moved to pending at {say_time(out.result)}."
    )


def say_time(task: Task) -> str:
    changed = task.history[-1].changed_at
    assert changed is not None
    return when(changed, spoken=True)


async def test_an_unknown_task_is_not_found(live: LiveMesh) -> None:
    out = await live.run(NAME, {"task_id": 9999})
    assert out.status == "not_found"
    assert out.peer == "orchestrator"
    assert replies.failure(tool(NAME), out, "chat") == "Task 9999 doesn't exist."


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    sandbox.stop_orchestrator()
    out = await live.run(NAME, {"task_id": 1})
    assert out.status == "unavailable"
    assert replies.failure(tool(NAME), out, "voice") == (
        "I couldn't look up task 1: the Orchestrator is unreachable right now. "
        "Try again in a moment."
    )
