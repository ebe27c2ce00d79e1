"""A bulk cancel through REST and through the WebSocket, against the sandbox mesh: one proposal
lists the exact tasks, one yes acts on each, and a task finished meanwhile is reported, not
hidden. Retry, undo and why through REST follow the same path."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.e2e


def _orchestrator(sandbox: Any, droplet_id: int = 12) -> httpx2.Client:
    # As droplet 12 by default: the Orchestrator lets only a task's creator (or an admin)
    # cancel it.
    token = sandbox.mint_token(droplet_id=droplet_id)
    return httpx2.Client(
        base_url=sandbox.orchestrator_url, headers={"Authorization": f"Bearer {token}"}
    )


def _pending_for(sandbox: Any, droplet: int, count: int, *, creator: int = 12) -> list[int]:
    ids = []
    with _orchestrator(sandbox, creator) as http:
        for n in range(count):
            created = http.post(
                "/tasks",
                json={
                    "task_type": "verify",
                    "title": f"Bulk e2e {n}",
                    "priority": 4,
                    "required_capability": "nobody_has_this",
                    "payload": {"target_droplet_id": droplet},
                },
            )
            created.raise_for_status()
            ids.append(int(created.json()["payload"]["task_id"]))
    return ids


def _cancel_in_the_mesh(sandbox: Any, task_id: int) -> None:
    with _orchestrator(sandbox) as http:
        http.delete(f"/tasks/{task_id}").raise_for_status()


def _chat(client: Any, message: str, session: str) -> dict[str, Any]:
    said = client.post("/api/chat", json={"message": message, "session_id": session})
    assert said.status_code == 200, said.text
    body: dict[str, Any] = said.json()
    return body


def test_bulk_cancel_through_rest_reports_the_task_that_finished_meanwhile(
    mesh_client: Any, sandbox: Any
) -> None:
    mine = _pending_for(sandbox, 17, 3)
    proposal = _chat(mesh_client, "cancel all pending tasks for droplet 17", "bulk-rest")
    pending = proposal["pending_confirmation"]
    assert pending["args"] == {"task_ids": mine}
    assert pending["preview"].count("\n- **") == 2  # three lines, one per task
    _cancel_in_the_mesh(sandbox, mine[0])
    done = _chat(mesh_client, "yes", "bulk-rest")
    assert done["actions"] == [{"tool": "cancel_tasks", "status": "ok"}]
    assert "2 of 3 tasks cancelled; 1 already finished" in done["response"]
    audit = mesh_client.get("/api/audit", params={"tool": "cancel_tasks"}).json()
    entries = audit.get("entries", audit) if isinstance(audit, dict) else audit
    per_task = sorted((e["args"]["task_id"], e["outcome"]) for e in entries)
    assert per_task == sorted([(mine[0], "declined"), (mine[1], "ok"), (mine[2], "ok")])


def test_a_task_the_orchestrator_will_not_let_us_cancel_is_reported_refused(
    mesh_client: Any, sandbox: Any
) -> None:
    ours = _pending_for(sandbox, 17, 1)
    theirs = _pending_for(sandbox, 17, 1, creator=41)
    _chat(mesh_client, "cancel all pending tasks for droplet 17", "bulk-refused")
    done = _chat(mesh_client, "yes", "bulk-refused")
    assert "1 of 2 tasks cancelled; 1 refused by the Orchestrator" in done["response"]
    assert f"task **{theirs[0]}**: refused by the Orchestrator" in done["response"]
    assert f"task **{ours[0]}**: cancelled" in done["response"]


def test_bulk_cancel_through_the_socket_confirms_the_proposal_it_showed(
    mesh_client: Any, sandbox: Any
) -> None:
    mine = _pending_for(sandbox, 17, 2)
    with mesh_client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "welcome"
        ws.send_text(
            json.dumps(
                {
                    "type": "message",
                    "content": f"cancel tasks {mine[0]} and {mine[1]}",
                    "session_id": "bulk-ws",
                }
            )
        )
        frame = ws.receive_json()
        while frame["type"] != "message":
            frame = ws.receive_json()
        pending = frame["pending_confirmation"]
        assert pending["tool"] == "cancel_tasks" and pending["args"] == {"task_ids": mine}
        ws.send_text(
            json.dumps(
                {
                    "type": "confirm",
                    "session_id": "bulk-ws",
                    "proposal_id": pending["proposal_id"],
                }
            )
        )
        frame = ws.receive_json()
        while frame["type"] != "message":
            frame = ws.receive_json()
    assert frame["actions"] == [{"tool": "cancel_tasks", "status": "ok"}]
    assert "2 of 2 tasks cancelled" in frame["content"]


def test_retry_undo_and_why_through_rest(mesh_client: Any) -> None:
    proposal = _chat(mesh_client, "retry the failed deploys", "beyond-rest")
    assert proposal["pending_confirmation"]["tool"] == "retry_tasks"
    retried = _chat(mesh_client, "yes", "beyond-rest")
    assert "1 of 1 task retried" in retried["response"]
    undo = _chat(mesh_client, "take that back", "beyond-rest")
    assert undo["pending_confirmation"]["tool"] == "undo"
    undone = _chat(mesh_client, "yes", "beyond-rest")
    assert "cancelled (undone)" in undone["response"]
    why = _chat(mesh_client, "why?", "beyond-rest")
    assert "`undo`" in why["response"] and "via orchestrator" in why["response"]
