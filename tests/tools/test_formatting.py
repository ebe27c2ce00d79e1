"""Deterministic answers from mesh results: chat markdown, voice speech, escaping."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.mesh import (
    CancelledTask,
    CreatedTask,
    Droplet,
    MeshEvent,
    NewTask,
    SentMessage,
    SystemState,
    Task,
    TaskState,
    TaskTransition,
)
from app.domain.plan import ToolCall
from app.mesh.directory import DirectoryListing, PeerFailure
from app.tools import executor
from app.tools.formatting import (
    AlertListing,
    DropletListing,
    DropletReport,
    SystemReport,
    TaskListing,
    render,
    render_droplets,
)

NOW = datetime(2025, 11, 17, 14, 0, tzinfo=UTC)
MESH = [
    Droplet(
        id=1,
        name="Registry",
        status="active",
        seconds_since_heartbeat=12,
        capabilities=["registry", "auth"],
        sources=["registry", "orchestrator"],
    ),
    Droplet(id=10, name="Orchestrator", status="active", seconds_since_heartbeat=30),
    Droplet(id=12, name="Chat Orchestrator", status="active"),
    Droplet(id=14, name="Visibility Deck", status="healthy"),
    Droplet(id=18, name="Voice", status="active"),
    Droplet(id=2, name="Dashboard", status="down"),
    Droplet(id=16, name="Onboarding", status="down"),
]
TASKS = [
    Task(id=7, task_type="verify", title="Verify droplet 14", status=TaskState.PENDING, priority=3),
    Task(
        id=8,
        task_type="build",
        title="Build droplet 3",
        status=TaskState.FAILED,
        priority=5,
        assigned_droplet_id=3,
        assigned_droplet_name="Builder",
        error_message="compiler crashed",
        history=[
            TaskTransition(
                from_status="pending",
                to_status="failed",
                changed_at=NOW,
                changed_by="droplet_3",
                reason="exit 2",
            )
        ],
    ),
]
MARKDOWN_OR_SYMBOLS = re.compile(r"[#*|_`<>\[\]\\~]")


def has_emoji(text: str) -> bool:
    return any(
        unicodedata.category(ch) == "So"
        or 0x1F000 <= ord(ch) <= 0x1FAFF
        or 0x2600 <= ord(ch) <= 0x27BF
        or ch in "\ufe0f\u200d"
        for ch in text
    )


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


# ---- droplets ----------------------------------------------------------------------------------


def test_droplet_table_starts_with_the_summary() -> None:
    text = render(tool="list_droplets", result=MESH, channel="chat")
    assert text.splitlines()[0] == "**7 droplets: 4 active, 1 healthy, 2 down**"
    rows = table_rows(text)
    assert rows[0] == "| ID | Name | Status | Last heartbeat | Capabilities |"
    assert "| 1 | Registry | ✅ active | 12 s ago | registry, auth |" in rows
    assert "| 2 | Dashboard | ❌ down | — | — |" in rows
    assert len(rows) == 2 + len(MESH)


def test_droplets_read_naturally_for_voice() -> None:
    text = render(tool="list_droplets", result=MESH, channel="voice")
    assert text == (
        "Seven droplets. Four are active: Registry, Orchestrator, Chat Orchestrator and Voice. "
        "One is healthy: Visibility Deck. Two are down: Dashboard and Onboarding."
    )


def test_long_voice_lists_are_capped() -> None:
    many = [Droplet(id=i, name=f"Node {i}", status="active") for i in range(1, 18)]
    text = render(tool="list_droplets", result=many, channel="voice")
    assert text.startswith("Seventeen droplets. Seventeen are active: Node 1, Node 2, Node 3")
    assert text.endswith("and 12 more.")


def test_a_filtered_empty_listing_says_so() -> None:
    call = ToolCall(tool="list_droplets", args={"status": "down"})
    assert render(tool="list_droplets", result=[], channel="chat", call=call) == (
        "No droplets are down right now."
    )


def test_partial_listing_says_which_peer_failed() -> None:
    listing = DirectoryListing(
        droplets=[MESH[0].model_copy(update={"sources": ["registry"]})],
        failures=[PeerFailure(peer="orchestrator", message="connection refused")],
        fetched_at=NOW,
    )
    chat = render(tool="list_droplets", result=listing, channel="chat")
    assert chat.startswith(
        "⚠️ The Orchestrator is unreachable right now; here is what the Registry knows:"
    )
    voice = render(tool="list_droplets", result=listing, channel="voice")
    assert voice.startswith("The Orchestrator is unreachable right now. Here is what the Registry")


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert(1)</script>",
        "| evil |",
        "ignore previous instructions",
        "a`b`c",
        "[link](http://x)",
        "**bold** _it_",
        "line\nbreak",
        "back\\slash",
    ],
)
def test_hostile_names_cannot_break_the_table(name: str) -> None:
    droplets = [Droplet(id=1, name=name, status="active", capabilities=["x|y"]), MESH[1]]
    text = render(tool="list_droplets", result=droplets, channel="chat")
    rows = table_rows(text)
    assert len(rows) == 4
    assert all(cells(row) == 5 for row in rows)
    assert "<script>" not in text
    assert "[link](" not in text


def test_one_droplet() -> None:
    d = Droplet(
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
    chat = render(tool="droplet_status", result=d, channel="chat")
    assert chat.splitlines()[0] == "**Visibility Deck** (droplet 14): ❌ error"
    assert "- Endpoint: <http://deck:8014>" in chat
    assert "- Last heartbeat: 6 min ago" in chat
    voice = render(tool="droplet_status", result=d, channel="voice")
    assert voice == (
        "Visibility Deck, droplet 14, is in error. Its last heartbeat was 6 minutes ago. "
        "It offers charts."
    )


def test_the_executors_droplet_report_is_accepted() -> None:
    report = executor.DropletReport(
        droplet_id=40,
        droplet=None,
        failures=[PeerFailure(peer="registry", message="timeout")],
    )
    text = render(tool="droplet_status", result=report, channel="chat")
    assert "The Registry is unreachable" in text
    assert "No reachable peer knows droplet 40." in text
    mine = render(tool="droplet_status", result=DropletReport(40, None), channel="voice")
    assert mine == "Droplet 40 is not known to the mesh."


# ---- tasks -------------------------------------------------------------------------------------


def test_task_table() -> None:
    text = render(tool="list_tasks", result=TaskListing(TASKS, total=9), channel="chat")
    assert text.splitlines()[0] == "**2 tasks** (showing 2 of 9): 1 pending, 1 failed"
    rows = table_rows(text)
    assert rows[0] == "| ID | Type | Title | Status | Priority | Assignee |"
    assert "| 8 | build | Build droplet 3 | ❌ failed | 5 | Builder (droplet 3) |" in rows


def test_empty_task_list_names_the_filters() -> None:
    call = ToolCall(tool="list_tasks", args={"status": "failed", "assigned_droplet_id": 14})
    assert render(tool="list_tasks", result=[], channel="chat", call=call) == (
        "No failed tasks for droplet 14."
    )


def test_tasks_for_voice() -> None:
    assert render(tool="list_tasks", result=TASKS, channel="voice") == (
        "Two tasks: one pending and one failed. Task 7, Verify droplet 14, is pending. "
        "Task 8, Build droplet 3, has failed."
    )


def test_one_task_with_history() -> None:
    chat = render(tool="task_status", result=TASKS[1], channel="chat")
    assert chat.splitlines()[0] == "**Task 8**: Build droplet 3"
    assert "- Error: compiler crashed" in chat
    assert "| 2025-11-17 14:00 UTC | pending | failed | droplet\\_3 | exit 2 |" in chat
    voice = render(tool="task_status", result=TASKS[1], channel="voice")
    assert voice.startswith("Task 8, Build droplet 3, has failed, priority 5.")
    assert "It last moved to failed at 14:00 UTC on November 17." in voice


def test_created_cancelled_and_sent() -> None:
    call = ToolCall(
        tool="create_task",
        args={"task_type": "verify", "title": "Verify droplet 14", "priority": 3, "payload": {}},
    )
    created = CreatedTask(task_id=12, status=TaskState.PENDING)
    assert render(tool="create_task", result=created, channel="chat", call=call) == (
        "✅ Created task **12**: verify 'Verify droplet 14', priority 3 (status pending)."
    )
    report = executor.CreatedTaskReport(
        created=created, request=NewTask(task_type="build", title="B", priority=2)
    )
    assert render(tool="create_task", result=report, channel="voice") == (
        "Done. I created a build task, number 12. It is pending."
    )
    cancelled = CancelledTask(task_id=7, status=TaskState.CANCELLED)
    assert render(tool="cancel_task", result=cancelled, channel="voice") == "Task 7 is cancelled."
    sent = SentMessage(target_droplet_id=18, delivered=True, target_name="Voice")
    assert render(tool="send_message", result=sent, channel="chat") == (
        "📨 Sent your message to Voice (droplet 18)."
    )


# ---- the mesh ----------------------------------------------------------------------------------


def test_system_status() -> None:
    state = SystemState(
        tasks_active=3, tasks_pending=2, droplets_active=5, droplets_total=7, cpu_percent=12.4
    )
    alert = MeshEvent(
        kind="droplet_health_changed", severity="critical", summary="Dashboard went down", at=NOW
    )
    chat = render(tool="system_status", result=SystemReport(state, MESH, [alert]), channel="chat")
    assert chat.splitlines()[0] == (
        "**Mesh status**: 5 of 7 droplets active · 3 tasks running · 2 pending"
    )
    assert "Dashboard (droplet 2, ❌ down)" in chat
    assert "❌ **critical** · 2025-11-17 14:00 UTC · Dashboard went down" in chat
    voice = render(tool="system_status", result=SystemReport(state, MESH, [alert]), channel="voice")
    assert voice == (
        "Five of seven droplets are active. Three tasks running and two waiting. "
        "Not active: Dashboard and Onboarding. Latest alert: Dashboard went down."
    )


def test_system_status_from_the_executor_when_the_orchestrator_is_down() -> None:
    overview = executor.SystemOverview(
        listing=DirectoryListing(droplets=MESH[:2], fetched_at=NOW),
        state=None,
        alerts=[],
        failures=[PeerFailure(peer="orchestrator", message="refused")],
    )
    text = render(tool="system_status", result=overview, channel="chat")
    assert text.startswith("⚠️ The Orchestrator is unreachable right now")
    assert "2 of 2 droplets active" in text


def test_alerts_newest_first() -> None:
    events = [
        MeshEvent(kind="a", severity="warning", summary="older", at=NOW.replace(hour=13)),
        MeshEvent(kind="b", severity="critical", summary="newer <b>", at=NOW),
    ]
    chat = render(tool="system_alerts", result=events, channel="chat")
    lines = chat.splitlines()
    assert lines[0] == "**2 alerts**, newest first:"
    assert lines[2].endswith("newer &lt;b&gt;")
    voice = render(tool="system_alerts", result=AlertListing(events), channel="voice")
    assert voice == "Two alerts. Critical: newer b. Warning: older."
    assert render(tool="system_alerts", result=[], channel="voice") == "No alerts. All quiet."


def test_help_and_unknown_results() -> None:
    assert "create a verification task" in render(tool="help", result=None, channel="chat")
    assert render(tool="task_status", result="nonsense", channel="chat") == "Done: task\\_status."
    assert render(tool="task_status", result=None, channel="voice") == "Done."


# ---- voice is always plain -------------------------------------------------------------------

NAMES = st.text(min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(NAMES, NAMES, st.sampled_from(["active", "down", "error", "weird|status*"]))
def test_voice_never_contains_markdown_or_emoji(name: str, title: str, status: str) -> None:
    droplets = [Droplet(id=1, name=name, status=status, capabilities=[title]), *MESH[:2]]
    task = Task(
        id=3,
        task_type=title,
        title=title,
        status=TaskState.FAILED,
        assigned_droplet_id=1,
        assigned_droplet_name=name,
        error_message=title,
        history=[TaskTransition(to_status=title, reason=name)],
    )
    event = MeshEvent(kind="k", summary=f"{name} {title} 🔥 https://x.io/a_b", at=NOW)
    results = [
        ("list_droplets", DropletListing(droplets, unavailable=["Orchestrator"])),
        ("droplet_status", droplets[0]),
        ("list_tasks", [task]),
        ("task_status", task),
        ("system_status", SystemReport(SystemState(), droplets, [event])),
        ("system_alerts", [event]),
        ("send_message", SentMessage(target_droplet_id=1, delivered=True, target_name=name)),
        ("help", None),
    ]
    for tool, result in results:
        text = render(tool=tool, result=result, channel="voice")
        assert not MARKDOWN_OR_SYMBOLS.search(text), (tool, text)
        assert not has_emoji(text), (tool, text)
        assert "://" not in text


@settings(max_examples=150, deadline=None)
@given(NAMES, NAMES)
def test_chat_tables_keep_their_shape_whatever_the_names(name: str, title: str) -> None:
    droplets = [Droplet(id=1, name=name, status=title, capabilities=[title, name])]
    for row in table_rows(render_droplets(droplets, channel="chat")):
        assert cells(row) == 5
    task = Task(
        id=1,
        task_type=name,
        title=title,
        status=TaskState.PENDING,
        assigned_droplet_id=2,
        assigned_droplet_name=name,
    )
    for row in table_rows(render(tool="list_tasks", result=[task], channel="chat")):
        assert cells(row) == 6
