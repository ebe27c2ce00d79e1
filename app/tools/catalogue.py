"""The tool catalogue: what can be done to the mesh, with which arguments, and whether it writes.

The read/write class is ours: a planner (rules or model) only proposes calls, and this catalogue
decides what a call is and whether its arguments are acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from app.domain.identity import Permission
from app.domain.plan import ToolCall

TASK_TYPES = ("verify", "build", "deploy", "monitor", "provision", "custom")
TASK_STATES = ("pending", "assigned", "in_progress", "completed", "failed", "cancelled")
DROPLET_STATES = ("active", "inactive", "error", "healthy", "down")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]
    writes: bool

    @property
    def permission(self) -> Permission | None:
        """What the caller needs to run it: writes need `write`, mesh reads `read`."""
        if self.writes:
            return "write"
        return None if self.name == "help" else "read"

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.schema.get("required", ()))


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_DROPLET_ID = {"type": "integer", "minimum": 1, "description": "Numeric droplet id, e.g. 14"}
_TASK_ID = {"type": "integer", "minimum": 1, "description": "Numeric task id"}

CATALOGUE: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_droplets",
        "List the droplets registered in the mesh, optionally only those with a given status.",
        _object({"status": {"type": "string", "enum": list(DROPLET_STATES)}}),
        writes=False,
    ),
    ToolSpec(
        "droplet_status",
        "Health and details of one droplet.",
        _object({"droplet_id": _DROPLET_ID}, ("droplet_id",)),
        writes=False,
    ),
    ToolSpec(
        "list_tasks",
        "List tasks in the Orchestrator, optionally filtered.",
        _object(
            {
                "status": {"type": "string", "enum": list(TASK_STATES)},
                "assigned_droplet_id": _DROPLET_ID,
                "task_type": {"type": "string", "minLength": 1, "maxLength": 50},
                "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            }
        ),
        writes=False,
    ),
    ToolSpec(
        "task_status",
        "Status and history of one task.",
        _object({"task_id": _TASK_ID}, ("task_id",)),
        writes=False,
    ),
    ToolSpec(
        "system_status",
        "Overall mesh status: droplets up and down, tasks active and pending.",
        _object({}),
        writes=False,
    ),
    ToolSpec(
        "system_alerts",
        "Recent alerts: droplets going down or recovering, missed heartbeats, failed tasks.",
        _object({"limit": {"type": "integer", "minimum": 1, "maximum": 100}}),
        writes=False,
    ),
    ToolSpec(
        "create_task",
        "Create a task in the Orchestrator. Priority 1 is the highest, 10 the lowest.",
        _object(
            {
                "task_type": {"type": "string", "enum": list(TASK_TYPES)},
                "title": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": {"type": "string", "maxLength": 5000},
                "required_capability": {"type": "string", "minLength": 1, "maxLength": 100},
                "priority": {"type": "integer", "minimum": 1, "maximum": 10},
                "payload": {
                    "type": "object",
                    "properties": {
                        "target_droplet_id": _DROPLET_ID,
                        "code_url": {"type": "string"},
                        "spec_url": {"type": "string"},
                    },
                    "additionalProperties": True,
                },
            },
            ("task_type", "title", "priority", "payload"),
        ),
        writes=True,
    ),
    ToolSpec(
        "cancel_task",
        "Cancel a pending or assigned task.",
        _object({"task_id": _TASK_ID}, ("task_id",)),
        writes=True,
    ),
    ToolSpec(
        "send_message",
        "Send a message to another droplet through the Orchestrator.",
        _object(
            {
                "target_droplet_id": _DROPLET_ID,
                "message": {"type": "string", "minLength": 1, "maxLength": 5000},
            },
            ("target_droplet_id", "message"),
        ),
        writes=True,
    ),
    ToolSpec("help", "What this assistant can do.", _object({}), writes=False),
)

_BY_NAME: dict[str, ToolSpec] = {spec.name: spec for spec in CATALOGUE}


def get_spec(name: str) -> ToolSpec | None:
    return _BY_NAME.get(name)


def tool_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def validation_errors(call: ToolCall) -> list[str]:
    """Why a call is unacceptable, in words a person (or a model) can act on; [] when fine."""
    spec = _BY_NAME.get(call.tool)
    if spec is None:
        return [f"unknown tool {call.tool!r}"]
    validator = Draft202012Validator(spec.schema)
    errors = []
    for err in sorted(validator.iter_errors(call.args), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path)
        errors.append(f"{where}: {err.message}" if where else err.message)
    return errors


def missing_arguments(call: ToolCall) -> list[str]:
    spec = _BY_NAME.get(call.tool)
    if spec is None:
        return []
    return [name for name in spec.required if name not in call.args]
