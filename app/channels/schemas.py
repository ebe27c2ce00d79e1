"""Wire models of the chat API (`/api/*`), as existing clients expect them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

MAX_MESSAGE_CHARS = 5000


def _trimmed_message(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if len(value) > MAX_MESSAGE_CHARS:
            raise ValueError(f"must be at most {MAX_MESSAGE_CHARS} characters")
    return value


class ChatRequest(BaseModel):
    message: str = Field(description="What the operator said (1 to 5000 characters).")
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:@-]+$",
        description="Continue this session; omitted: a new one is created and returned.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    proposal_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="With a yes or no: the proposal it answers (its `pending_confirmation."
        "proposal_id`). A proposal that changed in the meantime is not executed.",
    )

    _check_message = field_validator("message", mode="before")(_trimmed_message)


class Action(BaseModel):
    tool: str
    status: str


class ChatResponse(BaseModel):
    response: str
    session_id: str
    trace_id: str
    timestamp: str
    actions: list[Action]
    pending_confirmation: dict[str, Any] | None = None
    planner: str
    notes: list[str] = Field(default_factory=list)


class AnalyzeRequest(BaseModel):
    text: str

    _check_text = field_validator("text", mode="before")(_trimmed_message)


class AnalyzedCall(BaseModel):
    tool: str
    args: dict[str, Any]


class Analysis(BaseModel):
    intent: str
    tool_calls: list[AnalyzedCall]
    missing: list[str]
    confidence: float
    planner: str
    writes: list[str] = Field(description="Which proposed tools would change the mesh.")
    answer: str | None = None


class AnalyzeResponse(BaseModel):
    analysis: Analysis
    timestamp: str


class SessionSummary(BaseModel):
    session_id: str
    owner: str | None = Field(default=None, description="The identity the session belongs to.")
    source: Literal["chat", "voice"]
    created_at: datetime
    last_activity: datetime
    message_count: int
    title: str | None = None


class SessionList(BaseModel):
    sessions: list[SessionSummary]
    total: int


class HistoryEntry(BaseModel):
    seq: int
    role: Literal["user", "assistant"]
    content: str
    timestamp: datetime
    trace_id: str | None = None
    actions: list[Action] = Field(default_factory=list)


class SessionDetail(SessionSummary):
    history: list[HistoryEntry]
    pending_confirmation: dict[str, Any] | None = None


class SessionStatsResponse(BaseModel):
    total_sessions: int
    by_source: dict[str, int]
    with_pending_actions: int
    total_messages: int


class Deleted(BaseModel):
    deleted: int


class AuditRecord(BaseModel):
    id: int | None
    at: datetime
    actor: str | None
    session_id: str | None
    source: str | None
    tool: str
    args: dict[str, Any]
    outcome: str
    detail: str | None
    duration_ms: float | None
    trace_id: str | None
    planner: str | None


class AuditList(BaseModel):
    entries: list[AuditRecord]
    count: int
