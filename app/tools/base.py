"""What a tool is: one object that knows everything about one thing the service can do.

A tool declares its arguments (a pydantic model: the LLM's JSON Schema is derived from it and
validation yields typed values), whether it writes and which permission it needs, the peers it
calls, how it runs against the mesh, how it renders for chat and voice, the questions it asks
for missing arguments, and the cues the offline planner recognises it by (as data). Nothing
else in the service names a tool.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from app.domain.identity import Caller, Permission
from app.domain.plan import ToolCall

if TYPE_CHECKING:
    from app.tools.context import RunContext

Channel = Literal["chat", "voice"]
Peer = Literal["registry", "orchestrator"]

OutcomeStatus = Literal[
    "ok", "degraded", "unavailable", "not_found", "rejected", "error", "forbidden", "invalid"
]
"""`degraded`: answered, but not first-hand (e.g. from the static catalogue, peers down)."""

EntityKind = Literal[
    "droplet",
    "droplets",
    "task",
    "tasks",
    "watch",
    "number",
    "priority",
    "limit",
    "task_status",
    "droplet_status",
    "task_type",
    "code_url",
    "spec_url",
    "pairs",
    "message",
    "title",
    "description",
    "capability",
    "watch_event",
    "all",
]
"""What the offline planner's entity pass finds in a message (see conversation.planners)."""


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown keys are refused, values are checked once."""

    model_config = ConfigDict(extra="forbid", frozen=True)


A = TypeVar("A", bound=ToolArgs)


@dataclass(frozen=True, slots=True)
class Slot:
    """How one argument is filled from a message: the entity kind that carries it."""

    entity: EntityKind
    question: str | None = None
    """Asked when the argument is required and missing ("Which droplet is the task for?")."""
    spoken: str | None = None
    """The same question for voice, when it must differ."""
    default: object = None
    """Said explicitly in the call when the message does not say it (create_task's priority 5),
    so the confirmation shows it and it is easy to change."""


@dataclass(frozen=True, slots=True)
class Cues:
    """How the offline planner recognises a tool, as data.

    Words are matched on the normalised message (lower case, fillers removed, number words
    turned into digits, typos corrected towards known words); multi-word entries match as
    phrases. Scores are additive; the planner's engine, not the tool, decides between tools.
    """

    verbs: tuple[str, ...] = ()
    """Action words that name this tool ("cancel", "kill", "abort")."""
    nouns: tuple[str, ...] = ()
    """What it is about ("alerts", "warnings"): enough without a verb ("alerts?")."""
    phrases: tuple[str, ...] = ()
    """Whole phrases that name it on their own ("what can you do")."""
    context: tuple[str, ...] = ()
    """Words that support it when another cue is present ("healthy", "status")."""
    entities: tuple[EntityKind, ...] = ()
    """Entity kinds whose presence supports it, e.g. a task type for create_task."""
    against: tuple[str, ...] = ()
    """Words that argue against it ("all" for a single-item tool)."""
    needs: tuple[EntityKind, ...] = ()
    """Entity kinds without which it is not a candidate at all (a pronoun or the conversation
    may stand in for an id). Such an entity on its own ("droplet 14?") names the tool."""
    excludes: tuple[EntityKind, ...] = ()
    """Entity kinds that argue against it: an id for a listing tool."""
    needs_any: tuple[EntityKind, ...] = ()
    """At least one of these entity kinds must be present for it to be a candidate ("tell me
    a joke" is not a watch: nothing to watch is named)."""
    to_someone: bool = False
    """Its verbs and phrases are said to a recipient, so one said to the operator ("tell me
    when …", "give me a heads up") does not count for it."""


@dataclass(frozen=True, slots=True)
class HelpEntry:
    title: str
    examples: tuple[str, ...]
    spoken: str = ""
    """What follows "I can" when help is read aloud; the title, lower-cased, if it reads so."""

    @property
    def can(self) -> str:
        return self.spoken or self.title.lower()


ItemStatus = Literal["done", "already_finished", "refused", "failed", "unavailable"]


@dataclass(frozen=True, slots=True)
class Item:
    """One element of a bulk action (a task cancelled, retried, ...), reported on its own."""

    id: int
    status: ItemStatus
    title: str | None = None
    message: str | None = None
    new_id: int | None = None
    """For a retry: the task that was created."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A write made concrete before it is proposed: exactly what a yes will do, or why there is
    nothing to propose."""

    args: Mapping[str, Any] | None
    """The concrete arguments to propose; None with no answer: propose the call as it is."""
    preview: str | None = None
    """What the proposal lists (the tasks a bulk cancel will touch), shown with the question."""
    spoken: str | None = field(default=None, compare=False)
    """The same for voice: a few tasks by name and how many more, not a list of fifty.
    Derived from the same tasks as `preview`, so it takes no part in comparisons."""
    answer: str | None = None
    """Said instead of a proposal: nothing matches, too many, cannot be undone."""


@dataclass(slots=True)
class Outcome:
    """What running one call gave: never an exception, always something to say."""

    call: ToolCall
    status: OutcomeStatus = "ok"
    result: Any = None
    message: str | None = None
    """Why it failed (or why it is degraded), safe to show a user."""
    peer: str | None = None
    duration_ms: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)
    """What later turns may refer to: last_task_id, last_droplet_id."""
    items: list[Item] = field(default_factory=list)
    """For bulk actions: every element's own outcome (audited one by one)."""
    undo: dict[str, Any] | None = None
    """For a write: what would reverse it (the tasks it created), for "undo"."""
    unconfirmed: bool = False
    """For a write that did not answer: it may have taken effect all the same (its request
    reached the peer, and no answer said what became of it)."""

    @property
    def answered(self) -> bool:
        return self.status in ("ok", "degraded")


class ArgsInvalid(Exception):
    """A call's arguments do not fit the tool; `problems` are sentences a person can act on."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class Tool(ABC, Generic[A]):
    """One capability. Subclasses set the class attributes and implement `run` and `render`."""

    name: ClassVar[str]
    description: ClassVar[str]
    """For people and models: what it does, in one or two sentences."""
    Args: type[A]
    writes: ClassVar[bool] = False
    permission: ClassVar[Permission | None] = "read"
    peers: ClassVar[tuple[Peer, ...]] = ()
    slots: ClassVar[Mapping[str, Slot]] = {}
    """Argument name (dotted for nested: "payload.target_droplet_id") to how it is filled."""
    fan_out: ClassVar[str | None] = None
    """An argument that, named several times ("droplets 1 and 10"), makes one call each."""
    cues: ClassVar[Cues] = Cues()
    help: ClassVar[HelpEntry | None] = None
    action: ClassVar[str] = "do that"
    """What it does, as said after "I couldn't" / "You may not" ("cancel task {task_id}")."""
    done: ClassVar[str] = "done"
    """Its past participle, as in "nothing was cancelled"."""

    # ---- arguments ---------------------------------------------------------------------------

    def parse(self, args: Mapping[str, Any]) -> A:
        """Typed arguments, validated once; ArgsInvalid with readable problems otherwise."""
        try:
            return self.Args.model_validate(dict(args))
        except ValidationError as exc:
            raise ArgsInvalid([_problem(e) for e in exc.errors()]) from None

    def required(self) -> tuple[str, ...]:
        """Required arguments by dotted name, in the order a person would be asked."""
        return _required_of(type(self))

    def missing(self, args: Mapping[str, Any]) -> list[str]:
        return [path for path in self.required() if _lookup(args, path) is None]

    def schema(self) -> dict[str, Any]:
        """The JSON Schema a model is given for this tool's arguments (no $refs, no titles)."""
        return _plain_schema(self.Args.model_json_schema())

    # ---- running -----------------------------------------------------------------------------

    @abstractmethod
    async def run(self, args: A, ctx: RunContext, out: Outcome) -> None:
        """Do it against the mesh, filling `out` (status, result, context). Peer errors may
        be raised: the executor turns them into statuses."""

    async def prepare(self, args: A, ctx: RunContext) -> Prepared:
        """Before a write is proposed: make it concrete (resolve a filter into the exact tasks)
        or say why there is nothing to propose. Most writes are concrete already: no new
        arguments and no answer means the call is proposed as it is."""
        return Prepared(None)

    # ---- saying ------------------------------------------------------------------------------

    @abstractmethod
    def render(self, out: Outcome, channel: Channel) -> str:
        """The answer for an answered outcome (ok or degraded), for chat or voice."""

    def propose(self, args: A, channel: Channel) -> str:
        """For a write: precisely what will happen (the confirmation question's first part)."""
        return f"I will {self.action_for(args.model_dump())}."

    def question(self, missing: Sequence[str], channel: Channel) -> str:
        slot = self.slots.get(missing[0]) if missing else None
        if slot is not None and slot.question:
            return slot.spoken if channel == "voice" and slot.spoken else slot.question
        return f"I need {', '.join(m.split('.')[-1].replace('_', ' ') for m in missing)}."

    def action_for(self, args: Mapping[str, Any]) -> str:
        values = _flat_scalars(args)
        try:
            return self.action.format(**values)
        except (KeyError, IndexError, ValueError):
            return self.action.split(" {")[0]

    def summary(self, args: Mapping[str, Any]) -> str:
        """A short human line for a proposal card ("cancel task 7")."""
        return self.action_for(args)

    def allowed(self, caller: Caller) -> bool:
        return self.permission is None or caller.can(self.permission)


# ---- helpers -------------------------------------------------------------------------------------


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        message = "is not an argument of this tool"
    return f"{where}: {message}" if where else message


def _nested_fields(model: type[BaseModel], name: str) -> Mapping[str, Any]:
    annotation = model.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.model_fields
    return {}


def _lookup(args: Mapping[str, Any], path: str) -> Any:
    value: Any = args
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _flat_scalars(args: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, Mapping):
            flat.update({k: v for k, v in value.items() if isinstance(v, int | str)})
        elif isinstance(value, int | str):
            flat[key] = value
        elif isinstance(value, list | tuple) and value:
            flat[key] = ", ".join(str(v) for v in value)
    return flat


def _plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline `$defs` and drop `title`s: the subset every model provider accepts."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key in ("title", "$defs"):
                    continue
                if key == "properties" and isinstance(value, dict):
                    # Property names are arguments, not keywords: a `title` argument stays.
                    out[key] = {name: walk(prop) for name, prop in value.items()}
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


Renderer = Callable[[Outcome, Channel], str]


@functools.cache  # per tool class: its Args and slots are class attributes, fixed at import
def _required_of(tool: type[Tool[Any]]) -> tuple[str, ...]:
    names = [n for n, f in tool.Args.model_fields.items() if f.is_required()]
    nested = [
        f"{outer}.{inner}"
        for outer in names
        for inner, f in _nested_fields(tool.Args, outer).items()
        if f.is_required()
    ]
    flat = [n for n in names if not _nested_fields(tool.Args, n)]
    order = list(tool.slots)
    return tuple(sorted([*flat, *nested], key=lambda n: order.index(n) if n in order else 99))
