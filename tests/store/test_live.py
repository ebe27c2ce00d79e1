"""LiveSessions: bounded, dropped when stale, and a committed turn applied only without a gap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from app.domain.session import SessionInfo, StoredMessage
from app.store.live import LiveSessions
from app.store.turns import TurnWrite, committed

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)


def _info(sid: str, count: int = 0, title: str | None = None) -> SessionInfo:
    return SessionInfo(
        session_id=sid,
        source="chat",
        owner="user:a",
        title=title,
        created_at=T0,
        last_activity=T0,
        message_count=count,
    )


def _msg(seq: int) -> StoredMessage:
    return StoredMessage(
        seq=seq, role="user" if seq % 2 else "assistant", text=f"m{seq}", created_at=T0
    )


def _write(sid: str, **extra: object) -> TurnWrite:
    return TurnWrite(
        session_id=sid,
        user_text="  show me\n all droplets ",
        answer_text="Here they are.",
        trace_id="t1",
        at=T1,
        answer_meta={"actions": []},
        **extra,  # type: ignore[arg-type]
    )


def test_current_only_while_the_version_matches() -> None:
    live = LiveSessions(capacity=10, window=4)
    live.put(_info("a", 2), [_msg(1), _msg(2)])
    assert live.current("a", (T0, 2)) is not None
    assert live.current("a", (T0, 3)) is None  # stale: dropped
    assert len(live) == 0
    live.put(_info("a", 2), [])
    assert live.current("a", (T1, 2)) is None  # recreated session: other created_at


def test_window_and_capacity_are_bounds() -> None:
    live = LiveSessions(capacity=2, window=2)
    entry = live.put(_info("a", 3), [_msg(1), _msg(2), _msg(3)])
    assert entry.turns == (_msg(2).as_turn(), _msg(3).as_turn())
    live.put(_info("b"), [])
    assert live.current("a", (T0, 3)) is not None  # "a" is now the most recently used
    live.put(_info("c"), [])
    assert len(live) == 2
    assert live.current("b", (T0, 0)) is None  # the least recently used went
    assert live.current("a", (T0, 3)) is not None


def test_zero_capacity_keeps_nothing() -> None:
    live = LiveSessions(capacity=0, window=4)
    entry = live.put(_info("a"), [_msg(1)])
    assert entry.turns == (_msg(1).as_turn(),)
    assert len(live) == 0
    with pytest.raises(ValueError):
        LiveSessions(capacity=-1, window=1)


def test_committed_turn_is_applied() -> None:
    live = LiveSessions(capacity=4, window=3)
    live.put(_info("a", 2), [_msg(1), _msg(2)])
    write = _write("a", context_update={"k": 1})
    live.committed(committed(write, message_count=4, context={"old": 0, "k": 1}))
    entry = live.current("a", (T0, 4))
    assert entry is not None
    assert [t.text for t in entry.turns] == ["m2", "  show me\n all droplets ", "Here they are."]
    assert entry.info.title == "show me all droplets"
    assert entry.info.last_activity == T1
    assert entry.info.context == {"old": 0, "k": 1}


def test_committed_turn_after_a_gap_drops_the_entry() -> None:
    live = LiveSessions(capacity=4, window=3)
    live.put(_info("a", 2, title="first"), [_msg(1), _msg(2)])
    # The turn took 4 and 5: a notification took 3 meanwhile.
    live.committed(committed(_write("a"), message_count=5, context={}))
    assert len(live) == 0


def test_a_title_once_set_stays() -> None:
    live = LiveSessions(capacity=4, window=3)
    live.put(_info("a", 0, title="first"), [])
    live.committed(committed(_write("a"), message_count=2, context={}))
    entry = live.current("a", (T0, 2))
    assert entry is not None
    assert entry.info.title == "first"


def test_the_planners_view_follows_the_messages_kept() -> None:
    live = LiveSessions(capacity=4, window=3)
    first = live.put(_info("a", 2), [_msg(1), _msg(2)])
    assert first.turns == (_msg(1).as_turn(), _msg(2).as_turn())
    live.committed(committed(_write("a"), message_count=4, context={}))
    entry = live.current("a", (T0, 4))
    assert entry is not None
    assert [(t.role, t.text) for t in entry.turns] == [
        ("assistant", "m2"),
        ("user", "  show me\n all droplets "),
        ("assistant", "Here they are."),
    ]
    assert live.put(_info("b"), []).turns == ()


def test_the_planners_view_cannot_be_changed_by_a_planner() -> None:
    live = LiveSessions(capacity=4, window=3)
    entry = live.put(_info("a", 1), [_msg(1)])
    with pytest.raises(ValidationError):
        entry.turns[0].text = "something else"  # type: ignore[misc]
    assert entry.turns[0].text == "m1"
