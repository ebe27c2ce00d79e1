"""A confirmed write runs at most once, through the turn service against the sandbox mesh: a
proposal claimed by a turn whose record never came is not run again, and a write whose
request reached the Orchestrator but got no answer is not offered again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from app.conversation import replies
from app.domain.identity import session_key
from sandbox.testing import MeshHandle
from tests.conversation.test_service import Chat, open_chat, propose_build, statuses
from tests.conversation.test_service import chat as chat  # the fixture
from tests.tools.support import WRITER


async def test_a_proposal_claimed_by_a_turn_never_recorded_is_not_run_again(chat: Chat) -> None:
    before = await chat.tasks()
    proposal = await propose_build(chat, droplet=16)
    assert proposal.pending_confirmation is not None
    waiting = proposal.pending_confirmation["proposal_id"]
    # What a process killed after claiming, before recording the turn, leaves behind: the
    # claim committed, the proposal still stored as waiting.
    session = session_key(WRITER.identity, "main")
    assert await chat.store.claim_proposal(
        proposal_id=waiting, session_id=session, tool="create_task"
    )
    assert (await chat.pending()).proposal_id == waiting

    again = await chat.say("yes")
    assert statuses(again) == [("create_task", "already_confirmed")]
    assert again.text == replies.ALREADY_CONFIRMED
    assert again.pending_confirmation is None
    assert await chat.pending() is None
    assert [t.id for t in await chat.tasks()] == [t.id for t in before]
    audit = await chat.store.audit(session_id=session)
    assert [(a.tool, a.outcome, a.detail) for a in audit][-1] == (
        "create_task",
        "declined",
        "already confirmed",
    )
    assert (await chat.say("yes")).text == replies.NOTHING_PENDING


async def test_no_to_a_proposal_claimed_by_a_turn_never_recorded_does_not_say_nothing_changed(
    chat: Chat,
) -> None:
    proposal = await propose_build(chat, droplet=16)
    assert proposal.pending_confirmation is not None
    assert await chat.store.claim_proposal(
        proposal_id=proposal.pending_confirmation["proposal_id"],
        session_id=session_key(WRITER.identity, "main"),
        tool="create_task",
    )
    answer = await chat.say("no")
    assert statuses(answer) == [("create_task", "already_confirmed")]
    note, rest = answer.text.split("\n\n", 1)
    assert note == replies.no_longer_waiting(proposal.pending_confirmation["summary"])
    assert rest == "OK. Nothing is waiting for confirmation, so there is nothing to drop."
    assert await chat.pending() is None


async def test_a_new_request_says_a_proposal_claimed_by_a_turn_never_recorded_is_done(
    chat: Chat,
) -> None:
    proposal = await propose_build(chat, droplet=16)
    assert proposal.pending_confirmation is not None
    assert await chat.store.claim_proposal(
        proposal_id=proposal.pending_confirmation["proposal_id"],
        session_id=session_key(WRITER.identity, "main"),
        tool="create_task",
    )
    answer = await chat.say("show me all droplets")
    assert statuses(answer)[0] == ("create_task", "already_confirmed")
    assert ("list_droplets", "ok") in statuses(answer)
    note, rest = answer.text.split("\n\n", 1)
    assert note == replies.no_longer_waiting(proposal.pending_confirmation["summary"])
    assert "Still waiting" not in rest
    assert answer.pending_confirmation is None
    assert await chat.pending() is None
    assert (await chat.say("yes")).text == replies.NOTHING_PENDING


async def test_a_confirmed_write_claims_its_proposal_before_it_runs(chat: Chat) -> None:
    proposal = await propose_build(chat, droplet=16)
    assert proposal.pending_confirmation is not None
    done = await chat.say("yes")
    assert statuses(done) == [("create_task", "ok")]
    # Its claim is taken: had the record failed, another "yes" would have found it.
    assert not await chat.store.claim_proposal(
        proposal_id=proposal.pending_confirmation["proposal_id"],
        session_id=session_key(WRITER.identity, "main"),
        tool="create_task",
    )


@pytest.fixture
async def impatient_chat(sandbox: MeshHandle, tmp_path: Path) -> AsyncIterator[Chat]:
    async with open_chat(sandbox, tmp_path, timeout_s=0.5) as opened:
        yield opened


async def _fault(sandbox: MeshHandle, mode: str, delay: float = 0.0) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{sandbox.orchestrator_url}/_sandbox/fault", json={"mode": mode, "delay": delay}
        )
        response.raise_for_status()


async def test_a_write_cut_off_before_its_answer_is_not_offered_again(
    sandbox: MeshHandle, impatient_chat: Chat
) -> None:
    chat = impatient_chat
    before = {t.id for t in await chat.tasks()}
    await propose_build(chat, droplet=16)
    # The Orchestrator holds the request past the executor's patience.
    await _fault(sandbox, "slow", delay=1.0)
    try:
        cut = await chat.say("yes")
    finally:
        await _fault(sandbox, "none")
    assert statuses(cut) == [("create_task", "unavailable")]
    assert cut.text.startswith(
        "I can't tell whether I managed to create the task: the mesh did not answer within 0.5 "
        "seconds. It may have gone through"
    ), cut.text
    assert "check before asking for it again" in cut.text
    assert "say **yes** again" not in cut.text
    assert cut.pending_confirmation is None
    assert await chat.pending() is None

    assert (await chat.say("yes")).text == replies.NOTHING_PENDING
    # Whether the Orchestrator acted on the cut-off request is its own affair (the sandbox's
    # stops with the connection); droplet 12 never sent it twice.
    assert len([t for t in await chat.tasks() if t.id not in before]) <= 1


async def test_a_write_whose_answer_broke_off_is_not_offered_again(
    sandbox: MeshHandle, chat: Chat
) -> None:
    before = {t.id for t in await chat.tasks()}
    await propose_build(chat, droplet=16)
    await _fault(sandbox, "drop")  # a 200 begun, then the connection closed
    try:
        cut = await chat.say("yes")
    finally:
        await _fault(sandbox, "none")
    assert statuses(cut) == [("create_task", "unavailable")]
    assert cut.text.startswith(
        "I can't tell whether I managed to create the task: the Orchestrator is unreachable. It "
        "may have gone through"
    ), cut.text
    assert await chat.pending() is None
    assert (await chat.say("yes")).text == replies.NOTHING_PENDING
    assert {t.id for t in await chat.tasks()} == before  # the sandbox's drop acts on nothing
