"""The watch engine and its notifier against the sandbox mesh (real HTTP on loopback) and a real
store: SQLite by default, PostgreSQL with TEST_STORE=postgresql (the two-instance test always
runs on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.conversation.notifications import NOTIFICATION, WatchNotifier, chat_text, voice_text
from app.conversation.watches import Firing, WatchEngine
from app.domain.identity import Identity, session_key
from app.domain.mesh import MeshEvent, NewTask, Task, TaskState
from app.domain.watch import Watch
from app.mesh.directory import DropletDirectory
from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials
from app.store.sessions import SessionStore
from app.store.watches import WatchStore
from app.utils.time import utcnow
from sandbox.testing import MeshHandle
from tests.fakes._server import ThreadedServer
from tests.mesh.support import FAST_RETRY, Peers, Ticks, no_wait, peers_for, sandbox_post
from tests.store.support import Backend, make_backend

SESSION = "nsalice00000.s1"
OWNER = "user:alice"
WORKER_ID = 41
CAPABILITY = "watch_tests"


class Clock:
    """Now, moved by hand; starts at the real time because the sandbox stamps tasks with it."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Recorder:
    """The engine's notify in tests: what fired, and a way to await the next firing."""

    firings: list[Firing] = field(default_factory=list)
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, firing: Firing) -> None:
        self.firings.append(firing)
        self.fired.set()


@dataclass
class Bus:
    events: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Backend]:
    name = "postgresql" if os.environ.get("TEST_STORE") == "postgresql" else "sqlite"
    async with make_backend(name, tmp_path) as made:
        yield made


async def _open(backend: Backend) -> SessionStore:
    store = backend.store()
    await store.open()
    await store.migrate()
    await store.get_or_create(session_id=SESSION, source="chat", owner=OWNER)
    return store


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[SessionStore]:
    store = await _open(backend)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def mesh(sandbox: MeshHandle) -> MeshHandle:
    return sandbox


@pytest.fixture
async def peers(mesh: MeshHandle) -> AsyncIterator[Peers]:
    # A breaker that never opens here: the peer-down test wants each round to try again.
    made = peers_for(mesh, failure_threshold=1000)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
async def worker(mesh: MeshHandle) -> AsyncIterator[OrchestratorClient]:
    """Droplet 41, the only one with CAPABILITY: it gets the test's tasks and moves them."""
    client = OrchestratorClient(
        base_url=mesh.orchestrator_url,
        credentials=OrchestratorCredentials(private_key_path=mesh.private_key_path),
        droplet_id=WORKER_ID,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
    )
    await client.register(
        name="Watch test worker",
        endpoint="http://127.0.0.1:9",
        steward="tests",
        capabilities=[CAPABILITY],
    )
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class Kit:
    sessions: SessionStore
    store: WatchStore
    engine: WatchEngine
    clock: Clock
    recorder: Recorder


def _kit(
    sessions: SessionStore, peers: Peers, *, notify: Any = None, clock: Clock | None = None
) -> Kit:
    clock = clock or Clock()
    recorder = Recorder()
    store = WatchStore(sessions=sessions)
    engine = WatchEngine(
        store=store,
        orchestrator=peers.orchestrator,
        # ttl 0: every look asks the peers, so a test sees what it just changed.
        directory=DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator, ttl=0),
        notify=notify or recorder,
        clock=clock,
        interval_s=5.0,
    )
    return Kit(sessions=sessions, store=store, engine=engine, clock=clock, recorder=recorder)


@pytest.fixture
def kit(sessions: SessionStore, peers: Peers) -> Kit:
    return _kit(sessions, peers)


async def _watch(kit: Kit, **fields: Any) -> Watch:
    values: dict[str, Any] = {
        "owner": OWNER,
        "session_key": SESSION,
        "event": "change",
        "created_at": kit.clock.now,
        "expires_at": kit.clock.now + timedelta(hours=24),
    }
    values.update(fields)
    return await kit.store.add(Watch(**values), limit=20)


async def _task_for_worker(peers: Peers, mesh: MeshHandle, title: str = "Rebuild index") -> int:
    created = await peers.orchestrator.create_task(
        NewTask(task_type="verify", title=title, required_capability=CAPABILITY, priority=3)
    )
    await sandbox_post(mesh.orchestrator_url, "/_sandbox/tick")  # the router runs now
    return created.task_id


async def _seeded_failed_task(peers: Peers) -> int:
    (failed,) = await peers.orchestrator.list_tasks(status=TaskState.FAILED)
    return failed.id


# ---- tasks -----------------------------------------------------------------------------------


async def test_a_task_watch_fires_within_one_check_after_the_status_changes(
    kit: Kit, peers: Peers, mesh: MeshHandle, worker: OrchestratorClient
) -> None:
    bus = Bus()
    notifier = WatchNotifier(sessions=kit.sessions, publish=bus.publish)
    kit = _kit(kit.sessions, peers, notify=notifier, clock=kit.clock)
    task_id = await _task_for_worker(peers, mesh)
    change = await _watch(kit, task_id=task_id)
    done = await _watch(kit, task_id=task_id, event="done")

    assert await kit.engine.check_once() == 0  # assigned: the baseline
    assert (await kit.store.get(change.id or 0)) == change.model_copy(
        update={"last_seen": "assigned"}
    )

    await worker.update_task(task_id, TaskState.IN_PROGRESS)
    assert await kit.engine.check_once() == 1
    await worker.update_task(task_id, TaskState.COMPLETED, result={"ok": True})
    assert await kit.engine.check_once() == 1
    assert await kit.engine.check_once() == 0  # each watch fires once
    assert await kit.store.active(owner=OWNER) == []

    texts = [
        f"🔄 **Task {task_id}** (Rebuild index) is now in progress (was assigned).",
        f"✅ **Task {task_id}** (Rebuild index) finished.",
    ]
    history = await kit.sessions.history(SESSION)
    assert [(m.role, m.text) for m in history] == [("assistant", t) for t in texts]
    assert [m.meta["watch_id"] for m in history] == [change.id, done.id]
    assert {m.meta["kind"] for m in history} == {NOTIFICATION}
    frames = [e["frame"] for e in bus.events]
    assert [e["session_key"] for e in bus.events] == [SESSION, SESSION]
    assert [(f["type"], f["session_id"], f["text"], f["seq"]) for f in frames] == [
        (NOTIFICATION, "s1", texts[0], 1),
        (NOTIFICATION, "s1", texts[1], 2),
    ]


async def test_a_task_already_failed_fires_at_the_first_check(kit: Kit, peers: Peers) -> None:
    task_id = await _seeded_failed_task(peers)
    watch = await _watch(kit, task_id=task_id, event="failed", source="voice")
    assert await kit.engine.check_once() == 1
    (firing,) = kit.recorder.firings
    assert firing.watch.id == watch.id and firing.status == "failed"
    assert chat_text(firing) == (
        f"❌ **Task {task_id}** (Deploy Dashboard v1.3) failed: Build step failed: "
        "DASHBOARD\\_API\\_URL is not set."
    )
    assert voice_text(firing) == f"Task {task_id}, Deploy Dashboard v1.3, failed."


async def test_any_task_fails_notices_only_new_failures(
    kit: Kit, peers: Peers, mesh: MeshHandle, worker: OrchestratorClient
) -> None:
    await _seeded_failed_task(peers)  # failed long before the watch: not news
    watch = await _watch(kit, event="failed")
    task_id = await _task_for_worker(peers, mesh, title="Flaky deploy")
    assert await kit.engine.check_once() == 0
    await worker.update_task(task_id, TaskState.IN_PROGRESS)
    await worker.update_task(task_id, TaskState.FAILED, error_message="disk full")
    assert await kit.engine.check_once() == 1
    (firing,) = kit.recorder.firings
    assert firing.watch.id == watch.id
    assert [t.id for t in firing.tasks] == [task_id]
    # A listing row carries no error message; the title and the state say enough.
    assert chat_text(firing) == f"❌ **Task {task_id}** (Flaky deploy) failed."
    assert voice_text(firing) == f"Task {task_id}, Flaky deploy, failed."


@pytest.fixture
def voice_droplet() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the Voice droplet: its /message endpoint and what it received."""
    received: list[dict[str, Any]] = []

    async def message(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"status": "accepted"}, status_code=202)

    server = ThreadedServer(
        Starlette(routes=[Route("/message", message, methods=["POST"])]), name="fake-voice"
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", received
    finally:
        server.stop()


@pytest.mark.parametrize("delivery", ["orchestrator", "reply"])
async def test_a_voice_watch_is_routed_back_through_the_orchestrator(
    delivery: Literal["orchestrator", "reply"],
    kit: Kit,
    peers: Peers,
    mesh: MeshHandle,
    voice_droplet: tuple[str, list[dict[str, Any]]],
) -> None:
    endpoint, received = voice_droplet
    voice = OrchestratorClient(
        base_url=mesh.orchestrator_url,
        credentials=OrchestratorCredentials(private_key_path=mesh.private_key_path),
        droplet_id=42,
        retry_policy=FAST_RETRY,
        sleep=no_wait,
    )
    try:
        await voice.register(name="Voice", endpoint=endpoint, steward="tests", capabilities=[])
    finally:
        await voice.aclose()
    notifier = WatchNotifier(
        sessions=kit.sessions,
        publish=Bus().publish,
        orchestrator=peers.orchestrator,
        route_back_delivery=delivery,
        new_trace_id=lambda: "trace-watch-1",
    )
    engine = _kit(kit.sessions, peers, notify=notifier, clock=kit.clock).engine
    task_id = await _seeded_failed_task(peers)
    await _watch(kit, task_id=task_id, event="done", source="voice", route_back="42")

    assert await engine.check_once() == 1
    spoken = f"Task {task_id}, Deploy Dashboard v1.3, failed."
    (entry,) = await kit.sessions.history(SESSION)
    assert (entry.text, entry.trace_id) == (spoken, "trace-watch-1")
    if delivery == "reply":
        assert received == []
        return
    (envelope,) = received
    assert envelope["message_type"] == "response"
    assert envelope["payload"] == {
        "response": spoken,
        "session_id": "s1",
        "trace_id": "trace-watch-1",
    }


# ---- droplets --------------------------------------------------------------------------------


async def test_a_droplet_watch_fires_on_a_pushed_event(
    kit: Kit, peers: Peers, worker: OrchestratorClient
) -> None:
    await worker.heartbeat(status="inactive")
    watch = await _watch(kit, droplet_id=WORKER_ID, event="up", source="voice")
    assert await kit.engine.check_once() == 0  # down for now
    assert (await kit.store.get(watch.id or 0)) == watch.model_copy(update={"last_seen": "down"})

    connected = asyncio.Event()
    feed = asyncio.create_task(
        peers.orchestrator.stream_events(
            "droplets", kit.engine.on_event, on_connected=connected.set
        )
    )
    try:
        async with asyncio.timeout(10):
            await connected.wait()
            await worker.heartbeat(status="active")  # the Orchestrator pushes the change
            await kit.recorder.fired.wait()
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feed
    (firing,) = kit.recorder.firings
    assert (firing.status, firing.previous) == ("up", "down")
    assert voice_text(firing) == f"Droplet {WORKER_ID} is back: it is healthy again."
    assert chat_text(firing) == (
        f"🟢 Watch test worker (droplet {WORKER_ID}) is back: it is healthy again."
    )
    assert await kit.engine.check_once() == 0


async def test_an_unverified_event_only_prompts_a_look(
    kit: Kit, worker: OrchestratorClient
) -> None:
    await _watch(kit, droplet_id=WORKER_ID, event="down")
    claim = MeshEvent(
        kind="droplet_health_changed",
        summary="says who?",
        at=kit.clock.now,
        droplet_id=WORKER_ID,
        data={"new_status": "inactive"},
        verified=False,
    )
    await kit.engine.on_event(claim)
    assert kit.recorder.firings == []  # the Orchestrator says it is active
    await worker.heartbeat(status="inactive")
    await kit.engine.on_event(claim.model_copy(update={"kind": "task_created"}))
    assert kit.recorder.firings == []  # not a health change: nothing looked at
    await kit.engine.on_event(claim)
    assert [f.status for f in kit.recorder.firings] == ["down"]


# ---- durability and instances ----------------------------------------------------------------


async def test_a_watch_survives_a_restart(
    backend: Backend, peers: Peers, mesh: MeshHandle, worker: OrchestratorClient
) -> None:
    task_id = await _task_for_worker(peers, mesh)
    first = await _open(backend)
    try:
        before = _kit(first, peers)
        await _watch(before, task_id=task_id, event="done")
        assert await before.engine.check_once() == 0
    finally:
        await first.close()

    await worker.update_task(task_id, TaskState.IN_PROGRESS)
    await worker.update_task(task_id, TaskState.COMPLETED)
    second = backend.store()
    await second.open()
    try:
        after = _kit(second, peers)
        assert await after.engine.check_once() == 1
        assert [f.task.id for f in after.recorder.firings if f.task] == [task_id]
    finally:
        await second.close()


@pytest.fixture
async def pg_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    async with make_backend("postgresql", tmp_path) as made:
        yield made


async def test_two_instances_on_postgresql_notify_exactly_once(
    pg_backend: Backend, peers: Peers
) -> None:
    task_id = await _seeded_failed_task(peers)
    bus = Bus()
    stores = [await _open(pg_backend), await _open(pg_backend)]
    try:
        kits = [
            _kit(s, peers, notify=WatchNotifier(sessions=s, publish=bus.publish)) for s in stores
        ]
        for _ in range(3):
            await _watch(kits[0], task_id=task_id, event="failed")
        fired = await asyncio.gather(*(k.engine.check_once() for k in kits))
        assert sum(fired) == 3
        history = await stores[1].history(SESSION)
        assert len(history) == 3 and len(bus.events) == 3
        assert len({m.meta["watch_id"] for m in history}) == 3
    finally:
        for s in stores:
            await s.close()


# ---- expiry, failures ------------------------------------------------------------------------


async def test_the_loop_expires_old_watches_and_keeps_checking(kit: Kit, peers: Peers) -> None:
    ticks = Ticks()
    engine = WatchEngine(
        store=kit.store,
        orchestrator=peers.orchestrator,
        directory=DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator),
        notify=kit.recorder,
        clock=kit.clock,
        interval_s=7.0,
        sleep=ticks,
    )
    task_id = await _seeded_failed_task(peers)
    short = await _watch(kit, task_id=task_id, event="done", expires_at=kit.clock.now)
    kept = await _watch(kit, task_id=task_id, event="change")
    loop = asyncio.create_task(engine.run())
    try:
        await ticks.settled()  # first round: the expired watch is gone, the other observed
        assert ticks.asked == [7.0]
        assert await kit.store.get(short.id or 0) is None
        assert await kit.store.active(owner=OWNER, now=kit.clock.now) == [
            kept.model_copy(update={"last_seen": "failed"})
        ]
        kit.clock.now += timedelta(hours=25)
        await ticks.round()
        assert await kit.store.get(kept.id or 0) is None
        assert kit.recorder.firings == []
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_a_peer_down_defers_the_watch_until_it_is_back(
    kit: Kit, peers: Peers, mesh: MeshHandle
) -> None:
    task_id = await _seeded_failed_task(peers)
    watch = await _watch(kit, task_id=task_id, event="failed")
    bulk = await _watch(kit, event="failed")
    up = await _watch(kit, droplet_id=14, event="up")
    await asyncio.to_thread(mesh.stop_orchestrator)
    try:
        assert await kit.engine.check_once() == 1  # the Registry still says 14 is healthy
        assert [f.watch.id for f in kit.recorder.firings] == [up.id]
        assert [w.id for w in await kit.store.active(owner=OWNER)] == [watch.id, bulk.id]
    finally:
        await asyncio.to_thread(mesh.start_orchestrator)
    assert await kit.engine.check_once() == 1
    assert [f.watch.id for f in kit.recorder.firings] == [up.id, watch.id]


async def test_a_notification_that_fails_is_retried_next_round(
    kit: Kit, peers: Peers, sessions: SessionStore
) -> None:
    attempts: list[int] = []

    async def flaky(firing: Firing) -> None:
        attempts.append(firing.watch.id or 0)
        if len(attempts) == 1:
            raise OSError("database unreachable")

    engine = _kit(sessions, peers, notify=flaky, clock=kit.clock).engine
    watch = await _watch(kit, task_id=await _seeded_failed_task(peers), event="done")
    assert await engine.check_once() == 0
    assert [w.id for w in await kit.store.active(owner=OWNER)] == [watch.id]
    assert await engine.check_once() == 1
    assert attempts == [watch.id, watch.id]


def test_the_interval_must_be_positive(kit: Kit, peers: Peers) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        WatchEngine(
            store=kit.store,
            orchestrator=peers.orchestrator,
            directory=DropletDirectory(registry=peers.registry, orchestrator=peers.orchestrator),
            notify=kit.recorder,
            interval_s=0,
        )


# ---- through the app's REST history and WebSocket ---------------------------------------------


def test_a_notification_reaches_the_rest_history_and_the_open_socket(client: Any) -> None:
    said = client.post("/api/chat", json={"message": "hello", "session_id": "watch-rest"})
    assert said.status_code == 200, said.text
    (listed,) = client.get("/api/sessions").json()["sessions"]
    owner = Identity.parse(listed["owner"])
    runtime = client.app.state.components
    now = utcnow()
    watch = Watch(
        id=5,
        owner=str(owner),
        session_key=session_key(owner, "watch-rest"),
        task_id=7,
        event="done",
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )
    task = Task(id=7, task_type="verify", title="Rebuild index", status=TaskState.COMPLETED)
    firing = Firing(watch=watch, status="completed", task=task)
    notifier = WatchNotifier(sessions=runtime.store, publish=runtime.bus.publish)
    text = "✅ **Task 7** (Rebuild index) finished."

    with client.websocket_connect("/ws?session_id=watch-rest") as ws:
        assert ws.receive_json()["type"] == "welcome"
        # The app's loop runs in the test client's thread; the store belongs to it.
        client.portal.call(notifier, firing)
        frame = ws.receive_json()
    assert (frame["type"], frame["session_id"], frame["text"], frame["watch_id"]) == (
        NOTIFICATION,
        "watch-rest",
        text,
        5,
    )
    history = client.get("/api/sessions/watch-rest").json()["history"]
    assert [(h["role"], h["content"]) for h in history][-1] == ("assistant", text)
    assert len(history) == 3
