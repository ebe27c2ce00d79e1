"""A bare yes or a bare no, and nothing else, answers a waiting proposal."""

from __future__ import annotations

import pytest

from app.conversation.confirmation import answer_of


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "Y",
        "yep",
        "confirm",
        "go ahead",
        "do it",
        "sure",
        "ok",
        "Yes, go ahead!",
        "yes please",
        "👍",
        "confrim",
    ],
)
def test_affirmative(text: str) -> None:
    assert answer_of(text) == 1


@pytest.mark.parametrize(
    "text",
    ["no", "nope", "cancel", "stop", "abort", "never mind", "don't", "No thanks.", "forget it"],
)
def test_negative(text: str) -> None:
    assert answer_of(text) == -1


@pytest.mark.parametrize(
    "text",
    [
        "cancel task 7",
        "cancel it",
        "no, show me the alerts",
        "yes and list droplets",
        "don't cancel task 7",
        "stop task 3",
        "",
        "ok show tasks",
        "yes no",
    ],
)
def test_requests_are_neither_yes_nor_no(text: str) -> None:
    assert answer_of(text) == 0
