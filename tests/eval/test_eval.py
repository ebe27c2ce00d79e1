"""The offline planner must keep at least 95% of the labelled corpus right."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.conversation.planners.rules import RulesPlanner
from app.domain.plan import Plan, ToolCall
from tests.eval.run_eval import CORPUS, Case, evaluate, judge, load_corpus, render

MIN_ACCURACY = 0.95
GUIDE_EXAMPLES = {
    "show me all registered items",
    "Get the latest system alerts",
    "hello",
    "show me all registered droplets",
    "is droplet 14 healthy?",
    "create a verification task for droplet 14, priority 3",
    "cancel it",
    "any alerts?",
}


def test_corpus_is_big_and_well_formed() -> None:
    cases = load_corpus()
    assert len(cases) >= 220
    assert len({c.id for c in cases}) == len(cases)
    texts = {c.text for c in cases}
    assert texts >= GUIDE_EXAMPLES
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        assert raw["expect"]["kind"] in ("tools", "ask", "answer")


async def test_rules_planner_accuracy() -> None:
    report = await evaluate(RulesPlanner(), load_corpus())
    assert report.accuracy >= MIN_ACCURACY, render(report)


async def test_every_guide_example_passes() -> None:
    cases = [c for c in load_corpus() if "guide" in c.tags]
    report = await evaluate(RulesPlanner(), cases)
    assert report.accuracy == 1.0, render(report)


def _case(expect: Mapping[str, Any]) -> Case:
    return Case(id="t", text="t", context=load_corpus()[0].context, expect=expect)


def test_judge_requires_the_exact_calls_and_labelled_arguments() -> None:
    expect = {"kind": "tools", "calls": [{"tool": "create_task", "args": {"priority": 3}}]}
    good = Plan(
        kind="tools",
        intent="create_task",
        confidence=0.9,
        calls=[ToolCall(tool="create_task", args={"priority": 3, "title": "x"})],
    )
    assert judge(_case(expect), good) is None
    extra = good.model_copy(update={"calls": [*good.calls, ToolCall(tool="help")]})
    assert judge(_case(expect), extra) == "2 calls, expected 1"
    unlabelled = Plan(
        kind="tools",
        intent="list_tasks",
        confidence=0.9,
        calls=[ToolCall(tool="list_tasks", args={"status": "failed"})],
    )
    expect_all = {"kind": "tools", "calls": [{"tool": "list_tasks", "args": {}}]}
    assert judge(_case(expect_all), unlabelled) is not None
    ask = {"kind": "ask", "calls": [{"tool": "cancel_task", "args": {}}], "missing": ["task_id"]}
    asked = Plan(
        kind="ask",
        intent="cancel_task",
        confidence=0.8,
        missing=["task_id"],
        calls=[ToolCall(tool="cancel_task")],
    )
    assert judge(_case(ask), asked) is None
    assert judge(_case({"kind": "answer"}), asked) == "kind 'ask', expected 'answer'"
