"""help: what the assistant can do, built from every tool's own help entry."""

from __future__ import annotations

import re

import pytest

from app.domain.plan import ToolCall
from app.tools.base import ArgsInvalid, HelpEntry, Outcome
from app.tools.executor import ToolExecutor
from app.tools.help import Help
from tests.tools.support import (
    NOBODY,
    TOOLS,
    assert_speakable,
    mesh_off,
    plain_schema_problems,
    say,
    tool,
)

NAME = "help"
ENTRIES = [t.help for t in TOOLS if t.help is not None]


def test_chat_lists_every_tool_with_its_examples() -> None:
    text = say(NAME, None, "chat")
    lines = text.splitlines()
    assert lines[0] == "Here is what I can do:"
    for entry in ENTRIES:
        examples = ", ".join(f'"{e}"' for e in entry.examples)
        assert f"- **{entry.title}**: {examples}" in lines
    assert lines[-1] == (
        "I ask before changing anything: reply **yes** to go ahead or **no** to drop it."
    )
    assert '"create a verification task for droplet 14, priority 3"' in text


def test_every_tool_but_help_has_an_entry_in_order() -> None:
    titled = [t.name for t in TOOLS if t.help is not None]
    assert titled == [t.name for t in TOOLS if t.name != NAME]


def test_voice_is_plain_and_promises_to_ask() -> None:
    text = say(NAME, None, "voice")
    assert_speakable(text)
    assert text.startswith("I can ")
    assert text.endswith("I always ask before changing anything.")


def test_the_spoken_example_is_one_sentence() -> None:
    # The example is a question; it must not be followed by a stray full stop ("?.").
    text = say(NAME, None, "voice")
    assert "For example, say: " in text
    assert "?." not in text
    assert ".." not in text


def test_spoken_help_lists_things_one_can_do() -> None:
    # Every item continues "I can ...": "I can alerts" or "I can the whole mesh" is not English.
    things = say(NAME, None, "voice").split(". For example")[0].removeprefix("I can ")
    items = re.split(r", | and ", things)
    assert len(items) >= len(ENTRIES) - 1
    bare_titles = {"what a droplet can do", "tasks", "the whole mesh", "alerts", "your watches"}
    assert bare_titles.isdisjoint(items), sorted(bare_titles & set(items))


def test_a_help_with_its_own_entries() -> None:
    entries = [HelpEntry("Ping", ("ping",)), HelpEntry("Pong", ("pong", "pong twice"))]
    custom = Help(entries)
    out = Outcome(call=ToolCall(tool=NAME))
    assert '- **Pong**: "pong", "pong twice"' in custom.render(out, "chat")
    assert custom.render(out, "voice").startswith("I can ping and pong. For example, say: pong.")


def test_it_needs_no_permission_and_no_arguments() -> None:
    help_tool = tool(NAME)
    assert help_tool.permission is None
    assert help_tool.allowed(NOBODY)
    assert help_tool.required() == ()
    assert plain_schema_problems(help_tool.schema()) == []
    with pytest.raises(ArgsInvalid):
        help_tool.parse({"topic": "tasks"})


async def test_runs_for_anyone_without_the_mesh() -> None:
    executor = ToolExecutor(tools=TOOLS, mesh=mesh_off())
    out = await executor.execute(ToolCall(tool=NAME), caller=NOBODY, trace_id="t")
    assert out.status == "ok"
    assert out.result is None
    assert "Here is what I can do:" in tool(NAME).render(out, "chat")
