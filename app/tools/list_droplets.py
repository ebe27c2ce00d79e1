"""list_droplets: the droplets registered in the mesh, optionally only those in one state."""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.mesh import Droplet
from app.mesh.directory import DirectoryListing
from app.tools.base import Channel, Cues, HelpEntry, Outcome, Slot, Tool, ToolArgs
from app.tools.context import RunContext
from app.tools.render import (
    CHAT_ROWS,
    capabilities,
    droplet_is,
    heartbeat,
    known_from,
    mark,
    more,
    name_list,
    ordered_counts,
    peer_display,
    table,
    unavailable_note,
    with_note,
)
from app.tools.vocabulary import DropletStatus
from app.utils.markup import escape_markdown, number_word, plural


class ListDropletsArgs(ToolArgs):
    status: DropletStatus | None = None


class ListDroplets(Tool[ListDropletsArgs]):
    name = "list_droplets"
    description = (
        "List the droplets registered in the mesh, optionally only those with a given status "
        "(active, inactive, error, healthy, down)."
    )
    Args = ListDropletsArgs
    peers = ("registry", "orchestrator")
    slots = {"status": Slot("droplet_status")}
    cues = Cues(
        verbs=("enumerate",),
        nouns=(
            "droplets",
            "services",
            "nodes",
            "registered",
            "registry entries",
            "fleet",
            "droplet",
        ),
        phrases=(
            "registered items",
            "all droplets",
            "which droplets",
            "what droplets",
            "droplets are",
            "how many droplets",
            "droplet list",
            "list of droplets",
            "everything registered",
            "who is registered",
            "what is registered",
            "what is online",
            "what is up",
            "who is online",
            "what is down",
            "what is offline",
            "anything down",
            "anything offline",
            "is anything down",
            "which are up",
            "which are down",
        ),
        context=("list", "show", "display", "see"),
        entities=("droplet_status",),
        against=("task", "tasks", "alerts", "capabilities"),
        excludes=("droplet", "task"),
    )
    help = HelpEntry(
        "List droplets", ("show me all registered droplets", "which droplets are down?")
    )
    action = "list the droplets"
    done = "listed"

    def __init__(self) -> None:
        # The answers last rendered from the whole listing, by channel. A listing is the
        # directory's snapshot, shared by every turn until it is fetched again (DIRECTORY_TTL_S)
        # and never changed, and its answer depends on nothing else (heartbeat ages are the
        # snapshot's), so each turn that lists the same snapshot gets the same text without
        # escaping every cell again (~40 cells, ~50 µs). A new snapshot starts afresh. A
        # filtered listing is a new object every time: it is rendered, not remembered, and
        # does not push the whole listing's answers out.
        self._rendered: tuple[DirectoryListing, dict[Channel, str]] | None = None

    async def run(self, args: ListDropletsArgs, ctx: RunContext, out: Outcome) -> None:
        listing = await ctx.mesh.directory.list(args.status, trace_id=ctx.trace_id)
        out.result = listing
        if listing.failures:
            out.peer = ", ".join(f.peer for f in listing.failures)
            out.message = "; ".join(f"{f.peer}: {f.message}" for f in listing.failures)
            if not listing.droplets:
                out.status = "unavailable"
            elif all(d.sources == ["catalogue"] for d in listing.droplets):
                out.status = "degraded"

    def render(self, out: Outcome, channel: Channel) -> str:
        listing: DirectoryListing = out.result
        status = out.call.args.get("status")
        status_filter = status if isinstance(status, str) else None
        if status_filter is not None:
            return self._render(listing, status_filter, channel)
        if self._rendered is None or self._rendered[0] is not listing:
            self._rendered = (listing, {})
        answers = self._rendered[1]
        text = answers.get(channel)
        if text is None:
            text = answers[channel] = self._render(listing, None, channel)
        return text

    @staticmethod
    def _render(listing: DirectoryListing, status_filter: str | None, channel: Channel) -> str:
        return render_droplets(
            listing.droplets,
            unavailable=[peer_display(f.peer) for f in listing.failures],
            status_filter=status_filter,
            channel=channel,
        )


def render_droplets(
    droplets: Sequence[Droplet],
    *,
    unavailable: Sequence[str] = (),
    status_filter: str | None = None,
    channel: Channel,
) -> str:
    """A droplet table (chat) or grouped names (voice), summary first: "7 droplets: 5 active"."""
    ordered = sorted(droplets, key=lambda d: d.id)
    note = unavailable_note(
        unavailable, known_from=known_from(ordered, unavailable), channel=channel
    )
    body = _voice(ordered, status_filter) if channel == "voice" else _chat(ordered, status_filter)
    return with_note(note, body, channel)


def _chat(droplets: Sequence[Droplet], status_filter: str | None) -> str:
    n = len(droplets)
    if not droplets:
        if status_filter:
            state = escape_markdown(droplet_is(status_filter, spoken=False))
            return f"No droplets are {state} right now."
        return "No droplets are registered."
    rows = [
        [
            str(d.id),
            escape_markdown(d.name, limit=60),
            f"{mark(d.status)} {escape_markdown(d.status, limit=20)}",
            heartbeat(d, spoken=False),
            capabilities(d.capabilities),
        ]
        for d in droplets[:CHAT_ROWS]
    ]
    grid = table(
        ["ID", "Name", "Status", "Last heartbeat", "Capabilities"],
        ["---:", "---", "---", "---", "---"],
        rows,
    )
    if status_filter:
        summary = f"{n} {plural(n, 'droplet')} {escape_markdown(status_filter)}"
    else:
        counts = ordered_counts([d.status for d in droplets])
        parts = ", ".join(f"{count} {escape_markdown(status)}" for status, count in counts)
        summary = f"{n} {plural(n, 'droplet')}: {parts}"
    return f"**{summary}**\n\n{grid}{more(n, CHAT_ROWS)}"


def _voice(droplets: Sequence[Droplet], status_filter: str | None) -> str:
    n = len(droplets)
    if not droplets:
        if status_filter:
            return f"No droplets are {droplet_is(status_filter)} right now."
        return "No droplets are registered."
    count = number_word(n, capital=True)
    if status_filter:
        verb = "is" if n == 1 else "are"
        names = name_list([d.name for d in droplets])
        return f"{count} {plural(n, 'droplet')} {verb} {droplet_is(status_filter)}: {names}."
    sentences = [f"{count} {plural(n, 'droplet')}."]
    groups: dict[str, list[str]] = {}
    for d in droplets:
        groups.setdefault(d.status.lower() or "unknown", []).append(d.name)
    for status, size in ordered_counts([d.status for d in droplets]):
        verb = "is" if size == 1 else "are"
        sentences.append(
            f"{number_word(size, capital=True)} {verb} {droplet_is(status)}: "
            f"{name_list(groups[status])}."
        )
    return " ".join(sentences)
