"""Terminal rendering for the CLI: answers as markdown, statuses in colour, events, pending actions.

Answers quote names and titles chosen by anyone on the mesh, so text from the server is treated
as hostile: terminal control sequences are stripped (an ESC in a droplet name could otherwise
retitle the window or clear the screen), raw HTML in markdown is shown as text rather than
silently dropped, and nothing is ever interpreted as rich console markup.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from markdown_it import MarkdownIt
from rich.console import Console
from rich.markdown import Markdown, MarkdownContext, MarkdownElement, TableDataElement
from rich.table import Table
from rich.text import Text

# C0 controls but tab and newline, DEL, C1 controls, and bidi overrides that reorder what is shown.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

_STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "active",
            "healthy",
            "ok",
            "online",
            "up",
            "connected",
            "completed",
            "complete",
            "done",
            "success",
            "succeeded",
            "delivered",
            "available",
            "confirmed",
            "executed",
        ),
        "ok",
    ),
    **dict.fromkeys(
        (
            "pending",
            "assigned",
            "in_progress",
            "in progress",
            "queued",
            "running",
            "starting",
            "retrying",
            "waiting",
            "scheduled",
            "awaiting_confirmation",
            "awaiting confirmation",
        ),
        "info",
    ),
    **dict.fromkeys(
        ("inactive", "degraded", "warning", "stale", "unknown", "already_confirmed"), "warn"
    ),
    **dict.fromkeys(
        (
            "error",
            "failed",
            "failure",
            "down",
            "offline",
            "unhealthy",
            "unavailable",
            "unreachable",
            "critical",
            "timeout",
            "timed out",
            "rejected",
            "denied",
            "forbidden",
            "invalid",
        ),
        "bad",
    ),
    **dict.fromkeys(("cancelled", "canceled", "skipped", "declined", "dropped"), "muted"),
}
# A leading mark is the answer's own verdict, so it wins over the word after it.
_STATUS_MARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ok", ("✅", "🟢", "✔")),
    ("info", ("⏳", "📌", "🔄", "🔵")),
    ("warn", ("⚠", "🟡", "🟠", "❔")),
    ("bad", ("❌", "🔴", "✖", "⛔")),
    ("muted", ("🚫", "⚪", "⚫")),
)
STATUS_STYLES = {
    "ok": "bold green",
    "info": "cyan",
    "warn": "bold yellow",
    "bad": "bold red",
    "muted": "dim",
}
SEVERITY_STYLES = {"info": "cyan", "warning": "bold yellow", "critical": "bold red"}


def clean(value: object) -> str:
    """Server text made safe for a terminal."""
    return _UNSAFE_CHARS.sub("", value if isinstance(value, str) else str(value))


def status_kind(text: str) -> str | None:
    """The colour family of a short status text ("🟢 active", "in_progress", "❌"), or None.

    The same vocabulary as the web page's `statusKind` (app/web/static/markdown.js).
    """
    value = text.strip()
    if not value or len(value) > 32:
        return None
    for kind, marks in _STATUS_MARKS:
        if value.startswith(marks):
            return kind
    word = re.sub(r"^\W+|\W+$", "", value.lower())
    return _STATUS_WORDS.get(word)


class _StatusCell(TableDataElement):
    """A table cell coloured by the status it holds."""

    def on_leave(self, context: MarkdownContext) -> None:
        kind = status_kind(self.content.plain)
        if kind is not None:
            self.content.stylize(STATUS_STYLES[kind])


class SafeMarkdown(Markdown):
    """Markdown with raw HTML shown as text (rich's parser would drop it silently)."""

    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "td_open": _StatusCell,
    }

    def __init__(self, markup: str) -> None:
        super().__init__(clean(markup), hyperlinks=False)
        parser = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
        self.parsed = parser.parse(self.markup)


def progress_label(frame: dict[str, Any]) -> str:
    step = clean(frame.get("step") or "working")
    if step == "planning":
        return "Working out what you mean"
    if step == "formatting":
        return "Writing the answer"
    if step == "calling":
        tool = clean(frame.get("tool") or "a tool")
        droplet = frame.get("droplet", frame.get("droplet_id"))
        return (
            f"Calling {tool} on droplet {clean(droplet)}"
            if droplet is not None
            else (f"Calling {tool}")
        )
    return step


def render_answer(console: Console, frame: dict[str, Any]) -> None:
    """An assistant answer: its markdown, then the tools it used."""
    console.print(SafeMarkdown(str(frame.get("content") or frame.get("response") or "")))
    actions = frame.get("actions")
    if isinstance(actions, list) and actions:
        line = Text("tools: ", style="dim")
        for i, action in enumerate(a for a in actions if isinstance(a, dict)):
            if i:
                line.append("  ")
            status = clean(action.get("status", ""))
            line.append(clean(action.get("tool", "?")), style="dim")
            line.append(f" {status}", style=STATUS_STYLES.get(status_kind(status) or "", "dim"))
        console.print(line)


def render_summary(console: Console, content: str) -> None:
    """A model's summary of an answer (LLM_SUMMARIZE), marked as such: the answer is the record."""
    console.print(Text("in short (model):", style="dim"))
    console.print(SafeMarkdown(content))


def render_notification(console: Console, frame: dict[str, Any]) -> None:
    """A watch that fired ("Droplet 16 is back"), between turns."""
    line = Text("🔔 ", style="bold cyan")
    line.append(clean(str(frame.get("text", ""))), style="cyan")
    console.print(line)


def render_pending(console: Console, pending: dict[str, Any]) -> None:
    """What a pending write action would do, argument by argument."""
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="dim")
    table.add_column()
    args = pending.get("args")
    for name, value in args.items() if isinstance(args, dict) else []:
        shown = value if isinstance(value, str) else json.dumps(value)
        table.add_row(Text(clean(name)), Text(clean(shown)))
    title = Text("Pending action: ", style="bold yellow")
    title.append(clean(pending.get("tool", "?")), style="bold")
    summary = pending.get("summary")
    if isinstance(summary, str) and summary:
        title.append(f" ({clean(summary)})")
    console.print(title)
    if table.row_count:
        console.print(table)
    missing = pending.get("missing")
    if isinstance(missing, list) and missing:
        console.print(
            Text(
                f"Still needed: {clean(', '.join(map(str, missing)))}. "
                "Reply with the details, or say 'cancel'.",
                style="yellow",
            )
        )


def render_event(console: Console, event: dict[str, Any]) -> None:
    """One mesh event (droplet health, new task, alert) on one line."""
    severity = str(event.get("severity", "info"))
    line = Text("● ", style=SEVERITY_STYLES.get(severity, "cyan"))
    line.append(f"{clean(severity)} ", style=SEVERITY_STYLES.get(severity, "cyan"))
    line.append(f"{clean(event.get('kind', 'event'))}: ", style="dim")
    line.append(clean(event.get("summary", "")))
    ids = [
        f"droplet {clean(event['droplet_id'])}" if event.get("droplet_id") is not None else "",
        f"task {clean(event['task_id'])}" if event.get("task_id") is not None else "",
    ]
    shown = " · ".join(i for i in ids if i)
    if shown:
        line.append(f"  ({shown})", style="dim")
    console.print(line)


def render_error(console: Console, message: object) -> None:
    console.print(Text(f"error: {clean(message)}", style="bold red"))


def render_note(console: Console, message: str, *, style: str = "dim") -> None:
    console.print(Text(clean(message), style=style))
