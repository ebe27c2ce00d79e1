"""The offline planner: the default, with no model and no API key.

It reads a message the way an operator writes it: politeness and typos removed, split into
requests ("list tasks and show alerts"), each request recognised by the words that carry it
(not one sentence template per intent), ids resolved from the text or from the conversation
("cancel it"), and arguments checked against the tool catalogue before they leave. What it
cannot do it says so, with a low confidence, so a model can be consulted when one is configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.conversation.planners import entities as dx
from app.conversation.planners import lexicon as lx
from app.conversation.planners import slots
from app.conversation.planners.entities import Entities
from app.domain.plan import PendingCall, Plan, PlanContext, ToolCall
from app.tools.catalogue import get_spec, missing_arguments, validation_errors

LLM_CONFIDENCE_THRESHOLD = 0.6
"""Below this, a conversation service with a model configured should ask the model instead."""

MAX_CALLS = 10
""""check droplets 1 to 40" should not fan out into forty calls."""

CAPABILITIES = (
    "I can list the droplets, check a droplet's health, list tasks or look one up, show the "
    "system status and recent alerts, create or cancel tasks, and send a message to a droplet."
)
GREETING = f"Hello! {CAPABILITIES} What would you like to know?"
OUT_OF_SCOPE = (
    f"Sorry, I can't help with that: I only know about this droplet mesh. {CAPABILITIES} "
    "Say help for examples."
)
THANKS = "You're welcome."
GOODBYE = "Goodbye!"
HOW_ARE_YOU = f"All good here, thanks. {CAPABILITIES}"
NOTHING_PENDING_YES = "There is nothing waiting for your confirmation right now."
NOTHING_PENDING_NO = "OK. Nothing is waiting for confirmation, so there is nothing to drop."
AMBIGUOUS_NUMBER = (
    "Do you mean droplet {n} or task {n}? Say, for example, 'droplet {n}' or 'task {n}'."
)
CANNOT_STOP_DROPLETS = (
    "I can't stop or restart droplets. I can cancel a task (say 'cancel task 7') or send a "
    "droplet a message asking it to do something."
)

_Kind = Literal["tools", "ask", "answer", "none"]


# ---- confirmations ---------------------------------------------------------------------------

_AFFIRMATIVE = (
    "yes please", "yes", "y", "yep", "yeah", "yup", "ya", "yea", "yess", "sure", "ok", "okay",
    "k", "kk", "confirm", "confirmed", "i confirm", "go ahead", "go for it", "do it",
    "proceed", "approve", "approved", "affirmative", "absolutely", "correct", "right",
    "execute", "run it", "sounds good", "looks good", "lgtm", "please do", "go", "of course",
    "definitely", "alright", "all right", "yes do it", "send it", "ship it", "that's right",
    "thats right", "perfect", "great", "fine", "do that", "make it so", "agreed",
)  # fmt: skip
_NEGATIVE = (
    "no", "n", "nope", "nah", "no thanks", "no thank you", "cancel", "cancel that",
    "cancel this", "stop", "abort", "never mind", "nevermind", "nvm", "don't", "dont",
    "do not", "don't do it", "dont do it", "do not do it", "don't do that", "forget it",
    "forget that", "forget about it", "skip", "skip it", "negative", "not now", "no way",
    "scrap that", "drop it", "no don't", "no dont", "not really", "decline", "declined",
    "reject", "no stop", "hold off",
)  # fmt: skip
_CONFIRM_FILLER = (
    "please",
    "thanks",
    "thank you",
    "now",
    "then",
    "just",
    "oh",
    "ah",
    "hmm",
    "well",
)


def _bare(text: str) -> str:
    text = text.replace("\u2019", "'").replace("👍", " yes ").replace("👎", " no ").lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _only_phrases(text: str, phrases: Sequence[str]) -> bool:
    words = _bare(dx.fix_typos(text).text).split()
    if not words or len(words) > 8:
        return False
    ordered = sorted(
        [(tuple(p.split()), True) for p in phrases]
        + [(tuple(f.split()), False) for f in _CONFIRM_FILLER],
        key=lambda item: -len(item[0]),
    )
    i, matched = 0, False
    while i < len(words):
        for phrase, counts in ordered:
            if tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                matched = matched or counts
                break
        else:
            return False
    return matched


def is_affirmative(text: str) -> bool:
    """A bare yes to a pending action: "yes", "y", "yep", "confirm", "go ahead", "sure", "ok"."""
    return _only_phrases(text, _AFFIRMATIVE)


def is_negative(text: str) -> bool:
    """A bare refusal: "no", "nope", "cancel", "stop", "never mind", "don't".

    Only a refusal on its own: "cancel task 7" and "cancel it" are requests to cancel a task.
    """
    return _only_phrases(text, _NEGATIVE)


# ---- the planner -----------------------------------------------------------------------------


class RulesPlanner:
    """Offline, deterministic planner; see `plan_message`."""

    name = "rules"

    async def plan(self, text: str, context: PlanContext) -> Plan:
        return plan_message(text, context)


@dataclass
class _Outcome:
    kind: _Kind
    calls: list[ToolCall] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    confidence: float = 0.0
    answer: str | None = None
    intent: str = "unknown"
    notes: list[str] = field(default_factory=list)


@dataclass
class _Scope:
    """What a request may refer to: updated as the requests of one message are read.

    What the history says (the previous request, the last subject) is worked out only when a
    message needs it: re-reading the whole history window on every turn was most of a turn's
    planning time.
    """

    aliases: Mapping[str, int]
    last_droplet: int | None
    last_task: int | None
    context: PlanContext
    _previous: ToolCall | None = None
    _previous_known: bool = False
    _subject: Literal["task", "droplet"] | None = None
    _subject_known: bool = False

    @property
    def previous(self) -> ToolCall | None:
        if not self._previous_known:
            self._previous = _previous_call(self.context, self.aliases)
            self._previous_known = True
        return self._previous

    @previous.setter
    def previous(self, call: ToolCall | None) -> None:
        self._previous, self._previous_known = call, True

    @property
    def history_subject(self) -> Literal["task", "droplet"] | None:
        if not self._subject_known:
            self._subject = _history_subject(self.context, self.aliases)
            self._subject_known = True
        return self._subject


def _none() -> _Outcome:
    return _Outcome("none")


def _answer(text: str, confidence: float, intent: str = "unknown") -> _Outcome:
    return _Outcome("answer", answer=text, confidence=confidence, intent=intent)


def _tools(tool: str, args_list: Sequence[dict[str, Any]], confidence: float) -> _Outcome:
    return _Outcome(
        "tools",
        [ToolCall(tool=tool, args=a) for a in args_list],
        confidence=confidence,
        intent=tool,
    )


def _ask(tool: str, args: dict[str, Any], missing: list[str], confidence: float) -> _Outcome:
    return _Outcome("ask", [ToolCall(tool=tool, args=args)], missing, confidence, intent=tool)


def plan_message(text: str, context: PlanContext) -> Plan:
    """Plan one message: tool calls, a question for a missing slot, or a direct answer."""
    raw = text.strip()[:5000]
    if not raw:
        return _to_plan(_answer("Say something like 'list droplets' or 'help'.", 0.3), 0.0)
    aliases = _aliases(context)
    normalized = dx.fix_typos(raw, extra_words=_alias_words(aliases))
    fixed = normalized.text
    penalty = min(0.15, 0.05 * len(normalized.corrections))

    small = _smalltalk(fixed, context)
    if small is not None:
        return _to_plan(small, 0.0)
    if context.pending is None and lx.HELP.match(_bare(fixed) or fixed.strip()):
        return _to_plan(_tools("help", [{}], 0.95), penalty)

    scope = _Scope(
        aliases=aliases,
        last_droplet=context.last_droplet_id,
        last_task=context.last_task_id,
        context=context,
    )
    if context.pending is not None:
        filled = _fill_pending(raw, fixed, context.pending, scope)
        if filled is not None:
            return _to_plan(filled, penalty, notes=["slot_fill"])

    return _to_plan(_plan_requests(fixed, scope), penalty)


def _aliases(context: PlanContext) -> dict[str, int]:
    return {
        name.strip().lower(): ident
        for name, ident in context.aliases.items()
        if isinstance(ident, int) and ident >= 1 and name.strip()
    }


def _alias_words(aliases: Mapping[str, int]) -> list[str]:
    return [w for name in aliases for w in re.split(r"[\s_-]+", name) if w.isalpha()]


# ---- small talk -----------------------------------------------------------------------------

_GREETINGS = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|howdy|yo|greetings|sup|hallo|heya|good (?:morning|afternoon|"
    r"evening|day))(?: there| all| team| everyone| folks| bot| chat| assistant)?)+$"
)
_THANKS = re.compile(
    r"^(?:ok |okay |great |cool |perfect |awesome |nice )?(?:thanks|thank you|thx|ty|cheers|"
    r"much appreciated|appreciated)(?: (?:a lot|so much|very much|again|mate|buddy))*$"
)
_BYE = re.compile(
    r"^(?:bye|goodbye|bye bye|see you|see ya|cya|later|good night|that's all|thats all)$"
)
_HOW_ARE_YOU = re.compile(r"^(?:(?:hi|hello|hey) )?how are you(?: doing| today)?$")


def _smalltalk(fixed: str, context: PlanContext) -> _Outcome | None:
    bare = _bare(fixed)
    if _GREETINGS.match(bare):
        return _answer(GREETING, 0.95, "smalltalk")
    if _THANKS.match(bare):
        return _answer(THANKS, 0.95, "smalltalk")
    if _BYE.match(bare):
        return _answer(GOODBYE, 0.95, "smalltalk")
    if _HOW_ARE_YOU.match(bare):
        return _answer(HOW_ARE_YOU, 0.9, "smalltalk")
    if context.pending is None and is_affirmative(fixed):
        return _answer(NOTHING_PENDING_YES, 0.8, "smalltalk")
    refers_to_task = context.last_task_id is not None and lx.PRONOUN.search(_core(fixed))
    if context.pending is None and is_negative(fixed) and not refers_to_task:
        return _answer(NOTHING_PENDING_NO, 0.8, "smalltalk")
    return None


# ---- text helpers -----------------------------------------------------------------------------


def _lower(text: str) -> str:
    """Lower-case without changing length, so offsets stay valid."""
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text).replace("\u2019", "'")


def _core(text: str) -> str:
    """Lower-case, contractions expanded, politeness removed, punctuation flattened."""
    low = _lower(text)
    for pattern, replacement in lx.CONTRACTIONS:
        low = pattern.sub(replacement, low)
    low = re.sub(r"[!?,;()\[\]\"“”]", " ", low)
    low = lx.FILLER.sub(" ", low)
    return re.sub(r"\s+", " ", low).strip(" .:-")


def _blank_entities(text: str, ents: Entities) -> str:
    spans = [(m.start, m.end) for m in (*ents.droplets, *ents.tasks, *ents.bare_numbers)]
    chars = list(text)
    for s, e in [*spans, *ents.url_spans]:
        chars[s:e] = " " * (e - s)
    return "".join(chars)


def _foreign_words(core: str, aliases: Mapping[str, int]) -> tuple[int, int]:
    """(foreign, content) word counts: how much of a request is about something else."""
    alias_words = set(_alias_words(aliases))
    content = [
        t
        for t in re.findall(r"[a-z0-9']+", core)
        if t not in lx.STOPWORDS and not t.isdigit() and len(t) > 1
    ]
    foreign = [
        t
        for t in content
        if t not in lx.DOMAIN_WORDS
        and t not in alias_words
        and t not in dx.VOCABULARY
        and not re.fullmatch(r"(?:d|drop|droplet|task|p)\d+|#\d+", t)
    ]
    return len(foreign), len(content)


# ---- splitting a message into requests ----------------------------------------------------------

_STARTER = (
    r"(?:also\s+|then\s+|and\s+)?(?:please\s+|can you\s+|could you\s+)?"
    r"(?:show|list|get|give|fetch|display|check|tell|what|what's|whats|how|how's|hows|is|are|"
    r"any|create|cancel|abort|send|help|the\s+(?:alerts?|tasks?|droplets?|system|list|status|"
    r"mesh|overview|alarms?|warnings?)\b|system\b|mesh\b|alerts?\b|alarms?\b|warnings?\b|"
    r"incidents?\b|tasks\b|droplets\b|status\b|health\b|its\b|their\b|pending\b|failed\b|"
    r"active\b|completed\b|running\b|inactive\b|healthy\b|(?:droplet|task|d)\s*#?\d|drop\d)"
)
_SPLIT = re.compile(
    r"\s*;\s*|(?<=[.!?])\s+(?=[^\d\s])|\s*\b(?:and then|then|also|plus|as well as)\b\s*"
    rf"|\s*(?:,\s*|\band\s+)(?={_STARTER})",
    re.IGNORECASE,
)
_MASKABLE = re.compile(
    r"(?:https?|ftp)://\S+|www\.\S+|\"[^\"\n]*\"|“[^”\n]*”|(?<!\w)'[^'\n]*'(?!\w)|\bv?\d+(?:\.\d+)+",
    re.IGNORECASE,
)


def _split(text: str) -> list[str]:
    masked = list(text)
    for m in _MASKABLE.finditer(text):
        masked[m.start() : m.end()] = "x" * (m.end() - m.start())
    flat = "".join(masked)
    parts: list[str] = []
    pos = 0
    for m in _SPLIT.finditer(flat):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        pos = max(pos, m.end())
    parts.append(text[pos:])
    return [p.strip() for p in parts if p.strip(" .,;!?")]


def _is_create(core: str) -> bool:
    if lx.TYPE_VERB_START.search(core) or lx.SOFT_CREATE.search(core):
        return True
    verb = lx.CREATE_VERB.search(core)
    new = lx.NEW_TASK.search(core)
    if not (verb or new):
        return False
    if (
        verb
        and verb.group() in ("open", "make")
        and not re.search(rf"\b{verb.group()}\s+(?:a|an|another|one|new)\b", core)
    ):
        return False
    return bool(lx.TASK_NOUN_ANY.search(core) or lx.TYPE_WORD.search(core))


def _has_read_cue(core: str) -> bool:
    return bool(
        re.match(r"^(?:show|list|get|give|display|fetch|check|what|which|how|is|are|any)\b", core)
        and (lx.TASKS_LIST.search(core) or lx.ALERTS_STRONG.search(core) or lx.SYSTEM.search(core)
             or lx.DROPLETS_LIST.search(core) or lx.STATUS_WORD.search(core))
    )  # fmt: skip


def _segments(text: str) -> list[str]:
    """Requests in a message; a write keeps the clauses that only describe it."""
    core = _core(text)
    if _send_verb_at_start(core):
        return [text]
    if lx.OVERALL_COUNTS.search(core) and lx.TASK_AND_DROPLET.search(core):
        return [text]
    parts = _split(text)
    merged: list[str] = []
    writing = False
    for part in parts:
        part_core = _core(part)
        if writing and not _has_read_cue(part_core) and not lx.CANCEL_VERB.search(part_core):
            merged[-1] = f"{merged[-1]}, {part}"
            continue
        merged.append(part)
        writing = _is_create(part_core)
    return merged


def _send_verb_at_start(core: str) -> bool:
    return bool(
        re.match(
            r"^(?:send|forward|relay|deliver|tell|notify|inform|message|msg|ask|remind|warn|let)\b",
            core,
        )
    )


# ---- one request ------------------------------------------------------------------------------


def _plan_requests(text: str, scope: _Scope) -> _Outcome:
    core = _core(text)
    if lx.OVERALL_COUNTS.search(core) and lx.TASK_AND_DROPLET.search(core):
        return _tools("system_status", [{}], 0.8)
    outcomes: list[_Outcome] = []
    for segment in _segments(text):
        outcome = _classify(segment, scope)
        if outcome.kind == "none":
            continue
        outcomes.append(outcome)
        if outcome.calls:
            scope.previous = outcome.calls[-1]
            for call in outcome.calls:
                _remember(call, scope)
    return _combine(outcomes)


def _remember(call: ToolCall, scope: _Scope) -> None:
    args = call.args
    for key in ("droplet_id", "assigned_droplet_id", "target_droplet_id"):
        if isinstance(args.get(key), int):
            scope.last_droplet = args[key]
    payload = args.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("target_droplet_id"), int):
        scope.last_droplet = payload["target_droplet_id"]
    if isinstance(args.get("task_id"), int):
        scope.last_task = args["task_id"]


def _combine(outcomes: list[_Outcome]) -> _Outcome:
    if not outcomes:
        return _answer(OUT_OF_SCOPE, 0.2)
    asks = [o for o in outcomes if o.kind == "ask"]
    tools = [o for o in outcomes if o.kind == "tools"]
    if asks and (not tools or asks[0] is outcomes[0]):
        first = asks[0]
        first.notes += [f"also_requested: {c.tool}" for o in tools for c in o.calls]
        return first
    if tools:
        calls: list[ToolCall] = []
        for o in tools:
            for call in o.calls:
                if call not in calls:
                    calls.append(call)
        notes = [f"skipped_incomplete: {o.calls[0].tool}" for o in asks]
        if len(calls) > MAX_CALLS:
            notes.append(f"truncated: {len(calls)} calls, kept {MAX_CALLS}")
            calls = calls[:MAX_CALLS]
        names = {c.tool for c in calls}
        intent = calls[0].tool if len(names) == 1 else "multi"
        confidence = min(o.confidence for o in tools)
        return _Outcome("tools", calls, confidence=confidence, intent=intent, notes=notes)
    return outcomes[0]


def _classify(segment: str, scope: _Scope) -> _Outcome:
    if _GREETINGS.match(_bare(segment)):
        return _none()
    ents = dx.extract(segment, aliases=scope.aliases)
    core = _core(segment)
    bare_core = _core(_blank_entities(segment, ents))
    raw_low = _lower(segment).strip()

    if lx.HELP.match(core) or lx.HELP.match(raw_low) or lx.HELP.match(raw_low.rstrip("?!. ")):
        return _tools("help", [{}], 0.95)

    sent = _send(segment, ents, scope)
    if sent is not None:
        return sent
    if _is_create(core):
        return _create(segment, ents, scope)
    if lx.CANCEL_VERB.search(bare_core):
        cancelled = _cancel(core, ents, scope)
        if cancelled is not None:
            return cancelled
    if lx.DROPLET_CONTROL.search(bare_core) and ents.droplets and not ents.tasks:
        return _answer(CANNOT_STOP_DROPLETS, 0.5, "unsupported")

    has_refs = bool(ents.droplets or ents.tasks or ents.bare_numbers)
    has_filters = bool(ents.task_state or ents.droplet_state or ents.task_type or ents.limit)
    # "and droplet 3?", "what about the failed ones?": only names or filters, no request words,
    # so the previous request is repeated with them ("it" is resolved separately).
    cueless = not lx.INTENT_CUES.search(bare_core)
    pronoun = lx.PRONOUN.search(core) is not None
    if scope.previous is not None and (has_refs or has_filters) and cueless and not pronoun:
        inherited = _inherit(scope.previous, ents, scope)
        if inherited is not None:
            return inherited

    outcome = _read(core, ents, scope, has_refs)
    if outcome.kind in ("tools", "answer") and not ents.droplets and not ents.tasks:
        foreign, content = _foreign_words(core, scope.aliases)
        # A clear command tolerates more unknown words ("list the droplets sorted by name").
        limit = 0.6 if outcome.confidence >= 0.9 else 0.5
        if content and foreign / content >= limit and (foreign >= 2 or outcome.confidence < 0.8):
            return _answer(OUT_OF_SCOPE, 0.25)
    return outcome


def _read(core: str, ents: Entities, scope: _Scope, has_refs: bool) -> _Outcome:
    pronoun = lx.PRONOUN.search(core)
    if ents.task_ids:
        return _tools("task_status", [{"task_id": t} for t in ents.task_ids], 0.95)

    working = lx.WORKING_ON.search(core) and (ents.droplets or pronoun)
    if lx.TASKS_LIST.search(core) or working:
        return _list_tasks(core, ents, scope, pronoun is not None)
    if lx.ALERTS_STRONG.search(core):
        return _alerts(ents, 0.9)
    if ents.droplet_ids:
        confidence = 0.95 if lx.INTENT_CUES.search(core) or lx.STATUS_WORD.search(core) else 0.8
        return _tools("droplet_status", [{"droplet_id": d} for d in ents.droplet_ids], confidence)
    if lx.DROPLETS_LIST.search(core):
        return _list_droplets(core, ents)
    if lx.ALERTS_WEAK.search(core):
        return _alerts(ents, 0.75)
    if ents.task_state and lx.TASK_STATE_QUESTION.search(core) and not has_refs:
        return _tools("list_tasks", [_task_filters(ents)], 0.75)
    if lx.HELP_WORD.search(core):
        return _tools("help", [{}], 0.8)
    if lx.SYSTEM.search(core):
        return _tools("system_status", [{}], 0.9)
    if pronoun is not None:
        referred = _pronoun(core, scope)
        if referred is not None:
            return referred
    if ents.hashed and not ents.droplets:
        return _tools("droplet_status", [{"droplet_id": ents.hashed[0].value}], 0.7)
    if ents.bare_numbers and lx.DROPLET_MARKER.search(core) and not lx.TASK_MARKER.search(core):
        return _tools("droplet_status", [{"droplet_id": ents.bare_numbers[0].value}], 0.7)
    if ents.bare_numbers and re.fullmatch(r"#?\d+", core.strip()):
        n = ents.bare_numbers[0].value
        return _answer(AMBIGUOUS_NUMBER.format(n=n), 0.4, "clarify")
    if lx.STATUS_WORD.search(core) and not has_refs and pronoun is None:
        words = core.split()
        if len(words) <= 4:
            return _tools("system_status", [{}], 0.7)
    return _none()


def _alerts(ents: Entities, confidence: float) -> _Outcome:
    args: dict[str, Any] = {}
    if ents.limit is not None:
        args["limit"] = max(1, min(ents.limit, 100))
    return _tools("system_alerts", [args], confidence)


def _list_droplets(core: str, ents: Entities) -> _Outcome:
    args: dict[str, Any] = {}
    # "are all droplets healthy?" asks about all of them; "the healthy droplets" filters.
    if ents.droplet_state and not lx.ALL_PREDICATE.search(core):
        args["status"] = ents.droplet_state
    return _tools("list_droplets", [args], 0.9)


def _task_filters(ents: Entities, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    args: dict[str, Any] = dict(base or {})
    if ents.task_state:
        args["status"] = ents.task_state
    if ents.task_type:
        args["task_type"] = ents.task_type
    if ents.limit is not None:
        args["limit"] = max(1, min(ents.limit, 500))
    return args


def _list_tasks(core: str, ents: Entities, scope: _Scope, has_pronoun: bool) -> _Outcome:
    args = _task_filters(ents)
    # "what's running on droplet 3": everything it has, not only tasks in progress.
    if re.search(r"\brunning on\b", core) and args.get("status") == "in_progress":
        args.pop("status")
    # "tasks assigned to droplet 14": "assigned" names the droplet, not a status.
    if (
        ents.droplet_ids
        and args.get("status") == "assigned"
        and not re.search(r"\bstatus\s+assigned\b", core)
    ):
        args.pop("status")
    if ents.droplet_ids:
        return _tools(
            "list_tasks", [{**args, "assigned_droplet_id": d} for d in ents.droplet_ids], 0.9
        )
    its = re.search(r"\b(?:its|it|that droplet|this droplet|the droplet)\b", core)
    if has_pronoun and its and scope.last_droplet is not None:
        return _tools("list_tasks", [{**args, "assigned_droplet_id": scope.last_droplet}], 0.85)
    return _tools("list_tasks", [args], 0.9)


def _pronoun(core: str, scope: _Scope) -> _Outcome | None:
    """ "is it healthy?", "how's it going?": the droplet or task discussed last."""
    task_words = bool(lx.TASK_MARKER.search(core))
    droplet_words = bool(lx.DROPLET_MARKER.search(core))
    subject: Literal["task", "droplet"] | None
    if task_words and not droplet_words:
        subject = "task"
    elif droplet_words and not task_words:
        subject = "droplet"
    elif scope.last_task is not None and scope.last_droplet is None:
        subject = "task"
    elif scope.last_droplet is not None and scope.last_task is None:
        subject = "droplet"
    else:
        subject = scope.history_subject
    if subject == "task":
        if scope.last_task is not None:
            return _tools("task_status", [{"task_id": scope.last_task}], 0.85)
        if re.search(r"\b(?:task|job)\b", core):
            return _ask("task_status", {}, ["task_id"], 0.7)
    if subject == "droplet":
        if scope.last_droplet is not None:
            return _tools("droplet_status", [{"droplet_id": scope.last_droplet}], 0.85)
        if re.search(r"\bdroplet\b", core):
            return _ask("droplet_status", {}, ["droplet_id"], 0.7)
    return None


def _inherit(previous: ToolCall, ents: Entities, scope: _Scope) -> _Outcome | None:
    """A request that only names something ("and droplet 3?") repeats the previous one."""
    tool, args = previous.tool, previous.args
    numbers = list(ents.task_ids) or [m.value for m in ents.bare_numbers]
    if ents.droplet_ids:
        if tool == "list_tasks":
            base = {k: v for k, v in args.items() if k != "assigned_droplet_id"}
            base = _task_filters(ents, base)
            return _tools(
                "list_tasks", [{**base, "assigned_droplet_id": d} for d in ents.droplet_ids], 0.75
            )
        if tool in ("droplet_status", "list_droplets", "send_message"):
            return _tools("droplet_status", [{"droplet_id": d} for d in ents.droplet_ids], 0.8)
        return None
    if numbers and not ents.droplets:
        if tool in ("task_status", "list_tasks") and (ents.task_ids or ents.bare_numbers):
            return _tools("task_status", [{"task_id": n} for n in numbers], 0.75)
        if tool == "cancel_task":
            return _tools("cancel_task", [{"task_id": n} for n in numbers], 0.75)
        if tool == "droplet_status" and not ents.task_ids:
            return _tools("droplet_status", [{"droplet_id": n} for n in numbers], 0.7)
        return None
    if tool == "list_tasks" and (ents.task_state or ents.task_type or ents.limit):
        base = {k: v for k, v in args.items() if k not in ("status",) or not ents.task_state}
        return _tools("list_tasks", [_task_filters(ents, base)], 0.75)
    if tool == "list_droplets" and ents.droplet_state:
        return _tools("list_droplets", [{"status": ents.droplet_state}], 0.75)
    if tool == "system_alerts" and ents.limit:
        return _tools("system_alerts", [{"limit": max(1, min(ents.limit, 100))}], 0.75)
    return None


# ---- writes -----------------------------------------------------------------------------------


def _create(segment: str, ents: Entities, scope: _Scope) -> _Outcome:
    said = slots.task_slots(segment, ents, aliases=scope.aliases)
    targets: list[int | None] = list(said.targets)
    if (
        not targets
        and scope.last_droplet is not None
        and re.search(r"\b(?:it|that droplet|this droplet|the same droplet)\b", _core(segment))
    ):
        targets = [scope.last_droplet]
    if not targets:
        targets = [None]
    calls = [slots.task_arguments(said, target=t) for t in targets]
    if said.task_type is None:
        return _ask("create_task", calls[0], ["task_type"], 0.85)
    confidence = 0.9 if said.targets or said.code_url else 0.8
    return _tools("create_task", calls, confidence)


def _cancel(core: str, ents: Entities, scope: _Scope) -> _Outcome | None:
    ids = list(ents.task_ids) or [m.value for m in ents.bare_numbers if not ents.droplets]
    if ids:
        return _tools("cancel_task", [{"task_id": t} for t in ids], 0.95)
    if ents.droplets and not lx.TASK_NOUN_ANY.search(core):
        return _answer(CANNOT_STOP_DROPLETS, 0.5, "unsupported")
    if lx.PRONOUN.search(core) or re.search(
        r"\b(?:last|latest|previous|recent)\s+(?:task|one)\b", core
    ):
        if scope.last_task is not None:
            return _tools("cancel_task", [{"task_id": scope.last_task}], 0.85)
        return _ask("cancel_task", {}, ["task_id"], 0.8)
    if lx.TASK_NOUN_ANY.search(core) or core in ("cancel", "abort"):
        return _ask("cancel_task", {}, ["task_id"], 0.8)
    return None


def _send(segment: str, ents: Entities, scope: _Scope) -> _Outcome | None:
    low = _lower(segment)
    verb_end: int | None = None
    send = lx.SEND_VERB.search(low)
    if send is not None:
        after = low[send.end() :]
        if (
            lx.MESSAGE_NOUN.search(after)
            or ents.quoted
            or ents.pair("message", "msg")
            or any(m.start >= send.end() for m in ents.droplets)
        ):
            verb_end = send.end()
    if verb_end is None:
        for tell in lx.TELL_VERB.finditer(low):
            gap = low[tell.end() : tell.end() + 6]
            direct = [m for m in ents.droplets if tell.end() <= m.start <= tell.end() + 5]
            pronoun = re.match(r"^\s+(?:it|them)\b", gap) and scope.last_droplet is not None
            if tell.group() == "let" and not re.search(r"\bknow\b", low[tell.end() :]):
                continue
            if (
                direct and re.fullmatch(r"\s*(?:the\s*)?", low[tell.end() : direct[0].start])
            ) or pronoun:
                verb_end = tell.end()
                break
    if verb_end is None:
        return None
    parts = slots.message_parts(
        segment, ents, verb_end=verb_end, last_droplet_id=scope.last_droplet
    )
    args: dict[str, Any] = {}
    missing: list[str] = []
    if parts.target is not None:
        args["target_droplet_id"] = parts.target
    else:
        missing.append("target_droplet_id")
    if parts.message:
        args["message"] = parts.message
    else:
        missing.append("message")
    if missing:
        return _ask("send_message", args, missing, 0.8)
    return _tools("send_message", [args], 0.85 if not parts.target_from_pronoun else 0.8)


# ---- pending calls: slot answers and edits ------------------------------------------------------


def _fill_pending(raw: str, fixed: str, pending: PendingCall, scope: _Scope) -> _Outcome | None:
    """A reply that completes or changes the pending call, or None when it is a new request."""
    call = pending.call
    ents = dx.extract(fixed, aliases=scope.aliases)
    core = _core(fixed)
    modifying = bool(lx.MODIFY.search(core))
    if not modifying and _has_read_cue(core):
        return None
    if call.tool == "create_task":
        if (
            not modifying
            and re.search(r"\b(?:create|add|schedule|new)\b", core)
            and lx.TASK_NOUN_ANY.search(core)
        ):
            return None
        if not modifying and (lx.CANCEL_VERB.search(core) or lx.SEND_VERB.search(core)):
            return None
        said = slots.task_slots(fixed, ents, aliases=scope.aliases, loose_priority=True)
        if not said.said_anything():
            return None
        args = slots.update_task(call.args, said)
    elif call.tool == "send_message":
        args = dict(call.args)
        if "message" in pending.missing:
            if lx.CANCEL_VERB.search(core) or (
                _is_create(core) and re.search(r"\b(?:create|add|new)\b", core)
            ):
                return None
            if "target_droplet_id" in pending.missing and ents.droplet_ids:
                args["target_droplet_id"] = ents.droplet_ids[0]
                message = None
            else:
                message = slots.reply_as_message(raw)
            if message:
                args["message"] = message
        else:
            message = slots.changed_message(raw)
            if message:
                args["message"] = message
            elif ents.droplet_ids:
                args["target_droplet_id"] = ents.droplet_ids[-1]
            else:
                return None
    elif call.tool in ("cancel_task", "task_status"):
        ids = list(ents.task_ids) or [m.value for m in ents.bare_numbers]
        if ids:
            args = {**call.args, "task_id": ids[0]}
        elif lx.PRONOUN.search(core) and scope.last_task is not None:
            args = {**call.args, "task_id": scope.last_task}
        else:
            return None
    elif call.tool == "droplet_status":
        ids = list(ents.droplet_ids) or [m.value for m in ents.bare_numbers]
        if not ids:
            return None
        args = {**call.args, "droplet_id": ids[0]}
    else:
        return None
    new_call = ToolCall(tool=call.tool, args=args)
    still_missing = _missing_slots(new_call)
    if still_missing:
        return _ask(call.tool, args, still_missing, 0.8)
    return _tools(call.tool, [args], 0.85)


def _missing_slots(call: ToolCall) -> list[str]:
    """What to ask the user for: create_task's title is derived, so only its type is asked."""
    missing = missing_arguments(call)
    if call.tool == "create_task":
        return ["task_type"] if "task_type" in missing else []
    return missing


# ---- conversation memory ------------------------------------------------------------------------


def _previous_call(context: PlanContext, aliases: Mapping[str, int]) -> ToolCall | None:
    """The request of the previous user turn, for "what about droplet 14?"."""
    for turn in reversed(context.history):
        if turn.role != "user" or is_affirmative(turn.text) or is_negative(turn.text):
            continue
        earlier = PlanContext(
            aliases=dict(aliases),
            last_task_id=context.last_task_id,
            last_droplet_id=context.last_droplet_id,
        )
        plan = plan_message(turn.text, earlier)
        return plan.calls[0] if plan.calls else None
    return None


def _history_subject(
    context: PlanContext, aliases: Mapping[str, int]
) -> Literal["task", "droplet"] | None:
    """Whether a task or a droplet was mentioned last, for an ambiguous "it"."""
    for turn in reversed(context.history):
        ents = dx.extract(turn.text, aliases=aliases)
        last_task = max((m.end for m in ents.tasks), default=-1)
        last_droplet = max((m.end for m in ents.droplets), default=-1)
        if last_task > last_droplet:
            return "task"
        if last_droplet > last_task:
            return "droplet"
    return None


# ---- the plan -----------------------------------------------------------------------------------


def _clean_call(call: ToolCall) -> ToolCall:
    """Arguments kept within the catalogue's limits (lengths, ranges)."""
    args = dict(call.args)
    for key, cap in (
        ("title", 255),
        ("description", 5000),
        ("message", 5000),
        ("required_capability", 100),
    ):
        if isinstance(args.get(key), str):
            args[key] = args[key].strip()[:cap]
            if not args[key]:
                args.pop(key)
    return ToolCall(tool=call.tool, args=args)


def _acceptable(call: ToolCall, *, partial: bool) -> bool:
    errors = validation_errors(call)
    if partial:
        errors = [e for e in errors if "is a required property" not in e]
    return get_spec(call.tool) is not None and not errors


def _to_plan(outcome: _Outcome, penalty: float, notes: list[str] | None = None) -> Plan:
    notes = [*outcome.notes, *(notes or [])]
    if outcome.kind in ("none", "answer"):
        return Plan(
            kind="answer",
            intent=outcome.intent,
            answer=outcome.answer or OUT_OF_SCOPE,
            confidence=_clamp(outcome.confidence if outcome.kind == "answer" else 0.2),
            notes=notes,
        )
    calls = [_clean_call(c) for c in outcome.calls]
    partial = outcome.kind == "ask"
    kept = [c for c in calls if _acceptable(c, partial=partial)]
    if len(kept) < len(calls):
        notes.append("dropped_invalid_call")
    if not kept:
        return Plan(
            kind="answer", intent="unknown", answer=OUT_OF_SCOPE, confidence=0.2, notes=notes
        )
    confidence = _clamp(outcome.confidence - penalty)
    if partial:
        return Plan(
            kind="ask",
            intent=kept[0].tool,
            calls=kept[:1],
            missing=outcome.missing,
            confidence=confidence,
            notes=notes,
        )
    return Plan(kind="tools", intent=outcome.intent, calls=kept, confidence=confidence, notes=notes)


def _clamp(value: float) -> float:
    return round(max(0.05, min(0.99, value)), 2)
