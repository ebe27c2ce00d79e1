"""cancel_tasks: a filter made into the exact task list, the proposal, every item's answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.conversation import replies
from app.domain.mesh import NewTask, TaskState
from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid, Item, Prepared
from app.tools.cancel_tasks import CancelTasks
from app.tools.selection import MAX_BULK, describe_filter
from sandbox.testing import MeshHandle
from tests.tools.support import (
    READER,
    WRITER,
    LiveMesh,
    assert_speakable,
    plain_schema_problems,
    say_items,
    tool,
)

NAME = "cancel_tasks"
CANCEL = CancelTasks()

# The seeded Orchestrator: 1 completed (made by droplet 2), 2 failed, 3 in progress and 4
# assigned to droplet 18 (both made by droplet 12), 5 pending (made by droplet 2, so droplet 12
# may not cancel it), 6 cancelled.
COMPLETED, IN_PROGRESS_OURS, ASSIGNED_TO_18, PENDING_NOT_OURS, CANCELLED = 1, 3, 4, 5, 6

EVERY_KIND = [
    Item(4, "done"),
    Item(1, "already_finished", message="task 1 is completed and can no longer be cancelled"),
    Item(5, "refused", message="only the droplet that created task 5 (or an admin) may cancel it"),
    Item(9999, "failed", message="task 9999 does not exist"),
    Item(7, "unavailable", message="the Orchestrator is unreachable"),
]


# ---- the answer ----------------------------------------------------------------------------------


def test_every_item_is_said_in_chat() -> None:
    out_text = say_items(NAME, EVERY_KIND, "chat")
    assert out_text == (
        "**1 of 5 tasks cancelled; 1 already finished, so not cancelled, 1 failed, 1 refused by "
        "the Orchestrator, 1 not reached (the Orchestrator is unreachable)**\n\n"
        "- ✅ task **4**: cancelled\n"
        "- ⚠️ task **1**: already finished, so not cancelled (task 1 is completed and can no "
        "longer be cancelled)\n"
        "- ❌ task **5**: refused by the Orchestrator (only the droplet that created task 5 (or "
        "an admin) may cancel it)\n"
        "- ❌ task **9999**: failed (task 9999 does not exist)\n"
        "- ❌ task **7**: not reached (the Orchestrator is unreachable) (the Orchestrator is "
        "unreachable)"
    )


def test_every_item_is_said_in_voice() -> None:
    voice = say_items(NAME, EVERY_KIND, "voice")
    assert voice == (
        "1 of 5 tasks cancelled; 1 already finished, so not cancelled, 1 failed, 1 refused by "
        "the Orchestrator, 1 not reached (the Orchestrator is unreachable). "
        "Task 4: done. Task 1: already finished, so not cancelled. Task 5: refused by the "
        "Orchestrator. Task 9999: failed. Task 7: not reached (the Orchestrator is unreachable)."
    )
    assert_speakable(voice)


def test_all_done_and_a_long_list_in_voice() -> None:
    items = [Item(i, "done") for i in range(1, 10)]
    assert (
        say_items(NAME, items[:1], "chat")
        == "**1 of 1 task cancelled**\n\n- ✅ task **1**: cancelled"
    )
    voice = say_items(NAME, items, "voice")
    assert voice == (
        "9 of 9 tasks cancelled. Task 1: done. Task 2: done. Task 3: done. Task 4: done. "
        "Task 5: done. Task 6: done. And 3 more."
    )
    assert_speakable(voice)


def test_a_hostile_peer_message_is_inert() -> None:
    chat = say_items(
        NAME, [Item(3, "failed", message="<script>x</script> | **b** " + "y" * 300)], "chat"
    )
    assert "<script>" not in chat and "&lt;script&gt;" in chat
    assert "\\| \\*\\*b\\*\\*" in chat
    assert chat.endswith("…)")


# ---- the proposal --------------------------------------------------------------------------------


def test_the_proposal_and_summary() -> None:
    args = CANCEL.parse({"task_ids": [4, 9]})
    assert CANCEL.propose(args, "chat") == "I will cancel 2 tasks:"
    assert CANCEL.propose(CANCEL.parse({"task_ids": [4]}), "voice") == "I will cancel 1 task:"
    assert CANCEL.summary({"task_ids": [4, 9]}) == "cancel 2 tasks: 4, 9"
    assert CANCEL.summary({"status": "pending"}) == "cancel several tasks"
    assert CANCEL.action_for({"task_ids": [4]}) == "cancel those tasks"


def test_the_filter_is_described_in_words() -> None:
    assert describe_filter(statuses=["pending", "assigned"], droplet_id=None, task_type=None) == (
        "pending or assigned tasks"
    )
    assert describe_filter(statuses=["pending"], droplet_id=14, task_type="build") == (
        "pending build tasks for droplet 14"
    )
    assert describe_filter(statuses=[], droplet_id=None, task_type=None) == "tasks"


# ---- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"task_ids": []}, "task_ids: List should have at least 1 item after validation, not 0"),
        (
            {"task_ids": list(range(1, MAX_BULK + 2))},
            "task_ids: List should have at most 50 items after validation, not 51",
        ),
        ({"task_ids": [0]}, "task_ids.0: Input should be greater than or equal to 1"),
        ({"status": "failed"}, "status: Input should be 'pending' or 'assigned'"),
        ({"task_type": "bake"}, "task_type: Input should be 'verify', 'build', 'deploy', "),
        ({"force": True}, "force: is not an argument of this tool"),
    ],
)
def test_invalid_arguments_are_refused(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        CANCEL.parse(args)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_no_argument_is_required_and_it_needs_write() -> None:
    cancel = tool(NAME)
    assert cancel.required() == ()
    assert plain_schema_problems(CANCEL.schema()) == []
    assert "required" not in CANCEL.schema()
    assert CANCEL.writes and CANCEL.permission == "write" and CANCEL.peers == ("orchestrator",)
    assert CANCEL.allowed(WRITER) and not CANCEL.allowed(READER)


# ---- prepared against the sandbox mesh -----------------------------------------------------------


async def prepare(live: LiveMesh, args: dict[str, Any]) -> Prepared:
    return await live.executor.prepare(
        ToolCall(tool=NAME, args=args), caller=WRITER, trace_id="trace-tools-test"
    )


async def new_task(
    live: LiveMesh, target: int = 3, task_type: str = "build", title: str | None = None
) -> int:
    created = await live.peers.orchestrator.create_task(
        NewTask(
            task_type=task_type,
            title=title or f"{task_type.capitalize()} droplet {target}",
            payload={"target_droplet_id": target},
            created_by="droplet_12",
        )
    )
    return created.task_id


async def status_of(live: LiveMesh, task_id: int) -> TaskState:
    return (await live.peers.orchestrator.get_task(task_id)).status


async def test_every_cancellable_task_without_a_filter(live: LiveMesh) -> None:
    mine = await new_task(live, title="Nightly <build>")
    prepared = await prepare(live, {})
    assert prepared.answer is None
    assert prepared.args == {"task_ids": [PENDING_NOT_OURS, mine, ASSIGNED_TO_18]}
    assert prepared.preview == (
        "- **5** Verify Droplet #14 (pending)\n"
        f"- **{mine}** Nightly &lt;build&gt; (pending)\n"
        "- **4** Transcribe voice note (assigned)"
    )


async def test_by_status(live: LiveMesh) -> None:
    mine = await new_task(live)
    pending = await prepare(live, {"status": "pending"})
    assert pending.args == {"task_ids": [PENDING_NOT_OURS, mine]}
    assigned = await prepare(live, {"status": "assigned"})
    assert assigned.args == {"task_ids": [ASSIGNED_TO_18]}
    assert assigned.preview == "- **4** Transcribe voice note (assigned)"


async def test_by_droplet_pending_tasks_count_by_their_target(live: LiveMesh) -> None:
    for_14 = await new_task(live, target=14, task_type="verify")
    await new_task(live, target=3)
    by_target = await prepare(live, {"droplet_id": 14})
    assert by_target.args == {"task_ids": [for_14]}
    assert by_target.preview == f"- **{for_14}** Verify droplet 14 (pending)"
    # An assigned task counts by its assignee (task 4 is assigned to droplet 18).
    assert (await prepare(live, {"droplet_id": 18})).args == {"task_ids": [ASSIGNED_TO_18]}
    nothing = await prepare(live, {"droplet_id": 18, "status": "pending"})
    assert nothing == Prepared(None, answer="No pending tasks for droplet 18: nothing to cancel.")


async def test_by_task_type(live: LiveMesh) -> None:
    first = await new_task(live, target=3)
    second = await new_task(live, target=14)
    builds = await prepare(live, {"task_type": "build"})
    assert builds.args is not None and sorted(builds.args["task_ids"]) == [first, second]
    nothing = await prepare(live, {"task_type": "provision"})
    assert nothing == Prepared(
        None, answer="No pending or assigned provision tasks: nothing to cancel."
    )


async def test_explicit_ids_say_what_is_missing_or_finished(live: LiveMesh) -> None:
    mine = await new_task(live)
    prepared = await prepare(live, {"task_ids": [mine, COMPLETED, 9999, ASSIGNED_TO_18]})
    assert prepared.args == {"task_ids": [mine, ASSIGNED_TO_18]}
    # The note on its own paragraph: the first task stays a list item.
    assert prepared.preview == (
        "No task 9999. Task 1 is already past pending or assigned and can't be cancelled.\n\n"
        f"- **{mine}** Build droplet 3 (pending)\n- **4** Transcribe voice note (assigned)"
    )
    assert prepared.spoken == (
        "No task 9999. Task 1 is already past pending or assigned and can't be cancelled.\n\n"
        f"task {mine}, Build droplet 3; task 4, Transcribe voice note."
    )
    none = await prepare(live, {"task_ids": [COMPLETED, CANCELLED, 9998]})
    assert none == Prepared(
        None,
        answer="No task 9998. Task 1, 6 are already past pending or assigned and can't be "
        "cancelled. Nothing to cancel.",
    )


async def test_more_than_the_bulk_limit_is_refused(live: LiveMesh) -> None:
    await asyncio.gather(*(new_task(live, target=3) for _ in range(MAX_BULK + 1)))
    prepared = await prepare(live, {"task_type": "build"})
    assert prepared == Prepared(
        None,
        answer="That is 51 pending or assigned build tasks; I cancel at most 50 at once. "
        "Narrow it down, for example by droplet or type.",
    )


async def test_too_many_candidates_for_a_droplet_filter_is_refused(live: LiveMesh) -> None:
    await asyncio.gather(*(new_task(live, target=3) for _ in range(101)))
    prepared = await prepare(live, {"droplet_id": 14, "task_type": "build"})
    assert prepared == Prepared(
        None,
        answer="That is 101 pending or assigned build tasks for droplet 14; I cancel at most 50 "
        "at once. Narrow it down, for example by droplet or type.",
    )


async def test_nothing_is_proposed_while_the_orchestrator_is_down(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    sandbox.stop_orchestrator()
    try:
        prepared = await prepare(live, {"status": "pending"})
    finally:
        sandbox.start_orchestrator()
    assert prepared == Prepared(
        None,
        answer="I couldn't prepare that (cancel those tasks): the Orchestrator is unreachable "
        "right now. Nothing was changed; try again in a moment.",
    )


async def test_an_invalid_filter_is_answered_not_proposed(live: LiveMesh) -> None:
    prepared = await prepare(live, {"status": "failed"})
    assert prepared.args is None
    assert prepared.answer == (
        "I couldn't use that: status: Input should be 'pending' or 'assigned'"
    )


# ---- run against the sandbox mesh ----------------------------------------------------------------


async def test_the_prepared_tasks_are_cancelled(live: LiveMesh) -> None:
    first, second = await new_task(live, target=3), await new_task(live, target=14)
    prepared = await prepare(live, {"task_type": "build"})
    assert prepared.args is not None
    out = await live.run(NAME, prepared.args)
    assert out.status == "ok", out.message
    # Listed as the Orchestrator lists them: by priority, the newest first.
    assert prepared.args == {"task_ids": [second, first]}
    assert out.items == [Item(second, "done"), Item(first, "done")]
    assert out.result == out.items
    assert out.undo is None
    assert await status_of(live, first) is TaskState.CANCELLED
    assert await status_of(live, second) is TaskState.CANCELLED
    assert say_items(NAME, out.items, "chat").startswith("**2 of 2 tasks cancelled**")


async def test_each_task_answers_for_itself(live: LiveMesh) -> None:
    mine, gone = await new_task(live), await new_task(live)
    await live.peers.orchestrator.cancel_task(gone)
    out = await live.run(
        NAME, {"task_ids": [mine, PENDING_NOT_OURS, gone, IN_PROGRESS_OURS, COMPLETED, 9999]}
    )
    assert out.status == "ok"
    assert out.items == [
        Item(mine, "done"),
        Item(
            PENDING_NOT_OURS,
            "refused",
            message="only the droplet that created task 5 (or an admin) may cancel it",
        ),
        Item(
            gone,
            "already_finished",
            message=f"task {gone} is cancelled and can no longer be cancelled",
        ),
        Item(
            IN_PROGRESS_OURS,
            "already_finished",
            message="task 3 is in progress and can no longer be cancelled",
        ),
        Item(
            COMPLETED,
            "refused",
            message="only the droplet that created task 1 (or an admin) may cancel it",
        ),
        Item(9999, "failed", message="task 9999 does not exist"),
    ]
    assert await status_of(live, mine) is TaskState.CANCELLED
    assert await status_of(live, PENDING_NOT_OURS) is TaskState.PENDING
    assert await status_of(live, IN_PROGRESS_OURS) is TaskState.IN_PROGRESS
    voice = say_items(NAME, out.items, "voice")
    assert voice.startswith(
        "1 of 6 tasks cancelled; 2 already finished, so not cancelled, 1 failed, 2 refused by "
        "the Orchestrator. Task "
    )
    assert_speakable(voice)


async def test_the_orchestrator_down_is_unavailable(sandbox: MeshHandle, live: LiveMesh) -> None:
    mine = await new_task(live)
    sandbox.stop_orchestrator()
    try:
        out = await live.run(NAME, {"task_ids": [mine, ASSIGNED_TO_18]})
    finally:
        sandbox.start_orchestrator()
    assert out.status == "unavailable"
    assert out.peer == "orchestrator"
    assert [i.status for i in out.items] == ["unavailable", "unavailable"]
    assert out.message == out.items[0].message
    assert replies.failure(tool(NAME), out, "chat").startswith(
        "I couldn't cancel those tasks: the Orchestrator is unreachable right now."
    )
    assert await status_of(live, mine) is TaskState.PENDING


async def test_a_reader_cancels_nothing(live: LiveMesh) -> None:
    mine = await new_task(live)
    out = await live.run(NAME, {"task_ids": [mine]}, caller=READER)
    assert out.status == "forbidden"
    assert out.message == "that needs the 'write' permission"
    assert out.items == []
    assert await status_of(live, mine) is TaskState.PENDING
