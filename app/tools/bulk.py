"""How a bulk action reports: every element, none hidden, partial failure said plainly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from app.tools.base import Channel, Item
from app.utils.markup import escape_markdown, plural

_WORDS = {
    "already_finished": "already finished, so not {verb}",
    "refused": "refused by the Orchestrator",
    "failed": "failed",
    "unavailable": "not reached (the Orchestrator is unreachable)",
}


def render_items(items: Sequence[Item], *, verb: str, channel: Channel) -> str:
    n = len(items)
    counts = Counter(i.status for i in items)
    done = counts["done"]
    head = f"{done} of {n} {plural(n, 'task')} {verb}"
    trouble = [(s, c) for s, c in counts.items() if s != "done"]
    if trouble:
        head += "; " + ", ".join(f"{c} {_WORDS[s].format(verb=verb)}" for s, c in sorted(trouble))
    if channel == "voice":
        lines = [head + "."]
        for item in items[:6]:
            said = "done" if item.status == "done" else _WORDS[item.status].format(verb=verb)
            extra = f", new task {item.new_id}" if item.new_id else ""
            lines.append(f"Task {item.id}: {said}{extra}.")
        if n > 6:
            lines.append(f"And {n - 6} more.")
        return " ".join(lines)
    rows = []
    for item in items:
        mark = "✅" if item.status == "done" else "⚠️" if item.status == "already_finished" else "❌"
        said = verb if item.status == "done" else _WORDS[item.status].format(verb=verb)
        extra = f" → new task **{item.new_id}**" if item.new_id else ""
        why = (
            f" ({escape_markdown(item.message, limit=160)})"
            if item.message and item.status != "done"
            else ""
        )
        rows.append(f"- {mark} task **{item.id}**: {said}{extra}{why}")
    return f"**{head}**\n\n" + "\n".join(rows)


def with_note(note: str, listing: str) -> str:
    """A proposal's note ("No task 9999.") above its list, never on the first item's line."""
    note = note.strip()
    return f"{note}\n\n{listing}" if note else listing
