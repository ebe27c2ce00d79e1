"""The tools' cues, compiled once into tables, and the scoring of one request against them.

Scores are additive evidence: a verb that names a tool, a phrase, a noun, supporting words and
entity kinds; words that argue against it subtract. The best tool wins if its evidence is enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Any

from app.conversation.understanding.entities import TASK_TYPE_WORDS, Entities
from app.conversation.understanding.stems import stem
from app.tools.base import Tool

Phrase = tuple[str, ...]

WEIGHTS = {
    "verb": 3.0,
    "phrase": 5.0,
    "noun": 2.0,
    "context": 1.0,
    "entity": 1.0,
    "needed": 2.0,
    "against": -3.0,
    "lead": 1.5,
}
PHRASE_WORD = 0.5
"""A longer phrase is more specific: each word beyond the first adds this much."""
LEAD_SKIP = frozenset(
    {"and", "then", "also", "now", "so", "the", ",", "to", "i", "we", "let", "us", "can", "could",
     "would", "will", "you", "please", "maybe", "need", "want", "go", "ahead", "like", "ok",
     "okay", "hey", "just", "should", "must", "got", "someone", "somebody", "do", "me"}
)  # fmt: skip
QUESTIONS = frozenset(
    {"what", "which", "how", "is", "are", "any", "who", "where", "did", "does", "has", "have",
     "was", "were", "why", "when"}
)  # fmt: skip
# A verb right after one of these, or ending the request, is a command too: "task 88, cancel",
# "failed deploys -> retry".
COMMAND_AFTER = frozenset({",", "->", "=>", ":", ";", "-"})
MIN_SCORE = 2.0
"""Less evidence than one noun is not a request."""

# Who a messaging verb is said to: "tell me when..." is not a message to a droplet.
NOT_A_RECIPIENT = frozenset({"me", "us", "when", "if", "whenever", "once", "about", "how", "what"})


def _said_to_operator(label: str, phrase: Phrase, words: Sequence[str], at: int, end: int) -> bool:
    """A verb followed by "me", "when", … or a phrase whose "*" stands for "me" / "us"."""
    if label == "verb":
        return (words[end] if end < len(words) else "") in NOT_A_RECIPIENT
    return label == "phrase" and "*" in phrase and bool({"me", "us"} & set(words[at:end]))


def _phrases(items: Iterable[str]) -> tuple[Phrase, ...]:
    # Longest first; equal lengths in a fixed order, so no plan depends on the hash seed.
    return tuple(sorted({tuple(i.split()) for i in items if i}, key=lambda p: (-len(p), p)))


# The order a tool's cues are scored in: a phrase claims its words before a verb, a verb
# before a noun, and so on.
GROUP_LABELS = ("phrase", "verb", "noun", "context", "against")


@dataclass(frozen=True, slots=True)
class _Cue:
    """One cue of one tool, with what scoring it needs worked out once, when the index is
    built: a request only looks up and adds."""

    group: int
    """Index into GROUP_LABELS: the order a tool's cues are scored in."""
    label: str
    phrase: Phrase
    needs: frozenset[str]
    """The words it cannot match without ("*" stands for any)."""
    gain: float
    """What a match adds: the label's weight, plus PHRASE_WORD per extra word of a phrase."""
    leads: bool
    """A phrase whose first word is one of the tool's verbs ("cancel all ...")."""
    evidence: str
    word: str | None
    """The cue's only word, when it is one word (not "*")."""


_Entry = tuple[int, int, _Cue]
"""(position in scoring order over all tables, table index, cue)."""


def _groups(table: CompiledCues) -> tuple[tuple[Phrase, ...], ...]:
    return (table.phrases, table.verbs, table.nouns, table.context, table.against)


@dataclass(frozen=True, slots=True)
class CompiledCues:
    tool: str
    verbs: tuple[Phrase, ...]
    nouns: tuple[Phrase, ...]
    phrases: tuple[Phrase, ...]
    context: tuple[Phrase, ...]
    against: tuple[Phrase, ...]
    entities: frozenset[str]
    needs: frozenset[str]
    excludes: frozenset[str]
    needs_any: frozenset[str]
    slot_kinds: frozenset[str]
    to_someone: bool
    order: int
    bonus: frozenset[str]
    """`entities` not in `needs`: each present one adds WEIGHTS["entity"]."""


@dataclass(slots=True)
class Score:
    tool: str
    total: float = 0.0
    verbs: int = 0
    phrases: int = 0
    nouns: int = 0
    evidence: list[str] = field(default_factory=list)

    @property
    def named(self) -> bool:
        """Named by a verb or a phrase, not only supported by a noun or entities."""
        return self.verbs > 0 or self.phrases > 0


def _entity_kind(slot_kind: str) -> str:
    return {"droplets": "droplet"}.get(slot_kind, slot_kind)


class CueIndex:
    def __init__(self, tools: Iterable[Tool[Any]]) -> None:
        self.tables: list[CompiledCues] = []
        for order, tool in enumerate(tools):
            cues = tool.cues
            self.tables.append(
                CompiledCues(
                    tool=tool.name,
                    verbs=_phrases(cues.verbs),
                    nouns=_phrases(cues.nouns),
                    phrases=_phrases(cues.phrases),
                    context=_phrases(cues.context),
                    against=_phrases(cues.against),
                    entities=frozenset(_entity_kind(e) for e in cues.entities),
                    needs=frozenset(cues.needs),
                    excludes=frozenset(_entity_kind(e) for e in cues.excludes),
                    needs_any=frozenset(_entity_kind(e) for e in cues.needs_any),
                    to_someone=cues.to_someone,
                    slot_kinds=frozenset(_entity_kind(s.entity) for s in tool.slots.values()),
                    order=order,
                    bonus=frozenset(_entity_kind(e) for e in cues.entities) - frozenset(cues.needs),
                )
            )
        self.by_tool = {t.tool: t for t in self.tables}
        self.verbs: frozenset[Phrase] = frozenset(v for t in self.tables for v in t.verbs)
        verbs_by_first: dict[str, list[Phrase]] = {}
        for verb in self.verbs:
            if verb:
                verbs_by_first.setdefault(verb[0], []).append(verb)
        self._verbs_by_first: dict[str, tuple[Phrase, ...]] = {
            w: tuple(v) for w, v in verbs_by_first.items()
        }
        # The words a phrase cannot match without: a cue none of whose required words is in
        # the request is skipped with one set test instead of a scan over every position
        # (most of the ~2,000 cues, for most requests).
        self.required: dict[Phrase, frozenset[str]] = {
            phrase: frozenset(w for w in phrase if w != "*")
            for t in self.tables
            for group in _groups(t)
            for phrase in group
        }
        # Every cue by one of its required words: a request's candidates are looked up from
        # its words instead of testing all ~2,000. Entries are numbered in the order the
        # tables are scored in (table, group, position), so sorting the candidates restores it.
        by_word: dict[str, list[_Entry]] = {}
        numbered = 0
        for t_index, t in enumerate(self.tables):
            for g_index, group in enumerate(_groups(t)):
                for phrase in group:
                    first = next(w for w in phrase if w != "*")
                    cue = _compile(t, g_index, phrase, self.required[phrase])
                    by_word.setdefault(first, []).append((numbered, t_index, cue))
                    numbered += 1
        self.by_word: dict[str, tuple[_Entry, ...]] = {w: tuple(e) for w, e in by_word.items()}
        self.vocabulary: frozenset[str] = frozenset(
            word for t in self.tables for group in _groups(t) for phrase in group for word in phrase
        )

    def starts_with_verb(self, words: Sequence[str], i: int) -> bool:
        forms = [_forms(w) for w in words[i : i + 6]]
        if not forms:
            return False
        present: frozenset[str] = frozenset().union(*forms)
        required = self.required
        # Only a verb whose first word is one of the first word's forms (or "*") can match at
        # the start: look those up instead of testing every verb.
        by_first = self._verbs_by_first
        candidates = [v for form in forms[0] for v in by_first.get(form, ())]
        candidates += by_first.get("*", ())
        return any(_match(forms, v, 0) is not None for v in candidates if required[v] <= present)

    def _candidates(self, words: frozenset[str]) -> dict[int, list[_Cue]]:
        """Per table index, the cues all of whose words are in `words`, in scoring order."""
        by_word = self.by_word
        found = [
            entry for word in words for entry in by_word.get(word, ()) if entry[2].needs <= words
        ]
        # Entries are unique (indexed by one word each) and numbered: the sort compares only
        # the numbers, and no order reaches the set.
        found.sort()
        out: dict[int, list[_Cue]] = {}
        for _, t_index, cue in found:
            out.setdefault(t_index, []).append(cue)
        return out

    def score(
        self,
        words: Sequence[str],
        ents: Entities,
        *,
        available: frozenset[str],
        strong: frozenset[str] = frozenset(),
        spoken: Sequence[str] = (),
        content: frozenset[int] = frozenset(),
    ) -> list[Score]:
        """Every candidate tool's score for one request, best first.

        `available`: entity kinds the request can supply (present, or reachable through a
        pronoun or the conversation). `spoken`: the same words with fillers kept, for phrases
        like "what can you do". `content`: positions that are a message's or a title's own
        words, which name nothing.

        The longest cue wins its words: where a tool's multi-word cue ("stop watching")
        covers a word, another tool's one-word cue ("stop") does not count there. A verb is a
        command at the start of a request; later in the sentence it counts for half.
        """
        kinds = ents.kinds()
        forms = [_forms(w) if i not in content else frozenset() for i, w in enumerate(words)]
        spoken_forms = [_forms(w) for w in spoken]
        present: frozenset[str] = frozenset().union(*forms)
        spoken_present: frozenset[str] = frozenset().union(*spoken_forms)
        lead = next((i for i, w in enumerate(words) if w not in LEAD_SKIP), 0)
        commands = {lead} | {i + 1 for i, w in enumerate(words) if w in COMMAND_AFTER and i > lead}
        if words and not self.starts_with_verb(words, lead) and words[lead] not in QUESTIONS:
            commands.add(len(words) - 1)  # "droplet 9 deploy": a verb said last
        bare_only = {"droplet", "task"} - kinds - strong
        candidates = self._candidates(present | spoken_present)
        starts = _starts(forms)
        spoken_starts: dict[str, list[int]] | None = None  # only when a phrase needs them
        # Where each cue first occurs, taken or not, found once per request: several tools share
        # cues ("show", "status"), and the claims below find the long ones first.
        first: dict[Phrase, tuple[int, int] | None] = {}
        claimed = self._claims(forms, present, candidates, starts, first)
        lead_gain = WEIGHTS["lead"]
        scores: list[Score] = []
        for t_index, table in enumerate(self.tables):
            needs = table.needs
            if needs and not needs <= available:
                continue
            if table.needs_any and table.needs_any.isdisjoint(available):
                continue
            tool = table.tool
            score = Score(tool)
            cues = candidates.get(t_index)
            if cues is not None:  # most tables have no cue in the request
                taken: set[int] = set()
                for cue in cues:
                    label = cue.label
                    phrase = cue.phrase
                    found = None
                    if cue.word is not None:
                        # One word (most cues): its first position not taken by a longer cue, as
                        # _find would find it, without the phrase matching.
                        positions = starts.get(cue.word)
                        if positions is not None:
                            at = positions[0]
                            if taken and label != "against" and at in taken:
                                at = next((i for i in positions if i not in taken), -1)
                            if at >= 0:
                                found = (at, at + 1)
                    elif cue.needs <= present:
                        found = _first_at(first, forms, phrase, starts)
                        if (
                            found is not None
                            and taken
                            and label != "against"
                            and not taken.isdisjoint(range(*found))
                        ):
                            # Its first occurrence overlaps a longer cue's words: a later one.
                            found = _find(forms, phrase, taken, starts)
                    if found is None:
                        if label == "phrase" and spoken_forms and not content:
                            if spoken_starts is None:
                                spoken_starts = _starts(spoken_forms)
                            if cue.needs <= spoken_present and (
                                _find(spoken_forms, phrase, set(), spoken_starts) is not None
                            ):
                                score.total += cue.gain
                                score.phrases += 1
                                score.evidence.append(cue.evidence)
                        continue
                    at, end = found
                    single = len(phrase) == 1
                    if label != "against":
                        if single and claimed.get(at, tool) != tool:
                            continue  # a longer cue of another tool owns this word
                        if table.to_someone and _said_to_operator(label, phrase, words, at, end):
                            continue  # "tell me when …", "give me a heads up": not a message
                        taken.update(range(at, end))
                    gain = cue.gain
                    if label == "phrase":
                        if cue.leads and at in commands:
                            gain += lead_gain  # "cancel all ..." is a command too
                        score.phrases += 1
                    elif label == "verb":
                        if single:
                            word = words[at]
                            if word in TASK_TYPE_WORDS:
                                after = words[end] if end < len(words) else ""
                                # "monitor tasks on the deck", "type is build": a filter
                                if after in ("tasks", "jobs") or not _FILTER_WORDS.isdisjoint(
                                    words[max(0, at - 2) : at]
                                ):
                                    continue
                            if (
                                at not in commands
                                and word.endswith("ing")
                                and words[at - 1] not in _KEEP_GOING
                            ):
                                continue  # "anything besides monitoring": a noun, not a command
                        gain = gain + lead_gain if at in commands else gain / 2
                        score.verbs += 1
                    elif label == "noun":
                        score.nouns += 1
                    score.total += gain
                    score.evidence.append(cue.evidence)
            # Most tables have no bonus kinds, needs or excluded kinds: skip the empty sets.
            if table.bonus:
                score.total += WEIGHTS["entity"] * len(table.bonus & kinds)
            for need in needs:  # all of them available (checked above)
                # An id said on its own names the tool ("droplet 14?"); a bare number or a
                # pronoun only supports it.
                weak = need in bare_only
                score.total += WEIGHTS["needed"] * (0.25 if weak else 1.0)
            if table.excludes:
                score.total += WEIGHTS["against"] * len(table.excludes & kinds)
            scores.append(score)
        # Best first; equal totals in table order, as appended (the sort is stable, also
        # reversed).
        scores.sort(key=_TOTAL, reverse=True)
        return scores

    def _claims(
        self,
        forms: Sequence[frozenset[str]],
        present: frozenset[str],
        candidates: Mapping[int, Sequence[_Cue]],
        starts: Mapping[str, Sequence[int]],
        first: dict[Phrase, tuple[int, int] | None],
    ) -> dict[int, str]:
        """Word position -> the tool whose longest multi-word cue covers it (phrases, verbs
        and nouns; on a tie, the first in scoring order). Records in `first` where each cue it
        looked for first occurs."""
        best: dict[int, tuple[int, str]] = {}
        for t_index, cues in candidates.items():
            tool = self.tables[t_index].tool
            for cue in cues:
                if cue.group > 2 or len(cue.phrase) < 2 or not cue.needs <= present:
                    continue
                found = _first_at(first, forms, cue.phrase, starts)
                if found is None:
                    continue
                length = found[1] - found[0]
                for pos in range(*found):
                    if pos not in best or best[pos][0] < length:
                        best[pos] = (length, tool)
        return {pos: tool for pos, (_, tool) in best.items()}


_TOTAL = attrgetter("total")
_FILTER_WORDS = frozenset({"type", "kind"})
"""Said just before a task type, they make it a filter ("type is build"), not a verb."""
_KEEP_GOING = frozenset({"start", "begin", "keep", "continue", "go"})
"""Before a verb's -ing form, these make it a command still ("keep monitoring")."""


def _compile(table: CompiledCues, group: int, phrase: Phrase, needs: frozenset[str]) -> _Cue:
    label = GROUP_LABELS[group]
    gain = WEIGHTS[label]
    if label == "phrase":
        gain += PHRASE_WORD * (len(phrase) - 1)
    return _Cue(
        group=group,
        label=label,
        phrase=phrase,
        needs=needs,
        gain=gain,
        leads=label == "phrase" and phrase[:1] in table.verbs,
        evidence=f"{label}:{' '.join(phrase)}",
        word=phrase[0] if len(phrase) == 1 and phrase[0] != "*" else None,
    )


# "pending builds", "failed deploys": plural task nouns, never the verbs "build", "deploy".
PLURAL_NOUNS = frozenset(word for word, (_, plural) in TASK_TYPE_WORDS.items() if plural)


@lru_cache(maxsize=4096)  # as `stem`: every word of every request, several times per plan
def _forms(word: str) -> frozenset[str]:
    if word in PLURAL_NOUNS:
        return frozenset({word})
    base = stem(word)
    return frozenset({word, base, base + "e"})


def _starts(forms: Sequence[frozenset[str]]) -> dict[str, list[int]]:
    """Each form -> the positions it is a form of, in order (where a phrase can start)."""
    starts: dict[str, list[int]] = {}
    for i, options in enumerate(forms):
        for form in options:
            starts.setdefault(form, []).append(i)
    return starts


def _first_at(
    first: dict[Phrase, tuple[int, int] | None],
    forms: Sequence[frozenset[str]],
    phrase: Phrase,
    starts: Mapping[str, Sequence[int]],
) -> tuple[int, int] | None:
    """Where `phrase` first occurs, taken or not: from `first`, or found once and kept there."""
    if phrase in first:
        return first[phrase]
    found = first[phrase] = _find(forms, phrase, set(), starts)
    return found


def _find(
    forms: Sequence[frozenset[str]],
    phrase: Phrase,
    taken: set[int],
    starts: Mapping[str, Sequence[int]] | None = None,
) -> tuple[int, int] | None:
    """Where `phrase` occurs (start, end), "*" standing for one to four words ("droplets 16
    and 18"). `starts` (from `_starts(forms)`) limits the attempts to the positions where its
    first word occurs; the answer is the same."""
    head = phrase[0] if phrase else "*"
    positions = range(len(forms)) if starts is None or head == "*" else starts.get(head, ())
    for i in positions:
        end = _match(forms, phrase, i)
        if end is not None and not taken & set(range(i, end)):
            return i, end
    return None


def _match(forms: Sequence[frozenset[str]], phrase: Phrase, i: int) -> int | None:
    if not phrase:
        return i
    head, rest = phrase[0], phrase[1:]
    if head == "*":
        for skip in (1, 2, 3, 4):
            if i + skip <= len(forms):
                end = _match(forms, rest, i + skip)
                if end is not None:
                    return end
        return None
    if i < len(forms) and head in forms[i]:
        return _match(forms, rest, i + 1)
    return None
