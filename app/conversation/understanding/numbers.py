"""Numbers said as words: "fourteen", "forty two", "twenty-three", "one hundred and five",
"one oh five", "the first five", "third". Speech-to-text writes them this way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UNITS: Mapping[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
TENS: Mapping[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
ORDINALS: Mapping[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50,
}  # fmt: skip
SCALES: Mapping[str, int] = {"hundred": 100, "thousand": 1000}
DIGIT_WORDS: Mapping[str, int] = {**{k: v for k, v in UNITS.items() if v < 10}, "oh": 0}
NUMBER_WORDS = frozenset({*UNITS, *TENS, *ORDINALS, *SCALES, "oh", "a"})


@dataclass(frozen=True, slots=True)
class Number:
    value: int
    length: int
    """How many words it took."""
    ordinal: bool = False


def _atom(word: str) -> tuple[int, str] | None:
    """(value, kind) of one word: unit, ten, ordinal, scale; hyphenated "twenty-three"."""
    if word in UNITS:
        return UNITS[word], "unit"
    if word in TENS:
        return TENS[word], "ten"
    if word in ORDINALS:
        return ORDINALS[word], "ordinal"
    if word in SCALES:
        return SCALES[word], "scale"
    if "-" in word:
        first, _, second = word.partition("-")
        if first in TENS and (second in UNITS and UNITS[second] < 10):
            return TENS[first] + UNITS[second], "ten_unit"
        if first in TENS and second in ORDINALS and ORDINALS[second] < 10:
            return TENS[first] + ORDINALS[second], "ordinal"
    return None


def read_number(words: Sequence[str], start: int) -> Number | None:
    """The number said from `words[start]`, if any: the longest reading that makes sense.

    "one oh five" is read digit by digit (105); "forty two" is 42; "one hundred and five" 105;
    "a hundred" 100. A lone "a" or "oh" is not a number.
    """
    digits = _digit_run(words, start)
    if digits is not None:
        return digits
    total, current, used, last = 0, 0, 0, ""
    i = start
    while i < len(words):
        word = words[i]
        if word == "and" and used and last == "scale" and i + 1 < len(words):
            nxt = _atom(words[i + 1])
            if nxt is not None and nxt[1] in ("unit", "ten", "ten_unit"):
                i += 1
                continue
            break
        if word == "a" and not used and i + 1 < len(words) and words[i + 1] in SCALES:
            current, used, last, i = 1, 1, "unit", i + 1
            continue
        atom = _atom(word)
        if atom is None:
            break
        value, kind = atom
        if kind == "scale":
            if not used:
                break
            current = max(current, 1) * value
            if value >= 1000:
                total, current = total + current, 0
        elif kind == "ordinal":
            if last in ("unit", "ten_unit", "ordinal") or (last == "ten" and value >= 10):
                break
            current += value
            used += 1
            i += 1
            return Number(total + current, i - start, ordinal=True)
        elif kind == "ten":
            if last in ("unit", "ten", "ten_unit"):
                break
            current += value
        elif kind in ("unit", "ten_unit"):
            if last in ("unit", "ten_unit") or (
                last == "ten" and (kind == "ten_unit" or value >= 10)
            ):
                break
            current += value
        used += 1
        last = kind
        i += 1
    if not used:
        return None
    return Number(total + current, i - start)


def _digit_run(words: Sequence[str], start: int) -> Number | None:
    """ "one oh five", "one oh": single digits said one by one, recognised by the "oh" (without
    it, "four seven nine" is more likely a list than 479)."""
    run: list[int] = []
    i = start
    while i < len(words) and words[i] in DIGIT_WORDS:
        run.append(DIGIT_WORDS[words[i]])
        i += 1
    has_oh = any(words[j] == "oh" for j in range(start, i))
    if len(run) >= 2 and has_oh and words[start] != "oh":
        if run[0] == 0:
            return None
        return Number(int("".join(str(d) for d in run)), len(run))
    return None
