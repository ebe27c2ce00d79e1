"""A bare yes or a bare no, and nothing else, answers a waiting proposal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.conversation import confirmation
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


def _answer_reference(text: str) -> int:
    """answer_of as first written: every phrase tried at every word, longest first."""
    c = confirmation
    words = c._words(text)
    if not words or len(words) > 8:
        return 0
    if len(words) == 1 and not any(words[0] == p[0] for p, _ in c._PHRASES if len(p) == 1):
        return c._typo(words[0])
    seen: set[int] = set()
    i = 0
    while i < len(words):
        for phrase, meaning in c._PHRASES:
            if tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                seen.add(meaning)
                break
        else:
            return 0
    seen.discard(0)
    return seen.pop() if len(seen) == 1 else 0


_ANSWER_WORDS = sorted({w for p, _ in confirmation._PHRASES for w in p} | {"droplet", "14", "x"})


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ANSWER_WORDS), min_size=0, max_size=9))
def test_answer_of_equals_the_reference(words: list[str]) -> None:
    text = " ".join(words)
    assert answer_of(text) == _answer_reference(text)
