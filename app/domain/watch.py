"""A watch: "tell me when droplet 16 is back", owned by one identity in one session."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

WatchEvent = Literal["up", "down", "change", "done", "failed"]


class TooManyWatches(Exception):
    """The owner already has as many active watches as it may keep."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} watches")
        self.limit = limit


class Watch(BaseModel):
    id: int | None = None
    owner: str
    """The identity that asked; only it sees and stops the watch."""
    session_key: str
    source: Literal["chat", "voice"] = "chat"
    droplet_id: int | None = None
    task_id: int | None = None
    event: WatchEvent
    created_at: datetime
    expires_at: datetime
    last_seen: str | None = None
    """The status last observed, to notice a change."""
    fired_at: datetime | None = None
    route_back: str | None = None
    """The droplet to deliver the notification to (a Voice session), when configured."""

    def describe(self) -> str:
        """ "droplet 16 is back", "task 7 finishes", "any task fails"."""
        if self.task_id is not None:
            what = {
                "change": "changes status",
                "done": "finishes",
                "failed": "fails",
                "up": "changes status",
                "down": "changes status",
            }[self.event]
            return f"task {self.task_id} {what}"
        if self.droplet_id is not None:
            if self.event in ("failed", "done"):
                return f"a task of droplet {self.droplet_id} {_verb(self.event)}"
            what = {"up": "is back", "down": "goes down", "change": "changes status"}[self.event]
            return f"droplet {self.droplet_id} {what}"
        return f"any task {_verb(self.event)}"


def _verb(event: str) -> str:
    return {"failed": "fails", "done": "finishes"}.get(event, "changes status")


class WatchFilter(BaseModel):
    """Which watches to stop: one by id, those on a task or droplet, or all."""

    watch_id: int | None = None
    task_id: int | None = None
    droplet_id: int | None = None
    all: bool = Field(default=False)
