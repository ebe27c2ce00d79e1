"""Hybrid and fallback routing with real LLM planners against the fakes, and the factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.config import ConfigError
from app.conversation.planners.factory import build_planner, resolve_mode
from app.conversation.planners.gemini import GeminiPlanner
from app.conversation.planners.hybrid import FallbackPlanner, HybridPlanner, close_planner
from app.conversation.planners.openai_compat import OpenAICompatPlanner
from app.domain.plan import Plan, PlanContext, ToolCall
from tests.fakes import gemini as g
from tests.fakes import openai as o


class StubRules:
    """A rules planner with a fixed answer, counting its calls."""

    name = "rules"

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self.calls = 0

    async def plan(self, text: str, context: PlanContext) -> Plan:
        self.calls += 1
        return self._plan


class CrashingPlanner:
    name = "crashy"

    async def plan(self, text: str, context: PlanContext) -> Plan:
        raise RuntimeError("bug")


CONFIDENT = Plan(
    kind="tools", intent="list_droplets", calls=[ToolCall(tool="list_droplets")], confidence=0.95
)
UNSURE = Plan(
    kind="answer", intent="unknown", answer="Sorry, I did not understand.", confidence=0.2
)


@pytest.fixture
async def gemini(fake_gemini: g.FakeGemini) -> AsyncIterator[GeminiPlanner]:
    planner = GeminiPlanner(
        api_key="k", base_url=fake_gemini.base_url, timeout_s=0.8, retry_backoff_s=0.0
    )
    yield planner
    await planner.aclose()


@pytest.fixture
async def openai_llm(fake_openai: o.FakeOpenAI) -> AsyncIterator[OpenAICompatPlanner]:
    planner = OpenAICompatPlanner(
        base_url=fake_openai.base_url, model="m", timeout_s=5.0, retry_backoff_s=0.0
    )
    yield planner
    await planner.aclose()


async def test_confident_rules_answer_without_the_model(
    gemini: GeminiPlanner, fake_gemini: g.FakeGemini
) -> None:
    hybrid = HybridPlanner(rules=StubRules(CONFIDENT), llm=gemini)

    plan = await hybrid.plan("list droplets", PlanContext())

    assert plan == CONFIDENT
    assert fake_gemini.requests == []


async def test_unsure_rules_hand_over_to_the_model(
    gemini: GeminiPlanner, fake_gemini: g.FakeGemini
) -> None:
    fake_gemini.push(g.function_call("task_status", {"task_id": 9}))
    hybrid = HybridPlanner(rules=StubRules(UNSURE), llm=gemini)

    plan = await hybrid.plan("what became of nine?", PlanContext())

    assert plan.planner == "gemini"
    assert plan.calls == [ToolCall(tool="task_status", args={"task_id": 9})]
    assert len(fake_gemini.requests) == 1  # one round trip for a read turn


async def test_threshold_is_inclusive(gemini: GeminiPlanner, fake_gemini: g.FakeGemini) -> None:
    borderline = CONFIDENT.model_copy(update={"confidence": 0.6})
    hybrid = HybridPlanner(rules=StubRules(borderline), llm=gemini, threshold=0.6)

    assert await hybrid.plan("list droplets", PlanContext()) == borderline
    assert fake_gemini.requests == []


async def test_malformed_twice_falls_back_to_rules_with_a_note(
    gemini: GeminiPlanner, fake_gemini: g.FakeGemini
) -> None:
    fake_gemini.push(g.malformed(), g.malformed())
    hybrid = HybridPlanner(rules=StubRules(UNSURE), llm=gemini)

    plan = await hybrid.plan("do the thing", PlanContext())

    assert plan.planner == "rules"
    assert plan.answer == UNSURE.answer
    assert "llm_fallback:malformed_call" in plan.notes
    assert "llm_calls:2" in plan.notes


async def test_timeout_falls_back_to_rules(
    gemini: GeminiPlanner, fake_gemini: g.FakeGemini
) -> None:
    fake_gemini.push(g.slow(g.function_call("system_status"), 1.0))
    hybrid = HybridPlanner(rules=StubRules(UNSURE), llm=gemini)

    plan = await hybrid.plan("how are things", PlanContext())

    assert plan.notes == ["llm_fallback:timeout", "llm_calls:1"]


async def test_openai_invalid_twice_falls_back(
    openai_llm: OpenAICompatPlanner, fake_openai: o.FakeOpenAI
) -> None:
    fake_openai.push(o.tool_call("task_status", {"task_id": "x"}), o.tool_call("task_status", {}))
    hybrid = HybridPlanner(rules=StubRules(UNSURE), llm=openai_llm)

    plan = await hybrid.plan("task x", PlanContext())

    assert "llm_fallback:invalid_arguments" in plan.notes


async def test_an_unexpected_crash_still_falls_back() -> None:
    hybrid = HybridPlanner(rules=StubRules(UNSURE), llm=CrashingPlanner())

    plan = await hybrid.plan("anything", PlanContext())

    assert plan.notes == ["llm_fallback:internal_error"]


async def test_fallback_planner_asks_the_model_first(
    gemini: GeminiPlanner, fake_gemini: g.FakeGemini
) -> None:
    rules = StubRules(CONFIDENT)
    fake_gemini.push(g.function_call("system_status"))
    planner = FallbackPlanner(llm=gemini, rules=rules)

    plan = await planner.plan("list droplets", PlanContext())

    assert plan.planner == "gemini"
    assert rules.calls == 0


async def test_fallback_planner_uses_rules_on_failure(
    openai_llm: OpenAICompatPlanner, fake_openai: o.FakeOpenAI
) -> None:
    fake_openai.push(o.server_error(), o.server_error())
    planner = FallbackPlanner(llm=openai_llm, rules=StubRules(CONFIDENT))

    plan = await planner.plan("list droplets", PlanContext())

    assert plan.calls == CONFIDENT.calls
    assert plan.notes == ["llm_fallback:upstream_error", "llm_calls:2"]


# Factory


@pytest.mark.parametrize(
    ("mode", "has_gemini", "has_openai", "expected"),
    [
        (None, False, False, "rules"),
        ("", False, False, "rules"),
        ("auto", True, False, "hybrid"),
        (None, False, True, "hybrid"),
        ("RULES", True, True, "rules"),
        ("gemini", True, False, "gemini"),
        ("openai", False, True, "openai"),
    ],
)
def test_resolve_mode(mode: str | None, has_gemini: bool, has_openai: bool, expected: str) -> None:
    assert resolve_mode(mode=mode, has_gemini=has_gemini, has_openai=has_openai) == expected


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_mode(mode="magic", has_gemini=False, has_openai=False)
    assert caught.value.variable == "PLANNER"


async def test_default_without_a_model_is_the_rules() -> None:
    rules = StubRules(CONFIDENT)
    planner = build_planner(
        mode=None,
        rules=rules,
        gemini_api_key=None,
        gemini_model="m",
        gemini_base_url=None,
        llm_base_url=None,
        llm_model=None,
        llm_api_key=None,
        timeout_s=1.0,
    )
    assert planner is rules
    await close_planner(planner)


async def test_default_with_a_gemini_key_is_hybrid_gemini(fake_gemini: g.FakeGemini) -> None:
    fake_gemini.push(g.function_call("system_alerts"))
    planner = build_planner(
        mode=None,
        rules=StubRules(UNSURE),
        gemini_api_key=" key ",
        gemini_model="gemini-2.5-flash",
        gemini_base_url=fake_gemini.base_url,
        llm_base_url=None,
        llm_model=None,
        llm_api_key=None,
        timeout_s=1.0,
    )
    try:
        assert isinstance(planner, HybridPlanner)
        assert isinstance(planner.llm, GeminiPlanner)
        plan = await planner.plan("alerts?", PlanContext())
    finally:
        await close_planner(planner)
    assert plan.planner == "gemini"
    assert fake_gemini.requests[0].headers["x-goog-api-key"] == "key"


async def test_default_with_a_base_url_is_hybrid_openai(fake_openai: o.FakeOpenAI) -> None:
    fake_openai.push(o.tool_call("system_alerts"))
    planner = build_planner(
        mode=None,
        rules=StubRules(UNSURE),
        gemini_api_key=None,
        gemini_model="gemini-2.5-flash",
        gemini_base_url=None,
        llm_base_url=fake_openai.base_url,
        llm_model="qwen2.5",
        llm_api_key=None,
        timeout_s=1.0,
    )
    try:
        assert isinstance(planner, HybridPlanner)
        assert isinstance(planner.llm, OpenAICompatPlanner)
        plan = await planner.plan("alerts?", PlanContext())
    finally:
        await close_planner(planner)
    assert plan.planner == "openai"


async def test_explicit_modes_build_fallback_planners() -> None:
    rules = StubRules(CONFIDENT)
    gemini = build_planner(
        mode="gemini",
        rules=rules,
        gemini_api_key="k",
        gemini_model="x",
        gemini_base_url="http://127.0.0.1:9",
        llm_base_url=None,
        llm_model=None,
        llm_api_key=None,
        timeout_s=1.0,
    )
    openai = build_planner(
        mode="openai",
        rules=rules,
        gemini_api_key="k",
        gemini_model="x",
        gemini_base_url=None,
        llm_base_url="http://127.0.0.1:9/v1",
        llm_model="m",
        llm_api_key=None,
        timeout_s=1.0,
    )
    try:
        assert isinstance(gemini, FallbackPlanner)
        assert gemini.name == "gemini"
        assert isinstance(openai, FallbackPlanner)
        assert openai.name == "openai"
    finally:
        await close_planner(gemini)
        await close_planner(openai)


@pytest.mark.parametrize(
    ("mode", "key", "url", "model", "variable"),
    [
        ("gemini", None, None, None, "GEMINI_API_KEY"),
        ("openai", "k", None, "m", "LLM_BASE_URL"),
        ("openai", None, "http://127.0.0.1:9/v1", None, "LLM_MODEL"),
        ("hybrid", None, None, None, "PLANNER"),
    ],
)
def test_missing_configuration_is_named(
    mode: str, key: str | None, url: str | None, model: str | None, variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_planner(
            mode=mode,
            rules=StubRules(CONFIDENT),
            gemini_api_key=key,
            gemini_model="x",
            gemini_base_url=None,
            llm_base_url=url,
            llm_model=model,
            llm_api_key=None,
            timeout_s=1.0,
        )
    assert caught.value.variable == variable
