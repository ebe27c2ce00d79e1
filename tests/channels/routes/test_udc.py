from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import KeyPair

# The one place the version is written.
PYPROJECT_VERSION: str = tomllib.loads(
    (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
)["project"]["version"]

PROTECTED = ["/state", "/dependencies", "/version"]


def _assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert body["status"] == "error"
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["timestamp"].endswith("Z")


def test_health_is_public_and_matches_the_guide(client: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == 12
    assert body["name"] == "Chat Orchestrator"
    assert body["steward"] == "Zainab"
    assert body["status"] in ("active", "inactive", "error")
    assert body["endpoint"] == "http://localhost:8012"
    assert body["version"] == PYPROJECT_VERSION
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-trace-id"]


def test_trace_id_is_taken_from_the_request(client: Any) -> None:
    response = client.get("/health", headers={"X-Trace-Id": "abc-123"})
    assert response.headers["x-trace-id"] == "abc-123"


def test_hsts_only_behind_https(client: Any) -> None:
    assert "strict-transport-security" not in client.get("/health").headers
    behind = client.get("/health", headers={"X-Forwarded-Proto": "https"})
    assert "max-age" in behind.headers["strict-transport-security"]


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_endpoints_need_a_token(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    _assert_error_shape(response.json(), "UNAUTHORIZED")


@pytest.mark.parametrize(
    "header",
    ["Basic abc", "Bearer", "Bearer a b", "token-without-scheme", "Bearer not.a.jwt"],
)
def test_malformed_authorization_headers(client: Any, header: str) -> None:
    response = client.get("/state", headers={"Authorization": header})
    assert response.status_code == 401
    assert "www-authenticate" in response.headers
    _assert_error_shape(response.json(), "UNAUTHORIZED")


def test_expired_and_foreign_tokens_get_401(
    client: Any, keys: KeyPair, other_keys: KeyPair
) -> None:
    for token in (keys.token(ttl=-120), other_keys.token()):
        response = client.get("/version", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert "invalid_token" in response.headers["www-authenticate"]


def test_udc_bodies_with_a_valid_token(client: Any, keys: KeyPair) -> None:
    auth = {"Authorization": f"Bearer {keys.token(permissions=['read'])}"}
    caps = client.get("/capabilities", headers=auth).json()
    assert caps["udc_version"] == "1.0"
    assert caps["dependencies"] == ["registry", "orchestrator"]
    assert "features" in caps and caps["metadata"]["planner"]

    for _ in range(3):
        client.get("/health")
    state = client.get("/state", headers=auth).json()
    for key in (
        "cpu_percent",
        "memory_mb",
        "uptime_seconds",
        "requests_total",
        "requests_per_minute",
        "errors_last_hour",
        "active_sessions",
        "active_connections",
        "average_response_time_ms",
    ):
        assert key in state
    assert state["requests_per_minute"] >= 4
    assert state["memory_mb"] > 10

    deps = client.get("/dependencies", headers=auth).json()
    assert {d["name"] for d in deps["required"]} == {"Orchestrator", "Registry"}
    assert {d["id"] for d in deps["required"]} == {1, 10}

    version = client.get("/version", headers=auth).json()
    assert version["version"] == PYPROJECT_VERSION
    assert version["environment"] == "development"


def test_unknown_route_and_method_use_the_error_format(client: Any) -> None:
    missing = client.get("/no/such/thing")
    assert missing.status_code == 404
    _assert_error_shape(missing.json(), "NOT_FOUND")
    wrong = client.delete("/health")
    assert wrong.status_code == 405
    _assert_error_shape(wrong.json(), "INVALID_REQUEST")


def test_metrics_exposes_request_counters(client: Any) -> None:
    client.get("/health")
    text = client.get("/metrics").text
    assert "http_requests_total" in text
    assert "http_request_duration_seconds_bucket" in text


def test_openapi_documents_the_udc_endpoints(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/capabilities", "/state", "/dependencies", "/version"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_cors_allows_only_configured_origins(client: Any) -> None:
    ok = client.options(
        "/health",
        headers={"Origin": "http://localhost:8012", "Access-Control-Request-Method": "GET"},
    )
    assert ok.headers.get("access-control-allow-origin") == "http://localhost:8012"
    bad = client.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in bad.headers


# The deployment guide's commands, as written (development defaults, where chat needs no token).
def test_the_guides_health_and_capabilities_commands_answer_200(client: Any) -> None:
    # curl http://localhost:8012/health ; curl http://localhost:8012/capabilities
    assert client.get("/health").status_code == 200
    capabilities = client.get("/capabilities")
    assert capabilities.status_code == 200
    assert capabilities.json()["metadata"]["droplet_id"] == 12
    # curl -I http://localhost:8012/health ; curl -H "Origin: http://example.com" -I .../health
    head = client.head("/health")
    assert head.status_code == 200
    assert head.headers["content-type"] == "application/json"
    assert head.content == b""
    cors = client.head("/health", headers={"Origin": "http://example.com"})
    assert cors.status_code == 200
    assert "access-control-allow-origin" not in cors.headers


def test_the_guides_other_commands_work_as_written(client: Any) -> None:
    # Test Chat Endpoint
    chat = client.post(
        "/api/chat", json={"message": "show me all registered items", "session_id": "test-123"}
    )
    assert chat.status_code == 200
    # API Metrics (the JWT-protected /state is marked as such in the guide)
    assert client.get("/api/sessions/stats").status_code == 200
    assert client.get("/ws/connections").status_code == 200
    assert client.get("/state").status_code == 401
    # Test WebSocket: wscat -c ws://localhost:8012/ws, then the guide's frame
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_json()["type"] == "welcome"
        socket.send_json({"type": "message", "content": "hello", "session_id": "ws-test"})
        kinds = []
        while "message" not in kinds:
            kinds.append(socket.receive_json()["type"])
    # Clear Sessions: curl -X DELETE http://localhost:8012/api/sessions
    assert client.delete("/api/sessions").status_code == 200


# What an attacker without a token learns from /capabilities: who we are and the UDC surface,
# which /health and the OpenAPI document say anyway; nothing about this deployment's set-up.
WITHHELD_KEYS = {"environment", "planner", "session_store", "event_bus"}
WITHHELD_FEATURES = {"chat_authentication", "llm_summaries"}


def test_capabilities_without_a_token_leak_nothing_sensitive(
    make_settings: Callable[..., Settings], keys: KeyPair
) -> None:
    from starlette.testclient import TestClient

    from app.factory import create_app

    settings = make_settings(chat_auth="jwt")
    with TestClient(create_app(settings), client=("203.0.113.9", 40000)) as client:
        anonymous = client.get("/capabilities")
        verified = client.get(
            "/capabilities", headers={"Authorization": f"Bearer {keys.token(permissions=['read'])}"}
        )
        forged = [
            client.get("/capabilities", headers={"Authorization": header})
            for header in ("Bearer not.a.jwt", "Basic YWRtaW46YWRtaW4=", "Bearer ")
        ]
    assert anonymous.status_code == 200
    body = anonymous.json()
    assert set(body["metadata"]) == {"droplet_id", "name", "steward", "endpoints"}
    assert not WITHHELD_FEATURES & set(body["features"])
    text = anonymous.text.lower()
    for word in ("sqlite", "postgres", "development", "rules", "in-process", "redis"):
        assert word not in text, word
    # The same question with a valid token gets the whole description.
    full = verified.json()
    assert verified.status_code == 200
    assert set(full["metadata"]) >= WITHHELD_KEYS
    assert "chat_authentication" in full["features"]
    # A token that is sent must verify: a forged or malformed one is refused, never downgraded.
    for response in forged:
        assert response.status_code == 401
        _assert_error_shape(response.json(), "UNAUTHORIZED")
