"""The LLM planners on the eval corpus: a real endpoint when configured, else the local fakes.

With no model reachable (CI, this machine), the fakes answer like a context-free model: they
plan the last user message with the rules and reply in the model's wire format. That measures
the wiring (tool declarations, argument parsing and validation, fallbacks), not a model's
intelligence; the report says which it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.conversation.planners.factory import build_planner
from app.conversation.planners.rules import RulesPlanner, plan_message
from app.domain.plan import PlanContext, Planner
from tests.eval.run_eval import DEFAULT_ALIASES
from tests.fakes import gemini as g
from tests.fakes import openai as o
from tests.fakes._server import RecordedRequest


@dataclass
class LLMSetup:
    planner: Planner
    endpoint: str
    """"real" or a description of the fake."""


def _echo_gemini(request: RecordedRequest) -> g.GeminiReply:
    plan = plan_message(g.last_user_text(request), PlanContext(aliases=dict(DEFAULT_ALIASES)))
    if plan.calls:
        return g.function_calls(*((c.tool, c.args) for c in plan.calls))
    return g.text(plan.answer or "I can help with droplets and tasks.")


def _echo_openai(request: RecordedRequest) -> o.OpenAIReply:
    plan = plan_message(o.last_user_text(request), PlanContext(aliases=dict(DEFAULT_ALIASES)))
    if plan.calls:
        return o.tool_calls(*((c.tool, c.args) for c in plan.calls))
    return o.text(plan.answer or "I can help with droplets and tasks.")


@contextmanager
def llm_planner(kind: str) -> Iterator[LLMSetup]:
    """`kind`: gemini, openai, hybrid (rules first, the model when they are unsure)."""
    backend = (
        "gemini"
        if kind in ("gemini", "hybrid") and os.environ.get("GEMINI_API_KEY")
        else "openai"
        if kind == "openai" or os.environ.get("LLM_BASE_URL")
        else "gemini"
    )
    mode = "hybrid" if kind == "hybrid" else backend
    real_key = os.environ.get("GEMINI_API_KEY")
    real_url = os.environ.get("LLM_BASE_URL")
    if (backend == "gemini" and real_key) or (backend == "openai" and real_url):
        planner = build_planner(
            mode=mode,
            rules=RulesPlanner(),
            gemini_api_key=real_key,
            gemini_model=os.environ.get("GEMINI_MODEL", "gemini-2.5-flash"),
            llm_base_url=real_url,
            llm_model=os.environ.get("LLM_MODEL", "qwen2.5"),
            llm_api_key=os.environ.get("LLM_API_KEY"),
        )
        yield LLMSetup(planner, "real")
        return
    if backend == "gemini":
        with g.FakeGemini(responder=_echo_gemini) as fake:
            yield LLMSetup(
                build_planner(
                    mode=mode,
                    rules=RulesPlanner(),
                    gemini_api_key="fake-key",
                    gemini_base_url=fake.base_url,
                ),
                "fake Gemini echoing a context-free rules plan",
            )
    else:
        with o.FakeOpenAI(responder=_echo_openai) as fake:
            yield LLMSetup(
                build_planner(
                    mode=mode,
                    rules=RulesPlanner(),
                    gemini_api_key=None,
                    llm_base_url=fake.base_url,
                    llm_model="fake",
                ),
                "fake OpenAI-compatible server echoing a context-free rules plan",
            )


def llm_calls(notes: list[str]) -> int:
    for note in notes:
        if note.startswith("llm_calls:"):
            return int(note.split(":", 1)[1])
    return 0


class Stopwatch:
    def __init__(self) -> None:
        self.samples: list[float] = []

    @contextmanager
    def time(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.samples.append(time.perf_counter() - started)

    def p50_ms(self) -> float:
        ordered = sorted(self.samples)
        return ordered[len(ordered) // 2] * 1000 if ordered else 0.0
