"""The base form of a word, for matching cues: "cancelling" -> "cancel", "checks" -> "check".

Deliberately small: suffixes -ing, -s/-es and -ies, with doubled final consonants undone. Past
participles are left alone ("cancelled" is usually a task state, not a request).
"""

from __future__ import annotations

from functools import lru_cache

_KEEP = frozenset(
    {"status", "alerts", "tasks", "droplets", "jobs", "is", "was", "has", "this", "its", "us",
     "yes", "always", "news", "bus", "plus", "less", "across", "process", "progress", "thus",
     "during", "anything", "everything", "something", "nothing", "morning", "evening", "ping",
     "thing", "things", "string", "bring", "king", "ring", "spring", "sing"}
)  # fmt: skip


_IRREGULAR = {"changing": "change", "arranging": "arrange", "managing": "manage",
              "telling": "tell", "selling": "sell", "pulling": "pull", "killing": "kill",
              "polling": "poll", "calling": "call", "rolling": "roll"}  # fmt: skip


@lru_cache(maxsize=4096)
def stem(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or word in _KEEP or not word.isalpha():
        return word
    if word.endswith("ying") and len(word) > 5:
        return word[:-3]  # notifying -> notify
    if word.endswith("ing") and len(word) > 5:
        base = word[:-3]
        if len(base) >= 3 and base[-1] == base[-2] and base[-1] not in "lsz":
            return base[:-1]  # stopping -> stop
        if base.endswith("ell"):
            return base[:-1]  # cancelling -> cancel
        if (
            base[-1] in "vcz"
            or base.endswith(("at", "ut", "id", "ur", "ul"))
            or (base[-1] == "l" and base[-2] not in "aeioul")
        ):
            return base + "e"  # creating -> create, scheduling -> schedule
        return base
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("sh", "ch", "x", "ss")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word
