from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KeyPair

# The one place the version is written.
PYPROJECT_VERSION: str = tomllib.loads(
    (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
)["project"]["version"]

PROTECTED = ["/capabilities", "/state", "/dependencies", "/version"]


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
