"""In-memory state of the sandbox Orchestrator: request models, droplets, tasks, routing, seed.

Everything here is plain Python with no HTTP: `sandbox.orchestrator` maps requests onto it.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import psutil
from fastapi import WebSocket
from pydantic import BaseModel, Field

from sandbox.seed import ORCHESTRATOR_ID, SEED_DROPLETS, STALE_DROPLET_ID
from sandbox.wire import envelope, iso, jsonb_text, utcnow

SELF_SOURCE = f"droplet-{ORCHESTRATOR_ID}"
SELF_NAME = "Orchestrator"
SELF_STEWARD = "Tnsae"
SELF_PUBLIC_ENDPOINT = "https://orchestrator.fullpotential.ai"
HEARTBEAT_EVERY = 60
TOKEN_LIFETIME = 86400
ENVELOPE_MESSAGE_TYPES = ("status", "event", "command", "query", "response", "error")
DROPLET_STATUSES = ("active", "inactive", "error")
TERMINAL = ("completed", "failed", "cancelled")
ACTIVE_WORK = ("assigned", "in_progress")
TRANSITIONS: dict[str | None, list[str]] = {
    None: ["pending"],
    "pending": ["assigned", "cancelled"],
    "assigned": ["in_progress", "pending", "cancelled"],
    "in_progress": ["completed", "failed", "pending"],
    "completed": [],
    "failed": ["pending"],
    "cancelled": [],
}
REGISTER_QUIRK_DETAIL = (
    "WebSocketManager.broadcast_droplet_registered() takes 2 positional arguments but 3 were given"
)
DETAILS_QUIRK_DETAIL = 'column reference "status" is ambiguous'
STATUS_CHECK_VIOLATION = (
    'new row for relation "droplets" violates check constraint "droplets_status_check"'
)


# ---------------------------------------------------------------------------------------------
# Request models (validated by hand, like the real routes, so 422 `loc`s carry no "body" prefix)
# ---------------------------------------------------------------------------------------------


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MessageType(enum.StrEnum):
    COMMAND = "command"
    QUERY = "query"
    RESPONSE = "response"
    EVENT = "event"
    HEARTBEAT = "heartbeat"


class TaskCreate(BaseModel):
    task_type: str = Field(min_length=1, max_length=50)
    title: str = Field(min_length=1, max_length=255)
    description: str | None = None
    required_capability: str | None = Field(default=None, max_length=100)
    priority: int = Field(default=5, ge=1, le=10)
    payload: dict[str, Any]
    deadline: datetime | None = None
    max_retries: int = Field(default=3, ge=0, le=10)
    created_by: str | None = None


class TaskUpdate(BaseModel):
    status: TaskStatus
    result: dict[str, Any] | None = None
    error_message: str | None = None


class DropletRegister(BaseModel):
    droplet_id: int = Field(gt=0)
    name: str = Field(min_length=1, max_length=100)
    steward: str | None = Field(default=None, max_length=100)
    endpoint: str
    capabilities: list[str] = Field(default_factory=list)


class DropletHeartbeat(BaseModel):
    status: str
    metrics: dict[str, Any] | None = None


class UDCMessage(BaseModel):
    trace_id: uuid.UUID
    source: int
    target: int
    message_type: MessageType
    payload: dict[str, Any]
    timestamp: datetime | None = None


class TokenRequest(BaseModel):
    droplet_id: int
    secret_key: str


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class DropletRow:
    pk: int
    droplet_id: int
    name: str
    steward: str | None
    endpoint: str
    capabilities: list[str]
    status: str
    last_heartbeat: datetime | None
    registered_at: datetime
    updated_at: datetime
    heartbeats: deque[tuple[datetime, str]] = field(default_factory=lambda: deque(maxlen=100))


@dataclass
class Transition:
    from_status: str | None
    to_status: str
    changed_by: str | None
    reason: str | None
    changed_at: datetime


@dataclass
class TaskRow:
    id: int
    trace_id: str
    task_type: str
    title: str
    description: str | None
    payload: dict[str, Any]
    required_capability: str | None
    priority: int
    max_retries: int
    deadline: datetime | None
    created_by: str | None
    created_at: datetime
    status: str = "pending"
    assigned_pk: int | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    error_message: str | None = None
    updated_at: datetime | None = None
    history: list[Transition] = field(default_factory=list)


class TransitionError(Exception):
    pass


def check_transition(from_status: str | None, to_status: str) -> None:
    if to_status not in TRANSITIONS:
        raise TransitionError(f"Invalid status: {to_status}")
    if from_status in TERMINAL:
        raise TransitionError(f"Cannot transition from terminal status: {from_status}")
    allowed = TRANSITIONS.get(from_status, [])
    if to_status not in allowed:
        raise TransitionError(
            f"Invalid transition: {from_status} -> {to_status}. Allowed: {allowed}"
        )


@dataclass
class OrchestratorState:
    public_key: Any
    private_key_pem: bytes | None
    quirks: bool
    router_interval: float
    inactive_after: float
    health_check_interval: float
    keepalive_interval: float
    ws_ping_interval: float
    auth_secret: str | None
    endpoint: str
    send_timeout: float
    droplets: dict[int, DropletRow] = field(default_factory=dict)
    tasks: dict[int, TaskRow] = field(default_factory=dict)
    kept_alive: set[int] = field(default_factory=set)
    stopped_heartbeats: set[int] = field(default_factory=set)
    task_sockets: set[WebSocket] = field(default_factory=set)
    droplet_sockets: set[WebSocket] = field(default_factory=set)
    http: httpx2.AsyncClient | None = None
    boot: float = field(default_factory=time.time)
    process: psutil.Process = field(default_factory=psutil.Process)
    _next_pk: int = 1
    _next_task_id: int = 1

    # -- droplets ---------------------------------------------------------------------------

    def by_pk(self, pk: int | None) -> DropletRow | None:
        return next((d for d in self.droplets.values() if d.pk == pk), None)

    def register(self, reg: DropletRegister, *, at: datetime | None = None) -> dict[str, Any]:
        now = at or utcnow()
        existing = self.droplets.get(reg.droplet_id)
        if existing is not None:
            existing.name, existing.steward = reg.name, reg.steward
            existing.endpoint, existing.capabilities = reg.endpoint, list(reg.capabilities)
            existing.status, existing.last_heartbeat, existing.updated_at = "active", now, now
            status = "updated"
        else:
            self.droplets[reg.droplet_id] = DropletRow(
                pk=self._next_pk,
                droplet_id=reg.droplet_id,
                name=reg.name,
                steward=reg.steward,
                endpoint=reg.endpoint,
                capabilities=list(reg.capabilities),
                status="active",
                last_heartbeat=now,
                registered_at=now,
                updated_at=now,
            )
            self._next_pk += 1
            status = "new"
        return {
            "registered": True,
            "droplet_id": reg.droplet_id,
            "registered_at": now.isoformat(),
            "heartbeat_required_every_seconds": HEARTBEAT_EVERY,
            "status": status,
        }

    def heartbeat(self, droplet_id: int, status: str) -> str:
        """Record a heartbeat; returns the previous status. ValueError when not registered."""
        row = self.droplets.get(droplet_id)
        if row is None:
            raise ValueError(f"Droplet {droplet_id} not registered")
        if status not in DROPLET_STATUSES:
            raise RuntimeError(STATUS_CHECK_VIOLATION)
        now = utcnow()
        previous = row.status
        row.last_heartbeat, row.status, row.updated_at = now, status, now
        row.heartbeats.appendleft((now, status))
        return previous

    def expire_stale(self) -> list[DropletRow]:
        """Mark active droplets without a recent heartbeat inactive and re-queue their work."""
        threshold = utcnow() - timedelta(seconds=self.inactive_after)
        expired = [
            d
            for d in self.droplets.values()
            if d.status == "active" and (d.last_heartbeat is None or d.last_heartbeat < threshold)
        ]
        for row in expired:
            row.status, row.updated_at = "inactive", utcnow()
            for task in [t for t in self.tasks.values() if t.assigned_pk == row.pk]:
                if task.status in ACTIVE_WORK:
                    self._requeue(task, f"Droplet #{row.droplet_id} heartbeat timeout")
        return expired

    def _requeue(self, task: TaskRow, reason: str) -> None:
        previous = task.status
        task.status, task.assigned_pk, task.started_at = "pending", None, None
        task.updated_at = utcnow()
        task.history.append(Transition(previous, "pending", "orchestrator", reason, utcnow()))
        self.route_task(task)

    # -- tasks ------------------------------------------------------------------------------

    def create_task(
        self,
        spec: TaskCreate,
        *,
        created_by: str,
        history_by: str | None,
        at: datetime | None = None,
    ) -> TaskRow:
        now = at or utcnow()
        deadline = spec.deadline
        if deadline is not None and deadline.tzinfo is not None:
            deadline = deadline.astimezone(UTC).replace(tzinfo=None)
        task = TaskRow(
            id=self._next_task_id,
            trace_id=str(uuid.uuid4()),
            task_type=spec.task_type,
            title=spec.title,
            description=spec.description,
            payload=spec.payload,
            required_capability=spec.required_capability,
            priority=spec.priority,
            max_retries=spec.max_retries,
            deadline=deadline,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        self._next_task_id += 1
        self.tasks[task.id] = task
        if history_by is not None:
            task.history.append(Transition(None, "pending", history_by, None, now))
        return task

    def transition(
        self,
        task: TaskRow,
        new_status: str,
        changed_by: str,
        reason: str | None = None,
        *,
        at: datetime | None = None,
    ) -> None:
        check_transition(task.status, new_status)
        now = at or utcnow()
        if new_status == "assigned":
            task.assigned_at = now
        elif new_status == "in_progress":
            task.started_at = now
        elif new_status in TERMINAL:
            task.completed_at = now
        task.history.append(Transition(task.status, new_status, changed_by, reason, now))
        task.status, task.updated_at = new_status, now

    def candidates(self, capability: str | None) -> list[DropletRow]:
        def load(d: DropletRow) -> int:
            return sum(
                1 for t in self.tasks.values() if t.assigned_pk == d.pk and t.status in ACTIVE_WORK
            )

        eligible = [
            d
            for d in self.droplets.values()
            if d.status == "active"
            and d.droplet_id != ORCHESTRATOR_ID
            and d.endpoint
            and (not capability or capability in d.capabilities)
        ]
        return sorted(eligible, key=lambda d: (load(d), d.droplet_id))

    def route_task(self, task: TaskRow, *, at: datetime | None = None) -> DropletRow | None:
        found = self.candidates(task.required_capability)
        if not found:
            return None
        return self.assign(task, found[0], at=at)

    def assign(self, task: TaskRow, row: DropletRow, *, at: datetime | None = None) -> DropletRow:
        task.assigned_pk = row.pk
        self.transition(task, "assigned", "orchestrator", f"Routed to droplet #{row.pk}", at=at)
        return row

    def route_pending(self) -> list[int]:
        pending = sorted(
            (t for t in self.tasks.values() if t.status == "pending"),
            key=lambda t: (t.priority, t.created_at, t.id),
        )
        return [t.id for t in pending[:100] if self.route_task(t) is not None]

    # -- rendering --------------------------------------------------------------------------

    def droplet_public(self, d: DropletRow) -> dict[str, Any]:
        since = (utcnow() - d.last_heartbeat).total_seconds() if d.last_heartbeat else None
        return {
            "droplet_id": d.droplet_id,
            "name": d.name,
            "steward": d.steward,
            "endpoint": d.endpoint,
            "capabilities": jsonb_text(d.capabilities),
            "status": d.status,
            "last_heartbeat": iso(d.last_heartbeat),
            "registered_at": iso(d.registered_at),
            "seconds_since_heartbeat": round(since, 6) if since is not None else None,
        }

    def droplet_details(self, d: DropletRow) -> dict[str, Any]:
        mine = [t for t in self.tasks.values() if t.assigned_pk == d.pk]
        recent = sorted(mine, key=lambda t: t.created_at, reverse=True)[:10]
        public = self.droplet_public(d)
        return {
            "id": d.pk,
            **{k: v for k, v in public.items() if k != "seconds_since_heartbeat"},
            "updated_at": iso(d.updated_at),
            "seconds_since_heartbeat": public["seconds_since_heartbeat"],
            "active_tasks": sum(1 for t in mine if t.status in ACTIVE_WORK),
            "completed_tasks": sum(1 for t in mine if t.status == "completed"),
            "failed_tasks": sum(1 for t in mine if t.status == "failed"),
            "recent_tasks": [
                {
                    "id": t.id,
                    "status": t.status,
                    "task_type": t.task_type,
                    "created_at": iso(t.created_at),
                    "completed_at": iso(t.completed_at),
                }
                for t in recent
            ],
            "health_history_24h": [
                {"time": at.isoformat(), "status": status}
                for at, status in d.heartbeats
                if at > utcnow() - timedelta(hours=24)
            ],
        }

    def task_summary(self, t: TaskRow) -> dict[str, Any]:
        assignee = self.by_pk(t.assigned_pk)
        return {
            "id": t.id,
            "trace_id": t.trace_id,
            "task_type": t.task_type,
            "title": t.title,
            "description": t.description,
            "status": t.status,
            "priority": t.priority,
            "assigned_droplet_id": assignee.droplet_id if assignee else None,
            "assigned_droplet_name": assignee.name if assignee else None,
            "created_at": iso(t.created_at),
            "completed_at": iso(t.completed_at),
        }

    def task_detail(self, t: TaskRow) -> dict[str, Any]:
        summary = self.task_summary(t)
        return {
            **{k: summary[k] for k in ("id", "trace_id", "task_type", "title", "description")},
            "payload": jsonb_text(t.payload),
            **{
                k: summary[k]
                for k in ("status", "priority", "assigned_droplet_id", "assigned_droplet_name")
            },
            "created_at": iso(t.created_at),
            "assigned_at": iso(t.assigned_at),
            "started_at": iso(t.started_at),
            "completed_at": iso(t.completed_at),
            "result": jsonb_text(t.result) if t.result is not None else None,
            "error_message": t.error_message,
            "state_history": [
                {
                    "from_status": h.from_status,
                    "to_status": h.to_status,
                    "changed_by": h.changed_by,
                    "reason": h.reason,
                    "changed_at": h.changed_at.isoformat(),
                }
                for h in sorted(t.history, key=lambda h: h.changed_at)
            ],
        }

    # -- events -----------------------------------------------------------------------------

    async def broadcast(self, sockets: set[WebSocket], message: dict[str, Any]) -> None:
        text = json.dumps(message, default=str)
        for ws in list(sockets):
            try:
                await ws.send_text(text)
            except Exception:
                sockets.discard(ws)

    async def health_changed(self, droplet_id: int, old: str, new: str) -> None:
        payload = {
            "event": "droplet_health_changed",
            "droplet_id": droplet_id,
            "old_status": old,
            "new_status": new,
            "changed_at": utcnow().isoformat(),
        }
        message = envelope(payload, target="broadcast", message_type="event", source=SELF_SOURCE)
        await self.broadcast(self.droplet_sockets, message)

    async def run_health_check(self) -> list[int]:
        expired = self.expire_stale()
        for row in expired:
            await self.health_changed(row.droplet_id, "active", "inactive")
        return [row.droplet_id for row in expired]

    async def keepalive(self) -> None:
        for droplet_id in sorted(self.kept_alive - self.stopped_heartbeats):
            if droplet_id in self.droplets:
                previous = self.heartbeat(droplet_id, "active")
                if previous == "inactive":
                    await self.health_changed(droplet_id, "inactive", "active")


# ---------------------------------------------------------------------------------------------
# Seed
# ---------------------------------------------------------------------------------------------


def seed_orchestrator(state: OrchestratorState) -> None:
    """Add the seeded droplets (no endpoints; 16 goes stale) and tasks in every state."""
    now = utcnow()
    for i, d in enumerate(s for s in SEED_DROPLETS if s.droplet_id != ORCHESTRATOR_ID):
        reg = DropletRegister(
            droplet_id=d.droplet_id,
            name=d.name,
            steward=d.steward,
            endpoint="",
            capabilities=list(d.capabilities),
        )
        state.register(reg, at=now - timedelta(hours=6 - i))
        state.heartbeat(d.droplet_id, "active")
        state.kept_alive.add(d.droplet_id)
    state.stopped_heartbeats.add(STALE_DROPLET_ID)

    def task(minutes_ago: float, by: str, **spec: Any) -> TaskRow:
        at = now - timedelta(minutes=minutes_ago)
        return state.create_task(TaskCreate(**spec), created_by=by, history_by=by, at=at)

    def assign(t: TaskRow, minutes_ago: float, droplet_id: int) -> None:
        state.assign(t, state.droplets[droplet_id], at=now - timedelta(minutes=minutes_ago))

    def step(t: TaskRow, minutes_ago: float, status: str, reason: str | None = None) -> None:
        by = f"droplet_{_assignee_id(state, t)}"
        state.transition(t, status, by, reason, at=now - timedelta(minutes=minutes_ago))

    done = task(
        95,
        "droplet_2",
        task_type="monitor",
        title="Snapshot mesh visibility metrics",
        description="Hourly snapshot for the dashboard",
        required_capability="snapshots",
        priority=4,
        payload={"scope": "all_droplets", "window": "1h"},
    )
    assign(done, 94.8, 14)
    step(done, 94, "in_progress")
    step(done, 90, "completed")
    done.result = {"snapshot_id": "snap-0042", "droplets_seen": 6, "alerts": 1}

    failed = task(
        80,
        "droplet_1",
        task_type="deploy",
        title="Deploy Dashboard v1.3",
        required_capability="dashboard",
        priority=3,
        max_retries=0,
        payload={"version": "1.3.0", "environment": "staging"},
    )
    assign(failed, 79.8, 2)
    step(failed, 79, "in_progress")
    step(failed, 70, "failed")
    failed.error_message = "Build step failed: DASHBOARD_API_URL is not set"

    onboarding = task(
        30,
        "droplet_12",
        task_type="custom",
        title="Onboard steward for droplet 21",
        required_capability="onboarding",
        priority=5,
        payload={"steward": "New Steward", "droplet_id": 21},
    )
    assign(onboarding, 29.8, STALE_DROPLET_ID)
    step(onboarding, 29, "in_progress")

    voice = task(
        12,
        "droplet_12",
        task_type="custom",
        title="Transcribe voice note",
        required_capability="speech_to_text",
        priority=6,
        payload={"audio_url": "https://example.invalid/note-17.ogg", "language": "en"},
    )
    assign(voice, 11.8, 18)

    task(
        5,
        "droplet_2",
        task_type="verify",
        title="Verify Droplet #14",
        description="UDC compliance check",
        required_capability="code_verification",
        priority=3,
        payload={
            "spec_url": "https://github.com/fullpotential-ai/specs/droplet-14.md",
            "code_url": "https://github.com/fullpotential-ai/droplet-14",
        },
    )

    cancelled = task(
        60,
        "droplet_1",
        task_type="custom",
        title="Rotate registry keys",
        required_capability="registry",
        priority=8,
        payload={"reason": "scheduled"},
    )
    state.transition(
        cancelled,
        "cancelled",
        "droplet_1",
        "Cancelled by user request",
        at=now - timedelta(minutes=58),
    )


def _assignee_id(state: OrchestratorState, task: TaskRow) -> int | None:
    row = state.by_pk(task.assigned_pk)
    return row.droplet_id if row else None
