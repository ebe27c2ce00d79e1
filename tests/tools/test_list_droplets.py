"""list_droplets: the droplet table, spoken groups, peers that failed, the static catalogue."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.mesh import Droplet
from app.mesh.catalogue import KNOWN_DROPLETS
from app.mesh.directory import DirectoryListing
from app.tools.base import ArgsInvalid, Channel
from app.tools.list_droplets import ListDroplets
from sandbox.seed import SEED_DROPLETS
from sandbox.testing import MeshHandle
from tests.tools.support import (
    HOSTILE_NAMES,
    MESH,
    NAMES,
    LiveMesh,
    assert_speakable,
    cells,
    down,
    listing,
    outcome,
    plain_schema_problems,
    say,
    table_rows,
    tool,
)

NAME = "list_droplets"

# ---- chat ----------------------------------------------------------------------------------------


def test_the_table_starts_with_the_summary() -> None:
    text = say(NAME, listing(MESH), "chat")
    assert text.splitlines()[0] == "**7 droplets: 4 active, 1 healthy, 2 down**"
    rows = table_rows(text)
    assert rows[0] == "| ID | Name | Status | Last heartbeat | Capabilities |"
    assert rows[1] == "|---:|---|---|---|---|"
    assert "| 1 | Registry | ✅ active | 12 s ago | registry, auth |" in rows
    assert "| 2 | Dashboard | ❌ down | — | — |" in rows
    assert len(rows) == 2 + len(MESH)


def test_rows_are_ordered_by_id() -> None:
    rows = table_rows(say(NAME, listing(MESH), "chat"))[2:]
    ids = [int(row.split("|")[1]) for row in rows]
    assert ids == sorted(d.id for d in MESH)


def test_a_filtered_listing_names_the_filter() -> None:
    text = say(NAME, listing(MESH[5:]), "chat", {"status": "down"})
    assert text.splitlines()[0] == "**2 droplets down**"
    assert len(table_rows(text)) == 4


@pytest.mark.parametrize("channel", ["chat", "voice"])
def test_a_filtered_empty_listing_says_so(channel: Channel) -> None:
    assert say(NAME, listing([]), channel, {"status": "down"}) == "No droplets are down right now."


def test_an_empty_mesh_says_nothing_is_registered() -> None:
    assert say(NAME, listing([]), "chat") == "No droplets are registered."
    assert say(NAME, listing([]), "voice") == "No droplets are registered."


def test_long_tables_are_cut_with_a_count_of_the_rest() -> None:
    many = [Droplet(id=i, name=f"Node {i}", status="active") for i in range(1, 61)]
    text = say(NAME, listing(many), "chat")
    assert len(table_rows(text)) == 2 + 50
    assert text.endswith("…and 10 more.")
    assert text.splitlines()[0] == "**60 droplets: 60 active**"


def test_many_capabilities_are_shortened() -> None:
    caps = [f"cap{i}" for i in range(8)]
    busy = Droplet(id=3, name="Busy", status="active", capabilities=caps)
    text = say(NAME, listing([busy]), "chat")
    assert "| cap0, cap1, cap2, cap3, cap4 (+3 more) |" in text


def test_a_partial_listing_says_which_peer_failed() -> None:
    only_registry = MESH[0].model_copy(update={"sources": ["registry"]})
    result = listing([only_registry], down("orchestrator"))
    chat = say(NAME, result, "chat")
    assert chat.startswith(
        "⚠️ The Orchestrator is unreachable right now; here is what the Registry knows:\n\n"
    )
    assert "**1 droplet: 1 active**" in chat
    voice = say(NAME, result, "voice")
    assert voice == (
        "The Orchestrator is unreachable right now. Here is what the Registry knows. "
        "One droplet. One is active: Registry."
    )


def test_a_catalogue_listing_says_where_it_comes_from() -> None:
    catalogue = [Droplet(id=1, name="Registry", status="unknown", sources=["catalogue"])]
    result = listing(catalogue, down("registry", "orchestrator"))
    chat = say(NAME, result, "chat")
    assert chat.startswith(
        "⚠️ The Registry and the Orchestrator are unreachable right now; "
        "here is what the static catalogue knows:"
    )
    assert "| 1 | Registry | ❔ unknown | — | — |" in chat


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_cannot_break_the_table(name: str) -> None:
    droplets = [Droplet(id=1, name=name, status="active", capabilities=["x|y"]), MESH[1]]
    text = say(NAME, listing(droplets), "chat")
    rows = table_rows(text)
    assert len(rows) == 4
    assert all(cells(row) == 5 for row in rows)
    assert "<script>" not in text
    assert "[link](" not in text
    assert "**bold**" not in text


def test_a_hostile_status_filter_is_escaped() -> None:
    text = say(NAME, listing([]), "chat", {"status": "<b>|x|</b>"})
    assert "<b>" not in text
    assert "\\|x\\|" in text


# ---- voice ---------------------------------------------------------------------------------------


def test_droplets_read_naturally_for_voice() -> None:
    assert say(NAME, listing(MESH), "voice") == (
        "Seven droplets. Four are active: Registry, Orchestrator, Chat Orchestrator and Voice. "
        "One is healthy: Visibility Deck. Two are down: Dashboard and Onboarding."
    )


def test_a_filtered_listing_for_voice() -> None:
    assert say(NAME, listing(MESH[5:]), "voice", {"status": "down"}) == (
        "Two droplets are down: Dashboard and Onboarding."
    )
    assert say(NAME, listing(MESH[6:]), "voice", {"status": "down"}) == (
        "One droplet is down: Onboarding."
    )


def test_long_voice_lists_are_capped() -> None:
    many = [Droplet(id=i, name=f"Node {i}", status="active") for i in range(1, 18)]
    text = say(NAME, listing(many), "voice")
    assert text.startswith("Seventeen droplets. Seventeen are active: Node 1, Node 2, Node 3")
    assert text.endswith("and 12 more.")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_spoken_as_plain_words(name: str) -> None:
    text = say(NAME, listing([Droplet(id=1, name=name, status="active")]), "voice")
    assert_speakable(text)


def test_error_is_said_as_in_error() -> None:
    # "in error", as droplet_status says it: never "are error".
    broken = [Droplet(id=3, name="Builder", status="error")]
    assert say(NAME, listing(broken), "voice") == "One droplet. One is in error: Builder."
    assert say(NAME, listing([]), "voice", {"status": "error"}) == (
        "No droplets are in error right now."
    )
    assert say(NAME, listing([]), "chat", {"status": "error"}) == (
        "No droplets are in error right now."
    )


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES, st.sampled_from(["active", "down", "error", "weird|status*"]))
def test_voice_never_contains_markdown_or_emoji(name: str, cap: str, status: str) -> None:
    droplets = [Droplet(id=1, name=name, status=status, capabilities=[cap]), *MESH[:2]]
    for result in (listing(droplets), listing(droplets, down("orchestrator"))):
        assert_speakable(say(NAME, result, "voice"))


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_chat_tables_keep_their_shape_whatever_the_names(name: str, status: str) -> None:
    droplets = [Droplet(id=1, name=name, status=status, capabilities=[status, name])]
    for row in table_rows(say(NAME, listing(droplets), "chat")):
        assert cells(row) == 5


# ---- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "inactive", "error", "healthy", "down"])
def test_every_droplet_status_is_a_valid_filter(status: str) -> None:
    args = ListDroplets().parse({"status": status})
    assert args.status == status


def test_no_filter_by_default() -> None:
    assert ListDroplets().parse({}).status is None


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"status": "sleeping"}, "status: Input should be"),
        ({"status": 3}, "status: Input should be"),
        ({"droplet_id": 3}, "droplet_id: is not an argument of this tool"),
    ],
)
def test_invalid_arguments_are_refused_readably(args: dict[str, object], problem: str) -> None:
    with pytest.raises(ArgsInvalid) as caught:
        ListDroplets().parse(args)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_schema_is_plain() -> None:
    schema = ListDroplets().schema()
    assert plain_schema_problems(schema) == []
    assert schema["additionalProperties"] is False
    assert "required" not in schema or schema["required"] == []
    status = schema["properties"]["status"]
    enums = [alt.get("enum") for alt in status.get("anyOf", [status]) if "enum" in alt]
    assert enums == [["active", "inactive", "error", "healthy", "down"]]


def test_nothing_is_required_so_nothing_is_asked() -> None:
    listing_tool = tool(NAME)
    assert listing_tool.required() == ()
    assert listing_tool.missing({}) == []
    assert not listing_tool.writes
    assert listing_tool.permission == "read"


# ---- one snapshot, rendered for many turns -------------------------------------------------------


def _render(tool_: ListDroplets, snapshot: DirectoryListing, channel: Channel, **args: str) -> str:
    return tool_.render(outcome(NAME, snapshot, args), channel)


def test_each_turn_on_the_same_snapshot_says_what_a_fresh_render_says() -> None:
    tool_ = ListDroplets()
    snapshot = listing(MESH, down("orchestrator"))
    cases: list[tuple[Channel, dict[str, str]]] = [
        ("chat", {}),
        ("voice", {}),
        ("chat", {"status": "down"}),
    ]
    for channel, args in cases * 2:
        fresh = _render(ListDroplets(), snapshot, channel, **args)
        assert _render(tool_, snapshot, channel, **args) == fresh


def test_a_new_snapshot_is_rendered_anew() -> None:
    tool_ = ListDroplets()
    before = _render(tool_, listing(MESH), "chat")
    changed = [d.model_copy(update={"status": "down"}) if d.id == 14 else d for d in MESH]
    after = _render(tool_, listing(changed), "chat")
    assert "| 14 | Visibility Deck | ❌ down |" in after
    assert after != before
    assert _render(tool_, listing(MESH), "chat") == before


def test_a_filtered_listing_leaves_the_whole_listing_as_it_was() -> None:
    tool_ = ListDroplets()
    snapshot = listing(MESH)
    whole = _render(tool_, snapshot, "chat")
    changed = [d.model_copy(update={"status": "down"}) for d in MESH]
    filtered = _render(tool_, listing(changed), "chat", status="down")
    assert "7 droplets down" in filtered
    assert _render(tool_, snapshot, "chat") == whole


def test_the_channel_and_the_filter_each_get_their_own_answer() -> None:
    tool_ = ListDroplets()
    snapshot = listing(MESH)
    chat = _render(tool_, snapshot, "chat")
    voice = _render(tool_, snapshot, "voice")
    filtered = _render(tool_, snapshot, "chat", status="down")
    assert "|" in chat and "|" not in voice
    assert filtered != chat and "down" in filtered.splitlines()[0]
    assert _render(tool_, snapshot, "chat") == chat


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_lists_the_sandbox_mesh_from_both_peers(live: LiveMesh) -> None:
    out = await live.run(NAME)
    assert out.status == "ok", out.message
    ids = [d.id for d in out.result.droplets]
    assert ids == sorted(s.droplet_id for s in SEED_DROPLETS)
    assert all(d.sources == ["registry", "orchestrator"] for d in out.result.droplets)
    text = say(NAME, out.result, "chat")
    assert text.startswith(f"**{len(ids)} droplets:")
    assert "| 14 | Visibility Deck |" in text


async def test_a_status_filter_reaches_the_mesh(live: LiveMesh) -> None:
    out = await live.run(NAME, {"status": "down"})
    assert out.status == "ok"
    assert out.result.droplets == []  # every seeded droplet heartbeats
    assert say(NAME, out.result, "voice", {"status": "down"}) == "No droplets are down right now."


async def test_one_peer_down_still_answers_from_the_other(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    sandbox.stop_orchestrator()
    out = await live.run(NAME)
    assert out.status == "ok"
    assert out.peer == "orchestrator"
    assert out.result.droplets and all(d.sources == ["registry"] for d in out.result.droplets)
    assert say(NAME, out.result, "chat").startswith(
        "⚠️ The Orchestrator is unreachable right now; here is what the Registry knows:"
    )


async def test_both_peers_down_answers_from_the_static_catalogue(
    sandbox: MeshHandle, live: LiveMesh
) -> None:
    sandbox.stop_registry()
    sandbox.stop_orchestrator()
    out = await live.run(NAME)
    assert out.status == "degraded"
    assert out.answered
    assert out.message is not None
    assert "registry" in out.message and "orchestrator" in out.message
    assert [d.id for d in out.result.droplets] == sorted(k.id for k in KNOWN_DROPLETS)
    assert all(d.sources == ["catalogue"] for d in out.result.droplets)
    chat = say(NAME, out.result, "chat")
    assert "unreachable right now; here is what the static catalogue knows:" in chat
    voice = say(NAME, out.result, "voice")
    assert_speakable(voice)
    assert "static catalogue" in voice
