"""Recent mesh events: the source of "any alerts?" and the page's event panel.

Events are kept per sender (a verified droplet, the Orchestrator's feed, or an unverified
address), each in its own bounded ring, so one noisy or hostile sender can only push out its own
events, never another's; "any alerts?" lists verified events before unverified ones.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from app.domain.mesh import MeshEvent

Publish = Callable[[dict[str, Any]], Awaitable[None]]

FEED = "feed"
"""The bucket of events this droplet observed itself (the Orchestrator's event feed)."""


class AlertLog:
    def __init__(self, *, publish: Publish, per_sender: int = 200, max_senders: int = 256) -> None:
        self._buckets: OrderedDict[str, deque[MeshEvent]] = OrderedDict()
        self._per_sender = per_sender
        self._max_senders = max_senders
        self._publish = publish

    async def add(self, event: MeshEvent, *, bucket: str = FEED) -> None:
        """Keep the event in its sender's ring and push it to every connected client."""
        ring = self._buckets.get(bucket)
        if ring is None:
            ring = deque(maxlen=self._per_sender)
            self._buckets[bucket] = ring
            while len(self._buckets) > self._max_senders:
                # The least recently heard sender goes first; the feed is never evicted.
                oldest = next(k for k in self._buckets if k != FEED)
                del self._buckets[oldest]
        self._buckets.move_to_end(bucket)
        ring.append(event)
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

    def _newest(self, events: Iterable[MeshEvent], limit: int) -> list[MeshEvent]:
        return heapq.nlargest(max(0, limit), events, key=lambda e: e.at)

    def alerts(self, limit: int = 10) -> list[MeshEvent]:
        """Recent events worth an operator's attention (warnings and worse): verified ones
        newest first, then unverified ones."""

        def worth(verified: bool) -> Iterable[MeshEvent]:
            return (
                e
                for ring in self._buckets.values()
                for e in ring
                if e.severity != "info" and e.verified is verified
            )

        first = self._newest(worth(True), limit)
        return first + self._newest(worth(False), limit - len(first))
