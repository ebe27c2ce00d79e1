"""The base form of a word, for matching cues."""

from __future__ import annotations

import pytest

from app.conversation.understanding.stems import stem


@pytest.mark.parametrize(
    ("word", "base"),
    [
        ("checks", "check"),
        ("deploys", "deploy"),
        ("boxes", "box"),
        ("watches", "watch"),
        ("retries", "retry"),
        ("cancelling", "cancel"),
        ("stopping", "stop"),
        ("notifying", "notify"),
        ("creating", "create"),
        ("scheduling", "schedule"),
        ("killing", "kill"),
        ("telling", "tell"),
        ("pulling", "pull"),
        ("running", "run"),
        ("listing", "list"),
        ("building", "build"),
    ],
)
def test_suffixes_are_undone(word: str, base: str) -> None:
    assert stem(word) == base


@pytest.mark.parametrize(
    "word",
    [
        "status",
        "alerts",
        "tasks",
        "droplets",
        "progress",
        "is",
        "this",
        "ping",
        "morning",
        "everything",
        "cancelled",  # a task state, not a request
        "deployed",
        "pass",
        "run",
        "d14",
        "t-7",
    ],
)
def test_words_that_keep_their_form(word: str) -> None:
    assert stem(word) == word


def test_stemming_is_idempotent_on_bases() -> None:
    for word in ("check", "deploy", "cancel", "stop", "notify", "create", "schedule", "list"):
        assert stem(stem(word)) == stem(word)
