"""Score a planner against the labelled corpus.

    python -m tests.eval.run_eval [--planner rules] [--show-passes]

A case passes when the plan has the expected kind, exactly the expected tool calls (as a
multiset) and every labelled argument; generated arguments (a task's title or description)
may be present without a label. Prints accuracy per tool and overall, then every failure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.conversation.planners.rules import RulesPlanner
from app.domain.plan import Plan, PlanContext, Planner, ToolCall
from app.mesh.catalogue import KNOWN_DROPLETS
from app.utils.logging import configure_logging

CORPUS = Path(__file__).parent / "splits" / "train.jsonl"

DEFAULT_ALIASES: Mapping[str, int] = {
    alias.lower(): known.id for known in KNOWN_DROPLETS for alias in (known.name, *known.aliases)
}
"""What `registry_info` supplies from the static catalogue when a case gives no aliases."""

FREE_KEYS: Mapping[str, frozenset[str]] = {"create_task": frozenset({"title", "description"})}
"""Arguments a planner may generate without the case labelling them."""

PLANNERS: Mapping[str, str] = {"rules": "app.conversation.planners.rules:RulesPlanner"}


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    context: PlanContext
    expect: Mapping[str, Any]
    tags: tuple[str, ...] = ()


@dataclass
class Result:
    case: Case
    plan: Plan
    failure: str | None


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.failure is None)

    @property
    def accuracy(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0

    def by_group(self) -> dict[str, tuple[int, int]]:
        totals: Counter[str] = Counter()
        passes: Counter[str] = Counter()
        for r in self.results:
            for group in groups(r.case):
                totals[group] += 1
                passes[group] += r.failure is None
        return {g: (passes[g], totals[g]) for g in sorted(totals)}


def load_corpus(path: Path = CORPUS) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        ctx = dict(raw.get("context") or {})
        ctx.setdefault("aliases", dict(DEFAULT_ALIASES))
        cases.append(
            Case(
                raw["id"],
                raw["text"],
                PlanContext.model_validate(ctx),
                raw["expect"],
                tuple(raw.get("tags", ())),
            )
        )
    return cases


def groups(case: Case) -> list[str]:
    kind = case.expect["kind"]
    if kind == "answer":
        return ["(answer)"]
    tools = sorted({c["tool"] for c in case.expect.get("calls", [])})
    return [f"{t} (ask)" for t in tools] if kind == "ask" else tools


def _args_match(tool: str, expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    if any(actual.get(k, object()) != v for k, v in expected.items()):
        return False
    extra = set(actual) - set(expected)
    return extra <= FREE_KEYS.get(tool, frozenset())


def judge(case: Case, plan: Plan) -> str | None:
    """None when the plan matches the labels, else why not."""
    expect = case.expect
    if plan.kind != expect["kind"]:
        return f"kind {plan.kind!r}, expected {expect['kind']!r}"
    if plan.kind == "answer":
        return None
    expected_calls: Sequence[Mapping[str, Any]] = expect.get("calls", [])
    if plan.kind == "ask":
        want = expected_calls[0]
        got = plan.calls[0] if plan.calls else ToolCall(tool="?")
        if got.tool != want["tool"]:
            return f"asks about {got.tool}, expected {want['tool']}"
        if list(plan.missing) != list(expect.get("missing", [])):
            return f"missing {plan.missing}, expected {expect.get('missing')}"
        if any(got.args.get(k, object()) != v for k, v in want.get("args", {}).items()):
            return f"partial args {got.args}, expected {want.get('args')}"
        return None
    if len(plan.calls) != len(expected_calls):
        return f"{len(plan.calls)} calls, expected {len(expected_calls)}"
    unused = list(plan.calls)
    for want in expected_calls:
        match = next(
            (
                c
                for c in unused
                if c.tool == want["tool"] and _args_match(c.tool, want.get("args", {}), c.args)
            ),
            None,
        )
        if match is None:
            return f"no call {want['tool']}({want.get('args', {})})"
        unused.remove(match)
    return None


async def evaluate(planner: Planner, cases: Sequence[Case]) -> Report:
    report = Report()
    for case in cases:
        plan = await planner.plan(case.text, case.context)
        report.results.append(Result(case, plan, judge(case, plan)))
    return report


def load_planner(name: str) -> Planner:
    target = PLANNERS.get(name, name)
    if ":" not in target:
        raise SystemExit(f"unknown planner {name!r}: use one of {sorted(PLANNERS)} or module:Class")
    module_name, attr = target.split(":", 1)
    factory = getattr(importlib.import_module(module_name), attr)
    planner: Planner = factory()
    return planner


def _describe(plan: Plan) -> str:
    if plan.kind == "answer":
        return f"answer ({plan.intent}, {plan.confidence})"
    calls = ", ".join(f"{c.tool}({json.dumps(c.args, ensure_ascii=False)})" for c in plan.calls)
    extra = f" missing={plan.missing}" if plan.kind == "ask" else ""
    return f"{plan.kind}: {calls}{extra} conf={plan.confidence}"


def render(report: Report, *, show_passes: bool = False) -> str:
    lines = [f"{'group':<24} {'pass':>5} {'total':>6} {'accuracy':>9}"]
    for group, (ok, total) in report.by_group().items():
        lines.append(f"{group:<24} {ok:>5} {total:>6} {ok / total:>8.1%}")
    lines.append(
        f"{'OVERALL':<24} {report.passed:>5} {len(report.results):>6} {report.accuracy:>8.1%}"
    )
    failures = [r for r in report.results if r.failure is not None]
    if failures:
        lines.append("")
        lines.append(f"{len(failures)} failures:")
        for r in failures:
            lines.append(f"  [{r.case.id}] {r.case.text!r}")
            lines.append(f"      {r.failure}; got {_describe(r.plan)}")
    if show_passes:
        lines.append("")
        for r in report.results:
            if r.failure is None:
                lines.append(f"  ok [{r.case.id}] {r.case.text!r} -> {_describe(r.plan)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--planner",
        default="rules",
        help="rules, gemini, openai, hybrid (a real model when configured, else local fakes), "
        "or module:Class",
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--show-passes", action="store_true")
    parser.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 below this (0..1)")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING", json_lines=False)
    if args.planner in ("gemini", "openai", "hybrid"):
        report = _evaluate_llm(args.planner, load_corpus(args.corpus))
    else:
        planner = load_planner(args.planner) if args.planner != "rules" else RulesPlanner()
        report = asyncio.run(evaluate(planner, load_corpus(args.corpus)))
    sys.stdout.write(render(report, show_passes=args.show_passes))
    return 1 if report.accuracy < args.min_accuracy else 0


def _evaluate_llm(kind: str, cases: Sequence[Case]) -> Report:
    from tests.eval.llm_eval import Stopwatch, llm_calls, llm_planner

    watch = Stopwatch()
    calls = 0
    fallbacks = 0

    async def run(planner: Planner) -> Report:
        nonlocal calls, fallbacks
        report = Report()
        for case in cases:
            with watch.time():
                plan = await planner.plan(case.text, case.context)
            calls += llm_calls(plan.notes)
            fallbacks += any(n.startswith("llm_fallback:") for n in plan.notes)
            report.results.append(Result(case, plan, judge(case, plan)))
        closer = getattr(planner, "aclose", None)
        if closer is not None:
            await closer()
        return report

    with llm_planner(kind) as setup:
        report = asyncio.run(run(setup.planner))
    sys.stdout.write(
        f"planner: {kind} against {setup.endpoint}\n"
        f"LLM calls per turn: {calls / max(1, len(cases)):.2f}   fallbacks to rules: {fallbacks}"
        f"   latency p50: {watch.p50_ms():.1f} ms\n\n"
    )
    return report


if __name__ == "__main__":
    raise SystemExit(main())
