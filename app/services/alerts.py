"""The bounded log of recent mesh events: the source of "any alerts?" and the event panel."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from app.models.mesh import MeshEvent

Publish = Callable[[dict[str, Any]], Awaitable[None]]


class AlertLog:
    def __init__(self, *, publish: Publish, capacity: int = 500) -> None:
        self._events: deque[MeshEvent] = deque(maxlen=capacity)
        self._publish = publish

    async def add(self, event: MeshEvent) -> None:
        """Keep the event and push it to every connected client (on every instance)."""
        self._events.append(event)
        await self._publish(
            {
                "kind": "mesh",
                "frame": {
                    "type": "event",
                    "session_id": None,
                    "timestamp": event.at.isoformat(),
                    "event": event.model_dump(mode="json"),
                },
            }
        )

    def recent(self, limit: int = 20) -> list[MeshEvent]:
        """Newest first."""
        return list(reversed(self._events))[: max(0, limit)]

    def alerts(self, limit: int = 10) -> list[MeshEvent]:
        """Recent events worth an operator's attention (warnings and worse), newest first."""
        wanted = [e for e in reversed(self._events) if e.severity != "info"]
        return wanted[: max(0, limit)]
