"""The calibration fit: weights that separate right from wrong, a threshold between them."""

from __future__ import annotations

import random

from app.conversation.understanding.confidence import NAMES
from tests.eval.calibrate import Sample, confidences, ece, fit, threshold


def _sample(strong: float, right: bool) -> Sample:
    x = [0.0] * len(NAMES)
    x[0] = 1.0  # bias
    x[NAMES.index("top")] = strong
    return Sample(tuple(x), right)


def synthetic(n: int = 400, seed: int = 7) -> list[Sample]:
    """Plans are right with probability equal to their cue strength."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        strong = rng.random()
        out.append(_sample(strong, rng.random() < strong))
    return out


def test_the_fit_ranks_strong_plans_higher_and_is_calibrated() -> None:
    data = synthetic()
    w = fit(data)
    assert w[NAMES.index("top")] > 1.0
    conf = confidences(data, w)
    assert ece(data, conf) < 0.08
    weak, strong = conf[0], conf[0]
    for s, c in zip(data, conf, strict=True):
        if s.x[NAMES.index("top")] < 0.1:
            weak = c
        if s.x[NAMES.index("top")] > 0.9:
            strong = c
    assert weak < 0.35 < 0.65 < strong


def test_the_threshold_sends_more_wrong_plans_than_right_ones_to_the_model() -> None:
    data = synthetic()
    conf = confidences(data, fit(data))
    cut, wrong_below, right_below = threshold(data, conf)
    assert 0.05 <= cut <= 0.95
    assert wrong_below > right_below


def test_a_perfectly_calibrated_set_has_no_error() -> None:
    data = [_sample(1.0, True), _sample(0.0, False)]
    assert ece(data, [1.0, 0.0]) == 0.0


def test_a_feature_the_split_never_shows_keeps_its_prior_weight() -> None:
    from app.conversation.understanding.confidence import PRIOR

    w = fit(synthetic())
    empty = NAMES.index("empty")
    assert w[empty] == PRIOR[empty]
