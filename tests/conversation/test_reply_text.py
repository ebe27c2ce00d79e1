"""The conversation's own sentences: confirmations, slot questions, failures, help."""

from __future__ import annotations

import re

import pytest

from app.conversation.reply_text import (
    render_answer,
    render_confirmation,
    render_declined,
    render_error,
    render_failure,
    render_help,
    render_slot_question,
    unavailable_note,
)
from app.domain.plan import ToolCall
from app.mesh.peers import PeerNotFound, PeerRejected, PeerUnavailable

CREATE = ToolCall(
    tool="create_task",
    args={
        "task_type": "verify",
        "title": "Verify droplet 14",
        "priority": 3,
        "payload": {"target_droplet_id": 14, "code_url": "https://github.com/x/droplet-14"},
    },
)


def test_create_confirmation_states_exactly_what_will_happen() -> None:
    assert render_confirmation(CREATE, channel="chat") == (
        "I will create a **verify** task 'Verify droplet 14' with priority 3 for droplet 14 "
        "(code: <https://github.com/x/droplet-14>). Reply **yes** to go ahead or **no** to drop it."
    )
    assert render_confirmation(CREATE, channel="voice", names={14: "Visibility Deck"}) == (
        "I will create a verify task called Verify droplet 14, priority 3, for Visibility Deck, "
        "droplet 14, with a code link. Say yes to go ahead or no to drop it."
    )


def test_confirmation_lists_every_detail_escaped() -> None:
    call = ToolCall(
        tool="create_task",
        args={
            "task_type": "build",
            "title": "Build | <b>",
            "priority": 5,
            "required_capability": "docker",
            "description": "fast_path",
            "payload": {"branch": "main", "spec_url": "javascript:alert(1)"},
        },
    )
    text = render_confirmation(call, channel="chat")
    assert "'Build \\| &lt;b&gt;'" in text
    assert "spec: javascript:alert(1)" in text and "<javascript" not in text
    assert "needs capability docker" in text
    assert "description: fast\\_path" in text
    assert "branch: main" in text


def test_cancel_and_send_confirmations() -> None:
    cancel = ToolCall(tool="cancel_task", args={"task_id": 7})
    assert render_confirmation(cancel, channel="chat") == (
        "I will cancel task **7**. Reply **yes** to go ahead or **no** to drop it."
    )
    send = ToolCall(tool="send_message", args={"target_droplet_id": 18, "message": "*hi* `x`"})
    assert render_confirmation(send, channel="chat", names={18: "Voice"}) == (
        "I will send Voice (droplet 18) this message: “\\*hi\\* \\`x\\`”. "
        "Reply **yes** to go ahead or **no** to drop it."
    )
    assert render_confirmation(send, channel="voice") == (
        "I will send droplet 18 this message: hi x. Say yes to go ahead or no to drop it."
    )


@pytest.mark.parametrize(
    ("tool", "missing", "call", "expected"),
    [
        (
            "create_task",
            ["task_type"],
            None,
            "What kind of task? verify, build, deploy, monitor, provision or custom.",
        ),
        (
            "create_task",
            ["task_type"],
            CREATE,
            "What kind of task for droplet 14? verify, build, deploy, monitor, provision "
            "or custom.",
        ),
        ("cancel_task", ["task_id"], None, "Which task? Tell me its number, for example task 7."),
        (
            "send_message",
            ["message"],
            ToolCall(tool="send_message", args={"target_droplet_id": 5}),
            "What should the message to droplet 5 say?",
        ),
        (
            "send_message",
            ["target_droplet_id", "message"],
            None,
            "Which droplet should get it? Tell me its number or name, for example droplet 18.",
        ),
    ],
)
def test_slot_questions_ask_for_the_first_missing(
    tool: str, missing: list[str], call: ToolCall | None, expected: str
) -> None:
    assert render_slot_question(tool=tool, missing=missing, channel="voice", call=call) == expected


def test_chat_slot_question_highlights_the_choices() -> None:
    text = render_slot_question(tool="create_task", missing=["task_type"], channel="chat")
    assert text.startswith("What kind of task? **verify**, **build**")


def test_unavailable_notes() -> None:
    assert unavailable_note(["orchestrator"], known_from=["Registry"], channel="chat") == (
        "⚠️ The Orchestrator is unreachable right now; here is what the Registry knows:"
    )
    assert unavailable_note(["Registry", "Orchestrator"], known_from=[], channel="voice") == (
        "The Registry and the Orchestrator are unreachable right now, "
        "so I have nothing live to show."
    )
    assert unavailable_note([], known_from=["Registry"], channel="chat") == ""


def test_failures_say_which_peer_and_what_it_means() -> None:
    call = ToolCall(tool="task_status", args={"task_id": 99})
    assert render_error(call=call, error=PeerNotFound("orchestrator", "gone"), channel="voice") == (
        "Task 99 doesn't exist."
    )
    listing = ToolCall(tool="list_tasks", args={})
    assert (
        render_error(call=listing, error=PeerUnavailable("orchestrator", "refused"), channel="chat")
        == "I couldn't list the tasks: the Orchestrator is unreachable right now. "
        "Try again in a moment."
    )
    cancel = ToolCall(tool="cancel_task", args={"task_id": 7})
    assert (
        render_error(
            call=cancel, error=PeerRejected("orchestrator", "task is completed"), channel="chat"
        )
        == "I couldn't cancel task 7: the Orchestrator refused (task is completed)."
    )
    assert render_error(call=cancel, error=RuntimeError("SELECT * FROM x"), channel="chat") == (
        "Something went wrong while trying to cancel task 7."
    )
    assert render_failure(call=listing, kind="unavailable", channel="voice") == (
        "I couldn't list the tasks: the mesh is unreachable right now. Try again in a moment."
    )


def test_help_declined_and_answers() -> None:
    assert "**Create a task**" in render_help(channel="chat")
    voice = render_help(channel="voice")
    assert not re.search(r"[*#|_`]", voice)
    assert (
        render_declined(CREATE, channel="chat")
        == "OK, I won't create that task. Nothing was changed."
    )
    assert render_answer("Say **help**", channel="voice") == "Say help"
