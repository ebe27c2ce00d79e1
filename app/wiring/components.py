"""Builds every component from Settings once, and starts and stops them in the right order."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import structlog

from app.channels.events import EventBus, build_event_bus
from app.channels.gate import Gate
from app.channels.ws_hub import WebSocketHub
from app.config import Settings
from app.conversation.planners.hybrid import close_planner
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService
from app.domain.mesh import MeshEvent
from app.mesh.alerts import AlertLog
from app.mesh.leadership import Leader
from app.mesh.lifecycle import Lifecycle
from app.ops.health import HealthMonitor
from app.ops.metrics import Metrics
from app.ops.udc_info import About, Vitals, new_process_probe
from app.store.sessions import SessionStore
from app.utils.time import utcnow
from app.wiring.channels import build_gate
from app.wiring.conversation import build_conversation, task_runner
from app.wiring.mesh import MeshParts, build_leadership, build_lifecycle, build_mesh
from app.wiring.ops import build_health, features
from app.wiring.store import StoreClaims, build_store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Components:
    """What start-up built. Only the composition root and the lifespan see it whole; a route
    asks `app.channels.deps` for the one service it uses."""

    settings: Settings
    metrics: Metrics
    vitals: Vitals
    about: About
    health: HealthMonitor
    store: SessionStore
    conversation: ConversationService
    summarizer: Summarizer | None
    hub: WebSocketHub
    bus: EventBus
    alerts: AlertLog
    gate: Gate
    mesh: MeshParts
    lifecycle: Lifecycle | None
    leader: Leader
    background: list[asyncio.Task[None]] = field(default_factory=list)
    """Tasks `start` spawned and `stop` cancels."""


def build(settings: Settings) -> Components:
    metrics = Metrics()
    mesh = build_mesh(settings)
    store = build_store(settings)
    bus = build_event_bus(settings.event_bus_url)
    alerts = AlertLog(publish=bus.publish)
    talk = build_conversation(
        settings, store=store, mesh=mesh, alerts=alerts, bus=bus, metrics=metrics
    )
    gate = build_gate(settings, public_keys=mesh.public_keys)
    engine = talk.watch_engine

    async def mesh_event(event: MeshEvent) -> None:
        await alerts.add(event)
        if engine is not None:
            # A pushed health change is checked against the watches at once, not next round.
            await engine.on_event(event)

    lifecycle = build_lifecycle(
        settings,
        mesh,
        run_task=task_runner(gate=gate, conversation=talk.service),
        claims=StoreClaims(store=store),
        event_sink=mesh_event,
    )
    vitals = Vitals(process=new_process_probe())
    listed, public = features(settings, talk.summarizer)
    return Components(
        settings=settings,
        metrics=metrics,
        vitals=vitals,
        about=About(
            features=listed,
            public_features=public,
            planner=talk.planner.name,
            session_store=store.dialect,
            event_bus=bus.backend,
        ),
        health=build_health(
            store=store,
            vitals=vitals,
            metrics=metrics,
            mesh=mesh,
            lifecycle=lifecycle,
            bus=bus,
            planner=talk.planner,
        ),
        store=store,
        conversation=talk.service,
        summarizer=talk.summarizer,
        hub=WebSocketHub(),
        bus=bus,
        alerts=alerts,
        gate=gate,
        mesh=mesh,
        lifecycle=lifecycle,
        leader=build_leadership(
            settings, lifecycle, duties=[engine.run] if engine is not None else []
        ),
    )


async def start(components: Components) -> None:
    c = components
    await c.mesh.public_keys.start()
    if c.store.sqlite_file is not None:
        c.store.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    await c.store.open()
    await c.store.migrate()
    await c.bus.start(c.hub.dispatch)
    c.background.append(
        asyncio.create_task(c.store.run_cleanup(interval_seconds=600), name="session-cleanup")
    )
    await c.health.start()
    orchestrator = c.mesh.orchestrator
    if orchestrator is not None and not orchestrator.tokens.configured:
        log.warning(
            "orchestrator_not_configured",
            set="ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE or DROPLET_SECRET",
            effect="no registration, heartbeats or assigned tasks with the Orchestrator",
        )
    await c.leader.start()
    log.info(
        "runtime_started",
        at=utcnow().isoformat(),
        store=c.store.url,
        planner=c.about.planner,
        event_bus=c.bus.backend,
    )


async def stop(components: Components) -> None:
    c = components
    await c.leader.stop()
    await c.hub.close_all()
    for task in c.background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await c.health.stop()
    await c.bus.stop()
    await c.mesh.public_keys.stop()
    await c.mesh.aclose()
    await close_planner(c.conversation.planner)
    await c.gate.aclose()
    await c.store.close()
