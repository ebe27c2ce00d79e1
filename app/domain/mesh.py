"""Clean domain types for the mesh.

The peer adapters translate each peer's wire format (and quirks) into these; nothing above the
adapters ever sees a wire payload.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class TaskState(StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Droplet(BaseModel):
    """One droplet as known to the mesh, merged from whichever peers know it."""

    id: int
    name: str
    status: str = "unknown"
    """Orchestrator words (active, inactive, error) or Registry words (healthy, down)."""
    steward: str | None = None
    endpoint: str | None = None
    role: str | None = None
    version: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    last_seen: datetime | None = None
    seconds_since_heartbeat: float | None = None
    cpu: float | None = None
    mem: float | None = None
    disk: float | None = None
    sources: list[Literal["registry", "orchestrator", "catalogue"]] = Field(default_factory=list)


class TaskTransition(BaseModel):
    from_status: str | None = None
    to_status: str
    changed_by: str | None = None
    reason: str | None = None
    changed_at: datetime | None = None


class Task(BaseModel):
    id: int
    task_type: str
    title: str
    status: TaskState
    priority: int = 5
    trace_id: str | None = None
    description: str | None = None
    assigned_droplet_id: int | None = None
    assigned_droplet_name: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    payload: dict[str, Any] | None = None
    result: Any = None
    error_message: str | None = None
    history: list[TaskTransition] = Field(default_factory=list)


class NewTask(BaseModel):
    task_type: str = Field(min_length=1, max_length=50)
    title: str = Field(min_length=1, max_length=255)
    payload: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    required_capability: str | None = None
    priority: int = Field(default=5, ge=1, le=10)
    max_retries: int = Field(default=3, ge=0, le=10)
    created_by: str | None = None


class CreatedTask(BaseModel):
    task_id: int
    status: TaskState
    trace_id: str | None = None
    created_at: datetime | None = None


class CancelledTask(BaseModel):
    task_id: int
    status: TaskState
    cancelled_at: datetime | None = None


class SystemState(BaseModel):
    """What the Orchestrator says about the whole system (`GET /state`)."""

    tasks_active: int | None = None
    tasks_pending: int | None = None
    droplets_active: int | None = None
    droplets_total: int | None = None
    cpu_percent: float | None = None
    memory_mb: float | None = None
    uptime_seconds: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class MeshEvent(BaseModel):
    """Something that happened in the mesh: the raw material of "system alerts"."""

    kind: str
    """e.g. droplet_health_changed, task_created, heartbeat_missed, peer_unreachable, message."""
    severity: Literal["info", "warning", "critical"] = "info"
    summary: str
    at: datetime
    source: str = "orchestrator"
    droplet_id: int | None = None
    task_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    verified: bool = True
    """False for an event a tokenless sender reported (allow-listed network): shown as such."""
    via: str | None = None
    """The address an unverified event came from."""


class SentMessage(BaseModel):
    """The Orchestrator's receipt for a message it relayed to another droplet (`POST /send`)."""

    target_droplet_id: int
    delivered: bool
    target_name: str | None = None
    delivered_at: datetime | None = None
    trace_id: str | None = None
