"""Presentation pieces the tools share: status marks, tables, names, notes about missing peers.

Chat gets markdown (summary first, then a table or a short list); voice gets short plain
sentences with no markdown, emoji or symbols. Everything a peer or a user supplied is escaped
for markdown or made speakable, so "<script>" or "| evil |" shows as text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from app.domain.mesh import Droplet, MeshEvent, Task, TaskState
from app.tools.base import Channel
from app.utils.markup import ago, escape_markdown, join_words, plain_name, to_voice, when

PEERS = ("Registry", "Orchestrator")

CHAT_ROWS = 50
"""Rows shown in a chat table before "…and N more"."""
VOICE_ITEMS = 5
"""Names read aloud per group before "and N more"."""

SOURCE_NAMES: Mapping[str, str] = {
    "registry": "Registry",
    "orchestrator": "Orchestrator",
    "catalogue": "static catalogue",
}
DROPLET_ORDER = ("active", "healthy", "inactive", "unknown", "error", "down")
DROPLET_MARK: Mapping[str, str] = {
    "active": "✅",
    "healthy": "✅",
    "inactive": "⚠️",
    "unknown": "❔",
    "error": "❌",
    "down": "❌",
}
TASK_MARK: Mapping[str, str] = {
    "pending": "⏳",
    "assigned": "📌",
    "in_progress": "🔄",
    "completed": "✅",
    "failed": "❌",
    "cancelled": "🚫",
}
INFO_MARK = "\u2139\ufe0f"
SEVERITY_MARK: Mapping[str, str] = {"critical": "❌", "warning": "⚠️", "info": INFO_MARK}


def for_channel(text: str, channel: Channel) -> str:
    """Plain speech for voice (no markdown, emoji or symbols); chat as is."""
    return to_voice(text) if channel == "voice" else text


def peer_display(peer: str) -> str:
    """ "Orchestrator" for "orchestrator" (how adapters name themselves), else the name given."""
    low = peer.lower()
    return next((p for p in PEERS if p.lower() in low), peer)


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


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
                f"{capital(down)} {verb} unreachable right now. Here is what {sources} knows."
            )
        return f"⚠️ {capital(down)} {verb} unreachable right now; here is what {sources} knows:"
    text = f"{capital(down)} {verb} unreachable right now, so I have nothing live to show."
    return to_voice(text) if channel == "voice" else f"⚠️ {text}"


def with_note(note: str, body: str, channel: Channel) -> str:
    if not note:
        return body
    return f"{note} {body}" if channel == "voice" else f"{note}\n\n{body}"


def table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def more(total: int, shown: int) -> str:
    return f"\n\n…and {total - shown} more." if total > shown else ""


def name_list(names: Sequence[str], *, cap: int = VOICE_ITEMS) -> str:
    spoken = [plain_name(n) for n in names[:cap]]
    if len(names) > cap:
        return f"{', '.join(spoken)} and {len(names) - cap} more"
    return join_words(spoken)


def droplet_ref(droplet_id: object, name: str | None, *, spoken: bool) -> str:
    """ "Onboarding (droplet 16)" / "Onboarding, droplet 16" / "droplet 16"."""
    if not isinstance(droplet_id, int):
        return "a droplet"
    if name is None:
        return f"droplet {droplet_id}"
    if spoken:
        return f"{plain_name(name)}, droplet {droplet_id}"
    return f"{escape_markdown(name, limit=40)} (droplet {droplet_id})"


# ---- droplets ------------------------------------------------------------------------------------


def status_key(status: str) -> str:
    low = status.lower()
    return low if low in DROPLET_MARK else "unknown"


def mark(status: str) -> str:
    return DROPLET_MARK[status_key(status)]


def ordered_counts(statuses: Sequence[str]) -> list[tuple[str, int]]:
    counts = Counter(s.lower() or "unknown" for s in statuses)
    order = {name: i for i, name in enumerate(DROPLET_ORDER)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def known_from(droplets: Sequence[Droplet], unavailable: Sequence[str]) -> list[str]:
    """Which sources the shown droplets came from (minus the ones that failed)."""
    sources: list[str] = []
    for droplet in droplets:
        for source in droplet.sources:
            name = SOURCE_NAMES.get(source, source)
            if name not in sources and name not in unavailable:
                sources.append(name)
    if not sources:
        sources = [p for p in PEERS if p not in unavailable]
    return sources


def heartbeat(d: Droplet, *, spoken: bool) -> str:
    if d.seconds_since_heartbeat is not None:
        return ago(d.seconds_since_heartbeat, spoken=spoken)
    if d.last_seen is not None:
        return when(d.last_seen, spoken=spoken)
    return "never" if spoken else "—"


def capabilities(caps: Sequence[str], limit: int = 5) -> str:
    if not caps:
        return "—"
    shown = ", ".join(escape_markdown(c, limit=40) for c in caps[:limit])
    return f"{shown} (+{len(caps) - limit} more)" if len(caps) > limit else shown


_SPOKEN_DROPLET_STATE: Mapping[str, str] = {"error": "in error", "unknown": "of unknown status"}


def droplet_is(status: str, *, spoken: bool = True) -> str:
    """What follows "is": "in error", "active". Spoken, an unknown word is made plain;
    written, it is kept for the caller to escape."""
    known = _SPOKEN_DROPLET_STATE.get(status.lower())
    if known is not None:
        return known
    return plain_name(status) if spoken else status


# ---- tasks ---------------------------------------------------------------------------------------

_SPOKEN_TASK_STATE: Mapping[str, str] = {"failed": "has failed", "cancelled": "was cancelled"}


def task_status_word(status: TaskState | str) -> str:
    return str(status).replace("_", " ")


def task_is(status: TaskState | str) -> str:
    """ "is pending", "has failed": a task state as said in a sentence."""
    return _SPOKEN_TASK_STATE.get(str(status), f"is {task_status_word(status)}")


def task_mark(status: TaskState | str) -> str:
    return TASK_MARK.get(str(status), "❔")


def assignee(task: Task, *, spoken: bool) -> str:
    if task.assigned_droplet_id is None:
        return "not assigned yet" if spoken else "—"
    return droplet_ref(task.assigned_droplet_id, task.assigned_droplet_name, spoken=spoken)


# ---- events --------------------------------------------------------------------------------------


def alert_line(event: MeshEvent) -> str:
    sign = SEVERITY_MARK.get(event.severity, INFO_MARK)
    summary = escape_markdown(event.summary, limit=200)
    unverified = (
        f" · _unverified, via {escape_markdown(event.via or 'unknown', limit=45)}_"
        if not event.verified
        else ""
    )
    return f"{sign} **{event.severity}** · {when(event.at)} · {summary}{unverified}"
