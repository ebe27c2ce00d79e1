"""Score a planner on the labelled splits: accuracy per split and category, misses, calibration.

    python -m tests.eval.run_eval [--planner rules|gemini|openai|hybrid] [--split test]
                                  [--misses 50] [--show-passes] [--min-accuracy 0.95]

A case passes when the plan has the expected kind, exactly the expected tool calls (as a
multiset) and every labelled argument; generated arguments (a task's title or description)
may be present without a label. The splits are described in `splits/README.md`: quote the test
split, never the train split.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.conversation.understanding.planner import OfflinePlanner
from app.domain.plan import Plan, PlanContext, Planner, ToolCall
from app.mesh.catalogue import catalogue_aliases
from app.tools.registry import default_tools
from app.utils.logging import configure_logging

SPLITS_DIR = Path(__file__).parent / "splits"
SPLITS = ("train", "dev", "calib", "test")
CORPUS = SPLITS_DIR / "train.jsonl"

DEFAULT_ALIASES: Mapping[str, int] = catalogue_aliases()
"""What the service supplies from the static catalogue when a case gives no aliases."""

FREE_KEYS: Mapping[str, frozenset[str]] = {"create_task": frozenset({"title", "description"})}
"""Arguments a planner may generate without the case labelling them."""

SPELLED = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|hundred|first|second|third|fourth|fifth)\b",
    re.I,
)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    context: PlanContext
    expect: Mapping[str, Any]
    tags: tuple[str, ...] = ()
    category: str = "-"

    @property
    def spelled(self) -> bool:
        return bool(SPELLED.search(self.text))


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

    def subset(self, keep: Any) -> Report:
        return Report([r for r in self.results if keep(r.case)])

    def by_category(self) -> dict[str, tuple[int, int]]:
        totals: Counter[str] = Counter()
        passes: Counter[str] = Counter()
        for r in self.results:
            totals[r.case.category] += 1
            passes[r.case.category] += r.failure is None
        return {c: (passes[c], totals[c]) for c in sorted(totals)}


def load_corpus(path: Path = CORPUS) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        ctx = dict(raw.get("context") or {})
        ctx.setdefault("aliases", dict(DEFAULT_ALIASES))
        tags = tuple(raw.get("tags", ()))
        cases.append(
            Case(
                raw["id"],
                raw["text"],
                PlanContext.model_validate(ctx),
                raw["expect"],
                tags,
                raw.get("category") or (tags[0] if tags else "plain"),
            )
        )
    return cases


def load_split(name: str) -> list[Case]:
    return load_corpus(SPLITS_DIR / f"{name}.jsonl")


def _args_match(tool: str, expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    if any(actual.get(k, object()) != v for k, v in expected.items()):
        return False
    extra = set(actual) - set(expected)
    return extra <= FREE_KEYS.get(tool, frozenset())


def _slot_names(names: Sequence[str]) -> set[str]:
    """Missing arguments by their own name ("payload.target_droplet_id" is target_droplet_id);
    the order a person is asked in is the tool's business, not the label's."""
    return {name.rsplit(".", 1)[-1] for name in names}


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
        if _slot_names(plan.missing) != _slot_names(expect.get("missing", [])):
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


def offline_planner() -> OfflinePlanner:
    return OfflinePlanner(default_tools())


# ---- calibration -----------------------------------------------------------------------------


def reliability(report: Report, bins: int = 10) -> list[tuple[float, float, int, float]]:
    """(bin low, bin high, cases, accuracy) for the confidence bins that have cases."""
    rows = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [
            r
            for r in report.results
            if low <= r.plan.confidence < high or (b == bins - 1 and r.plan.confidence == 1.0)
        ]
        if inside:
            acc = sum(r.failure is None for r in inside) / len(inside)
            rows.append((low, high, len(inside), acc))
    return rows


def expected_calibration_error(report: Report, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over the bins, weighted by how many cases fall in each."""
    total = len(report.results)
    if not total:
        return 0.0
    error = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [
            r
            for r in report.results
            if low <= r.plan.confidence < high or (b == bins - 1 and r.plan.confidence == 1.0)
        ]
        if inside:
            acc = sum(r.failure is None for r in inside) / len(inside)
            conf = sum(r.plan.confidence for r in inside) / len(inside)
            error += len(inside) / total * abs(acc - conf)
    return error


# ---- report ----------------------------------------------------------------------------------


def _describe(plan: Plan) -> str:
    if plan.kind == "answer":
        return f"answer ({plan.intent}, {plan.confidence})"
    calls = ", ".join(f"{c.tool}({json.dumps(c.args, ensure_ascii=False)})" for c in plan.calls)
    extra = f" missing={plan.missing}" if plan.kind == "ask" else ""
    return f"{plan.kind}: {calls}{extra} conf={plan.confidence}"


def render(name: str, report: Report, *, misses: int = 50, show_passes: bool = False) -> str:
    lines = [f"== {name}: {report.passed}/{len(report.results)} = {report.accuracy:.1%}"]
    for label, keep in (
        ("spelled-out numbers", lambda c: c.spelled),
        ("hostile (no tool call)", lambda c: c.category == "hostile"),
    ):
        part = report.subset(keep)
        if part.results:
            lines.append(
                f"   {label:<26} {part.passed:>4}/{len(part.results):<4} {part.accuracy:>7.1%}"
            )
    lines.append(f"   {'category':<26} {'pass':>4}/{'all':<4} {'accuracy':>8}")
    for category, (ok, total) in report.by_category().items():
        lines.append(f"   {category:<26} {ok:>4}/{total:<4} {ok / total:>7.1%}")
    ece = expected_calibration_error(report)
    lines.append(f"   calibration: ECE {ece:.3f}; confidence bin -> accuracy (cases)")
    for low, high, n, acc in reliability(report):
        lines.append(f"     [{low:.1f}, {high:.1f})  {acc:>6.1%}  ({n})")
    failures = [r for r in report.results if r.failure is not None]
    if failures and misses:
        lines.append(f"   misses ({len(failures)}):")
        for r in failures[:misses]:
            lines.append(f"     [{r.case.id}] {r.case.text!r}")
            lines.append(f"         {r.failure}; got {_describe(r.plan)}")
    if show_passes:
        for r in report.results:
            if r.failure is None:
                lines.append(f"     ok [{r.case.id}] {r.case.text!r} -> {_describe(r.plan)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--planner",
        default="rules",
        help="rules, gemini, openai, hybrid (a real model when configured, else local fakes)",
    )
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    parser.add_argument("--misses", type=int, default=50, help="misses listed per split")
    parser.add_argument("--show-passes", action="store_true")
    parser.add_argument(
        "--min-accuracy", type=float, default=0.0, help="exit 1 if the test split is below"
    )
    args = parser.parse_args(argv)
    configure_logging(level="WARNING", json_lines=False)
    names = SPLITS if args.split == "all" else (args.split,)
    reports: dict[str, Report] = {}
    if args.planner in ("gemini", "openai", "hybrid"):
        from tests.eval.llm_eval import evaluate_llm

        reports = evaluate_llm(args.planner, {n: load_split(n) for n in names})
    else:
        planner = offline_planner()
        reports = {n: asyncio.run(evaluate(planner, load_split(n))) for n in names}
    for name, report in reports.items():
        sys.stdout.write(render(name, report, misses=args.misses, show_passes=args.show_passes))
    quoted = reports.get("test") or next(iter(reports.values()))
    return 1 if quoted.accuracy < args.min_accuracy else 0


if __name__ == "__main__":
    raise SystemExit(main())
