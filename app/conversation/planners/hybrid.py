"""Routing between the offline rules and a model, with the rules as the safety net.

`HybridPlanner` (PLANNER=hybrid): the rules answer when they are confident, the model otherwise.
`FallbackPlanner` (PLANNER=gemini|openai): the model first. Either way, when the model fails the
rules' plan is returned with a note `llm_fallback:<reason>`, so the user never sees an exception.
"""

from __future__ import annotations

import structlog

from app.conversation.planners.llm_common import PlannerFailure
from app.domain.plan import Plan, PlanContext, Planner

log = structlog.get_logger(__name__)


def _with_fallback_note(plan: Plan, failure: PlannerFailure) -> Plan:
    notes = [*plan.notes, f"llm_fallback:{failure.reason}"]
    if failure.llm_calls:
        notes.append(f"llm_calls:{failure.llm_calls}")
    return plan.model_copy(update={"notes": notes})


async def _ask_model(llm: Planner, text: str, context: PlanContext) -> Plan:
    """The model's plan; any failure, even an unexpected one, as a PlannerFailure."""
    try:
        return await llm.plan(text, context)
    except PlannerFailure:
        raise
    except Exception as exc:
        # A bug or a server surprise must not cost the operator the turn; the log keeps the trace.
        log.exception("llm_planner_crashed", planner=llm.name, error_type=type(exc).__name__)
        raise PlannerFailure("internal_error") from exc


class HybridPlanner:
    """Rules when their confidence reaches `threshold`, else the model, else the rules anyway."""

    name = "hybrid"

    def __init__(self, *, rules: Planner, llm: Planner, threshold: float = 0.6) -> None:
        self._rules = rules
        self._llm = llm
        self._threshold = threshold

    @property
    def llm(self) -> Planner:
        return self._llm

    async def plan(self, text: str, context: PlanContext) -> Plan:
        ruled = await self._rules.plan(text, context)
        if ruled.confidence >= self._threshold:
            return ruled
        try:
            return await _ask_model(self._llm, text, context)
        except PlannerFailure as failure:
            log.warning("llm_fallback", planner=self._llm.name, reason=failure.reason)
            return _with_fallback_note(ruled, failure)

    async def aclose(self) -> None:
        await close_planner(self._llm)


class FallbackPlanner:
    """The model for every turn; the rules only when the model fails."""

    def __init__(self, *, llm: Planner, rules: Planner) -> None:
        self._llm = llm
        self._rules = rules
        self.name = llm.name

    @property
    def llm(self) -> Planner:
        return self._llm

    async def plan(self, text: str, context: PlanContext) -> Plan:
        try:
            return await _ask_model(self._llm, text, context)
        except PlannerFailure as failure:
            log.warning("llm_fallback", planner=self._llm.name, reason=failure.reason)
            return _with_fallback_note(await self._rules.plan(text, context), failure)

    async def aclose(self) -> None:
        await close_planner(self._llm)


async def close_planner(planner: Planner) -> None:
    """Release a planner's HTTP clients, if it has any (the rules planner has none)."""
    closer = getattr(planner, "aclose", None)
    if closer is not None:
        await closer()
