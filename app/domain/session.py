"""What the session store returns: sessions, stored messages, audit entries, statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.domain.plan import HistoryTurn, PendingCall

SessionSource = Literal["chat", "voice"]
MessageRole = Literal["user", "assistant"]
AuditOutcome = Literal["ok", "degraded", "error", "declined"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SessionInfo(BaseModel):
    session_id: str
    source: SessionSource
    owner: str | None = None
    """The identity that created the session (a principal id, or "voice:18:user-77")."""
    title: str | None = None
    """The first user message, shortened: what a session list shows."""
    created_at: datetime
    last_activity: datetime
    message_count: int = 0
    pending: PendingCall | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    """What "it" refers to across turns: last_task_id, last_droplet_id, ..."""


class StoredMessage(BaseModel):
    seq: int
    """1-based, strictly increasing per session, without gaps."""
    role: MessageRole
    text: str
    trace_id: str | None = None
    created_at: datetime
    meta: dict[str, Any] = Field(default_factory=dict)
    """For answers: {"actions": [...], ...} as given to record_turn."""

    def as_turn(self) -> HistoryTurn:
        """The planner's view of this message."""
        return HistoryTurn(role=self.role, text=self.text)


class AuditEntry(BaseModel):
    """One tool execution (or a declined one): who, where, what, how it went."""

    id: int | None = None
    """Assigned by the store; None before the entry is recorded."""
    at: datetime = Field(default_factory=utc_now)
    actor: str | None = None
    session_id: str | None = None
    source: str | None = None
    """The channel or droplet the turn came from: chat, voice, ws, droplet-18, ..."""
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    outcome: AuditOutcome
    detail: str | None = None
    duration_ms: float | None = None
    trace_id: str | None = None
    planner: str | None = None


class SessionStats(BaseModel):
    total_sessions: int
    by_source: dict[str, int]
    """Always has the keys "chat" and "voice"."""
    with_pending_actions: int
    total_messages: int
