"""Known secret values never leave the process: not in logs, bodies, metrics or the audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from tests.conftest import KeyPair
from tests.fakes import openai as o

pytestmark = pytest.mark.e2e


@pytest.fixture
def fake_llm() -> Iterator[o.FakeOpenAI]:
    with o.FakeOpenAI(default=o.text("I can list droplets and tasks.")) as fake:
        yield fake


def test_a_full_session_leaks_no_secret(
    # First, so it is torn down last: the app's handler writes to this capture's stream, and a
    # line the server logs after the capture closed was an OSError in the log (EBADF).
    capfd: pytest.CaptureFixture[str],
    live_app: Callable[..., Any],
    sandbox: Any,
    keys: KeyPair,
    fake_llm: o.FakeOpenAI,
) -> None:
    orchestrator_token = sandbox.mint_token()
    llm_key = "sk-known-llm-key-0123456789"
    app = live_app(
        orchestrator_token=orchestrator_token,
        llm_base_url=fake_llm.base_url,
        llm_api_key=llm_key,
        log_level="DEBUG",
    )
    secrets = [sandbox.registry_key, orchestrator_token, llm_key]
    admin = {"Authorization": f"Bearer {keys.token(permissions=['read', 'write', 'admin'])}"}
    bodies: list[str] = []
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        for message in (
            "show me all droplets",
            "could you maybe do the thing from before",
            "create a build task for droplet 16 priority 2",
            "yes",
            "list tasks",
            f"my password is {sandbox.registry_key}",
        ):
            bodies.append(
                client.post("/api/chat", json={"message": message, "session_id": "secrets"}).text
            )
        for path in (
            "/state",
            "/capabilities",
            "/dependencies",
            "/version",
            "/health",
            "/api/audit",
            "/metrics",
            "/api/sessions/stats",
        ):
            bodies.append(client.get(path, headers=admin).text)
        bodies.append(client.get("/state", headers={"Authorization": "Bearer bad"}).text)
        bodies.append(client.post("/api/chat", json={"message": ""}).text)
    # Stopped before reading: the last request's access line (logged after its answer) and the
    # shutdown's lines are checked too.
    app.stop()
    logs = capfd.readouterr()
    text = "\n".join([*bodies[:-10], *bodies[-10:], logs.out, logs.err])
    # The user typed the registry key into the chat, so it is in that session's own history;
    # it must not be in logs, metrics, audit or any other body.
    user_echo = f"my password is {sandbox.registry_key}"
    for secret in secrets:
        leaks = [chunk for chunk in text.replace(user_echo, "").split("\n") if secret in chunk]
        assert leaks == [], f"secret found in: {leaks[:2]}"
    assert "heartbeat_sent" in logs.err or "heartbeat_sent" in logs.out
