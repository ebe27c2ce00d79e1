"""What a request names, found once per request: droplets, tasks, numbers, priorities, limits,
states, task types, URLs, key: value pairs, a message's text, references to earlier turns.

Regular structure is read where it is regular (ids after "droplet"/"task", "p2", URLs,
key: value); words are looked up in small vocabularies. Each entity remembers the tokens it
came from, so the planner can tell what is left over.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.conversation.understanding.text import Text, Token, by_first_word

MAX_IDS = 50
"""A list or range of ids is cut here ("tasks 1 to 400" is not 400 proposals)."""

DROPLET_NOUNS = frozenset({"droplet", "droplets", "service", "services", "node", "nodes", "drop"})
TASK_NOUNS = frozenset({"task", "tasks", "job", "jobs", "ticket", "tickets", "tsk"})
DROPLET_OR_TASK_NOUNS = DROPLET_NOUNS | TASK_NOUNS
NUMBER_MARKS = frozenset({"number", "no", "num", "#", "id", "="})
"""Between an id noun and its number: "droplet number 5", "droplet=20"."""
LIST_JOINS = frozenset({",", "and", "&", "+", "or"})
RANGE_JOINS = frozenset({"to", "through", "thru", "-", "till", "until"})

PRIORITY_WORDS: Mapping[str, int] = {
    "urgent": 1, "urgently": 1, "critical": 1, "asap": 1, "emergency": 1, "immediately": 1,
    "highest": 1, "top": 1, "blocker": 1, "high": 3, "important": 3, "elevated": 3,
    "normal": 5, "medium": 5, "regular": 5, "standard": 5, "default": 5, "low": 8,
    "whenever": 8, "lowest": 10, "minimal": 10,
}  # fmt: skip
PRIORITY_PHRASES: Mapping[tuple[str, ...], int] = {
    ("right", "away"): 1, ("as", "soon", "as", "possible"): 1, ("top", "priority"): 1,
    ("high", "priority"): 3, ("low", "priority"): 8, ("no", "rush"): 8,
    ("not", "urgent"): 8, ("when", "you", "can"): 8, ("lowest", "priority"): 10,
    ("highest", "priority"): 1, ("normal", "priority"): 5, ("medium", "priority"): 5,
}  # fmt: skip

TASK_STATUS_WORDS: Mapping[str, str] = {
    "pending": "pending", "queued": "pending", "waiting": "pending", "outstanding": "pending",
    "unassigned": "pending", "open": "pending", "assigned": "assigned",
    "running": "in_progress", "ongoing": "in_progress", "underway": "in_progress",
    "executing": "in_progress", "in-progress": "in_progress", "active": "in_progress",
    "completed": "completed", "complete": "completed", "done": "completed",
    "finished": "completed", "succeeded": "completed", "successful": "completed",
    "closed": "completed", "failed": "failed", "failing": "failed", "failures": "failed",
    "failure": "failed", "broken": "failed", "errored": "failed", "crashed": "failed",
    "unsuccessful": "failed", "cancelled": "cancelled", "canceled": "cancelled",
    "aborted": "cancelled", "queue": "pending", "backlog": "pending",
}  # fmt: skip
DROPLET_STATUS_WORDS: Mapping[str, str] = {
    "active": "active", "inactive": "inactive", "error": "error", "erroring": "error",
    "errored": "error", "healthy": "healthy", "down": "down", "offline": "down", "dead": "down",
    "unhealthy": "error", "up": "active", "online": "active", "alive": "active",
    "unreachable": "down", "failing": "error", "broken": "error", "errors": "error",
}  # fmt: skip
TASK_TYPE_WORDS: Mapping[str, tuple[str, bool]] = {
    "verify": ("verify", False), "verification": ("verify", False),
    "verifications": ("verify", True), "verifies": ("verify", True), "verifying": ("verify", False),
    "validate": ("verify", False), "validation": ("verify", False),
    "validations": ("verify", True), "verified": ("verify", False),
    "build": ("build", False), "builds": ("build", True), "building": ("build", False),
    "rebuild": ("build", False), "rebuilds": ("build", True), "compile": ("build", False),
    "compilation": ("build", False), "deploy": ("deploy", False), "deploys": ("deploy", True),
    "deployment": ("deploy", False), "deployments": ("deploy", True),
    "deploying": ("deploy", False), "redeploy": ("deploy", False), "redeploys": ("deploy", True),
    "release": ("deploy", False), "rollout": ("deploy", False), "deployed": ("deploy", False),
    "monitor": ("monitor", False), "monitoring": ("monitor", False),
    "monitors": ("monitor", True), "provision": ("provision", False),
    "provisioning": ("provision", False), "provisions": ("provision", True),
    "custom": ("custom", False),
}  # fmt: skip
WATCH_EVENTS: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    sorted(
        (
            (tuple(p.split()), e)
            for p, e in (
                ("is back", "up"), ("comes back", "up"), ("come back", "up"), ("back up", "up"),
                ("back online", "up"), ("is back up", "up"), ("back", "up"), ("recovers", "up"),
                ("recovered", "up"), ("recover", "up"), ("is up", "up"), ("comes up", "up"),
                ("is healthy", "up"), ("healthy again", "up"), ("up again", "up"),
                ("is online", "up"), ("returns", "up"), ("goes down", "down"),
                ("go down", "down"), ("is down", "down"), ("dies", "down"),
                ("goes offline", "down"),
                ("drops", "down"), ("crashes", "down"), ("becomes unhealthy", "down"),
                ("goes unhealthy", "down"), ("is unhealthy", "down"), ("finishes", "done"),
                ("finished", "done"), ("is done", "done"), ("completes", "done"),
                ("completed", "done"), ("ends", "done"), ("is finished", "done"),
                ("fails", "failed"), ("failed", "failed"), ("fail", "failed"),
                ("errors", "failed"), ("changes", "change"), ("change", "change"),
                ("moves", "change"), ("any change", "change"), ("status changes", "change"),
                ("changes status", "change"), ("updates", "change"), ("till done", "done"),
                ("until done", "done"), ("until it is done", "done"), ("till it is done", "done"),
                ("is complete", "done"), ("finish", "done"), ("complete", "done"),
                ("done", "done"), ("dead", "down"), ("die", "down"), ("crash", "down"),
                ("goes dark", "down"), ("falls over", "down"), ("is offline", "down"),
                ("goes away", "down"), ("stops responding", "down"), ("comes online", "up"),
                ("online again", "up"), ("alive again", "up"), ("is alive", "up"),
                ("errors out", "failed"), ("blows up", "failed"), ("breaks", "failed"),
            )
        ),
        key=lambda item: -len(item[0]),
    )
)  # fmt: skip
PRONOUNS = frozenset({"it", "its", "that", "this", "them", "those", "these", "same", "one"})
ALL_WORDS = frozenset({"all", "every", "each", "everything", "any"})
SPEC_HINT = re.compile(r"(?:\.ya?ml|\.json|openapi|swagger|/specs?\b|spec\.)", re.I)
SPEC_WORDS = frozenset({"spec", "specs", "specification", "openapi", "swagger", "schema"})
PAIR = re.compile(
    r"(?:^|[\s,;(])([A-Za-z][\w-]{0,39})\s*(?::|=)\s*([^\s,;][^,;]*?)"
    r"(?=\s*(?:[,;]|$)|\s+and\s+[A-Za-z][\w-]{0,39}\s*[:=])"
)
PAIR_KEYS_NOT_PAYLOAD = frozenset(
    {"task", "tasks", "job", "droplet", "droplets", "status", "q", "question", "note", "notes",
     "please", "ps", "to", "and", "hi", "hello", "hey", "ok", "okay", "so", "also", "then",
     "update", "reminder", "fyi", "message", "msg", "text", "heads", "alert", "warning", "say",
     "saying", "tell", "urgent", "important", "news", "info", "re"}
)  # fmt: skip
PAIR_KEY_ALIASES: Mapping[str, str] = {
    "title": "title", "name": "title", "called": "title", "description": "description",
    "desc": "description", "details": "description", "capability": "required_capability",
    "required_capability": "required_capability", "requires": "required_capability",
    "cap": "required_capability", "priority": "priority", "prio": "priority",
    "code": "code_url", "code_url": "code_url", "repo": "code_url", "repository": "code_url",
    "url": "code_url", "git": "code_url", "source": "code_url", "spec": "spec_url",
    "spec_url": "spec_url", "openapi": "spec_url", "specification": "spec_url",
    "type": "task_type", "task_type": "task_type", "kind": "task_type",
    "target": "target_droplet_id", "target_droplet_id": "target_droplet_id",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Found:
    kind: str
    value: object
    first: int
    last: int
    """Token positions (inclusive)."""
    detail: str = ""
    """e.g. "alias", "bare", "plural", "context" (came from the conversation)."""


@dataclass(slots=True)
class Entities:
    found: list[Found] = field(default_factory=list)
    used: set[int] = field(default_factory=set)
    """Token positions some entity took."""

    def add(self, kind: str, value: object, first: int, last: int, detail: str = "") -> None:
        self.found.append(Found(kind, value, first, last, detail))
        self.used.update(range(first, last + 1))

    def of(self, kind: str) -> list[Found]:
        return [f for f in self.found if f.kind == kind]

    def values(self, kind: str) -> list[object]:
        seen: list[object] = []
        for f in self.found:
            if f.kind == kind and f.value not in seen:
                seen.append(f.value)
        return seen

    def first(self, kind: str) -> object | None:
        values = self.values(kind)
        return values[0] if values else None

    def has(self, kind: str) -> bool:
        # A plain loop: the planner asks this dozens of times a plan, and a generator in any()
        # cost twice as much.
        for f in self.found:  # noqa: SIM110
            if f.kind == kind:
                return True
        return False

    def kinds(self) -> set[str]:
        return {f.kind for f in self.found}


def extract(text: Text, tokens: Sequence[Token], aliases: AliasIndex) -> Entities:
    """The entities of one request (`tokens`, a slice of `text.tokens`)."""
    ents = Entities()
    words = [t.text for t in tokens]
    # Most passes look for a few words only: each tests here whether any of them is said at all.
    said = frozenset(words)
    if not said.isdisjoint(WATCH_NOUNS):
        _watch_ids(words, tokens, ents)
    if not said.isdisjoint(DROPLET_OR_TASK_NOUNS):
        _ids(words, tokens, ents)
    if len(ents.values("task")) > 1:
        first = min(f.first for f in ents.of("task"))
        last = max(f.last for f in ents.of("task"))
        ents.found.append(Found("tasks", tuple(ents.values("task")), first, last))
    if aliases.anywhere or not said.isdisjoint(aliases.starts):
        _aliases(words, ents, aliases)
    if not said.isdisjoint(PRIORITY_STARTS):
        _priorities(words, tokens, ents)
    numbers = [i for i, tok in enumerate(tokens) if tok.num is not None]
    _limits(words, tokens, ents, said, numbers)
    _words_of(words, ents)
    _watch_events(words, ents, said)
    if "\x00" in text.original:  # a URL's placeholder
        _urls(words, text, ents)
    _numbers(tokens, ents, numbers)
    bare = ents.of("number")
    if len(bare) > 1 and not ents.has("task") and not ents.has("droplet"):
        # "cancel 101 and 102": several ids said bare are a list (of tasks, where one fits).
        ents.found.append(
            Found("tasks", tuple(f.value for f in bare), bare[0].first, bare[-1].last, "bare")
        )
    return ents


# ---- ids -----------------------------------------------------------------------------------------

WATCH_NOUNS = frozenset({"watch", "watches"})
WATCH_ID_VERBS = frozenset(
    {"cancel", "remove", "delete", "drop", "stop", "end", "kill", "clear", "unwatch", "disable"}
)


def _watch_ids(words: Sequence[str], tokens: Sequence[Token], ents: Entities) -> None:
    """ "remove watch 3", "watch #3", "watch number 3", "watch id 3": a watch by its id. A bare
    "watch 14" is a request to watch droplet or task 14, not a watch's id."""
    for i, word in enumerate(words):
        if word not in WATCH_NOUNS or i + 1 >= len(words):
            continue
        j = i + 1
        if words[j] in ("number", "id", "no") and j + 1 < len(words):
            j += 1
        if tokens[j].num is None:
            continue
        before = [w for w in words[max(0, i - 2) : i] if w not in ("the", "my", "that")]
        if j > i + 1 or (before and before[-1] in WATCH_ID_VERBS):
            ents.add("watch", tokens[j].num, i, j)


def _id_list(words: Sequence[str], tokens: Sequence[Token], i: int) -> tuple[list[int], int]:
    """Numbers from position i: "4, 7 and 9", "100 through 103", "number 14"; (ids, last)."""
    ids: list[int] = []
    last = i - 1
    j = i
    while j < len(tokens) and words[j] in NUMBER_MARKS:
        j += 1
    while j < len(tokens) and tokens[j].num is not None and not tokens[j].ordinal:
        ids.append(int(tokens[j].num or 0))
        last = j
        k = j + 1
        if k + 1 < len(tokens) and words[k] in RANGE_JOINS and tokens[k + 1].num is not None:
            low, high = ids[-1], int(tokens[k + 1].num or 0)
            if 0 < high - low <= MAX_IDS:
                ids += list(range(low + 1, high + 1))
                last = k + 1
                k += 2
        while k < len(tokens) and (words[k] in LIST_JOINS or words[k] in NUMBER_MARKS):
            k += 1
        if k < len(tokens) and words[k] in DROPLET_OR_TASK_NOUNS:
            break
        if (
            k < len(tokens)
            and tokens[k].num is not None
            and not tokens[k].ordinal
            and not _counts(words, k)
        ):
            j = k
            continue
        break
    return ids[:MAX_IDS], last


def _counts(words: Sequence[str], k: int) -> bool:
    """ "droplet 40, five of them": a number of items, not a further id."""
    return words[k + 1 : k + 3] in (["of", "them"], ["of", "those"], ["of", "these"])


def _ids(words: Sequence[str], tokens: Sequence[Token], ents: Entities) -> None:
    for i, word in enumerate(words):
        if word in DROPLET_OR_TASK_NOUNS:
            if i in ents.used:
                continue
            ids, last = _id_list(words, tokens, i + 1)
            if not ids:
                continue
            kind = "droplet" if word in DROPLET_NOUNS else "task"
            for ident in ids:
                ents.add(kind, ident, i, last)


@dataclass(frozen=True, slots=True)
class AliasIndex:
    """Droplet names as words, found by their first word, longest first.

    Built once per alias table (the planner keeps the last one): sorting and grouping every
    name again for each request a message holds cost more than finding them.
    """

    table: Mapping[str, int]
    """What it was built from, to tell whether a new table is the same."""
    by_first: Mapping[str, tuple[tuple[tuple[str, ...], int], ...]]
    anywhere: tuple[tuple[tuple[str, ...], int], ...]
    """Names that fit at any position (a blank alias)."""
    starts: frozenset[str]
    """The first words of `by_first`: without one of them, no name is said."""

    @classmethod
    def of(cls, aliases: Mapping[str, int]) -> AliasIndex:
        names = sorted(
            ((tuple(a.split()), d) for a, d in aliases.items() if a), key=lambda x: -len(x[0])
        )
        # Only a name whose first word is the word at i can match there: look those up, longest
        # first as in `names`, instead of comparing every name at every position.
        by_first: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for entry in names:
            by_first.setdefault(entry[0][0] if entry[0] else "", []).append(entry)
        anywhere = tuple(by_first.pop("", ()))
        return cls(
            table=dict(aliases),
            by_first={first: tuple(entries) for first, entries in by_first.items()},
            anywhere=anywhere,
            starts=frozenset(by_first),
        )


def _aliases(words: Sequence[str], ents: Entities, aliases: AliasIndex) -> None:
    by_first, anywhere = aliases.by_first, aliases.anywhere
    i = 0
    while i < len(words):
        names = by_first.get(words[i], ())
        if anywhere:
            names = (*names, *anywhere)
        for name, droplet_id in names:
            n = len(name)
            if tuple(words[i : i + n]) == name and ents.used.isdisjoint(range(i, i + n)):
                last = i + n - 1
                if last + 1 < len(words) and words[last + 1] in DROPLET_NOUNS:
                    last += 1  # "the voice droplet"
                ents.add("droplet", droplet_id, i, last, "alias")
                i = last
                break
        i += 1


# ---- priorities and limits ---------------------------------------------------------------------


PRIORITY_NOUNS = frozenset({"priority", "prio", "pri"})
# Each phrase with its place in PRIORITY_PHRASES, found by its first word.
RANKED_PRIORITY_PHRASES = by_first_word(
    ((rank, phrase, value) for rank, (phrase, value) in enumerate(PRIORITY_PHRASES.items())),
    lambda item: item[1],
)
PRIORITY_STARTS = frozenset({*PRIORITY_NOUNS, *PRIORITY_WORDS, *RANKED_PRIORITY_PHRASES})
"""The words a priority is said with: "priority 2", "high", "as soon as possible"."""


def _priorities(words: Sequence[str], tokens: Sequence[Token], ents: Entities) -> None:
    _priority_nouns(words, tokens, ents)
    _priority_phrases(words, ents)
    _priority_words(words, ents)


def _priority_nouns(words: Sequence[str], tokens: Sequence[Token], ents: Entities) -> None:
    """ "priority 2", "prio: high", "2 priority", "high priority"."""
    for i, word in enumerate(words):
        if word in PRIORITY_NOUNS and i not in ents.used:
            j = i + 1
            while j < len(words) and words[j] in (":", "=", "of", "is", "at", "to", "level", "be"):
                j += 1
            if j < len(tokens) and tokens[j].num is not None:
                ents.add("priority", int(tokens[j].num or 0), i, j)
                continue
            if j < len(words) and words[j] in PRIORITY_WORDS:
                ents.add("priority", PRIORITY_WORDS[words[j]], i, j)
                continue
            if i >= 1 and tokens[i - 1].num is not None and (i - 1) not in ents.used:
                ents.add("priority", int(tokens[i - 1].num or 0), i - 1, i)
                continue
            if i >= 1 and words[i - 1] in PRIORITY_WORDS:
                ents.add("priority", PRIORITY_WORDS[words[i - 1]], i - 1, i)


def _priority_phrases(words: Sequence[str], ents: Entities) -> None:
    """ "as soon as possible", "no rush": taken phrase by phrase in PRIORITY_PHRASES' order, each
    from left to right (the order they are added in is the order their values are read)."""
    matches: list[tuple[int, int, int, int]] = []
    for i, word in enumerate(words):
        for rank, phrase, value in RANKED_PRIORITY_PHRASES.get(word, ()):
            n = len(phrase)
            if tuple(words[i : i + n]) == phrase:
                matches.append((rank, i, n, value))
    for _, i, n, value in sorted(matches):
        if ents.used.isdisjoint(range(i, i + n)):
            ents.add("priority", value, i, i + n - 1)


def _priority_words(words: Sequence[str], ents: Entities) -> None:
    """ "urgent", "asap"; "high", "low" only near a task or priority word."""
    for i, word in enumerate(words):
        if word in PRIORITY_WORDS and i not in ents.used and word not in ("top", "default", "open"):
            if word in ("high", "low", "normal", "medium", "regular", "standard") and not _near(
                words, i, ("task", "tasks", "job", "priority", "prio")
            ):
                continue
            ents.add("priority", PRIORITY_WORDS[word], i, i, "word")


def _near(words: Sequence[str], i: int, wanted: Sequence[str], span: int = 3) -> bool:
    return any(w in wanted for w in words[max(0, i - span) : i + span + 1])


LIMIT_BEFORE = frozenset({"last", "latest", "first", "top", "newest", "recent", "next", "oldest"})
COLLECTIONS = frozenset(
    {"alerts", "alert", "tasks", "task", "jobs", "warnings", "events", "deploys", "builds",
     "deployments", "verifications", "failures", "incidents", "errors", "items", "entries",
     "ones", "pending", "failed", "running", "completed", "cancelled"}
)  # fmt: skip


def _collection_follows(words: Sequence[str], j: int) -> bool:
    """ "fifteen in progress tasks", "5 failed deploys", "one most recent alert": a collection
    noun after any state, type or recency words."""
    skipped = 0
    while j < len(words) and skipped < 4:
        word = words[j]
        if word in COLLECTIONS and word not in TASK_STATUS_WORDS:
            return True
        if (
            word in TASK_STATUS_WORDS
            or word in TASK_TYPE_WORDS
            or word in ("in", "progress", "most", "recent", "latest", "newest", "of", "the")
        ):
            j += 1
            skipped += 1
            continue
        return word in COLLECTIONS
    return False


LIMIT_NOUNS = frozenset({"limit", "max", "maximum", "most", "cap", "top"})
LAST_ONE = frozenset({"last", "latest", "newest"})


def _limits(
    words: Sequence[str],
    tokens: Sequence[Token],
    ents: Entities,
    said: frozenset[str],
    numbers: Sequence[int],
) -> None:
    """How many items are asked for. `said`: the words present; `numbers`: the positions of
    the numbers. Each kind of limit is looked for only if a word it needs is present."""
    if numbers:
        _counted_limits(words, tokens, ents, numbers)
    if not said.isdisjoint(LIMIT_NOUNS):
        _named_limits(words, tokens, ents)
    if "single" in said:
        _single_limits(words, ents)
    if not said.isdisjoint(LAST_ONE):
        _last_one_limits(words, ents)


def _counted_limits(
    words: Sequence[str], tokens: Sequence[Token], ents: Entities, numbers: Sequence[int]
) -> None:
    """ "last 5", "5 failed deploys", "cancelled tasks, show 7": a number counting items."""
    for i in numbers:
        tok = tokens[i]
        if i in ents.used:
            continue
        before = words[i - 1] if i else ""
        before2 = words[i - 2] if i > 1 else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if tok.ordinal:
            continue
        if before in LIMIT_BEFORE or (before2 in LIMIT_BEFORE and before in ("few", "the")):
            ents.add("limit", tok.num, i - 1, i)
        elif (
            after in ("most", "latest", "newest", "recent", "last")
            or (_collection_follows(words, i + 1) and before not in DROPLET_OR_TASK_NOUNS)
            or (  # "failed builds, five of them"
                after == "of"
                and i + 2 < len(words)
                and words[i + 2] in ("them", "those", "these")
                and before not in DROPLET_OR_TASK_NOUNS
            )
        ):
            ents.add("limit", tok.num, i, i)
    for i in numbers:
        tok = tokens[i]
        # "cancelled tasks, show 7": a number closing a listing of a collection.
        if (
            i not in ents.used
            and not tok.ordinal
            and i >= 1
            and words[i - 1] in ("show", "list", "give")
            and (i + 1 == len(words) or words[i + 1] in (".", "!", "?"))
            and any(w in COLLECTIONS for w in words[: i - 1])
        ):
            ents.add("limit", tok.num, i, i)


def _named_limits(words: Sequence[str], tokens: Sequence[Token], ents: Entities) -> None:
    """ "limit 30", "max 10", "at most 5", "limit=25"."""
    for i, word in enumerate(words):
        if word not in LIMIT_NOUNS:
            continue
        j = i + 2 if i + 2 < len(tokens) and words[i + 1] in ("=", ":") else i + 1
        if j < len(tokens) and tokens[j].num is not None and j not in ents.used:
            ents.add("limit", tokens[j].num, i, j)


def _single_limits(words: Sequence[str], ents: Entities) -> None:
    """ "the single most recent alert"."""
    for i, word in enumerate(words):
        if word == "single" and i not in ents.used and _collection_follows(words, i + 1):
            ents.add("limit", 1, i, i, "singular")


def _last_one_limits(words: Sequence[str], ents: Entities) -> None:
    """ "the last alert", "latest task": one."""
    for i, word in enumerate(words):
        if (
            word in LAST_ONE
            and i + 1 < len(words)
            and words[i + 1] in ("alert", "task", "warning", "event", "failure", "one")
            and i not in ents.used
        ):
            ents.add("limit", 1, i, i + 1, "singular")


# ---- words ---------------------------------------------------------------------------------------

STATE_STARTS = frozenset(
    {"in", "being", *TASK_STATUS_WORDS, *DROPLET_STATUS_WORDS, *TASK_TYPE_WORDS, *ALL_WORDS,
     *PRONOUNS}
)  # fmt: skip
"""The words _words_of reads anything from."""


def _words_of(words: Sequence[str], ents: Entities) -> None:
    for i, word in enumerate(words):
        if word not in STATE_STARTS or i in ents.used:
            continue
        if word in ("in", "being") and i + 1 < len(words) and words[i + 1] in ("progress",):
            ents.add("task_status", "in_progress", i, i + 1)
            continue
        passive = i >= 1 and words[i - 1] in ("be", "been", "get", "gets", "got", "is", "was")
        task_state = TASK_STATUS_WORDS.get(word)
        droplet_state = DROPLET_STATUS_WORDS.get(word)
        if (
            word in ("assigned", "running")
            and i + 1 < len(words)
            and words[i + 1] in ("to", "for", "on")
            and (i == 0 or words[i - 1] not in ("status", "state"))
        ):
            task_state = None  # "assigned to droplet 14", "running on droplet 3": who, not a state
        if word in ("cancelled", "canceled") and passive and words[i - 1] != "is":
            task_state = None  # "can be cancelled": a request, not a state
        if task_state:
            ents.add("task_status", task_state, i, i)
        if droplet_state:
            ents.add("droplet_status", droplet_state, i, i)
        if word in TASK_TYPE_WORDS:
            task_type, plural = TASK_TYPE_WORDS[word]
            ents.found.append(Found("task_type", task_type, i, i, "plural" if plural else ""))
        if word in ALL_WORDS:
            ents.found.append(Found("all", True, i, i))
        if word in PRONOUNS:
            ents.found.append(Found("pronoun", word, i, i))


EVENT_VALUES = frozenset({"up", "down", "change", "done", "failed"})
EVENT_NOUNS = frozenset({"event", "events"})


# Each group keeps WATCH_EVENTS' order (longest first), so the first match is the same.
WATCH_EVENTS_BY_FIRST_WORD = by_first_word(WATCH_EVENTS, lambda item: item[0])
WATCH_EVENT_STARTS = frozenset(WATCH_EVENTS_BY_FIRST_WORD)


def _watch_events(words: Sequence[str], ents: Entities, said: frozenset[str]) -> None:
    if not said.isdisjoint(EVENT_NOUNS):
        named = _named_event(words)
        if named is not None:
            ents.found.append(named)
            return
    if said.isdisjoint(WATCH_EVENT_STARTS):
        return
    for i, word in enumerate(words):
        if word not in WATCH_EVENT_STARTS:
            continue
        for phrase, event in WATCH_EVENTS_BY_FIRST_WORD[word]:
            n = len(phrase)
            if tuple(words[i : i + n]) == phrase:
                ents.found.append(Found("watch_event", event, i, i + n - 1))
                break


def _named_event(words: Sequence[str]) -> Found | None:
    """ "event=down", "event: failed": the event named as a field, which is the only one."""
    for i in range(len(words) - 2):
        if words[i] in EVENT_NOUNS and words[i + 1] in ("=", ":") and words[i + 2] in EVENT_VALUES:
            return Found("watch_event", words[i + 2], i, i + 2)
    return None


def _urls(words: Sequence[str], text: Text, ents: Entities) -> None:
    for i, word in enumerate(words):
        if not word.startswith("\x00url"):
            continue
        url = text.urls[int(word[4:])]
        context = set(words[max(0, i - 3) : i])
        kind = "spec_url" if SPEC_HINT.search(url) or context & SPEC_WORDS else "code_url"
        ents.add(kind, url, i, i)


def _numbers(tokens: Sequence[Token], ents: Entities, numbers: Sequence[int]) -> None:
    """The numbers no other entity took (`numbers`: the positions of all)."""
    for i in numbers:
        tok = tokens[i]
        if i not in ents.used and not tok.ordinal:
            ents.found.append(Found("number", tok.num, i, i, "bare"))


# ---- key: value pairs ----------------------------------------------------------------------------


def pairs(original: str) -> list[tuple[str, str]]:
    """ "title: Nightly build, branch: main" -> [("title", "Nightly build"), ("branch", "main")]."""
    out: list[tuple[str, str]] = []
    for match in PAIR.finditer(original):
        key, value = match.group(1), match.group(2).strip().rstrip(".!?")
        if key.lower() in PAIR_KEYS_NOT_PAYLOAD or not value or value.startswith("//"):
            continue
        out.append((key, value))
    return out
