"""Fit the offline planner's confidence on a split it was not tuned on, and choose the hybrid
planner's threshold from it.

    python -m tests.eval.calibrate [--split calib]      (make calibrate)

Runs the offline planner over the split, takes each plan's features and whether it was right,
fits a logistic regression (L2-regularised, Newton's method), and writes the weights, the
threshold and the before/after calibration error to
`app/conversation/understanding/calibration.json`. The threshold is the confidence below which
a configured model is consulted: the cut that best separates wrong plans from right ones
(the largest share of wrong plans sent to the model minus twice the share of right ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.conversation.understanding.confidence import NAMES, PRIOR, WEIGHTS_FILE
from tests.eval.run_eval import Report, evaluate, load_split, offline_planner

L2 = 1.0
"""Regularisation towards the prior: a feature rare in the split keeps about its prior weight,
and one the split never shows (an empty message) keeps it exactly."""


CONSULT_COST = 2.0
"""A right plan sent to the model anyway costs a round trip (0.3 to 1 s, and the model's
price) for nothing; it weighs twice a wrong plan caught, so the hybrid planner stays mostly
offline on what the rules understand."""


@dataclass(frozen=True)
class Sample:
    x: tuple[float, ...]
    right: bool


def samples(report: Report) -> list[Sample]:
    out = []
    for r in report.results:
        features = r.plan.features
        if not features:
            continue
        out.append(Sample(tuple(features[name] for name in NAMES), r.failure is None))
    return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting: a x = b (a is small and regularised)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[col][col]:
                f = m[r][col] / m[col][col]
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    return [m[i][n] / m[i][i] if m[i][i] else 0.0 for i in range(n)]


def fit(
    data: Sequence[Sample],
    *,
    prior: Sequence[float] = PRIOR,
    l2: float = L2,
    rounds: int = 25,
) -> list[float]:
    """Logistic regression by Newton's method, a maximum a posteriori fit with a Gaussian
    centred on the prior; the bias (feature 0) is not regularised."""
    k = len(NAMES)
    w = list(prior)
    for _ in range(rounds):
        grad = [(l2 * (w[j] - prior[j]) if j else 0.0) for j in range(k)]
        hess = [[(l2 if i == j and i else 0.0) for j in range(k)] for i in range(k)]
        for s in data:
            p = _sigmoid(sum(wi * xi for wi, xi in zip(w, s.x, strict=True)))
            err = p - (1.0 if s.right else 0.0)
            v = p * (1.0 - p)
            for i in range(k):
                grad[i] += err * s.x[i]
                if s.x[i]:
                    row = hess[i]
                    for j in range(k):
                        row[j] += v * s.x[i] * s.x[j]
        step = _solve(hess, grad)
        w = [wi - si for wi, si in zip(w, step, strict=True)]
        if max(abs(si) for si in step) < 1e-6:
            break
    return w


def confidences(data: Sequence[Sample], w: Sequence[float]) -> list[float]:
    return [_sigmoid(sum(wi * xi for wi, xi in zip(w, s.x, strict=True))) for s in data]


def ece(data: Sequence[Sample], conf: Sequence[float], bins: int = 10) -> float:
    total = len(data)
    error = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [i for i, c in enumerate(conf) if low <= c < high or (b == bins - 1 and c == 1.0)]
        if inside:
            acc = sum(data[i].right for i in inside) / len(inside)
            mean = sum(conf[i] for i in inside) / len(inside)
            error += len(inside) / total * abs(acc - mean)
    return error


def threshold(data: Sequence[Sample], conf: Sequence[float]) -> tuple[float, float, float]:
    """(cut, share of wrong plans below it, share of right plans below it): the cut with the
    largest share of wrong plans caught minus CONSULT_COST times the share of right ones sent."""
    wrong = sum(not s.right for s in data) or 1
    right = sum(s.right for s in data) or 1
    best = (0.5, 0.0, 0.0)
    best_gap = -1.0
    for step in range(5, 96):
        cut = step / 100
        w = sum(1 for s, c in zip(data, conf, strict=True) if c < cut and not s.right) / wrong
        r = sum(1 for s, c in zip(data, conf, strict=True) if c < cut and s.right) / right
        gain = w - CONSULT_COST * r
        if gain > best_gap:
            best, best_gap = (cut, w, r), gain
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="calib")
    parser.add_argument("--dry-run", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    report = asyncio.run(evaluate(offline_planner(), load_split(args.split)))
    data = samples(report)
    before = [r.plan.confidence for r in report.results if r.plan.features]
    w = fit(data)
    after = confidences(data, w)
    cut, wrong_share, right_share = threshold(data, after)
    result = {
        "fitted_on": args.split,
        "cases": len(data),
        "accuracy": round(sum(s.right for s in data) / len(data), 4) if data else 0.0,
        "fitted_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "ece_before": round(ece(data, before), 4),
        "ece_after": round(ece(data, after), 4),
        "hybrid_threshold": cut,
        "below_threshold": {"wrong": round(wrong_share, 3), "right": round(right_share, 3)},
        "weights": {name: round(v, 4) for name, v in zip(NAMES, w, strict=True)},
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if not args.dry_run:
        WEIGHTS_FILE.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
