"""Every plan the offline planner makes for the evaluation corpus, and what one plan costs.

    python -m bench.plans [--output PATH] [--check PATH] [--rounds 5]

Why: a change meant to make the rules planner cheaper must change no plan. This plans every
case of every split (train, dev, calib and test, in that order) and writes each plan as one JSON
line to `--output`; `--check` compares them with a file written before the change and exits 1
naming the first case whose plan differs. Then it times the planner in this process (best of
`--rounds`): microseconds per plan over the whole corpus, over `make bench`'s read mix, and for
the read turn's text. The times move with whatever else the machine does; the plans do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from app.conversation.understanding.planner import OfflinePlanner
from app.domain.plan import PlanContext
from app.mesh.catalogue import catalogue_aliases
from bench.run import READ_TEXT, read_mix
from tests.eval.run_eval import SPLITS, Case, load_split, offline_planner

Request = tuple[str, PlanContext]


def corpus() -> list[Case]:
    return [case for split in SPLITS for case in load_split(split)]


def plans(planner: OfflinePlanner, cases: Sequence[Case]) -> list[str]:
    """Each case's plan as one JSON line, in the cases' order."""
    return [planner.plan_now(case.text, case.context).model_dump_json() for case in cases]


def first_difference(
    cases: Sequence[Case], mine: Sequence[str], theirs: Sequence[str]
) -> str | None:
    """Where two plan files part (None when they are the same)."""
    if len(mine) != len(theirs):
        return f"{len(mine)} plans here, {len(theirs)} in the file"
    for case, now, before in zip(cases, mine, theirs, strict=True):
        if now != before:
            return f"[{case.id}] {case.text!r}\n  before: {before}\n  now:    {now}"
    return None


def microseconds_per_plan(
    planner: OfflinePlanner, requests: Sequence[Request], rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for text, context in requests:
            planner.plan_now(text, context)
        best = min(best, (time.perf_counter() - started) / len(requests))
    return round(best * 1e6, 1)


def timings(planner: OfflinePlanner, cases: Sequence[Case], rounds: int) -> dict[str, float]:
    context = PlanContext(aliases=dict(catalogue_aliases()))
    mix = [json.loads(step["body"])["message"] for step in read_mix()]
    return {
        "corpus": microseconds_per_plan(planner, [(c.text, c.context) for c in cases], rounds),
        "mix": microseconds_per_plan(planner, [(t, context) for t in mix] * 10, rounds),
        "read": microseconds_per_plan(planner, [(READ_TEXT, context)] * 500, rounds),
    }


def _main(args: argparse.Namespace) -> int:
    planner = offline_planner()
    cases = corpus()
    mine = plans(planner, cases)
    if args.output is not None:
        args.output.write_text("\n".join(mine) + "\n", encoding="utf-8")
    status = 0
    if args.check is not None:
        theirs = args.check.read_text(encoding="utf-8").splitlines()
        difference = first_difference(cases, mine, theirs)
        if difference is not None:
            sys.stderr.write(f"plans differ from {args.check}: {difference}\n")
            status = 1
        else:
            sys.stdout.write(f"all {len(mine)} plans are the same as in {args.check}\n")
    if args.rounds:
        measured = timings(planner, cases, args.rounds)
        sys.stdout.write(json.dumps({"cases": len(cases), "us_per_plan": measured}) + "\n")
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plans", description=__doc__)
    parser.add_argument("--output", type=Path, help="write every plan here, one JSON line each")
    parser.add_argument("--check", type=Path, help="compare with plans written earlier")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (0: no timing)")
    sys.exit(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
