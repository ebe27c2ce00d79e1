"""droplet_capabilities: what one droplet registered it can do, from the Orchestrator only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from app.conversation import replies
from app.domain.mesh import Droplet
from app.tools.base import ArgsInvalid
from app.tools.droplet_capabilities import DropletCapabilities
from app.tools.droplet_status import DropletReport
from sandbox.testing import MeshHandle
from tests.tools.support import (
    HOSTILE_NAMES,
    NAMES,
    LiveMesh,
    assert_speakable,
    down,
    plain_schema_problems,
    say,
    tool,
)

NAME = "droplet_capabilities"

DECK = Droplet(
    id=14,
    name="Visibility Deck",
    status="active",
    capabilities=["monitoring", "alerts", "snapshots"],
    sources=["registry", "orchestrator"],
)


def report(droplet: Droplet, *failed: str) -> DropletReport:
    return DropletReport(droplet.id, droplet, down(*failed))


# ---- chat ----------------------------------------------------------------------------------------


def test_capabilities_as_a_list() -> None:
    assert say(NAME, report(DECK), "chat") == (
        "**Visibility Deck (droplet 14)** can do:\n\n- monitoring\n- alerts\n- snapshots"
    )


def test_no_capabilities_says_what_that_means() -> None:
    bare = DECK.model_copy(update={"capabilities": []})
    assert say(NAME, report(bare), "chat") == (
        "Visibility Deck (droplet 14) registered no capabilities, so no work is routed to it "
        "by capability."
    )


def test_a_registry_outage_is_noted_but_the_answer_stands() -> None:
    text = say(NAME, report(DECK, "registry"), "chat")
    assert text.startswith(
        "⚠️ The Registry is unreachable right now; here is what the Orchestrator knows:\n\n"
    )
    assert text.endswith("- snapshots")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_show_as_text(name: str) -> None:
    hostile = DECK.model_copy(update={"name": name, "capabilities": [name, "ok"]})
    chat = say(NAME, report(hostile), "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert chat.endswith("\n- ok")
    # Each capability stays on its own line.
    assert len([line for line in chat.splitlines() if line.startswith("- ")]) == 2


# ---- voice ---------------------------------------------------------------------------------------


def test_capabilities_for_voice() -> None:
    text = say(NAME, report(DECK), "voice")
    assert text.startswith("Visibility Deck, droplet 14")
    assert text.endswith(" things: monitoring, alerts and snapshots.")
    assert_speakable(text)


def test_one_capability_is_one_thing() -> None:
    # A count is said as a word, and agrees with its noun (never "1 things").
    single = DECK.model_copy(update={"capabilities": ["charts"]})
    text = say(NAME, report(single), "voice")
    assert "can do one thing: charts." in text


def test_long_lists_are_capped_when_spoken() -> None:
    busy = DECK.model_copy(update={"capabilities": [f"skill {i}" for i in range(10)]})
    assert say(NAME, report(busy), "voice").endswith("skill 6, skill 7 and 2 more.")


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_voice_never_contains_markdown_or_emoji(name: str, capability: str) -> None:
    droplet = Droplet(id=3, name=name, capabilities=[capability, name])
    assert_speakable(say(NAME, report(droplet), "voice"))
    assert_speakable(say(NAME, report(droplet, "registry"), "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_the_droplet_is_required_and_asked_for() -> None:
    caps = tool(NAME)
    assert caps.required() == ("droplet_id",)
    assert caps.missing({}) == ["droplet_id"]
    assert caps.question(["droplet_id"], "chat") == (
        "Which droplet? Give me its number or name, for example **droplet 16**."
    )
    assert caps.question(["droplet_id"], "voice") == (
        "Which droplet? Tell me its number or name, for example droplet 16."
    )
    assert caps.peers == ("orchestrator",)


@pytest.mark.parametrize("args", [{}, {"droplet_id": 0}, {"droplet_id": 14, "verbose": True}])
def test_invalid_arguments_are_refused(args: dict[str, object]) -> None:
    with pytest.raises(ArgsInvalid):
        DropletCapabilities().parse(args)


def test_schema_is_plain() -> None:
    schema = DropletCapabilities().schema()
    assert plain_schema_problems(schema) == []
    assert schema["required"] == ["droplet_id"]


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_capabilities_of_a_live_droplet(live: LiveMesh) -> None:
    out = await live.run(NAME, {"droplet_id": 18})
    assert out.status == "ok", out.message
    assert out.context == {"last_droplet_id": 18}
    assert say(NAME, out.result, "chat") == (
        "**Voice (droplet 18)** can do:\n\n- voice\n- speech\\_to\\_text\n- text\\_to\\_speech"
    )


async def test_an_unknown_droplet_is_not_found(live: LiveMesh) -> None:
    out = await live.run(NAME, {"droplet_id": 999})
    assert out.status == "not_found"
    assert replies.failure(tool(NAME), out, "voice") == "Droplet 999 is not registered."


async def test_without_the_orchestrator_there_is_nothing_to_say(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    sandbox.stop_orchestrator()
    out = await live.run(NAME, {"droplet_id": 14})
    assert out.status == "unavailable"
    assert out.peer == "orchestrator"
    assert replies.failure(tool(NAME), out, "chat") == (
        "I couldn't look up what droplet 14 can do: the Orchestrator is unreachable right now. "
        "Try again in a moment."
    )
