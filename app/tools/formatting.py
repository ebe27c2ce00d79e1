"""Answers about the mesh, rendered deterministically from what the mesh returned: no model.

Chat gets markdown: the summary first, then a table or a short list, with status marks.
Voice gets short plain sentences with no markdown, emoji or symbols, and lists read naturally
("Seven droplets. Five are active: Registry, ...").

Everything a peer or a user supplied (names, titles, messages, summaries) is escaped for
markdown, so "<script>" or "| evil |" shows as text and cannot break a table or inject HTML.

`render(tool=..., result=..., channel=...)` accepts, by tool:

| tool | result |
|---|---|
| list_droplets | `DropletListing`, `registry_info.DirectoryListing`, or a sequence of `Droplet` |
| droplet_status | `DropletReport`, `tool_executor.DropletReport`, or a `Droplet` |
| list_tasks | `TaskListing` or a sequence of `Task` |
| task_status | `Task` |
| system_status | `SystemReport`, `tool_executor.SystemOverview`, or a `SystemState` |
| system_alerts | `AlertListing` or a sequence of `MeshEvent` |
| create_task | `CreatedTask` (with the executed `call`) or `tool_executor.CreatedTaskReport` |
| cancel_task | `CancelledTask` |
| send_message | `SentMessage` |
| help | anything (ignored) |

The conversation's own sentences (help, confirmations, slot questions, failures) live in
`reply_text` and are re-exported here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from app.conversation.reply_text import (
    PEERS,
    peer_display,
    render_answer,
    render_confirmation,
    render_declined,
    render_error,
    render_failure,
    render_help,
    render_slot_question,
    unavailable_note,
)
from app.domain.mesh import (
    CancelledTask,
    CreatedTask,
    Droplet,
    MeshEvent,
    SentMessage,
    SystemState,
    Task,
    TaskState,
)
from app.domain.plan import ToolCall
from app.mesh.directory import DirectoryListing
from app.tools import executor
from app.utils.markup import (
    ago,
    escape_markdown,
    join_words,
    markdown_link,
    number_word,
    plain_name,
    plural,
    to_voice,
    when,
)

__all__ = [
    "AlertListing",
    "Channel",
    "DropletListing",
    "DropletReport",
    "SystemReport",
    "TaskListing",
    "render",
    "render_alerts",
    "render_answer",
    "render_cancelled",
    "render_confirmation",
    "render_created",
    "render_declined",
    "render_droplet",
    "render_droplets",
    "render_error",
    "render_failure",
    "render_help",
    "render_sent",
    "render_slot_question",
    "render_system",
    "render_task",
    "render_tasks",
    "unavailable_note",
]

Channel = Literal["chat", "voice"]
_T = TypeVar("_T")

CHAT_ROWS = 50
"""Rows shown in a chat table before "…and N more"."""
VOICE_ITEMS = 5
"""Names read aloud per group before "and N more"."""

_SOURCE_NAMES: Mapping[str, str] = {
    "registry": "Registry",
    "orchestrator": "Orchestrator",
    "catalogue": "static catalogue",
}
_DROPLET_ORDER = ("active", "healthy", "inactive", "unknown", "error", "down")
_DROPLET_MARK: Mapping[str, str] = {
    "active": "✅",
    "healthy": "✅",
    "inactive": "⚠️",
    "unknown": "❔",
    "error": "❌",
    "down": "❌",
}
_TASK_MARK: Mapping[str, str] = {
    "pending": "⏳",
    "assigned": "📌",
    "in_progress": "🔄",
    "completed": "✅",
    "failed": "❌",
    "cancelled": "🚫",
}
_INFO_MARK = "\u2139\ufe0f"
_SEVERITY_MARK: Mapping[str, str] = {"critical": "❌", "warning": "⚠️", "info": _INFO_MARK}


# ---- result types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DropletListing:
    """Droplets as the reachable peers know them; `unavailable` names the peers that failed."""

    droplets: Sequence[Droplet]
    unavailable: Sequence[str] = ()
    status_filter: str | None = None


@dataclass(frozen=True, slots=True)
class DropletReport:
    """One droplet, or None when no reachable peer knows it."""

    droplet_id: int
    droplet: Droplet | None
    unavailable: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class TaskListing:
    tasks: Sequence[Task]
    total: int | None = None
    """The Orchestrator's total when `tasks` is one page of more."""
    filters: Mapping[str, Any] = field(default_factory=dict)
    """The list_tasks arguments used, to say what an empty list means."""


@dataclass(frozen=True, slots=True)
class SystemReport:
    state: SystemState | None
    droplets: Sequence[Droplet] = ()
    alerts: Sequence[MeshEvent] = ()
    unavailable: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class AlertListing:
    events: Sequence[MeshEvent]
    unavailable: Sequence[str] = ()


# ---- entry point -------------------------------------------------------------------------------


def render(*, tool: str, result: object, channel: Channel, call: ToolCall | None = None) -> str:
    """The answer for one executed tool call; `call` adds context (filters, a task's title).

    A result of an unexpected type gets a short generic line rather than an exception.
    """
    text = _render(tool, result, channel, call)
    return to_voice(text) if channel == "voice" else text


def _render(tool: str, result: object, channel: Channel, call: ToolCall | None) -> str:
    if tool == "help":
        return render_help(channel=channel)
    if tool == "list_droplets":
        listing = _droplet_listing(result, call)
        if listing is not None:
            return render_droplets(listing, channel=channel)
    if tool == "droplet_status":
        report = _droplet_report(result)
        if report is not None:
            return render_droplet(report, channel=channel)
    if tool == "list_tasks" and isinstance(result, TaskListing | list | tuple):
        tasks = result if isinstance(result, TaskListing) else TaskListing(_typed(result, Task))
        if call is not None and not tasks.filters:
            tasks = TaskListing(tasks.tasks, tasks.total, dict(call.args))
        return render_tasks(tasks, channel=channel)
    if tool == "task_status" and isinstance(result, Task):
        return render_task(result, channel=channel)
    if tool == "system_status":
        report_ = _system_report(result)
        if report_ is not None:
            return render_system(report_, channel=channel)
    if tool == "system_alerts" and isinstance(result, AlertListing | list | tuple):
        alerts = (
            result if isinstance(result, AlertListing) else AlertListing(_typed(result, MeshEvent))
        )
        return render_alerts(alerts, channel=channel)
    if tool == "create_task" and isinstance(result, CreatedTask | executor.CreatedTaskReport):
        return render_created(result, channel=channel, call=call)
    if tool == "cancel_task" and isinstance(result, CancelledTask):
        return render_cancelled(result, channel=channel)
    if tool == "send_message" and isinstance(result, SentMessage):
        return render_sent(result, channel=channel)
    return "Done." if channel == "voice" else f"Done: {escape_markdown(tool)}."


def _typed(items: Sequence[object], kind: type[_T]) -> list[_T]:
    return [item for item in items if isinstance(item, kind)]


def _droplet_listing(result: object, call: ToolCall | None) -> DropletListing | None:
    status = call.args.get("status") if call is not None else None
    status_filter = status if isinstance(status, str) else None
    if isinstance(result, DropletListing):
        return result
    if isinstance(result, DirectoryListing):
        unavailable = [peer_display(f.peer) for f in result.failures]
        return DropletListing(result.droplets, unavailable, status_filter)
    if isinstance(result, list | tuple):
        return DropletListing(_typed(result, Droplet), status_filter=status_filter)
    return None


def _droplet_report(result: object) -> DropletReport | None:
    if isinstance(result, DropletReport):
        return result
    if isinstance(result, executor.DropletReport):
        unavailable = [peer_display(f.peer) for f in result.failures]
        return DropletReport(result.droplet_id, result.droplet, unavailable)
    if isinstance(result, Droplet):
        return DropletReport(result.id, result)
    return None


def _system_report(result: object) -> SystemReport | None:
    if isinstance(result, SystemReport):
        return result
    if isinstance(result, executor.SystemOverview):
        unavailable = [peer_display(f.peer) for f in result.failures]
        return SystemReport(result.state, result.listing.droplets, result.alerts, unavailable)
    if isinstance(result, SystemState):
        return SystemReport(result)
    return None


# ---- shared pieces -----------------------------------------------------------------------------


def _status_key(status: str) -> str:
    low = status.lower()
    return low if low in _DROPLET_MARK else "unknown"


def _mark(status: str) -> str:
    return _DROPLET_MARK[_status_key(status)]


def _ordered_counts(statuses: Sequence[str]) -> list[tuple[str, int]]:
    counts = Counter(s.lower() or "unknown" for s in statuses)
    order = {name: i for i, name in enumerate(_DROPLET_ORDER)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def _known_from(droplets: Sequence[Droplet], unavailable: Sequence[str]) -> list[str]:
    """Which sources the shown droplets came from (minus the ones that failed)."""
    sources: list[str] = []
    for droplet in droplets:
        for source in droplet.sources:
            name = _SOURCE_NAMES.get(source, source)
            if name not in sources and name not in unavailable:
                sources.append(name)
    if not sources:
        sources = [p for p in PEERS if p not in unavailable]
    return sources


def _name_list(names: Sequence[str], *, cap: int = VOICE_ITEMS) -> str:
    spoken = [plain_name(n) for n in names[:cap]]
    if len(names) > cap:
        return f"{', '.join(spoken)} and {len(names) - cap} more"
    return join_words(spoken)


def _table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _more(total: int, shown: int) -> str:
    return f"\n\n…and {total - shown} more." if total > shown else ""


def _with_note(note: str, body: str, channel: Channel) -> str:
    if not note:
        return body
    return f"{note} {body}" if channel == "voice" else f"{note}\n\n{body}"


# ---- droplets ----------------------------------------------------------------------------------


def render_droplets(listing: DropletListing | Sequence[Droplet], *, channel: Channel) -> str:
    """A droplet table (chat) or grouped names (voice), summary first: "7 droplets: 5 active"."""
    if not isinstance(listing, DropletListing):
        listing = DropletListing(list(listing))
    droplets = sorted(listing.droplets, key=lambda d: d.id)
    note = unavailable_note(
        listing.unavailable, known_from=_known_from(droplets, listing.unavailable), channel=channel
    )
    if channel == "voice":
        return _with_note(note, _droplets_voice(droplets, listing.status_filter), channel)
    return _with_note(note, _droplets_chat(droplets, listing.status_filter), channel)


def _droplets_chat(droplets: Sequence[Droplet], status_filter: str | None) -> str:
    n = len(droplets)
    if not droplets:
        if status_filter:
            return f"No droplets are {escape_markdown(status_filter)} right now."
        return "No droplets are registered."
    rows = [
        [
            str(d.id),
            escape_markdown(d.name, limit=60),
            f"{_mark(d.status)} {escape_markdown(d.status, limit=20)}",
            _heartbeat(d, spoken=False),
            _capabilities(d.capabilities),
        ]
        for d in droplets[:CHAT_ROWS]
    ]
    table = _table(
        ["ID", "Name", "Status", "Last heartbeat", "Capabilities"],
        ["---:", "---", "---", "---", "---"],
        rows,
    )
    if status_filter:
        summary = f"{n} {plural(n, 'droplet')} {escape_markdown(status_filter)}"
    else:
        counts = _ordered_counts([d.status for d in droplets])
        parts = ", ".join(f"{count} {escape_markdown(status)}" for status, count in counts)
        summary = f"{n} {plural(n, 'droplet')}: {parts}"
    return f"**{summary}**\n\n{table}{_more(n, CHAT_ROWS)}"


def _heartbeat(d: Droplet, *, spoken: bool) -> str:
    if d.seconds_since_heartbeat is not None:
        return ago(d.seconds_since_heartbeat, spoken=spoken)
    if d.last_seen is not None:
        return when(d.last_seen, spoken=spoken)
    return "never" if spoken else "—"


def _capabilities(caps: Sequence[str], limit: int = 5) -> str:
    if not caps:
        return "—"
    shown = ", ".join(escape_markdown(c, limit=40) for c in caps[:limit])
    return f"{shown} (+{len(caps) - limit} more)" if len(caps) > limit else shown


def _droplets_voice(droplets: Sequence[Droplet], status_filter: str | None) -> str:
    n = len(droplets)
    if not droplets:
        if status_filter:
            return f"No droplets are {plain_name(status_filter)} right now."
        return "No droplets are registered."
    count = number_word(n, capital=True)
    if status_filter:
        verb = "is" if n == 1 else "are"
        names = _name_list([d.name for d in droplets])
        return f"{count} {plural(n, 'droplet')} {verb} {plain_name(status_filter)}: {names}."
    sentences = [f"{count} {plural(n, 'droplet')}."]
    groups: dict[str, list[str]] = {}
    for d in droplets:
        groups.setdefault(d.status.lower() or "unknown", []).append(d.name)
    for status, size in _ordered_counts([d.status for d in droplets]):
        verb = "is" if size == 1 else "are"
        members = _name_list(groups[status])
        sentences.append(
            f"{number_word(size, capital=True)} {verb} {plain_name(status)}: {members}."
        )
    return " ".join(sentences)


def render_droplet(report: DropletReport | Droplet, *, channel: Channel) -> str:
    """One droplet: status, last heartbeat, and what is known about it."""
    if isinstance(report, Droplet):
        report = DropletReport(report.id, report)
    d = report.droplet
    note = unavailable_note(
        report.unavailable,
        known_from=_known_from([d] if d else [], report.unavailable),
        channel=channel,
    )
    if d is None:
        missing = f"Droplet {report.droplet_id} is not known to the mesh."
        if report.unavailable:
            missing = f"No reachable peer knows droplet {report.droplet_id}."
        return _with_note(note, missing, channel)
    if channel == "voice":
        parts = [f"{plain_name(d.name)}, droplet {d.id}, is {_droplet_is(d.status)}."]
        if d.seconds_since_heartbeat is not None or d.last_seen is not None:
            parts.append(f"Its last heartbeat was {_heartbeat(d, spoken=True)}.")
        if d.capabilities:
            parts.append(f"It offers {_name_list(list(d.capabilities), cap=4)}.")
        return _with_note(note, " ".join(parts), channel)
    name = escape_markdown(d.name, limit=80)
    lines = [
        f"**{name}** (droplet {d.id}): {_mark(d.status)} {escape_markdown(d.status)}",
        "",
        f"- Last heartbeat: {_heartbeat(d, spoken=False)}",
    ]
    for label, value in (("Steward", d.steward), ("Role", d.role), ("Version", d.version)):
        if value:
            lines.append(f"- {label}: {escape_markdown(value, limit=80)}")
    if d.endpoint:
        lines.append(f"- Endpoint: {markdown_link(d.endpoint)}")
    lines.append(f"- Capabilities: {_capabilities(d.capabilities, limit=20)}")
    load = [
        f"{label} {value:.0f}%"
        for label, value in (("CPU", d.cpu), ("memory", d.mem), ("disk", d.disk))
        if value is not None
    ]
    if load:
        lines.append(f"- Load: {' · '.join(load)}")
    if d.sources:
        lines.append(f"- Known to: {', '.join(_SOURCE_NAMES.get(s, s) for s in d.sources)}")
    return _with_note(note, "\n".join(lines), channel)


# ---- tasks -------------------------------------------------------------------------------------


def _task_status_word(status: TaskState | str) -> str:
    return str(status).replace("_", " ")


_SPOKEN_TASK_STATE: Mapping[str, str] = {"failed": "has failed", "cancelled": "was cancelled"}
_SPOKEN_DROPLET_STATE: Mapping[str, str] = {"error": "in error", "unknown": "of unknown status"}


def _task_is(status: TaskState | str) -> str:
    """ "is pending", "has failed": a task state as said in a sentence."""
    return _SPOKEN_TASK_STATE.get(str(status), f"is {_task_status_word(status)}")


def _droplet_is(status: str) -> str:
    return _SPOKEN_DROPLET_STATE.get(status.lower(), plain_name(status))


def _task_mark(status: TaskState | str) -> str:
    return _TASK_MARK.get(str(status), "❔")


def _assignee(task: Task, *, spoken: bool) -> str:
    if task.assigned_droplet_id is None:
        return "not assigned yet" if spoken else "—"
    ident = task.assigned_droplet_id
    if not task.assigned_droplet_name:
        return f"droplet {ident}"
    if spoken:
        return f"{plain_name(task.assigned_droplet_name)}, droplet {ident}"
    return f"{escape_markdown(task.assigned_droplet_name, limit=40)} (droplet {ident})"


def _filters_phrase(filters: Mapping[str, Any], *, spoken: bool) -> str:
    words: list[str] = []
    status = filters.get("status")
    if isinstance(status, str):
        words.append(plain_name(status) if spoken else escape_markdown(status.replace("_", " ")))
    task_type = filters.get("task_type")
    if isinstance(task_type, str):
        words.append(plain_name(task_type) if spoken else escape_markdown(task_type, limit=30))
    words.append("tasks")
    droplet = filters.get("assigned_droplet_id")
    if isinstance(droplet, int):
        words.append(f"for droplet {droplet}")
    return " ".join(words)


def render_tasks(listing: TaskListing | Sequence[Task], *, channel: Channel) -> str:
    """A task table (chat) or the first few tasks read out (voice), summary first."""
    if not isinstance(listing, TaskListing):
        listing = TaskListing(list(listing))
    tasks = list(listing.tasks)
    if not tasks:
        return f"No {_filters_phrase(listing.filters, spoken=channel == 'voice')}."
    n = len(tasks)
    counts = Counter(str(t.status) for t in tasks)
    present = [(s.value.replace("_", " "), counts[s.value]) for s in TaskState if counts[s.value]]
    if channel == "voice":
        said = join_words([f"{number_word(c)} {s}" for s, c in present])
        lines = [f"{number_word(n, capital=True)} {plural(n, 'task')}: {said}."]
        lines += [f"Task {t.id}, {plain_name(t.title)}, {_task_is(t.status)}." for t in tasks[:3]]
        if n > 3:
            lines.append(f"And {n - 3} more.")
        return " ".join(lines)
    rows = [
        [
            str(t.id),
            escape_markdown(t.task_type, limit=20),
            escape_markdown(t.title, limit=60),
            f"{_task_mark(t.status)} {_task_status_word(t.status)}",
            str(t.priority),
            _assignee(t, spoken=False),
        ]
        for t in tasks[:CHAT_ROWS]
    ]
    table = _table(
        ["ID", "Type", "Title", "Status", "Priority", "Assignee"],
        ["---:", "---", "---", "---", "---:", "---"],
        rows,
    )
    of_total = f" (showing {n} of {listing.total})" if listing.total and listing.total > n else ""
    summary = ", ".join(f"{c} {s}" for s, c in present)
    return f"**{n} {plural(n, 'task')}**{of_total}: {summary}\n\n{table}{_more(n, CHAT_ROWS)}"


def render_task(task: Task, *, channel: Channel) -> str:
    """One task with its history (oldest first)."""
    status = _task_status_word(task.status)
    if channel == "voice":
        parts = [
            f"Task {task.id}, {plain_name(task.title)}, {_task_is(task.status)}, "
            f"priority {task.priority}."
        ]
        parts.append(
            "It is not assigned yet."
            if task.assigned_droplet_id is None
            else f"It is assigned to {_assignee(task, spoken=True)}."
        )
        if task.error_message:
            parts.append(f"Error: {plain_name(task.error_message, limit=120)}.")
        if task.history:
            last = task.history[-1]
            moved = f"It last moved to {_task_status_word(last.to_status)}"
            if last.changed_at is not None:
                moved += f" at {when(last.changed_at, spoken=True)}"
            parts.append(moved + ".")
        return " ".join(parts)
    kind = escape_markdown(task.task_type, limit=30)
    assignee = _assignee(task, spoken=False) if task.assigned_droplet_id else "not assigned yet"
    lines = [
        f"**Task {task.id}**: {escape_markdown(task.title, limit=120)}",
        "",
        f"- Status: {_task_mark(task.status)} {status} · Type: {kind} · Priority: {task.priority}",
        f"- Assigned to: {assignee}",
    ]
    if task.created_at is not None:
        created = f"- Created: {when(task.created_at)}"
        if task.completed_at is not None:
            created += f" · Completed: {when(task.completed_at)}"
        lines.append(created)
    if task.description:
        lines.append(f"- Description: {escape_markdown(task.description, limit=300)}")
    if task.error_message:
        lines.append(f"- Error: {escape_markdown(task.error_message, limit=300)}")
    if task.trace_id:
        lines.append(f"- Trace: {escape_markdown(task.trace_id, limit=64)}")
    if task.history:
        rows = [
            [
                when(h.changed_at) if h.changed_at else "—",
                escape_markdown(h.from_status or "—", limit=20),
                escape_markdown(h.to_status, limit=20),
                escape_markdown(h.changed_by or "—", limit=30),
                escape_markdown(h.reason or "—", limit=80),
            ]
            for h in task.history[-CHAT_ROWS:]
        ]
        history = _table(["When", "From", "To", "By", "Reason"], ["---"] * 5, rows)
        lines += ["", "**History**", "", history]
    return "\n".join(lines)


def render_created(
    created: CreatedTask | executor.CreatedTaskReport,
    *,
    channel: Channel,
    call: ToolCall | None = None,
) -> str:
    """The confirmation that a task exists now, with its id."""
    args: Mapping[str, Any] = call.args if call is not None and call.tool == "create_task" else {}
    if isinstance(created, executor.CreatedTaskReport):
        request = created.request
        args = {
            "task_type": request.task_type,
            "title": request.title,
            "priority": request.priority,
        }
        created = created.created
    status = _task_status_word(created.status)
    kind, title, priority = args.get("task_type"), args.get("title"), args.get("priority")
    if channel == "voice":
        what = f"a {plain_name(kind)} task" if isinstance(kind, str) else "the task"
        return f"Done. I created {what}, number {created.task_id}. It is {status}."
    lead = f"✅ Created task **{created.task_id}**"
    if isinstance(kind, str) and isinstance(title, str):
        lead += f": {escape_markdown(kind)} '{escape_markdown(title, limit=120)}'"
    tail = f", priority {priority}" if isinstance(priority, int) else ""
    return f"{lead}{tail} (status {status})."


def render_cancelled(cancelled: CancelledTask, *, channel: Channel) -> str:
    status = _task_status_word(cancelled.status)
    if channel == "voice":
        return f"Task {cancelled.task_id} is {status}."
    return f"🚫 Task **{cancelled.task_id}** is {status}."


def render_sent(sent: SentMessage, *, channel: Channel) -> str:
    """The Orchestrator's receipt for a relayed message."""
    ident = sent.target_droplet_id
    if channel == "voice":
        name = (
            f"{plain_name(sent.target_name)}, droplet {ident}"
            if sent.target_name
            else f"droplet {ident}"
        )
        return (
            f"Message sent to {name}."
            if sent.delivered
            else f"The message to {name} was not delivered."
        )
    name = (
        f"{escape_markdown(sent.target_name, limit=60)} (droplet {ident})"
        if sent.target_name
        else f"droplet {ident}"
    )
    if not sent.delivered:
        return f"⚠️ The Orchestrator accepted the message but could not deliver it to {name}."
    return f"📨 Sent your message to {name}."


# ---- the whole mesh ------------------------------------------------------------------------------


def render_system(report: SystemReport | SystemState, *, channel: Channel) -> str:
    """Droplets up and down, tasks running and waiting, who is not active, recent alerts."""
    if isinstance(report, SystemState):
        report = SystemReport(report)
    state, droplets = report.state, list(report.droplets)
    active = state.droplets_active if state is not None else None
    total = state.droplets_total if state is not None else None
    if droplets and (active is None or total is None):
        total = len(droplets)
        active = sum(1 for d in droplets if _status_key(d.status) in ("active", "healthy"))
    down = [d for d in droplets if _status_key(d.status) in ("error", "down", "inactive")]
    running = state.tasks_active if state is not None else None
    waiting = state.tasks_pending if state is not None else None
    alerts = sorted(report.alerts, key=lambda e: e.at, reverse=True)
    note = unavailable_note(
        report.unavailable,
        known_from=[p for p in PEERS if p not in report.unavailable],
        channel=channel,
    )
    if channel == "voice":
        parts: list[str] = []
        if active is not None and total is not None:
            verb = "is" if active == 1 else "are"
            share = f"{number_word(active, capital=True)} of {number_word(total)}"
            parts.append(f"{share} droplets {verb} active.")
        if running is not None or waiting is not None:
            parts.append(
                f"{number_word(running or 0, capital=True)} {plural(running or 0, 'task')} running "
                f"and {number_word(waiting or 0)} waiting."
            )
        if down:
            parts.append(f"Not active: {_name_list([d.name for d in down])}.")
        if alerts:
            parts.append(f"Latest alert: {plain_name(alerts[0].summary, limit=120)}.")
        return _with_note(note, " ".join(parts) or "I have no live figures right now.", channel)
    heads = []
    if active is not None and total is not None:
        heads.append(f"{active} of {total} droplets active")
    if running is not None:
        heads.append(f"{running} {plural(running, 'task')} running")
    if waiting is not None:
        heads.append(f"{waiting} pending")
    lines = [f"**Mesh status**: {' · '.join(heads) if heads else 'no live figures right now'}"]
    if down or alerts or state is not None:
        lines.append("")
    if down:
        names = ", ".join(
            f"{escape_markdown(d.name, limit=40)} (droplet {d.id}, {_mark(d.status)} "
            f"{escape_markdown(d.status)})"
            for d in down[:CHAT_ROWS]
        )
        lines.append(f"- Not active: {names}")
    if state is not None:
        load = []
        if state.cpu_percent is not None:
            load.append(f"CPU {state.cpu_percent:.0f}%")
        if state.memory_mb is not None:
            load.append(f"memory {state.memory_mb:.0f} MB")
        if state.uptime_seconds is not None:
            load.append(f"up {ago(state.uptime_seconds).removesuffix(' ago')}")
        if load:
            lines.append(f"- Orchestrator: {' · '.join(load)}")
    for event in alerts[:3]:
        lines.append(f"- {_alert_line(event)}")
    return _with_note(note, "\n".join(lines).rstrip(), channel)


def _alert_line(event: MeshEvent) -> str:
    mark = _SEVERITY_MARK.get(event.severity, _INFO_MARK)
    summary = escape_markdown(event.summary, limit=200)
    unverified = (
        f" · _unverified, via {escape_markdown(event.via or 'unknown', limit=45)}_"
        if not event.verified
        else ""
    )
    return f"{mark} **{event.severity}** · {when(event.at)} · {summary}{unverified}"


def render_alerts(listing: AlertListing | Sequence[MeshEvent], *, channel: Channel) -> str:
    """Recent alerts, newest first; verified ones before unverified ones."""
    if not isinstance(listing, AlertListing):
        listing = AlertListing(list(listing))
    events = sorted(listing.events, key=lambda e: (e.verified, e.at), reverse=True)
    note = unavailable_note(
        listing.unavailable,
        known_from=[p for p in PEERS if p not in listing.unavailable],
        channel=channel,
    )
    n = len(events)
    if channel == "voice":
        if not events:
            return _with_note(note, "No alerts. All quiet.", channel)
        said = [
            f"{e.severity.capitalize()}{'' if e.verified else ', unverified'}: "
            f"{plain_name(e.summary, limit=120)}."
            for e in events[:3]
        ]
        more = [f"And {n - 3} more."] if n > 3 else []
        body = " ".join([f"{number_word(n, capital=True)} {plural(n, 'alert')}.", *said, *more])
        return _with_note(note, body, channel)
    if not events:
        return _with_note(note, "No alerts. All quiet. ✅", channel)
    items = "\n".join(f"- {_alert_line(e)}" for e in events[:CHAT_ROWS])
    body = f"**{n} {plural(n, 'alert')}**, newest first:\n\n{items}{_more(n, CHAT_ROWS)}"
    return _with_note(note, body, channel)
