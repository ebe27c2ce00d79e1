"""system_status: the whole mesh at a glance: droplets up and down, tasks, recent alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.mesh import Droplet, MeshEvent, SystemState
from app.mesh.directory import PeerFailure
from app.mesh.peers import PeerError
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import (
    CHAT_ROWS,
    PEERS,
    alert_line,
    mark,
    name_list,
    peer_display,
    status_key,
    unavailable_note,
    with_note,
)
from app.utils.markup import ago, escape_markdown, number_word, plain_name, plural


@dataclass(frozen=True, slots=True)
class SystemOverview:
    state: SystemState | None
    droplets: Sequence[Droplet]
    alerts: Sequence[MeshEvent]
    failures: Sequence[PeerFailure]


class SystemStatusArgs(ToolArgs):
    pass


class SystemStatus(Tool[SystemStatusArgs]):
    name = "system_status"
    description = "Overall mesh status: droplets up and down, tasks active and pending, alerts."
    Args = SystemStatusArgs
    peers = ("orchestrator", "registry")
    cues = Cues(
        nouns=(
            "system",
            "mesh",
            "overview",
            "dashboard",
            "summary",
            "everything",
            "platform",
            "cluster",
            "infrastructure",
            "overall",
            "status",
            "state",
        ),
        phrases=(
            "system status",
            "how is the system",
            "how is the mesh",
            "system doing",
            "mesh doing",
            "how is the cluster",
            "how is the platform",
            "mesh status",
            "how is everything",
            "how everything is",
            "how things are",
            "how things look",
            "how are things",
            "how's everything",
            "is everything ok",
            "is everything okay",
            "everything ok",
            "status report",
            "health check",
            "big picture",
            "what is going on",
            "what's up",
            "what is happening",
            "overall health",
            "state of the mesh",
            "how are we doing",
            "all good",
            "status update",
            "sitrep",
            "give me an overview",
            "are we healthy",
            "are we ok",
            "are we okay",
            "are we good",
            "we healthy",
            "running smoothly",
            "everything running",
            "how is the mesh",
            "the mesh doing",
            "mesh doing",
        ),
        context=("status", "health", "state", "healthy", "up"),
        against=("droplet", "task", "alerts"),
    )
    help = HelpEntry(
        "The whole mesh", ("system status", "how is everything?"), spoken="sum up the whole mesh"
    )
    action = "get the system status"
    done = "checked"

    async def run(self, args: SystemStatusArgs, ctx: RunContext, out: Outcome) -> None:
        listing_task = asyncio.create_task(ctx.mesh.directory.list(trace_id=ctx.trace_id))
        state: SystemState | None = None
        failures: list[PeerFailure] = []
        try:
            state = await ctx.mesh.orchestrator.state(trace_id=ctx.trace_id)
        except PeerError as exc:
            failures.append(PeerFailure(peer=exc.peer, message=exc.message))
        listing = await listing_task
        for failure in listing.failures:
            if all(f.peer != failure.peer for f in failures):
                failures.append(failure)
        out.result = SystemOverview(state, listing.droplets, ctx.mesh.alerts(5), failures)
        if failures:
            out.peer = ", ".join(f.peer for f in failures)
            out.message = "; ".join(f"{f.peer}: {f.message}" for f in failures)
            if state is None and all(d.sources == ["catalogue"] for d in listing.droplets):
                out.status = "degraded"

    def render(self, out: Outcome, channel: Channel) -> str:
        report: SystemOverview = out.result
        unavailable = [peer_display(f.peer) for f in report.failures]
        state, droplets = report.state, list(report.droplets)
        if all(d.sources == ["catalogue"] for d in droplets):
            droplets = []  # the static catalogue says who exists, not who is up
        active = state.droplets_active if state is not None else None
        total = state.droplets_total if state is not None else None
        if droplets and (active is None or total is None):
            total = len(droplets)
            active = sum(1 for d in droplets if status_key(d.status) in ("active", "healthy"))
        down = [d for d in droplets if status_key(d.status) in ("error", "down", "inactive")]
        running = state.tasks_active if state is not None else None
        waiting = state.tasks_pending if state is not None else None
        alerts = sorted(report.alerts, key=lambda e: e.at, reverse=True)
        note = unavailable_note(
            unavailable, known_from=[p for p in PEERS if p not in unavailable], channel=channel
        )
        if channel == "voice":
            parts: list[str] = []
            if active is not None and total is not None:
                verb = "is" if active == 1 else "are"
                share = f"{number_word(active, capital=True)} of {number_word(total)}"
                parts.append(f"{share} droplets {verb} active.")
            if running is not None or waiting is not None:
                parts.append(
                    f"{number_word(running or 0, capital=True)} "
                    f"{plural(running or 0, 'task')} running "
                    f"and {number_word(waiting or 0)} waiting."
                )
            if down:
                parts.append(f"Not active: {name_list([d.name for d in down])}.")
            if alerts:
                parts.append(f"Latest alert: {plain_name(alerts[0].summary, limit=120)}.")
            return with_note(note, " ".join(parts) or "I have no live figures right now.", channel)
        heads = []
        if active is not None and total is not None:
            heads.append(f"{active} of {total} droplets active")
        if running is not None:
            heads.append(f"{running} {plural(running, 'task')} running")
        if waiting is not None:
            heads.append(f"{waiting} pending")
        lines = [f"**Mesh status**: {' · '.join(heads) if heads else 'no live figures right now'}"]
        if down or alerts or state is not None:
            lines.append("")
        if down:
            names = ", ".join(
                f"{escape_markdown(d.name, limit=40)} (droplet {d.id}, {mark(d.status)} "
                f"{escape_markdown(d.status)})"
                for d in down[:CHAT_ROWS]
            )
            lines.append(f"- Not active: {names}")
        if state is not None:
            load = []
            if state.cpu_percent is not None:
                load.append(f"CPU {state.cpu_percent:.0f}%")
            if state.memory_mb is not None:
                load.append(f"memory {state.memory_mb:.0f} MB")
            if state.uptime_seconds is not None:
                load.append(f"up {ago(state.uptime_seconds).removesuffix(' ago')}")
            if load:
                lines.append(f"- Orchestrator: {' · '.join(load)}")
        for event in alerts[:3]:
            lines.append(f"- {alert_line(event)}")
        return with_note(note, "\n".join(lines).rstrip(), channel)
