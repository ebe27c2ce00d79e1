"""Watches through the whole service: asked for in chat, checked by the leader against the
sandbox mesh, delivered on the open WebSocket and recorded in the session's history.

End to end (a real app with its lifespan, the sandbox on loopback): the check interval is set
to a fraction of a second, and each wait is bounded by a deadline, never an open-ended sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from app.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def _orchestrator(sandbox: Any) -> httpx2.Client:
    token = sandbox.mint_token(droplet_id=41)
    return httpx2.Client(
        base_url=sandbox.orchestrator_url, headers={"Authorization": f"Bearer {token}"}
    )


def _new_pending_task(sandbox: Any) -> int:
    with _orchestrator(sandbox) as http:
        created = http.post(
            "/tasks",
            json={
                "task_type": "verify",
                "title": "Watched check",
                "priority": 4,
                "required_capability": "nobody_has_this",
                "payload": {"target_droplet_id": 14},
            },
        )
        created.raise_for_status()
        body: dict[str, Any] = created.json()
        return int(body["payload"]["task_id"])


def _cancel_in_the_mesh(sandbox: Any, task_id: int) -> None:
    with _orchestrator(sandbox) as http:
        http.delete(f"/tasks/{task_id}").raise_for_status()


def _history(client: Any, session: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = client.get(f"/api/sessions/{session}").json()["history"]
    return history


def test_a_watch_asked_in_chat_fires_on_the_socket_and_in_the_history(
    make_settings: Callable[..., Settings], mesh_settings: Callable[..., Settings], sandbox: Any
) -> None:
    from starlette.testclient import TestClient

    from app.factory import create_app

    settings = mesh_settings(watch_check_interval_s=0.2)
    task_id = _new_pending_task(sandbox)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        asked = client.post(
            "/api/chat",
            json={"message": f"tell me when task {task_id} is done", "session_id": "w1"},
        )
        assert asked.status_code == 200, asked.text
        assert f"task {task_id} finishes" in asked.json()["response"]
        listed = client.post(
            "/api/chat", json={"message": "what am I watching?", "session_id": "w1"}
        ).json()["response"]
        assert f"task {task_id}" in listed

        with client.websocket_connect("/ws?session_id=w1") as ws:
            assert ws.receive_json()["type"] == "welcome"
            started = time.monotonic()
            _cancel_in_the_mesh(sandbox, task_id)
            frame = ws.receive_json()
            while frame["type"] != "notification":
                frame = ws.receive_json()
            took = time.monotonic() - started
        assert took < 5.0
        assert f"Task {task_id}" in frame["text"] and "cancelled" in frame["text"]
        assert frame["session_id"] == "w1"

        history = _history(client, "w1")
        assert history[-1]["role"] == "assistant"
        assert history[-1]["content"] == frame["text"]
        # It fired once: the watch is gone from the list.
        after = client.post(
            "/api/chat", json={"message": "what am I watching?", "session_id": "w1"}
        ).json()["response"]
        assert f"task {task_id}" not in after


def test_a_watch_survives_a_restart_of_the_service(
    mesh_settings: Callable[..., Settings], sandbox: Any
) -> None:
    from starlette.testclient import TestClient

    from app.factory import create_app

    settings = mesh_settings(watch_check_interval_s=0.2)
    task_id = _new_pending_task(sandbox)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        asked = client.post(
            "/api/chat", json={"message": f"watch task {task_id}", "session_id": "w2"}
        )
        assert asked.status_code == 200, asked.text
    # Down: the task changes while nobody is watching.
    _cancel_in_the_mesh(sandbox, task_id)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        deadline = time.monotonic() + 10
        while not any(f"Task {task_id}" in h["content"] for h in _history(client, "w2")):
            assert time.monotonic() < deadline, _history(client, "w2")
            time.sleep(0.1)
