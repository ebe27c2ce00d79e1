"""Builds every component from Settings once, and starts and stops them in the right order."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from functools import partial
from typing import Any, cast

import structlog

from app import __version__
from app.channels.events import build_event_bus
from app.channels.gate import Gate
from app.channels.rate_limit import RateLimiter, build_rate_limiter
from app.channels.ws_hub import WebSocketHub
from app.config import Settings
from app.conversation.planners.factory import build_planner
from app.conversation.planners.hybrid import close_planner
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService
from app.conversation.understanding.planner import OfflinePlanner
from app.domain.identity import SYSTEM_TASKS
from app.domain.mesh import Task
from app.domain.plan import Planner
from app.mesh.alerts import AlertLog
from app.mesh.catalogue import catalogue_aliases
from app.mesh.directory import DropletDirectory
from app.mesh.keys import PublicKeySource
from app.mesh.leadership import build_leader
from app.mesh.lifecycle import DropletProfile, Lifecycle, LifecycleTiming, TaskDuty
from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.mesh.registry import RegistryClient
from app.ops.health import HealthMonitor, ProbeResult
from app.ops.metrics import Metrics
from app.ops.udc_info import new_process_probe
from app.runtime import Runtime
from app.store.sessions import SessionStore
from app.tools.context import Mesh
from app.tools.executor import ToolExecutor
from app.tools.registry import default_tools
from app.utils.time import utcnow

log = structlog.get_logger(__name__)

CAPABILITIES = [
    "chat",
    "natural_language_understanding",
    "conversation_memory",
    "task_execution",
    "voice_formatting",
]


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text: str = value.get_secret_value()
    return text or None


class StoreClaims:
    """Lets the lifecycle remember claimed tasks in the database, so restarts never rerun one."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def seen(self, task_id: int) -> bool:
        return await self._store.task_seen(task_id)

    async def mark(self, task_id: int) -> None:
        await self._store.claim_task(task_id)


def build_runtime(settings: Settings) -> Runtime:
    metrics = Metrics()
    registry: RegistryClient | None = None
    if settings.mesh_enabled or settings.registry_public_key_url:
        # The Registry's adapter also fetches the key for inbound JWTs, mesh or no mesh.
        registry = RegistryClient(
            base_url=settings.registry_url,
            api_key=settings.registry_key() or "",
            timeout=settings.peer_timeout_s,
            reset_timeout=settings.peer_breaker_reset_s,
        )
    public_keys = PublicKeySource(
        key_file=settings.registry_public_key_file,
        fetch=(
            partial(registry.fetch_public_key, url=settings.registry_public_key_url)
            if registry is not None and settings.registry_public_key_url
            else None
        ),
        refresh_interval=settings.registry_public_key_refresh_s,
    )
    public_keys.load_file()
    store = SessionStore(
        database_url=settings.resolved_database_url,
        history_window=settings.history_window,
        idle_expiry_seconds=settings.session_idle_expiry_s,
    )
    bus = build_event_bus(settings.event_bus_url)
    hub = WebSocketHub()
    alerts = AlertLog(publish=bus.publish)

    orchestrator: OrchestratorClient | None = None
    directory: DropletDirectory | None = None
    if settings.mesh_enabled:
        assert registry is not None
        orchestrator = OrchestratorClient(
            base_url=settings.orchestrator_url,
            credentials=OrchestratorCredentials(
                token=_secret(settings.orchestrator_token),
                private_key_path=settings.orchestrator_private_key_file,
                secret=_secret(settings.droplet_secret),
                registry=registry if settings.registry_key() else None,
            ),
            timeout=settings.peer_timeout_s,
            droplet_id=settings.droplet_id,
            reset_timeout=settings.peer_breaker_reset_s,
        )
        directory = DropletDirectory(registry=registry, orchestrator=orchestrator)

    tools = default_tools()
    rules = OfflinePlanner(tools)
    planner = build_planner(
        mode=settings.planner,
        rules=rules,
        gemini_api_key=settings.gemini_api_key,
        gemini_model=settings.gemini_model,
        gemini_base_url=settings.gemini_base_url,
        gemini_api_version=settings.gemini_api_version,
        llm_base_url=settings.llm_base_url,
        llm_model=settings.llm_model,
        llm_api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        threshold=settings.planner_threshold,
        tools=tools,
    )
    executor = ToolExecutor(
        tools=tools,
        mesh=Mesh(
            directory_or_none=directory,
            orchestrator_or_none=orchestrator,
            alerts=alerts.alerts,
            droplet_id=settings.droplet_id,
        ),
        timeout_s=max(settings.peer_timeout_s * 2, 5.0),
        observe_upstream=lambda peer, seconds: metrics.upstream_latency.labels(peer).observe(
            seconds
        ),
    )

    def aliases() -> dict[str, int]:
        return directory.aliases() if directory is not None else catalogue_aliases()

    conversation = ConversationService(
        store=store,
        planner=planner,
        executor=executor,
        aliases=aliases,
        publish=bus.publish,
        metrics=metrics,
        history_window=settings.history_window,
        max_sessions_per_owner=settings.max_sessions_per_identity,
    )

    redis_url = (
        settings.event_bus_url
        if (settings.event_bus_url or "").startswith(("redis://", "rediss://", "unix://"))
        else None
    )
    gate = Gate(
        settings=settings,
        public_keys=public_keys,
        turn_limiter=_limiter(settings.chat_rate_limit_per_minute, redis_url, "turn"),
        mesh_limiter=_limiter(settings.mesh_rate_limit_per_minute, redis_url, "mesh"),
    )

    lifecycle: Lifecycle | None = None
    if registry is not None and orchestrator is not None:

        async def run_task(task: Task) -> str:
            # Through the gate like every channel: read-only, in a session only an admin opens.
            turn = gate.turn(
                SYSTEM_TASKS,
                channel="task",
                text=_task_text(task),
                trace_id=task.trace_id or f"task-{task.id}",
                session_id=f"task-{task.id}",
            )
            reply = await conversation.handle(turn)
            return reply.text

        lifecycle = Lifecycle(
            registry=registry if settings.registry_key() else None,
            orchestrator=orchestrator,
            profile=DropletProfile(
                droplet_id=settings.droplet_id,
                name=settings.droplet_name,
                steward=settings.steward,
                endpoint=settings.droplet_url,
                capabilities=tuple(CAPABILITIES),
                version=__version__,
                env=settings.environment.value,
            ),
            timing=LifecycleTiming(
                heartbeat_interval=settings.heartbeat_interval_s,
                poll_interval=settings.task_poll_interval_s,
                registration_backoff=(1.0, settings.registration_backoff_max_s),
            ),
            tasks=TaskDuty(runner=run_task, claimed=StoreClaims(store)),
            event_sink=alerts.add,
        )

    async def elected() -> None:
        if lifecycle is not None:
            await lifecycle.start()

    async def demoted() -> None:
        if lifecycle is not None:
            await lifecycle.stop()

    leader = build_leader(
        url=redis_url, on_elected=elected, on_demoted=demoted, ttl_s=settings.heartbeat_interval_s
    )

    summarizer = _summarizer(planner) if settings.llm_summarize else None

    features = ["udc", "jwt_verification", *CAPABILITIES, "websocket", "audit_log"]
    if settings.effective_chat_auth == "jwt":
        features.append("chat_authentication")
    if summarizer is not None:
        features.append("llm_summaries")
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        public_keys=public_keys,
        health=HealthMonitor(),
        process=new_process_probe(),
        store=store,
        conversation=conversation,
        hub=hub,
        bus=bus,
        alerts=alerts,
        lifecycle=lifecycle,
        leader=leader,
        orchestrator=orchestrator,
        registry=registry,
        gate=gate,
        summarizer=summarizer,
        features=features,
        planner_name=planner.name,
        store_backend=store.dialect,
        event_bus_backend=bus.backend,
        active_connections=hub.count,
    )
    _add_probes(runtime)
    return runtime


def _limiter(per_minute: int, redis_url: str | None, name: str) -> RateLimiter | None:
    if per_minute <= 0:
        return None
    return build_rate_limiter(
        per_minute=per_minute, redis_url=redis_url, prefix=f"droplet12:rl:{name}"
    )


def _summarizer(planner: Planner) -> Summarizer | None:
    """The model behind a hybrid or fallback planner, when it can phrase answers."""
    model = getattr(planner, "llm", planner)
    return cast(Summarizer, model) if hasattr(model, "summarize_stream") else None


def _task_text(task: Task) -> str:
    payload = task.payload or {}
    for key in ("message", "text"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:5000]
    raise ValueError("the task payload has no 'message' or 'text' to answer")


def _add_probes(runtime: Runtime) -> None:
    async def store_probe() -> ProbeResult:
        ok = await runtime.store.ping()
        if ok:
            since = utcnow() - timedelta(minutes=15)
            runtime.recent_sessions = await runtime.store.count_active(since=since)
            runtime.metrics.sessions.set(runtime.recent_sessions)
        return ok, None if ok else "session store not answering"

    runtime.health.add_probe("session_store", store_probe, critical=True)

    lifecycle = runtime.lifecycle
    for peer in ("registry", "orchestrator"):
        if lifecycle is None:
            runtime.health.add_probe(peer, None, critical=False)
            continue
        known = lifecycle.status().get(peer)
        if known is None or not known.configured:
            # A configuration state, said once here rather than retried and logged forever.
            runtime.health.add_probe(peer, None, critical=False, detail=_to_configure(peer))
            continue

        async def peer_probe(name: str = peer) -> ProbeResult:
            assert lifecycle is not None
            status = lifecycle.status().get(name)
            if status is None:
                return False, "not configured"
            if status.reachable:
                return True, None if status.registered else "reachable, registering"
            client = runtime.registry if name == "registry" else runtime.orchestrator
            assert client is not None
            # Before the lifecycle's first contact, ask the peer directly (cheap /health).
            ok = await client.health()
            return ok, None if ok else (status.last_error or "unreachable")

        runtime.health.add_probe(peer, peer_probe, critical=False)

    async def bus_probe() -> ProbeResult:
        return await runtime.bus.ping()

    runtime.health.add_probe(f"event_bus ({runtime.bus.backend})", bus_probe, critical=False)
    runtime.health.add_probe(f"planner ({runtime.planner_name})", _always_ok, critical=False)


def _to_configure(peer: str) -> str:
    if peer == "registry":
        return "not configured: set DROPLET_SECRET (or REGISTRY_API_KEY)"
    return "not configured: set ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE or DROPLET_SECRET"


async def _always_ok() -> ProbeResult:
    return True, None


async def start_runtime(runtime: Runtime) -> None:
    await runtime.public_keys.start()
    if runtime.store.sqlite_file is not None:
        runtime.store.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    await runtime.store.open()
    await runtime.store.migrate()
    await runtime.bus.start(runtime.hub.dispatch)
    runtime.background.append(
        asyncio.create_task(runtime.store.run_cleanup(interval_seconds=600), name="session-cleanup")
    )
    await runtime.health.start()
    if runtime.orchestrator is not None and not runtime.orchestrator.tokens.configured:
        log.warning(
            "orchestrator_not_configured",
            set="ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE or DROPLET_SECRET",
            effect="no registration, heartbeats or assigned tasks with the Orchestrator",
        )
    await runtime.leader.start()
    log.info(
        "runtime_started",
        at=utcnow().isoformat(),
        store=runtime.store.url,
        planner=runtime.planner_name,
        event_bus=runtime.bus.backend,
    )


async def stop_runtime(runtime: Runtime) -> None:
    await runtime.leader.stop()
    await runtime.hub.close_all()
    for task in runtime.background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runtime.health.stop()
    await runtime.bus.stop()
    await runtime.public_keys.stop()
    for client in (runtime.orchestrator, runtime.registry):
        if client is not None:
            await client.aclose()
    await close_planner(runtime.conversation.planner)
    await runtime.gate.aclose()
    await runtime.store.close()
