from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
from structlog.testing import capture_logs

from app.domain.mesh import MeshEvent, NewTask, Task, TaskState
from app.mesh.lifecycle import (
    DropletProfile,
    InMemoryClaimedStore,
    Lifecycle,
    LifecycleTiming,
    TaskDuty,
    task_text,
)
from app.mesh.orchestrator import OrchestratorClient
from sandbox.testing import MeshHandle, start_mesh
from tests.mesh.support import (
    CountingSleep,
    Logs,
    Peers,
    droplet_row,
    peers_for,
    sandbox_post,
    set_fault,
    watching_logs,
)


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
    """The lifecycle's event sink; a test waits on it instead of polling."""

    def __init__(self) -> None:
        self.events: list[MeshEvent] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, event: MeshEvent) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def kinds(self, droplet_id: int | None = None) -> list[str]:
        return [e.kind for e in self.events if droplet_id is None or e.droplet_id == droplet_id]

    async def wait_for(
        self, kind: str, *, droplet_id: int | None = None, times: int = 1, within: float = 10.0
    ) -> MeshEvent:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: self.kinds(droplet_id).count(kind) >= times)
        return [e for e in self.events if e.kind == kind and droplet_id in (None, e.droplet_id)][
            times - 1
        ]


PROFILE = DropletProfile(
    droplet_id=12,
    name="Chat Orchestrator",
    steward="Zainab",
    endpoint="http://127.0.0.1:8012",
    capabilities=("chat", "natural_language_understanding"),
    version="1.0.0",
    env="test",
)
FAST = LifecycleTiming(
    heartbeat_interval=0.3,
    heartbeat_jitter=0.05,
    poll_interval=0.1,
    watch_interval=0.2,
    registration_backoff=(0.05, 0.3),
    feed_backoff=(0.05, 0.3),
)
_TIMING_FIELDS = {f.name for f in fields(LifecycleTiming)}


@pytest.fixture
async def running(peers: Peers) -> AsyncIterator[Any]:
    """Builds and starts lifecycles with test-speed intervals; stops them after the test."""
    started: list[Lifecycle] = []

    async def start(**overrides: Any) -> Lifecycle:
        # Flat overrides (as the tests read best) sorted into the lifecycle's value objects.
        timing = {k: overrides.pop(k) for k in _TIMING_FIELDS & overrides.keys()}
        runner = overrides.pop("task_runner", None)
        claimed = overrides.pop("claimed_store", None)
        options: dict[str, Any] = {
            "registry": peers.registry,
            "orchestrator": peers.orchestrator,
            "profile": PROFILE,
            "timing": replace(FAST, **timing),
            "tasks": TaskDuty(runner=runner, claimed=claimed) if runner is not None else None,
        }
        options.update(overrides)
        lifecycle = Lifecycle(**options)
        await lifecycle.start()
        started.append(lifecycle)
        return lifecycle

    yield start
    for lifecycle in started:
        await lifecycle.stop()


def lifecycle_tasks() -> list[str]:
    return sorted(
        t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("lifecycle-")
    )


def both_beat(logs: Logs) -> Callable[[], bool]:
    return lambda: logs.count("heartbeat_sent", ok=["orchestrator", "registry"]) > 0


async def registry_row(mesh: MeshHandle, droplet_id: int = 12) -> dict[str, Any] | None:
    async with httpx2.AsyncClient() as client:
        response = await client.get(
            f"{mesh.registry_url}/registry/droplets", headers={"X-Registry-Key": mesh.registry_key}
        )
    rows: list[dict[str, Any]] = response.json()
    return next((r for r in rows if r["id"] == f"droplet-{droplet_id}"), None)


async def test_registers_with_both_peers_heartbeats_and_goes_inactive_on_stop(
    running: Any, peers: Peers, mesh: MeshHandle
) -> None:
    with watching_logs() as logs:
        lifecycle = await running()
        await lifecycle.start()  # a second start is a no-op
        await logs.wait_for(both_beat(logs))
        events = logs.events()
    assert events.count("registry_registration_success") == 1
    # The Orchestrator's first answer to a new id is a 500; it must not show as a failure.
    assert events.count("orchestrator_registration_success") == 1
    assert "orchestrator_registration_failed" not in events
    assert lifecycle_tasks().count("lifecycle-heartbeat") == 1

    row = await registry_row(mesh)
    assert row is not None and row["role"] == "chat_orchestrator" and row["fqdn"] == "127.0.0.1"
    assert row["status"] == "healthy" and row["cpu"] is not None
    me = await droplet_row(peers.orchestrator, 12)
    assert me.status == "active"
    assert me.capabilities == ["chat", "natural_language_understanding"]
    status = lifecycle.status()
    assert status["orchestrator"].last_ok is not None and status["registry"].last_error is None

    await lifecycle.stop()
    assert lifecycle_tasks() == []
    assert (await droplet_row(peers.orchestrator, 12)).status == "inactive"


async def test_the_first_round_reports_both_registrations_and_beats_nobody_twice(
    running: Any, mesh: MeshHandle
) -> None:
    # The Registry answers 0.4 s late, so the Orchestrator registers first. Each peer is beaten
    # once, right after its registration; the first round's line lists both as beaten (not the
    # Registry as unregistered) and sends no second beat a moment after the first.
    registry = await asyncio.to_thread(mesh.count_requests, "registry")
    orchestrator = await asyncio.to_thread(mesh.count_requests, "orchestrator")
    await set_fault(mesh.registry_url, "slow", 0.4)
    with watching_logs() as logs:
        await running(heartbeat_interval=30.0)
        first = await logs.event("heartbeat_sent")
        events = logs.events()
    assert first["ok"] == ["orchestrator", "registry"], first
    assert first["unregistered"] == [] and first["failed"] == []
    assert events.index("orchestrator_registration_success") < events.index(
        "registry_registration_success"
    )
    assert registry.requests.count("POST /registry/heartbeat") == 1, registry.requests
    assert orchestrator.requests.count("POST /droplets/12/heartbeat") == 1, orchestrator.requests


async def test_the_first_round_names_a_peer_whose_registration_failed(
    running: Any, mesh: MeshHandle
) -> None:
    await asyncio.to_thread(mesh.stop_registry)
    with watching_logs() as logs:
        await running(heartbeat_interval=30.0)
        first = await logs.event("heartbeat_sent")
        events = logs.events()
    assert first["ok"] == ["orchestrator"] and first["unregistered"] == ["registry"], first
    # Sent once the Registry's first attempt had failed, not an interval later.
    assert events.index("registry_registration_failed") < events.index("heartbeat_sent")


async def test_a_round_beats_again_a_peer_beaten_a_quarter_interval_ago(
    running: Any, mesh: MeshHandle
) -> None:
    orchestrator = await asyncio.to_thread(mesh.count_requests, "orchestrator")
    now = [0.0]
    with watching_logs() as logs:
        lifecycle = await running(
            registry=None, heartbeat_interval=30.0, clock=lambda: now[0], event_feed=False
        )
        await logs.event("heartbeat_sent")
    assert orchestrator.requests.count("POST /droplets/12/heartbeat") == 1
    now[0] = 7.4  # under a quarter of the interval since the registration's beat: not again
    assert await lifecycle.heartbeat_once() == {"orchestrator": True}
    assert orchestrator.requests.count("POST /droplets/12/heartbeat") == 1
    now[0] = 7.5
    assert await lifecycle.heartbeat_once() == {"orchestrator": True}
    assert orchestrator.requests.count("POST /droplets/12/heartbeat") == 2


async def test_a_peer_down_at_start_is_registered_once_it_comes_up(
    running: Any, mesh: MeshHandle
) -> None:
    await asyncio.to_thread(mesh.stop_registry)
    sink = Sink()
    with watching_logs() as logs:
        lifecycle = await running(event_sink=sink)
        await logs.event("orchestrator_registration_success")
        failure = await logs.event("registry_registration_failed")
        unreachable = await sink.wait_for("peer_unreachable", droplet_id=1)
    status = lifecycle.status()["registry"]
    assert (status.registered, status.reachable) == (False, False)
    # After a few failed attempts the breaker opens and the wording says so; both are safe text.
    assert status.last_error is not None
    assert status.last_error.startswith(
        ("the Registry is unreachable", "the Registry is unavailable")
    )
    assert failure["reason"] == "the Registry is unreachable"
    assert unreachable.severity == "critical"

    with watching_logs() as logs:
        await asyncio.to_thread(mesh.start_registry)
        await logs.event("registry_registration_success")
    assert await registry_row(mesh) is not None
    assert "peer_recovered" in sink.kinds(1)
    assert lifecycle.status()["registry"].last_error is None


async def test_a_peer_dying_mid_run_is_reported_and_picked_up_again(
    running: Any, mesh: MeshHandle
) -> None:
    sink = Sink()
    with watching_logs() as logs:
        lifecycle = await running(event_sink=sink)
        await logs.wait_for(both_beat(logs))
        await logs.event("event_feed_connected", channel="tasks")
        await logs.event("event_feed_connected", channel="droplets")
        assert lifecycle.status()["orchestrator"].event_feed

        await asyncio.to_thread(mesh.stop_orchestrator)
        try:
            await sink.wait_for("peer_unreachable", droplet_id=10)
            await logs.wait_for(
                lambda: logs.count("event_feed_lost") + logs.count("event_feed_closed") > 0
            )
            status = lifecycle.status()
            assert not status["orchestrator"].reachable
            assert status["orchestrator"].event_feed is False
            assert status["orchestrator"].registered  # it was not forgotten, only unreachable
            assert status["registry"].reachable
        finally:
            await asyncio.to_thread(mesh.start_orchestrator)
        await sink.wait_for("peer_recovered", droplet_id=10)
        await logs.event("event_feed_connected", channel="tasks", times=2)
        await logs.event("event_feed_connected", channel="droplets", times=2)
    assert lifecycle.status()["orchestrator"].reachable
    assert lifecycle.status()["orchestrator"].event_feed
    assert sink.kinds(10) == ["peer_unreachable", "peer_recovered"]


async def test_a_peer_that_forgets_us_answers_404_and_we_register_again(
    running: Any, mesh: MeshHandle, key_dir: Path
) -> None:
    with watching_logs() as logs:
        lifecycle = await running()
        await logs.wait_for(both_beat(logs))
    registry_port = int(mesh.registry_url.rsplit(":", 1)[1])
    orchestrator_port = int(mesh.orchestrator_url.rsplit(":", 1)[1])
    # Both peers restart without their state, on the same ports and with the same keys.
    await asyncio.to_thread(mesh.stop)
    with watching_logs() as logs:
        fresh = await asyncio.to_thread(
            start_mesh,
            key_dir=key_dir,
            registry_port=registry_port,
            orchestrator_port=orchestrator_port,
        )
        try:
            await logs.event("registry_registration_success")
            await logs.event("orchestrator_registration_success")
            assert await registry_row(fresh) is not None
            unknown = {e["peer"] for e in logs.matching("heartbeat_unknown_droplet")}
            assert unknown == {"registry", "orchestrator"}
            await logs.wait_for(both_beat(logs))
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
    with watching_logs() as logs:
        await running(task_runner=runner, claimed_store=store)
        await logs.event("orchestrator_registration_success")

        async def finished(payload: dict[str, Any]) -> Task:
            created = await peers.orchestrator.create_task(
                NewTask(
                    task_type="custom",
                    title="Answer user question",
                    required_capability="chat",
                    payload=payload,
                )
            )
            task_id = created.task_id
            await logs.wait_for(
                lambda: (
                    logs.count("task_completed", task_id=task_id)
                    + logs.count("task_failed", task_id=task_id)
                    > 0
                )
            )
            return await peers.orchestrator.get_task(task_id)

        answered = await finished({"session_id": "s-1", "message": "hello"})
        by_text = await finished({"text": "hi"})
        empty = await finished({"session_id": "s-2"})
        broken = await finished({"message": "explode"})
    assert answered.status is TaskState.COMPLETED
    assert answered.result == {"answer": "echo: hello"}
    assert [h.to_status for h in answered.history][-2:] == ["in_progress", "completed"]
    assert by_text.result == {"answer": "echo: hi"}
    assert empty.status is TaskState.FAILED
    assert empty.error_message == (
        "the task payload has no 'message' or 'text' for the Chat Orchestrator to answer"
    )
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
    with watching_logs() as logs:
        await running(task_runner=runner, claimed_store=store)
        await logs.event("task_already_claimed", task_id=created.task_id)
        await logs.event("task_failed", task_id=created.task_id)
    task = await peers.orchestrator.get_task(created.task_id)
    assert task.status is TaskState.FAILED
    assert task.assigned_droplet_id == 12
    assert task.error_message == (
        "droplet 12 already took this task once (before a restart or a lost update) and never "
        "runs a task twice"
    )
    assert runs == []


@pytest.mark.parametrize("mesh_options", [{"inactive_after": 1.0}])
async def test_event_feed_turns_health_changes_into_alerts(running: Any, mesh: MeshHandle) -> None:
    sink = Sink()
    with watching_logs() as logs:
        await running(event_sink=sink, watch_interval=0)
        await logs.event("event_feed_connected", channel="droplets")
    await sandbox_post(mesh.orchestrator_url, "/_sandbox/droplets/14/stop-heartbeats")
    went_down = await sink.wait_for("droplet_health_changed", droplet_id=14)
    assert went_down.severity == "warning"
    assert went_down.summary == "Visibility Deck (droplet 14) went inactive (was active)"

    await sandbox_post(mesh.orchestrator_url, "/_sandbox/droplets/14/start-heartbeats")
    recovered = await sink.wait_for("droplet_health_changed", droplet_id=14, times=2)
    assert (recovered.severity, recovered.droplet_id) == ("info", 14)
    assert "recovered" in recovered.summary


async def test_heartbeat_misses_we_observe_ourselves_are_reported_once(
    running: Any, mesh: MeshHandle
) -> None:
    sink = Sink()
    sleep = CountingSleep()
    await sandbox_post(mesh.orchestrator_url, "/_sandbox/droplets/18/stop-heartbeats")
    await running(
        event_sink=sink,
        event_feed=False,
        watch_interval=0.1,
        heartbeat_miss_after=0.5,
        sleep=sleep,
    )
    await sink.wait_for("heartbeat_missed", droplet_id=18)
    await sleep.rounds(0.1, 3)  # more watch rounds; still active, still silent
    missed = [e for e in sink.events if e.kind == "heartbeat_missed" and e.droplet_id == 18]
    assert len(missed) == 1
    assert missed[0].severity == "warning"
    assert missed[0].summary.startswith("Voice (droplet 18) has sent no heartbeat for")


async def test_without_peers_nothing_runs_and_stop_is_safe() -> None:
    lifecycle = Lifecycle(
        registry=None,
        orchestrator=None,
        profile=replace(PROFILE, capabilities=()),
        timing=LifecycleTiming(heartbeat_interval=0.05),
    )
    await lifecycle.start()
    assert lifecycle.status() == {}
    assert await lifecycle.heartbeat_once() == {}
    assert lifecycle_tasks() == []
    await lifecycle.stop()
    await lifecycle.stop()


async def test_without_orchestrator_credentials_nothing_is_attempted_or_retried() -> None:
    orchestrator = OrchestratorClient(base_url="http://127.0.0.1:9", droplet_id=12)
    lifecycle = Lifecycle(
        registry=None,
        orchestrator=orchestrator,
        profile=replace(PROFILE, capabilities=()),
        tasks=TaskDuty(runner=lambda task: asyncio.sleep(0, "never")),
    )
    try:
        with capture_logs() as logs:
            await lifecycle.start()
        assert lifecycle_tasks() == []
        status = lifecycle.status()["orchestrator"]
        assert (status.configured, status.registered, status.reachable) == (False, False, False)
        assert status.last_error == "no credentials for the Orchestrator are configured"
        started = next(e for e in logs if e["event"] == "lifecycle_started")
        assert started["peers"] == [] and started["not_configured"] == ["orchestrator"]
        assert not any(e["event"].endswith("_registration_failed") for e in logs)
    finally:
        await lifecycle.stop()
        await orchestrator.aclose()
