"""The chat API end to end: real app, real sandbox mesh over loopback HTTP."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest


def _chat(client: Any, message: str, session_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if session_id:
        body["session_id"] = session_id
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_list_droplets_answers_with_a_table_of_the_real_droplets(mesh_client: Any) -> None:
    reply = _chat(mesh_client, "show me all registered items", "test-123")
    assert reply["session_id"] == "test-123"
    assert reply["actions"] == [{"tool": "list_droplets", "status": "ok"}]
    assert reply["pending_confirmation"] is None
    assert reply["trace_id"] and reply["timestamp"].endswith("Z")
    text = reply["response"]
    assert "|" in text  # a markdown table
    for name in ("Registry", "Orchestrator", "Visibility Deck"):
        assert name in text


def test_missing_session_id_creates_an_unguessable_one(mesh_client: Any) -> None:
    reply = _chat(mesh_client, "hello")
    assert len(reply["session_id"]) >= 20
    again = _chat(mesh_client, "hello")
    assert again["session_id"] != reply["session_id"]


def test_create_confirm_and_cancel_a_task(mesh_client: Any, sandbox: Any) -> None:
    url = "https://github.com/fullpotential-ai/droplet-14"
    sid = "flow-1"
    proposal = _chat(
        mesh_client,
        f"create a verification task for droplet 14, code at {url}, priority 3",
        sid,
    )
    pending = proposal["pending_confirmation"]
    assert pending is not None and pending["tool"] == "create_task"
    assert pending["args"]["priority"] == 3
    assert pending["args"]["payload"]["code_url"] == url
    assert proposal["actions"] == [{"tool": "create_task", "status": "awaiting_confirmation"}]

    created = _chat(mesh_client, "yes", sid)
    assert created["actions"] == [{"tool": "create_task", "status": "ok"}]
    assert created["pending_confirmation"] is None

    token = sandbox.mint_token()
    tasks = httpx2.get(
        f"{sandbox.orchestrator_url}/tasks", headers={"Authorization": f"Bearer {token}"}
    ).json()["payload"]["tasks"]
    mine = [t for t in tasks if t["task_type"] == "verify" and t["priority"] == 3]
    assert mine, tasks
    task_id = max(t["id"] for t in mine)
    detail = httpx2.get(
        f"{sandbox.orchestrator_url}/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()["payload"]["task"]
    assert url in detail["payload"]

    ask_cancel = _chat(mesh_client, "cancel it", sid)
    assert ask_cancel["pending_confirmation"]["tool"] == "cancel_task"
    assert ask_cancel["pending_confirmation"]["args"] == {"task_id": task_id}
    done = _chat(mesh_client, "yes", sid)
    assert done["actions"] == [{"tool": "cancel_task", "status": "ok"}]
    detail = httpx2.get(
        f"{sandbox.orchestrator_url}/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()["payload"]["task"]
    assert detail["status"] == "cancelled"


def test_declined_write_is_dropped_and_not_executed(mesh_client: Any) -> None:
    sid = "decline-1"
    _chat(mesh_client, "cancel task 1", sid)
    declined = _chat(mesh_client, "no", sid)
    assert declined["actions"] == [{"tool": "cancel_task", "status": "declined"}]
    assert declined["pending_confirmation"] is None
    nothing = _chat(mesh_client, "yes", sid)
    assert nothing["actions"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 5001}, "message"),
        ({"message": "hi", "session_id": "bad id with spaces"}, "session_id"),
        ({"message": 42}, "message"),
    ],
)
def test_bad_chat_requests_get_the_standard_error(
    mesh_client: Any, body: dict[str, Any], field: str
) -> None:
    response = mesh_client.post("/api/chat", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["status"] == "error"
    assert error["error"]["code"] == "INVALID_REQUEST"
    assert field in error["error"]["message"]


def test_invalid_json_body_gets_the_standard_error(mesh_client: Any) -> None:
    response = mesh_client.post(
        "/api/chat", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_oversized_body_is_refused_with_413(mesh_client: Any) -> None:
    response = mesh_client.post(
        "/api/chat",
        content=b'{"message":"' + b"x" * 70000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_voice_envelope_gets_plain_speech(mesh_client: Any) -> None:
    envelope = {
        "udc_version": "1.0",
        "trace_id": "a1b2c3d4-e5f6-7890-1234-567890abcdef",
        "source": "18",
        "target": "12",
        "message_type": "query",
        "route_back": "18",
        "payload": {"message": "show me all droplets", "metadata": {"user_id": "user-voice-77"}},
        "timestamp": "2025-11-17T14:00:00Z",
    }
    response = mesh_client.post("/api/process", json=envelope)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["trace_id"] == envelope["trace_id"]
    assert body["message_type"] == "response"
    assert body["source"] == "12" and body["target"] == "18"
    spoken = body["payload"]["response"]
    assert spoken
    for symbol in ("|", "*", "#", "`", "✅", "❌", "⚠"):
        assert symbol not in spoken
    # The same user continues the same session; integer ids and "droplet-18" are accepted.
    envelope2 = {
        **envelope,
        "source": "droplet-18",
        "target": 12,
        "payload": {"message": "any alerts?", "metadata": {"user_id": "user-voice-77"}},
    }
    second = mesh_client.post("/api/process", json=envelope2).json()
    assert second["payload"]["session_id"] == body["payload"]["session_id"]
    other = mesh_client.post(
        "/api/process", json={**envelope, "payload": {"message": "hello"}}
    ).json()
    assert other["payload"]["session_id"] != body["payload"]["session_id"]


def test_analyze_executes_nothing(mesh_client: Any) -> None:
    response = mesh_client.post("/api/analyze", json={"text": "cancel task 3"})
    assert response.status_code == 200
    analysis = response.json()["analysis"]
    assert analysis["tool_calls"] == [{"tool": "cancel_task", "args": {"task_id": 3}}]
    assert analysis["writes"] == ["cancel_task"]
    assert 0.0 <= analysis["confidence"] <= 1.0


def test_sessions_api(mesh_client: Any) -> None:
    _chat(mesh_client, "hello", "sess-a")
    _chat(mesh_client, "show me all droplets", "sess-a")
    stats = mesh_client.get("/api/sessions/stats").json()
    assert stats["total_sessions"] >= 1
    assert set(stats["by_source"]) >= {"chat", "voice"}
    listing = mesh_client.get("/api/sessions").json()
    assert any(s["session_id"] == "sess-a" for s in listing["sessions"])
    detail = mesh_client.get("/api/sessions/sess-a").json()
    assert [h["role"] for h in detail["history"]] == ["user", "assistant"] * 2
    assert detail["history"][0]["content"] == "hello"
    missing = mesh_client.get("/api/sessions/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert mesh_client.delete("/api/sessions/sess-a").json() == {"deleted": 1}
    assert mesh_client.get("/api/sessions/sess-a").status_code == 404
    _chat(mesh_client, "hello", "sess-b")
    cleared = mesh_client.delete("/api/sessions").json()
    assert cleared["deleted"] >= 1
    assert mesh_client.get("/api/sessions/stats").json()["total_sessions"] == 0


def test_audit_log_records_tool_executions(mesh_client: Any) -> None:
    _chat(mesh_client, "show me all droplets", "audit-1")
    entries = mesh_client.get("/api/audit", params={"session_id": "audit-1"}).json()["entries"]
    assert entries and entries[0]["tool"] == "list_droplets"
    assert entries[0]["outcome"] == "ok"
    assert entries[0]["planner"] == "rules"
    assert entries[0]["trace_id"]


def test_peer_down_is_an_answer_not_a_500(mesh_client: Any, sandbox: Any) -> None:
    sandbox.stop_orchestrator()
    try:
        reply = _chat(mesh_client, "list tasks", "down-1")
        assert reply["actions"][0]["status"] == "unavailable"
        assert "Orchestrator" in reply["response"]
    finally:
        sandbox.start_orchestrator()


def test_health_reflects_peers(mesh_client: Any) -> None:
    # A probe round now, on the app's own loop, rather than waiting for the background one.
    mesh_client.portal.call(mesh_client.app.state.components.health.run_once)
    body = mesh_client.get("/health").json()
    assert body["checks"]["registry"] == "ok"
    assert body["checks"]["orchestrator"] == "ok"
    assert body["status"] == "active"
    assert body["checks"]["session_store"] == "ok"


def test_turn_metrics_are_exported(mesh_client: Any) -> None:
    _chat(mesh_client, "show me all droplets", "metrics-1")
    text = mesh_client.get("/metrics").text
    assert 'chat_turns_total{channel="rest",planner="rules"}' in text
    assert 'chat_tool_calls_total{outcome="ok",tool="list_droplets"}' in text
    assert 'mesh_upstream_duration_seconds_count{peer="registry+orchestrator"}' in text
    assert "chat_turn_duration_seconds_bucket" in text
    assert "websocket_connections" in text
    # Nothing waits to start once the turn is answered.
    assert "chat_turns_waiting_to_start 0.0" in text
