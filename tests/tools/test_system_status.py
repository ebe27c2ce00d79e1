"""system_status: the whole mesh at a glance, from both peers, with what is missing said."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from app.domain.mesh import Droplet, MeshEvent, SystemState
from app.mesh.directory import PeerFailure
from app.tools.base import ArgsInvalid
from app.tools.system_status import SystemOverview, SystemStatus
from sandbox.testing import MeshHandle
from tests.tools.support import (
    HOSTILE_NAMES,
    MESH,
    NAMES,
    NOW,
    LiveMesh,
    assert_speakable,
    down,
    plain_schema_problems,
    say,
    tool,
)

NAME = "system_status"
STATE = SystemState(
    tasks_active=3, tasks_pending=2, droplets_active=5, droplets_total=7, cpu_percent=12.4
)
ALERT = MeshEvent(
    kind="droplet_health_changed", severity="critical", summary="Dashboard went down", at=NOW
)
CATALOGUE = [Droplet(id=1, name="Registry", status="unknown", sources=["catalogue"])]


def overview(
    state: SystemState | None,
    droplets: list[Droplet],
    alerts: list[MeshEvent] | None = None,
    failures: list[PeerFailure] | None = None,
) -> SystemOverview:
    return SystemOverview(state, droplets, alerts or [], failures or [])


# ---- chat ----------------------------------------------------------------------------------------


def test_system_status_for_chat() -> None:
    chat = say(NAME, overview(STATE, MESH, [ALERT]), "chat")
    assert chat.splitlines() == [
        "**Mesh status**: 5 of 7 droplets active · 3 tasks running · 2 pending",
        "",
        "- Not active: Dashboard (droplet 2, ❌ down), Onboarding (droplet 16, ❌ down)",
        "- Orchestrator: CPU 12%",
        "- ❌ **critical** · 2025-11-17 14:00 UTC · Dashboard went down",
    ]


def test_orchestrator_load_and_uptime() -> None:
    state = STATE.model_copy(update={"memory_mb": 79.4, "uptime_seconds": 7200})
    assert "- Orchestrator: CPU 12% · memory 79 MB · up 2 h" in say(
        NAME, overview(state, MESH), "chat"
    )


def test_only_the_three_newest_alerts_are_shown() -> None:
    alerts = [
        MeshEvent(kind="k", severity="warning", summary=f"alert {h}", at=NOW.replace(hour=h))
        for h in range(8, 14)
    ]
    chat = say(NAME, overview(STATE, MESH, alerts), "chat")
    shown = [line for line in chat.splitlines() if "alert " in line]
    assert [line.rsplit(" ", 1)[-1] for line in shown] == ["13", "12", "11"]


def test_the_orchestrator_down_counts_from_the_registry() -> None:
    text = say(NAME, overview(None, MESH[:2], failures=down("orchestrator")), "chat")
    assert text.startswith(
        "⚠️ The Orchestrator is unreachable right now; here is what the Registry knows:"
    )
    assert text.endswith("**Mesh status**: 2 of 2 droplets active")


def test_both_peers_down_has_no_live_figures() -> None:
    result = overview(None, CATALOGUE, failures=down("orchestrator", "registry"))
    assert say(NAME, result, "chat") == (
        "⚠️ The Orchestrator and the Registry are unreachable right now, so I have nothing "
        "live to show.\n\n**Mesh status**: no live figures right now"
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_and_alerts_show_as_text(name: str) -> None:
    bad = Droplet(id=4, name=name, status="error")
    alert = MeshEvent(kind="k", severity="warning", summary=name, at=NOW)
    chat = say(NAME, overview(STATE, [bad], [alert]), "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert "(droplet 4, ❌ error)" in chat


# ---- voice ---------------------------------------------------------------------------------------


def test_system_status_for_voice() -> None:
    assert say(NAME, overview(STATE, MESH, [ALERT]), "voice") == (
        "Five of seven droplets are active. Three tasks running and two waiting. "
        "Not active: Dashboard and Onboarding. Latest alert: Dashboard went down."
    )


def test_the_orchestrator_down_for_voice() -> None:
    assert say(NAME, overview(None, MESH[:2], failures=down("orchestrator")), "voice") == (
        "The Orchestrator is unreachable right now. Here is what the Registry knows. "
        "Two of two droplets are active."
    )


def test_one_active_droplet_agrees_in_number() -> None:
    state = SystemState(droplets_active=1, droplets_total=2, tasks_active=1, tasks_pending=0)
    assert say(NAME, overview(state, []), "voice") == (
        "One of two droplets is active. One task running and zero waiting."
    )


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_voice_never_contains_markdown_or_emoji(name: str, summary: str) -> None:
    droplets = [Droplet(id=1, name=name, status="down"), *MESH[:2]]
    event = MeshEvent(kind="k", summary=f"{name} {summary} 🔥 https://x.io/a_b", at=NOW)
    assert_speakable(say(NAME, overview(SystemState(), droplets, [event]), "voice"))
    assert_speakable(say(NAME, overview(None, droplets, [event], down("orchestrator")), "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_it_takes_no_arguments() -> None:
    status = tool(NAME)
    assert status.required() == ()
    assert status.missing({}) == []
    assert plain_schema_problems(status.schema()) == []
    assert status.schema()["properties"] == {}
    with pytest.raises(ArgsInvalid) as caught:
        SystemStatus().parse({"verbose": True})
    assert caught.value.problems == ["verbose: is not an argument of this tool"]


# ---- against the sandbox mesh --------------------------------------------------------------------


async def test_the_live_mesh(live: LiveMesh) -> None:
    out = await live.run(NAME)
    assert out.status == "ok", out.message
    state = out.result.state
    assert state is not None
    assert state.droplets_total == len(out.result.droplets)
    assert state.tasks_pending is not None and state.tasks_pending >= 1
    chat = say(NAME, out.result, "chat")
    assert chat.startswith(
        f"**Mesh status**: {state.droplets_active} of {state.droplets_total} droplets active · "
        f"{state.tasks_active} tasks running · {state.tasks_pending} pending"
    )
    assert_speakable(say(NAME, out.result, "voice"))


async def test_the_alerts_come_from_the_alert_log(live: LiveMesh) -> None:
    await live.alerts.add(ALERT)
    out = await live.run(NAME)
    assert out.result.alerts == [ALERT]
    assert "Latest alert: Dashboard went down." in say(NAME, out.result, "voice")


async def test_the_orchestrator_down_still_answers(sandbox: MeshHandle, live: LiveMesh) -> None:
    sandbox.stop_orchestrator()
    out = await live.run(NAME)
    assert out.status == "ok"  # the Registry's figures are first-hand
    assert out.result.state is None
    assert out.peer == "orchestrator"
    assert say(NAME, out.result, "chat").startswith(
        "⚠️ The Orchestrator is unreachable right now; here is what the Registry knows:"
    )


async def test_both_peers_down_is_degraded(sandbox: MeshHandle, live: LiveMesh) -> None:
    sandbox.stop_registry()
    sandbox.stop_orchestrator()
    out = await live.run(NAME)
    assert out.status == "degraded"
    assert out.answered
    assert "no live figures right now" in say(NAME, out.result, "chat")
