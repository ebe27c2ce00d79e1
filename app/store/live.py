"""Live sessions: what a turn needs of a recently used session, held in this instance's memory.

Why: reading the session row and its last messages from the database on every turn was about a
quarter of a turn's CPU. The store keeps, per session, the `SessionInfo` and the planner's
view (role, text) of the last `window` messages as they were after this instance's last commit,
and serves a turn from them while the row in the database still has the same *version*: its
`created_at` (a deleted and recreated session differs) and its `message_count` (every turn and
every notification adds to it, and pending actions and context only change with a turn). The
store reads that version, one primary-key lookup, inside the session's cross-process lock, so a
turn never runs on state another instance, a notification or a deletion changed meanwhile.

The entries are bounded (least recently used go first) and hold nothing that is not also in
the database: losing them costs one reload. They hold no more than a turn reads: the messages
themselves (sequence numbers, times, metadata) stay in the database. Everything an entry holds
is walked by every full garbage collection until the next freeze (app.ops.gc_freeze), so a
message kept whole cost four or more tracked objects more than its view (measured under the
64-client read mix: a full collection walked 11,000-13,500 objects instead of 16,000-21,000 and
took 3.5-4.3 ms instead of 5-10 ms, docs/performance.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from app.domain.plan import HistoryTurn
from app.domain.session import SessionInfo, StoredMessage
from app.store.turns import TurnCommitted, title_of

_T = TypeVar("_T")

Version = tuple[datetime, int]
"""A session row's (created_at, message_count)."""


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session as of its last commit. Immutable: a turn replaces it, never edits it."""

    info: SessionInfo
    turns: tuple[HistoryTurn, ...] = ()
    """The planner's view of the last messages (at most the store's window), oldest first: built
    once per message, not per turn."""

    @property
    def version(self) -> Version:
        return (self.info.created_at, self.info.message_count)


class LiveSessions:
    """The bounded map of live sessions of one store (one per instance)."""

    def __init__(self, *, capacity: int, window: int) -> None:
        if capacity < 0 or window < 0:
            raise ValueError("capacity and window must be >= 0")
        self.capacity = capacity
        self.window = window
        self._entries: OrderedDict[str, LiveSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def current(self, session_id: str, version: Version) -> LiveSession | None:
        """The entry if it still matches the database's `version`; a stale one is dropped."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if entry.version != version:
            del self._entries[session_id]
            return None
        self._entries.move_to_end(session_id)
        return entry

    def put(self, info: SessionInfo, recent: Sequence[StoredMessage]) -> LiveSession:
        """Keep `info` and the planner's view of the last `window` of `recent` (oldest first)."""
        return self._keep(info, tuple(m.as_turn() for m in self._last(recent)))

    def _last(self, items: Sequence[_T]) -> Sequence[_T]:
        """The last `window` of `items`."""
        return items[-self.window :] if self.window else ()

    def _keep(self, info: SessionInfo, turns: tuple[HistoryTurn, ...]) -> LiveSession:
        entry = LiveSession(info=info, turns=turns)
        if self.capacity == 0:
            return entry
        self._entries[info.session_id] = entry
        self._entries.move_to_end(info.session_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry

    def drop(self, session_id: str) -> None:
        self._entries.pop(session_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def committed(self, change: TurnCommitted) -> None:
        """Apply a committed turn; an entry that missed a write in between is dropped instead."""
        entry = self._entries.get(change.session_id)
        if entry is None:
            return
        if change.message_count != entry.info.message_count + 2:
            # A notification (or another writer) took a number in between: this entry's
            # messages have a gap. The next turn reloads.
            del self._entries[change.session_id]
            return
        old = entry.info
        info = old.model_copy(
            update={
                "message_count": change.message_count,
                "last_activity": change.answer.created_at,
                "title": old.title if old.title is not None else title_of(change.user.text),
                "pending": change.pending if change.pending_changed else old.pending,
                "context": dict(change.context),
            }
        )
        turns = (*entry.turns, change.user.as_turn(), change.answer.as_turn())
        self._keep(info, tuple(self._last(turns)))
