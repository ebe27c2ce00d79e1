"""A confirmed write runs at most once, through the turn service against the sandbox mesh: a
proposal claimed by a turn whose record never came is not run again, and a write whose
request reached the Orchestrator but got no answer is not offered again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.conversation import replies
from app.domain.identity import session_key
from sandbox.testing import MeshHandle
from tests.conversation.test_service import Chat, open_chat, propose_build, statuses
from tests.conversation.test_service import chat as chat  # the fixture
from tests.tools.support import WRITER

SESSION = session_key(WRITER.identity, "main")


async def _claimed_by_a_turn_never_recorded(chat: Chat) -> dict[str, Any]:
    """A proposal as a process killed after claiming it, before recording its turn, leaves it:
    the claim committed, the proposal still stored as waiting. Returns the proposal's view."""
    proposal = await propose_build(chat, droplet=16)
    shown = proposal.pending_confirmation
    assert shown is not None
    assert await chat.store.claim_proposal(
        proposal_id=shown["proposal_id"], session_id=SESSION, tool="create_task"
    )
    assert (await chat.pending()).proposal_id == shown["proposal_id"]
    return shown


async def test_a_proposal_claimed_by_a_turn_never_recorded_is_not_run_again(chat: Chat) -> None:
    before = await chat.tasks()
    await _claimed_by_a_turn_never_recorded(chat)

    again = await chat.say("yes")
    assert statuses(again) == [("create_task", "already_confirmed")]
    assert again.text == replies.ALREADY_CONFIRMED
    assert again.pending_confirmation is None
    assert await chat.pending() is None
    assert [t.id for t in await chat.tasks()] == [t.id for t in before]
    audit = await chat.store.audit(session_id=SESSION)
    assert [(a.tool, a.outcome, a.detail) for a in audit][-1] == (
        "create_task",
        "declined",
        "already confirmed",
    )
    assert (await chat.say("yes")).text == replies.NOTHING_PENDING


@pytest.mark.parametrize(
    ("text", "then"),
    [
        ("no", ["OK. Nothing is waiting for confirmation, so there is nothing to drop."]),
        ("show me all droplets", ["list_droplets"]),
    ],
    ids=["no", "another-request"],
)
async def test_any_other_message_says_a_proposal_claimed_by_a_turn_never_recorded_is_done(
    chat: Chat, text: str, then: list[str]
) -> None:
    shown = await _claimed_by_a_turn_never_recorded(chat)
    answer = await chat.say(text)
    assert statuses(answer)[0] == ("create_task", "already_confirmed")
    note, rest = answer.text.split("\n\n", 1)
    assert note == replies.no_longer_waiting(shown["summary"])
    if text == "no":  # not "nothing was created", which may be untrue
        assert [rest] == then
    else:
        assert [tool for tool, _ in statuses(answer)[1:]] == then
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
        session_id=SESSION,
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


@pytest.mark.parametrize(
    ("mode", "delay", "why", "created_at_most"),
    [
        # The Orchestrator holds the request past the executor's patience; whether it acts on
        # it after the cut is its own affair (the sandbox's stops with the connection).
        ("slow", 1.0, "the mesh did not answer within 0.5 seconds", 1),
        # A 200 begun, then the connection closed (the sandbox's acts on nothing).
        ("drop", 0.0, "the connection to the Orchestrator broke off", 0),
    ],
    ids=["cut-off", "broken-answer"],
)
async def test_a_write_that_reached_the_peer_without_an_answer_is_not_offered_again(
    sandbox: MeshHandle,
    impatient_chat: Chat,
    mode: str,
    delay: float,
    why: str,
    created_at_most: int,
) -> None:
    chat = impatient_chat
    before = {t.id for t in await chat.tasks()}
    await propose_build(chat, droplet=16)
    await _fault(sandbox, mode, delay=delay)
    try:
        cut = await chat.say("yes")
    finally:
        await _fault(sandbox, "none")
    assert statuses(cut) == [("create_task", "unavailable")]
    assert cut.text == (
        f"I can't tell whether I managed to create the task: {why}. It may have gone through, "
        "so check before asking for it again."
    )
    assert cut.pending_confirmation is None
    assert await chat.pending() is None
    assert (await chat.say("yes")).text == replies.NOTHING_PENDING
    # Never sent twice.
    assert len([t for t in await chat.tasks() if t.id not in before]) <= created_at_most
