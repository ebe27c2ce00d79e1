"""Is a message a bare yes or a bare no? Only the whole message counts.

"cancel task 7" and "cancel it" are requests, not refusals; "yes please" and "ok go ahead" are
yeses. Fillers ("please", "uh", "well") may surround the answer; nothing else may.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import OSA

from app.conversation.understanding.text import by_first_word

AFFIRMATIVE = (
    "yes please", "yes", "y", "yep", "yeah", "yup", "ya", "yea", "yess", "sure", "ok", "okay",
    "k", "kk", "confirm", "confirmed", "i confirm", "go ahead", "go for it", "do it",
    "proceed", "approve", "approved", "affirmative", "absolutely", "correct", "right",
    "execute", "run it", "sounds good", "looks good", "lgtm", "please do", "go", "of course",
    "definitely", "alright", "all right", "yes do it", "send it", "ship it", "that's right",
    "thats right", "perfect", "great", "fine", "do that", "make it so", "agreed", "yes sir",
    "sure thing", "yes go ahead", "go on", "let's do it", "lets do it", "yes confirm",
)  # fmt: skip
NEGATIVE = (
    "no", "n", "nope", "nah", "no thanks", "no thank you", "cancel", "cancel that",
    "cancel this", "stop", "abort", "never mind", "nevermind", "nvm", "don't", "dont",
    "do not", "don't do it", "dont do it", "do not do it", "don't do that", "forget it",
    "forget that", "forget about it", "skip", "skip it", "negative", "not now", "no way",
    "scrap that", "drop it", "no don't", "no dont", "not really", "decline", "declined",
    "reject", "no stop", "hold off", "leave it", "no cancel",
)  # fmt: skip
FILLER = (
    "please", "thanks", "thank you", "now", "then", "just", "oh", "ah", "hmm", "well",
    "uh", "um", "er", "erm", "so", "actually", "yeah", "hey",
)  # fmt: skip

_PHRASES: tuple[tuple[tuple[str, ...], int], ...] = tuple(
    sorted(
        [(tuple(p.split()), 1) for p in AFFIRMATIVE]
        + [(tuple(p.split()), -1) for p in NEGATIVE]
        + [(tuple(f.split()), 0) for f in FILLER],
        key=lambda item: -len(item[0]),
    )
)
_NOT_WORD = re.compile(r"[^\w\s']")


def _words(text: str) -> list[str]:
    text = text.replace("\u2019", "'").replace("👍", " yes ").replace("👎", " no ").lower()
    return _NOT_WORD.sub(" ", text).split()


# Tried in _PHRASES' order (longest first), but only those that can start at a given word.
_BY_FIRST_WORD = by_first_word(_PHRASES, lambda item: item[0])
_ONE_WORD = frozenset(p[0] for p, _ in _PHRASES if len(p) == 1)

_LONG_ONE_WORD = tuple(
    (p, meaning) for p, meaning in _PHRASES if len(p) == 1 and len(p[0]) >= 5 and meaning
)


def _typo(word: str) -> int:
    """ "confrim" is confirm: one long word within one edit of a yes or a no."""
    if len(word) < 5:
        return 0
    for (phrase,), meaning in _LONG_ONE_WORD:
        if OSA.distance(word, phrase) <= 1:
            return meaning
    return 0


def answer_of(text: str) -> int:
    """1 for a bare yes, -1 for a bare no, 0 for anything else (including a mixed answer)."""
    words = _words(text)
    if not words or len(words) > 8:
        return 0
    if len(words) == 1 and words[0] not in _ONE_WORD:
        return _typo(words[0])
    seen: set[int] = set()
    i = 0
    while i < len(words):
        for phrase, meaning in _BY_FIRST_WORD.get(words[i], ()):
            if tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                seen.add(meaning)
                break
        else:
            return 0
    seen.discard(0)
    return seen.pop() if len(seen) == 1 else 0
