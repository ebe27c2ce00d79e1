"""Delivering an answer to another droplet through the Orchestrator (ROUTE_BACK_DELIVERY)."""

from __future__ import annotations

import structlog

from app.mesh.orchestrator import OrchestratorClient
from app.mesh.peers import PeerError

log = structlog.get_logger(__name__)


async def deliver_reply(
    *, orchestrator: OrchestratorClient, target: str, text: str, session_id: str, trace_id: str
) -> bool:
    """Best effort: the caller already has the answer in its HTTP response."""
    if not target.isdigit():
        log.warning("route_back_skipped", target=target, reason="not a droplet id")
        return False
    try:
        await orchestrator.send(
            int(target),
            "response",
            {"response": text, "session_id": session_id, "trace_id": trace_id},
            trace_id=trace_id,
        )
    except PeerError as exc:
        log.warning("route_back_failed", target=target, reason=exc.message, trace_id=trace_id)
        return False
    log.info("route_back_delivered", target=target, trace_id=trace_id)
    return True
