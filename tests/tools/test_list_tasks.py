"""list_tasks: the task table, the spoken summary, filters, and the live Orchestrator's tasks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from app.domain.mesh import Task, TaskState
from app.tools.base import ArgsInvalid
from app.tools.list_tasks import DEFAULT_LIMIT, ListTasks, TaskListing
from sandbox.testing import MeshHandle
from tests.tools.support import (
    HOSTILE_NAMES,
    NAMES,
    TASKS,
    LiveMesh,
    assert_speakable,
    cells,
    plain_schema_problems,
    say,
    table_rows,
    tool,
)

NAME = "list_tasks"

# ---- chat ----------------------------------------------------------------------------------------


def test_the_table_starts_with_the_summary() -> None:
    text = say(NAME, TaskListing(TASKS, total=9), "chat")
    assert text.splitlines()[0] == "**2 tasks** (showing 2 of 9): 1 pending, 1 failed"
    rows = table_rows(text)
    assert rows[0] == "| ID | Type | Title | Status | Priority | Assignee |"
    assert rows[1] == "|---:|---|---|---|---:|---|"
    assert "| 7 | verify | Verify droplet 14 | ⏳ pending | 3 | — |" in rows
    assert "| 8 | build | Build droplet 3 | ❌ failed | 5 | Builder (droplet 3) |" in rows


def test_no_total_when_everything_is_shown() -> None:
    assert say(NAME, TaskListing(TASKS), "chat").splitlines()[0] == (
        "**2 tasks**: 1 pending, 1 failed"
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "failed", "assigned_droplet_id": 14}, "No failed tasks for droplet 14."),
        ({"status": "in_progress", "task_type": "deploy"}, "No in progress deploy tasks."),
        ({}, "No tasks."),
    ],
)
def test_an_empty_list_names_the_filters(filters: dict[str, Any], expected: str) -> None:
    assert say(NAME, TaskListing([], filters=filters), "chat") == expected
    assert say(NAME, TaskListing([], filters=filters), "voice") == expected


def test_long_tables_are_cut_with_a_count_of_the_rest() -> None:
    many = [
        Task(id=i, task_type="build", title=f"B{i}", status=TaskState.PENDING) for i in range(60)
    ]
    text = say(NAME, TaskListing(many), "chat")
    assert len(table_rows(text)) == 2 + 50
    assert text.endswith("…and 10 more.")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_titles_and_types_cannot_break_the_table(name: str) -> None:
    task = Task(
        id=3,
        task_type=name,
        title=name,
        status=TaskState.ASSIGNED,
        assigned_droplet_id=4,
        assigned_droplet_name=name,
    )
    text = say(NAME, TaskListing([task, TASKS[0]]), "chat")
    rows = table_rows(text)
    assert len(rows) == 4
    assert all(cells(row) == 6 for row in rows)
    assert "<script>" not in text
    assert "[link](" not in text


# ---- voice ---------------------------------------------------------------------------------------


def test_tasks_for_voice() -> None:
    assert say(NAME, TaskListing(TASKS), "voice") == (
        "Two tasks: one pending and one failed. Task 7, Verify droplet 14, is pending. "
        "Task 8, Build droplet 3, has failed."
    )


def test_only_the_first_three_are_read_out() -> None:
    many = [
        Task(id=i, task_type="deploy", title=f"Deploy {i}", status=TaskState.COMPLETED)
        for i in range(1, 6)
    ]
    text = say(NAME, TaskListing(many), "voice")
    assert text.startswith("Five tasks: five completed. Task 1, Deploy 1, is completed.")
    assert "Task 4" not in text
    assert text.endswith("And 2 more.")


def test_states_are_said_as_words() -> None:
    tasks = [
        Task(id=1, task_type="build", title="A", status=TaskState.IN_PROGRESS),
        Task(id=2, task_type="build", title="B", status=TaskState.CANCELLED),
    ]
    assert say(NAME, TaskListing(tasks), "voice") == (
        "Two tasks: one in progress and one cancelled. Task 1, A, is in progress. "
        "Task 2, B, was cancelled."
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
    )
    assert_speakable(say(NAME, TaskListing([task, *TASKS]), "voice"))
    assert_speakable(say(NAME, TaskListing([], filters={"task_type": name}), "voice"))


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_chat_tables_keep_their_shape_whatever_the_names(name: str, title: str) -> None:
    task = Task(
        id=1,
        task_type=name,
        title=title,
        status=TaskState.PENDING,
        assigned_droplet_id=2,
        assigned_droplet_name=name,
    )
    for row in table_rows(say(NAME, TaskListing([task]), "chat")):
        assert cells(row) == 6


# ---- arguments -----------------------------------------------------------------------------------


def test_defaults_are_no_filter_and_no_limit() -> None:
    args = ListTasks().parse({})
    assert args.model_dump() == {
        "status": None,
        "assigned_droplet_id": None,
        "task_type": None,
        "limit": None,
    }


@pytest.mark.parametrize(
    "args",
    [
        {"status": "in_progress"},
        {"task_type": "provision"},
        {"assigned_droplet_id": 14},
        {"limit": 1},
        {"limit": 500},
    ],
)
def test_valid_filters(args: dict[str, Any]) -> None:
    assert ListTasks().parse(args).model_dump(exclude_none=True) == args


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"status": "running"}, "status"),
        ({"task_type": "deploys"}, "task_type"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"assigned_droplet_id": 0}, "assigned_droplet_id"),
        ({"droplet_id": 14}, "droplet_id"),
    ],
)
def test_invalid_filters_are_refused(args: dict[str, Any], where: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        ListTasks().parse(args)
    assert caught.value.problems[0].startswith(f"{where}: ")


def test_schema_is_plain() -> None:
    schema = ListTasks().schema()
    assert plain_schema_problems(schema) == []
    assert set(schema["properties"]) == {"status", "assigned_droplet_id", "task_type", "limit"}


def test_nothing_is_required() -> None:
    assert tool(NAME).required() == ()
    assert tool(NAME).missing({}) == []


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_the_seeded_tasks(live: LiveMesh) -> None:
    out = await live.run(NAME)
    assert out.status == "ok", out.message
    tasks = out.result.tasks
    assert {t.status for t in tasks} == set(TaskState)
    assert len(tasks) <= DEFAULT_LIMIT
    text = say(NAME, out.result, "chat")
    assert text.startswith(f"**{len(tasks)} tasks**")
    assert "| Deploy Dashboard v1.3 | ❌ failed | 3 | Dashboard (droplet 2) |" in text


async def test_a_single_result_becomes_what_it_refers_to(live: LiveMesh) -> None:
    out = await live.run(NAME, {"status": "failed"})
    assert out.status == "ok"
    assert [t.title for t in out.result.tasks] == ["Deploy Dashboard v1.3"]
    assert out.context == {"last_task_id": out.result.tasks[0].id}
    assert out.result.filters == {"status": "failed"}


async def test_filters_reach_the_orchestrator(live: LiveMesh) -> None:
    by_droplet = await live.run(NAME, {"assigned_droplet_id": 14})
    assert {t.assigned_droplet_id for t in by_droplet.result.tasks} == {14}
    custom = await live.run(NAME, {"task_type": "custom"})
    assert custom.result.tasks and {t.task_type for t in custom.result.tasks} == {"custom"}
    limited = await live.run(NAME, {"limit": 2})
    assert len(limited.result.tasks) == 2


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    sandbox.stop_orchestrator()
    out = await live.run(NAME)
    assert out.status == "unavailable"
    assert out.peer == "orchestrator"
