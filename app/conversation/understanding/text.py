"""From what was typed or heard to tokens the planner can read.

Each token keeps where it came from in the original text (message bodies and titles are cut
from the original, with its case). On the way: contractions expanded, number words read as
numbers, voice fillers and politeness dropped, repeated words collapsed, and typos corrected
towards the words the planner knows (rapidfuzz; only towards known words, never away).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TypeVar

from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

from app.conversation.understanding.numbers import NUMBER_WORDS, read_number
from app.conversation.understanding.stems import stem

T = TypeVar("T")


@dataclass(slots=True)
class Token:
    text: str
    """Lower-case word, a number's digits, punctuation, or a placeholder (\x00url0)."""
    start: int
    end: int
    num: int | None = None
    ordinal: bool = False
    fixed: bool = False
    """Corrected from a typo."""
    spelled: bool = False
    """A number said as words."""

    @property
    def is_num(self) -> bool:
        return self.num is not None


@dataclass(slots=True)
class Text:
    original: str
    tokens: list[Token]
    urls: list[str] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)
    fillers: int = 0
    typos: int = 0
    spoken: list[str] = field(default_factory=list)
    """The words before fillers were dropped ("what can you do" keeps its "can you")."""

    @property
    def words(self) -> list[str]:
        return [t.text for t in self.tokens]

    def joined(self) -> str:
        return " ".join(self.words)

    def unmarked(self, marked: str) -> str:
        """A piece of `original` with its URLs and quotes put back (for planning it again)."""

        def restore(match: re.Match[str]) -> str:
            if match.group(1):
                index = int(match.group(2))
                return self.urls[index] if index < len(self.urls) else ""
            index = int(match.group(4))
            return f'"{self.quotes[index]}"' if index < len(self.quotes) else ""

        return PLACEHOLDER.sub(restore, marked)

    def cut(self, first: int, last: int) -> str:
        """The original text from token `first` to token `last` (inclusive)."""
        if first > last or first >= len(self.tokens):
            return ""
        start, end = self.tokens[first].start, self.tokens[min(last, len(self.tokens) - 1)].end
        return self.original[start:end]


PLACEHOLDER = re.compile("\x00(url)(\\d+)| ?\x00(quote)(\\d+) ?")
URL = re.compile(r"https?://[^\s<>\"'`]+", re.I)
QUOTED = re.compile(
    r"\"([^\"]{1,500})\"|“([^”]{1,500})”|(?:(?<=\s)|^)'([^']{1,500})'(?=[\s.,;:!?]|$)"
)
WORD = re.compile(
    r"-+>|=>|\x00(?:url|quote)\d+|\d{1,2}:\d{2}(?::\d{2})?(?:am|pm)?|[a-z0-9]+(?:[-'][a-z0-9]+)*"
    r"|#|[,;:?!.=]|\+|&",
)
# "d14", "task7", "p2", "#14"/"14th": each form starts differently (d/s, t/j, p, #/digit), so at
# most one matches, and its group tells which (SHORT_NOUNS).
SHORT_FORM = re.compile(
    r"^(?:(?:d|drop|droplet|service)-?(\d+)|(?:t|task|job)-?(\d+)|(?:p|prio|priority)-?(\d{1,2})"
    r"|#?(\d+)(?:st|nd|rd|th)?)$"
)
SHORT_NOUNS = (None, "droplet", "task", "priority", None)

CONTRACTIONS: dict[str, tuple[str, ...]] = {
    "what's": ("what", "is"), "whats": ("what", "is"), "how's": ("how", "is"),
    "hows": ("how", "is"), "who's": ("who", "is"), "where's": ("where", "is"),
    "that's": ("that", "is"), "it's": ("it", "is"), "there's": ("there", "is"),
    "i'm": ("i", "am"), "im": ("i", "am"), "i'd": ("i", "would"), "i've": ("i", "have"),
    "don't": ("do", "not"), "dont": ("do", "not"), "doesn't": ("does", "not"),
    "can't": ("can", "not"), "cant": ("can", "not"), "won't": ("will", "not"),
    "isn't": ("is", "not"), "aren't": ("are", "not"), "didn't": ("did", "not"),
    "let's": ("let", "us"), "lets": ("let", "us"), "we're": ("we", "are"),
    "you're": ("you", "are"), "they're": ("they", "are"), "wasn't": ("was", "not"),
    "hasn't": ("has", "not"), "haven't": ("have", "not"), "wanna": ("want", "to"),
    "gonna": ("going", "to"), "gotta": ("got", "to"), "lemme": ("let", "me"),
    "gimme": ("give", "me"), "whatcha": ("what", "are", "you"), "y'all": ("you",),
    # Chat shorthand.
    "u": ("you",), "ya": ("you",), "ur": ("your",), "r": ("are",), "rn": ("right", "now"),
    "atm": ("at", "the", "moment"), "pls": ("please",), "plz": ("please",), "thx": ("thanks",),
    "lmk": ("let", "me", "know"), "nvm": ("never", "mind"), "stat": ("status",),
    "stats": ("status",), "caps": ("capabilities",), "w": ("with",), "wo": ("without",),
    "fails": ("failed",), "failures": ("failed",),
}  # fmt: skip

# What speech-to-text writes for a number said right after "droplet", "task" or "priority".
HOMOPHONES: dict[str, str] = {
    "won": "one", "to": "two", "too": "two", "tu": "two", "for": "four", "fore": "four",
    "tree": "three", "free": "three", "ate": "eight", "sicks": "six", "nein": "nine",
}  # fmt: skip
TEEN_PARTS: dict[str, str] = {
    "thir": "thirteen", "four": "fourteen", "for": "fourteen", "fore": "fourteen",
    "fif": "fifteen", "six": "sixteen", "seven": "seventeen", "eight": "eighteen",
    "ate": "eighteen", "nine": "nineteen",
}  # fmt: skip
LIMIT_WORDS = ("last", "latest", "first", "next", "top", "past", "recent", "newest", "oldest")
ID_NOUNS = frozenset({"droplet", "task", "job", "priority", "prio", "number", "#"})
# A homophone is read as a number only where a number ends the phrase: "cancel task ate",
# "priority won, please"; never "priority to high" or "a task for droplet 3".
HOMOPHONE_BEFORE = frozenset(
    {"", ",", ".", "?", "!", ";", "and", "please", "now", "is", "was", "has", "status", "still",
     "done", "failed", "then", "asap", "right", "too", "at", "healthy", "up", "down",
     "finishes", "finished", "finish", "completes", "completed", "succeeds", "ends", "starts",
     "goes", "comes", "hundred", "thousand", "stat", "details", "info"}
)  # fmt: skip
# Plural nouns a spoken count stands before: "the last ate alerts", "top for tasks".
COUNTED_NOUNS = frozenset(
    {"alerts", "tasks", "droplets", "jobs", "events", "deploys", "builds", "failures", "items",
     "ones", "messages", "watches", "errors", "entries"}
)  # fmt: skip
TENS = frozenset({"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"})
# Speech-to-text splits a compound word: "on boarding", "dash board".
SPLIT_WORDS: dict[tuple[str, str], str] = {
    ("on", "boarding"): "onboarding", ("dash", "board"): "dashboard",
}  # fmt: skip

# Said around a request without changing it. Longest first; matched on whole words.
FILLER_PHRASES: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        (
            tuple(p.split())
            for p in (
                "uh", "uhh", "uhm", "um", "umm", "er", "erm", "err", "hmm", "hm", "mm", "ah",
                "eh", "you know", "i mean", "like i said", "okay so", "ok so", "alright so",
                "all right so", "so yeah", "yeah so", "hey there", "hey", "hi there",
                "hello there", "yo", "please", "pls", "plz", "kindly", "could you please",
                "can you please", "would you please", "could you", "can you", "would you",
                "will you", "would you mind", "do you mind", "could i get", "can i get",
                "can i have", "could i have", "i'd like to", "i would like to", "i want to",
                "i wanna", "i need you to", "i want you to", "i'd like you to",
                "i would like you to", "go ahead and", "for me", "real quick", "quickly",
                "quick", "just", "basically", "literally", "honestly", "i was wondering if",
                "i was wondering whether", "i wonder if", "i wonder whether",
                "do you think you could", "if you could", "if you can", "when you get a chance",
                "if possible", "thanks", "thank you", "thanks a lot", "cheers", "sorry",
                "excuse me", "right now", "at the moment", "currently", "real", "really",
                "maybe", "perhaps", "quick question", "quick q", "question", "buddy", "mate",
                "bot", "assistant", "computer", "okay", "ok", "alright", "so", "well",
                "actually", "um so", "oh", "oops", "wait", "hmm okay", "like", "kinda",
                "sort of", "kind of like",
            )
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip


def by_first_word(
    items: Iterable[T], phrase_of: Callable[[T], tuple[str, ...]]
) -> Mapping[str, tuple[T, ...]]:
    """Items grouped by their phrase's first word, each group in the given order: a position
    is tried only against the phrases that can start there (same first match as trying all)."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(phrase_of(item)[0], []).append(item)
    return MappingProxyType({word: tuple(group) for word, group in groups.items()})


FILLERS_BY_FIRST_WORD = by_first_word(FILLER_PHRASES, lambda phrase: phrase)
FILLER_STARTS = frozenset(FILLERS_BY_FIRST_WORD)
# Fillers that are words in their own right after the first position: only dropped at the start.
LEADING_ONLY = frozenset({"so", "well", "okay", "ok", "alright", "actually", "oh", "wait", "quick",
                          "real", "question", "yo", "hey"})  # fmt: skip
# Small words every sentence has; known, so never "corrected" and not counted as unknown.
_FUNCTION_WORDS_TEXT = """
    today tonight yesterday overnight now current recent recently lately hour hours minute
    minutes day days week weeks month morning evening night since ago already happened happen
    going gone went anything something everything nothing anyone everyone please id there
    today tonight yesterday overnight now current recent recently lately hour hours minute
    minutes day days week weeks month morning evening night since ago already happened happen
    going gone went anything something everything nothing anyone everyone please id there
    a an the of for to in on at by with from about as is are was were be been being am do does
    did done has have had having it its it's this that these those them they their there here
    what which who whom whose when where why how any some all every each no not and or but if
    then than so me my mine we us our you your i he she his her him one ones there's up down
    out over into onto off again also too very more most less least many much few other another
    same such only own can could would should will shall may might must let get got give show
    tell know see look make go going want need like please now just yes no ok okay right still
    yet else ever never always last first next new old please time times
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())


def _placeholders(text: str) -> tuple[str, list[str], list[str]]:
    urls: list[str] = []
    quotes: list[str] = []

    def url(match: re.Match[str]) -> str:
        value = match.group(0).rstrip(".,;:!?)]}")
        urls.append(value)
        return f"\x00url{len(urls) - 1}" + match.group(0)[len(value) :]

    def quote(match: re.Match[str]) -> str:
        quotes.append(next(g for g in match.groups() if g is not None))
        return f" \x00quote{len(quotes) - 1} "

    # Each pattern needs its marker in the text: most messages have neither, and are not scanned.
    if "://" in text:
        text = URL.sub(url, text)
    if '"' in text or "'" in text or "\u201c" in text:
        text = QUOTED.sub(quote, text)
    return text, urls, quotes


_MOST_EDITS = 2


def _edit_limit(length: int) -> int:
    """How many edits a typo may be from the word meant. Two only in long words: "purple" is
    not a misspelt "purge"."""
    return 1 if length <= 7 else _MOST_EDITS


class Vocabulary(frozenset[str]):
    """The words typos are corrected towards, with their sorted list built once (the fuzzy
    matcher takes a sequence; sorting a planner's whole vocabulary on every message cost
    about a tenth of a plan)."""

    choices: tuple[str, ...]
    by_length: tuple[tuple[str, ...], ...]
    """For each word length, the choices a word that long may be a typo of, in `choices`'
    order. An edit changes the length by at most one, so a word further than the edit limit
    in length can never be within it: about half the words are left."""

    def __new__(cls, words: Iterable[str] = ()) -> Vocabulary:
        made = super().__new__(cls, words)
        made.choices = tuple(sorted(made))
        longest = max(map(len, made), default=0)
        made.by_length = tuple(
            tuple(w for w in made.choices if abs(len(w) - length) <= _edit_limit(length))
            # A word up to _MOST_EDITS longer than the longest choice may still reach it.
            for length in range(longest + _MOST_EDITS + 1)
        )
        return made

    def near(self, word: str) -> tuple[str, ...]:
        """The choices `word` could be within its edit limit of (a superset, in order)."""
        length = len(word)
        return self.by_length[length] if length < len(self.by_length) else ()

    def correction(self, word: str) -> str | None:
        """The choice nearest `word` (fewest edits, at most its edit limit; the first in order
        among equals) if that starts with the same letter as `word`, else None.

        The choices starting with that letter stand together in the sorted order, between
        those before and those after it: the nearest of them is the nearest of all when none
        before is as near and none after is nearer. Most words have no choice starting with
        their letter within the limit, and are done after searching only those.
        """
        near = self.near(word)
        first = word[0]
        start = bisect_left(near, first)
        end = bisect_left(near, chr(ord(first) + 1), start)
        best = _nearest(word, near[start:end], _edit_limit(len(word)))
        if best is None:
            return None
        choice, edits = best
        if _nearest(word, near[:start], edits) is not None:
            return None
        if edits and _nearest(word, near[end:], edits - 1) is not None:
            return None
        return choice


def _nearest(word: str, choices: Sequence[str], limit: int) -> tuple[str, int] | None:
    """The first of the choices fewest edits from `word`, with its edits, if within `limit`."""
    best = extractOne(word, choices, scorer=OSA.distance, score_cutoff=limit)
    return None if best is None else (best[0], int(best[1]))


def tokenize(text: str, vocabulary: frozenset[str] = frozenset()) -> Text:
    """Tokens of `text`, normalised as described above. `vocabulary`: the words to correct
    typos towards (the tools' cues and the entity words)."""
    shaped = (
        text.replace("\u2019", "'")
        .replace("\u2018", "'")
        .replace("\u2013", "-")
        .replace("\u2014", " - ")
    )
    marked, urls, quotes = _placeholders(shaped)
    # Offsets are into `marked`; keep it as the original (placeholders stand where URLs were).
    out = Text(original=marked, tokens=[], urls=urls, quotes=quotes)
    words = _expand(marked.lower())
    words = _self_corrections(_numbers(_sounds_like_numbers(words)))
    out.spoken = [t.text for t in words]
    words, out.fillers = _drop_fillers(words)
    out.tokens, out.typos = _fix_typos(_collapse(words), vocabulary)
    return out


def _expand(lowered: str) -> list[Token]:
    """The words of `lowered` (WORD's matches), as tokens: contractions spelled out, "'s"
    split off, "twenty-three" in its parts, short forms ("d14", "p2", "#14") as a noun and a
    number."""
    out: list[Token] = []
    # No word holds a space, so each space-separated chunk is read on its own. A chunk of ASCII
    # letters is one word (WORD's letters alternative takes it whole) that needs no expanding
    # unless it is a contraction: most chunks are, and are taken without the regex.
    at = 0
    for chunk in lowered.split(" "):
        end = at + len(chunk)
        if chunk.isalpha() and chunk.isascii() and chunk not in CONTRACTIONS:
            out.append(Token(chunk, at, end))
        elif chunk:
            for match in WORD.finditer(lowered, at, end):
                # `lowered` is lower case, and WORD matches only characters lower() leaves
                # alone: the match is the word as is.
                start, stop = match.span()
                _expand_word(match.group(), start, stop, out)
        at = end + 1
    return out


def _expand_word(word: str, start: int, end: int, out: list[Token]) -> None:
    if word in CONTRACTIONS:
        out += [Token(w, start, end) for w in CONTRACTIONS[word]]
    elif word.endswith("'s") and len(word) > 2:
        _expand_word(word[:-2], start, end - 2, out)
        out.append(Token("'s", end - 2, end))
    elif "-" in word and "-" in word.strip("-") and all(p in NUMBER_WORDS for p in word.split("-")):
        # "twenty-three", "forty-second": read as the words they join.
        at = start
        for part in word.split("-"):
            out.append(Token(part, at, at + len(part)))
            at += len(part) + 1
    elif not (word[0].isdigit() or word[-1].isdigit() or word[0] == "#"):
        # Every short form below starts or ends with a digit (or "#"): most words stop here.
        out.append(Token(word, start, end))
    else:
        out += _short_form(word, start, end)


def _short_form(word: str, start: int, end: int) -> list[Token]:
    """ "d14" -> droplet 14, "task7" -> task 7, "p2" -> priority 2, "14th" -> 14."""
    short = SHORT_FORM.match(word)
    if short is None or short.lastindex is None:
        return [Token(word, start, end)]
    number = _num(short.group(short.lastindex), start, end)
    noun = SHORT_NOUNS[short.lastindex]
    return [number] if noun is None else [Token(noun, start, end), number]


# The words each case of _sounds_like_numbers starts with.
SOUNDS_LIKE_STARTS = frozenset(
    {
        *TEEN_PARTS,
        *HOMOPHONES,
        "t",
        "d",
        *(first for first, _ in SPLIT_WORDS),
        "couple",
        "dozen",
        "re",
    }
)


def _sounds_like_numbers(tokens: list[Token]) -> list[Token]:
    """What a transcriber makes of numbers: "for teen" (14), "six teen"; "droplet ate",
    "priority won" right after an id noun; "a couple" (2), "a dozen" (12); "re run"."""
    if SOUNDS_LIKE_STARTS.isdisjoint([t.text for t in tokens]):
        return tokens
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        word = tok.text
        if word not in SOUNDS_LIKE_STARTS:  # no case below starts with it
            out.append(tok)
            i += 1
            continue
        nxt = tokens[i + 1].text if i + 1 < len(tokens) else ""
        before = out[-1].text if out else ""
        if nxt in ("teen", "teens") and word in TEEN_PARTS:
            out.append(Token(TEEN_PARTS[word], tok.start, tokens[i + 1].end))
            i += 2
            continue
        if word in HOMOPHONES and _homophone_number(out, before, nxt):
            out.append(Token(HOMOPHONES[word], tok.start, tok.end))
            i += 1
            continue
        if word in ("t", "d") and i + 1 < len(tokens) and tokens[i + 1].num is not None:
            # "t 105", "d 9": the shorthand id noun written apart from its number.
            out.append(Token("task" if word == "t" else "droplet", tok.start, tok.end))
            i += 1
            continue
        if (word, nxt) in SPLIT_WORDS:
            out.append(Token(SPLIT_WORDS[(word, nxt)], tok.start, tokens[i + 1].end))
            i += 2
            continue
        if word in ("couple", "dozen") and before in ("a", "the", *LIMIT_WORDS):
            value = 2 if word == "couple" else 12
            if word == "dozen" and len(out) >= 2 and out[-2].text == "half":
                out.pop()
                value = 6
            start = out.pop().start if before in ("a", "the") else tok.start
            end = tok.end
            if nxt == "of":
                end = tokens[i + 1].end
                i += 1
            out.append(Token(str(value), start, end, num=value, spelled=True))
            i += 1
            continue
        if word == "re" and nxt.isalpha() and nxt in ("run", "try", "start", "queue", "submit"):
            out.append(Token("re" + nxt, tok.start, tokens[i + 1].end))
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _homophone_number(out: list[Token], before: str, nxt: str) -> bool:
    """Where "ate", "for", "to", "won" stand for a number: after an id noun ("task ate"), a
    tens word ("sixty ate"), a number and "and" ("tasks 4 and ate"), with a number-ending
    word next; or between a limit word and a counted noun ("the last ate alerts")."""
    if before in LIMIT_WORDS:
        return nxt in COUNTED_NOUNS
    if before in ("and", ",", "or"):
        if len(out) < 2 or not (out[-2].num is not None or out[-2].text in NUMBER_WORDS):
            return False
    elif before not in ID_NOUNS and before not in TENS and before not in ("tasks", "droplets"):
        return False
    return nxt in HOMOPHONE_BEFORE


def _num(digits: str, start: int, end: int) -> Token:
    value = int(digits[:12]) if digits.isdigit() else 0
    return Token(str(value), start, end, num=value)


# A number read has a word of these: a lone "a" or "oh" is none ("a hundred" has "hundred").
NUMBER_STARTS = NUMBER_WORDS - {"a", "oh"}


def _numbers(tokens: list[Token]) -> list[Token]:
    words = [t.text for t in tokens]
    if NUMBER_STARTS.isdisjoint(words):
        return tokens  # nothing to read
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.num is None and tok.text in NUMBER_WORDS and not _pronoun_one(words, i):
            number = read_number(words, i)
            if number is not None:
                last = tokens[i + number.length - 1]
                # An ordinal keeps its word ("the first five"), a cardinal becomes digits.
                text = tok.text if number.ordinal and number.length == 1 else str(number.value)
                out.append(
                    Token(
                        text,
                        tok.start,
                        last.end,
                        num=number.value,
                        ordinal=number.ordinal,
                        spelled=True,
                    )
                )
                i += number.length
                continue
        out.append(tok)
        i += 1
    return out


NUMBER_BEFORE = frozenset(
    {"droplet", "droplets", "task", "tasks", "job", "jobs", "number", "no", "#", "priority",
     "prio", "p", "and", ",", "or", "to", "through", "thru", "service", "node", "id", "ticket",
     "level", "is", "be", "at", "of", "top", "first", "just"}
)  # fmt: skip


def _pronoun_one(words: Sequence[str], i: int) -> bool:
    """ "that one", "a monitoring one", "one for droplet 4": "one" is a number only where a
    number is expected ("droplet one", "priority one", "one hundred", "one oh five")."""
    if words[i] != "one":
        return False
    before = words[i - 1] if i else ""
    after = words[i + 1] if i + 1 < len(words) else ""
    if after in ("hundred", "thousand", "oh"):
        return False
    return before not in NUMBER_BEFORE or after in ("of", "for", "too", "more")


# Said between a number and the number meant instead: "task twenty no wait twenty one",
# "droplet 33, no sorry, 34", "priority 3 I mean 2", "droplet 5 or rather 6".
CORRECTION_WORDS = frozenset(
    {"no", "nope", "wait", "sorry", "i", "mean", "actually", "rather", "or", "make", "that", "it",
     "scratch", "correction", "not", "uh", "um", "er", "erm", ",", "."}
)  # fmt: skip
CORRECTION_MARKS: tuple[tuple[str, ...], ...] = tuple(
    tuple(m.split())
    for m in ("no", "nope", "sorry", "i mean", "actually", "rather", "make that", "make it",
              "correction", "scratch that")
)  # fmt: skip


# A denial ("not 12, 21") starts with "not", a correction with the first word of its mark.
CORRECTION_STARTS = frozenset({"not", *(mark[0] for mark in CORRECTION_MARKS)})


def _self_corrections(tokens: list[Token]) -> list[Token]:
    """A number corrected as it is said keeps only the correction: "cancel task twenty no
    wait twenty one" -> "cancel task 21". Only between two numbers, and only when a correction
    word ("no", "sorry", "I mean", "actually", "make that") stands between them; the id noun
    may be repeated ("droplet 5, no, droplet 6")."""
    if CORRECTION_STARTS.isdisjoint([t.text for t in tokens]):
        return tokens  # no denial and no correction mark: nothing is corrected
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        denied = _denied_number(tokens, i)
        if denied:
            i += denied  # "not 12, 21": only the number meant is kept
            continue
        if tok.num is not None and not tok.ordinal:
            j = i + 1
            while j < len(tokens) and tokens[j].text in CORRECTION_WORDS:
                j += 1
            between = tuple(t.text for t in tokens[i + 1 : j])
            marked = any(
                between[k : k + len(m)] == m for m in CORRECTION_MARKS for k in range(len(between))
            )
            k = j
            if k < len(tokens) and k + 1 < len(tokens) and tokens[k].text in ID_NOUNS:
                k += 1  # "droplet 5, no, droplet 6"
            if (
                marked
                and j > i + 1
                and k < len(tokens)
                and tokens[k].num is not None
                and not tokens[k].ordinal
                and (k == j or (i > 0 and tokens[j].text == tokens[i - 1].text))
            ):
                i = k
                continue
            late = _late_correction(tokens, i)
            if late is not None:
                # "task thirty status no wait thirty one": the number is replaced where it
                # stood, the words said between stay.
                corrected, skip = late
                out.append(replace(corrected, start=tok.start, end=tok.end))
                out += tokens[i + 1 : i + 1 + skip]
                i = _after_late_correction(tokens, i + 1 + skip)
                continue
        out.append(tok)
        i += 1
    return out


def _late_correction(tokens: list[Token], i: int) -> tuple[Token, int] | None:
    """After the number at i: one or two plain words, a correction mark, a number. Returns the
    number meant and how many plain words stand between."""
    for skip in (1, 2):
        j = i + 1 + skip
        between = tokens[i + 1 : j]
        if len(between) < skip or any(
            t.num is not None or t.text in CORRECTION_WORDS for t in between
        ):
            return None
        k = j
        while k < len(tokens) and tokens[k].text in CORRECTION_WORDS:
            k += 1
        said = tuple(t.text for t in tokens[j:k])
        marked = any(said[n : n + len(m)] == m for m in CORRECTION_MARKS for n in range(len(said)))
        if marked and k < len(tokens) and tokens[k].num is not None and not tokens[k].ordinal:
            return tokens[k], skip
    return None


def _after_late_correction(tokens: list[Token], j: int) -> int:
    """The position after the correction mark and the number meant."""
    while j < len(tokens) and tokens[j].text in CORRECTION_WORDS:
        j += 1
    return j + 1


def _denied_number(tokens: list[Token], i: int) -> int:
    """ "not 12, 21", "not droplet 5, droplet 6": a number denied and the one meant right
    after it. Returns how many tokens to skip (the denial), 0 when there is none."""
    if tokens[i].text != "not":
        return 0
    j = i + 1
    noun = tokens[j].text if j < len(tokens) and tokens[j].text in ID_NOUNS else ""
    j += bool(noun)
    if j >= len(tokens) or tokens[j].num is None or tokens[j].ordinal:
        return 0
    k = j + 1
    if k >= len(tokens) or tokens[k].text != ",":
        return 0
    k += 1
    if noun and k < len(tokens) and tokens[k].text == noun:
        k += 1
        if k >= len(tokens) or tokens[k].num is None:
            return 0
        return k - 1 - i
    if k >= len(tokens) or tokens[k].num is None or tokens[k].ordinal:
        return 0
    if k + 1 < len(tokens) and tokens[k + 1].text not in (",", ".", "?", "!", "please"):
        return 0
    return k - i


def _drop_fillers(tokens: list[Token]) -> tuple[list[Token], int]:
    words = [t.text for t in tokens]
    if FILLER_STARTS.isdisjoint(words):
        return tokens, 0
    out: list[Token] = []
    dropped = 0
    i = 0
    while i < len(tokens):
        if words[i] not in FILLER_STARTS:
            out.append(tokens[i])
            i += 1
            continue
        match = None
        for phrase in FILLERS_BY_FIRST_WORD[words[i]]:
            n = len(phrase)
            # A phrase of one word is the word it was found by.
            if n == 1 or tuple(words[i : i + n]) == phrase:
                if n == 1 and phrase[0] in LEADING_ONLY and any(t.text not in ",." for t in out):
                    continue
                match = n
                break
        if match is None:
            out.append(tokens[i])
            i += 1
            continue
        dropped += 1
        i += match
    return out, dropped


def _collapse(tokens: list[Token]) -> list[Token]:
    """ "the the registry" -> "the registry" (speech-to-text repeats words)."""
    out: list[Token] = []
    for tok in tokens:
        if out and tok.text == out[-1].text and tok.num is None and tok.text.isalpha():
            continue
        out.append(tok)
    return out


def _fix_typos(tokens: list[Token], vocabulary: frozenset[str]) -> tuple[list[Token], int]:
    if not vocabulary:
        return tokens, 0
    indexed = vocabulary if isinstance(vocabulary, Vocabulary) else None
    fixed = 0
    for tok in tokens:
        word = tok.text
        if (
            word in vocabulary  # most words are known, and stop at this first test
            or word in FUNCTION_WORDS
            or tok.num is not None
            or len(word) < 4
            or not word.isalpha()
        ):
            continue
        base = stem(word)
        if base in vocabulary or f"{base}e" in vocabulary:
            continue  # an inflection of a known word ("starts"), not a typo
        if indexed is None:
            indexed = Vocabulary(vocabulary)  # once per call, and only when a word needs it
        correction = indexed.correction(word)
        if correction is not None:
            tok.text = correction
            tok.fixed = True
            fixed += 1
    return tokens, fixed
