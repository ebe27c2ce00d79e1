"""Two instances sharing PostgreSQL and Redis behind the same sandbox mesh (multi-process)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from websockets.sync.client import connect

from tests.conftest import environment_without_settings, free_port, wait_up

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 2.0
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# One worker at a time: the instances share the production leader key and event channel.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("redis-leader")]


class Instance:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url


@pytest.fixture
def quirkless_sandbox(sandbox_key_dir: Path) -> Iterator[Any]:
    from sandbox.testing import mesh

    # quirks=False: GET /droplets/{id} works and shows droplet 12's heartbeat history.
    with mesh(key_dir=sandbox_key_dir, router_interval=0.3, quirks=False) as handle:
        yield handle


@pytest.fixture
def instances(
    tmp_path: Path, pg_database_url: str, quirkless_sandbox: Any
) -> Iterator[Callable[[str], Instance]]:
    import redis

    redis.Redis.from_url(REDIS_URL).delete("droplet12:leader")
    started: list[Instance] = []
    sandbox = quirkless_sandbox

    def start(name: str) -> Instance:
        port = free_port()
        env = environment_without_settings()
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PORT": str(port),
                "DROPLET_URL": f"http://127.0.0.1:{port}",
                "DATA_DIR": str(tmp_path / name),
                "DATABASE_URL": pg_database_url,
                "EVENT_BUS_URL": REDIS_URL,
                "LOG_FORMAT": "json",
                "REGISTRY_URL": sandbox.registry_url,
                "ORCHESTRATOR_URL": sandbox.orchestrator_url,
                "DROPLET_SECRET": sandbox.registry_key,
                "ORCHESTRATOR_PRIVATE_KEY_FILE": str(sandbox.private_key_path),
                "REGISTRY_PUBLIC_KEY_FILE": str(sandbox.public_key_path),
                "HEARTBEAT_INTERVAL_S": str(INTERVAL),
                "TASK_POLL_INTERVAL_S": "1",
                "PEER_BREAKER_RESET_S": "1",
                "REGISTRATION_BACKOFF_MAX_S": "1",
            }
        )
        with (tmp_path / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.main"],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        if not wait_up(url):
            raise AssertionError(f"{name} did not start: {(tmp_path / f'{name}.log').read_text()}")
        instance = Instance(proc, url)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        if instance.proc.poll() is None:
            instance.proc.send_signal(signal.SIGTERM)
            try:
                instance.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                instance.proc.kill()
                instance.proc.wait()


def _next(ws: Any, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next frame that matches; other traffic (mesh events) may come in between."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if wanted(frame):
            return frame
    raise AssertionError("no matching frame")


def _heartbeats(sandbox: Any) -> list[datetime]:
    token = sandbox.mint_token(droplet_id=1, permissions=["read", "admin"])
    response = httpx2.get(
        f"{sandbox.orchestrator_url}/droplets/12",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    if response.status_code != 200:
        return []
    history = response.json()["payload"]["droplet"].get("health_history_24h", [])
    return sorted(datetime.fromisoformat(h["time"]) for h in history if h["status"] == "active")


def test_conversation_continues_across_instances_and_events_cross(
    instances: Callable[[str], Instance],
) -> None:
    a, b = instances("a"), instances("b")
    proposal = httpx2.post(
        f"{a.url}/api/chat",
        timeout=30,
        json={"message": "create a build task for droplet 16, priority 2", "session_id": "roam"},
    ).json()
    assert proposal["pending_confirmation"]["tool"] == "create_task"
    on_b = httpx2.get(f"{b.url}/api/sessions/roam").json()
    assert on_b["pending_confirmation"]["tool"] == "create_task"
    assert len(on_b["history"]) == 2

    ws_url = a.url.replace("http://", "ws://") + "/ws?session_id=roam"
    with connect(ws_url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        done = httpx2.post(
            f"{b.url}/api/chat", timeout=30, json={"message": "yes", "session_id": "roam"}
        ).json()
        assert done["actions"] == [{"tool": "create_task", "status": "ok"}]
        pushed = _next(ws, lambda f: f["type"] == "message")
        assert pushed["content"] == done["response"]
        httpx2.post(
            f"{b.url}/message",
            json={
                "source": "droplet-14",
                "message_type": "event",
                "payload": {"summary": "snapshot finished", "severity": "info"},
            },
        )
        event = _next(
            ws, lambda f: f["type"] == "event" and f["event"]["summary"] == "snapshot finished"
        )
        assert event["event"]["source"] == "droplet-14"


def test_one_leader_heartbeats_and_another_takes_over_after_sigkill(
    instances: Callable[[str], Instance], quirkless_sandbox: Any
) -> None:
    a = instances("a")
    deadline = time.monotonic() + 20
    while len(_heartbeats(quirkless_sandbox)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    b = instances("b")
    b_started = datetime.now(_heartbeats(quirkless_sandbox)[-1].tzinfo)
    time.sleep(INTERVAL * 3)
    # Registration also counts as a beat on the Orchestrator: look only at the steady state.
    before = [t for t in _heartbeats(quirkless_sandbox) if t > b_started]
    gaps = [(y - x).total_seconds() for x, y in itertools.pairwise(before)]
    # One stream: beats about INTERVAL apart; a second stream would put beats much closer.
    assert gaps and min(gaps) > INTERVAL * 0.6, gaps

    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(timeout=10)
    killed_at = datetime.now(before[-1].tzinfo)
    deadline = time.monotonic() + INTERVAL * 6
    after: list[datetime] = []
    while time.monotonic() < deadline:
        after = [t for t in _heartbeats(quirkless_sandbox) if t > killed_at]
        if after:
            break
        time.sleep(0.1)
    assert after, "no instance took over the heartbeats"
    # The dead holder's lock expires at most one TTL (HEARTBEAT_INTERVAL_S) after its last
    # renewal, which was before the kill, and the other instance tries every third of a TTL
    # (app.mesh.leadership); its first beat follows at once. Counted from the kill, not from
    # the last beat: that one may have been a whole interval earlier.
    assert (after[0] - killed_at).total_seconds() <= INTERVAL * 4 / 3 + 1.0
    assert b.proc.poll() is None
    chat = httpx2.post(f"{b.url}/api/chat", json={"message": "hello"}, timeout=30)
    assert chat.status_code == 200
