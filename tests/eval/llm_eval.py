"""The model planners on the same splits: a real endpoint when configured, else the local fakes.

With no model reachable (CI, this machine), the fakes answer like a context-free model: they
plan the last user message with the offline planner and reply in the model's wire format. That
measures the wiring (tool declarations, argument parsing and validation, fallbacks, when the
hybrid consults the model), not a model's intelligence; the report says which it was.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.conversation.planners.factory import build_planner
from app.domain.plan import PlanContext, Planner
from tests.eval.run_eval import (
    DEFAULT_ALIASES,
    Case,
    Report,
    Result,
    evaluate,
    judge,
    offline_planner,
)
from tests.fakes import gemini as g
from tests.fakes import openai as o
from tests.fakes._server import RecordedRequest


@dataclass
class LLMSetup:
    planner: Planner
    endpoint: str
    """"real" or a description of the fake."""


@dataclass
class Stopwatch:
    samples: list[float] = field(default_factory=list)

    @contextmanager
    def time(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.samples.append(time.perf_counter() - started)

    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000 if self.samples else 0.0


def llm_calls(notes: Sequence[str]) -> int:
    return sum(int(n.split(":", 1)[1]) for n in notes if n.startswith("llm_calls:"))


def _echo_plan(text: str) -> tuple[list[tuple[str, dict[str, object]]], str | None]:
    plan = offline_planner().plan_now(text, PlanContext(aliases=dict(DEFAULT_ALIASES)))
    return [(c.tool, c.args) for c in plan.calls], plan.answer


def _echo_gemini(request: RecordedRequest) -> g.GeminiReply:
    calls, answer = _echo_plan(g.last_user_text(request))
    if calls:
        return g.function_calls(*calls)
    return g.text(answer or "I can help with droplets and tasks.")


def _echo_openai(request: RecordedRequest) -> o.OpenAIReply:
    calls, answer = _echo_plan(o.last_user_text(request))
    if calls:
        return o.tool_calls(*calls)
    return o.text(answer or "I can help with droplets and tasks.")


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
            rules=offline_planner(),
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
                    rules=offline_planner(),
                    gemini_api_key="fake-key",
                    gemini_base_url=fake.base_url,
                ),
                "fake Gemini echoing a context-free offline plan",
            )
    else:
        with o.FakeOpenAI(responder=_echo_openai) as fake:
            yield LLMSetup(
                build_planner(
                    mode=mode,
                    rules=offline_planner(),
                    gemini_api_key=None,
                    llm_base_url=fake.base_url,
                    llm_model="fake",
                ),
                "fake OpenAI-compatible server echoing a context-free offline plan",
            )


def evaluate_llm(kind: str, splits: Mapping[str, Sequence[Case]]) -> dict[str, Report]:
    """Each split through the model planner; prints calls per turn, fallbacks, latency, and for
    the hybrid how often it consulted the model when the offline plan was wrong or right."""
    watch = Stopwatch()
    reports: dict[str, Report] = {}
    consulted = {True: [0, 0], False: [0, 0]}  # offline right? -> [consulted, cases]
    calls = fallbacks = turns = 0
    rules = offline_planner()

    async def run(planner: Planner) -> None:
        nonlocal calls, fallbacks, turns
        for name, cases in splits.items():
            report = Report()
            for case in cases:
                with watch.time():
                    plan = await planner.plan(case.text, case.context)
                used = llm_calls(plan.notes)
                calls += used
                turns += 1
                fallbacks += any(n.startswith("llm_fallback:") for n in plan.notes)
                report.results.append(Result(case, plan, judge(case, plan)))
                offline_right = judge(case, rules.plan_now(case.text, case.context)) is None
                consulted[offline_right][0] += used > 0
                consulted[offline_right][1] += 1
            reports[name] = report
        closer = getattr(planner, "aclose", None)
        if closer is not None:
            await closer()

    with llm_planner(kind) as setup:
        asyncio.run(run(setup.planner))
    lines = [
        f"planner: {kind} against {setup.endpoint}",
        f"LLM calls per turn: {calls / max(1, turns):.2f}   fallbacks to rules: {fallbacks}"
        f"   latency p50: {watch.p50_ms():.1f} ms",
    ]
    if kind == "hybrid":
        for right, label in ((False, "got wrong"), (True, "got right")):
            asked, total = consulted[right]
            lines.append(
                f"model consulted on {asked}/{total} ({asked / max(1, total):.1%}) of the cases "
                f"the offline planner {label}"
            )
    sys.stdout.write("\n".join(lines) + "\n\n")
    return reports


__all__ = ["LLMSetup", "Stopwatch", "evaluate", "evaluate_llm", "llm_calls", "llm_planner"]
