"""The composition root: what droplet 12 builds and says about its configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.config import Settings
from app.factory import create_app
from tests.conftest import KeyPair


def test_no_orchestrator_credentials_is_a_state_said_once_not_a_retry_loop(
    make_settings: Callable[..., Settings], keys: KeyPair, capfd: pytest.CaptureFixture[str]
) -> None:
    # The mesh is on, but neither ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE nor
    # DROPLET_SECRET is set (nothing listens on port 9 either: nothing may be called).
    settings = make_settings(
        mesh_enabled=True,
        registry_url="http://127.0.0.1:9",
        orchestrator_url="http://127.0.0.1:9",
    )
    token = keys.token(permissions=["read"])
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        dependencies = client.get(
            "/dependencies", headers={"Authorization": f"Bearer {token}"}
        ).json()
    # The app logs JSON lines (LOG_FORMAT=json).
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines()
    logs = [json.loads(line) for line in lines if line.startswith("{")]
    events = [e["event"] for e in logs]
    assert events.count("orchestrator_not_configured") == 1
    said = next(e for e in logs if e["event"] == "orchestrator_not_configured")
    assert said["set"] == "ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE or DROPLET_SECRET"
    assert not any(e.endswith("_registration_failed") for e in events)

    assert health["status"] == "active"
    assert health["checks"]["orchestrator"] == "disabled"
    assert health["checks"]["registry"] == "disabled"
    required: dict[str, Any] = {d["name"]: d for d in dependencies["required"]}
    assert required["Orchestrator"]["status"] == "disabled"
    assert required["Orchestrator"]["detail"] == (
        "not configured: set ORCHESTRATOR_TOKEN, ORCHESTRATOR_PRIVATE_KEY_FILE or DROPLET_SECRET"
    )
    assert required["Registry"]["detail"] == (
        "not configured: set DROPLET_SECRET (or REGISTRY_API_KEY)"
    )
    assert set(dependencies["missing"]) == {"Orchestrator", "Registry"}
