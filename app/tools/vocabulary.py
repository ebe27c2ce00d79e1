"""Words of the mesh the tools share: task types and states, droplet states, id types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

TaskType = Literal["verify", "build", "deploy", "monitor", "provision", "custom"]
TaskStatus = Literal["pending", "assigned", "in_progress", "completed", "failed", "cancelled"]
DropletStatus = Literal["active", "inactive", "error", "healthy", "down"]

TASK_TYPES: tuple[TaskType, ...] = ("verify", "build", "deploy", "monitor", "provision", "custom")
TASK_STATES: tuple[TaskStatus, ...] = (
    "pending",
    "assigned",
    "in_progress",
    "completed",
    "failed",
    "cancelled",
)
CANCELLABLE: tuple[TaskStatus, ...] = ("pending", "assigned")

DropletId = Annotated[int, Field(ge=1, le=10**9, description="Numeric droplet id, e.g. 14")]
TaskId = Annotated[int, Field(ge=1, le=10**12, description="Numeric task id")]
