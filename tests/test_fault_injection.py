"""A failing peer never becomes a 500, a lost turn, or a stuck droplet."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.e2e

MODES = [
    ("orchestrator", "error500", 0.0),
    ("orchestrator", "slow", 3.0),
    ("orchestrator", "garbage", 0.0),
    ("orchestrator", "drop", 0.0),
    ("registry", "error500", 0.0),
    ("registry", "slow", 3.0),
    ("registry", "garbage", 0.0),
    ("registry", "drop", 0.0),
]


def _fault(sandbox: Any, peer: str, mode: str, delay: float = 0.0) -> None:
    base = sandbox.orchestrator_url if peer == "orchestrator" else sandbox.registry_url
    response = httpx2.post(f"{base}/_sandbox/fault", json={"mode": mode, "delay": delay})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("peer", "mode", "delay"), MODES)
def test_turns_answer_and_say_what_failed(
    live_app: Callable[..., Any], sandbox: Any, peer: str, mode: str, delay: float
) -> None:
    app = live_app(peer_timeout_s=1.0, chat_rate_limit_per_minute=0)
    sid = f"fault-{peer}-{mode}"
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        assert (
            client.post("/api/chat", json={"message": "hello", "session_id": sid}).status_code
            == 200
        )
        _fault(sandbox, peer, mode, delay)
        try:
            question = "list tasks" if peer == "orchestrator" else "show me all droplets"
            replies = [
                client.post("/api/chat", json={"message": question, "session_id": sid})
                for _ in range(3)
            ]
            for reply in replies:
                assert reply.status_code == 200, reply.text
                body = reply.json()
                assert body["response"]
                if peer == "orchestrator":
                    assert body["actions"][0]["status"] == "unavailable"
                    assert "Orchestrator" in body["response"]
                else:
                    # The Orchestrator still knows the droplets; the answer names the gap.
                    assert body["actions"][0]["status"] in ("ok", "unavailable")
                    assert "Registry" in body["response"]
            health = client.get("/health").json()
            assert health["status"] == "active"
        finally:
            _fault(sandbox, peer, "none")
        detail = client.get(f"/api/sessions/{sid}").json()
        assert len(detail["history"]) == 8  # every turn stored, the failed ones included
        # The breaker closes again and answers come back by themselves.
        deadline = time.monotonic() + 15
        status = ""
        while time.monotonic() < deadline:
            body = client.post("/api/chat", json={"message": question, "session_id": sid}).json()
            status = body["actions"][0]["status"]
            if status == "ok" and "unreachable" not in body["response"]:
                break
            time.sleep(0.5)
        assert status == "ok"


def test_circuit_breaker_makes_a_dead_peer_cheap(
    live_app: Callable[..., Any], sandbox: Any
) -> None:
    app = live_app(peer_timeout_s=1.0, peer_breaker_reset_s=30, chat_rate_limit_per_minute=0)
    _fault(sandbox, "orchestrator", "slow", 5.0)
    try:
        with httpx2.Client(base_url=app.url, timeout=30) as client:
            for _ in range(6):  # trip the breaker
                client.post("/api/chat", json={"message": "list tasks"})
            started = time.perf_counter()
            reply = client.post("/api/chat", json={"message": "list tasks"}).json()
            elapsed = time.perf_counter() - started
        assert reply["actions"][0]["status"] == "unavailable"
        # Open breaker: no 1 s timeout is paid any more (a loose bound, not a benchmark).
        assert elapsed < 0.9
    finally:
        _fault(sandbox, "orchestrator", "none")
