"""The offline planner (PLANNER=rules, the default): no model, no key, every turn.

It reads the tools' cues and slots; it knows no tool by name except through that data, so a new
tool is recognised by declaring its cues. What it is unsure of it says with a low confidence,
calibrated on the dev split, so a configured model is consulted exactly when it helps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.conversation.confirmation import answer_of
from app.conversation.understanding import safety
from app.conversation.understanding.confidence import Features, calibrated
from app.conversation.understanding.cues import MIN_SCORE, CueIndex, Score
from app.conversation.understanding.entities import (
    DROPLET_NOUNS,
    DROPLET_STATUS_WORDS,
    PAIR_KEY_ALIASES,
    PRIORITY_WORDS,
    TASK_NOUNS,
    TASK_STATUS_WORDS,
    TASK_TYPE_WORDS,
    Entities,
    Found,
    extract,
    pairs,
)
from app.conversation.understanding.text import FUNCTION_WORDS, Text, tokenize
from app.domain.plan import PendingCall, Plan, PlanContext, ToolCall
from app.tools.base import Slot, Tool
from app.tools.registry import ToolRegistry

MAX_CALLS = 10
""""check droplets 1 to 40" should not fan out into forty calls."""

CONNECTORS = frozenset({"and", "then", "also", "plus", ";", "after", "afterwards", "&", ","})
LEADING_SKIP = frozenset(
    {"and", "then", "also", "after", "that", "afterwards", "plus", ",", ";", "the", "a", "an",
     "my", "our", "all"}
)  # fmt: skip
QUESTION_STARTS = frozenset(
    {"what", "which", "how", "is", "are", "any", "who", "where", "did", "does", "do", "has",
     "have", "was", "were", "can", "could", "will", "why"}
)  # fmt: skip
FOLLOW_UPS: tuple[tuple[str, ...], ...] = (
    ("and", "what", "about"), ("what", "about"), ("how", "about"), ("and", "for"),
    ("same", "for"), ("same", "with"), ("same", "thing", "for"), ("now", "for"), ("and",),
    ("also",), ("what", "of"), ("or",), ("then",), ("now",),
)  # fmt: skip
MESSAGE_LEADS: tuple[tuple[str, ...], ...] = (
    ("letting", "it", "know", "that"), ("letting", "them", "know", "that"),
    ("and", "let", "it", "know", "that"), ("to", "let", "it", "know", "that"),
    ("telling", "it", "that"), ("telling", "them", "that"), ("telling", "it"),
    ("with", "the", "message"), ("with", "a", "message"), ("with", "message"),
    ("the", "message"), ("a", "message"), ("a", "quick", "message"),
    ("saying", "that"), ("saying",), ("that",), ("know", "that"), ("know",), ("with",),
    (":",), ("-",), (",",), ("to",), ("a", "note"), ("note",), ("message",), ("and", "say"),
    ("and", "tell", "it"), ("the", "following"), ("a", "heads", "up", "that"),
    ("a", "heads", "up"), ("heads", "up"), ("about",),
)  # fmt: skip
_ID_LIST_TOOLS = frozenset({"retry_tasks", "cancel_tasks"})
OWNER_PRONOUNS = frozenset({"its", "it", "their", "they"})
TASK_REFS = frozenset({"that", "this", "the", "my", "our", "same", "last", "latest", "previous"})
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

    def __init__(self, tools: ToolRegistry) -> None:
        self._tools = tools
        self._index = CueIndex(tools)
        entity_words = {
            *TASK_STATUS_WORDS,
            *DROPLET_STATUS_WORDS,
            *TASK_TYPE_WORDS,
            *PRIORITY_WORDS,
            *DROPLET_NOUNS,
            *TASK_NOUNS,
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
        }
        lead_words = {w for lead in MESSAGE_LEADS for w in lead} | MESSAGE_VERBS
        self._vocabulary = frozenset(self._index.vocabulary | entity_words | lead_words)

    async def plan(self, text: str, context: PlanContext) -> Plan:
        return self.plan_now(text, context)

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
            return Plan(
                kind="ask",
                intent=call.tool,
                calls=[call],
                missing=missing,
                confidence=calibrated(features),
                planner=self.name,
            )
        if not drafted.calls and drafted.problems:
            return self._answer(" ".join(dict.fromkeys(drafted.problems)), "invalid", features)
        if not drafted.calls:
            return self._answer(safety.OUT_OF_SCOPE, "unknown", features)
        return self._tools_plan(drafted.calls, features)

    def _tools_plan(self, calls: list[ToolCall], features: Features) -> Plan:
        notes = [f"calls_truncated:{len(calls)}"] if len(calls) > MAX_CALLS else []
        calls = calls[:MAX_CALLS]
        intent = calls[0].tool if len({c.tool for c in calls}) == 1 else "multi"
        return Plan(
            kind="tools",
            intent=intent,
            calls=calls,
            confidence=calibrated(features),
            planner=self.name,
            notes=notes,
        )

    def _answer(self, text: str, intent: str, features: Features) -> Plan:
        return Plan(
            kind="answer",
            intent=intent,
            answer=text,
            confidence=calibrated(features),
            planner=self.name,
        )

    def _has_request(self, parsed: Text, context: PlanContext) -> bool:
        ents = extract(parsed, parsed.tokens, context.aliases)
        if ents.has("droplet") or ents.has("task"):
            return True
        scores = self._index.score(parsed.words, ents, available=frozenset(ents.kinds()))
        return bool(scores) and scores[0].named

    # ---- requests ------------------------------------------------------------------------

    def _requests(self, parsed: Text, context: PlanContext) -> list[_Request]:
        single = len(self._split(parsed, context)) == 1
        requests = [
            self._request(parsed, first, last, context, spoken=parsed.spoken if single else ())
            for first, last in self._split(parsed, context)
        ]
        self._inherit(requests, context)
        return self._merge_messages(parsed, requests, context)

    def _request(
        self,
        parsed: Text,
        first: int,
        last: int,
        context: PlanContext,
        *,
        spoken: Sequence[str] = (),
    ) -> _Request:
        tokens = parsed.tokens[first : last + 1]
        ents = extract(parsed, tokens, context.aliases)
        words = [t.text for t in tokens]
        request = _Request(first, last, ents, words, content=_content(words, ents))
        if request.content or any(w.startswith("\x00quote") for w in words):
            ents.found.append(Found("message", True, first, last))
        available = self._available(ents, words, context)
        request.scores = self._index.score(
            words,
            ents,
            available=available,
            strong=available
            - (
                {"droplet", "task"} - ents.kinds()
                if ents.has("number") and not ents.has("pronoun")
                else frozenset()
            ),
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
        targets = any(ents.has(k) for k in ("droplet", "task", "pronoun", "number"))
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
        return frozenset(kinds)

    def _split(self, parsed: Text, context: PlanContext) -> list[tuple[int, int]]:
        """Where one message holds several requests: at a connector followed by a new request
        (a command verb, a question, a different tool's words), or between two task
        descriptions of their own ("a build task for droplet 3 and a deploy task for 5")."""
        words = parsed.words
        cuts: list[int] = []
        colon = next((i for i, w in enumerate(words) if w == ":"), len(words))
        for i, word in enumerate(words):
            if word not in CONNECTORS or i == 0 or i > colon:
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
            if (
                self._index.starts_with_verb(words, j)
                or (nxt in QUESTION_STARTS and word != ",")
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
        return [s for s in spans if any(w not in LEADING_SKIP for w in words[s[0] : s[1] + 1])] or [
            (0, len(words) - 1)
        ]

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
        left = self._request(parsed, left_first, left_last, context)
        right = self._request(parsed, right_first, end, context)
        if left.tool is None or right.tool is None or left.tool == right.tool:
            return False
        # After "and", a new id of another kind starts a request of its own ("droplet 14 and
        # task 9"); after a comma it is more often a detail of the same one ("..., for droplet 14").
        ids = set() if comma else {"droplet", "task"} & right.ents.kinds() - left.ents.kinds()
        return right.best is not None and (right.best.nouns > 0 or right.best.named or bool(ids))

    def _inherit(self, requests: list[_Request], context: PlanContext) -> None:
        """A request without a tool of its own continues the previous one ("which tasks failed
        and which are still pending"), or the previous turn ("what about droplet 14?")."""
        previous: str | None = None
        for n, request in enumerate(requests):
            best = request.best
            named = best is not None and best.named
            if n == 0 and len(requests) == 1 and not named and _follows_up(request.words):
                earlier = self._previous_tool(context)
                if earlier is not None and self._fits(earlier, request.ents):
                    request.tool, request.inherited = earlier, True
            if (
                request.tool is None
                and n > 0
                and previous is not None
                and self._fits(previous, request.ents)
            ):
                request.tool, request.inherited = previous, True
            if request.tool is None and n == 0 and len(requests) == 1:
                earlier = self._previous_tool(context)
                if earlier is not None and self._fits(earlier, request.ents):
                    request.tool, request.inherited = earlier, True
            previous = request.tool or previous

    def _fits(self, tool_name: str, ents: Entities) -> bool:
        table = self._index.by_tool[tool_name]
        kinds = ents.kinds() - {"pronoun", "all"}
        return bool(kinds & (table.slot_kinds | table.entities | table.needs))

    def _previous_tool(self, context: PlanContext) -> str | None:
        for turn in reversed(context.history):
            if turn.role != "user":
                continue
            earlier = self.plan_now(turn.text, PlanContext(aliases=context.aliases))
            if earlier.kind in ("tools", "ask") and earlier.calls:
                return earlier.calls[0].tool
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
            if merged and merged[-1].tool == "send_message" and not (best and best.named):
                last = merged[-1]
                merged[-1] = self._request(parsed, last.first, request.last, context)
                merged[-1].tool = "send_message"
                continue
            merged.append(request)
        return merged

    # ---- calls ---------------------------------------------------------------------------

    def _draft(self, parsed: Text, requests: list[_Request], context: PlanContext) -> _Drafted:
        drafted = _Drafted()
        refs = _Refs(context.last_droplet_id, context.last_task_id)
        for request in requests:
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
            drafted.calls += calls
        if drafted.calls:
            drafted.ask = None
        return drafted

    def _fill(
        self, tool: Tool[Any], parsed: Text, request: _Request, refs: _Refs
    ) -> tuple[list[ToolCall], list[str], bool]:
        """The calls a request makes with `tool`, the required arguments still missing, and
        whether the conversation supplied a value."""
        args: dict[str, Any] = {}
        fan: list[object] = []
        used_context = False
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
            if path == tool.fan_out and len(values) > 1:
                fan = values
            _put(args, path, values[0])
        calls = [ToolCall(tool=tool.name, args=args)]
        if fan and tool.fan_out is not None:
            calls = [
                ToolCall(tool=tool.name, args=_with(args, tool.fan_out, value))
                for value in fan[:MAX_CALLS]
            ]
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
            values = ents.values(kind)
            if values:
                return values, False
            needs = kind in tool.cues.needs or path in tool.required()
            bare = ents.values("number")
            if bare and needs and not _other_id(ents, kind):
                return (bare if path == tool.fan_out else bare[:1]), False
            refers = ents.has("pronoun") or (kind == "task" and _task_ref(request.words))
            last = refs.droplet if kind == "droplet" else refs.task
            owner = kind == "droplet" and bool(set(request.words) & OWNER_PRONOUNS)
            if last is not None and ((refers and needs) or owner) and not ents.has("number"):
                return [last], True
            if last is not None and refers and _pronoun_means(kind, tool, ents, refs):
                return [last], True
            return [], False
        if kind == "tasks":
            ids = ents.values("task") or (
                ents.values("number") if tool.name in _ID_LIST_TOOLS else []
            )
            if not ids and ents.has("pronoun") and refs.task is not None and not ents.has("all"):
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
        said = dict((k.lower(), v) for k, v in pairs(parsed.cut(request.first, request.last)))
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
        return ents.values(kind), False

    # ---- a reply to a waiting question or proposal ---------------------------------------

    def _pending(self, parsed: Text, pending: PendingCall, context: PlanContext) -> Plan | None:
        tool = self._tools.get(pending.call.tool)
        if tool is None or not parsed.tokens:
            return None
        whole = self._request(parsed, 0, len(parsed.tokens) - 1, context, spoken=parsed.spoken)
        own = whole.best
        # A new request of its own ("forget it, show me the alerts") is planned as such.
        if (
            own is not None
            and own.tool != tool.name
            and own.total >= 3
            and (own.named or own.nouns > 0)
        ):
            return None
        if pending.missing and answer_of(parsed.original) == 1:
            # "ok" or "sure" while a question is open answers nothing: the same question again.
            again = ToolCall(tool=tool.name, args=_copy(pending.call.args))
            return Plan(
                kind="ask",
                intent=tool.name,
                calls=[again],
                missing=tool.missing(again.args),
                confidence=calibrated(Features(pending=True, filled=False)),
                planner=self.name,
            )
        refs = _Refs(context.last_droplet_id, context.last_task_id)
        args = _copy(pending.call.args)
        changed = False
        message_missing = "message" in pending.missing
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
                return Plan(
                    kind="ask",
                    intent=tool.name,
                    calls=[call],
                    missing=tool.missing(args),
                    confidence=calibrated(Features(pending=True, filled=False)),
                    planner=self.name,
                )
            return None
        _drop_stale_title(tool, pending.call.args, args)
        call = ToolCall(tool=tool.name, args=args)
        problems = self._tools.problems(call, partial=True)
        if problems:
            # "priority twelve" while a task waits: say what is wrong; the proposal stays.
            text = " ".join(dict.fromkeys(_readable(p) for p in problems))
            return self._answer(text, "invalid", Features(pending=True, filled=False))
        missing = tool.missing(args)
        features = Features(pending=True, filled=True, top=own.total if own else 0.0)
        if missing:
            return Plan(
                kind="ask",
                intent=tool.name,
                calls=[call],
                missing=missing,
                confidence=calibrated(features),
                planner=self.name,
            )
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


def _content(words: Sequence[str], ents: Entities | None = None) -> frozenset[int]:
    """Positions of a message's or a title's own words: after a colon; in a request that
    starts with a messaging verb, after "that" / "saying", or after the recipient."""
    out: set[int] = set()
    if ":" in words:
        out |= set(range(words.index(":") + 1, len(words)))
    lead = next((w for w in words if w not in ("hey", "and", "also")), "")
    if lead in MESSAGE_VERBS:
        for i, word in enumerate(words):
            if word in ("that", "saying") and i > 1:
                out |= set(range(i + 1, len(words)))
                break
        recipients = [f for f in (ents.of("droplet") if ents else []) if f.first > 0]
        if recipients:
            after = recipients[0].last + 1
            while after < len(words) and words[after] in ("to", "that", "saying", ":", ","):
                after += 1
            if after < len(words) - 1:
                out |= set(range(after, len(words)))
    return frozenset(out)


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


def _task_ref(words: Sequence[str]) -> bool:
    """ "the task", "that task", "my last task": a task the conversation knows."""
    for i, word in enumerate(words):
        if word in ("task", "job") and i >= 1 and words[i - 1] in TASK_REFS:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if not nxt.isdigit():
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
    targets = [f for f in request.ents.found if f.kind in ("droplet", "number", "pronoun")]
    if not targets:
        for i, word in enumerate(words):
            if word in (":", "saying") and i + 1 < len(words):
                return _clean_message(parsed.original[tokens[i].end : tokens[-1].end], parsed)
        return None
    target = targets[0]
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
    text = text.strip().lstrip(":,-").strip().strip("\"'“”").strip()
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


def _title(parsed: Text, request: _Request) -> str | None:
    words = request.words
    tokens = parsed.tokens[request.first : request.last + 1]
    for i, word in enumerate(words):
        if word in ("titled", "entitled", "called", "named") and i + 1 < len(words):
            nxt = words[i + 1]
            if nxt.startswith("\x00quote"):
                return parsed.quotes[int(nxt[6:])]
            end = i + 1
            while end + 1 < len(words) and words[end + 1] not in (
                ",", "for", "with", "on", "at", "priority", "and", "code", "spec", "to", ";", ".",
            ):  # fmt: skip
                end += 1
            text = parsed.original[tokens[i + 1].start : tokens[end].end].strip()
            return text or None
    return None


CAPABILITY_LEADS = frozenset(
    {"requiring", "requires", "require", "needs", "need", "needing", "with", "the"}
)


def _capability(words: Sequence[str]) -> str | None:
    for i, word in enumerate(words):
        if (
            word in ("capability", "cap")
            and 1 <= i < len(words) - 1
            and words[i + 1].isalpha()
            and words[i - 1] in CAPABILITY_LEADS
        ):
            return words[i + 1]
    return None
