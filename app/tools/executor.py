"""Runs validated tool calls against the mesh through the peer adapters.

Every call ends in a ToolOutcome, never an exception: a peer that is down or says no becomes a
status and a message safe to show, so a turn always gets an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from app.domain.identity import Caller
from app.domain.mesh import (
    CancelledTask,
    CreatedTask,
    Droplet,
    MeshEvent,
    NewTask,
    SystemState,
    Task,
    TaskState,
)
from app.domain.plan import ToolCall
from app.mesh.directory import DirectoryListing, DropletDirectory, PeerFailure
from app.mesh.orchestrator import OrchestratorClient
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.tools.catalogue import get_spec

log = structlog.get_logger(__name__)

OutcomeStatus = Literal["ok", "unavailable", "not_found", "rejected", "error", "forbidden"]


@dataclass(frozen=True, slots=True)
class DropletReport:
    droplet_id: int
    droplet: Droplet | None
    failures: list[PeerFailure]


@dataclass(frozen=True, slots=True)
class SystemOverview:
    listing: DirectoryListing
    state: SystemState | None
    alerts: list[MeshEvent]
    failures: list[PeerFailure]


@dataclass(frozen=True, slots=True)
class CreatedTaskReport:
    created: CreatedTask
    request: NewTask


@dataclass(slots=True)
class ToolOutcome:
    call: ToolCall
    status: OutcomeStatus
    result: Any = None
    message: str | None = None
    """Why it failed, safe to show a user."""
    peer: str | None = None
    duration_ms: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)
    """What later turns may refer to: last_task_id, last_droplet_id."""


AlertSource = Callable[[int], list[MeshEvent]]


class ToolExecutor:
    def __init__(
        self,
        *,
        directory: DropletDirectory | None,
        orchestrator: OrchestratorClient | None,
        alerts: AlertSource,
        droplet_id: int = 12,
        timeout_s: float = 10.0,
        observe_upstream: Callable[[str, float], None] | None = None,
    ) -> None:
        self._observe = observe_upstream
        self._directory = directory
        self._orchestrator = orchestrator
        self._alerts = alerts
        self._droplet_id = droplet_id
        self._timeout = timeout_s

    async def execute(self, call: ToolCall, *, caller: Caller, trace_id: str) -> ToolOutcome:
        started = time.perf_counter()
        outcome = ToolOutcome(call=call, status="ok")
        spec = get_spec(call.tool)
        # The permission is enforced here, where the tool runs, from the caller itself.
        if spec is not None and spec.permission is not None and not caller.can(spec.permission):
            outcome.status = "forbidden"
            outcome.message = f"that needs the '{spec.permission}' permission"
            log.info(
                "tool_forbidden", tool=call.tool, caller=str(caller.identity), trace_id=trace_id
            )
            return outcome
        try:
            async with asyncio.timeout(self._timeout):
                await self._dispatch(call, outcome, trace_id)
        except TimeoutError:
            outcome.status = "unavailable"
            outcome.message = f"the mesh did not answer within {self._timeout:g} seconds"
        except PeerNotFound as exc:
            outcome.status, outcome.message, outcome.peer = "not_found", exc.message, exc.peer
        except PeerRejected as exc:
            outcome.status, outcome.message, outcome.peer = "rejected", exc.message, exc.peer
        except PeerUnavailable as exc:
            outcome.status, outcome.message, outcome.peer = "unavailable", exc.message, exc.peer
        except PeerError as exc:
            outcome.status, outcome.message, outcome.peer = "error", exc.message, exc.peer
        except _MeshOff as exc:
            outcome.status, outcome.message = "unavailable", str(exc)
        elapsed = time.perf_counter() - started
        outcome.duration_ms = round(elapsed * 1000, 2)
        peers = peers_of(call.tool)
        if self._observe is not None and peers:
            self._observe("registry+orchestrator" if len(peers) > 1 else peers[0], elapsed)
        if outcome.status != "ok":
            log.info(
                "tool_failed",
                tool=call.tool,
                status=outcome.status,
                reason=outcome.message,
                trace_id=trace_id,
            )
        return outcome

    def _orch(self) -> OrchestratorClient:
        if self._orchestrator is None:
            raise _MeshOff("the mesh is not configured on this droplet (MESH_ENABLED=false)")
        return self._orchestrator

    def _dir(self) -> DropletDirectory:
        if self._directory is None:
            raise _MeshOff("the mesh is not configured on this droplet (MESH_ENABLED=false)")
        return self._directory

    async def _dispatch(self, call: ToolCall, out: ToolOutcome, trace_id: str) -> None:
        args = call.args
        match call.tool:
            case "help":
                out.result = None
            case "list_droplets":
                listing = await self._dir().list(args.get("status"), trace_id=trace_id)
                out.result = listing
                _partial(out, listing.failures, empty=not listing.droplets)
            case "droplet_status":
                droplet_id = int(args["droplet_id"])
                droplet, failures = await self._dir().get(droplet_id, trace_id=trace_id)
                out.result = DropletReport(droplet_id, droplet, list(failures))
                out.context["last_droplet_id"] = droplet_id
                if droplet is None:
                    _partial(out, list(failures), empty=True)
                    if out.status == "ok":
                        out.status = "not_found"
                        out.message = f"droplet {droplet_id} is not known to the mesh"
            case "list_tasks":
                tasks = await self._orch().list_tasks(
                    status=args.get("status"),
                    assigned_droplet_id=args.get("assigned_droplet_id"),
                    task_type=args.get("task_type"),
                    limit=int(args.get("limit", 20)),
                    trace_id=trace_id,
                )
                out.result = tasks
                if len(tasks) == 1:
                    out.context["last_task_id"] = tasks[0].id
            case "task_status":
                task: Task = await self._orch().get_task(int(args["task_id"]), trace_id=trace_id)
                out.result = task
                out.context["last_task_id"] = task.id
            case "system_status":
                out.result = await self._overview(trace_id)
                overview: SystemOverview = out.result
                _partial(out, overview.failures, empty=False)
            case "system_alerts":
                out.result = self._alerts(int(args.get("limit", 10)))
            case "create_task":
                request = NewTask(
                    task_type=args["task_type"],
                    title=args["title"],
                    description=args.get("description"),
                    required_capability=args.get("required_capability"),
                    priority=int(args["priority"]),
                    payload=dict(args.get("payload") or {}),
                    created_by=f"droplet_{self._droplet_id}",
                )
                created: CreatedTask = await self._orch().create_task(request, trace_id=trace_id)
                out.result = CreatedTaskReport(created=created, request=request)
                out.context["last_task_id"] = created.task_id
            case "cancel_task":
                cancelled: CancelledTask = await self._orch().cancel_task(
                    int(args["task_id"]), trace_id=trace_id
                )
                out.result = cancelled
                out.context["last_task_id"] = cancelled.task_id
            case "send_message":
                target = int(args["target_droplet_id"])
                out.result = await self._orch().send(
                    target,
                    "command",
                    {"message": args["message"], "from": f"droplet-{self._droplet_id}"},
                    trace_id=trace_id,
                )
                out.context["last_droplet_id"] = target
            case _:
                out.status, out.message = "error", f"unknown tool {call.tool!r}"

    async def _overview(self, trace_id: str) -> SystemOverview:
        listing_task = asyncio.create_task(self._dir().list(trace_id=trace_id))
        state: SystemState | None = None
        failures: list[PeerFailure] = []
        try:
            state = await self._orch().state(trace_id=trace_id)
        except PeerError as exc:
            failures.append(PeerFailure(peer=exc.peer, message=exc.message))
        listing = await listing_task
        for failure in listing.failures:
            if all(f.peer != failure.peer for f in failures):
                failures.append(failure)
        return SystemOverview(
            listing=listing, state=state, alerts=self._alerts(5), failures=failures
        )


# The peers each tool calls, the one that answers first-hand first (progress names it).
_PEERS_OF: dict[str, tuple[str, ...]] = {
    "list_droplets": ("registry", "orchestrator"),
    "droplet_status": ("orchestrator", "registry"),
    "list_tasks": ("orchestrator",),
    "task_status": ("orchestrator",),
    "system_status": ("orchestrator", "registry"),
    "create_task": ("orchestrator",),
    "cancel_task": ("orchestrator",),
    "send_message": ("orchestrator",),
}


def peers_of(tool: str) -> tuple[str, ...]:
    return _PEERS_OF.get(tool, ())


class _MeshOff(Exception):
    pass


def _partial(out: ToolOutcome, failures: list[PeerFailure], *, empty: bool) -> None:
    """A listing some peers could not contribute to is still an answer, unless it is empty."""
    if not failures:
        return
    out.peer = ", ".join(f.peer for f in failures)
    out.message = "; ".join(f"{f.peer}: {f.message}" for f in failures)
    if empty:
        out.status = "unavailable"


TASK_DONE_STATES = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})
