"""droplet 12 as a citizen of the mesh: inbound /message, /send, /heartbeat, task work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.conftest import KeyPair


def _wait(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def _orch(sandbox: Any, method: str, path: str, **kwargs: Any) -> httpx2.Response:
    token = sandbox.mint_token(droplet_id=1, permissions=["read", "write", "admin"])
    headers = {"Authorization": f"Bearer {token}"}
    return httpx2.request(
        method, f"{sandbox.orchestrator_url}{path}", headers=headers, timeout=10, **kwargs
    )


@pytest.mark.e2e
def test_registers_heartbeats_and_completes_an_assigned_task(
    live_app: Callable[..., Any], sandbox: Any
) -> None:
    app = live_app()
    rows = _wait(
        lambda: [
            r
            for r in httpx2.get(
                f"{sandbox.registry_url}/registry/droplets",
                headers={"X-Registry-Key": sandbox.registry_key},
            ).json()
            if r["id"] == "droplet-12" and r["status"] == "healthy"
        ]
    )
    assert rows
    _wait(
        lambda: [
            d
            for d in _orch(sandbox, "GET", "/droplets").json()["payload"]["droplets"]
            if d["droplet_id"] == 12 and d["status"] == "active"
        ]
    )
    created = _orch(
        sandbox,
        "POST",
        "/tasks",
        json={
            "task_type": "custom",
            "title": "Ask droplet 12",
            "required_capability": "chat",
            "payload": {"message": "show me all droplets"},
            "priority": 2,
        },
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["payload"]["task_id"]
    httpx2.post(f"{sandbox.orchestrator_url}/_sandbox/tick")

    def completed() -> dict[str, Any] | None:
        task: dict[str, Any] = _orch(sandbox, "GET", f"/tasks/{task_id}").json()["payload"]["task"]
        return task if task["status"] in ("completed", "failed") else None

    task = _wait(completed, timeout=20)
    assert task["status"] == "completed", task
    assert task["assigned_droplet_id"] == 12
    assert "Registry" in task["result"] and "Orchestrator" in task["result"]
    assert httpx2.get(f"{app.url}/health").json()["checks"]["orchestrator"] == "ok"


@pytest.mark.e2e
def test_orchestrator_send_reaches_message_without_a_token(
    live_app: Callable[..., Any], sandbox: Any
) -> None:
    app = live_app()
    _wait(
        lambda: [
            d
            for d in _orch(sandbox, "GET", "/droplets").json()["payload"]["droplets"]
            if d["droplet_id"] == 12 and d["endpoint"]
        ]
    )
    sent = _orch(
        sandbox,
        "POST",
        "/send",
        params={"target_droplet_id": 12, "message_type": "event"},
        json={
            "event_type": "deploy_finished",
            "severity": "warning",
            "summary": "deploy of droplet 14 finished with warnings",
        },
    )
    assert sent.status_code == 200, sent.text
    alerts = httpx2.post(f"{app.url}/api/chat", json={"message": "any alerts?"}).json()
    assert "deploy of droplet 14" in alerts["response"]


def test_message_policy(client: Any, keys: KeyPair) -> None:
    envelope = {
        "source": "droplet-10",
        "target": "droplet-12",
        "message_type": "event",
        "payload": {"summary": "x"},
        "timestamp": "2026-11-27T16:10:22.899844",
    }
    # The test client's address is loopback, which the default allowlist accepts.
    assert client.post("/message", json=envelope).status_code == 202
    bad = client.post("/message", json=envelope, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    good = client.post(
        "/message", json=envelope, headers={"Authorization": f"Bearer {keys.token(droplet_id=10)}"}
    )
    assert good.status_code == 202
    impostor = client.post(
        "/message", json=envelope, headers={"Authorization": f"Bearer {keys.token(droplet_id=14)}"}
    )
    assert impostor.status_code == 403
    invalid = client.post("/message", json={"message_type": "heartbeat", "source": "1"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "INVALID_REQUEST"


def test_message_policy_jwt_only_refuses_unsigned(make_settings: Callable[..., Any]) -> None:
    from starlette.testclient import TestClient

    from app.factory import create_app

    app = create_app(make_settings(inbound_message_auth="jwt"))
    with TestClient(app, client=("127.0.0.1", 1)) as strict:
        response = strict.post(
            "/message", json={"source": "10", "message_type": "event", "payload": {}}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_message_query_runs_a_chat_turn(client: Any) -> None:
    response = client.post(
        "/message",
        json={"source": 18, "target": 12, "message_type": "query", "payload": {"message": "hello"}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["message_type"] == "response"
    assert body["target"] == "18"
    assert body["payload"]["response"]


def test_heartbeat_and_send_need_a_token(client: Any, keys: KeyPair) -> None:
    hb = {
        "source": "droplet-14",
        "message_type": "status",
        "payload": {"status": "active", "metrics": {"cpu": 3}},
    }
    assert client.post("/heartbeat", json=hb).status_code == 401
    ok = client.post(
        "/heartbeat", json=hb, headers={"Authorization": f"Bearer {keys.token(droplet_id=14)}"}
    )
    assert ok.status_code == 200
    assert ok.json()["received"] is True
    assert ok.json()["next_heartbeat_deadline"] > time.time()
    assert client.post("/send", json={"target": 1, "payload": {}}).status_code == 401
    writer = keys.token(droplet_id=14, permissions=["read", "write"])
    no_mesh = client.post(
        "/send",
        json={"target": "droplet-1", "payload": {}},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert no_mesh.status_code == 503
    assert no_mesh.json()["error"]["code"] == "DEPENDENCY_UNAVAILABLE"


@pytest.mark.e2e
def test_peers_down_at_start_then_up(live_app: Callable[..., Any], sandbox: Any) -> None:
    sandbox.stop_registry()
    sandbox.stop_orchestrator()
    app = live_app()
    started = time.perf_counter()
    health = httpx2.get(f"{app.url}/health").json()
    assert time.perf_counter() - started < 1.0
    assert health["status"] == "active"
    assert health["message"].startswith("Degraded")
    assert health["checks"]["registry"] == "failing"
    assert health["checks"]["orchestrator"] == "failing"
    reply = httpx2.post(f"{app.url}/api/chat", json={"message": "list tasks"}).json()
    assert reply["actions"] == [{"tool": "list_tasks", "status": "unavailable"}]
    sandbox.start_registry()
    sandbox.start_orchestrator()
    _wait(
        lambda: [
            r
            for r in httpx2.get(
                f"{sandbox.registry_url}/registry/droplets",
                headers={"X-Registry-Key": sandbox.registry_key},
            ).json()
            if r["id"] == "droplet-12"
        ],
        timeout=30,
    )
    _wait(
        lambda: [
            d
            for d in _orch(sandbox, "GET", "/droplets").json()["payload"]["droplets"]
            if d["droplet_id"] == 12
        ],
        timeout=30,
    )
