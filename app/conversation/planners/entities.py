"""Entities and slots in an operator's message.

Droplet and task ids, priorities, URLs, task types, statuses, limits, `key: value` pairs and
quoted text. Pure functions over strings: they find things; the planner decides what they mean
together (a bare "#7" is a task in "cancel #7" and a droplet in "health of #7").

Typos of the words that matter ("dropelt", "stauts", "tsak") are corrected against a fixed
vocabulary with a small edit distance, so no spelling dependency is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Typo correction
# --------------------------------------------------------------------------------------------

VOCABULARY: tuple[str, ...] = (
    "droplet", "droplets", "task", "tasks", "status", "statuses", "priority", "cancel",
    "create", "show", "list", "display", "alert", "alerts", "system", "health", "healthy",
    "unhealthy", "verify", "verification", "build", "deploy", "deployment", "monitor",
    "monitoring", "provision", "provisioning", "custom", "message", "send", "pending",
    "assigned", "completed", "failed", "cancelled", "running", "active", "inactive",
    "registered", "registry", "orchestrator", "critical", "urgent", "normal", "medium",
    "help", "hello", "thanks", "please", "title", "description", "payload", "capability",
    "capabilities", "heartbeat", "heartbeats", "overview", "summary", "details", "recent",
    "latest", "warnings", "errors", "incidents", "everything", "queue", "abort", "confirm",
    "check", "progress", "mesh", "terminate", "schedule", "notify", "offline", "online",
    "alarms", "problems", "issues", "overall",
)  # fmt: skip

# Real words one edit away from a vocabulary word: never "corrected". Derived once from an
# English word list (every lower-case word within the correction distance), plus a few more.
_COMMON_WORDS = frozenset(
    (
        "aborts", "about", "actives", "alarm", "alerted", "alter", "alters", "avert", "averts",
        "bask", "bend", "black", "block", "builder", "building", "builds", "built", "bustle",
        "camel", "canceled", "canceling", "cancelling", "cancels", "cancer", "canter", "cask",
        "catcalled", "cello", "chancel", "channelled", "chart", "charts", "checked", "checks",
        "cheek", "chick", "chock", "chuck", "click", "clock", "code", "codes", "compacted",
        "compelled", "competed", "complected", "complete", "completely", "completer", "completes",
        "completest", "complexes", "comported", "composted", "concealed", "confirmed", "confirms",
        "conform", "cost", "crate", "crease", "created", "creates", "creating", "cremate",
        "critically", "culpability", "custody", "customs", "dancer", "decent", "decryption",
        "deployed", "deploying", "deployments", "deploys", "derails", "descriptions",
        "descriptive", "descriptor", "detail", "detains", "displayed", "displays", "dovetails",
        "drop", "dropped", "drops", "error", "fabled", "fast", "filed", "flailed", "flask",
        "foiled", "ghost", "gist", "guild", "hallo", "heal", "heals", "healthier", "healthily",
        "heap", "heartbreak", "heartbreaks", "heartfelt", "hearth", "heartiest", "heath", "held",
        "hell", "hellos", "helm", "helped", "helps", "hemp", "host", "hustle", "incidence",
        "incidences", "incident", "incidental", "incidentals", "indigents", "inductive",
        "invective", "issue", "issued", "jello", "just", "kelp", "lamest", "lancer", "last",
        "latent", "later", "laxest", "lend", "lest", "lift", "lilt", "lint", "lisp", "listed",
        "listing", "lists", "little", "lost", "lust", "mash", "mask", "massage", "mediums", "mend",
        "mentoring", "mes", "mesa", "mess", "messages", "mist", "monitored", "monitors", "most",
        "mush", "must", "node", "nodes", "orchestrate", "orchestrated", "orchestrates",
        "orchestration", "overalls", "overviews", "panel", "past", "patent", "payloads", "pease",
        "penning", "pleas", "pleased", "pleases", "post", "precision", "problem", "profusion",
        "progressed", "progresses", "provisional", "provisioned", "provisions", "queued", "queues",
        "quick", "rancor", "recant", "recently", "regent", "registers", "registrar", "relent",
        "repent", "rerunning", "resent", "retail", "roistered", "ruining", "sand", "sask",
        "scheduled", "scheduler", "schedulers", "schedules", "scow", "seed", "sending", "sends",
        "sent", "shack", "shock", "shod", "shoe", "shoo", "shop", "shot", "showed", "shown",
        "shows", "showy", "slack", "slick", "slow", "smart", "snow", "spend", "stack", "stacks",
        "stars", "start", "state", "stated", "states", "stats", "statue", "statues", "statures",
        "statutes", "stealth", "stick", "stow", "summarily", "summery", "systems", "tack", "tacks",
        "talent", "talk", "talks", "tank", "tanks", "tasked", "tend", "terminable", "terminals",
        "terminated", "terminates", "terminator", "test", "tests", "text", "texts", "thank",
        "thinks", "thunks", "tidal", "tilde", "tile", "tithe", "titled", "titles", "tittle",
        "track", "trick", "tsk", "tusk", "tusks", "vast", "verified", "verifying", "verily",
        "verity", "versification", "versify", "vilification", "warning", "wealth", "whelp", "yell",
        "yelp",
    )
)  # fmt: skip

# Abbreviations too far from their word for an edit distance of one or two.
_ABBREVIATIONS: Mapping[str, str] = {
    "hlth": "health",
    "halp": "help",
    "pls": "please",
    "plz": "please",
    "msg": "message",
    "sys": "system",
    "stat": "status",
    "stats": "status",
    "thx": "thanks",
    "ty": "thanks",
    "u": "you",
    "r": "are",
}

_WORD = re.compile(r"[A-Za-z]+")
_PROTECTED = re.compile(
    r"(?:https?|ftp)://\S+|www\.\S+|\"[^\"\n]*\"|“[^”\n]*”|(?<!\w)'[^'\n]*'(?!\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Normalized:
    """A message with typos of command words fixed, in its original case otherwise."""

    text: str
    corrections: tuple[tuple[str, str], ...] = ()
    """(typed, corrected) pairs: each one lowers the planner's confidence a little."""


def edit_distance(a: str, b: str, *, limit: int = 3) -> int:
    """Optimal string alignment distance (a transposition costs one), capped at `limit`."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) >= limit:
            return limit
        prev2, prev = prev, cur
    return min(prev[-1], limit)


def correct_word(word: str, *, extra: Iterable[str] = ()) -> str | None:
    """The vocabulary word `word` is a typo of, or None when it is fine or too ambiguous."""
    low = word.lower()
    if low in _ABBREVIATIONS:
        return _ABBREVIATIONS[low]
    vocab = tuple(VOCABULARY) + tuple(w for w in extra if w.isalpha() and len(w) >= 4)
    if len(low) < 4 or low in _COMMON_WORDS or low in vocab:
        return None
    max_distance = 2 if len(low) >= 9 else 1
    best: list[str] = []
    best_distance = max_distance + 1
    for candidate in vocab:
        # Typos rarely touch the first letter; requiring it avoids most false corrections.
        if candidate[0] != low[0]:
            continue
        d = edit_distance(low, candidate, limit=max_distance + 1)
        if d < best_distance:
            best, best_distance = [candidate], d
        elif d == best_distance and candidate not in best:
            best.append(candidate)
    if not best or best_distance > max_distance:
        return None
    if len(best) > 1:
        same_length = [c for c in best if len(c) == len(low)]
        if len(same_length) != 1:
            return None
        return same_length[0]
    return best[0]


def fix_typos(text: str, *, extra_words: Iterable[str] = ()) -> Normalized:
    """Correct typos of command words outside URLs and quotes; keep everything else as typed."""
    extra = tuple(w.lower() for w in extra_words)
    protected = [m.span() for m in _PROTECTED.finditer(text)]
    out: list[str] = []
    corrections: list[tuple[str, str]] = []
    pos = 0
    for m in _WORD.finditer(text):
        start, end = m.span()
        if any(s <= start < e for s, e in protected):
            continue
        # Words glued to digits ("drop14", "p3", "d14") are ids, not typos.
        if (start > 0 and text[start - 1].isdigit()) or (end < len(text) and text[end].isdigit()):
            continue
        fixed = correct_word(m.group(), extra=extra)
        if fixed is None:
            continue
        out.append(text[pos:start])
        out.append(fixed)
        corrections.append((m.group(), fixed))
        pos = end
    out.append(text[pos:])
    return Normalized("".join(out), tuple(corrections))


# --------------------------------------------------------------------------------------------
# Entities
# --------------------------------------------------------------------------------------------

TASK_TYPE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("verify", r"verif(?:y|ies|ied|ying|ication|ications)|validat(?:e|es|ed|ing|ion)"),
    ("build", r"build(?:s|ing)?|compil(?:e|es|ing|ation)"),
    ("deploy", r"(?:re)?deploy(?:s|ed|ing|ment|ments)?|roll[- ]?outs?|releases?"),
    ("monitor", r"monitor(?:s|ed|ing)?"),
    ("provision", r"provision(?:s|ed|ing)?"),
    ("custom", r"custom"),
)
_TASK_TYPE = tuple(
    (name, re.compile(rf"\b(?:{pat})\b", re.IGNORECASE)) for name, pat in TASK_TYPE_PATTERNS
)

_TASK_STATE_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "in_progress",
        r"in[ _-]?progress|running|ongoing|underway|in flight|executing|active|started",
    ),
    ("pending", r"pending|queued|waiting|in the queue|the queue|whats in the queue|backlog"),
    ("assigned", r"assigned(?!\s+(?:to|for)\b)"),
    ("completed", r"completed?|done|finished|succeeded|successful|succeeded"),
    ("failed", r"failed|failing|failures?|errored|broken"),
    ("cancelled", r"cancell?ed|aborted|killed"),
)
_TASK_STATE = tuple(
    (n, re.compile(rf"\b(?:{p})\b", re.IGNORECASE)) for n, p in _TASK_STATE_PATTERNS
)

_DROPLET_STATE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("inactive", r"inactive|idle|stopped|paused"),
    ("active", r"active|online|alive|(?:are|is|that's|thats|which are|that are)\s+up"),
    ("error", r"errors?|erroring|errored|failing|unhealthy|broken|in error"),
    ("healthy", r"healthy"),
    ("down", r"down|offline|dead|unreachable|unresponsive|not responding"),
)
_DROPLET_STATE = tuple(
    (n, re.compile(rf"\b(?:{p})\b", re.IGNORECASE)) for n, p in _DROPLET_STATE_PATTERNS
)

_NUMBER_WORDS: Mapping[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_NUM = r"(?:\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten)"

PRIORITY_WORDS: Mapping[str, int] = {
    "critical": 1, "urgent": 1, "asap": 1, "emergency": 1, "highest": 1, "top": 1,
    "high": 3, "normal": 5, "medium": 5, "default": 5, "low": 8, "lowest": 10,
}  # fmt: skip
_PRIO_NOUN = r"(?:priority|prio|pri)"
_PRIORITY_NUMBER = re.compile(
    rf"\b{_PRIO_NOUN}\b[\s\-]*(?:(?:level|of|is|to|at|as|=|:|#|be)\s*)*({_NUM})\b"
    rf"|\bp(\d{{1,2}})\b|\b(?:a|an)\s+(\d{{1,2}})[\s\-]*{_PRIO_NOUN}\b",
    re.IGNORECASE,
)
_PRIO_WORD = r"(critical|urgent|asap|emergency|highest|top|high|normal|medium|default|low|lowest)"
_PRIORITY_WORD_STRICT = re.compile(
    rf"\b{_PRIO_WORD}[\s\-]*(?:{_PRIO_NOUN}|importance)\b"
    rf"|\b{_PRIO_NOUN}\s*(?:(?:level|of|is|to|at|as|=|:|be)\s*)*{_PRIO_WORD}\b"
    r"|\b(critical|urgent|asap|emergency)\b",
    re.IGNORECASE,
)
_PRIORITY_WORD_LOOSE = re.compile(rf"\b{_PRIO_WORD}\b", re.IGNORECASE)

_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+", re.IGNORECASE)
_QUOTED = re.compile(r"\"([^\"\n]{1,1000})\"|“([^”\n]{1,1000})”|(?<!\w)'([^'\n]{1,1000})'(?!\w)")
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b|\b\d{1,2}\s*(?:am|pm)\b", re.IGNORECASE)
_VERSION = re.compile(r"\bv?\d+(?:\.\d+)+\b", re.IGNORECASE)

_SEP = r"\s*(?:,|and|&|or|\+|/)\s*"
_DROPLET_REF = re.compile(
    r"\b(?:droplets?|services?|nodes?)[ \t]*(?:(?:id|number|no\.?|num|nr)\s*)?[-_#:]?[ \t]*"
    r"#?(\d{1,6})\b"
    rf"((?:{_SEP}(?:(?:droplets?|d|#)\s*-?)?\d{{1,6}}\b(?![:.]\d))*)"
    r"|\b(?:drop|d)[-_ ]?(\d{1,6})\b",
    re.IGNORECASE,
)
_TASK_REF = re.compile(
    r"\b(?:tasks?|jobs?|tickets?)[ \t]*(?:(?:id|number|no\.?|num|nr)\s*)?[-_#:]?[ \t]*#?(\d{1,9})\b"
    rf"((?:{_SEP}(?:(?:tasks?|#)\s*)?\d{{1,9}}\b(?![:.]\d))*)",
    re.IGNORECASE,
)
_TAIL_NUMBER = re.compile(r"\d+")
_BARE_NUMBER = re.compile(r"(#)?\b(\d{1,9})\b(?![.:]\d)")

_LIMIT = re.compile(
    r"\b(?:last|latest|top|first|recent|newest|limit(?:\s+to)?|only|the)\s*[:=]?\s+(\d{1,3})\b"
    r"(?!\s*(?:%|am\b|pm\b|min|mins|minutes?|h\b|hrs?|hours?|days?|weeks?|seconds?|secs?|s\b))"
    r"|\b(\d{1,3})\s+(?:most\s+recent|latest|newest|recent|last)\b"
    r"|\b(?:show|list|get|give|see)(?:\s+me)?(?:\s+the)?\s+(\d{1,3})\b"
    r"|\b(\d{1,3})\s+(?:alerts?|tasks?|events?|warnings?|jobs?|entries|items)\b",
    re.IGNORECASE,
)

_KEY_VALUE = re.compile(r"(?<![\w/.#-])([A-Za-z][A-Za-z0-9_-]{0,39})[ \t]*[:=][ \t]*(?!//)(?=\S)")
_KV_STOP = re.compile(
    r"\s*[,;\n]|\s+(?:and\s+)?[A-Za-z][A-Za-z0-9_-]{0,39}[ \t]*[:=](?![\d/])|\s*$"
)
# Free-text values may mention droplets or tasks ("title: Audit droplet 9") without meaning them.
FREE_TEXT_KEYS = frozenset(
    {"title", "description", "desc", "message", "msg", "note", "notes", "text"}
)

_ALIAS_SOURCE_PREFIX = re.compile(
    r"(?:\b(?:in|from|via|through|according\s+to|per|by)\s+(?:the\s+)?)$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Mention:
    """An id found in the text and where (character offsets into the text searched)."""

    value: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Entities:
    droplets: tuple[Mention, ...] = ()
    """Droplets named explicitly ("droplet 14", "d14", "drop14", an alias), in order."""
    tasks: tuple[Mention, ...] = ()
    """Tasks named explicitly ("task 7", "task #7", "tasks 3 and 4")."""
    bare_numbers: tuple[Mention, ...] = ()
    """"#7" or "7" with no noun: the request decides whether it is a task or a droplet."""
    hashed: tuple[Mention, ...] = ()
    """The bare numbers written with "#"."""
    priority: int | None = None
    priority_out_of_range: int | None = None
    urls: tuple[str, ...] = ()
    url_spans: tuple[tuple[int, int], ...] = ()
    task_type: str | None = None
    task_state: str | None = None
    droplet_state: str | None = None
    pairs: tuple[tuple[str, str], ...] = ()
    """`key: value` pairs, keys lower-cased, values as typed (URLs whole, times intact)."""
    quoted: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def droplet_ids(self) -> tuple[int, ...]:
        return _unique(m.value for m in self.droplets)

    @property
    def task_ids(self) -> tuple[int, ...]:
        return _unique(m.value for m in self.tasks)

    def pair(self, *keys: str) -> str | None:
        for key, value in self.pairs:
            if key in keys:
                return value
        return None


def _unique(values: Iterable[int]) -> tuple[int, ...]:
    seen: list[int] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return tuple(seen)


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


def urls(text: str) -> list[str]:
    """URLs kept whole (scheme, colons, path), with sentence punctuation after them trimmed."""
    return [url for url, _ in _url_spans(text)]


def _url_spans(text: str) -> list[tuple[str, tuple[int, int]]]:
    found = []
    for m in _URL.finditer(text):
        url = _trim_url(m.group())
        if len(url) > 8:
            found.append((url, (m.start(), m.start() + len(url))))
    return found


def _trim_url(url: str) -> str:
    while url:
        last = url[-1]
        if last in ".,;:!?'\"*" or (
            last in ")]}" and url.count({")": "(", "]": "[", "}": "{"}[last]) < url.count(last)
        ):
            url = url[:-1]
        else:
            break
    return url


def quoted(text: str) -> list[str]:
    """Text between double quotes, curly quotes or single quotes (not apostrophes)."""
    return [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(text)]


def key_values(text: str) -> list[tuple[str, str]]:
    """`key: value` and `key=value` pairs; URLs and times like 10:30 stay whole."""
    return list(_key_value_spans(text)[0])


def _key_value_spans(text: str) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
    # Mask URLs so "https://x" is not read as key "https"; masking keeps offsets.
    masked = list(text)
    for _, (s, e) in _url_spans(text):
        masked[s:e] = "\x01" * (e - s)
    flat = "".join(masked)
    pairs: list[tuple[str, str]] = []
    value_spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        m = _KEY_VALUE.search(flat, pos)
        if m is None:
            break
        start = m.end()
        stop = _KV_STOP.search(flat, start + 1)
        end = stop.start() if stop else len(flat)
        value = text[start:end].strip()
        has_url = "\x01" in flat[start:end]
        value = _trim_url(value) if has_url else value.rstrip(" \t.!?")
        value = value.strip("\"'“”")
        if value:
            pairs.append((m.group(1).lower(), value))
            value_spans.append((start, end))
        pos = max(end, m.end())
    return pairs, value_spans


def task_type(text: str) -> str | None:
    """The first task type mentioned (verify/verification, build, deploy/deployment, ...)."""
    best: tuple[int, str] | None = None
    for name, pattern in _TASK_TYPE:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    return best[1] if best else None


def task_state(text: str) -> str | None:
    """A task status in operator words: "running" is in_progress, "done" is completed."""
    return _first_state(text, _TASK_STATE)


def droplet_state(text: str) -> str | None:
    """A droplet status filter: active, inactive, error, healthy or down ("offline" is down)."""
    return _first_state(text, _DROPLET_STATE)


def _first_state(text: str, table: tuple[tuple[str, re.Pattern[str]], ...]) -> str | None:
    best: tuple[int, str] | None = None
    for name, pattern in table:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    return best[1] if best else None


def _number(token: str) -> int:
    low = token.lower()
    return _NUMBER_WORDS[low] if low in _NUMBER_WORDS else int(low)


def priority(text: str, *, loose: bool = False) -> int | None:
    """Priority 1 (highest) to 10: a stated number wins over words (urgent 1, high 3, low 8).

    `loose` also accepts a bare "high" or "low", for a reply to "what priority?".
    """
    value, _ = _priority(text, loose=loose)
    return value


def _priority(text: str, *, loose: bool) -> tuple[int | None, int | None]:
    """(priority, an out-of-range number that was stated)."""
    for m in _PRIORITY_NUMBER.finditer(text):
        raw = next(g for g in m.groups() if g is not None)
        n = _number(raw)
        if 1 <= n <= 10:
            return n, None
        return None, n
    strict = _PRIORITY_WORD_STRICT.search(text)
    if strict:
        word = next(g for g in strict.groups() if g is not None)
        return PRIORITY_WORDS[word.lower()], None
    bare = _PRIORITY_WORD_LOOSE.search(text) if loose else None
    if bare:
        return PRIORITY_WORDS[bare.group(1).lower()], None
    return None, None


def _priority_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _PRIORITY_NUMBER.finditer(text)]


def limit(text: str) -> int | None:
    """How many items were asked for ("last 5 alerts", "top 10 tasks", "limit 20")."""
    for m in _LIMIT.finditer(text):
        raw = next(g for g in m.groups() if g is not None)
        n = int(raw)
        if n >= 1:
            return n
    return None


def _alias_pattern(name: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s_-]+", name.strip()) if w]
    return re.compile(r"(?<![\w-])" + r"[\s_-]+".join(words) + r"(?![\w-])", re.IGNORECASE)


def alias_mentions(
    text: str, aliases: Mapping[str, int], *, taken: Iterable[tuple[int, int]] = ()
) -> list[Mention]:
    """Droplets named by name or nickname ("the registry", "visibility deck"), longest first."""
    spans = list(taken)
    found: list[Mention] = []
    for name in sorted(aliases, key=len, reverse=True):
        if not name.strip() or not any(ch.isalpha() for ch in name):
            continue
        for m in _alias_pattern(name).finditer(text):
            if _overlaps(m.span(), spans):
                continue
            # "droplets in the registry" speaks of the Registry as a source, not a subject.
            if _ALIAS_SOURCE_PREFIX.search(text[max(0, m.start() - 25) : m.start()]):
                continue
            spans.append(m.span())
            found.append(Mention(aliases[name], m.start(), m.end()))
    return found


def droplet_ids(text: str, aliases: Mapping[str, int] | None = None) -> list[int]:
    """Droplet ids: "droplet 14", "droplets 1 and 10", "#14", "drop14", "d14", names."""
    ents = extract(text, aliases=aliases)
    hashed = [m.value for m in ents.hashed]
    return list(_unique([*ents.droplet_ids, *hashed]))


def task_ids(text: str) -> list[int]:
    """Task ids: "task 7", "task #7", "tasks 3 and 4"."""
    return list(extract(text).task_ids)


def extract(text: str, *, aliases: Mapping[str, int] | None = None) -> Entities:
    """Every entity in `text`. Spans are offsets into `text`."""
    taken: list[tuple[int, int]] = []
    url_found = _url_spans(text)
    taken.extend(span for _, span in url_found)
    quoted_spans = [m.span() for m in _QUOTED.finditer(text) if not _overlaps(m.span(), taken)]
    quoted_values = [
        next(g for g in m.groups() if g is not None).strip()
        for m in _QUOTED.finditer(text)
        if m.span() in quoted_spans
    ]
    taken.extend(quoted_spans)
    pairs, value_spans = _key_value_spans(text)
    for (key, _), span in zip(pairs, value_spans, strict=True):
        if key in FREE_TEXT_KEYS:
            taken.append(span)
    taken.extend(m.span() for m in _TIME.finditer(text) if not _overlaps(m.span(), taken))
    taken.extend(m.span() for m in _VERSION.finditer(text) if not _overlaps(m.span(), taken))

    prio, prio_bad = _priority(_blank(text, taken), loose=False)
    taken.extend(_priority_spans(_blank(text, taken)))

    tasks: list[Mention] = []
    for m in _TASK_REF.finditer(text):
        if _overlaps(m.span(), taken):
            continue
        tasks.append(Mention(int(m.group(1)), m.start(), m.end(1)))
        tasks.extend(
            Mention(int(n.group()), m.start(2) + n.start(), m.start(2) + n.end())
            for n in _TAIL_NUMBER.finditer(m.group(2) or "")
        )
        taken.append(m.span())

    droplets: list[Mention] = []
    for m in _DROPLET_REF.finditer(text):
        if _overlaps(m.span(), taken):
            continue
        if m.group(3) is not None:
            droplets.append(Mention(int(m.group(3)), m.start(), m.end()))
        else:
            droplets.append(Mention(int(m.group(1)), m.start(), m.end(1)))
            droplets.extend(
                Mention(int(n.group()), m.start(2) + n.start(), m.start(2) + n.end())
                for n in _TAIL_NUMBER.finditer(m.group(2) or "")
            )
        taken.append(m.span())
    if aliases:
        named = alias_mentions(text, aliases, taken=taken)
        droplets.extend(named)
        taken.extend((m.start, m.end) for m in named)
    droplets.sort(key=lambda m: m.start)

    blanked = _blank(text, taken)
    lim = limit(blanked)
    if lim is not None:
        taken.extend(m.span() for m in _LIMIT.finditer(blanked))

    bare: list[Mention] = []
    hashed: list[Mention] = []
    for m in _BARE_NUMBER.finditer(_blank(text, taken)):
        if _overlaps(m.span(), taken):
            continue
        n = int(m.group(2))
        if n < 1:
            continue
        mention = Mention(n, m.start(), m.end())
        bare.append(mention)
        if m.group(1):
            hashed.append(mention)

    scan = _blank(text, [span for _, span in url_found] + quoted_spans)
    return Entities(
        droplets=tuple(d for d in droplets if d.value >= 1),
        tasks=tuple(t for t in tasks if t.value >= 1),
        bare_numbers=tuple(bare),
        hashed=tuple(hashed),
        priority=prio,
        priority_out_of_range=prio_bad,
        urls=tuple(url for url, _ in url_found),
        url_spans=tuple(span for _, span in url_found),
        task_type=task_type(scan),
        task_state=task_state(scan),
        droplet_state=droplet_state(scan),
        pairs=tuple(pairs),
        quoted=tuple(quoted_values),
        limit=lim,
    )


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` with `spans` replaced by spaces, so later patterns skip them at the same offsets."""
    chars = list(text)
    for s, e in spans:
        chars[s:e] = " " * (e - s)
    return "".join(chars)
