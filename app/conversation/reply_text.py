"""The conversation's own sentences: help, confirmation questions for pending writes, slot
questions, failures and refusals. Deterministic, for chat (markdown) or voice (plain speech).

User- and peer-supplied text is escaped for markdown or made speakable, never passed raw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from app.domain.plan import ToolCall
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.utils.markup import escape_markdown, join_words, markdown_link, plain_name, to_voice

Channel = Literal["chat", "voice"]

PEERS = ("Registry", "Orchestrator")

_HELP_CHAT = """Here is what I can do:

- **List droplets**: "show me all registered droplets", "which droplets are down?"
- **Check a droplet**: "is droplet 14 healthy?", "status of droplets 1 and 10"
- **Tasks**: "list failed tasks", "tasks for droplet 14", "status of task 7"
- **The whole mesh**: "system status", "any alerts?"
- **Create a task**: "create a verification task for droplet 14, priority 3"
- **Cancel a task**: "cancel task 7", or "cancel it" for the last one
- **Message a droplet**: "tell droplet 18 the deploy is done"

I ask before changing anything: reply **yes** to go ahead or **no** to drop it."""

_HELP_VOICE = (
    "I can list the droplets, check a droplet's health, list tasks or look one up, tell you the "
    "system status and recent alerts, create or cancel tasks, and send a message to a droplet. "
    "For example, say: is droplet 14 healthy? I always ask before changing anything."
)


def render_help(*, channel: Channel) -> str:
    return _HELP_VOICE if channel == "voice" else _HELP_CHAT


def peer_display(peer: str) -> str:
    """ "Orchestrator" for "orchestrator" (how adapters name themselves), else the name given."""
    low = peer.lower()
    return next((p for p in PEERS if p.lower() in low), peer)


def unavailable_note(
    unavailable: Sequence[str], *, known_from: Sequence[str], channel: Channel
) -> str:
    """ "The Orchestrator is unreachable right now; here is what the Registry knows:"."""
    if not unavailable:
        return ""
    down = join_words([f"the {escape_markdown(peer_display(p))}" for p in unavailable])
    verb = "is" if len(unavailable) == 1 else "are"
    if known_from:
        sources = join_words([f"the {escape_markdown(p)}" for p in known_from])
        if channel == "voice":
            return to_voice(
                f"{_cap(down)} {verb} unreachable right now. Here is what {sources} knows."
            )
        return f"⚠️ {_cap(down)} {verb} unreachable right now; here is what {sources} knows:"
    text = f"{_cap(down)} {verb} unreachable right now, so I have nothing live to show."
    return to_voice(text) if channel == "voice" else f"⚠️ {text}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---- pending writes ------------------------------------------------------------------------------


def _droplet_ref(droplet_id: object, names: Mapping[int, str], *, spoken: bool) -> str:
    if not isinstance(droplet_id, int):
        return "a droplet"
    name = names.get(droplet_id)
    if name is None:
        return f"droplet {droplet_id}"
    if spoken:
        return f"{plain_name(name)}, droplet {droplet_id}"
    return f"{escape_markdown(name, limit=40)} (droplet {droplet_id})"


def render_confirmation(
    call: ToolCall, *, channel: Channel, names: Mapping[int, str] | None = None
) -> str:
    """What a pending write will do, precisely, and how to accept or drop it.

    `names` maps droplet ids to display names ("Voice") when the caller knows them.
    """
    names = names or {}
    spoken = channel == "voice"
    args = call.args
    if call.tool == "create_task":
        what = _create_summary(args, names, spoken=spoken)
    elif call.tool == "cancel_task":
        task = args.get("task_id")
        what = f"I will cancel task {task}." if spoken else f"I will cancel task **{task}**."
    elif call.tool == "send_message":
        target = _droplet_ref(args.get("target_droplet_id"), names, spoken=spoken)
        message = str(args.get("message", ""))
        what = (
            f"I will send {target} this message: {plain_name(message, limit=200)}."
            if spoken
            else f"I will send {target} this message: “{escape_markdown(message, limit=500)}”."
        )
    else:
        tool = escape_markdown(call.tool)
        what = f"I will run {plain_name(call.tool)}." if spoken else f"I will run **{tool}**."
    if spoken:
        return to_voice(f"{what} Say yes to go ahead or no to drop it.")
    return f"{what} Reply **yes** to go ahead or **no** to drop it."


def _create_summary(args: Mapping[str, Any], names: Mapping[int, str], *, spoken: bool) -> str:
    kind = str(args.get("task_type", "new"))
    title = str(args.get("title", ""))
    raw_payload = args.get("payload")
    payload: Mapping[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
    target = payload.get("target_droplet_id")
    capability = args.get("required_capability")
    extras: list[str] = []
    if spoken:
        text = f"I will create a {plain_name(kind)} task called {plain_name(title, limit=120)}"
        if "priority" in args:
            text += f", priority {args['priority']}"
        if isinstance(target, int):
            text += f", for {_droplet_ref(target, names, spoken=True)}"
        if payload.get("code_url"):
            extras.append("a code link")
        if payload.get("spec_url"):
            extras.append("a spec link")
        if capability:
            extras.append(f"capability {plain_name(str(capability))}")
        return text + (f", with {join_words(extras)}." if extras else ".")
    text = f"I will create a **{escape_markdown(kind)}** task '{escape_markdown(title, limit=200)}'"
    if "priority" in args:
        text += f" with priority {args['priority']}"
    if isinstance(target, int):
        text += f" for {_droplet_ref(target, names, spoken=False)}"
    for key, label in (("code_url", "code"), ("spec_url", "spec")):
        if isinstance(payload.get(key), str):
            extras.append(f"{label}: {markdown_link(payload[key])}")
    if capability:
        extras.append(f"needs capability {escape_markdown(str(capability), limit=100)}")
    if args.get("description"):
        extras.append(f"description: {escape_markdown(str(args['description']), limit=200)}")
    extras += [
        f"{escape_markdown(str(k), limit=40)}: {escape_markdown(str(v), limit=100)}"
        for k, v in payload.items()
        if k not in ("target_droplet_id", "code_url", "spec_url")
    ]
    return text + (f" ({'; '.join(extras)})." if extras else ".")


_SLOT_QUESTIONS: Mapping[str, tuple[str, str]] = {
    "task_type": (
        "What kind of task? **verify**, **build**, **deploy**, **monitor**, **provision** "
        "or **custom**.",
        "What kind of task? verify, build, deploy, monitor, provision or custom.",
    ),
    "title": ("What should I call the task?", "What should I call the task?"),
    "priority": (
        "What priority, from 1 (highest) to 10 (lowest)? Normal is 5.",
        "What priority, from 1, the highest, to 10, the lowest? Normal is 5.",
    ),
    "task_id": (
        "Which task? Give me its number, for example **task 7**.",
        "Which task? Tell me its number, for example task 7.",
    ),
    "droplet_id": (
        "Which droplet? Give me its number or name, for example **droplet 14**.",
        "Which droplet? Tell me its number or name, for example droplet 14.",
    ),
    "target_droplet_id": (
        "Which droplet should get it? Give me its number or name, for example **droplet 18**.",
        "Which droplet should get it? Tell me its number or name, for example droplet 18.",
    ),
    "message": ("What should the message say?", "What should the message say?"),
}


def render_slot_question(
    *, tool: str, missing: Sequence[str], channel: Channel, call: ToolCall | None = None
) -> str:
    """The question for the first missing argument ("What kind of task? verify, build, ...")."""
    if not missing:
        return "Anything else to add?"
    slot = missing[0]
    chat, voice = _SLOT_QUESTIONS.get(
        slot, (f"What is the {escape_markdown(slot)}?", f"What is the {plain_name(slot)}?")
    )
    question = voice if channel == "voice" else chat
    target: object = None
    if call is not None:
        payload = call.args.get("payload")
        target = call.args.get("target_droplet_id")
        if target is None and isinstance(payload, dict):
            target = payload.get("target_droplet_id")
    if tool == "create_task" and slot == "task_type" and isinstance(target, int):
        question = question.replace(
            "What kind of task?", f"What kind of task for droplet {target}?"
        )
    if tool == "send_message" and slot == "message" and isinstance(target, int):
        question = f"What should the message to droplet {target} say?"
    return question


def render_declined(call: ToolCall, *, channel: Channel) -> str:
    """The reply to "no" for a pending write."""
    what = {
        "create_task": "create that task",
        "cancel_task": f"cancel task {call.args.get('task_id')}",
        "send_message": "send that message",
    }.get(call.tool, "do that")
    return f"OK, I won't {what}. Nothing was changed."


def render_answer(text: str, *, channel: Channel) -> str:
    """A planner's direct answer (greeting, out of scope) for the channel."""
    return to_voice(text) if channel == "voice" else text


# ---- failures ------------------------------------------------------------------------------------

_ACTIONS: Mapping[str, str] = {
    "list_droplets": "list the droplets",
    "droplet_status": "check droplet {droplet_id}",
    "list_tasks": "list the tasks",
    "task_status": "look up task {task_id}",
    "system_status": "get the system status",
    "system_alerts": "get the alerts",
    "create_task": "create the task",
    "cancel_task": "cancel task {task_id}",
    "send_message": "send the message",
    "help": "answer",
}

FailureKind = Literal["unavailable", "not_found", "rejected", "error", "forbidden"]


def render_failure(
    *,
    call: ToolCall,
    kind: FailureKind,
    channel: Channel,
    peer: str | None = None,
    message: str | None = None,
) -> str:
    """A failed call as an answer: which peer failed and what it means, never a stack trace.

    `message` must already be safe to show (the adapters' `PeerError.message` is).
    """
    template = _ACTIONS.get(call.tool, "do that")
    values = {k: v for k, v in call.args.items() if isinstance(v, int | str)}
    try:
        action = template.format(**values)
    except (KeyError, IndexError, ValueError):
        action = template.split(" {")[0]
    who = f"the {peer_display(peer)}" if peer else "the mesh"
    if kind == "not_found":
        if call.tool in ("task_status", "cancel_task") and "task_id" in call.args:
            text = f"Task {call.args['task_id']} doesn't exist."
        elif call.tool == "droplet_status" and "droplet_id" in call.args:
            text = f"Droplet {call.args['droplet_id']} is not registered."
        elif call.tool == "send_message" and "target_droplet_id" in call.args:
            text = f"Droplet {call.args['target_droplet_id']} is not registered."
        else:
            text = f"I couldn't {action}: not found."
    elif kind == "unavailable":
        text = f"I couldn't {action}: {who} is unreachable right now. Try again in a moment."
    elif kind == "rejected":
        reason = f" ({message})" if message else ""
        text = f"I couldn't {action}: {who} refused{reason}."
    elif kind == "forbidden":
        text = f"You may not {action}: {message or 'your token lacks the permission'}."
    else:
        text = f"Something went wrong while trying to {action}."
    return to_voice(text) if channel == "voice" else escape_markdown(text)


def render_error(*, call: ToolCall, error: Exception, channel: Channel) -> str:
    """`render_failure` for an exception from a peer adapter (anything else: a generic line)."""
    kind: FailureKind = "error"
    if isinstance(error, PeerNotFound):
        kind = "not_found"
    elif isinstance(error, PeerUnavailable):
        kind = "unavailable"
    elif isinstance(error, PeerRejected):
        kind = "rejected"
    if isinstance(error, PeerError):
        return render_failure(
            call=call, kind=kind, channel=channel, peer=error.peer, message=error.message
        )
    return render_failure(call=call, kind="error", channel=channel)
