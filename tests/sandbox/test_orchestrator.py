"""The sandbox Orchestrator over real HTTP: mesh.md §2, its quirks, routing, expiry, /send, WS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx2
import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from sandbox.keys import generate_key_pair
from sandbox.orchestrator_state import (
    DETAILS_QUIRK_DETAIL,
    REGISTER_QUIRK_DETAIL,
    STATUS_CHECK_VIOLATION,
)
from sandbox.testing import MeshHandle
from tests.sandbox.conftest import (
    CHAT_CAPABILITIES,
    Receiver,
    bearer,
    envelope,
    register,
    wait_for,
)

ENVELOPE_KEYS = [
    "udc_version",
    "trace_id",
    "source",
    "target",
    "message_type",
    "timestamp",
    "payload",
]


@pytest.fixture
def bare(start: Callable[..., MeshHandle]) -> MeshHandle:
    return start(seed=False)


def h12(mesh: MeshHandle, **kwargs: Any) -> dict[str, str]:
    return bearer(mesh.mint_token(12, **kwargs))


def payload_of(response: httpx2.Response) -> Any:
    body = response.json()
    assert list(body) == ENVELOPE_KEYS
    assert (body["udc_version"], body["source"], body["message_type"]) == (
        "1.0",
        "droplet-10",
        "response",
    )
    return body["payload"]


def create_task(
    http: httpx2.Client, mesh: MeshHandle, token: str | None = None, **spec: Any
) -> int:
    body = {"task_type": "custom", "title": "Answer user question", "payload": {}} | spec
    response = http.post(
        f"{mesh.orchestrator_url}/tasks", json=body, headers=bearer(token or mesh.mint_token(12))
    )
    assert response.status_code == 201, response.text
    return int(payload_of(response)["task_id"])


def get_task(http: httpx2.Client, mesh: MeshHandle, task_id: int) -> dict[str, Any]:
    response = http.get(f"{mesh.orchestrator_url}/tasks/{task_id}", headers=h12(mesh))
    task: dict[str, Any] = payload_of(response)["task"]
    return task


def droplets(http: httpx2.Client, mesh: MeshHandle, **params: str) -> dict[int, dict[str, Any]]:
    response = http.get(f"{mesh.orchestrator_url}/droplets", params=params, headers=h12(mesh))
    return {d["droplet_id"]: d for d in payload_of(response)["droplets"]}


def is_naive_iso(value: str) -> bool:
    return datetime.fromisoformat(value).tzinfo is None


def ws_url(mesh: MeshHandle, channel: str, token: str) -> str:
    return f"{mesh.orchestrator_url.replace('http://', 'ws://')}/ws/{channel}?token={token}"


def next_event(ws: ClientConnection, event: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = json.loads(
            ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
        )
        if message["payload"]["event"] == event:
            return message


# -- open endpoints and auth -------------------------------------------------------------------


def test_open_endpoints(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.orchestrator_url
    health = http.get(f"{url}/health").json()
    assert {k: health[k] for k in ("id", "name", "steward", "status", "endpoint")} == {
        "id": 10,
        "name": "Orchestrator",
        "steward": "Tnsae",
        "status": "active",
        "endpoint": url,
    }
    assert health["message"] == "All systems operational"
    assert is_naive_iso(health["updated_at"])
    state = http.get(f"{url}/state").json()
    assert set(state) == {"cpu_percent", "memory_mb", "uptime_seconds", "custom_metrics"}
    assert state["custom_metrics"]["droplets_total"] == 1  # itself
    assert http.get(f"{url}/capabilities").json()["version"] == "2.0.0"
    assert http.get(f"{url}/dependencies").json()["missing"] == ["Registry v2 (#3)"]


def test_auth_failures(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.orchestrator_url}/droplets"
    response = http.get(url)
    assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})
    other_private, _ = generate_key_pair()
    now = int(time.time())
    bad_tokens = {
        "garbage": "not-a-jwt",
        "expired": bare.mint_token(12, ttl=-60),
        "with aud": bare.mint_token(12, extra_claims={"aud": "fullpotential.droplets"}),
        "other key": jwt.encode({"droplet_id": 12, "exp": now + 60}, other_private, "RS256"),
        "hs256": jwt.encode({"droplet_id": 12, "exp": now + 60}, "x" * 32, "HS256"),
    }
    for name, token in bad_tokens.items():
        response = http.get(url, headers=bearer(token))
        assert response.status_code == 401, name
        assert response.json() == {"detail": "Could not validate credentials"}, name
    assert http.get(url, headers=h12(bare)).status_code == 200


def test_string_droplet_id_authenticates_but_fails_identity(
    bare: MeshHandle, http: httpx2.Client
) -> None:
    register(http, bare)
    response = http.post(
        f"{bare.orchestrator_url}/droplets/12/heartbeat",
        json={"status": "active"},
        headers=bearer(bare.mint_token("12")),
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Droplet 12 cannot send heartbeat for droplet 12"}


def test_token_endpoint_only_when_configured(
    bare: MeshHandle, start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    body = {"droplet_id": 12, "secret_key": "local-orchestrator-secret"}
    response = http.post(f"{bare.orchestrator_url}/auth/token", json=body)
    assert response.status_code == 404
    assert response.json() == {
        "error": True,
        "message": "Endpoint not found: /auth/token",
        "type": "NotFound",
    }

    mesh = start(seed=False, auth_secret="local-orchestrator-secret")
    assert mesh.orchestrator_secret == "local-orchestrator-secret"
    wrong = http.post(f"{mesh.orchestrator_url}/auth/token", json=body | {"secret_key": "nope"})
    assert wrong.status_code == 401
    issued = http.post(f"{mesh.orchestrator_url}/auth/token", json=body).json()
    assert (issued["token_type"], issued["expires_in"]) == ("bearer", 86400)
    claims = jwt.decode(
        issued["access_token"], mesh.public_key_path.read_bytes(), algorithms=["RS256"]
    )
    assert (claims["droplet_id"], claims["permissions"]) == (12, ["read", "write"])
    assert register(http, mesh, token=issued["access_token"]).status_code == 201


def test_every_404_is_rewritten(bare: MeshHandle, http: httpx2.Client) -> None:
    for path in ("/nowhere", "/tasks/999999", "/droplets/77/capabilities"):
        response = http.get(f"{bare.orchestrator_url}{path}", headers=h12(bare))
        assert response.status_code == 404
        assert response.json() == {
            "error": True,
            "message": f"Endpoint not found: {path}",
            "type": "NotFound",
        }


# -- droplets ------------------------------------------------------------------------------------


def test_first_registration_is_a_500_then_updated(bare: MeshHandle, http: httpx2.Client) -> None:
    body = envelope(
        {"droplet_id": 12, "name": "Chat Orchestrator", "steward": "local-test",
         "endpoint": "http://127.0.0.1:8012", "capabilities": CHAT_CAPABILITIES}
    )  # fmt: skip
    url = f"{bare.orchestrator_url}/droplets/register"
    first = http.post(url, json=body, headers=h12(bare))
    assert first.status_code == 500
    assert first.json() == {"detail": f"Failed to register droplet: {REGISTER_QUIRK_DETAIL}"}
    assert 12 in droplets(http, bare)  # stored anyway

    second = http.post(url, json=body, headers=h12(bare))
    assert second.status_code == 201
    payload = payload_of(second)
    assert second.json()["trace_id"] == body["trace_id"]
    assert second.json()["target"] == "droplet-12"
    assert list(payload) == [
        "registered", "droplet_id", "registered_at", "heartbeat_required_every_seconds",
        "status", "heartbeat_interval_seconds", "next_heartbeat_deadline",
    ]  # fmt: skip
    assert (payload["registered"], payload["droplet_id"], payload["status"]) == (
        True,
        12,
        "updated",
    )
    assert isinstance(payload["next_heartbeat_deadline"], float)


def test_clean_peer_registers_first_time(
    start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    mesh = start(seed=False, quirks=False)
    body = {"droplet_id": 12, "name": "Chat Orchestrator", "endpoint": "http://x"}
    response = http.post(f"{mesh.orchestrator_url}/droplets/register", json=body, headers=h12(mesh))
    assert response.status_code == 201
    assert payload_of(response)["status"] == "new"
    assert response.json()["target"] == "client"


def test_register_validation_and_capability_wipe(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.orchestrator_url}/droplets/register"
    response = http.post(url, json={"droplet_id": 12, "name": "x"}, headers=h12(bare))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["endpoint"]]
    register(http, bare)
    assert json.loads(droplets(http, bare)[12]["capabilities"]) == CHAT_CAPABILITIES
    body = {"droplet_id": 12, "name": "Chat Orchestrator", "endpoint": "http://127.0.0.1:9"}
    assert http.post(url, json=body, headers=h12(bare)).status_code == 201
    assert droplets(http, bare)[12]["capabilities"] == "[]"


def test_heartbeat_rules(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.orchestrator_url}/droplets/12/heartbeat"
    response = http.post(url, json={"status": "active"}, headers=h12(bare))
    assert response.status_code == 404  # not registered yet: re-register
    assert response.json()["type"] == "NotFound"
    register(http, bare)

    beat = envelope({"status": "active", "metrics": {"cpu_percent": 3.2}}, "status")
    ok = http.post(url, json=beat, headers=h12(bare))
    assert ok.status_code == 200
    assert list(payload_of(ok)) == ["received", "next_heartbeat_deadline"]

    rejected = http.post(url, json=envelope({"status": "active"}, "heartbeat"), headers=h12(bare))
    assert rejected.status_code == 400
    assert rejected.json() == {
        "detail": "Invalid UDC envelope: Invalid message_type: heartbeat. Must be one of: "
        "status, event, command, query, response, error"
    }

    metadata_style = {"metadata": {"source_droplet_id": 12}, "payload": {"status": "active"}}
    response = http.post(url, json=metadata_style, headers=h12(bare))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"], error["input"]) == ("missing", ["status"], metadata_style)

    other = http.post(
        f"{bare.orchestrator_url}/droplets/10/heartbeat",
        json={"status": "active"},
        headers=h12(bare),
    )
    assert other.status_code == 403
    assert other.json() == {"detail": "Droplet 12 cannot send heartbeat for droplet 10"}

    weird = http.post(url, json={"status": "healthy"}, headers=h12(bare))
    assert weird.status_code == 500
    assert weird.json() == {"detail": f"Failed to process heartbeat: {STATUS_CHECK_VIOLATION}"}

    assert http.post(url, json={"status": "error"}, headers=h12(bare)).status_code == 200
    assert droplets(http, bare)[12]["status"] == "error"


def test_droplet_listing(mesh: MeshHandle, http: httpx2.Client) -> None:
    register(http, mesh)
    listing = droplets(http, mesh)
    assert sorted(listing) == [1, 2, 10, 12, 14, 16, 18]
    row = listing[12]
    assert list(row) == [
        "droplet_id", "name", "steward", "endpoint", "capabilities", "status",
        "last_heartbeat", "registered_at", "seconds_since_heartbeat",
    ]  # fmt: skip
    assert row["capabilities"] == json.dumps(CHAT_CAPABILITIES)  # a JSON-encoded string
    assert is_naive_iso(row["last_heartbeat"]) and is_naive_iso(row["registered_at"])
    assert listing[10]["endpoint"] == "https://orchestrator.fullpotential.ai"
    assert listing[14]["endpoint"] == ""  # seeded droplets have none

    assert sorted(droplets(http, mesh, capability="chat")) == [12]
    response = http.get(
        f"{mesh.orchestrator_url}/droplets", params={"status": "inactive"}, headers=h12(mesh)
    )
    assert payload_of(response)["total"] == 0
    assert payload_of(response)["filters"] == {"status": "inactive", "capability": None}

    caps = http.get(f"{mesh.orchestrator_url}/droplets/12/capabilities", headers=h12(mesh))
    assert payload_of(caps) == {
        "droplet_id": 12,
        "name": "Chat Orchestrator",
        "capabilities": json.dumps(CHAT_CAPABILITIES),
    }


def test_droplet_details_quirk(
    mesh: MeshHandle, start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    response = http.get(f"{mesh.orchestrator_url}/droplets/10", headers=h12(mesh))
    assert response.status_code == 500
    assert response.json() == {"detail": f"Failed to fetch droplet details: {DETAILS_QUIRK_DETAIL}"}

    clean = start(quirks=False)
    details = payload_of(http.get(f"{clean.orchestrator_url}/droplets/14", headers=h12(clean)))
    assert details["droplet"]["name"] == "Visibility Deck"
    assert details["droplet"]["completed_tasks"] == 1
    missing = http.get(f"{clean.orchestrator_url}/droplets/99", headers=h12(clean))
    assert missing.status_code == 404


# -- tasks ---------------------------------------------------------------------------------------


def test_seeded_tasks_cover_every_state(mesh: MeshHandle, http: httpx2.Client) -> None:
    listing = payload_of(http.get(f"{mesh.orchestrator_url}/tasks", headers=h12(mesh)))
    statuses = sorted(t["status"] for t in listing["tasks"])
    assert statuses == ["assigned", "cancelled", "completed", "failed", "in_progress", "pending"]
    completed = next(t for t in listing["tasks"] if t["status"] == "completed")
    detail = get_task(http, mesh, completed["id"])
    assert json.loads(detail["result"])["snapshot_id"] == "snap-0042"
    assert [h["to_status"] for h in detail["state_history"]] == [
        "pending", "assigned", "in_progress", "completed",
    ]  # fmt: skip


def test_create_task_validation(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.orchestrator_url}/tasks"
    bad = {"task_type": "custom", "title": "x", "priority": 0, "payload": {}}
    response = http.post(url, json=bad, headers=h12(bare))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"], error["ctx"]) == (
        "greater_than_equal",
        ["priority"],
        {"ge": 1},
    )
    missing_payload = http.post(url, json={"task_type": "custom", "title": "x"}, headers=h12(bare))
    assert [e["loc"] for e in missing_payload.json()["detail"]] == [["payload"]]
    long_type = {"task_type": "x" * 51, "title": "x", "payload": {}}
    assert http.post(url, json=long_type, headers=h12(bare)).status_code == 422
    assert http.post(url, content=b"", headers=h12(bare)).json() == {"detail": "Empty request body"}
    assert http.post(url, content=b"{nope", headers=h12(bare)).json() == {"detail": "Invalid JSON"}


def test_create_and_read_task(bare: MeshHandle, http: httpx2.Client) -> None:
    spec = {
        "task_type": "custom",
        "title": "Answer user question",
        "description": "from chat session s-1",
        "required_capability": "nobody_has_this",
        "priority": 3,
        "max_retries": 2,
        "deadline": "2030-01-01T00:00:00Z",
        "payload": {"session_id": "s-1", "text": "hello"},
    }
    response = http.post(f"{bare.orchestrator_url}/tasks", json=envelope(spec), headers=h12(bare))
    assert response.status_code == 201
    created = payload_of(response)
    assert response.json()["target"] == "droplet-12"
    assert list(created) == [
        "task_id",
        "trace_id",
        "status",
        "created_at",
        "estimated_assignment_seconds",
    ]
    assert (created["status"], created["estimated_assignment_seconds"]) == ("pending", 10)

    task = get_task(http, bare, created["task_id"])
    assert task["payload"] == '{"text": "hello", "session_id": "s-1"}'  # JSONB text, JSONB order
    assert task["result"] is None
    assert (task["assigned_droplet_id"], task["status"], task["priority"]) == (None, "pending", 3)
    assert task["state_history"] == [
        {"from_status": None, "to_status": "pending", "changed_by": "droplet_12", "reason": None,
         "changed_at": task["state_history"][0]["changed_at"]}
    ]  # fmt: skip
    assert is_naive_iso(task["created_at"])

    other = create_task(http, bare, created_by="dashboard")
    assert get_task(http, bare, other)["id"] == other
    # created_by is not shown, but it decides who may cancel:
    cancel = http.delete(f"{bare.orchestrator_url}/tasks/{other}", headers=h12(bare))
    assert cancel.status_code == 403


def test_list_tasks_filters(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.orchestrator_url}/tasks"
    first = create_task(http, bare, priority=5, task_type="verify", required_capability="none")
    second = create_task(http, bare, priority=2, required_capability="none")
    third = create_task(http, bare, priority=5, required_capability="none")

    def ids(**params: Any) -> list[int]:
        body = payload_of(http.get(url, params=params, headers=h12(bare)))
        return [t["id"] for t in body["tasks"]]

    assert ids() == [second, third, first]  # priority ascending, newest first within a priority
    assert ids(task_type="verify") == [first]
    assert ids(priority_min=3) == [third, first]
    assert ids(priority_max=2) == [second]
    assert ids(limit=1, offset=1) == [third]
    assert ids(status="completed") == []
    page = payload_of(http.get(url, params={"limit": 2}, headers=h12(bare)))
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    for bad in ({"limit": 0}, {"limit": 501}, {"priority_min": 11}, {"offset": -1}):
        assert http.get(url, params=bad, headers=h12(bare)).status_code == 422


def test_assigned_filter_for_unregistered_droplet(
    mesh: MeshHandle, start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    """Quirk from the real route: an unknown assigned_droplet_id drops the filter."""
    params: dict[str, str | int] = {"assigned_droplet_id": 12, "status": "assigned"}
    quirky = payload_of(
        http.get(f"{mesh.orchestrator_url}/tasks", params=params, headers=h12(mesh))
    )
    assert [t["assigned_droplet_id"] for t in quirky["tasks"]] == [18]
    clean = start(quirks=False)
    body = payload_of(
        http.get(f"{clean.orchestrator_url}/tasks", params=params, headers=h12(clean))
    )
    assert body["tasks"] == []


def test_router_assigns_by_capability_never_to_seeded_droplets(
    mesh: MeshHandle, http: httpx2.Client
) -> None:
    register(http, mesh)
    chat = create_task(http, mesh, required_capability="chat")
    anything = create_task(http, mesh)
    monitoring = create_task(http, mesh, required_capability="monitoring")  # only seeded 14 has it
    wait_for(lambda: get_task(http, mesh, anything)["status"] == "assigned")
    wait_for(lambda: get_task(http, mesh, chat)["status"] == "assigned")
    task = get_task(http, mesh, chat)
    assert (task["assigned_droplet_id"], task["assigned_droplet_name"]) == (12, "Chat Orchestrator")
    routed = task["state_history"][-1]
    assert (routed["from_status"], routed["changed_by"]) == ("pending", "orchestrator")
    assert routed["reason"].startswith("Routed to droplet #")
    assert get_task(http, mesh, anything)["assigned_droplet_id"] == 12
    time.sleep(0.3)
    assert get_task(http, mesh, monitoring)["status"] == "pending"

    polled = http.get(
        f"{mesh.orchestrator_url}/tasks",
        params={"assigned_droplet_id": 12, "status": "assigned"},
        headers=h12(mesh),
    )
    assert sorted(t["id"] for t in payload_of(polled)["tasks"]) == sorted([chat, anything])


def test_state_machine(bare: MeshHandle, http: httpx2.Client) -> None:
    register(http, bare)
    task_id = create_task(http, bare, required_capability="chat")
    wait_for(lambda: get_task(http, bare, task_id)["status"] == "assigned")
    url = f"{bare.orchestrator_url}/tasks/{task_id}"

    stranger = http.patch(url, json={"status": "in_progress"}, headers=bearer(bare.mint_token(14)))
    assert (stranger.status_code, stranger.json()) == (
        403,
        {"detail": "Only assigned droplet can update task status"},
    )
    skip = http.patch(url, json={"status": "completed"}, headers=h12(bare))
    assert skip.status_code == 400
    assert skip.json() == {
        "detail": "Invalid transition: assigned -> completed. "
        "Allowed: ['in_progress', 'pending', 'cancelled']"
    }
    assert http.patch(url, json={"status": "done"}, headers=h12(bare)).status_code == 422

    started = http.patch(url, json=envelope({"status": "in_progress"}), headers=h12(bare))
    assert payload_of(started)["status"] == "in_progress"
    assert datetime.fromisoformat(payload_of(started)["updated_at"]).tzinfo is not None
    done = http.patch(
        url,
        json=envelope({"status": "completed", "result": {"answer": "hi there"}}),
        headers=h12(bare),
    )
    assert done.status_code == 200
    task = get_task(http, bare, task_id)
    assert (task["status"], task["result"]) == ("completed", '{"answer": "hi there"}')
    assert task["completed_at"] and task["started_at"] and task["assigned_at"]
    assert [(h["from_status"], h["to_status"]) for h in task["state_history"]] == [
        (None, "pending"), ("pending", "assigned"), ("assigned", "in_progress"),
        ("in_progress", "completed"),
    ]  # fmt: skip
    again = http.patch(url, json={"status": "failed"}, headers=h12(bare))
    assert again.json() == {"detail": "Cannot transition from terminal status: completed"}


def test_cancel_rules(bare: MeshHandle, http: httpx2.Client) -> None:
    register(http, bare)
    base = f"{bare.orchestrator_url}/tasks"
    pending = create_task(http, bare, required_capability="nobody_has_this")
    response = http.delete(f"{base}/{pending}", headers=bearer(bare.mint_token(14)))
    assert response.json() == {"detail": "Only task creator or admin can cancel tasks"}
    response = http.delete(f"{base}/{pending}", headers=h12(bare))
    assert list(payload_of(response)) == ["task_id", "status", "cancelled_at"]
    assert payload_of(response)["status"] == "cancelled"
    history = get_task(http, bare, pending)["state_history"][-1]
    assert (history["changed_by"], history["reason"]) == ("droplet_12", "Cancelled by user request")
    again = http.delete(f"{base}/{pending}", headers=h12(bare))
    assert again.json() == {"detail": "Cannot cancel task in terminal state: cancelled"}

    admin = bearer(bare.mint_token(1, permissions=["read", "write", "admin"]))
    by_admin = create_task(http, bare, required_capability="nobody_has_this")
    assert http.delete(f"{base}/{by_admin}", headers=admin).status_code == 200

    working = create_task(http, bare, required_capability="chat")
    wait_for(lambda: get_task(http, bare, working)["status"] == "assigned")
    http.patch(f"{base}/{working}", json={"status": "in_progress"}, headers=h12(bare))
    refused = http.delete(f"{base}/{working}", headers=h12(bare))
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("Invalid transition: in_progress -> cancelled")


# -- background work -----------------------------------------------------------------------------


def test_inactive_expiry_requeues_and_announces(
    start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    mesh = start(inactive_after=2.5)
    beat_url = f"{mesh.orchestrator_url}/droplets/12/heartbeat"
    with connect(ws_url(mesh, "droplets", mesh.mint_token(12))) as ws:
        register(http, mesh)
        task_id = create_task(http, mesh, required_capability="chat")
        wait_for(lambda: get_task(http, mesh, task_id)["status"] == "assigned")
        started = http.patch(
            f"{mesh.orchestrator_url}/tasks/{task_id}",
            json={"status": "in_progress"},
            headers=h12(mesh),
        )
        assert started.status_code == 200
        # 12's last heartbeat; then it goes quiet, like seeded droplet 16 (by design).
        assert http.post(beat_url, json={"status": "active"}, headers=h12(mesh)).status_code == 200
        events = [next_event(ws, "droplet_health_changed", timeout=10)["payload"] for _ in range(2)]
    assert {e["droplet_id"] for e in events} == {12, 16}
    assert {(e["old_status"], e["new_status"]) for e in events} == {("active", "inactive")}
    listing = droplets(http, mesh)
    assert [d for d, row in listing.items() if row["status"] == "inactive"] == [12, 16]

    task = get_task(http, mesh, task_id)
    assert (task["status"], task["assigned_droplet_id"]) == ("pending", None)
    requeued = task["state_history"][-1]
    assert (requeued["from_status"], requeued["to_status"], requeued["reason"]) == (
        "in_progress",
        "pending",
        "Droplet #12 heartbeat timeout",
    )
    params = {"task_type": "custom"}
    seeded = payload_of(
        http.get(f"{mesh.orchestrator_url}/tasks", params=params, headers=h12(mesh))
    )
    onboarding = next(t for t in seeded["tasks"] if t["title"].startswith("Onboard"))
    assert onboarding["status"] == "pending"

    # A heartbeat brings 12 back; the router hands it the task again.
    assert http.post(beat_url, json={"status": "active"}, headers=h12(mesh)).status_code == 200
    wait_for(lambda: get_task(http, mesh, task_id)["status"] == "assigned")


def test_stop_heartbeats_hook(start: Callable[..., MeshHandle], http: httpx2.Client) -> None:
    mesh = start(inactive_after=1.5)
    url = mesh.orchestrator_url
    assert http.post(f"{url}/_sandbox/droplets/14/stop-heartbeats").json() == {
        "droplet_id": 14,
        "heartbeats": "stopped",
    }
    assert http.post(f"{url}/_sandbox/droplets/12/stop-heartbeats").status_code == 404
    wait_for(lambda: droplets(http, mesh)[14]["status"] == "inactive")
    wait_for(lambda: droplets(http, mesh)[16]["status"] == "inactive")
    listing = droplets(http, mesh)
    assert sorted(d for d, row in listing.items() if row["status"] == "inactive") == [14, 16]
    http.post(f"{url}/_sandbox/droplets/14/start-heartbeats")
    wait_for(lambda: droplets(http, mesh)[14]["status"] == "active")


def test_tick_runs_background_work_now(
    start: Callable[..., MeshHandle], http: httpx2.Client
) -> None:
    mesh = start(router_interval=600)
    register(http, mesh)
    task_id = create_task(http, mesh, required_capability="chat")
    assert get_task(http, mesh, task_id)["status"] == "pending"
    assert http.post(f"{mesh.orchestrator_url}/_sandbox/tick").json() == {
        "inactive": [],
        "routed": [task_id],
    }
    assert get_task(http, mesh, task_id)["assigned_droplet_id"] == 12


def test_websocket_events(start: Callable[..., MeshHandle], http: httpx2.Client) -> None:
    mesh = start(seed=False, ws_ping_interval=0.2)
    with connect(ws_url(mesh, "tasks", mesh.mint_token(12))) as ws:
        ping = next_event(ws, "ping")
        assert (ping["source"], ping["target"], ping["message_type"]) == (
            "droplet-10",
            "broadcast",
            "event",
        )
        task_id = create_task(http, mesh, title="watched")
        event = next_event(ws, "task_created")
    assert list(event) == ENVELOPE_KEYS
    assert event["payload"]["task"]["id"] == task_id
    assert event["payload"]["task"]["title"] == "watched"

    for token in ("garbage", mesh.mint_token(12, extra_claims={"aud": "x"})):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(mesh, "tasks", token))
        assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(f"{mesh.orchestrator_url.replace('http', 'ws')}/ws/droplets")


# -- messaging -----------------------------------------------------------------------------------


def message(
    payload: dict[str, Any], message_type: str = "query", **overrides: Any
) -> dict[str, Any]:
    body = {
        "udc_version": "1.0",
        "trace_id": "af99435a-f647-4e65-b5a4-82085fe12d6f",
        "source": 12,
        "target": 10,
        "message_type": message_type,
        "timestamp": "2026-11-27T16:10:21Z",
        "payload": payload,
    }
    return body | overrides


def test_message_endpoint(bare: MeshHandle, http: httpx2.Client) -> None:
    url = f"{bare.orchestrator_url}/message"
    register(http, bare)
    response = http.post(url, json=message({"query": "droplet_list"}))  # no token needed
    body = response.json()
    assert (response.status_code, body["target"], body["trace_id"]) == (
        200,
        "12",
        "af99435a-f647-4e65-b5a4-82085fe12d6f",
    )
    assert body["payload"]["result"]["droplets"] == [
        {"id": 10, "name": "Orchestrator", "status": "active"},
        {"id": 12, "name": "Chat Orchestrator", "status": "active"},
    ]
    assert body["payload"]["error"] is None

    strings = http.post(url, json=message({}, source="droplet-12", target="droplet-10"))
    assert strings.status_code == 422
    assert [e["loc"] for e in strings.json()["detail"]] == [["body", "source"], ["body", "target"]]

    task_data = {"title": "via /message", "required_capability": "none", "payload": {"x": 1}}
    created = http.post(
        url, json=message({"command": "create_task", "task_data": task_data}, "command")
    )
    result = created.json()["payload"]["result"]
    assert (result["command"], result["status"]) == ("create_task", "pending")
    status = http.post(url, json=message({"query": "task_status", "task_id": result["task_id"]}))
    assert status.json()["payload"]["result"]["task"]["status"] == "pending"
    cancelled = http.post(
        url, json=message({"command": "cancel_task", "task_id": result["task_id"]}, "command")
    )
    assert cancelled.json()["payload"]["result"]["status"] == "cancelled"
    assert get_task(http, bare, result["task_id"])["state_history"] == []  # real quirk

    unknown = http.post(url, json=message({"query": "weather"})).json()["payload"]["result"]
    assert unknown["error"] == "Unknown query: weather"
    system = http.post(url, json=message({"query": "system_status"})).json()["payload"]["result"]
    assert system["system"]["healthy"] is True

    wrong_target = http.post(url, json=message({"query": "droplet_list"}, target=14))
    assert wrong_target.status_code == 200
    assert wrong_target.json()["message_type"] == "error"
    error = wrong_target.json()["payload"]["error"]
    assert (error["code"], error["message"]) == (
        "INVALID_REQUEST",
        "Message target 14 does not match this droplet (droplet-10)",
    )
    heartbeat = http.post(url, json=message({}, "heartbeat")).json()
    assert heartbeat["message_type"] == "error"


def test_send_delivers_an_unauthenticated_envelope(
    bare: MeshHandle, http: httpx2.Client, receiver: Receiver
) -> None:
    register(http, bare, endpoint=receiver.url)
    response = http.post(
        f"{bare.orchestrator_url}/send",
        params={"target_droplet_id": 12, "message_type": "event"},
        json={"event": "hello_from_d10", "n": 1},
        headers=h12(bare),
    )
    assert response.status_code == 200
    sent = response.json()  # not wrapped in an envelope
    assert list(sent) == [
        "sent",
        "target_droplet",
        "target_droplet_id",
        "message_delivered_at",
        "trace_id",
    ]
    assert (sent["sent"], sent["target_droplet"], sent["target_droplet_id"]) == (
        True,
        "Chat Orchestrator",
        12,
    )
    [got] = receiver.received
    assert (got.method, got.path) == ("POST", "/message")
    assert "authorization" not in {k.lower() for k in got.headers}
    assert got.body == {
        "udc_version": "1.0",
        "trace_id": sent["trace_id"],
        "source": "droplet-10",
        "target": "droplet-12",
        "message_type": "event",
        "timestamp": got.body["timestamp"],
        "payload": {"event": "hello_from_d10", "n": 1},
    }
    assert is_naive_iso(got.body["timestamp"])


def test_send_failures(start: Callable[..., MeshHandle], http: httpx2.Client) -> None:
    mesh = start(seed=False, send_timeout=0.3)
    url = f"{mesh.orchestrator_url}/send"

    def send(target: int) -> httpx2.Response:
        params: dict[str, str | int] = {"target_droplet_id": target, "message_type": "event"}
        return http.post(url, params=params, json={"event": "x"}, headers=h12(mesh))

    assert send(77).json()["type"] == "NotFound"
    failing, slow = Receiver(status=503), Receiver(delay=1.0)
    try:
        register(http, mesh, droplet_id=12, endpoint=failing.url)
        response = send(12)
        assert (response.status_code, response.json()) == (
            502,
            {"detail": "Error from Chat Orchestrator: 503"},
        )
        register(http, mesh, droplet_id=12, endpoint=slow.url)
        response = send(12)
        assert (response.status_code, response.json()) == (
            504,
            {"detail": "Timeout sending message to Chat Orchestrator"},
        )
    finally:
        failing.close()
        slow.close()
    register(http, mesh, droplet_id=12, endpoint="http://127.0.0.1:9")
    unreachable = send(12)
    assert unreachable.status_code == 500
    assert unreachable.json()["detail"].startswith("Failed to send message:")


def test_broadcast_needs_admin(bare: MeshHandle, http: httpx2.Client, receiver: Receiver) -> None:
    register(http, bare, endpoint=receiver.url)
    url = f"{bare.orchestrator_url}/broadcast"
    params = {"message_type": "event", "capability_filter": "chat"}
    denied = http.post(url, params=params, json={"event": "b"}, headers=h12(bare))
    assert denied.json() == {"detail": "Admin permission required for broadcast"}
    admin = bearer(bare.mint_token(1, permissions=["admin"]))
    done = http.post(url, params=params, json={"event": "b"}, headers=admin).json()
    assert (done["total_droplets"], done["successful"], done["results"][0]["status"]) == (
        1,
        1,
        "sent",
    )
    assert receiver.received[0].body["payload"] == {"event": "b"}


# -- faults and restarts ------------------------------------------------------------------------


def test_fault_modes(bare: MeshHandle, http: httpx2.Client) -> None:
    url = bare.orchestrator_url
    fault = f"{url}/_sandbox/fault"
    http.post(fault, json={"mode": "error500"})
    response = http.get(f"{url}/tasks", headers=h12(bare))
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    with pytest.raises(InvalidStatus):
        connect(ws_url(bare, "tasks", bare.mint_token(12)))

    http.post(fault, json={"mode": "garbage"})
    with pytest.raises(ValueError):
        http.get(f"{url}/health").json()

    http.post(fault, json={"mode": "drop"})
    with pytest.raises(httpx2.RemoteProtocolError):
        http.get(f"{url}/health")

    http.post(fault, json={"mode": "slow", "delay": 0.5})
    with pytest.raises(httpx2.ReadTimeout):
        http.get(f"{url}/health", timeout=0.2)

    http.post(fault, json={"mode": "none"})
    assert http.get(f"{url}/health").status_code == 200


def test_restart_on_the_same_port_keeps_state(bare: MeshHandle, http: httpx2.Client) -> None:
    register(http, bare)
    task_id = create_task(http, bare, required_capability="nobody_has_this")
    token = bare.mint_token(12)
    url = bare.orchestrator_url
    bare.stop_orchestrator()
    with pytest.raises(httpx2.ConnectError):
        http.get(f"{url}/health")
    bare.start_orchestrator()
    assert bare.orchestrator_url == url
    assert get_task(http, bare, task_id)["status"] == "pending"
    assert http.get(f"{url}/droplets", headers=bearer(token)).status_code == 200
