"""explain_last: the previous turn as the service recorded it, for chat and voice."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid, Outcome
from app.tools.executor import ToolExecutor
from app.tools.explain_last import LAST_TURN, ExplainLast
from tests.tools.support import (
    HOSTILE_NAMES,
    NAMES,
    NOBODY,
    READER,
    TOOLS,
    WRITER,
    assert_speakable,
    mesh_off,
    plain_schema_problems,
    say,
)

NAME = "explain_last"
EXPLAIN = ExplainLast()

# The shape the turn service records (ConversationService._explanation): a call that ran, then
# an action that did not (no peers, no timing).
TURN: dict[str, Any] = {
    "text": "undo that",
    "planner": "rules",
    "confidence": 0.87,
    "trace_id": "4bf92f3577b34da6",
    "calls": [
        {
            "tool": "undo",
            "args": {"task_ids": [7, 8]},
            "status": "ok",
            "peers": ["orchestrator"],
            "duration_ms": 41.6,
            "items": 2,
        },
        {"tool": "watch", "args": {}, "status": "unavailable"},
    ],
}


async def explain(session: dict[str, Any] | None, *, caller: Any = READER) -> Outcome:
    """Through a real executor; explaining calls no peer, so the mesh may be off."""
    executor = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    return await executor.execute(
        ToolCall(tool=NAME, args={}), caller=caller, trace_id="trace-tools-test", session=session
    )


# ---- the recorded turn ---------------------------------------------------------------------------


async def test_the_last_turn_is_read_from_the_session() -> None:
    out = await explain({LAST_TURN: TURN, "last_task_id": 7})
    assert out.status == "ok"
    assert out.result == TURN
    assert out.context == {}


def test_the_last_turn_for_chat() -> None:
    assert say(NAME, TURN, "chat") == (
        "**Last turn**: “undo that”\n"
        "\n"
        "- Planner: **rules** with confidence 0.87\n"
        "- `undo`(task\\_ids=\\[7, 8\\]): ok via orchestrator, 42 ms\n"
        "- `watch`(): unavailable\n"
        "- Trace: `4bf92f3577b34da6`"
    )


def test_the_last_turn_for_voice() -> None:
    voice = say(NAME, TURN, "voice")
    assert voice == (
        "I understood undo that with the rules planner with confidence 0.87. I used: undo, watch."
    )
    assert_speakable(voice)


def test_arguments_are_escaped_outside_the_code() -> None:
    turn = {**TURN, "calls": [{"tool": "cancel_tasks", "args": {"droplet_id": 14}, "status": "ok"}]}
    chat = say(NAME, turn, "chat")
    assert "(droplet\\_id=14): ok\n" in chat
    voice = say(NAME, turn, "voice")
    assert voice.endswith("I used: cancel tasks.")
    assert_speakable(voice)


def test_a_turn_without_a_tool_or_a_confidence() -> None:
    turn: dict[str, Any] = {"text": "hello", "planner": "gemini", "confidence": None, "calls": []}
    assert say(NAME, turn, "chat") == (
        "**Last turn**: “hello”\n\n- Planner: **gemini**\n- No tool was called."
    )
    assert say(NAME, turn, "voice") == (
        "I understood hello with the gemini planner. I called no tool."
    )


def test_a_sparse_record_still_reads() -> None:
    # Only what the record has is said: the planner defaults to the rules.
    assert say(NAME, {"text": "why"}, "chat") == (
        "**Last turn**: “why”\n\n- Planner: **rules**\n- No tool was called."
    )


@pytest.mark.parametrize("text", HOSTILE_NAMES)
def test_what_the_user_said_is_shown_as_text(text: str) -> None:
    turn = {**TURN, "text": text, "calls": [{"tool": "watch", "args": {"x": text}}]}
    chat = say(NAME, turn, "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert chat.splitlines()[0].startswith("**Last turn**: “")
    assert len(chat.splitlines()) == 5
    assert_speakable(say(NAME, turn, "voice"))


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_voice_never_contains_markdown_or_emoji(text: str, tool_name: str) -> None:
    turn = {"text": text, "planner": "rules", "calls": [{"tool": tool_name}]}
    assert_speakable(say(NAME, turn, "voice"))


# ---- no earlier turn -----------------------------------------------------------------------------


@pytest.mark.parametrize("session", [None, {}, {LAST_TURN: None}, {LAST_TURN: "cancel task 7"}])
async def test_no_earlier_turn(session: dict[str, Any] | None) -> None:
    out = await explain(session)
    assert out.status == "ok"
    assert out.result is None
    assert say(NAME, out.result, "chat") == (
        "There is no earlier turn in this conversation to explain."
    )
    assert say(NAME, out.result, "voice") == (
        "There is no earlier turn in this conversation to explain."
    )


# ---- arguments and permission --------------------------------------------------------------------


def test_it_takes_no_argument_and_reads() -> None:
    assert EXPLAIN.schema()["properties"] == {}
    assert plain_schema_problems(EXPLAIN.schema()) == []
    with pytest.raises(ArgsInvalid) as caught:
        EXPLAIN.parse({"turn": 2})
    assert caught.value.problems == ["turn: is not an argument of this tool"]
    assert not EXPLAIN.writes and EXPLAIN.permission == "read" and EXPLAIN.peers == ()
    assert EXPLAIN.allowed(READER) and EXPLAIN.allowed(WRITER)


async def test_without_read_it_is_forbidden() -> None:
    out = await explain({LAST_TURN: TURN}, caller=NOBODY)
    assert out.status == "forbidden"
    assert out.result is None
