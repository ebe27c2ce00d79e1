"""How sure the offline planner is, from features of the plan, not hand-typed constants.

A logistic model over a few features (how strongly the tool was named, the margin over the next
tool, the share of words the planner knows, typos corrected, requests inherited or filled from
the conversation). Its weights are fitted on the dev split by `python -m tests.eval.calibrate`
(`make calibrate`), which writes `calibration.json` beside this module, so a confidence of 0.9
is right about 90% of the time on data the planner was not tuned on.
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_FILE = Path(__file__).with_name("calibration.json")


# Not frozen: a frozen dataclass sets each of its fields through object.__setattr__, which
# made building one cost more than the rest of the confidence. Nothing changes one once made.
@dataclass(slots=True)
class Features:
    top: float = 0.0
    """The weakest request's best cue score."""
    margin: float = 0.0
    """Its lead over the next tool."""
    named: bool = False
    """Every request named its tool with a verb or a phrase."""
    known_share: float = 1.0
    """Share of the words that the planner knows."""
    typos: int = 0
    fillers: int = 0
    requests: int = 1
    inherited: bool = False
    used_context: bool = False
    asked: bool = False
    calls: int = 0
    refused: bool = False
    small_talk: bool = False
    empty: bool = False
    pending: bool = False
    filled: bool = False

    def vector(self) -> list[float]:
        return [
            1.0,
            min(self.top, 12.0) / 12.0,
            min(self.margin, 8.0) / 8.0,
            float(self.named),
            self.known_share,
            min(self.typos, 3) / 3.0,
            min(self.fillers, 4) / 4.0,
            min(self.requests - 1, 3) / 3.0,
            float(self.inherited),
            float(self.used_context),
            float(self.asked),
            float(self.refused or self.small_talk),
            float(self.empty),
            float(self.pending),
            float(self.pending and self.filled),
        ]


NAMES = (
    "bias", "top", "margin", "named", "known_share", "typos", "fillers", "requests",
    "inherited", "used_context", "asked", "refused_or_small_talk", "empty", "pending",
    "pending_filled",
)  # fmt: skip

# Until fitted: a plain prior that ranks strong, named, fully understood plans higher.
PRIOR = (-2.0, 3.0, 1.5, 1.0, 2.5, -0.5, -0.2, -0.3, -0.4, -0.2, 0.0, 3.0, -2.0, 0.0, 1.0)
DEFAULT_THRESHOLD = 0.6
"""The hybrid planner's threshold when no calibration was fitted."""


@lru_cache(maxsize=1)
def _fitted() -> dict[str, object]:
    try:
        data = json.loads(WEIGHTS_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@lru_cache(maxsize=1)  # from the fitted file, read once (`_fitted`): the same every plan
def weights() -> tuple[float, ...]:
    fitted = _fitted().get("weights")
    if not isinstance(fitted, dict):
        return PRIOR
    try:
        return tuple(float(fitted[name]) for name in NAMES)
    except (KeyError, TypeError, ValueError):
        return PRIOR


def hybrid_threshold() -> float:
    """Below this confidence the hybrid planner asks the model: chosen by `make calibrate` as
    the cut that separates the offline planner's wrong plans from its right ones best."""
    value = _fitted().get("hybrid_threshold")
    return (
        float(value)
        if isinstance(value, int | float) and 0.0 <= value <= 1.0
        else (DEFAULT_THRESHOLD)
    )


def vector_of(features: Features) -> dict[str, float]:
    """The features by name, as the calibration reads them."""
    return dict(zip(NAMES, features.vector(), strict=True))


def calibrated(features: Features) -> float:
    return _confidence(features.vector())


def assessed(features: Features) -> tuple[float, dict[str, float]]:
    """`calibrated` and `vector_of` together, from one vector (every plan needs both)."""
    vector = features.vector()
    return _confidence(vector), dict(zip(NAMES, vector, strict=True))


def _confidence(vector: list[float]) -> float:
    z = sum(map(operator.mul, weights(), vector))  # one weight per feature (tested)
    return round(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), 3)


def describe(features: Features) -> dict[str, object]:
    return asdict(features)
