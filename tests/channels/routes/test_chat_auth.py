"""CHAT_AUTH=jwt: identities own sessions, writes need `write`, admin operations need `admin`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.config import Settings
from app.factory import create_app
from tests.conftest import KeyPair

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def secured(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(make_settings(chat_auth="jwt"))
    with TestClient(app, client=("203.0.113.9", 1)) as client:
        yield client


def _auth(keys: KeyPair, sub: str, *permissions: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.token(sub=sub, permissions=list(permissions))}"}


def test_production_settings_from_env_example_refuse_unauthenticated_chat(
    tmp_path: Path, public_key_file: Path
) -> None:
    example = (ROOT / ".env.example").read_text()
    env_file = tmp_path / ".env"
    env_file.write_text(
        example.replace(
            "DROPLET_SECRET=secret-from-registry-steward", "DROPLET_SECRET=9f8e7d6c5b4a3f2e1d0c"
        ).replace("GEMINI_API_KEY=your-actual-gemini-api-key", "")
        + f"\nREGISTRY_PUBLIC_KEY_FILE={public_key_file}\nMESH_ENABLED=false\n"
        f"DATA_DIR={tmp_path / 'data'}\n"
    )
    settings = Settings(_env_file=env_file)
    assert settings.is_production and settings.effective_chat_auth == "jwt"
    with TestClient(create_app(settings), client=("127.0.0.1", 1)) as client:
        response = client.post("/api/chat", json={"message": "show me all droplets"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        voice = client.post(
            "/api/process",
            json={"source": "18", "message_type": "query", "payload": {"message": "hello"}},
        )
        assert voice.status_code == 401
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws") as ws:
            ws.receive_json()


def test_sessions_belong_to_their_identity(secured: TestClient, keys: KeyPair) -> None:
    alice, bob = _auth(keys, "alice", "read", "write"), _auth(keys, "bob", "read", "write")
    sid = secured.post("/api/chat", json={"message": "hello"}, headers=alice).json()["session_id"]
    assert secured.get(f"/api/sessions/{sid}", headers=alice).status_code == 200
    assert secured.get(f"/api/sessions/{sid}", headers=bob).status_code == 404
    # The same id names bob's own session: alice's is neither reached nor revealed.
    hijack = secured.post("/api/chat", json={"message": "hi", "session_id": sid}, headers=bob)
    assert hijack.status_code == 200
    assert secured.get(f"/api/sessions/{sid}", headers=alice).json()["message_count"] == 2
    bobs = secured.get(f"/api/sessions/{sid}", headers=bob).json()
    assert next(h["content"] for h in bobs["history"]) == "hi"
    mine = secured.get("/api/sessions", headers=bob).json()
    assert {s["owner"] for s in mine["sessions"]} == {"user:bob"}


def test_writes_need_the_write_permission(secured: TestClient, keys: KeyPair) -> None:
    reader = _auth(keys, "reader", "read")
    reply = secured.post("/api/chat", json={"message": "cancel task 3"}, headers=reader).json()
    assert reply["pending_confirmation"] is None
    assert reply["actions"] == [{"tool": "cancel_task", "status": "forbidden"}]
    assert "permission" in reply["response"]


def test_admin_operations_need_admin(secured: TestClient, keys: KeyPair) -> None:
    user, admin = _auth(keys, "u", "read", "write"), _auth(keys, "root", "read", "admin")
    for method, path in (("DELETE", "/api/sessions"), ("GET", "/api/audit")):
        assert secured.request(method, path, headers=user).status_code == 403
        assert secured.request(method, path, headers=admin).status_code == 200
    anonymous = secured.get("/api/audit")
    assert anonymous.status_code == 401


def test_websocket_token_in_query_and_origin_check(secured: TestClient, keys: KeyPair) -> None:
    token = keys.token(sub="alice", permissions=["read"])
    with secured.websocket_connect(f"/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "welcome"
    with (
        pytest.raises(WebSocketDisconnect),
        secured.websocket_connect(
            f"/ws?token={token}", headers={"Origin": "https://evil.example"}
        ) as ws,
    ):
        ws.receive_json()


def test_anonymous_cannot_list_sessions_from_outside(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings()), client=("203.0.113.9", 1)) as client:
        client.post("/api/chat", json={"message": "hello"})
        listing: Any = client.get("/api/sessions")
        assert listing.status_code == 403
        assert client.delete("/api/sessions").status_code == 403
        assert client.get("/api/sessions/stats").status_code == 200
