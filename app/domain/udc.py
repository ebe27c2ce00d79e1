"""UDC wire models: the envelope, the standard error body, and the UDC endpoint bodies."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.utils.time import isoformat_z


class ErrorCode(StrEnum):
    INVALID_REQUEST = "INVALID_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """The one error shape of the mesh, for every 4xx and 5xx."""

    status: Literal["error"] = "error"
    error: ErrorDetail
    timestamp: str = Field(default_factory=isoformat_z)


MessageType = Literal[
    "status", "event", "command", "query", "response", "error", "proof", "registry"
]


def normalise_droplet_ref(value: object) -> str:
    """ "droplet-18", "18" and 18 all mean droplet 18; keep other names as given."""
    text = str(value).strip()
    if text.lower().startswith("droplet-"):
        text = text[len("droplet-") :]
    return text


class Envelope(BaseModel):
    """The 7-field UDC envelope. Ids may be strings ("droplet-18", "18") or integers."""

    udc_version: str = "1.0"
    trace_id: str = Field(default_factory=lambda: str(uuid.uuid4()), max_length=128)
    source: str = Field(max_length=128)
    target: str = Field(default="12", max_length=128)
    message_type: MessageType
    payload: dict[str, Any] = Field(default_factory=dict)
    timestamp: str = Field(default_factory=isoformat_z, max_length=64)
    route_back: str | None = Field(default=None, max_length=128)

    @field_validator("source", "target", "route_back", mode="before")
    @classmethod
    def _id_to_text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class HealthResponse(BaseModel):
    id: int
    name: str
    steward: str
    status: Literal["active", "inactive", "error"]
    endpoint: str
    version: str
    uptime_seconds: float
    updated_at: str
    message: str
    checks: dict[str, str] = Field(default_factory=dict)


class CapabilitiesResponse(BaseModel):
    version: str
    features: list[str]
    dependencies: list[str]
    udc_version: str = "1.0"
    metadata: dict[str, Any] = Field(default_factory=dict)


class StateResponse(BaseModel):
    cpu_percent: float
    memory_mb: float
    uptime_seconds: float
    requests_total: int
    requests_per_minute: int
    errors_last_hour: int
    active_sessions: int
    active_connections: int
    average_response_time_ms: float


class DependencyStatus(BaseModel):
    id: int | None = None
    name: str
    status: Literal["connected", "unavailable", "disabled", "unknown"]
    detail: str | None = None


class DependenciesResponse(BaseModel):
    required: list[DependencyStatus]
    optional: list[DependencyStatus]
    missing: list[str]


class VersionResponse(BaseModel):
    version: str
    build: str
    environment: str
    python: str
    udc_version: str = "1.0"
