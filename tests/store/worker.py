"""A second process for the session store tests (run with `python -m tests.store.worker`).

Environment: STORE_URL, STORE_SCHEMA (PostgreSQL search_path, optional), STORE_SESSION, and
the mode as argv[1]:
- hold:  take the session lock, say "locked", then wait to be killed.
- turns: record turns forever, saying "<n>" after each one is committed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from app.store.sessions import SessionStore


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _main(mode: str) -> None:
    schema = os.environ.get("STORE_SCHEMA")
    connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}} if schema else {}
    session_id = os.environ["STORE_SESSION"]
    async with SessionStore(
        database_url=os.environ["STORE_URL"], connect_args=connect_args
    ) as store:
        if mode == "hold":
            async with store.lock(session_id):
                _say("locked")
                await asyncio.Event().wait()  # until killed
        elif mode == "turns":
            n = 0
            while True:
                async with store.lock(session_id):
                    await store.record_turn(
                        session_id=session_id,
                        user_text=f"turn {n}",
                        answer_text=f"answer {n}",
                        trace_id=f"trace-{n}",
                    )
                _say(str(n))
                n += 1
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
