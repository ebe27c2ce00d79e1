"""One turn's writes, as the conversation hands them to the store, and what committing them did
(and what making a new session's row did)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from app.domain.plan import PendingCall
from app.domain.session import AuditEntry, StoredMessage

TITLE_MAX = 80

Created = Literal["created", "exists", "over_quota"]
"""What making a new session's row did: made it, found one with that id, or refused (the
owner has as many sessions as the quota allows)."""


class MissingSession(LookupError):
    """The turn's session row is gone (deleted meanwhile); nothing of the turn was written."""


@dataclass(frozen=True, slots=True)
class TurnWrite:
    """Everything one turn stores, in one transaction (see SessionStore.record_turn)."""

    session_id: str
    user_text: str
    answer_text: str
    trace_id: str | None
    at: datetime
    answer_meta: Mapping[str, Any]
    """JSON-ready: {"actions": [...], ...}."""
    audit: Sequence[AuditEntry] = ()
    pending_changed: bool = False
    pending: PendingCall | None = None
    context_update: Mapping[str, Any] = field(default_factory=dict)
    """JSON-ready; merged (shallow) into the stored context."""

    @property
    def title(self) -> str:
        return title_of(self.user_text)

    @property
    def pending_json(self) -> dict[str, Any] | None:
        """The pending action as stored (None clears it, with `pending_changed`)."""
        return None if self.pending is None else self.pending.model_dump(mode="json")

    def message_rows(self, *, last_seq: int, at: Any) -> list[tuple[Any, ...]]:
        """The two message rows (user, answer) as (session_id, seq, role, text, trace_id,
        created_at, meta as JSON text), the answer at `last_seq`; `at` is the time in the
        database's own form."""
        return [
            (self.session_id, last_seq - 1, "user", self.user_text, self.trace_id, at, "{}"),
            (
                self.session_id,
                last_seq,
                "assistant",
                self.answer_text,
                self.trace_id,
                at,
                json.dumps(self.answer_meta),
            ),
        ]

    def audit_rows(self, *, stamp: Callable[[datetime], Any]) -> list[tuple[Any, ...]]:
        """The audit rows as (at, actor, session_id, source, tool, args as JSON text, outcome,
        detail, duration_ms, trace_id, planner); `stamp` gives a time the database's form."""
        return [
            (
                stamp(entry.at),
                entry.actor,
                entry.session_id or self.session_id,
                entry.source,
                entry.tool,
                json.dumps(args),
                entry.outcome,
                entry.detail,
                entry.duration_ms,
                entry.trace_id or self.trace_id,
                entry.planner,
            )
            for entry, args in zip(self.audit, self.audit_args, strict=True)
        ]

    @property
    def audit_args(self) -> list[Any]:
        """JSON-ready arguments of each audit entry, in order."""
        return [jsonable(entry.args) for entry in self.audit]


@dataclass(frozen=True, slots=True)
class TurnCommitted:
    """What one committed turn changed, as the writer saw it in the database."""

    session_id: str
    message_count: int
    """The row's message_count after the turn."""
    user: StoredMessage
    answer: StoredMessage
    context: Mapping[str, Any]
    """The whole context after the merge."""
    pending: PendingCall | None
    pending_changed: bool

    @property
    def seqs(self) -> tuple[int, int]:
        return self.user.seq, self.answer.seq


def committed(write: TurnWrite, *, message_count: int, context: Mapping[str, Any]) -> TurnCommitted:
    """The outcome of `write` once its UPDATE returned `message_count` (the answer's seq)."""
    return TurnCommitted(
        session_id=write.session_id,
        message_count=message_count,
        user=StoredMessage(
            seq=message_count - 1,
            role="user",
            text=write.user_text,
            trace_id=write.trace_id,
            created_at=write.at,
            meta={},
        ),
        answer=StoredMessage(
            seq=message_count,
            role="assistant",
            text=write.answer_text,
            trace_id=write.trace_id,
            created_at=write.at,
            meta=dict(write.answer_meta),
        ),
        context=context,
        pending=write.pending,
        pending_changed=write.pending_changed,
    )


def jsonable(value: Any) -> Any:
    """What JSON can say about `value`: tool arguments may hold datetimes, enums or models."""
    return to_jsonable_python(value, fallback=str)


def title_of(user_text: str) -> str:
    """What a session list shows: the first user message on one line, shortened."""
    line = " ".join(user_text.split())
    return line if len(line) <= TITLE_MAX else line[: TITLE_MAX - 1] + "…"
