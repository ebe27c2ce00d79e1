"""The WebSocket protocol against the real app and the sandbox mesh."""

from __future__ import annotations

import json
import time
from typing import Any


def _until(ws: Any, kind: str, limit: int = 20) -> list[dict[str, Any]]:
    frames = []
    for _ in range(limit):
        frame = ws.receive_json()
        frames.append(frame)
        if frame["type"] == kind:
            return frames
    raise AssertionError(f"no {kind} frame in {frames}")


def test_guide_example_welcome_ack_progress_message(mesh_client: Any) -> None:
    with mesh_client.websocket_connect("/ws") as ws:
        welcome = ws.receive_json()
        assert welcome["type"] == "welcome"
        ws.send_text(
            json.dumps(
                {"type": "message", "content": "show me all droplets", "session_id": "ws-test"}
            )
        )
        frames = _until(ws, "message")
        kinds = [f["type"] for f in frames]
        assert kinds[0] == "ack"
        assert "progress" in kinds
        steps = [f.get("step") for f in frames if f["type"] == "progress"]
        assert steps[0] == "planning" and "calling" in steps and steps[-1] == "formatting"
        answer = frames[-1]
        assert answer["session_id"] == "ws-test"
        assert answer["actions"] == [{"tool": "list_droplets", "status": "ok"}]
        for frame in frames:
            assert {"type", "session_id", "timestamp"} <= frame.keys()


def test_bad_frames_get_errors_and_the_socket_stays_open(mesh_client: Any) -> None:
    with mesh_client.websocket_connect("/ws") as ws:
        ws.receive_json()
        for bad in (
            "{not json",
            "[1,2]",
            '"text"',
            '{"type":"dance"}',
            '{"type":"message","content":""}',
            '{"type":"message"}',
            '{"type":"confirm"}',
        ):
            ws.send_text(bad)
            frame = ws.receive_json()
            assert frame["type"] == "error", bad
            assert frame["error"]
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["type"] == "error"
        ws.send_text('{"type":"ping"}')
        assert ws.receive_json()["type"] == "pong"


def test_confirm_frame_executes_the_pending_action(mesh_client: Any) -> None:
    with mesh_client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text(
            json.dumps(
                {
                    "type": "message",
                    "session_id": "ws-confirm",
                    "content": "create a build task for droplet 16 priority 2",
                }
            )
        )
        proposal = _until(ws, "message")[-1]
        assert proposal["pending_confirmation"]["tool"] == "create_task"
        ws.send_text(json.dumps({"type": "confirm", "session_id": "ws-confirm"}))
        done = _until(ws, "message")[-1]
        assert done["actions"] == [{"tool": "create_task", "status": "ok"}]


def test_rest_and_ws_share_the_session_and_followers_get_messages(mesh_client: Any) -> None:
    with mesh_client.websocket_connect("/ws?session_id=shared-1") as ws:
        ws.receive_json()
        response = mesh_client.post(
            "/api/chat", json={"message": "hello", "session_id": "shared-1"}
        )
        assert response.status_code == 200
        pushed = _until(ws, "message")[-1]
        assert pushed["session_id"] == "shared-1"
        assert pushed["content"] == response.json()["response"]


def test_connections_are_counted_and_released(mesh_client: Any) -> None:
    assert mesh_client.get("/ws/connections").json() == {"active_connections": 0}
    with mesh_client.websocket_connect("/ws") as ws:
        ws.receive_json()
        assert mesh_client.get("/ws/connections").json() == {"active_connections": 1}
    assert mesh_client.get("/ws/connections").json() == {"active_connections": 0}


def test_same_origin_pages_are_accepted_whatever_the_host_name(mesh_client: Any) -> None:
    with mesh_client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "welcome"


def test_the_shipped_server_writes_events_to_sockets_directly(live_app: Any) -> None:
    from websockets.sync.client import connect

    live = live_app()
    hub = live.server.config.app.state.components.hub
    with connect(f"ws://127.0.0.1:{live.port}/ws?session_id=live-1") as ws:
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome" and welcome["session_id"] == "live-1"
        (conn,) = hub._connections.values()
        assert conn.write_now is not None  # the lean protocol's direct write reached the hub
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
    for _ in range(200):
        if hub.count() == 0:
            break
        time.sleep(0.01)
    assert hub.count() == 0


def test_a_socket_is_decided_by_the_first_value_of_a_repeated_header() -> None:
    from app.channels.routes.ws import _headers

    scope = {
        "headers": [
            (b"authorization", b"Bearer first"),
            (b"cookie", b"not kept"),
            (b"authorization", b"Bearer second"),
            (b"host", b"droplet12:8012"),
        ]
    }
    assert _headers(scope) == {b"authorization": "Bearer first", b"host": "droplet12:8012"}
