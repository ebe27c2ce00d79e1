"""Numbers said as words, the way speech-to-text writes them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.conversation.understanding.numbers import (
    NUMBER_WORDS,
    ORDINALS,
    TENS,
    UNITS,
    Number,
    read_number,
)


def read(text: str, start: int = 0) -> Number | None:
    return read_number(text.split(), start)


@pytest.mark.parametrize(
    ("text", "value", "length"),
    [
        ("zero", 0, 1),
        ("seven", 7, 1),
        ("fourteen", 14, 1),
        ("seventy", 70, 1),
        ("forty two", 42, 2),
        ("fourty two", 42, 2),
        ("twenty-three", 23, 1),
        ("ninety nine", 99, 2),
        ("one hundred", 100, 2),
        ("a hundred", 100, 2),
        ("five hundred", 500, 2),
        ("one hundred and five", 105, 4),
        ("one hundred five", 105, 3),
        ("two hundred and forty two", 242, 5),
        ("two thousand and twelve", 2012, 4),
        ("twelve thousand three hundred and forty five", 12345, 7),
    ],
)
def test_cardinals(text: str, value: int, length: int) -> None:
    assert read(text) == Number(value, length)


@pytest.mark.parametrize(
    ("text", "value", "length"),
    [
        ("one oh five", 105, 3),
        ("four oh four", 404, 3),
        ("nine oh", 90, 2),
        ("one oh", 10, 2),
    ],
)
def test_digits_said_one_by_one(text: str, value: int, length: int) -> None:
    assert read(text) == Number(value, length)


def test_digits_without_an_oh_are_a_list_not_one_number() -> None:
    # "four seven nine" is more likely tasks 4, 7 and 9 than task 479.
    assert read("four seven nine") == Number(4, 1)


@pytest.mark.parametrize(
    ("text", "value", "length"),
    [
        ("first", 1, 1),
        ("third", 3, 1),
        ("twelfth", 12, 1),
        ("twentieth", 20, 1),
        ("twenty-first", 21, 1),
        ("twenty third", 23, 2),
        ("fifty fifth", 55, 2),
    ],
)
def test_ordinals(text: str, value: int, length: int) -> None:
    assert read(text) == Number(value, length, ordinal=True)


def test_an_ordinal_ends_the_number() -> None:
    assert read("first five") == Number(1, 1, ordinal=True)
    assert read("the first five", 2) == Number(5, 1)


@pytest.mark.parametrize(
    ("text", "value", "length"),
    [
        ("forty two tasks", 42, 2),
        ("seven and nine", 7, 1),
        ("twenty twenty", 20, 1),
        ("fourteen seven", 14, 1),
        ("five four", 5, 1),
    ],
)
def test_reading_stops_where_the_number_does(text: str, value: int, length: int) -> None:
    assert read(text) == Number(value, length)


@pytest.mark.parametrize("text", ["a", "oh", "oh five", "hundred", "and five", "droplet", ""])
def test_words_that_are_not_a_number_on_their_own(text: str) -> None:
    assert read(text) is None


def test_reading_from_the_middle_of_a_sentence() -> None:
    words = ["cancel", "task", "forty", "two", "please"]
    assert read_number(words, 2) == Number(42, 2)
    assert read_number(words, 0) is None
    assert read_number(words, len(words)) is None


def test_the_vocabulary_covers_every_number_word() -> None:
    assert set(UNITS) | set(TENS) | set(ORDINALS) | {"hundred", "thousand", "oh", "a"} == set(
        NUMBER_WORDS
    )


SPOKEN_UNITS = list(UNITS)
SPOKEN_TENS = [w for w in TENS if w != "fourty"]


@given(st.sampled_from(SPOKEN_TENS), st.sampled_from(SPOKEN_UNITS[1:10]))
def test_every_two_word_number_below_a_hundred(ten: str, unit: str) -> None:
    assert read(f"{ten} {unit}") == Number(TENS[ten] + UNITS[unit], 2)
    assert read(f"{ten}-{unit}") == Number(TENS[ten] + UNITS[unit], 1)
