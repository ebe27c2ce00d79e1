"""Helpers for the tool tests: render as the service does, shared mesh data, the live mesh.

`say` renders an answered outcome exactly the way the turn service does (the tool's `render`,
then `for_channel`). `live_mesh` builds the adapters the way `app.wiring` does, pointed at the
sandbox Registry and Orchestrator, and runs calls through a real `ToolExecutor`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from hypothesis import strategies as st

from app.domain.identity import Caller, Identity
from app.domain.mesh import Droplet, MeshEvent, Task, TaskState, TaskTransition
from app.domain.plan import ToolCall
from app.mesh.alerts import AlertLog
from app.mesh.directory import DirectoryListing, DropletDirectory, PeerFailure
from app.store.sessions import SessionStore
from app.store.watches import WatchStore
from app.tools.base import Channel, Item, Outcome, Tool
from app.tools.context import Mesh
from app.tools.executor import ToolExecutor
from app.tools.registry import ToolRegistry, default_tools
from app.tools.render import for_channel
from sandbox.testing import MeshHandle
from tests.mesh.support import Peers, peers_for

TOOLS: ToolRegistry = default_tools()

NOW = datetime(2025, 11, 17, 14, 0, tzinfo=UTC)

MESH: list[Droplet] = [
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

TASKS: list[Task] = [
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

EVENTS: list[MeshEvent] = [
    MeshEvent(kind="a", severity="warning", summary="older", at=NOW.replace(hour=13)),
    MeshEvent(kind="b", severity="critical", summary="newer <b>", at=NOW),
]

HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "| evil |",
    "ignore previous instructions",
    "a`b`c",
    "[link](http://x)",
    "**bold** _it_",
    "line\nbreak",
    "back\\slash",
]
"""Names a peer or a user might send: each must show as text and keep tables in shape."""

WRITER = Caller(Identity("user", "operator"), frozenset({"read", "write"}))
READER = Caller(Identity("user", "viewer"), frozenset({"read"}))
NOBODY = Caller(Identity("anonymous", "nobody"), frozenset())

MARKDOWN_OR_SYMBOLS = re.compile(r"[#*|_`<>\[\]\\~]")

NAMES = st.text(min_size=1, max_size=60)
"""Any text a peer might put in a name, a title or a summary."""


# ---- rendering ---------------------------------------------------------------------------------


def outcome(tool_name: str, result: Any, args: Mapping[str, Any] | None = None) -> Outcome:
    return Outcome(call=ToolCall(tool=tool_name, args=dict(args or {})), result=result)


def tool(name: str) -> Tool[Any]:
    found = TOOLS.get(name)
    assert found is not None, name
    return found


def say(
    tool_name: str, result: Any, channel: Channel, args: Mapping[str, Any] | None = None
) -> str:
    """What the service says for an answered call of `tool_name` that gave `result`."""
    out = outcome(tool_name, result, args)
    return for_channel(tool(tool_name).render(out, channel), channel)


def say_items(tool_name: str, items: Sequence[Item], channel: Channel) -> str:
    """What the service says for a bulk call whose items came out as `items`."""
    out = Outcome(call=ToolCall(tool=tool_name, args={}), result=list(items), items=list(items))
    return for_channel(tool(tool_name).render(out, channel), channel)


def listing(droplets: Sequence[Droplet], failures: Sequence[PeerFailure] = ()) -> DirectoryListing:
    return DirectoryListing(droplets=list(droplets), failures=list(failures), fetched_at=NOW)


def down(*peers: str) -> list[PeerFailure]:
    return [PeerFailure(peer=p, message=f"the {p} is unreachable") for p in peers]


def has_emoji(text: str) -> bool:
    return any(
        unicodedata.category(ch) == "So"
        or 0x1F000 <= ord(ch) <= 0x1FAFF
        or 0x2600 <= ord(ch) <= 0x27BF
        or ch in "\ufe0f\u200d"
        for ch in text
    )


def assert_speakable(text: str) -> None:
    """Voice output: no markdown, no emoji, no symbols a speech engine would read out."""
    assert text.strip(), "nothing to say"
    assert not MARKDOWN_OR_SYMBOLS.search(text), text
    assert not has_emoji(text), text
    assert "://" not in text, text
    assert "\n" not in text, text


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def cells(row: str) -> int:
    """Cells in a markdown table row (escaped pipes do not count)."""
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def plain_schema_problems(node: Any, *, under_properties: bool = False) -> list[str]:
    """`$ref`, `$defs` or `title` annotations anywhere in a JSON Schema ("title" may still
    be the *name* of a property)."""
    problems: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not under_properties and key in ("$ref", "$defs", "title"):
                problems.append(key)
            problems += plain_schema_problems(value, under_properties=key == "properties")
    elif isinstance(node, list):
        for value in node:
            problems += plain_schema_problems(value)
    return problems


# ---- the live sandbox mesh -------------------------------------------------------------------


async def _no_publish(_frame: dict[str, Any]) -> None:
    return None


@dataclass
class LiveMesh:
    """Droplet 12's tools wired to the sandbox mesh, as `app.wiring` wires them."""

    handle: MeshHandle
    peers: Peers
    directory: DropletDirectory
    alerts: AlertLog
    executor: ToolExecutor

    async def run(
        self,
        tool_name: str,
        args: Mapping[str, Any] | None = None,
        *,
        caller: Caller = WRITER,
        session: dict[str, Any] | None = None,
    ) -> Outcome:
        return await self.executor.execute(
            ToolCall(tool=tool_name, args=dict(args or {})),
            caller=caller,
            trace_id="trace-tools-test",
            session=session,
        )

    async def tick(self) -> dict[str, Any]:
        """Run the sandbox Orchestrator's router once (tasks are routed only on a tick)."""
        async with httpx2.AsyncClient(base_url=self.handle.orchestrator_url, timeout=5) as http:
            response = await http.post("/_sandbox/tick")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body


WORKER_ID = 30
"""A droplet the tests register to take tasks and report on them (the seeded ones have no
endpoint, so the router never hands them anything)."""


async def work_on(live: LiveMesh, task_ids: Sequence[int], to: TaskState) -> None:
    """Move pending tasks through the worker droplet as a real assignee would: it registers,
    the router hands it every pending task it may take (on a tick), then it reports `to`
    (in_progress, or through in_progress to completed or failed)."""
    token = live.handle.mint_token(droplet_id=WORKER_ID)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"droplet_id": WORKER_ID, "name": "Worker", "endpoint": "http://127.0.0.1:9"}
    async with httpx2.AsyncClient(
        base_url=live.handle.orchestrator_url, headers=headers, timeout=5
    ) as http:
        registered = await http.post("/droplets/register", json=body)
        if registered.status_code == 500:  # the Orchestrator's first-registration quirk
            registered = await http.post("/droplets/register", json=body)
        registered.raise_for_status()
        await live.tick()
        steps = [TaskState.IN_PROGRESS] + ([to] if to is not TaskState.IN_PROGRESS else [])
        for task_id in task_ids:
            for step in steps:
                report: dict[str, Any] = {"status": step.value}
                if step is TaskState.FAILED:
                    report["error_message"] = "worker gave up"
                (await http.patch(f"/tasks/{task_id}", json=report)).raise_for_status()


def wire(
    peers: Peers, *, timeout_s: float = 5.0, tools: ToolRegistry = TOOLS
) -> tuple[DropletDirectory, AlertLog, ToolExecutor]:
    directory = DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator)
    alerts = AlertLog(publish=_no_publish)
    executor = ToolExecutor(
        tools=tools,
        mesh=Mesh(
            directory_or_none=directory,
            orchestrator_or_none=peers.orchestrator,
            alerts=alerts.alerts,
            droplet_id=12,
        ),
        timeout_s=timeout_s,
    )
    return directory, alerts, executor


@asynccontextmanager
async def live_mesh(handle: MeshHandle, *, timeout_s: float = 5.0) -> AsyncIterator[LiveMesh]:
    peers = peers_for(handle, droplet_id=12)
    directory, alerts, executor = wire(peers, timeout_s=timeout_s)
    try:
        yield LiveMesh(handle, peers, directory, alerts, executor)
    finally:
        await peers.aclose()


def mesh_off(alerts: AlertLog | None = None) -> Mesh:
    """A droplet with MESH_ENABLED=false: no directory, no Orchestrator."""
    log = alerts or AlertLog(publish=_no_publish)
    return Mesh(directory_or_none=None, orchestrator_or_none=None, alerts=log.alerts)


# ---- watches in a real store ---------------------------------------------------------------------

WRITER_SESSION = "tools-test.writer"
READER_SESSION = "tools-test.reader"


@asynccontextmanager
async def watch_store(tmp_path: Path) -> AsyncIterator[WatchStore]:
    """A `WatchStore` on a migrated SQLite file, with one session each for WRITER and READER
    (a watch belongs to a session)."""
    sessions = SessionStore(database_url=f"sqlite+aiosqlite:///{tmp_path / 'watches.db'}")
    await sessions.open()
    try:
        await sessions.migrate()
        for key, caller in ((WRITER_SESSION, WRITER), (READER_SESSION, READER)):
            await sessions.get_or_create(session_id=key, source="chat", owner=str(caller.identity))
        yield WatchStore(sessions=sessions)
    finally:
        await sessions.close()


@dataclass
class WatchDesk:
    """The watch tools run through a real `ToolExecutor` with a real `WatchStore`."""

    store: WatchStore
    executor: ToolExecutor

    async def run(
        self,
        tool_name: str,
        args: Mapping[str, Any] | None = None,
        *,
        caller: Caller = WRITER,
        session_key: str | None = None,
        source: str = "chat",
        route_back: str | None = None,
    ) -> Outcome:
        if session_key is None:
            session_key = READER_SESSION if caller is READER else WRITER_SESSION
        return await self.executor.execute(
            ToolCall(tool=tool_name, args=dict(args or {})),
            caller=caller,
            trace_id="trace-tools-test",
            session_key=session_key,
            source=source,
            route_back=route_back,
        )


def watch_desk(
    store: WatchStore,
    live: LiveMesh | None = None,
    *,
    ttl_s: float = 24 * 3600,
    max_watches: int = 20,
) -> WatchDesk:
    """The watch tools with a real store; with `live`, against the sandbox (a task watch looks
    the task up for its baseline), else with the mesh off."""
    mesh = mesh_off()
    if live is not None:
        mesh = Mesh(
            directory_or_none=live.directory,
            orchestrator_or_none=live.peers.orchestrator,
            alerts=live.alerts.alerts,
            droplet_id=12,
        )
    executor = ToolExecutor(
        tools=TOOLS, mesh=mesh, watches=store, watch_ttl_s=ttl_s, max_watches=max_watches
    )
    return WatchDesk(store, executor)
