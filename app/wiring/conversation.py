"""The conversation's wiring: the tools, the planner, the executor and the turn service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from app.channels.events import EventBus
from app.channels.gate import Gate
from app.config import Settings
from app.conversation.notifications import WatchNotifier
from app.conversation.planners.factory import build_planner
from app.conversation.planners.llm_common import Summarizer
from app.conversation.service import ConversationService
from app.conversation.understanding.planner import OfflinePlanner
from app.conversation.watches import WatchEngine
from app.domain.identity import SYSTEM_TASKS
from app.domain.mesh import Task
from app.domain.plan import Planner
from app.mesh.alerts import AlertLog
from app.mesh.catalogue import catalogue_aliases
from app.ops.metrics import Metrics
from app.store.sessions import SessionStore
from app.store.watches import WatchStore
from app.tools.context import Mesh
from app.tools.executor import ToolExecutor
from app.tools.registry import default_tools
from app.utils.loop_budget import LoopBudget
from app.wiring.mesh import MeshParts


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationParts:
    planner: Planner
    service: ConversationService
    summarizer: Summarizer | None
    """The model that phrases answers on the WebSocket (LLM_SUMMARIZE), when there is one."""
    watches: WatchStore
    watch_engine: WatchEngine | None
    """Checks the watches and notifies their owners (on the leader); None without a mesh."""


def build_conversation(
    settings: Settings,
    *,
    store: SessionStore,
    mesh: MeshParts,
    alerts: AlertLog,
    bus: EventBus,
    metrics: Metrics,
) -> ConversationParts:
    tools = default_tools()
    # One budget for the turns' starts and the planner's stage: together they hold the event
    # loop about as long in one iteration as a turn's start did when it planned too.
    loop_budget = LoopBudget()
    planner = build_planner(
        mode=settings.planner,
        rules=OfflinePlanner(tools, loop_budget=loop_budget),
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
    watches = WatchStore(sessions=store)
    executor = ToolExecutor(
        tools=tools,
        mesh=Mesh(
            directory_or_none=mesh.directory,
            orchestrator_or_none=mesh.orchestrator,
            alerts=alerts.alerts,
            droplet_id=settings.droplet_id,
        ),
        timeout_s=max(settings.peer_timeout_s * 2, 5.0),
        observe_upstream=metrics.observe_upstream,
        watches=watches,
        watch_ttl_s=settings.watch_ttl_s,
        max_watches=settings.max_watches_per_identity,
    )
    directory = mesh.directory

    def aliases() -> dict[str, int]:
        return directory.aliases() if directory is not None else catalogue_aliases()

    service = ConversationService(
        store=store,
        planner=planner,
        executor=executor,
        aliases=aliases,
        publish=bus.publish,
        metrics=metrics,
        history_window=settings.history_window,
        max_sessions_per_owner=settings.max_sessions_per_identity,
        loop_budget=loop_budget,
    )
    summarizer = model_summarizer(planner) if settings.llm_summarize else None
    engine = None
    if mesh.orchestrator is not None and mesh.directory is not None:
        engine = WatchEngine(
            store=watches,
            orchestrator=mesh.orchestrator,
            directory=mesh.directory,
            notify=WatchNotifier(
                sessions=store,
                publish=bus.publish,
                orchestrator=mesh.orchestrator,
                route_back_delivery=settings.route_back_delivery,
            ),
            interval_s=settings.watch_check_interval_s,
        )
    return ConversationParts(
        planner=planner,
        service=service,
        summarizer=summarizer,
        watches=watches,
        watch_engine=engine,
    )


def model_summarizer(planner: Planner) -> Summarizer | None:
    """The model behind a hybrid or fallback planner, when it can phrase answers."""
    model = getattr(planner, "llm", planner)
    return cast(Summarizer, model) if hasattr(model, "summarize_stream") else None


def task_runner(
    *, gate: Gate, conversation: ConversationService
) -> Callable[[Task], Awaitable[str]]:
    """How an assigned task is answered: through the gate like every channel, read-only, in a
    session only an admin opens."""

    async def run_task(task: Task) -> str:
        turn = gate.turn(
            SYSTEM_TASKS,
            channel="task",
            text=_task_text(task),
            trace_id=task.trace_id or f"task-{task.id}",
            session_id=f"task-{task.id}",
        )
        reply = await conversation.handle(turn)
        return reply.text

    return run_task


def _task_text(task: Task) -> str:
    payload = task.payload or {}
    for key in ("message", "text"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:5000]
    raise ValueError("the task payload has no 'message' or 'text' to answer")
