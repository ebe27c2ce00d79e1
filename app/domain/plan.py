"""What every planner (rules, Gemini, OpenAI-compatible) takes and returns."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class HistoryTurn(BaseModel):
    # Frozen: a live session hands the same ones to every turn's planner (app.store.live).
    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    text: str


class PendingCall(BaseModel):
    """A write waiting for missing slots or for the user's confirmation."""

    call: ToolCall
    missing: list[str] = Field(default_factory=list)
    proposal_id: str | None = None
    """Names exactly this proposal: a confirmation that names another one executes nothing."""
    proposed_by: str | None = None
    """The identity it was proposed to; only that identity's "yes" executes it."""
    preview: str | None = None
    """What the proposal listed when it was made (a bulk action's tasks): what "yes" agrees to."""


class PlanContext(BaseModel):
    """Everything a planner may know besides the message itself."""

    history: list[HistoryTurn] = Field(default_factory=list)
    """The session's recent turns, oldest first."""
    last_task_id: int | None = None
    """The task created or discussed last: what "it" means in "cancel it"."""
    last_droplet_id: int | None = None
    """The droplet discussed last: what "it" means in "is it healthy?"."""
    pending: PendingCall | None = None
    aliases: dict[str, int] = Field(default_factory=dict)
    """Lower-case droplet names and nicknames to ids ("registry" -> 1, "voice" -> 18)."""


PlanKind = Literal["tools", "ask", "answer"]


class Plan(BaseModel):
    """A planner's proposal. The conversation service validates it against the catalogue."""

    kind: PlanKind
    intent: str
    """The main tool name, or "multi", "smalltalk", "unknown"."""
    calls: list[ToolCall] = Field(default_factory=list)
    """For "tools": the calls to run. For "ask": the one partial write call."""
    missing: list[str] = Field(default_factory=list)
    """For "ask": the argument names still needed, in the order to ask for them."""
    answer: str | None = None
    """For "answer": text to say as is (greetings, out of scope)."""
    confidence: float = Field(ge=0.0, le=1.0)
    planner: str = "rules"
    notes: list[str] = Field(default_factory=list)
    """Machine-readable remarks, e.g. "llm_fallback: timeout"."""
    features: dict[str, float] = Field(default_factory=dict)
    """What the confidence was computed from (the offline planner's features), for "why?" and
    for fitting the calibration."""


class Planner(Protocol):
    name: str

    async def plan(self, text: str, context: PlanContext) -> Plan: ...
