"""droplet_status: one droplet's health and details, for chat and voice, from the live mesh."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from app.conversation import replies
from app.domain.mesh import Droplet
from app.tools.base import ArgsInvalid
from app.tools.droplet_status import DropletReport, DropletStatus
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

NAME = "droplet_status"

DECK = Droplet(
    id=14,
    name="Visibility Deck",
    status="error",
    seconds_since_heartbeat=400,
    steward="Ann",
    endpoint="http://deck:8014",
    capabilities=["charts"],
    cpu=12.0,
    sources=["registry"],
)


def report(droplet: Droplet | None, *failed: str, droplet_id: int = 14) -> DropletReport:
    return DropletReport(droplet_id, droplet, down(*failed))


# ---- chat ----------------------------------------------------------------------------------------


def test_one_droplet_for_chat() -> None:
    chat = say(NAME, report(DECK), "chat")
    lines = chat.splitlines()
    assert lines[0] == "**Visibility Deck** (droplet 14): ❌ error"
    assert "- Last heartbeat: 6 min ago" in lines
    assert "- Steward: Ann" in lines
    assert "- Endpoint: <http://deck:8014>" in lines
    assert "- Capabilities: charts" in lines
    assert "- Load: CPU 12%" in lines
    assert lines[-1] == "- Known to: Registry"


def test_every_detail_the_peers_gave_is_shown() -> None:
    full = DECK.model_copy(
        update={
            "role": "visibility_deck",
            "version": "1.1.0",
            "mem": 41.6,
            "disk": 7.0,
            "sources": ["registry", "orchestrator"],
        }
    )
    chat = say(NAME, report(full), "chat")
    assert "- Role: visibility\\_deck" in chat
    assert "- Version: 1.1.0" in chat
    assert "- Load: CPU 12% · memory 42% · disk 7%" in chat
    assert "- Known to: Registry, Orchestrator" in chat


def test_an_unsafe_endpoint_is_not_a_link() -> None:
    sneaky = DECK.model_copy(update={"endpoint": "javascript:alert(1)"})
    chat = say(NAME, report(sneaky), "chat")
    assert "- Endpoint: javascript:alert(1)" in chat
    assert "<javascript" not in chat


def test_an_unknown_droplet_with_a_peer_down_says_what_is_known() -> None:
    text = say(NAME, report(None, "registry", droplet_id=40), "chat")
    assert text.startswith(
        "⚠️ The Registry is unreachable right now; here is what the Orchestrator knows:"
    )
    assert text.endswith("No reachable peer knows droplet 40.")


def test_a_catalogue_answer_says_both_peers_are_down() -> None:
    known = Droplet(id=14, name="Visibility Deck", sources=["catalogue"])
    chat = say(NAME, report(known, "registry", "orchestrator"), "chat")
    assert chat.startswith(
        "⚠️ The Registry and the Orchestrator are unreachable right now; "
        "here is what the static catalogue knows:"
    )
    assert "**Visibility Deck** (droplet 14): ❔ unknown" in chat
    voice = say(NAME, report(known, "registry", "orchestrator"), "voice")
    assert voice.endswith("Visibility Deck, droplet 14, is of unknown status.")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_show_as_text(name: str) -> None:
    hostile = DECK.model_copy(update={"name": name, "steward": name, "capabilities": [name]})
    chat = say(NAME, report(hostile), "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert chat.splitlines()[0].endswith("(droplet 14): ❌ error")
    assert_speakable(say(NAME, report(hostile), "voice"))


# ---- voice ---------------------------------------------------------------------------------------


def test_one_droplet_for_voice() -> None:
    assert say(NAME, report(DECK), "voice") == (
        "Visibility Deck, droplet 14, is in error. Its last heartbeat was 6 minutes ago. "
        "It offers charts."
    )


def test_voice_without_heartbeat_or_capabilities_is_short() -> None:
    quiet = Droplet(id=18, name="Voice", status="active")
    assert say(NAME, report(quiet, droplet_id=18), "voice") == "Voice, droplet 18, is active."


def test_many_capabilities_are_capped_when_spoken() -> None:
    busy = DECK.model_copy(update={"capabilities": ["a", "b", "c", "d", "e", "f"]})
    assert say(NAME, report(busy), "voice").endswith("It offers a, b, c, d and 2 more.")


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_voice_never_contains_markdown_or_emoji(name: str, status: str) -> None:
    droplet = Droplet(id=1, name=name, status=status, capabilities=[name], steward=status)
    assert_speakable(say(NAME, report(droplet, droplet_id=1), "voice"))
    assert_speakable(say(NAME, report(droplet, "orchestrator", droplet_id=1), "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_the_droplet_id_is_required_and_asked_for() -> None:
    status = tool(NAME)
    assert status.required() == ("droplet_id",)
    assert status.missing({}) == ["droplet_id"]
    assert status.missing({"droplet_id": 14}) == []
    assert status.question(["droplet_id"], "chat") == (
        "Which droplet? Give me its number or name, for example **droplet 14**."
    )
    assert status.question(["droplet_id"], "voice") == (
        "Which droplet? Tell me its number or name, for example droplet 14."
    )
    assert status.fan_out == "droplet_id"


@pytest.mark.parametrize("value", [0, -1, 10**9 + 1, "fourteen", None])
def test_invalid_droplet_ids_are_refused(value: object) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        DropletStatus().parse({"droplet_id": value})
    assert caught.value.problems[0].startswith("droplet_id: ")


def test_a_missing_id_is_a_readable_problem() -> None:
    with pytest.raises(ArgsInvalid) as caught:
        DropletStatus().parse({})
    assert caught.value.problems == ["droplet_id: Field required"]


def test_schema_is_plain() -> None:
    schema = DropletStatus().schema()
    assert plain_schema_problems(schema) == []
    assert schema["required"] == ["droplet_id"]
    assert schema["properties"]["droplet_id"]["type"] == "integer"
    assert schema["properties"]["droplet_id"]["minimum"] == 1


def test_reading_needs_only_read() -> None:
    status = tool(NAME)
    assert not status.writes
    assert status.permission == "read"
    assert status.action_for({"droplet_id": 14}) == "check droplet 14"


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_a_live_droplet(live: LiveMesh) -> None:
    out = await live.run(NAME, {"droplet_id": 14})
    assert out.status == "ok", out.message
    assert out.context == {"last_droplet_id": 14}
    droplet = out.result.droplet
    assert droplet.name == "Visibility Deck"
    assert droplet.capabilities == ["monitoring", "alerts", "snapshots"]
    assert droplet.sources == ["registry", "orchestrator"]
    chat = say(NAME, out.result, "chat")
    assert chat.splitlines()[0] == "**Visibility Deck** (droplet 14): ✅ active"
    assert "- Steward: Haythem" in chat
    voice = say(NAME, out.result, "voice")
    assert voice.startswith("Visibility Deck, droplet 14, is active.")
    assert_speakable(voice)


async def test_an_unknown_droplet_is_not_found(live: LiveMesh) -> None:
    out = await live.run(NAME, {"droplet_id": 999})
    assert out.status == "not_found"
    assert out.message == "droplet 999 is not known to the mesh"
    assert replies.failure(tool(NAME), out, "chat") == "Droplet 999 is not registered."


async def test_both_peers_down_answers_from_the_catalogue(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    sandbox.stop_registry()
    sandbox.stop_orchestrator()
    out = await live.run(NAME, {"droplet_id": 18})
    assert out.status == "degraded"
    assert out.result.droplet.name == "Voice"
    assert out.result.droplet.sources == ["catalogue"]
    assert "static catalogue" in say(NAME, out.result, "chat")
    # A droplet the catalogue does not know either: nobody can vouch for it.
    unknown = await live.run(NAME, {"droplet_id": 77})
    assert unknown.status == "unavailable"
    assert unknown.peer == "registry, orchestrator"
    assert not unknown.answered
