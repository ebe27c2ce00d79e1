"""retry_tasks: only failed or cancelled tasks, each run again as a new task linked to it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.conversation import replies
from app.domain.mesh import NewTask, TaskState
from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid, Item, Prepared
from app.tools.retry_tasks import RetryTasks
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

NAME = "retry_tasks"
RETRY = RetryTasks()

# The seeded Orchestrator: 1 completed, 2 failed (a deploy on droplet 2), 3 in progress,
# 4 assigned, 5 pending, 6 cancelled (never assigned).
COMPLETED, FAILED, IN_PROGRESS, PENDING, CANCELLED = 1, 2, 3, 5, 6


# ---- the answer ----------------------------------------------------------------------------------


def test_every_item_is_said_with_its_new_task() -> None:
    items = [
        Item(2, "done", title="Deploy Dashboard v1.3", new_id=40),
        Item(6, "refused", message="title: too long"),
        Item(9999, "failed", message="task 9999 does not exist"),
        Item(8, "unavailable", message="the Orchestrator is unreachable"),
    ]
    assert say_items(NAME, items, "chat") == (
        "**1 of 4 tasks retried; 1 failed, 1 refused by the Orchestrator, 1 not reached (the "
        "Orchestrator is unreachable)**\n\n"
        "- ✅ task **2**: retried → new task **40**\n"
        "- ❌ task **6**: refused by the Orchestrator (title: too long)\n"
        "- ❌ task **9999**: failed (task 9999 does not exist)\n"
        "- ❌ task **8**: not reached (the Orchestrator is unreachable) (the Orchestrator is "
        "unreachable)"
    )
    voice = say_items(NAME, items, "voice")
    assert voice == (
        "1 of 4 tasks retried; 1 failed, 1 refused by the Orchestrator, 1 not reached (the "
        "Orchestrator is unreachable). Task 2: done, new task 40. Task 6: refused by the "
        "Orchestrator. Task 9999: failed. Task 8: not reached (the Orchestrator is unreachable)."
    )
    assert_speakable(voice)


def test_the_proposal_and_summary() -> None:
    assert RETRY.propose(RETRY.parse({"task_ids": [2, 6]}), "chat") == (
        "I will create 2 new tasks, one per task to retry:"
    )
    assert RETRY.propose(RETRY.parse({"task_ids": [2]}), "voice") == (
        "I will create 1 new task, one per task to retry:"
    )
    assert RETRY.summary({"task_ids": [2, 6]}) == "retry tasks 2, 6"
    assert RETRY.summary({"status": "failed"}) == "retry"


# ---- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"task_ids": []}, "task_ids: List should have at least 1 item"),
        ({"task_ids": list(range(1, 52))}, "task_ids: List should have at most 50 items"),
        ({"status": "cancelled"}, "status: Input should be 'failed'"),
        ({"droplet_id": 0}, "droplet_id: Input should be greater than or equal to 1"),
        ({"again": True}, "again: is not an argument of this tool"),
    ],
)
def test_invalid_arguments_are_refused(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        RETRY.parse(args)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_schema_questions_and_permission() -> None:
    retry = tool(NAME)
    assert plain_schema_problems(RETRY.schema()) == []
    assert retry.required() == ()
    assert retry.question(["task_ids"], "chat") == (
        "Which tasks? Give me their numbers, or say for example **the failed deploys**."
    )
    assert retry.question(["task_ids"], "voice") == (
        "Which tasks? Tell me their numbers, or say the failed deploys."
    )
    assert RETRY.writes and RETRY.permission == "write"
    assert not RETRY.allowed(READER)


# ---- prepared against the sandbox mesh -----------------------------------------------------------


async def prepare(live: LiveMesh, args: dict[str, Any]) -> Prepared:
    return await live.executor.prepare(
        ToolCall(tool=NAME, args=args), caller=WRITER, trace_id="trace-tools-test"
    )


async def test_the_failed_tasks_are_found(live: LiveMesh) -> None:
    expected = Prepared({"task_ids": [FAILED]}, preview="- **2** Deploy Dashboard v1.3 (failed)")
    assert await prepare(live, {}) == expected
    assert await prepare(live, {"status": "failed"}) == expected
    assert await prepare(live, {"status": "failed", "droplet_id": 2}) == expected
    assert await prepare(live, {"task_type": "deploy"}) == expected


async def test_no_failed_task_matches(live: LiveMesh) -> None:
    assert await prepare(live, {"droplet_id": 14}) == Prepared(
        None, answer="No failed tasks for droplet 14: nothing to retry."
    )
    assert await prepare(live, {"task_type": "build"}) == Prepared(
        None, answer="No failed build tasks: nothing to retry."
    )


async def test_a_failed_task_of_the_worker_is_found_by_droplet(live: LiveMesh) -> None:
    created = await live.peers.orchestrator.create_task(
        NewTask(task_type="build", title="Build droplet 3", payload={"target_droplet_id": 3})
    )
    await work_on(live, [created.task_id], TaskState.FAILED)
    prepared = await prepare(live, {"droplet_id": 30})
    assert prepared == Prepared(
        {"task_ids": [created.task_id]},
        preview=f"- **{created.task_id}** Build droplet 3 (failed)",
    )


async def test_more_than_the_bulk_limit_is_refused(live: LiveMesh) -> None:
    created = await asyncio.gather(
        *(
            live.peers.orchestrator.create_task(
                NewTask(task_type="build", title="Build droplet 3", payload={})
            )
            for _ in range(50)
        )
    )
    await work_on(live, [c.task_id for c in created], TaskState.FAILED)
    assert await prepare(live, {}) == Prepared(
        None, answer="That is 51 failed tasks; I retry at most 50 at once."
    )


async def test_only_failed_or_cancelled_tasks_are_retried(live: LiveMesh) -> None:
    prepared = await prepare(live, {"task_ids": [FAILED, PENDING, CANCELLED, IN_PROGRESS, 9999]})
    assert prepared.args == {"task_ids": [FAILED, CANCELLED]}
    # The note on its own paragraph: the first task stays a list item.
    assert prepared.preview == (
        "No task 9999. Only failed or cancelled tasks are retried; task 5 is pending, task 3 is "
        "in progress.\n\n"
        "- **2** Deploy Dashboard v1.3 (failed)\n- **6** Rotate registry keys (cancelled)"
    )
    nothing = await prepare(live, {"task_ids": [COMPLETED, 9999]})
    assert nothing == Prepared(
        None,
        answer="No task 9999. Only failed or cancelled tasks are retried; task 1 is completed. "
        "Nothing to retry.",
    )


async def test_nothing_is_proposed_while_the_orchestrator_is_down(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    sandbox.stop_orchestrator()
    try:
        prepared = await prepare(live, {"task_ids": [FAILED]})
    finally:
        sandbox.start_orchestrator()
    assert prepared == Prepared(
        None,
        answer="I couldn't prepare that (retry those tasks): the Orchestrator is unreachable "
        "right now. Nothing was changed; try again in a moment.",
    )


# ---- run against the sandbox mesh ----------------------------------------------------------------


async def test_each_source_becomes_a_new_linked_task(live: LiveMesh) -> None:
    orchestrator = live.peers.orchestrator
    before = {t.id for t in await orchestrator.list_tasks(limit=500)}
    out = await live.run(NAME, {"task_ids": [FAILED, CANCELLED]})
    assert out.status == "ok", out.message
    new_ids = [i.new_id for i in out.items]
    assert all(isinstance(n, int) and n not in before for n in new_ids)
    first, second = new_ids[0], new_ids[1]
    assert first is not None and second is not None
    assert out.items == [
        Item(FAILED, "done", title="Deploy Dashboard v1.3", new_id=first),
        Item(CANCELLED, "done", title="Rotate registry keys", new_id=second),
    ]
    assert out.result == out.items
    assert out.undo == {"created": [first, second]}
    assert out.context == {"last_task_id": second}

    for source_id, new_id in ((FAILED, first), (CANCELLED, second)):
        source = await orchestrator.get_task(source_id)
        new = await orchestrator.get_task(new_id)
        assert new.status is TaskState.PENDING
        assert (new.task_type, new.title, new.priority) == (
            source.task_type,
            source.title,
            source.priority,
        )
        assert new.payload == {**(source.payload or {}), "retry_of": source_id}
        assert new.description == f"Retry of task {source_id}"
        assert [h.changed_by for h in new.history] == ["droplet_12"]
        assert source.status in (TaskState.FAILED, TaskState.CANCELLED)  # left as it was

    assert say_items(NAME, out.items, "chat") == (
        "**2 of 2 tasks retried**\n\n"
        f"- ✅ task **2**: retried → new task **{first}**\n"
        f"- ✅ task **6**: retried → new task **{second}**"
    )
    voice = say_items(NAME, out.items, "voice")
    assert voice == (
        f"2 of 2 tasks retried. Task 2: done, new task {first}. Task 6: done, new task {second}."
    )
    assert_speakable(voice)


async def test_a_description_is_kept_after_the_link(live: LiveMesh) -> None:
    created = await live.peers.orchestrator.create_task(
        NewTask(
            task_type="verify",
            title="Verify droplet 14",
            description="UDC check",
            priority=2,
            payload={"target_droplet_id": 14},
        )
    )
    await live.peers.orchestrator.cancel_task(created.task_id)
    out = await live.run(NAME, {"task_ids": [created.task_id]})
    new_id = out.items[0].new_id
    assert new_id is not None
    new = await live.peers.orchestrator.get_task(new_id)
    assert new.description == f"Retry of task {created.task_id}: UDC check"
    assert new.priority == 2
    assert new.payload == {"target_droplet_id": 14, "retry_of": created.task_id}


async def test_a_missing_source_fails_alone(live: LiveMesh) -> None:
    out = await live.run(NAME, {"task_ids": [9999, CANCELLED]})
    assert out.status == "ok"
    assert out.items[0] == Item(9999, "failed", message="task 9999 does not exist")
    assert out.items[1].status == "done"
    assert out.undo == {"created": [out.items[1].new_id]}
    assert say_items(NAME, out.items, "chat").startswith("**1 of 2 tasks retried; 1 failed**")


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    before = len(await live.peers.orchestrator.list_tasks(limit=500))
    sandbox.stop_orchestrator()
    try:
        out = await live.run(NAME, {"task_ids": [FAILED]})
    finally:
        sandbox.start_orchestrator()
    assert out.status == "unavailable"
    assert out.peer == "orchestrator"
    assert [i.status for i in out.items] == ["unavailable"]
    assert out.undo is None
    assert replies.failure(tool(NAME), out, "chat").startswith(
        "I couldn't retry those tasks: the Orchestrator is unreachable right now."
    )
    assert len(await live.peers.orchestrator.list_tasks(limit=500)) == before


async def test_a_reader_retries_nothing(live: LiveMesh) -> None:
    before = len(await live.peers.orchestrator.list_tasks(limit=500))
    out = await live.run(NAME, {"task_ids": [FAILED]}, caller=READER)
    assert out.status == "forbidden"
    assert out.items == [] and out.undo is None
    assert len(await live.peers.orchestrator.list_tasks(limit=500)) == before
