"""system_alerts: recent warnings and worse, newest first, unverified ones marked and last."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings

from app.domain.identity import Caller, Identity
from app.domain.mesh import MeshEvent
from app.domain.plan import ToolCall
from app.mesh.alerts import AlertLog
from app.tools.base import ArgsInvalid
from app.tools.executor import ToolExecutor
from app.tools.system_alerts import DEFAULT_LIMIT, SystemAlerts
from tests.tools.support import (
    EVENTS,
    HOSTILE_NAMES,
    NAMES,
    NOW,
    TOOLS,
    LiveMesh,
    assert_speakable,
    mesh_off,
    plain_schema_problems,
    say,
    tool,
)

NAME = "system_alerts"
SPOOFED = MeshEvent(
    kind="x",
    severity="warning",
    summary="spoofed",
    at=NOW.replace(hour=15),
    verified=False,
    via="10.0.0.9",
)


async def _ignore(_frame: dict[str, object]) -> None:
    return None


# ---- chat ----------------------------------------------------------------------------------------


def test_alerts_newest_first() -> None:
    lines = say(NAME, EVENTS, "chat").splitlines()
    assert lines == [
        "**2 alerts**, newest first:",
        "",
        "- ❌ **critical** · 2025-11-17 14:00 UTC · newer &lt;b&gt;",
        "- ⚠️ **warning** · 2025-11-17 13:00 UTC · older",
    ]


def test_unverified_alerts_come_last_and_are_marked() -> None:
    lines = say(NAME, [SPOOFED, *EVENTS], "chat").splitlines()
    assert lines[0] == "**3 alerts**, newest first:"
    assert lines[-1] == (
        "- ⚠️ **warning** · 2025-11-17 15:00 UTC · spoofed · _unverified, via 10.0.0.9_"
    )


def test_no_alerts_is_all_quiet() -> None:
    assert say(NAME, [], "chat") == "No alerts. All quiet. ✅"
    assert say(NAME, [], "voice") == "No alerts. All quiet."


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_summaries_show_as_text(name: str) -> None:
    event = MeshEvent(
        kind="k", severity="warning", summary=name, at=NOW, verified=False, via=f"{name}"
    )
    chat = say(NAME, [event], "chat")
    assert "<script>" not in chat
    assert "[link](" not in chat
    assert len(chat.splitlines()) == 3  # a newline in a summary stays inside its item


# ---- voice ---------------------------------------------------------------------------------------


def test_alerts_for_voice() -> None:
    assert say(NAME, EVENTS, "voice") == "Two alerts. Critical: newer b. Warning: older."


def test_unverified_alerts_are_said_to_be_so() -> None:
    assert say(NAME, [SPOOFED, *EVENTS], "voice") == (
        "Three alerts. Critical: newer b. Warning: older. Warning, unverified: spoofed."
    )


def test_only_three_are_read_out() -> None:
    events = [
        MeshEvent(kind="k", severity="warning", summary=f"alert {i}", at=NOW + timedelta(i))
        for i in range(5)
    ]
    text = say(NAME, events, "voice")
    assert text.startswith("Five alerts. Warning: alert 4. Warning: alert 3. Warning: alert 2.")
    assert text.endswith("And 2 more.")


@settings(max_examples=100, deadline=None)
@given(NAMES, NAMES)
def test_voice_never_contains_markdown_or_emoji(name: str, summary: str) -> None:
    event = MeshEvent(kind="k", summary=f"{name} {summary} 🔥 https://x.io/a_b", at=NOW)
    assert_speakable(say(NAME, [event, *EVENTS], "voice"))


# ---- arguments -----------------------------------------------------------------------------------


def test_the_limit_is_optional_and_bounded() -> None:
    assert SystemAlerts().parse({}).limit is None
    assert SystemAlerts().parse({"limit": 100}).limit == 100
    for bad in (0, 101, "many"):
        with pytest.raises(ArgsInvalid) as caught:
            SystemAlerts().parse({"limit": bad})
        assert caught.value.problems[0].startswith("limit: ")
    assert tool(NAME).required() == ()
    assert plain_schema_problems(tool(NAME).schema()) == []


def test_no_peer_is_called() -> None:
    assert tool(NAME).peers == ()


# ---- running -------------------------------------------------------------------------------------


async def test_runs_without_the_mesh_from_the_alert_log() -> None:
    log = AlertLog(publish=_ignore)
    info = MeshEvent(kind="task_created", severity="info", summary="a task", at=NOW)
    for event in [info, *EVENTS]:
        await log.add(event)
    executor = ToolExecutor(tools=TOOLS, mesh=mesh_off(log))
    caller = Caller(Identity("user", "ops"), frozenset({"read"}))
    out = await executor.execute(ToolCall(tool=NAME), caller=caller, trace_id="t")
    assert out.status == "ok"
    assert [e.summary for e in out.result] == ["newer <b>", "older"]  # info is not an alert
    limited = await executor.execute(
        ToolCall(tool=NAME, args={"limit": 1}), caller=caller, trace_id="t"
    )
    assert [e.summary for e in limited.result] == ["newer <b>"]


async def test_the_default_limit(live: LiveMesh) -> None:
    for i in range(DEFAULT_LIMIT + 5):
        await live.alerts.add(
            MeshEvent(kind="k", severity="warning", summary=f"a{i}", at=NOW + timedelta(i))
        )
    out = await live.run(NAME)
    assert out.status == "ok"
    assert len(out.result) == DEFAULT_LIMIT
    assert out.result[0].summary == f"a{DEFAULT_LIMIT + 4}"
