"""send_message: the proposal, the receipt, and a real relay through the sandbox Orchestrator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.conversation import replies
from app.domain.mesh import SentMessage
from app.tools.base import ArgsInvalid
from app.tools.send_message import SendMessage
from tests.fakes._server import ThreadedServer
from tests.mesh.support import peers_for
from tests.tools.support import (
    HOSTILE_NAMES,
    NAMES,
    LiveMesh,
    assert_speakable,
    plain_schema_problems,
    say,
    tool,
)

NAME = "send_message"
SEND = SendMessage()
TARGET_ID = 41


# ---- the answer ----------------------------------------------------------------------------------


def test_sent_for_chat_and_voice() -> None:
    sent = SentMessage(target_droplet_id=18, delivered=True, target_name="Voice")
    assert say(NAME, sent, "chat") == "📨 Sent your message to Voice (droplet 18)."
    assert say(NAME, sent, "voice") == "Message sent to Voice, droplet 18."


def test_accepted_but_not_delivered() -> None:
    sent = SentMessage(target_droplet_id=18, delivered=False, target_name="Voice")
    assert say(NAME, sent, "chat") == (
        "⚠️ The Orchestrator accepted the message but could not deliver it to Voice (droplet 18)."
    )
    voice = say(NAME, sent, "voice")
    assert voice.startswith("The message to Voice, droplet 18")
    assert voice.endswith("was not delivered.")


def test_a_droplet_without_a_name_is_named_by_number() -> None:
    sent = SentMessage(target_droplet_id=30, delivered=True)
    assert say(NAME, sent, "chat") == "📨 Sent your message to droplet 30."


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_target_name_shows_as_text(name: str) -> None:
    sent = SentMessage(target_droplet_id=30, delivered=True, target_name=name)
    chat = say(NAME, sent, "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert chat.endswith("(droplet 30).")
    assert_speakable(say(NAME, sent, "voice"))


# ---- the proposal --------------------------------------------------------------------------------


def test_the_proposal_quotes_the_message() -> None:
    args = SEND.parse({"target_droplet_id": 18, "message": "the deploy is done"})
    assert SEND.propose(args, "chat") == (
        "I will send Voice (droplet 18) this message: “the deploy is done”."
    )
    assert SEND.propose(args, "voice").endswith("this message: the deploy is done.")


def test_a_hostile_message_is_shown_inert() -> None:
    args = SEND.parse({"target_droplet_id": 18, "message": "<b>done</b> | ok [x](http://e.vil)"})
    chat = SEND.propose(args, "chat")
    assert "<b>" not in chat
    assert "[x](" not in chat
    assert "\\| ok" in chat
    assert_speakable(SEND.propose(args, "voice"))


@settings(max_examples=100, deadline=None)
@given(NAMES)
def test_a_spoken_proposal_is_always_plain(message: str) -> None:
    args = SEND.parse({"target_droplet_id": 40, "message": message})
    assert_speakable(SEND.propose(args, "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_both_arguments_are_required_and_asked_for_in_order() -> None:
    send = tool(NAME)
    assert send.required() == ("target_droplet_id", "message")
    assert send.missing({}) == ["target_droplet_id", "message"]
    assert send.missing({"target_droplet_id": 18}) == ["message"]
    assert send.question(["target_droplet_id", "message"], "chat") == (
        "Which droplet should get it? Give me its number or name, for example **droplet 18**."
    )
    assert send.question(["target_droplet_id"], "voice") == (
        "Which droplet should get it? Tell me its number or name."
    )
    assert send.question(["message"], "chat") == "What should the message say?"
    assert send.question(["message"], "voice") == "What should it say?"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"target_droplet_id": 18, "message": ""}, "message: String should have at least 1"),
        ({"target_droplet_id": 18, "message": "x" * 5001}, "message: String should have at most"),
        ({"message": "hi"}, "target_droplet_id: Field required"),
        ({"target_droplet_id": 18}, "message: Field required"),
        ({"target_droplet_id": 18, "message": "hi", "urgent": True}, "urgent: is not an argument"),
    ],
)
def test_invalid_arguments_are_refused(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        SEND.parse(args)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_schema_and_permission() -> None:
    schema = SEND.schema()
    assert plain_schema_problems(schema) == []
    assert schema["required"] == ["target_droplet_id", "message"]
    assert SEND.writes and SEND.permission == "write"
    assert SEND.summary({"target_droplet_id": 18, "message": "hi"}) == "send the message"


# ---- against the sandbox mesh --------------------------------------------------------------------


class Inbox:
    """A droplet of its own, registered with the sandbox Orchestrator, that records messages."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.server = ThreadedServer(
            Starlette(routes=[Route("/message", self._message, methods=["POST"])]),
            name="inbox-droplet",
        )

    async def _message(self, request: Request) -> JSONResponse:
        self.received.append(await request.json())
        return JSONResponse({"status": "accepted"})


@pytest.fixture
async def inbox(live: LiveMesh) -> AsyncIterator[Inbox]:
    box = Inbox()
    await asyncio.to_thread(box.server.start)
    target = peers_for(live.handle, droplet_id=TARGET_ID)
    try:
        await target.orchestrator.register(
            name="Inbox",
            endpoint=f"http://127.0.0.1:{box.server.port}",
            steward="tests",
            capabilities=["testing"],
        )
        yield box
    finally:
        await target.aclose()
        await asyncio.to_thread(box.server.stop)


async def test_a_message_is_relayed_to_a_live_droplet(live: LiveMesh, inbox: Inbox) -> None:
    out = await live.run(NAME, {"target_droplet_id": TARGET_ID, "message": "deploy done"})
    assert out.status == "ok", out.message
    assert out.context == {"last_droplet_id": TARGET_ID}
    assert [m["payload"] for m in inbox.received] == [
        {"message": "deploy done", "from": "droplet-12"}
    ]
    assert inbox.received[0]["message_type"] == "command"
    assert say(NAME, out.result, "chat") == (
        f"📨 Sent your message to Inbox (droplet {TARGET_ID})."
    )


async def test_failed_deliveries_become_statuses(live: LiveMesh) -> None:
    # The seeded droplets have no endpoint: the Orchestrator cannot reach them.
    unreachable = await live.run(NAME, {"target_droplet_id": 14, "message": "hello"})
    assert unreachable.status == "unavailable"
    assert unreachable.message == (
        "Visibility Deck (droplet 14) could not be reached through the Orchestrator"
    )
    unknown = await live.run(NAME, {"target_droplet_id": 999, "message": "hello"})
    assert unknown.status == "not_found"
    assert replies.failure(tool(NAME), unknown, "chat") == "Droplet 999 is not registered."
