"""The offline planner (PLANNER=rules, the default): no model, no key, every turn.

It reads the tools' cues and slots; it knows no tool by name except through that data, so a new
tool is recognised by declaring its cues. What it is unsure of it says with a low confidence,
calibrated on the dev split, so a configured model is consulted exactly when it helps.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.conversation.confirmation import answer_of
from app.conversation.understanding import safety
from app.conversation.understanding.confidence import Features, assessed
from app.conversation.understanding.cues import MIN_SCORE, CueIndex, Score
from app.conversation.understanding.entities import (
    DROPLET_NOUNS,
    DROPLET_STATUS_WORDS,
    PAIR_KEY_ALIASES,
    PRIORITY_WORDS,
    TASK_NOUNS,
    TASK_STATUS_WORDS,
    TASK_TYPE_WORDS,
    WATCH_EVENTS,
    AliasIndex,
    Entities,
    Found,
    extract,
    pairs,
)
from app.conversation.understanding.text import FUNCTION_WORDS, Text, Vocabulary, tokenize
from app.domain.plan import PendingCall, Plan, PlanContext, ToolCall
from app.tools.base import Slot, Tool
from app.tools.registry import ToolRegistry
from app.utils.loop_budget import LoopBudget
from app.utils.stage import Stage

MAX_CALLS = 10
""""check droplets 1 to 40" should not fan out into forty calls."""

CONNECTORS = frozenset(
    {"and", "then", "also", "plus", ";", "after", "afterwards", "&", ",", "+", ".", "?", "!"}
)
SENTENCE_ENDS = frozenset({".", "?", "!", ";"})
LEADING_SKIP = frozenset(
    {"and", "then", "also", "after", "that", "afterwards", "plus", ",", ";", "the", "a", "an",
     "my", "our", "all"}
)  # fmt: skip
QUESTION_STARTS = frozenset(
    {"what", "which", "how", "is", "are", "any", "who", "where", "did", "does", "do", "has",
     "have", "was", "were", "can", "could", "will", "why"}
)  # fmt: skip
# Words that ask to see something: after "and" they start a request of their own ("retry
# task 12 and show me task 13"), though no tool is named by them alone.
READ_VERBS = frozenset({"show", "list", "display", "fetch", "get", "give", "pull"})
FOLLOW_UPS: tuple[tuple[str, ...], ...] = (
    ("and", "what", "about"), ("what", "about"), ("how", "about"), ("and", "for"),
    ("same", "for"), ("same", "with"), ("same", "thing", "for"), ("now", "for"), ("and",),
    ("also",), ("what", "of"), ("or",), ("then",), ("now",), ("only",), ("but", "only"),
    ("do", "the", "same"), ("the", "same"), ("same",), ("make", "it"), ("make", "that"),
)  # fmt: skip
# A follow-up with these keeps the previous request's arguments and changes only what it says
# ("show tasks for droplet 14" -> "only the failed ones").
NARROWING = frozenset({"only", "same", "also", "too", "but"})
MESSAGE_LEADS: tuple[tuple[str, ...], ...] = (
    ("letting", "it", "know", "that"), ("letting", "them", "know", "that"),
    ("and", "let", "it", "know", "that"), ("to", "let", "it", "know", "that"),
    ("telling", "it", "that"), ("telling", "them", "that"), ("telling", "it"),
    ("with", "the", "message"), ("with", "a", "message"), ("with", "message"),
    ("the", "message"), ("a", "message"), ("a", "quick", "message"),
    ("saying", "that"), ("saying",), ("that",), ("know", "that"), ("know",), ("with",),
    (":",), ("-",), (",",), ("to",), ("a", "note"), ("note",), ("message",), ("and", "say"),
    ("and", "tell", "it"), ("the", "following"), ("a", "heads", "up", "that"),
    ("a", "heads", "up"), ("heads", "up"), ("about",), ("a", "line"), ("a", "quick", "line"),
    ("a", "quick", "note"), ("->",), ("=>",), ("that", "says"), ("which", "says"), ("says",),
)  # fmt: skip
_ID_LIST_TOOLS = frozenset({"retry_tasks", "cancel_tasks"})
OWNER_PRONOUNS = frozenset({"its", "it", "their", "they"})
ONES = frozenset({"ones", "those"})
CARRIED_FILTERS = frozenset({"task_status", "task_type", "droplet_status", "limit"})
FOR_ANOTHER = (["for"], ["on"], ["of"], ["about"])
WATCH_LEADS = frozenset({"when", "if", "once", "whenever"})
FILTER_KINDS = ("task_status", "task_type", "droplet", "task", "number")
DROPLET_REFS = frozenset({"that", "this", "the", "same", "said"})
TASK_REFS = frozenset({"that", "this", "the", "my", "our", "same", "last", "latest", "previous"})
MESSAGE_NOUNS = frozenset(
    {"message", "msg", "note", "text", "say", "saying", "heads", "fyi", "reminder", "dm"}
)
MESSAGE_VERBS = frozenset(
    {"tell", "say", "send", "message", "msg", "notify", "dm", "ping", "shoot", "inform", "text",
     "write", "post", "relay", "forward", "remind", "ask", "broadcast", "pass", "drop", "let"}
)  # fmt: skip


@dataclass(slots=True)
class _Request:
    """One request of a message: its tokens, entities, and the tool it names."""

    first: int
    last: int
    ents: Entities
    words: list[str]
    content: frozenset[int] = frozenset()
    scores: list[Score] = field(default_factory=list)
    tool: str | None = None
    inherited: bool = False
    base: dict[str, Any] = field(default_factory=dict)
    """Arguments carried from the previous turn, which this request's own values override."""
    elliptic: bool = False
    """A word or two and nothing named ("status?", "retry"): about what the conversation
    last spoke of."""
    said: dict[str, str] | None = None
    """Its "key: value" pairs by lower-case key, once a slot has asked (`_said`)."""

    @property
    def best(self) -> Score | None:
        return self.scores[0] if self.scores else None


@dataclass(slots=True)
class _Drafted:
    calls: list[ToolCall] = field(default_factory=list)
    ask: tuple[ToolCall, list[str]] | None = None
    used_context: bool = False
    problems: list[str] = field(default_factory=list)
    """What made a call unusable ("priority must be between 1 and 10")."""


@dataclass(slots=True)
class _Refs:
    """What "it" and "its" mean while a message is read: the conversation's last ids, updated
    by each request of the same message ("check droplet 14 and list its tasks")."""

    droplet: int | None
    task: int | None


class OfflinePlanner:
    name = "rules"

    def __init__(self, tools: ToolRegistry, *, loop_budget: LoopBudget | None = None) -> None:
        self._tools = tools
        self._index = CueIndex(tools)
        # The kinds some tool's `_fits` takes, and the bare number `_takes_number` takes.
        self._fitting_kinds = frozenset(
            {"number"}.union(*(t.slot_kinds | t.entities | t.needs for t in self._index.tables))
        )
        entity_words = {
            *TASK_STATUS_WORDS,
            *DROPLET_STATUS_WORDS,
            *TASK_TYPE_WORDS,
            *PRIORITY_WORDS,
            *DROPLET_NOUNS,
            *TASK_NOUNS,
            *(word for phrase, _ in WATCH_EVENTS for word in phrase),
            "priority",
            "registry",
            "orchestrator",
            "voice",
            "dashboard",
            "onboarding",
            "visibility",
            "deck",
            "capability",
            "title",
            "titled",
            "description",
            "payload",
            "message",
            # Words that qualify a request without changing it.
            "single",
            "filter",
            "filters",
            "filtered",
            "unfiltered",
            "across",
            "whole",
            "entire",
            "besides",
            "sorted",
            "sort",
            "order",
            "ordered",
            "newest",
            "oldest",
            "every",
            "number",
            "both",
            "each",
            "event",
            # How a listing is cut or ordered ("limit 25", "of type provision", "by name").
            "limit",
            "max",
            "maximum",
            "cap",
            "type",
            "types",
            "kind",
            "name",
            "names",
            "ids",
            "date",
            "created",
            "ascending",
            "descending",
            "alphabetically",
            "alphabetical",
        }
        lead_words = {w for lead in MESSAGE_LEADS for w in lead} | MESSAGE_VERBS
        self._verb_words = frozenset(w for verb in self._index.verbs for w in verb)
        self._vocabulary = Vocabulary(self._index.vocabulary | entity_words | lead_words)
        self._aliases: AliasIndex | None = None
        # The plans asked for in one loop iteration are made back to back at its end, where
        # the planner's tables are still in the CPU's caches from the previous plan, within
        # the budget the turns' starts share (app.utils.stage; docs/performance.md).
        self._stage = Stage(self.plan_now, budget=loop_budget)

    async def plan(self, text: str, context: PlanContext) -> Plan:
        return await self._stage(text, context)

    def _alias_index(self, aliases: Mapping[str, int]) -> AliasIndex:
        """The index of `aliases`, built again only when the table changed (a droplet got a
        new name): every turn brings its own copy of the same table."""
        if self._aliases is None or self._aliases.table != aliases:
            self._aliases = AliasIndex.of(aliases)
        return self._aliases

    # ---- the whole message ---------------------------------------------------------------

    def plan_now(self, text: str, context: PlanContext) -> Plan:
        raw = " ".join(text.split())[:5000]
        refusal = safety.refusal(raw)
        if refusal is not None:
            return self._answer(refusal, "refused", Features(refused=True))
        bare = answer_of(raw)
        refers = bool(set(raw.lower().split()) & {"it", "that", "this"})
        if bare != 0 and context.pending is None and not (bare == -1 and refers):
            # A yes or no with nothing waiting (the conversation normally answers this itself).
            return self._answer(
                safety.NOTHING_WAITING if bare == 1 else safety.NOTHING_TO_DROP,
                "confirmation",
                Features(small_talk=True),
            )
        if raw.strip(" ?") == "" and "?" in raw:
            return self._tools_plan([ToolCall(tool="help")], Features(top=4.0, named=True))
        parsed = tokenize(raw, self._vocabulary)
        rest = _after_dismissal(parsed) if context.pending is not None else None
        if rest is not None:
            # "scratch that, how is the system doing?": the waiting question is dropped and
            # the rest is a request of its own (not an undo of anything done).
            return self.plan_now(rest, context.model_copy(update={"pending": None}))
        if context.pending is not None:
            pending_plan = self._pending(parsed, context.pending, context)
            if pending_plan is not None:
                return pending_plan
        talk = safety.small_talk(raw)
        if talk is not None and not self._has_request(parsed, context):
            return self._answer(talk[1], talk[0], Features(small_talk=True))
        if not parsed.tokens:
            return self._answer(safety.NOT_UNDERSTOOD, "unknown", Features(empty=True))

        requests = self._requests(parsed, context)
        drafted = self._draft(parsed, requests, context)
        features = self._features(parsed, requests, drafted)
        if drafted.ask is not None:
            call, missing = drafted.ask
            return self._ask(call, missing, features)
        if not drafted.calls and drafted.problems:
            return self._answer(" ".join(dict.fromkeys(drafted.problems)), "invalid", features)
        if not drafted.calls:
            return self._answer(safety.OUT_OF_SCOPE, "unknown", features)
        return self._tools_plan(drafted.calls, features)

    def _tools_plan(self, calls: list[ToolCall], features: Features) -> Plan:
        unique: list[ToolCall] = []
        for call in calls:
            if call not in unique:  # "…? show its capabilities" asked twice is one call
                unique.append(call)
        calls = unique
        notes = [f"calls_truncated:{len(calls)}"] if len(calls) > MAX_CALLS else []
        calls = calls[:MAX_CALLS]
        intent = calls[0].tool if len({c.tool for c in calls}) == 1 else "multi"
        confidence, vector = assessed(features)
        return Plan(
            kind="tools",
            intent=intent,
            calls=calls,
            confidence=confidence,
            features=vector,
            planner=self.name,
            notes=notes,
        )

    def _ask(self, call: ToolCall, missing: list[str], features: Features) -> Plan:
        """A partial write and the arguments still to ask for, in that order."""
        confidence, vector = assessed(features)
        return Plan(
            kind="ask",
            intent=call.tool,
            calls=[call],
            missing=missing,
            confidence=confidence,
            features=vector,
            planner=self.name,
        )

    def _answer(self, text: str, intent: str, features: Features) -> Plan:
        confidence, vector = assessed(features)
        return Plan(
            kind="answer",
            intent=intent,
            answer=text,
            confidence=confidence,
            features=vector,
            planner=self.name,
        )

    def _has_request(self, parsed: Text, context: PlanContext) -> bool:
        ents = extract(parsed, parsed.tokens, self._alias_index(context.aliases))
        if ents.has("droplet") or ents.has("task"):
            return True
        scores = self._index.score(parsed.words, ents, available=frozenset(ents.kinds()))
        return bool(scores) and scores[0].named

    # ---- requests ------------------------------------------------------------------------

    def _requests(self, parsed: Text, context: PlanContext) -> list[_Request]:
        spans, whole = self._split(parsed, context)
        single = len(spans) == 1
        everything = (0, len(parsed.tokens) - 1)
        requests: list[_Request] = []
        for first, last in spans:
            request = self._request(
                parsed,
                first,
                last,
                context,
                spoken=parsed.spoken if single else (),
                # One request that is the whole message: its entities are the ones _split
                # already found (the entity pass runs once per message, not twice).
                ents=whole if (first, last) == everything else None,
            )
            lead = requests[-1] if requests else None
            if (
                lead is not None
                and (lead.tool is None or (lead.tool == "list_tasks" and not _read_verb(lead)))
                and request.tool is not None
                and request.tool != lead.tool
                and lead.ents.has("task_status")
                and request.ents.has("pronoun")
            ):
                # "the failed ones, retry them": the topic first, then the command about it.
                joined = self._request(parsed, lead.first, last, context)
                if joined.tool == request.tool:
                    requests[-1] = joined
                    continue
            if lead is not None and lead.tool == "create_task" and _amends_priority(request):
                # "deploy droplet 16 and make it high priority": one task, at that priority.
                _borrow(lead, request, {"priority"})
                continue
            if (
                lead is not None
                and lead.tool == "list_tasks"
                and (request.tool in _ID_LIST_TOOLS or request.tool in _BULK_TWINS)
                and request.ents.has("pronoun")
                and not any(request.ents.has(k) for k in FILTER_KINDS)
            ):
                # "show failed tasks then retry all of them": the tasks just listed.
                joined = self._request(parsed, lead.first, last, context)
                joined.tool = _BULK_TWINS.get(request.tool or "", request.tool)
                request = joined
            if (
                lead is not None
                and lead.tool == "watch"
                and not _named(request)
                and (
                    parsed.words[first - 1] == "or"
                    or (
                        bool(set(request.words[:3]) & WATCH_LEADS)
                        and request.ents.has("watch_event")
                    )
                )
            ):
                # "… goes down or droplet 16 comes back", "… and when droplet 7 goes down"
                request.tool = "watch"
            requests.append(request)
            context = _after(context, request.ents)
        self._inherit(requests, context)
        _share_objects(parsed, requests)
        return self._merge_messages(parsed, requests, context)

    def _request(
        self,
        parsed: Text,
        first: int,
        last: int,
        context: PlanContext,
        *,
        spoken: Sequence[str] = (),
        ents: Entities | None = None,
    ) -> _Request:
        tokens = parsed.tokens[first : last + 1]
        if ents is None:
            ents = extract(parsed, tokens, self._alias_index(context.aliases))
        words = [t.text for t in tokens]
        request = _Request(first, last, ents, words, content=_content(words, ents))
        if request.content or any(w.startswith("\x00quote") for w in words):
            ents.found.append(Found("message", True, first, last))
        said = [w for w in words if w not in ("?", ".", "!", "please", "pls", "now", "again")]
        request.elliptic = 0 < len(said) <= 2 and not ents.found
        available = self._available(ents, words, context)
        strong = available - (
            {"droplet", "task"} - ents.kinds()
            if ents.has("number") and not ents.has("pronoun")
            else frozenset()
        )
        if request.elliptic:
            # Known from the conversation, so a candidate, but only as weak support.
            available |= {
                kind
                for kind, last_id in (
                    ("droplet", context.last_droplet_id),
                    ("task", context.last_task_id),
                )
                if last_id is not None
            }
        request.scores = self._index.score(
            words,
            ents,
            available=available,
            strong=strong,
            spoken=spoken,
            content=request.content,
        )
        best = request.best
        if (
            best is not None
            and best.total >= MIN_SCORE
            and self._in_scope(best, words, ents, request.content)
        ):
            request.tool = best.tool
            request.tool = _bulk_twin(request)
        return request

    def _in_scope(
        self,
        best: Score,
        words: Sequence[str],
        ents: Entities,
        content: frozenset[int] = frozenset(),
    ) -> bool:
        """Evidence from nouns alone, among words the planner does not know ("the status of
        my pizza order"), is not a request about the mesh; nor is a write with no target in
        sight among unknown words ("send flowers to my mom")."""
        tool = self._tools.get(best.tool)
        # A filter is what a bulk write acts on ("cancel all the pending builds I guess").
        targets = any(
            ents.has(k)
            for k in ("droplet", "task", "pronoun", "number", "task_status", "task_type")
        )
        if best.named and (tool is None or not tool.writes or targets):
            return True
        if targets and not (tool is not None and tool.writes):
            return True
        unknown = [
            w
            for i, w in enumerate(words)
            if i not in content
            and w.isalnum()
            and not w.isdigit()
            and w not in self._vocabulary
            and w not in FUNCTION_WORDS
            and not w.startswith("\x00")
        ]
        return not unknown

    def _available(
        self, ents: Entities, words: Sequence[str], context: PlanContext
    ) -> frozenset[str]:
        kinds = set(ents.kinds())
        if ents.has("number"):
            kinds |= {"droplet", "task"}
        refers = ents.has("pronoun") or _task_ref(words)
        if refers and context.last_droplet_id is not None:
            kinds.add("droplet")
        if (refers and context.last_task_id is not None) or _task_ref(words):
            kinds.add("task")  # "the status of the task": asked which, when nothing is known
        if _droplet_ref(words):
            kinds.add("droplet")  # "is the droplet healthy?": the last one, or asked which
        return frozenset(kinds)

    def _split(self, parsed: Text, context: PlanContext) -> tuple[list[tuple[int, int]], Entities]:
        """Where one message holds several requests: at a connector followed by a new request
        (a command verb, a question, a different tool's words), or between two task
        descriptions of their own ("a build task for droplet 3 and a deploy task for 5")."""
        words = parsed.words
        cuts: list[int] = []
        # A message's own words are cut only at the end of a sentence ("Tell droplet 10: queue
        # is paused. Then deploy droplet 10"), never at a comma or an "and" inside it.
        whole = extract(parsed, parsed.tokens, self._alias_index(context.aliases))
        content = _content(words, whole)
        objects = {f.first for f in whole.found if f.kind in ("droplet", "task", "pronoun")}
        for i, word in enumerate(words):
            if word == "or" and 0 < i < len(words) - 1:
                if self._either_event(parsed, cuts[-1] + 1 if cuts else 0, i, context):
                    cuts.append(i)  # "if droplet 14 goes down or droplet 16 comes back"
                continue
            if word not in CONNECTORS or i == 0 or i == len(words) - 1:
                continue
            if word in (",", "-") and i not in content and i + 1 in content:
                continue  # "drop droplet 9 a note, build is green": the comma opens the text
            if i in content and word in ("and", ",") and _recipient_then_text(words, i + 1, whole):
                cuts.append(i)  # "... and droplet 20 that the tests failed": a second message
                continue
            if (
                i in content
                and word not in SENTENCE_ENDS
                and not self._command_with_object(words, i, objects)
            ):
                continue
            j = i + 1
            while j < len(words) and words[j] in LEADING_SKIP:
                j += 1
            if j >= len(words):
                continue
            nxt = words[j]
            if nxt.isdigit() or (nxt in DROPLET_NOUNS and j + 1 < len(words)
                                 and words[j + 1].isdigit() and word == ","):  # fmt: skip
                continue  # "droplets 1 and 10", "tasks 4, 7 and 9"
            start = cuts[-1] + 1 if cuts else 0
            if nxt in WATCH_LEADS and self._either_event(parsed, start, i, context):
                cuts.append(i)  # "tell me when droplet 7 is back and also when droplet 3 …"
                continue
            if _bare_command(words, j, self._verb_words):
                continue  # "task 88, cancel": the verb acts on what came before
            if (
                self._index.starts_with_verb(words, j)
                or ((nxt in QUESTION_STARTS or nxt in READ_VERBS) and word != ",")
                or (word != "," and _own_task(words, j) and _own_task(words[start:i], 0))
                or self._different_tools(parsed, start, i - 1, j, context, comma=word == ",")
            ):
                cuts.append(i)
        spans: list[tuple[int, int]] = []
        start = 0
        for cut in cuts:
            if cut > start:
                spans.append((start, cut - 1))
            start = cut + 1
        if start < len(words):
            spans.append((start, len(words) - 1))
        kept = [s for s in spans if any(w not in LEADING_SKIP for w in words[s[0] : s[1] + 1])]
        return kept or [(0, len(words) - 1)], whole

    def _either_event(self, parsed: Text, start: int, i: int, context: PlanContext) -> bool:
        """Two watched conditions joined by "or", each with its own droplet or task."""
        words = parsed.words
        end = next((k for k in range(i + 1, len(words)) if words[k] in CONNECTORS), len(words))
        left = extract(parsed, parsed.tokens[start:i], self._alias_index(context.aliases))
        right = extract(parsed, parsed.tokens[i + 1 : end], self._alias_index(context.aliases))
        ids = ("droplet", "task")
        return (
            left.has("watch_event")
            and right.has("watch_event")
            and any(left.has(k) for k in ids)
            and any(right.has(k) for k in ids)
        )

    def _command_with_object(self, words: Sequence[str], i: int, objects: set[int]) -> bool:
        """Inside a message, "and (then) <verb> <droplet, task or 'it'>" starts a new request
        ("tell droplet 18 the mic is fixed and then watch it"); "and retry is needed" does not."""
        if words[i] not in ("and", "then", "also", "&", "+"):
            return False  # a comma inside a message is the message's own
        j = i + 1
        while j < len(words) and words[j] in ("then", "also", "please"):
            j += 1
        if not (j < len(words) and self._index.starts_with_verb(words, j)):
            return False
        return any(k in objects for k in range(j + 1, min(j + 4, len(words))))

    def _different_tools(
        self,
        parsed: Text,
        left_first: int,
        left_last: int,
        right_first: int,
        context: PlanContext,
        *,
        comma: bool = False,
    ) -> bool:
        if left_last < left_first:
            return False
        end = len(parsed.tokens) - 1
        for k in range(right_first, len(parsed.tokens)):
            if parsed.words[k] in CONNECTORS:
                end = k - 1
                break
        left_ents = extract(
            parsed, parsed.tokens[left_first : left_last + 1], self._alias_index(context.aliases)
        )
        right = self._request(parsed, right_first, end, _after(context, left_ents))
        if (
            right.tool is None
            and right.words[:1] not in FOR_ANOTHER
            and not ONES & set(right.words)
        ):
            # No tool on the right and none of the checks below that do without one: not a
            # different tool, whatever the left is ("..., priority 3"), so it is not scored.
            return False
        left = self._request(parsed, left_first, left_last, context, ents=left_ents)
        same = left.tool is not None and left.tool == right.tool
        if same and comma and right.best is not None and _differ(left, right, ID_KINDS):
            # "registry status, dashboard status": the same question about another droplet.
            return right.best.nouns > 0 or right.best.named
        if same and not comma:
            # "pending tasks for droplet 14 and pending tasks for droplet 18"; "failed deploys
            # and failed builds" and "if it goes down and when it comes back": the same tool
            # twice, each with its own id, filter or event.
            if right.best is not None and right.best.nouns > 0 and _differ(left, right, ID_KINDS):
                return True
            return _differ(left, right, (*STATUS_KINDS, "watch_event"))
        if left.tool is not None and not _named(right):
            if right.words[:1] in FOR_ANOTHER and _differ(left, right, ID_KINDS):
                return True  # "tasks for droplet 3 and for droplet 4": the same for another
            if ONES & set(right.words) and _differ(left, right, STATUS_KINDS):
                return True  # "healthy droplets and the inactive ones": its own filter
        if left.tool is None or right.tool is None or left.tool == right.tool:
            return False
        # After "and", a new id of another kind starts a request of its own ("droplet 14 and
        # task 9"); after a comma it is more often a detail of the same one ("..., for droplet 14").
        if comma and left.best is not None and not left.best.named and left.best.nouns == 0:
            return False  # "for droplet 7, failed tasks": a detail of what follows
        ids = set() if comma else {"droplet", "task"} & right.ents.kinds() - left.ents.kinds()
        return right.best is not None and (right.best.nouns > 0 or right.best.named or bool(ids))

    def _inherit(self, requests: list[_Request], context: PlanContext) -> None:
        """A request without a tool of its own continues the previous one ("which tasks failed
        and which are still pending"), or the previous turn ("what about droplet 14?")."""
        previous: str | None = None
        for n, request in enumerate(requests):
            best = request.best
            named = best is not None and best.named
            amends = _amends(request.words)
            if (
                n == 0
                and len(requests) == 1
                and (amends or not named)
                and _follows_up(request.words)
                and self._may_fit(request.ents)
            ):
                call = self._previous_call(context)
                if call is not None and (
                    self._fits(call.tool, request.ents) or self._takes_number(call, request.ents)
                ):
                    request.tool, request.inherited = call.tool, True
                    if (
                        (NARROWING | ONES) & set(request.words)
                        or _replaces(request.words)
                        or amends
                    ):
                        request.base = dict(call.args)
            if (
                n > 0
                and previous == "send_message"
                and not named
                and _recipient_then_text(request.words, 0, request.ents)
            ):
                request.tool, request.inherited = previous, True  # "... and droplet 20 that ..."
            if (
                n > 0
                and previous is not None
                and not named
                and (ONES & set(request.words) or request.words[:1] in FOR_ANOTHER)
                and self._fits(previous, request.ents)
            ):
                request.tool, request.inherited = previous, True  # "… then the failed ones"
                if request.words[:1] in FOR_ANOTHER:
                    # "failed tasks for droplet 3 and for droplet 4": the same filters.
                    _borrow(request, requests[n - 1], CARRIED_FILTERS)
            if (
                request.tool is None
                and n > 0
                and previous is not None
                and self._fits(previous, request.ents)
            ):
                request.tool, request.inherited = previous, True
            if (
                request.tool is None
                and n == 0
                and len(requests) == 1
                and self._may_fit(request.ents)
            ):
                earlier = self._previous_tool(context)
                if earlier is not None and self._fits(earlier, request.ents):
                    request.tool, request.inherited = earlier, True
            previous = request.tool or previous

    def _takes_number(self, call: ToolCall, ents: Entities) -> bool:
        """ "and 7?", "now 10", "make it 10": a bare number after a request with one number
        of its own (an id or a limit) stands in for that number."""
        if ents.kinds() - {"pronoun"} != {"number"} or len(ents.values("number")) != 1:
            return False
        tool = self._tools.get(call.tool)
        if tool is None:
            return False
        numeric = [
            path
            for path, slot in tool.slots.items()
            if slot.entity in ("droplet", "task", "limit") and _get(call.args, path) is not None
        ]
        return len(numeric) == 1

    def _may_fit(self, ents: Entities) -> bool:
        """Whether any tool can `_fits` or `_takes_number` these entities: when none can, the
        previous request is not planned again (a whole plan) only to be rejected."""
        return bool((ents.kinds() - {"pronoun", "all"}) & self._fitting_kinds)

    def _fits(self, tool_name: str, ents: Entities) -> bool:
        table = self._index.by_tool[tool_name]
        kinds = ents.kinds() - {"pronoun", "all"}
        return bool(kinds & (table.slot_kinds | table.entities | table.needs))

    def _previous_tool(self, context: PlanContext) -> str | None:
        call = self._previous_call(context)
        return call.tool if call is not None else None

    def _previous_call(self, context: PlanContext) -> ToolCall | None:
        """The last request the operator made in this conversation, skipping yes/no replies."""
        for turn in reversed(context.history):
            if turn.role != "user" or answer_of(turn.text) != 0:
                continue
            earlier = self.plan_now(turn.text, PlanContext(aliases=context.aliases))
            if earlier.kind in ("tools", "ask") and earlier.calls:
                return earlier.calls[0]
            return None
        return None

    def _merge_messages(
        self, parsed: Text, requests: list[_Request], context: PlanContext
    ) -> list[_Request]:
        """A message's own text may contain "and ...": keep it whole unless what follows is a
        request named by a verb or a phrase of its own."""
        merged: list[_Request] = []
        for request in requests:
            best = request.best
            if (
                merged
                and merged[-1].tool == "send_message"
                and not (best and best.named)
                and not _recipient_then_text(request.words, 0, request.ents)
            ):
                last = merged[-1]
                merged[-1] = self._request(parsed, last.first, request.last, context)
                merged[-1].tool = "send_message"
                continue
            merged.append(request)
        return merged

    # ---- calls ---------------------------------------------------------------------------

    def _draft(self, parsed: Text, requests: list[_Request], context: PlanContext) -> _Drafted:
        drafted = _Drafted()
        unprioritised: set[int] = set()
        refs = _Refs(context.last_droplet_id, context.last_task_id)
        commanded = any(r.best is not None and r.best.verbs > 0 for r in requests)
        for request in requests:
            if len(requests) > 1 and commanded and _statement(request):
                # "task 44 failed, retry it": said to explain the command, not asked.
                _remember_ents(request.ents, refs)
                continue
            if request.tool is None:
                continue
            tool = self._tools.get(request.tool)
            if tool is None:
                continue
            calls, missing, used = self._fill(tool, parsed, request, refs)
            drafted.used_context = drafted.used_context or used
            valid = []
            for call in calls:
                problems = self._tools.problems(call, partial=True)
                if problems:
                    drafted.problems += [_readable(p) for p in problems]
                else:
                    valid.append(call)
            if not valid:
                continue
            calls = valid
            for call in calls:
                _remember(call, refs)
            if missing:
                if drafted.ask is None:
                    drafted.ask = (calls[0], missing)
                continue
            if not request.ents.has("priority"):
                unprioritised.update(range(len(drafted.calls), len(drafted.calls) + len(calls)))
            drafted.calls += calls
        if drafted.calls:
            drafted.ask = None
        shared = _shared_priority(parsed, requests)
        if shared is not None:
            # "a build for droplet 9 and a verify for droplet 9, both urgent"
            drafted.calls = [
                ToolCall(tool=c.tool, args=_with(c.args, "priority", shared))
                if n in unprioritised and "priority" in c.args
                else c
                for n, c in enumerate(drafted.calls)
            ]
        return drafted

    def _fill(
        self, tool: Tool[Any], parsed: Text, request: _Request, refs: _Refs
    ) -> tuple[list[ToolCall], list[str], bool]:
        """The calls a request makes with `tool`, the required arguments still missing, and
        whether the conversation supplied a value."""
        args: dict[str, Any] = _copy(request.base)
        fan: list[object] = []
        fan_path = tool.fan_out
        said: dict[str, list[Any]] = {}
        used_context = bool(request.base)
        for path, slot in tool.slots.items():
            values, from_context = self._values(tool, path, slot, parsed, request, refs)
            used_context = used_context or from_context
            if not values:
                if slot.default is not None:
                    _put(args, path, slot.default)
                continue
            if slot.entity == "pairs":
                for key, value in values:
                    _put(args, f"{path}.{key}", value)
                continue
            if len(values) > 1 and not fan and _fans_out(tool, path, slot):
                fan, fan_path = values, path
            said[path] = values
            _put(args, path, values[0])
        calls = [ToolCall(tool=tool.name, args=args)]
        if fan and fan_path is not None:
            # "droplet 5 at priority 1, droplet 7 at priority 3": as many values as targets
            # go to them in order.
            paired = {
                path: values
                for path, values in said.items()
                if path != fan_path and len(values) == len(fan)
            }
            calls = []
            for n, value in enumerate(fan[:MAX_CALLS]):
                each = _with(args, fan_path, value)
                for path, values in paired.items():
                    each = _with(each, path, values[n])
                calls.append(ToolCall(tool=tool.name, args=each))
        return calls, tool.missing(args), used_context

    def _values(
        self,
        tool: Tool[Any],
        path: str,
        slot: Slot,
        parsed: Text,
        request: _Request,
        refs: _Refs,
    ) -> tuple[list[Any], bool]:
        ents = request.ents
        kind = slot.entity
        if kind in ("droplet", "task"):
            # In order of mention, and never from a message's own words ("send the registry a
            # note that droplet 40 is being retired": the registry is the recipient).
            values = list(
                dict.fromkeys(
                    f.value
                    for f in sorted(ents.of(kind), key=lambda f: f.first)
                    if f.first not in request.content
                )
            )
            if values:
                return values, False
            needs = kind in tool.cues.needs or path in tool.required()
            bare = ents.values("number")
            if bare and needs and not _other_id(ents, kind):
                return (bare if path == tool.fan_out else bare[:1]), False
            refers = (
                ents.has("pronoun")
                or (kind == "task" and _task_ref(request.words))
                or (kind == "droplet" and _droplet_ref(request.words))
            )
            last = refs.droplet if kind == "droplet" else refs.task
            owner = kind == "droplet" and bool(set(request.words) & OWNER_PRONOUNS)
            if last is not None and ((refers and needs) or owner) and not ents.has("number"):
                return [last], True
            if last is not None and needs and request.elliptic:
                return [last], True  # "status?" right after task 77 was named
            if last is not None and kind == "droplet" and _same_droplet(request.words):
                return [last], True  # "… for the same droplet", also as a filter
            if last is not None and refers and _pronoun_means(kind, tool, ents, refs):
                return [last], True
            return [], False
        if kind == "tasks":
            ids = ents.values("task") or (
                ents.values("number") if tool.name in _ID_LIST_TOOLS else []
            )
            if (
                not ids
                and (ents.has("pronoun") or request.elliptic)
                and refs.task is not None
                and not ents.has("all")
            ):
                return [[refs.task]], True
            return ([list(ids)] if ids else []), False
        if kind == "all":
            return ([True] if ents.has("all") else []), False
        if kind == "limit":
            limits = ents.values("limit")
            if not limits and tool.fan_out is None and not _id_slots(tool):
                limits = [n for n in ents.values("number") if isinstance(n, int) and n <= 500]
            return limits[:1], False
        if kind == "watch_event":
            events = ents.values("watch_event")
            if "failed" in events and "done" in events:
                return ["done"], False  # "fails or finishes": whenever it ends
            return events[:1], False
        if kind == "droplet_status" and _all_question(request.words):
            return [], False  # "are all droplets healthy?": show them all, not a filter
        if kind == "message":
            text = _message(parsed, request)
            return ([text] if text else []), False
        said = _said(parsed, request)
        if kind == "pairs":
            return [(k, v) for k, v in said.items() if k not in PAIR_KEY_ALIASES], False
        if kind == "title":
            title = _title(parsed, request) or said.get("title") or said.get("name")
            return ([title] if title else []), False
        if kind == "description":
            text = said.get("description") or said.get("desc") or said.get("details")
            return ([text] if text else []), False
        if kind == "capability":
            cap = said.get("capability") or said.get("requires") or _capability(request.words)
            return ([cap] if cap else []), False
        if kind == "task_status" and tool.name in _CANCELS and ents.has("task"):
            # "tasks 5, 6 and 8 all cancelled please": the command, not a filter.
            return [v for v in ents.values(kind) if v != "cancelled"], False
        return ents.values(kind), False

    # ---- a reply to a waiting question or proposal ---------------------------------------

    def _pending(self, parsed: Text, pending: PendingCall, context: PlanContext) -> Plan | None:
        tool = self._tools.get(pending.call.tool)
        if tool is None:
            return None
        if not parsed.tokens:
            if not pending.missing:
                return None
            # "hmm", "uh": nothing said yet; the question stands.
            again = ToolCall(tool=tool.name, args=_copy(pending.call.args))
            return self._ask(again, tool.missing(again.args), Features(pending=True))
        whole = self._request(parsed, 0, len(parsed.tokens) - 1, context, spoken=parsed.spoken)
        own = whole.best
        message_missing = "message" in pending.missing
        # A new request of its own ("forget it, show me the alerts") is planned as such; while
        # a message's text is awaited, a statement is that text ("the hotfix is deployed").
        # "only the builds", "just the deploys" while a proposal waits: it narrows that one.
        narrows = not pending.missing and bool({*parsed.spoken[:2]} & {"only", "just"})
        if (
            not (message_missing and _states(whole.words))
            and not (narrows and own is not None and not own.named)
            and own is not None
            and own.tool != tool.name
            and own.total >= 3
            and (own.named or own.nouns > 0)
        ):
            return None
        if pending.missing and answer_of(parsed.original) == 1:
            # "ok" or "sure" while a question is open answers nothing: the same question again.
            again = ToolCall(tool=tool.name, args=_copy(pending.call.args))
            return self._ask(again, tool.missing(again.args), Features(pending=True))
        refs = _Refs(context.last_droplet_id, context.last_task_id)
        args = _copy(pending.call.args)
        changed = False
        if message_missing and _only_a_droplet(whole) and len(pending.missing) > 1:
            message_missing = False  # "droplet 5" answers "to whom?", not "what should it say?"
        for path, slot in tool.slots.items():
            if slot.entity == "message" and message_missing:
                text = _whole_message(parsed)
                if text:
                    _put(args, path, text)
                    changed = True
                continue
            if message_missing and path not in pending.missing:
                continue  # the reply is the message: its words fill nothing else
            if slot.entity == "message" and not set(whole.words) & {"message", "say", "text"}:
                continue
            values, _ = self._values(tool, path, slot, parsed, whole, refs)
            if not values and path in pending.missing and slot.entity in ("droplet", "task"):
                values = whole.ents.values("number")[:1]
            if not values and slot.entity == "message" and "message" in whole.words:
                text = _after_to(parsed)
                values = [text] if text else []
            if not values or slot.entity == "pairs":
                continue
            _put(args, path, values[0])
            changed = True
        if not changed:
            if pending.missing and not (own is not None and own.named):
                call = ToolCall(tool=tool.name, args=args)
                return self._ask(call, tool.missing(args), Features(pending=True))
            return None
        _drop_stale_title(tool, pending.call.args, args)
        call = ToolCall(tool=tool.name, args=args)
        problems = self._tools.problems(call, partial=True)
        if problems:
            # "priority twelve" while a task waits: say what is wrong; the proposal stays.
            text = " ".join(dict.fromkeys(_readable(p) for p in problems))
            return self._answer(text, "invalid", Features(pending=True))
        missing = tool.missing(args)
        features = Features(pending=True, filled=True, top=own.total if own else 0.0)
        if missing:
            return self._ask(call, missing, features)
        return self._tools_plan([call], features)

    # ---- confidence ----------------------------------------------------------------------

    def _features(self, parsed: Text, requests: list[_Request], drafted: _Drafted) -> Features:
        known = [t for t in parsed.tokens if not t.text.startswith("\x00")]
        recognised = sum(
            1
            for t in known
            if t.num is not None
            or t.text in self._vocabulary
            or t.text in FUNCTION_WORDS
            or not t.text.isalpha()
        )
        chosen = [r for r in requests if r.tool and r.best]
        tops = [r.best.total for r in chosen if r.best]
        margins = [
            r.scores[0].total - (r.scores[1].total if len(r.scores) > 1 else 0.0) for r in chosen
        ]
        return Features(
            top=min(tops, default=0.0),
            margin=min(margins, default=0.0),
            named=bool(chosen) and all(r.best.named for r in chosen if r.best),
            known_share=recognised / len(known) if known else 0.0,
            typos=parsed.typos,
            fillers=parsed.fillers,
            requests=len(requests),
            inherited=any(r.inherited for r in requests),
            used_context=drafted.used_context,
            asked=drafted.ask is not None,
            calls=len(drafted.calls),
        )


# ---- helpers ---------------------------------------------------------------------------------


# A tool on one task, and its twin on the tasks a filter selects.
_BULK_TWINS = {"cancel_task": "cancel_tasks"}
_CANCELS = frozenset({"cancel_task", "cancel_tasks"})


SHARED_KINDS = ("droplet", "task", "pronoun", "priority")
ALL_OF_THEM = frozenset({"both", "each", "all"})


def _shared_priority(parsed: Text, requests: Sequence[_Request]) -> object | None:
    """The priority said of every task at once ("…, both urgent", "all at priority 2")."""
    if len(requests) < 2:
        return None
    for request in requests:
        for found in request.ents.of("priority"):
            before = request.words[max(0, found.first - 3) : found.first]
            if ALL_OF_THEM & set(before):
                return found.value
    return None


def _share_objects(parsed: Text, requests: list[_Request]) -> None:
    """ "verify and deploy droplet 16": a bare command joined by "and" to the next one acts
    on the same object (and at the same priority)."""
    for left, right in itertools.pairwise(requests):
        if (
            left.tool is None
            or right.tool is None
            or right.first != left.last + 2
            or parsed.words[left.last + 1] not in ("and", "&", "+", "plus")
            or len(left.words) > 3
            or any(left.ents.has(k) for k in ("droplet", "task", "pronoun", "number"))
            or not _named(left)
        ):
            continue
        _borrow(left, right, SHARED_KINDS)


ID_KINDS = ("droplet", "task")
STATUS_KINDS = ("task_type", "task_status", "droplet_status")


def _differ(left: _Request, right: _Request, kinds: Sequence[str]) -> bool:
    """Both name a value of one of `kinds`, and not the same ones."""
    for kind in kinds:
        mine, theirs = left.ents.values(kind), right.ents.values(kind)
        if mine and theirs and not set(mine) & set(theirs):
            return True
    return False


def _borrow(into: _Request, source: _Request, kinds: Collection[str]) -> None:
    """What `source` names of `kinds` and `into` does not, as if `into` had said it (after its
    own words, so its own values come first)."""
    at = len(into.words)
    for found in source.ents.found:
        if found.kind in kinds and not into.ents.has(found.kind):
            into.ents.found.append(Found(found.kind, found.value, at, at, "borrowed"))


def _said(parsed: Text, request: _Request) -> dict[str, str]:
    """The request's "key: value" pairs, read once for all of a tool's slots."""
    if request.said is None:
        cut = parsed.cut(request.first, request.last)
        request.said = {k.lower(): v for k, v in pairs(cut)}
    return request.said


def _read_verb(request: _Request) -> bool:
    return any(w in READ_VERBS for w in request.words)


def _amends_priority(request: _Request) -> bool:
    """ "… and make it high priority": only a priority, said of what came before."""
    words = [w for w in request.words if w not in ("and", "then", "also", "please", "uh", "um")]
    return (
        request.ents.has("priority")
        and not any(request.ents.has(k) for k in ("droplet", "task", "task_type", "number"))
        and tuple(words[:2])
        in (("make", "it"), ("make", "that"), ("set", "it"), ("at", "priority"))
    )


def _fans_out(tool: Tool[Any], path: str, slot: Slot) -> bool:
    """One call per value: the tool's own fan-out argument, or, for a tool without one, an id
    said more than once ("watch task 50 and task 51", "tell droplets 5 and 7 that …")."""
    if tool.fan_out is not None:
        return path == tool.fan_out
    return slot.entity in ("droplet", "task")


def _named(request: _Request) -> bool:
    best = request.best
    return best is not None and best.named


def _bulk_twin(request: _Request) -> str | None:
    """ "cancel pending for the registry", "drop 14's pending": a state filter and no task in
    sight (no id, no pronoun, no bare number) selects the tasks in that state, not one task."""
    twin = _BULK_TWINS.get(request.tool or "")
    ents = request.ents
    if (
        twin is None
        or not ents.has("task_status")
        or any(ents.has(k) for k in ("task", "tasks", "pronoun", "number"))
        or _task_ref(request.words)
        or any(w in ("task", "job", "one") for w in request.words)
        or not any(s.tool == twin for s in request.scores)
    ):
        return request.tool
    return twin


def _content(words: Sequence[str], ents: Entities | None = None) -> frozenset[int]:
    """Positions of a message's own words, which name no tool: after a colon that follows a
    messaging word ("msg droplet 5: ..."); in a request that starts with a messaging verb,
    after "that" / "saying", or after the recipient and its lead-in ("let droplet 9 know ...")."""
    out: set[int] = set()
    if ":" in words:
        colon = words.index(":")
        if any(w in MESSAGE_VERBS or w in MESSAGE_NOUNS for w in words[:colon]):
            out |= set(range(colon + 1, len(words)))
    at = next((i for i, w in enumerate(words) if w not in ("hey", "and", "also")), len(words))
    lead = words[at] if at < len(words) else ""
    said_to_me = at + 1 < len(words) and words[at + 1] in ("me", "us")
    if lead in MESSAGE_VERBS and not said_to_me:  # "tell me what droplet 14 is working on"
        for i, word in enumerate(words):
            if word in ("that", "saying") and i > 1:
                out |= set(range(i + 1, len(words)))
                break
        recipients = sorted(
            (f for f in (ents.of("droplet") if ents else []) if f.first > 0),
            key=lambda f: f.first,
        )
        if recipients:
            after = recipients[0].last + 1
            if after < len(words) and words[after] in ("droplet", "service", "node"):
                after += 1
            moved = True
            while moved and after < len(words):
                moved = False
                for lead_in in (*MESSAGE_LEADS, ("know",), ("to",)):
                    if tuple(words[after : after + len(lead_in)]) == lead_in:
                        after += len(lead_in)
                        moved = True
                        break
            if after < len(words) and words[after].startswith("\x00quote"):
                out.add(after)  # "send droplet 5 'prep for patch' and …": the quote only
            elif after < len(words) - 1:
                out |= set(range(after, len(words)))
    return frozenset(out)


COPULAS = frozenset({"is", "are", "was", "were", "went", "got", "seems", "looks", "has", "have"})


def _statement(request: _Request) -> bool:
    """A clause that states rather than asks or commands: "task 44 failed", "both tasks are
    stale". No verb or phrase names a tool, no question is asked, and a state is said of it."""
    best = request.best
    words = request.words
    if not words or (best is not None and best.named) or words[0] in QUESTION_STARTS:
        return False
    if "?" in words:
        return False
    stated = any(w in COPULAS for w in words[1:])
    ids = [f.last for f in request.ents.found if f.kind in ("task", "droplet")]
    said_of = any(
        i + 1 < len(words) and (words[i + 1] in TASK_STATUS_WORDS or words[i + 1] in COPULAS)
        for i in ids
    )
    return stated or said_of


DISMISSALS: tuple[tuple[str, ...], ...] = tuple(
    tuple(d.split())
    for d in ("scratch that", "never mind", "nevermind", "forget it", "forget that",
              "forget about it", "cancel that", "drop that", "drop it", "skip that", "skip it",
              "leave it", "ignore that")
)  # fmt: skip


def _after_dismissal(parsed: Text) -> str | None:
    """The rest of a reply that first drops what was waiting ("never mind, list the alerts"),
    or None when it does not start so or says nothing more."""
    words = parsed.words
    for dismissal in sorted(DISMISSALS, key=len, reverse=True):
        n = len(dismissal)
        if tuple(words[:n]) != dismissal:
            continue
        j = n
        while j < len(words) and words[j] in (",", ".", ";", "-", "!", "and", "then", "instead"):
            j += 1
        if j >= len(words):
            return None  # a bare "never mind": the conversation answers it
        return parsed.unmarked(parsed.original[parsed.tokens[j].start :])
    return None


MESSAGE_TEXT_LEADS = frozenset({"that", "saying", ":"})


def _recipient_then_text(words: Sequence[str], start: int, ents: Entities) -> bool:
    """From `start`: another recipient and the text for it ("tell droplet 7 that the build
    passed and droplet 20 that the tests failed"): a second message, not the first one's text."""
    j = start
    while j < len(words) and words[j] in ("and", "also", "then", "the", "to", "tell"):
        j += 1
    for found in ents.of("droplet"):
        if start <= found.first <= j and found.last + 1 < len(words):
            after = found.last + 1
            if words[after] in ("droplet", "service", "node") and after + 1 < len(words):
                after += 1
            return words[after] in MESSAGE_TEXT_LEADS
    return False


def _states(words: Sequence[str]) -> bool:
    """Said as a statement ("queue is drained, go ahead", "the build has finished"), not asked
    and not commanded: a copula after the subject, no question."""
    return (
        bool(words)
        and "?" not in words
        and words[0] not in QUESTION_STARTS
        and any(w in COPULAS for w in words[1:])
    )


def _remember_ents(ents: Entities, refs: _Refs) -> None:
    droplets = [f.value for f in sorted(ents.of("droplet"), key=lambda f: f.first)]
    tasks = [f.value for f in sorted(ents.of("task"), key=lambda f: f.first)]
    if droplets and isinstance(droplets[0], int):
        refs.droplet = droplets[0]
    if tasks and isinstance(tasks[0], int):
        refs.task = tasks[0]


def _after(context: PlanContext, ents: Entities) -> PlanContext:
    """The context the next request of the same message reads: "it" is what this one named
    ("is droplet 5 healthy? also list its capabilities")."""
    droplets = [f.value for f in sorted(ents.of("droplet"), key=lambda f: f.first)]
    tasks = [f.value for f in sorted(ents.of("task"), key=lambda f: f.first)]
    update: dict[str, object] = {}
    if droplets and isinstance(droplets[0], int):
        update["last_droplet_id"] = droplets[0]
    if tasks and isinstance(tasks[0], int):
        update["last_task_id"] = tasks[0]
    return context.model_copy(update=update) if update else context


def _bare_command(words: Sequence[str], j: int, verbs: frozenset[str]) -> bool:
    """A verb with no object of its own ends the message: "task 88, cancel". Not "..., retry
    them" ("them" refers back: a request of its own) nor "..., show alerts" (an object)."""
    rest = words[j:]
    return 0 < len(rest) <= 2 and all(w in verbs or w in ("now", "too", "pls") for w in rest)


def _id_slots(tool: Tool[Any]) -> bool:
    return any(slot.entity in ("droplet", "task", "tasks") for slot in tool.slots.values())


def _pronoun_means(kind: str, tool: Tool[Any], ents: Entities, refs: _Refs) -> bool:
    """Whether "it" names the droplet or the task for a tool that takes either (a watch):
    the one the conversation knows; when it knows both, a task for task events."""
    kinds = {s.entity for s in tool.slots.values()}
    if not {"droplet", "task"} <= kinds:
        return False
    if refs.droplet is None or refs.task is None:
        return True
    task_words = set(ents.values("watch_event")) & {"done", "failed", "change"}
    return (kind == "task") == bool(task_words or ents.has("task_status"))


def _readable(problem: str) -> str:
    """A validation problem as a sentence the operator can act on."""
    where, _, what = problem.partition(":")
    name = where.rsplit(".", 1)[-1].replace("_", " ")
    if where.endswith("priority"):
        return "Priority must be between 1 (the highest) and 10 (the lowest)."
    if "less than or equal" in what or "greater than or equal" in what:
        bound = what.rsplit(" ", 1)[-1]
        relation = "at most" if "less" in what else "at least"
        return f"The {name} must be {relation} {bound}."
    if "should be" in what:
        return f"The {name} is not valid:{what}."
    return f"The {name} is not valid."


def _all_question(words: Sequence[str]) -> bool:
    return bool(words) and words[0] in ("are", "is", "r") and "all" in words


def _follows_up(words: Sequence[str]) -> bool:
    return any(tuple(words[: len(f)]) == f for f in FOLLOW_UPS) or len(words) <= 3


def _amends(words: Sequence[str]) -> bool:
    """ "make it 10", "make that 7": the previous request with its number changed."""
    rest = [w for w in words[2:] if w not in ("?", ".", "!", "instead")]
    return (
        tuple(words[:2]) in (("make", "it"), ("make", "that"))
        and len(rest) == 1
        and (rest[0].isdigit())
    )


def _get(args: Mapping[str, Any], path: str) -> Any:
    value: Any = args
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _replaces(words: Sequence[str]) -> bool:
    """ "and for droplet 16?", "what about droplet 9?", "same for pending": the previous
    request again with only what is said changed (its other filters kept)."""
    return any(tuple(words[: len(f)]) == f for f in FOLLOW_UPS if len(f) > 1)


def _task_ref(words: Sequence[str]) -> bool:
    """ "the task", "that task", "my last task", "a task's status": a task the conversation
    knows, or one to ask about."""
    for i, word in enumerate(words):
        if word in ("task", "job") and i >= 1:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if words[i - 1] in TASK_REFS and not nxt.isdigit():
                return True
            if words[i - 1] == "a" and nxt == "'s":
                return True
    return False


def _only_a_droplet(request: _Request) -> bool:
    """The whole reply names a droplet and says nothing else ("droplet 5", "to the deck")."""
    if not request.ents.has("droplet"):
        return False
    return all(
        i in request.ents.used or w in ("to", "for", "the", "droplet", "please", "?", ".", "!")
        for i, w in enumerate(request.words)
    )


def _same_droplet(words: Sequence[str]) -> bool:
    """ "the same droplet", "that droplet": the one the conversation named, said plainly."""
    return any(
        word in ("droplet", "service", "node") and words[i - 1] in ("same", "that", "this", "said")
        for i, word in enumerate(words)
        if i >= 1
    )


def _droplet_ref(words: Sequence[str]) -> bool:
    """ "the droplet", "that droplet", "the same droplet": one droplet, not named."""
    for i, word in enumerate(words):
        if word in ("droplet", "service", "node") and i >= 1 and words[i - 1] in DROPLET_REFS:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if not nxt.isdigit() and nxt not in ("named", "called", "with", "that", "which"):
                return True
    return False


def _own_task(words: Sequence[str], start: int) -> bool:
    """Words from `start` describe a task of their own: a task type and a target."""
    tail = words[start:]
    has_type = any(w in TASK_TYPE_WORDS and not TASK_TYPE_WORDS[w][1] for w in tail)
    has_target = any(w in DROPLET_NOUNS for w in tail)
    return has_type and has_target


def _other_id(ents: Entities, kind: str) -> bool:
    other = "task" if kind == "droplet" else "droplet"
    return ents.has(other)


def _remember(call: ToolCall, refs: _Refs) -> None:
    for key in ("droplet_id", "target_droplet_id", "assigned_droplet_id"):
        value = call.args.get(key)
        if isinstance(value, int):
            refs.droplet = value
    payload = call.args.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("target_droplet_id"), int):
        refs.droplet = payload["target_droplet_id"]
    if isinstance(call.args.get("task_id"), int):
        refs.task = call.args["task_id"]


def _put(args: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = args
    for part in parts[:-1]:
        nested = target.get(part)
        if not isinstance(nested, dict):
            nested = {}
            target[part] = nested
        target = nested
    target[parts[-1]] = value


def _copy(args: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in args.items()}


def _with(args: Mapping[str, Any], path: str, value: object) -> dict[str, Any]:
    copy = _copy(args)
    _put(copy, path, value)
    return copy


def _drop_stale_title(tool: Tool[Any], before: Mapping[str, Any], after: dict[str, Any]) -> None:
    """A title made from the old type and target goes when either changes ("actually for
    droplet 16"); the tool makes a new one. A title the operator chose stays."""
    title = after.get("title")
    if not isinstance(title, str) or title != before.get("title"):
        return
    old_payload = before.get("payload") if isinstance(before.get("payload"), dict) else {}
    new_payload = after.get("payload") if isinstance(after.get("payload"), dict) else {}
    assert isinstance(old_payload, dict) and isinstance(new_payload, dict)
    changed = before.get("task_type") != after.get("task_type") or old_payload.get(
        "target_droplet_id"
    ) != new_payload.get("target_droplet_id")
    target = old_payload.get("target_droplet_id")
    generated = f"droplet {target}" in title and str(before.get("task_type", ""))[:4].lower() in (
        title.lower()
    )
    if changed and (generated or title.lower().startswith("custom task")):
        del after["title"]


def _message(parsed: Text, request: _Request) -> str | None:
    """A message's text, cut from the original: after the recipient and any lead-in
    ("saying", "that", ":"), or before "to <recipient>" ("say hello to droplet 14")."""
    tokens = parsed.tokens[request.first : request.last + 1]
    words = [t.text for t in tokens]
    for word in words:
        if word.startswith("\x00quote"):
            return parsed.quotes[int(word[6:])]
    # A recipient borrowed from a sibling request stands after this request's own words
    # (`_borrow`): nothing of the message can follow it here.
    targets = sorted(
        (
            f
            for f in request.ents.found
            if f.kind in ("droplet", "number", "pronoun")
            and f.first not in request.content
            and f.last < len(words)
        ),
        key=lambda f: f.first,
    )
    if not targets:
        for i, word in enumerate(words):
            if word in (":", "saying") and i + 1 < len(words):
                return _clean_message(parsed.original[tokens[i].end : tokens[-1].end], parsed)
        return None
    target = targets[0]
    if target.last + 1 < len(words) and words[target.last + 1] in ("droplet", "service", "node"):
        target = Found(target.kind, target.value, target.first, target.last + 1)  # "that droplet"
    colon = next((i for i in range(target.last + 1, len(words)) if words[i] == ":"), None)
    if colon is not None and colon + 1 < len(words):
        # "shoot droplet 5 a quick msg: u up?": what follows a colon is the message.
        tail_end = (
            len(parsed.original) if request.last == len(parsed.tokens) - 1 else tokens[-1].end
        )
        return _clean_message(parsed.original[tokens[colon].end : tail_end], parsed)
    start = target.last + 1
    while start < len(words):
        for lead in MESSAGE_LEADS:
            if tuple(words[start : start + len(lead)]) == lead:
                start += len(lead)
                break
        else:
            break
    begin = tokens[start - 1].end if start > 0 else tokens[0].start
    tail_end = len(parsed.original) if request.last == len(parsed.tokens) - 1 else tokens[-1].end
    tail = _clean_message(parsed.original[begin:tail_end], parsed)
    if tail:
        return tail
    # "say hello to droplet 14": the original text between the verb and "to <recipient>",
    # fillers included ("say thanks to the voice droplet").
    end = target.first - 1
    while end >= 0 and words[end] in ("to", "for", "at", "the"):
        end -= 1
    verb = next((i for i in range(end, -1, -1) if words[i] in MESSAGE_VERBS), None)
    if verb is None or end + 1 >= len(tokens):
        return None
    between = parsed.original[tokens[verb].end : tokens[end + 1].start].strip()
    for article in ("a ", "the "):
        if between.lower().startswith(article):
            between = between[len(article) :]
    return _clean_message(between, parsed) if between else None


def _clean_message(text: str, parsed: Text) -> str | None:
    for i, quote in enumerate(parsed.quotes):
        text = text.replace(f"\x00quote{i}", quote)
    for i, url in enumerate(parsed.urls):
        text = text.replace(f"\x00url{i}", url)
    text = text.strip().lstrip(":,-").rstrip(",;").strip().strip("\"'“”").strip()
    for tail in (" please", " thanks", " thank you", " for me"):
        if text.lower().endswith(tail):
            text = text[: -len(tail)].rstrip(" ,")
    return text or None


def _whole_message(parsed: Text) -> str | None:
    """A reply that is the message itself, minus a leading "tell them" / "say"."""
    text = parsed.original.strip()
    lowered = text.lower()
    for lead in ("tell them that ", "tell it that ", "tell them ", "tell it ", "say that ",
                 "say ", "saying ", "the message is ", "message: ", "that "):  # fmt: skip
        if lowered.startswith(lead):
            text = text[len(lead) :]
            break
    return _clean_message(text, parsed)


def _after_to(parsed: Text) -> str | None:
    """ "change the message to: good morning all" -> "good morning all"."""
    lowered = parsed.original.lower()
    for marker in (" to: ", " to:", " to ", ": "):
        at = lowered.find(marker)
        if at >= 0:
            return _clean_message(parsed.original[at + len(marker) :], parsed)
    return None


TITLE_MARKS = frozenset({"titled", "entitled", "called", "named"})
TITLE_VERBS = frozenset({"title", "call", "name", "rename", "retitle"})
TITLE_ENDS = frozenset(
    {",", "for", "with", "on", "at", "priority", "and", "code", "spec", "to", ";", "."}
)


def _title_start(words: Sequence[str], i: int) -> int | None:
    """Where a title starts after word i: "titled X", "title it X", "rename it to X"."""
    if words[i] in TITLE_MARKS:
        return i + 1 if i + 1 < len(words) else None
    if words[i] in TITLE_VERBS and words[i + 1 : i + 2] in (["it"], ["this"], ["that"]):
        start = i + 2
        if start < len(words) and words[start] in ("to", "as"):
            start += 1
        if start < len(words) and words[start] not in ("off", "quits", "a", "done"):
            return start  # not "call it off"
    return None


def _title(parsed: Text, request: _Request) -> str | None:
    words = request.words
    tokens = parsed.tokens[request.first : request.last + 1]
    for i in range(len(words)):
        start = _title_start(words, i)
        if start is None:
            continue
        if words[start].startswith("\x00quote"):
            return parsed.quotes[int(words[start][6:])]
        end = start
        while end + 1 < len(words) and words[end + 1] not in TITLE_ENDS:
            end += 1
        text = parsed.original[tokens[start].start : tokens[end].end].strip()
        return text or None
    return None


CAPABILITY_LEADS = frozenset(
    {"requiring", "requires", "require", "needs", "need", "needing", "with", "the"}
)


def _capability(words: Sequence[str]) -> str | None:
    """ "requiring capability gpu", "that requires the gpu capability"."""
    for i, word in enumerate(words):
        if word not in ("capability", "cap"):
            continue
        if 1 <= i < len(words) - 1 and words[i + 1].isalpha() and words[i - 1] in CAPABILITY_LEADS:
            return words[i + 1]
        if (
            i >= 2
            and words[i - 1].isalpha()
            and words[i - 1] not in CAPABILITY_LEADS
            and words[i - 2] in CAPABILITY_LEADS
        ):
            return words[i - 1]
    return None
