"""Beyond single calls, through the turn service against the sandbox mesh: a bulk action shows
its exact list and reports every item, a retry links its new task, undo reverses what it can and
says plainly what it cannot, and "why?" explains the turn before it."""

from __future__ import annotations

import re

from app.domain.mesh import NewTask, TaskState
from tests.conversation.test_service import Chat, statuses
from tests.conversation.test_service import chat as chat  # the fixture
from tests.tools.support import READER


async def _pending_for(chat: Chat, droplet: int, count: int) -> list[int]:
    ids = []
    for n in range(count):
        created = await chat.live.peers.orchestrator.create_task(
            NewTask(
                task_type="verify",
                title=f"Bulk check {n}",
                priority=4,
                payload={"target_droplet_id": droplet},
            )
        )
        ids.append(created.task_id)
    return ids


async def test_a_bulk_cancel_lists_the_tasks_and_reports_one_finished_meanwhile(
    chat: Chat,
) -> None:
    mine = await _pending_for(chat, 17, 3)
    reply = await chat.say("cancel all pending tasks for droplet 17")
    assert statuses(reply) == [("cancel_tasks", "awaiting_confirmation")], reply.text
    proposal = reply.pending_confirmation
    assert proposal is not None
    assert proposal["args"] == {"task_ids": mine}
    assert proposal["summary"] == f"cancel 3 tasks: {', '.join(map(str, mine))}"
    for ident in mine:
        assert f"**{ident}** Bulk check" in reply.text
    assert reply.text.index("**yes**") > reply.text.index(f"**{mine[-1]}**")

    # Meanwhile someone else cancels one of them: the yes must say so, not hide it.
    await chat.live.peers.orchestrator.cancel_task(mine[1])
    done = await chat.say("yes")
    assert statuses(done) == [("cancel_tasks", "ok")], done.text
    assert "2 of 3 tasks cancelled; 1 already finished" in done.text
    assert f"task **{mine[1]}**: already finished" in done.text
    for ident in (mine[0], mine[2]):
        task = await chat.live.peers.orchestrator.get_task(ident)
        assert task.status == TaskState.CANCELLED

    audit = await chat.store.audit(session_id=chat_key(chat))
    items = [(e.args.get("task_id"), e.outcome) for e in audit if e.tool == "cancel_tasks"]
    assert sorted(items) == sorted([(mine[0], "ok"), (mine[1], "declined"), (mine[2], "ok")])


async def test_a_bulk_cancel_with_nothing_matching_proposes_nothing(chat: Chat) -> None:
    reply = await chat.say("cancel all pending build tasks for droplet 17")
    assert statuses(reply) == [("cancel_tasks", "nothing_to_do")], reply.text
    assert reply.pending_confirmation is None
    assert "nothing to cancel" in reply.text
    assert await chat.pending() is None


async def test_a_bulk_proposal_needs_write_before_anything_is_resolved(chat: Chat) -> None:
    await _pending_for(chat, 17, 1)
    reply = await chat.say("cancel all pending tasks for droplet 17", caller=READER)
    assert statuses(reply) == [("cancel_tasks", "forbidden")]
    assert reply.pending_confirmation is None


async def test_the_orchestrator_down_while_preparing_proposes_nothing(chat: Chat) -> None:
    chat.live.handle.stop_orchestrator()
    try:
        reply = await chat.say("cancel every pending task")
    finally:
        chat.live.handle.start_orchestrator()
    assert statuses(reply) == [("cancel_tasks", "nothing_to_do")], reply.text
    assert "Nothing was changed" in reply.text
    assert await chat.pending() is None


async def test_a_failed_task_is_retried_as_a_new_linked_task(chat: Chat) -> None:
    (failed,) = await chat.live.peers.orchestrator.list_tasks(status=TaskState.FAILED)
    reply = await chat.say(f"retry task {failed.id}")
    assert statuses(reply) == [("retry_tasks", "awaiting_confirmation")], reply.text
    assert f"**{failed.id}**" in reply.text
    done = await chat.say("yes")
    assert statuses(done) == [("retry_tasks", "ok")], done.text
    found = re.search(r"new task \*\*(\d+)\*\*", done.text)
    assert found is not None, done.text
    new = await chat.live.peers.orchestrator.get_task(int(found[1]))
    assert (new.payload or {}).get("retry_of") == failed.id
    assert (new.task_type, new.title, new.priority) == (
        failed.task_type,
        failed.title,
        failed.priority,
    )
    assert new.description is not None and new.description.startswith(f"Retry of task {failed.id}")
    # "it" is now the new task.
    status = await chat.say("what's its status?")
    assert statuses(status) == [("task_status", "ok")]
    assert f"{new.id}" in status.text


async def test_undo_cancels_the_task_just_created(chat: Chat) -> None:
    await chat.say("create a build task for droplet 14 priority 2")
    created = await chat.say("yes")
    assert statuses(created) == [("create_task", "ok")], created.text
    new = max(t.id for t in await chat.tasks())

    proposal = await chat.say("undo that")
    assert statuses(proposal) == [("undo", "awaiting_confirmation")], proposal.text
    assert proposal.pending_confirmation is not None
    assert proposal.pending_confirmation["args"] == {"task_ids": [new]}
    undone = await chat.say("yes")
    assert statuses(undone) == [("undo", "ok")], undone.text
    task = await chat.live.peers.orchestrator.get_task(new)
    assert task.status == TaskState.CANCELLED

    # The undo itself is not undone by a second "undo": nothing is left to reverse.
    again = await chat.say("undo")
    assert statuses(again) == [("undo", "nothing_to_do")]
    assert "no change in this conversation to undo" in again.text


async def test_undo_of_a_cancel_is_refused_plainly_and_changes_nothing(chat: Chat) -> None:
    (pending, *_) = await _pending_for(chat, 17, 1)
    await chat.say(f"cancel task {pending}")
    cancelled = await chat.say("yes")
    assert statuses(cancelled) == [("cancel_task", "ok")], cancelled.text
    before = [(t.id, t.status) for t in await chat.tasks()]

    reply = await chat.say("take that back")
    assert statuses(reply) == [("undo", "nothing_to_do")], reply.text
    assert "a cancelled task cannot be brought back" in reply.text
    assert "Nothing was changed" in reply.text
    assert reply.pending_confirmation is None
    assert [(t.id, t.status) for t in await chat.tasks()] == before


async def test_undo_with_no_change_in_the_conversation(chat: Chat) -> None:
    await chat.say("list tasks")
    reply = await chat.say("undo")
    assert "There is no change in this conversation to undo." in reply.text
    assert await chat.pending() is None


async def test_why_explains_the_previous_turn(chat: Chat) -> None:
    first = await chat.say("is droplet 14 healthy?")
    assert statuses(first) == [("droplet_status", "ok")]
    why = await chat.say("why?")
    assert statuses(why) == [("explain_last", "ok")]
    assert "is droplet 14 healthy?" in why.text
    assert "Planner: **rules** with confidence" in why.text
    assert "`droplet_status`(droplet\\_id=14): ok via orchestrator, registry" in why.text
    assert f"Trace: `{first.trace_id}`" in why.text
    # Asking again explains the same turn, not the "why?" itself.
    again = await chat.say("what did you just do?")
    assert f"Trace: `{first.trace_id}`" in again.text


async def test_why_after_a_confirmed_change_names_the_write(chat: Chat) -> None:
    await chat.say("create a verify task for droplet 14")
    done = await chat.say("yes")
    why = await chat.say("why?", source="voice")
    assert "create task" in why.text
    assert "*" not in why.text and "`" not in why.text
    assert done.trace_id not in why.text  # voice: no trace ids read aloud


def chat_key(chat: Chat) -> str:
    from app.domain.identity import session_key
    from tests.tools.support import WRITER

    return session_key(WRITER.identity, "main")
