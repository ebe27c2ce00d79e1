"""Small wire-format helpers shared by the sandbox peers: timestamps, JSONB text, UDC envelopes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Naive UTC, the way the Orchestrator stores and prints its own timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def aware_now_iso() -> str:
    """`+00:00` timestamps appear only on envelopes and on PATCH/DELETE answers."""
    return datetime.now(UTC).isoformat()


def _jsonb_order(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(str(k).encode()), str(k).encode()))
        return {str(k): _jsonb_order(value[k]) for k in keys}
    if isinstance(value, list | tuple):
        return [_jsonb_order(v) for v in value]
    return value


def jsonb_text(value: Any) -> str:
    """How PostgreSQL prints a JSONB value: keys shortest first, then bytewise; `, ` and `: `.

    The Orchestrator hands JSONB columns (capabilities, task payload and result) to the client as
    these strings rather than as JSON.
    """
    return json.dumps(_jsonb_order(value), ensure_ascii=False)


def envelope(
    payload: Any,
    *,
    target: Any,
    message_type: str = "response",
    trace_id: Any = None,
    source: str = "droplet-10",
) -> dict[str, Any]:
    """The 7-field UDC envelope the Orchestrator wraps its answers and events in."""
    return {
        "udc_version": "1.0",
        "trace_id": trace_id if trace_id is not None else str(uuid.uuid4()),
        "source": source,
        "target": target,
        "message_type": message_type,
        "timestamp": aware_now_iso(),
        "payload": payload,
    }
