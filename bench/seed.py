"""Seed a session database before the service starts (for the cost-growth scenario).

The schema comes from the service's own migrations (`SessionStore.migrate`); rows go in with
one bulk `executemany` in the formats the service writes, and are read back through
`SessionStore` before the service starts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.store.sessions import SessionStore

QUESTION = "show me all droplets"
ANSWER = (
    "**6 droplets** (5 active, 1 inactive)\n\n| id | name | status |\n|---|---|---|\n"
    "| 1 | Registry | active |\n| 2 | Dashboard | active |\n| 10 | Orchestrator | active |"
)


async def _migrate(path: Path) -> None:
    store = SessionStore(database_url=f"sqlite+aiosqlite:///{path.as_posix()}")
    await store.open()
    try:
        await store.migrate()
    finally:
        await store.close()


def _when(value: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format (what the service itself writes).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed_database(
    path: Path,
    *,
    sessions: int,
    history_session: str | None = None,
    history_turns: int = 0,
    answer: str = ANSWER,
) -> dict[str, Any]:
    """`sessions` sessions of one turn each (plus `history_session` with `history_turns`).

    Raw `executemany` in one transaction (SQLAlchemy Core with type processing takes ~15 s for
    100,000 sessions on a busy machine; this takes ~2 s); the rows are read back through
    `SessionStore` afterwards, so a format drift fails here rather than in the measurement.
    `answer` is the assistant's text in every seeded turn (pass a real one: the rules planner
    reads the history window on every turn, so its length matters).
    """
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_migrate(path))
    now = datetime.now(UTC)
    answer_meta = json.dumps({"actions": [{"tool": "list_droplets", "status": "ok"}]})

    stamps = [_when(now - timedelta(seconds=(sessions - i) * 0.5)) for i in range(sessions)]

    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO sessions (id, source, owner, title, created_at, last_activity,"
                " message_count, pending_action, context) VALUES (?, 'chat', NULL, ?, ?, ?, 2,"
                " NULL, '{}')",
                ((f"seed-{i:07d}", QUESTION, stamps[i], stamps[i]) for i in range(sessions)),
            )
            conn.executemany(
                "INSERT INTO messages (session_id, seq, role, text, trace_id, created_at, meta)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row
                    for i in range(sessions)
                    for row in (
                        (f"seed-{i:07d}", 1, "user", QUESTION, f"seed-{i}", stamps[i], "{}"),
                        (
                            f"seed-{i:07d}",
                            2,
                            "assistant",
                            answer,
                            f"seed-{i}",
                            stamps[i],
                            answer_meta,
                        ),
                    )
                ),
            )
            conn.executemany(
                "INSERT INTO audit (at, actor, session_id, source, tool, args, outcome, detail,"
                " duration_ms, trace_id, planner) VALUES (?, 'anonymous', ?, 'rest',"
                " 'list_droplets', '{}', 'ok', NULL, 1.0, ?, 'rules')",
                ((stamps[i], f"seed-{i:07d}", f"seed-{i}") for i in range(sessions)),
            )
            if history_session is not None:
                first = now - timedelta(hours=1)
                conn.execute(
                    "INSERT INTO sessions (id, source, owner, title, created_at, last_activity,"
                    " message_count, pending_action, context) VALUES (?, 'chat', NULL, ?, ?, ?,"
                    " ?, NULL, '{}')",
                    (history_session, QUESTION, _when(first), _when(now), history_turns * 2),
                )
                conn.executemany(
                    "INSERT INTO messages (session_id, seq, role, text, trace_id, created_at,"
                    " meta) VALUES (?, ?, ?, ?, ?, ?, '{}')",
                    (
                        (
                            history_session,
                            turn * 2 + offset,
                            role,
                            text,
                            f"history-{turn}",
                            _when(first + timedelta(seconds=turn)),
                        )
                        for turn in range(history_turns)
                        for offset, role, text in ((1, "user", QUESTION), (2, "assistant", answer))
                    ),
                )
    finally:
        conn.close()
    checked = asyncio.run(_read_back(path, history_session))
    return {
        "sessions": sessions + (1 if history_session else 0),
        "messages": sessions * 2 + history_turns * 2,
        "history_session_turns": history_turns,
        "seconds": round(time.perf_counter() - started, 2),
        "db_bytes": path.stat().st_size,
        "read_back": checked,
    }


async def _read_back(path: Path, history_session: str | None) -> dict[str, Any]:
    """Read seeded rows through the service's own store (fails loudly on a format drift)."""
    store = SessionStore(database_url=f"sqlite+aiosqlite:///{path.as_posix()}")
    await store.open()
    try:
        first = await store.get("seed-0000000")
        out: dict[str, Any] = {"first_session_ok": first is not None}
        if history_session is not None:
            info = await store.get(history_session)
            history = await store.history(history_session, limit=20)
            if info is None or len(history) != 20:
                raise RuntimeError("the seeded history session does not read back")
            out["history_last_seq"] = history[-1].seq
        stats = await store.stats()
        out["total_sessions"] = stats.total_sessions
        return out
    finally:
        await store.close()
