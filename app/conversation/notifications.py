"""Telling the owner that a watch fired: the session's history, its open sockets, and (for a
Voice session, when ROUTE_BACK_DELIVERY=orchestrator) the Voice droplet through the Orchestrator.

The history comes first: it is the durable record, and if it cannot be written nothing else is
sent, so the engine may give the watch back and try again without anyone hearing it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog

from app.conversation.watches import Firing
from app.domain.identity import session_name
from app.domain.mesh import Task, TaskState
from app.mesh.delivery import deliver_reply
from app.mesh.orchestrator import OrchestratorClient
from app.store.sessions import SessionNotFound, SessionStore
from app.tools.render import droplet_ref, task_mark, task_status_word
from app.utils.markup import escape_markdown, join_words, number_word, plain_name, plural, to_voice
from app.utils.time import isoformat_z

log = structlog.get_logger(__name__)

Publish = Callable[[dict[str, Any]], Awaitable[None]]
RouteBack = Literal["reply", "orchestrator"]

NOTIFICATION = "notification"
"""The frame type, and `meta["kind"]` of the history entry."""
LISTED = 10
"""Tasks named one by one in a bulk notification."""


class WatchNotifier:
    """The engine's `notify`: `await notifier(firing)`."""

    def __init__(
        self,
        *,
        sessions: SessionStore,
        publish: Publish,
        orchestrator: OrchestratorClient | None = None,
        route_back_delivery: RouteBack = "reply",
        new_trace_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._sessions = sessions
        self._publish = publish
        self._orchestrator = orchestrator
        self._route_back_delivery = route_back_delivery
        self._new_trace_id = new_trace_id

    async def __call__(self, firing: Firing) -> None:
        watch = firing.watch
        voice = watch.source == "voice"
        text = voice_text(firing) if voice else chat_text(firing)
        trace_id = self._new_trace_id()
        try:
            seq = await self._sessions.append_notification(
                watch.session_key,
                text=text,
                trace_id=trace_id,
                meta={"kind": NOTIFICATION, "watch_id": watch.id, "status": firing.status},
            )
        except SessionNotFound:
            # Deleted meanwhile (its watches go with it): nobody is left to tell.
            log.info("watch_session_gone", watch_id=watch.id)
            return
        session_id = session_name(watch.session_key)
        try:
            await self._publish(
                {
                    "kind": "session",
                    "session_key": watch.session_key,
                    # The frame shape of app/channels/ws_hub.frame, built here because the
                    # conversation layer does not import the channels above it.
                    "frame": {
                        "type": NOTIFICATION,
                        "session_id": session_id,
                        "timestamp": isoformat_z(),
                        "text": text,
                        "watch_id": watch.id,
                        "seq": seq,
                        "trace_id": trace_id,
                    },
                }
            )
        except Exception as exc:  # recorded already: the client sees it on its next load
            log.warning("watch_publish_failed", watch_id=watch.id, reason=type(exc).__name__)
        if (
            voice
            and watch.route_back
            and self._route_back_delivery == "orchestrator"
            and self._orchestrator is not None
        ):
            await deliver_reply(
                orchestrator=self._orchestrator,
                target=watch.route_back,
                text=text,
                session_id=session_id,
                trace_id=trace_id,
            )


# ---- wording ---------------------------------------------------------------------------------

_HEALTH_WORD = {"up": "healthy", "down": "down", "error": "in error"}


def chat_text(firing: Firing) -> str:
    """Markdown for the chat page and the CLI."""
    watch = firing.watch
    if firing.task is not None:
        return _task_chat(firing.task, firing.previous)
    if watch.task_id is None and watch.event in ("failed", "done"):
        return _bulk_chat(firing)
    who = droplet_ref(watch.droplet_id, firing.droplet_name, spoken=False)
    return f"{_HEALTH_MARK.get(firing.status, '🔔')} {_capital(who)} {_droplet_news(firing)}."


def voice_text(firing: Firing) -> str:
    """Plain sentences for a speech engine."""
    watch = firing.watch
    if firing.task is not None:
        task = firing.task
        said = f"Task {task.id}, {plain_name(task.title)}, {_task_news(task, firing.previous)}."
        return to_voice(said)
    if watch.task_id is None and watch.event in ("failed", "done"):
        return to_voice(_bulk_voice(firing))
    who = f"Droplet {watch.droplet_id}"
    return to_voice(f"{who} {_droplet_news(firing)}.")


_HEALTH_MARK = {"up": "🟢", "down": "🔴", "error": "❌"}


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _droplet_news(firing: Firing) -> str:
    now, before = firing.status, firing.previous
    word = _HEALTH_WORD.get(now, now)
    if firing.watch.event == "change" and before is not None:
        return f"changed: it is now {word} (was {_HEALTH_WORD.get(before, before)})"
    if now == "up":
        return (
            "is back: it is healthy again" if before in ("down", "error") else "is up and healthy"
        )
    return f"is {word}"


def _task_news(task: Task, previous: str | None) -> str:
    status = task.status
    if status is TaskState.COMPLETED:
        return "finished"
    if status is TaskState.FAILED:
        return "failed"
    if status is TaskState.CANCELLED:
        return "was cancelled"
    was = f" (was {task_status_word(previous)})" if previous else ""
    return f"is now {task_status_word(status)}{was}"


def _task_chat(task: Task, previous: str | None) -> str:
    title = escape_markdown(task.title, limit=120)
    said = f"{task_mark(task.status)} **Task {task.id}** ({title}) {_task_news(task, previous)}"
    if task.status is TaskState.FAILED and task.error_message:
        said += f": {escape_markdown(task.error_message, limit=200)}"
    return said + "."


def _bulk_scope(firing: Firing) -> str:
    droplet_id = firing.watch.droplet_id
    return "" if droplet_id is None else f" of droplet {droplet_id}"


def _bulk_chat(firing: Firing) -> str:
    verb = "failed" if firing.status == TaskState.FAILED.value else "finished"
    tasks = firing.tasks
    mark = task_mark(firing.status)
    if len(tasks) == 1:
        return _task_chat(tasks[0], None)
    lines = [
        f"- **Task {t.id}**: {escape_markdown(t.title, limit=120)}"
        + (f" ({escape_markdown(t.error_message, limit=120)})" if t.error_message else "")
        for t in tasks[:LISTED]
    ]
    if len(tasks) > LISTED:
        lines.append(f"- …and {len(tasks) - LISTED} more")
    return f"{mark} **{len(tasks)} tasks**{_bulk_scope(firing)} {verb}:\n\n" + "\n".join(lines)


def _bulk_voice(firing: Firing) -> str:
    verb = "failed" if firing.status == TaskState.FAILED.value else "finished"
    tasks = firing.tasks
    if len(tasks) == 1:
        task = tasks[0]
        return f"Task {task.id}, {plain_name(task.title)}, {_task_news(task, None)}."
    ids = [str(t.id) for t in tasks[:LISTED]]
    if len(tasks) > LISTED:
        ids.append(f"{len(tasks) - LISTED} more")
    count = number_word(len(tasks), capital=True)
    return f"{count} {plural(len(tasks), 'task')}{_bulk_scope(firing)} {verb}: {join_words(ids)}."
