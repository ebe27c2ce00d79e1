from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from app.domain.mesh import MeshEvent, NewTask, Task, TaskState
from app.mesh.lifecycle import InMemoryClaimedStore, Lifecycle, task_text
from app.mesh.orchestrator import OrchestratorClient
from sandbox.testing import MeshHandle, start_mesh
from tests.mesh.support import Peers, eventually, peers_for, sandbox_post


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture
def mesh_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def mesh(key_dir: Path, mesh_options: dict[str, Any]) -> Iterator[MeshHandle]:
    handle = start_mesh(key_dir=key_dir, router_interval=0.1, **mesh_options)
    yield handle
    handle.stop()


@pytest.fixture
async def peers(mesh: MeshHandle) -> AsyncIterator[Peers]:
    made = peers_for(mesh, timeout=1.0, failure_threshold=3, reset_timeout=0.2)
    yield made
    await made.aclose()


class Sink:
    def __init__(self) -> None:
        self.events: list[MeshEvent] = []

    async def __call__(self, event: MeshEvent) -> None:
        self.events.append(event)

    def kinds(self, droplet_id: int | None = None) -> list[str]:
        return [e.kind for e in self.events if droplet_id is None or e.droplet_id == droplet_id]


@pytest.fixture
async def running(peers: Peers) -> AsyncIterator[Any]:
    """Builds and starts lifecycles with test-speed intervals; stops them after the test."""
    started: list[Lifecycle] = []

    async def start(**overrides: Any) -> Lifecycle:
        options: dict[str, Any] = {
            "registry": peers.registry,
            "orchestrator": peers.orchestrator,
            "droplet_id": 12,
            "name": "Chat Orchestrator",
            "steward": "Zainab",
            "endpoint": "http://127.0.0.1:8012",
            "capabilities": ["chat", "natural_language_understanding"],
            "version": "1.0.0",
            "env": "test",
            "heartbeat_interval": 0.3,
            "heartbeat_jitter": 0.05,
            "poll_interval": 0.1,
            "watch_interval": 0.2,
            "registration_backoff": (0.05, 0.3),
            "feed_backoff": (0.05, 0.3),
        }
        options.update(overrides)
        lifecycle = Lifecycle(**options)
        await lifecycle.start()
        started.append(lifecycle)
        return lifecycle

    yield start
    for lifecycle in started:
        await lifecycle.stop()


def registered(lifecycle: Lifecycle, *peers: str) -> bool:
    status = lifecycle.status()
    return all(status[p].registered and status[p].reachable for p in peers)


async def registry_row(mesh: MeshHandle, droplet_id: int = 12) -> dict[str, Any] | None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{mesh.registry_url}/registry/droplets", headers={"X-Registry-Key": mesh.registry_key}
        )
    rows: list[dict[str, Any]] = response.json()
    return next((r for r in rows if r["id"] == f"droplet-{droplet_id}"), None)


async def test_registers_with_both_peers_heartbeats_and_goes_inactive_on_stop(
    running: Any, peers: Peers, mesh: MeshHandle
) -> None:
    with capture_logs() as logs:
        lifecycle = await running()
        await lifecycle.start()  # a second start is a no-op
        await eventually(lambda: registered(lifecycle, "registry", "orchestrator"), within=5)
        await eventually(
            lambda: any(
                e["event"] == "heartbeat_sent" and e["ok"] == ["orchestrator", "registry"]
                for e in logs
            ),
            within=5,
        )
    events = [e["event"] for e in logs]
    assert events.count("registry_registration_success") == 1
    # The Orchestrator's first answer to a new id is a 500; it must not show as a failure.
    assert events.count("orchestrator_registration_success") == 1
    assert "orchestrator_registration_failed" not in events
    assert [t for t in asyncio.all_tasks() if t.get_name() == "lifecycle-heartbeat"]
    assert len([t for t in asyncio.all_tasks() if t.get_name() == "lifecycle-heartbeat"]) == 1

    row = await registry_row(mesh)
    assert row is not None and row["role"] == "chat_orchestrator" and row["fqdn"] == "127.0.0.1"
    assert row["status"] == "healthy" and row["cpu"] is not None
    me = await peers.orchestrator.get_droplet(12)
    assert me.status == "active"
    assert me.capabilities == ["chat", "natural_language_understanding"]
    status = lifecycle.status()
    assert status["orchestrator"].last_ok is not None and status["registry"].last_error is None

    await lifecycle.stop()
    assert not lifecycle.running
    assert (await peers.orchestrator.get_droplet(12)).status == "inactive"


async def test_a_peer_down_at_start_is_registered_once_it_comes_up(
    running: Any, mesh: MeshHandle
) -> None:
    await asyncio.to_thread(mesh.stop_registry)
    sink = Sink()
    with capture_logs() as logs:
        lifecycle = await running(event_sink=sink)
        await eventually(lambda: registered(lifecycle, "orchestrator"), within=5)
        await eventually(
            lambda: any(e["event"] == "registry_registration_failed" for e in logs), within=5
        )
    status = lifecycle.status()["registry"]
    assert (status.registered, status.reachable) == (False, False)
    # After a few failed attempts the breaker opens and the wording says so; both are safe text.
    assert status.last_error is not None
    assert status.last_error.startswith(
        ("the Registry is unreachable", "the Registry is unavailable")
    )
    failure = next(e for e in logs if e["event"] == "registry_registration_failed")
    assert failure["reason"] == "the Registry is unreachable"
    unreachable = [e for e in lifecycle.recent_events() if e.kind == "peer_unreachable"]
    assert unreachable[0].severity == "critical" and unreachable[0].droplet_id == 1

    await asyncio.to_thread(mesh.start_registry)
    await eventually(lambda: registered(lifecycle, "registry"), within=5)
    assert await registry_row(mesh) is not None
    assert "peer_recovered" in sink.kinds(1)
    assert lifecycle.status()["registry"].last_error is None


async def test_a_peer_dying_mid_run_is_reported_and_picked_up_again(
    running: Any, mesh: MeshHandle
) -> None:
    sink = Sink()
    lifecycle = await running(event_sink=sink)
    await eventually(
        lambda: (
            registered(lifecycle, "registry", "orchestrator")
            and bool(lifecycle.status()["orchestrator"].event_feed)
        ),
        within=5,
    )

    await asyncio.to_thread(mesh.stop_orchestrator)
    try:
        await eventually(lambda: not lifecycle.status()["orchestrator"].reachable, within=5)
        status = lifecycle.status()
        assert status["orchestrator"].event_feed is False
        assert status["orchestrator"].registered  # it was not forgotten, only unreachable
        assert status["registry"].reachable
    finally:
        await asyncio.to_thread(mesh.start_orchestrator)
    await eventually(
        lambda: (
            lifecycle.status()["orchestrator"].reachable
            and bool(lifecycle.status()["orchestrator"].event_feed)
        ),
        within=5,
    )
    assert sink.kinds(10) == ["peer_unreachable", "peer_recovered"]
    assert lifecycle.recent_events(1)[0].kind == "peer_recovered"


async def test_a_peer_that_forgets_us_answers_404_and_we_register_again(
    running: Any, mesh: MeshHandle, key_dir: Path
) -> None:
    lifecycle = await running()
    await eventually(lambda: registered(lifecycle, "registry", "orchestrator"), within=5)
    registry_port = int(mesh.registry_url.rsplit(":", 1)[1])
    orchestrator_port = int(mesh.orchestrator_url.rsplit(":", 1)[1])
    # Both peers restart without their state, on the same ports and with the same keys.
    await asyncio.to_thread(mesh.stop)
    with capture_logs() as logs:
        fresh = await asyncio.to_thread(
            start_mesh,
            key_dir=key_dir,
            registry_port=registry_port,
            orchestrator_port=orchestrator_port,
        )
        try:
            await eventually(
                lambda: sum(e["event"].endswith("_registration_success") for e in logs) == 2,
                within=8,
            )
            assert await registry_row(fresh) is not None
            unknown = {e["peer"] for e in logs if e["event"] == "heartbeat_unknown_droplet"}
            assert unknown == {"registry", "orchestrator"}
            await eventually(lambda: registered(lifecycle, "registry", "orchestrator"))
        finally:
            await lifecycle.stop()
            await asyncio.to_thread(fresh.stop)


async def test_assigned_tasks_are_answered_by_the_runner(running: Any, peers: Peers) -> None:
    asked: list[str] = []

    async def runner(task: Task) -> str:
        text = task_text(task)
        assert text is not None
        asked.append(text)
        if text == "explode":
            raise RuntimeError("secret internals")
        return f"echo: {text}"

    store = InMemoryClaimedStore()
    lifecycle = await running(task_runner=runner, claimed_store=store)
    await eventually(lambda: registered(lifecycle, "orchestrator"), within=5)

    async def create(payload: dict[str, Any]) -> int:
        created = await peers.orchestrator.create_task(
            NewTask(
                task_type="custom",
                title="Answer user question",
                required_capability="chat",
                payload=payload,
            )
        )
        return created.task_id

    async def finished(task_id: int) -> Task:
        async def done() -> bool:
            task = await peers.orchestrator.get_task(task_id)
            return task.status in (TaskState.COMPLETED, TaskState.FAILED)

        await eventually(done, within=5)
        return await peers.orchestrator.get_task(task_id)

    answered = await finished(await create({"session_id": "s-1", "message": "hello"}))
    assert answered.status is TaskState.COMPLETED
    assert answered.result == {"answer": "echo: hello"}
    assert [h.to_status for h in answered.history][-2:] == ["in_progress", "completed"]

    by_text = await finished(await create({"text": "hi"}))
    assert by_text.result == {"answer": "echo: hi"}

    empty = await finished(await create({"session_id": "s-2"}))
    assert empty.status is TaskState.FAILED
    assert empty.error_message == (
        "the task payload has no 'message' or 'text' for the Chat Orchestrator to answer"
    )
    broken = await finished(await create({"message": "explode"}))
    assert broken.status is TaskState.FAILED
    assert broken.error_message == "the Chat Orchestrator failed while answering this task"
    assert asked == ["hello", "hi", "explode"]
    assert all([await store.seen(t) for t in (answered.id, by_text.id, empty.id, broken.id)])


async def test_a_task_already_claimed_before_a_restart_is_never_run_again(
    running: Any, peers: Peers
) -> None:
    runs: list[int] = []

    async def runner(task: Task) -> str:
        runs.append(task.id)
        return "again?"

    created = await peers.orchestrator.create_task(
        NewTask(
            task_type="custom",
            title="claimed earlier",
            required_capability="chat",
            payload={"message": "hello"},
        )
    )
    store = InMemoryClaimedStore()
    await store.mark(created.task_id)  # what a previous process recorded
    lifecycle = await running(task_runner=runner, claimed_store=store)
    await eventually(lambda: registered(lifecycle, "orchestrator"), within=5)

    async def refused() -> bool:
        task = await peers.orchestrator.get_task(created.task_id)
        return task.status is TaskState.FAILED

    await eventually(refused, within=5)
    task = await peers.orchestrator.get_task(created.task_id)
    assert task.assigned_droplet_id == 12
    assert task.error_message == (
        "droplet 12 already took this task once (before a restart or a lost update) and never "
        "runs a task twice"
    )
    assert runs == []


@pytest.mark.parametrize("mesh_options", [{"inactive_after": 1.0}])
async def test_event_feed_turns_health_changes_into_alerts(running: Any, mesh: MeshHandle) -> None:
    sink = Sink()
    lifecycle = await running(event_sink=sink, watch_interval=0)
    await eventually(
        lambda: bool(
            lifecycle.status().get("orchestrator") and lifecycle.status()["orchestrator"].event_feed
        ),
        within=5,
    )
    await sandbox_post(mesh.orchestrator_url, "/_sandbox/droplets/14/stop-heartbeats")
    await eventually(lambda: "droplet_health_changed" in sink.kinds(14), within=5)
    went_down = next(
        e for e in sink.events if e.kind == "droplet_health_changed" and e.droplet_id == 14
    )
    assert went_down.severity == "warning"
    assert went_down.summary == "Visibility Deck (droplet 14) went inactive (was active)"

    await sandbox_post(mesh.orchestrator_url, "/_sandbox/droplets/14/start-heartbeats")
    await eventually(lambda: sink.kinds(14).count("droplet_health_changed") == 2, within=5)
    recovered = lifecycle.recent_events(1)[0]
    assert (recovered.severity, recovered.droplet_id) == ("info", 14)
    assert "recovered" in recovered.summary
    assert lifecycle.recent_events(100) == list(reversed(sink.events))
    assert len(lifecycle.recent_events(2)) == 2


async def test_heartbeat_misses_we_observe_ourselves_are_reported_once(
    running: Any, mesh: MeshHandle
) -> None:
    sink = Sink()
    await sandbox_post(mesh.orchestrator_url, "/_sandbox/droplets/18/stop-heartbeats")
    await running(event_sink=sink, event_feed=False, watch_interval=0.1, heartbeat_miss_after=0.5)
    await eventually(lambda: "heartbeat_missed" in sink.kinds(18), within=5)
    await asyncio.sleep(0.4)  # more watch rounds; still active, still silent
    missed = [e for e in sink.events if e.kind == "heartbeat_missed" and e.droplet_id == 18]
    assert len(missed) == 1
    assert missed[0].severity == "warning"
    assert missed[0].summary.startswith("Voice (droplet 18) has sent no heartbeat for")


async def test_without_peers_nothing_runs_and_stop_is_safe() -> None:
    lifecycle = Lifecycle(
        registry=None,
        orchestrator=None,
        name="Chat Orchestrator",
        steward="Zainab",
        endpoint="http://127.0.0.1:8012",
        capabilities=[],
        version="1.0.0",
        env="test",
        heartbeat_interval=0.05,
    )
    await lifecycle.start()
    assert lifecycle.status() == {}
    assert await lifecycle.heartbeat_once() == {}
    await lifecycle.stop()
    await lifecycle.stop()
    assert lifecycle.recent_events() == []


async def test_without_orchestrator_credentials_nothing_is_attempted_or_retried() -> None:
    orchestrator = OrchestratorClient(base_url="http://127.0.0.1:9", droplet_id=12)
    lifecycle = Lifecycle(
        registry=None,
        orchestrator=orchestrator,
        name="Chat Orchestrator",
        steward="Zainab",
        endpoint="http://127.0.0.1:8012",
        capabilities=[],
        version="1.0.0",
        env="test",
        task_runner=lambda task: asyncio.sleep(0, "never"),
    )
    try:
        with capture_logs() as logs:
            await lifecycle.start()
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("lifecycle-")] == []
        status = lifecycle.status()["orchestrator"]
        assert (status.configured, status.registered, status.reachable) == (False, False, False)
        assert status.last_error == "no credentials for the Orchestrator are configured"
        started = next(e for e in logs if e["event"] == "lifecycle_started")
        assert started["peers"] == [] and started["not_configured"] == ["orchestrator"]
        assert not any(e["event"].endswith("_registration_failed") for e in logs)
    finally:
        await lifecycle.stop()
        await orchestrator.aclose()
