"""Arguments of the write tools, read from free text: what a message says about a task to
create or a message to send, and how a follow-up reply changes a pending call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.conversation.planners import entities as dx
from app.conversation.planners.entities import Entities, Mention
from app.tools.catalogue import TASK_TYPES

DEFAULT_PRIORITY = 5
"""Priority when none is said: "normal". Shown in the confirmation, so it is easy to change."""

_TITLE_VERB: Mapping[str, str] = {
    "verify": "Verify",
    "build": "Build",
    "deploy": "Deploy",
    "monitor": "Monitor",
    "provision": "Provision",
    "custom": "Custom task",
}
_KEYS_TYPE = ("type", "task_type", "kind", "tasktype")
_KEYS_TITLE = ("title", "name", "called")
_KEYS_DESCRIPTION = ("description", "desc", "details")
_KEYS_CAPABILITY = ("capability", "required_capability", "requires", "cap", "requirement")
_KEYS_PRIORITY = ("priority", "prio", "pri")
_KEYS_TARGET = ("target", "target_droplet_id", "droplet", "target_droplet", "droplet_id")
_KEYS_CODE = ("code", "code_url", "repo", "repository", "source", "url", "git")
_KEYS_SPEC = ("spec", "spec_url", "specification", "openapi", "schema", "contract")
_KEYS_MESSAGE = ("message", "msg", "text")
_KNOWN_KEYS = frozenset(
    _KEYS_TYPE + _KEYS_TITLE + _KEYS_DESCRIPTION + _KEYS_CAPABILITY + _KEYS_PRIORITY
    + _KEYS_TARGET + _KEYS_CODE + _KEYS_SPEC + _KEYS_MESSAGE
)  # fmt: skip
# Keys that are really a sentence's words ("create a task: verify ...", "quick q: is ...").
_NOT_PAYLOAD = frozenset(
    {"task", "tasks", "job", "jobs", "droplets", "status", "q", "question", "note", "notes",
     "please", "ps", "to", "and", "hi", "hello", "hey", "ok", "okay", "so", "also", "then",
     "instead", "actually", "update", "change", "set", "make", "with", "for", "at", "by"}
) | frozenset(dx.VOCABULARY)  # fmt: skip

_SPEC_CUE = re.compile(
    r"\b(?:spec|specs|specification|openapi|swagger|schema|contract|api doc)", re.I
)
_SPEC_URL = re.compile(r"(?:\.ya?ml|\.json|openapi|swagger|/specs?\b|spec\.)", re.I)
_TITLE_PHRASE = re.compile(
    r"\b(?:titled|entitled|called|named|title)\s+(?!:)(.+?)(?=\s+(?:for|with|on|at|priority|prio|"
    r"and|code|spec|to)\b|[,;.!?]|$)",
    re.I,
)
_CAPABILITY_PHRASE = re.compile(
    r"\b(?:requir(?:e|es|ing)|needs?|needing|with)\s+(?:the\s+)?(?:capability|cap)\s*[:=]?\s*"
    r"[\"']?([A-Za-z][\w.\-]{0,99})",
    re.I,
)


@dataclass(frozen=True, slots=True)
class TaskSlots:
    """What a message says about a task to create; None/empty when it does not say."""

    task_type: str | None = None
    title: str | None = None
    description: str | None = None
    capability: str | None = None
    priority: int | None = None
    targets: tuple[int, ...] = ()
    code_url: str | None = None
    spec_url: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def said_anything(self) -> bool:
        return any(
            (self.task_type, self.title, self.description, self.capability,
             self.priority is not None, self.targets, self.code_url, self.spec_url, self.extra)
        )  # fmt: skip


def default_title(task_type: str | None, payload: Mapping[str, Any]) -> str | None:
    """A readable title from the kind of task and its target: "Verify droplet 14"."""
    if task_type is None or task_type not in _TITLE_VERB:
        return None
    verb = _TITLE_VERB[task_type]
    target = payload.get("target_droplet_id")
    if isinstance(target, int):
        return (
            f"Custom task for droplet {target}"
            if task_type == "custom"
            else f"{verb} droplet {target}"
        )
    code = payload.get("code_url")
    if isinstance(code, str) and code and task_type != "custom":
        short = re.sub(r"^[a-z]+://(www\.)?", "", code, flags=re.I).rstrip("/")
        return f"{verb} {short}"[:255]
    return "Custom task" if task_type == "custom" else f"{verb} task"


def _pair_int(value: str | None, aliases: Mapping[str, int]) -> int | None:
    if value is None:
        return None
    m = re.search(r"\d{1,9}", value)
    if m and int(m.group()) >= 1:
        return int(m.group())
    return aliases.get(value.strip().lower())


def task_slots(
    text: str, ents: Entities, *, aliases: Mapping[str, int], loose_priority: bool = False
) -> TaskSlots:
    """The task arguments said in `text` (typos already fixed); `ents` is `extract(text)`."""
    type_value = ents.pair(*_KEYS_TYPE)
    kind = dx.task_type(type_value) if type_value else None
    if kind is None and type_value and type_value.lower() in TASK_TYPES:
        kind = type_value.lower()
    kind = kind or ents.task_type

    title = ents.pair(*_KEYS_TITLE)
    if title is None and ents.quoted:
        title = ents.quoted[0]
    if title is None:
        m = _TITLE_PHRASE.search(text)
        if m and m.group(1).strip():
            title = m.group(1).strip()

    prio = ents.priority
    prio_value = ents.pair(*_KEYS_PRIORITY)
    if prio is None and prio_value:
        prio = dx.priority(f"priority {prio_value}", loose=True)
    if prio is None and loose_priority:
        prio = dx.priority(text, loose=True)

    capability = ents.pair(*_KEYS_CAPABILITY)
    if capability is None:
        m = _CAPABILITY_PHRASE.search(text)
        capability = m.group(1) if m else None

    targets = list(ents.droplet_ids)
    pair_target = _pair_int(ents.pair(*_KEYS_TARGET), aliases)
    if pair_target is not None and pair_target not in targets:
        targets.insert(0, pair_target)

    code_url = ents.pair(*_KEYS_CODE)
    spec_url = ents.pair(*_KEYS_SPEC)
    for url, (start, _) in zip(ents.urls, ents.url_spans, strict=True):
        if url in (code_url, spec_url):
            continue
        before = text[max(0, start - 40) : start]
        # The nearest cue before the URL decides: "code at X and spec at Y".
        spec_pos = max((m.end() for m in _SPEC_CUE.finditer(before)), default=-1)
        code_pos = max(
            (m.end() for m in re.finditer(r"\b(?:code|repo|source|git)", before, re.I)), default=-1
        )
        is_spec = spec_pos > code_pos or (
            spec_pos == code_pos == -1 and bool(_SPEC_URL.search(url))
        )
        if is_spec and spec_url is None:
            spec_url = url
        elif code_url is None:
            code_url = url
        elif spec_url is None:
            spec_url = url

    extra = {
        key: value
        for key, value in ents.pairs
        if key not in _KNOWN_KEYS and key not in _NOT_PAYLOAD and not key.isdigit()
    }
    return TaskSlots(
        task_type=kind,
        title=title,
        description=ents.pair(*_KEYS_DESCRIPTION),
        capability=capability,
        priority=prio,
        targets=tuple(targets),
        code_url=code_url,
        spec_url=spec_url,
        extra=extra,
    )


def task_arguments(slots: TaskSlots, *, target: int | None) -> dict[str, Any]:
    """create_task arguments for one target; `task_type` and `title` may still be absent."""
    payload: dict[str, Any] = {}
    if target is not None:
        payload["target_droplet_id"] = target
    if slots.code_url:
        payload["code_url"] = slots.code_url
    if slots.spec_url:
        payload["spec_url"] = slots.spec_url
    payload.update(slots.extra)
    args: dict[str, Any] = {
        "priority": slots.priority if slots.priority is not None else DEFAULT_PRIORITY,
        "payload": payload,
    }
    if slots.task_type:
        args["task_type"] = slots.task_type
    title = slots.title or default_title(slots.task_type, payload)
    if title:
        args["title"] = title
    if slots.description:
        args["description"] = slots.description
    if slots.capability:
        args["required_capability"] = slots.capability
    return args


def update_task(args: Mapping[str, Any], slots: TaskSlots) -> dict[str, Any]:
    """A pending create_task changed by a reply ("make it priority 2", "for droplet 16")."""
    old_payload = dict(args.get("payload") or {})
    old_title = args.get("title")
    generated = old_title is None or old_title == default_title(args.get("task_type"), old_payload)
    new = dict(args)
    payload = dict(old_payload)
    if slots.targets:
        payload["target_droplet_id"] = slots.targets[0]
    if slots.code_url:
        payload["code_url"] = slots.code_url
    if slots.spec_url:
        payload["spec_url"] = slots.spec_url
    payload.update(slots.extra)
    new["payload"] = payload
    if slots.task_type:
        new["task_type"] = slots.task_type
    if slots.priority is not None:
        new["priority"] = slots.priority
    if slots.description:
        new["description"] = slots.description
    if slots.capability:
        new["required_capability"] = slots.capability
    if slots.title:
        new["title"] = slots.title
    elif generated:
        # A title we made up follows the task it describes; one the user chose stays.
        title = default_title(new.get("task_type"), payload)
        if title:
            new["title"] = title
    new.setdefault("priority", DEFAULT_PRIORITY)
    return new


# ---- send_message -----------------------------------------------------------------------------

_LEAD = re.compile(
    r"^(?:\s|[:,\-\u2013\u2014]|\b(?:droplet|saying|says|that says|that reads|which says|reading|"
    r"with the message|with message|with the text|with text|the message|a message|a note|"
    r"a msg|a quick note|message|msg|note|to|that|about|know that|know|with|"
    r"the following|following)\b)+",
    re.I,
)
_TRAIL = re.compile(r"\s*\b(?:instead|please)\s*[.!]?\s*$", re.I)
_SAY = re.compile(
    r"^\s*(?:say|saying|tell (?:them|it|him|her)(?: that)?|message|msg|text)\b\s*:?\s*", re.I
)
_CHANGE_MESSAGE = re.compile(
    r"\b(?:change|set|make|update|replace|edit)\s+(?:the\s+)?(?:message|text)\s*(?:to|with|into|as)?"
    r"\s*:?\s*(.+)$",
    re.I,
)
_TO_TARGET = re.compile(r"\bto\s+(?:the\s+)?$", re.I)


@dataclass(frozen=True, slots=True)
class MessageParts:
    target: int | None
    message: str | None
    target_from_pronoun: bool = False


_ONLY_PRONOUN = re.compile(r"^(?:it|this|that|them|these|those|the same|the message)$", re.I)


def _clean_message(text: str) -> str | None:
    text = _TRAIL.sub("", _LEAD.sub("", text)).strip()
    # "send it to droplet 19": "it" is the message discussed, not its text.
    if not text or _ONLY_PRONOUN.match(text.rstrip(".!?")):
        return None
    return text[:5000]


def message_parts(
    text: str, ents: Entities, *, verb_end: int, last_droplet_id: int | None
) -> MessageParts:
    """Target and text of a message; `verb_end` is where "send"/"tell" ended in `text`."""
    explicit = ents.pair(*_KEYS_MESSAGE)
    after_verb = [m for m in ents.droplets if m.start >= verb_end]
    target_mention: Mention | None = None
    # "send it to droplet 19": the droplet after "to" is the target, whatever comes before.
    for m in after_verb:
        if _TO_TARGET.search(text[max(verb_end, m.start - 8) : m.start]):
            target_mention = m
            break
    if target_mention is None and after_verb:
        target_mention = after_verb[0]

    target = target_mention.value if target_mention else None
    from_pronoun = False
    if target is None:
        gap = text[verb_end : verb_end + 8].lower()
        if re.match(r"^\s+(?:it|them|him|her)\b", gap) and last_droplet_id is not None:
            target, from_pronoun = last_droplet_id, True

    if explicit:
        return MessageParts(target, explicit[:5000], from_pronoun)
    if ents.quoted:
        return MessageParts(target, ents.quoted[0][:5000], from_pronoun)
    if target_mention is not None:
        after = _clean_message(text[target_mention.end :])
        if after:
            return MessageParts(target, after, from_pronoun)
        between = text[verb_end : target_mention.start]
        between = _TO_TARGET.sub("", between)
        return MessageParts(target, _clean_message(between), from_pronoun)
    rest = text[verb_end:]
    if from_pronoun:
        rest = re.sub(r"^\s+(?:it|them|him|her)\b", "", rest, flags=re.I)
    return MessageParts(target, _clean_message(rest), from_pronoun)


def reply_as_message(text: str) -> str | None:
    """A reply to "what should the message say?": the text itself, minus "say"."""
    m = _CHANGE_MESSAGE.search(text)
    body = m.group(1) if m else _SAY.sub("", text)
    body = body.strip()
    return body[:5000] if body else None


def changed_message(text: str) -> str | None:
    """ "change the message to: X" → X."""
    m = _CHANGE_MESSAGE.search(text)
    if not m:
        return None
    body = m.group(1).strip()
    return body[:5000] or None
