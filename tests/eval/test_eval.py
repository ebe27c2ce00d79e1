"""The offline planner on the labelled splits, with the thresholds the service promises."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.domain.plan import Plan, ToolCall
from tests.eval.run_eval import (
    SPLITS,
    SPLITS_DIR,
    Case,
    evaluate,
    judge,
    load_corpus,
    load_split,
    offline_planner,
    render,
)

TRAIN_MIN = 0.95
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


def test_splits_are_well_formed_and_disjoint() -> None:
    seen_ids: set[str] = set()
    texts: dict[str, set[str]] = {}
    for name in SPLITS:
        cases = load_split(name)
        assert cases, name
        ids = {c.id for c in cases}
        assert len(ids) == len(cases), f"duplicate ids in {name}"
        assert not ids & seen_ids, f"{name} shares ids with another split"
        seen_ids |= ids
        texts[name] = {c.text.lower() for c in cases}
        for line in (SPLITS_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            assert raw["expect"]["kind"] in ("tools", "ask", "answer")
    assert len(load_split("test")) >= 300
    assert texts["train"] >= {t.lower() for t in GUIDE_EXAMPLES}


async def test_train_accuracy() -> None:
    report = await evaluate(offline_planner(), load_corpus())
    assert report.accuracy >= TRAIN_MIN, render("train", report)


TEST_MIN = 0.95
SPELLED_MIN = 0.95


async def test_held_out_test_split_thresholds() -> None:
    """Issue 15's promise, on cases written blind and never tuned on. The message shows the
    numbers only: the test split's misses are not to be read (that would make it a dev split)."""
    report = await evaluate(offline_planner(), load_split("test"))
    summary = render("test", report, misses=0)
    spelled = report.subset(lambda c: c.spelled)
    hostile = report.subset(lambda c: c.category == "hostile")
    assert len(spelled.results) >= 50 and len(hostile.results) >= 20, summary
    assert report.accuracy >= TEST_MIN, summary
    assert spelled.accuracy >= SPELLED_MIN, summary
    assert hostile.accuracy == 1.0, summary


async def test_every_guide_example_passes() -> None:
    cases = [c for c in load_corpus() if "guide" in c.tags]
    report = await evaluate(offline_planner(), cases)
    assert report.accuracy == 1.0, render("guide", report)


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
    nested = {
        "kind": "ask",
        "calls": [{"tool": "create_task", "args": {}}],
        "missing": ["target_droplet_id", "task_type"],
    }
    asked_nested = asked.model_copy(
        update={
            "calls": [ToolCall(tool="create_task")],
            "missing": ["task_type", "payload.target_droplet_id"],
        }
    )
    assert judge(_case(nested), asked_nested) is None
