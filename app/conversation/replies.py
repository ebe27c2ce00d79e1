"""The conversation's own sentences, around what the tools say: confirmations, questions,
refusals, failures. Deterministic, for chat (markdown) or voice (plain speech)."""

from __future__ import annotations

from typing import Any

from app.tools.base import Channel, Outcome, Tool
from app.tools.render import for_channel, peer_display
from app.utils.markup import escape_markdown, plain_name

NOTHING_PENDING = "There is nothing waiting for your confirmation."

ALREADY_CONFIRMED = (
    "That proposal was already confirmed once: it was carried out, or was being carried out "
    "when its answer could not be stored. It will not run again; check the result before "
    "asking for it again."
)


def no_longer_waiting(what: str) -> str:
    """Said before the answer to a new request when the proposal shown as waiting was in fact
    confirmed earlier, by a turn whose answer could not be stored."""
    return (
        f"Note: the change you confirmed earlier ({what}) was carried out, or was under way when "
        "its answer could not be stored; it is no longer waiting and will not run again."
    )


def confirm(proposal: str, channel: Channel, *, preview: str | None = None) -> str:
    """The question before a change; `preview` lists what it touches (a bulk action's tasks)."""
    if channel == "voice":
        listed = f" {for_channel(preview, channel)}" if preview else ""
        return for_channel(f"{proposal}{listed} Say yes to go ahead or no to drop it.", channel)
    if preview:
        return f"{proposal}\n\n{preview}\n\nReply **yes** to go ahead or **no** to drop it."
    return f"{proposal} Reply **yes** to go ahead or **no** to drop it."


def declined(tool: Tool[Any], channel: Channel) -> str:
    return for_channel(f"Okay, I dropped it: nothing was {tool.done}.", channel)


def failure(tool: Tool[Any] | None, out: Outcome, channel: Channel) -> str:
    """A call that did not answer, said plainly: which peer failed and what it means."""
    action = tool.action_for(out.call.args) if tool is not None else "do that"
    who = f"the {peer_display(out.peer)}" if out.peer else "the mesh"
    args = out.call.args
    if out.status == "not_found":
        if "task_id" in args:
            text = f"Task {args['task_id']} doesn't exist."
        elif "droplet_id" in args or "target_droplet_id" in args:
            droplet = args.get("droplet_id", args.get("target_droplet_id"))
            text = f"Droplet {droplet} is not registered."
        else:
            text = f"I couldn't {action}: not found."
    elif out.status == "unavailable" and out.unconfirmed:
        why = out.message or f"{who} did not confirm it"
        text = (
            f"I can't tell whether I managed to {action}: {why}. It may have gone through, so "
            "check before asking for it again."
        )
    elif out.status == "unavailable":
        text = f"I couldn't {action}: {who} is unreachable right now. Try again in a moment."
    elif out.status == "rejected":
        reason = f" ({out.message})" if out.message else ""
        text = f"I couldn't {action}: {who} refused{reason}."
    elif out.status == "forbidden":
        text = f"You may not {action}: {out.message or 'your token lacks the permission'}."
    elif out.status == "invalid":
        text = f"I couldn't {action}: {out.message or 'the request was not valid'}."
    else:
        text = f"Something went wrong while trying to {action}."
    return plain_name(text, limit=600) if channel == "voice" else escape_markdown(text)
