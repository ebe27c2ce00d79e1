"""How sure the offline planner is: a logistic model over plan features, bounded and monotonic
in the features whose meaning is obvious."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.conversation.understanding.confidence import (
    NAMES,
    PRIOR,
    WEIGHTS_FILE,
    Features,
    assessed,
    calibrated,
    describe,
    vector_of,
    weights,
)

TYPICAL = Features(top=6.0, margin=3.0, named=True, known_share=0.8, fillers=1)


def test_one_weight_per_feature() -> None:
    assert len(NAMES) == len(PRIOR) == len(Features().vector()) == len(weights())
    assert Features().vector()[0] == 1.0  # the bias


def test_weights_come_from_the_calibration_file_or_the_prior() -> None:
    if WEIGHTS_FILE.exists():
        fitted = json.loads(WEIGHTS_FILE.read_text())["weights"]
        assert weights() == tuple(float(fitted[name]) for name in NAMES)
    else:
        assert weights() == PRIOR


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [
        ("top", 2.0, 9.0),
        ("margin", 0.0, 5.0),
        ("named", False, True),
        ("known_share", 0.3, 1.0),
    ],
)
def test_more_evidence_is_more_confident(field: str, low: Any, high: Any) -> None:
    assert calibrated(replace(TYPICAL, **{field: high})) > calibrated(
        replace(TYPICAL, **{field: low})
    )


@given(
    top=st.floats(0.0, 20.0),
    margin=st.floats(-5.0, 10.0),
    named=st.booleans(),
    typos=st.integers(0, 5),
    pending=st.booleans(),
)
def test_assessed_is_calibrated_and_vector_of_in_one(
    top: float, margin: float, named: bool, typos: int, pending: bool
) -> None:
    features = Features(top=top, margin=margin, named=named, typos=typos, pending=pending)
    assert assessed(features) == (calibrated(features), vector_of(features))


def test_an_empty_message_is_less_confident() -> None:
    assert calibrated(replace(TYPICAL, empty=True)) < calibrated(TYPICAL)


def test_a_refusal_or_small_talk_is_confident() -> None:
    plain = Features()
    assert calibrated(Features(refused=True)) > calibrated(plain)
    assert calibrated(Features(small_talk=True)) == calibrated(Features(refused=True))


def test_features_saturate() -> None:
    assert calibrated(replace(TYPICAL, top=12.0)) == calibrated(replace(TYPICAL, top=500.0))
    assert calibrated(replace(TYPICAL, margin=8.0)) == calibrated(replace(TYPICAL, margin=80.0))
    assert calibrated(replace(TYPICAL, typos=3)) == calibrated(replace(TYPICAL, typos=30))


def test_a_strong_named_plan_clears_the_hybrid_threshold() -> None:
    assert calibrated(Features(top=8.0, margin=5.0, named=True, known_share=1.0)) >= 0.6


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.booleans(),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=1000),
    st.booleans(),
    st.booleans(),
)
def test_confidence_is_always_between_zero_and_one(
    top: float,
    margin: float,
    named: bool,
    known: float,
    typos: int,
    fillers: int,
    requests: int,
    empty: bool,
    refused: bool,
) -> None:
    features = Features(
        top=top,
        margin=margin,
        named=named,
        known_share=known,
        typos=typos,
        fillers=fillers,
        requests=requests,
        empty=empty,
        refused=refused,
    )
    value = calibrated(features)
    assert 0.0 <= value <= 1.0
    assert round(value, 3) == value


def test_describe_lists_every_feature() -> None:
    described = describe(TYPICAL)
    assert described["top"] == 6.0
    assert described["named"] is True
    assert set(described) == set(Features.__dataclass_fields__)
