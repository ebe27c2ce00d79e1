from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.domain.mesh import MeshEvent, NewTask, TaskState
from app.mesh.orchestrator import OrchestratorClient, OrchestratorCredentials, translate_event
from app.mesh.peers import PeerNotFound, PeerRejected, PeerUnavailable
from app.mesh.registry import RegistryClient
from app.mesh.resilience import CircuitOpen, CircuitState
from app.mesh.tokens import TokenUnavailable
from sandbox.testing import MeshHandle, start_mesh
from tests.conftest import KeyPair
from tests.fakes._server import ThreadedServer
from tests.mesh.support import FAST_RETRY, Clock, droplet_row, no_wait, sandbox_post, set_fault


def state_of(client: OrchestratorClient) -> CircuitState:
    return client.breaker.state


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def mesh(key_dir: Path) -> Iterator[MeshHandle]:
    handle = start_mesh(key_dir=key_dir, router_interval=0.2, deployed_registry=True)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def droplet_ids() -> Iterator[int]:
    # Each test registers its own droplet, so tests sharing the mesh never see each other.
    return itertools.count(30)


class Client:
    def __init__(self, mesh: MeshHandle, droplet_id: int, **options: Any) -> None:
        credentials: dict[str, Any] = {"private_key_path": mesh.private_key_path}
        credentials.update(options.pop("credentials", {}))
        self.orchestrator = OrchestratorClient(
            base_url=mesh.orchestrator_url,
            credentials=OrchestratorCredentials(**credentials),
            droplet_id=droplet_id,
            timeout=options.pop("timeout", 2.0),
            retry_policy=FAST_RETRY,
            sleep=no_wait,
            **options,
        )
        self.droplet_id = droplet_id

    async def register(self, *capabilities: str) -> None:
        await self.orchestrator.register(
            name=f"Test Droplet {self.droplet_id}",
            endpoint="http://127.0.0.1:9",
            steward="tests",
            capabilities=list(capabilities) or ["testing"],
        )

    async def aclose(self) -> None:
        await self.orchestrator.aclose()


@pytest.fixture
async def make(mesh: MeshHandle, droplet_ids: Iterator[int]) -> AsyncIterator[Any]:
    made: list[Client] = []

    def build(**options: Any) -> Client:
        client = Client(mesh, next(droplet_ids), **options)
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()
    await set_fault(mesh.orchestrator_url, "none")


async def test_first_registration_500_is_absorbed_and_capabilities_arrive_as_a_list(
    make: Any,
) -> None:
    client = make()
    first = await client.orchestrator.register(
        name="Chat Orchestrator",
        endpoint="http://127.0.0.1:9",
        steward="Zainab",
        capabilities=["chat", "conversation_memory"],
    )
    assert first.droplet_id == client.droplet_id
    again = await client.orchestrator.register(
        name="Chat Orchestrator",
        endpoint="http://127.0.0.1:9",
        steward="Zainab",
        capabilities=["chat", "conversation_memory"],
    )
    assert again.status == "updated"
    assert again.heartbeat_interval_seconds == 60
    droplet = await droplet_row(client.orchestrator, client.droplet_id)
    assert droplet.capabilities == ["chat", "conversation_memory"]
    assert droplet.steward == "Zainab" and droplet.status == "active"
    assert droplet.last_seen is not None and droplet.last_seen.tzinfo is UTC


async def test_heartbeat_needs_registration_first(make: Any) -> None:
    client = make()
    with pytest.raises(PeerNotFound) as caught:
        await client.orchestrator.heartbeat(status="active", metrics={"cpu_percent": 1.0})
    assert caught.value.message == (
        f"droplet {client.droplet_id} is not registered with the Orchestrator"
    )
    await client.register()
    deadline = await client.orchestrator.heartbeat(status="active", metrics={"cpu_percent": 1.0})
    assert deadline is not None and deadline.tzinfo is not None


async def test_droplet_rows_decode_their_capabilities_and_filters_apply(make: Any) -> None:
    client = make()
    deck = await droplet_row(client.orchestrator, 14)
    assert deck.name == "Visibility Deck"
    assert deck.endpoint is None  # the seeded rows' empty endpoint
    assert "monitoring" in deck.capabilities
    active = await client.orchestrator.list_droplets(status="active", capability="voice")
    assert [d.id for d in active] == [18]


async def test_task_round_trip_through_the_router(make: Any, mesh: MeshHandle) -> None:
    client = make()
    capability = f"cap_{client.droplet_id}"
    await client.register(capability)
    created = await client.orchestrator.create_task(
        NewTask(
            task_type="custom",
            title="Answer user question",
            required_capability=capability,
            priority=3,
            payload={"session_id": "s-1", "message": "hello"},
        )
    )
    assert created.status is TaskState.PENDING
    assert created.created_at is not None and created.created_at.tzinfo is UTC

    await sandbox_post(mesh.orchestrator_url, "/_sandbox/tick")  # the router runs now
    tasks = await client.orchestrator.list_tasks(
        assigned_droplet_id=client.droplet_id, status=TaskState.ASSIGNED
    )
    assert [t.id for t in tasks] == [created.task_id]
    assert await client.orchestrator.update_task(created.task_id, TaskState.IN_PROGRESS) is (
        TaskState.IN_PROGRESS
    )
    await client.orchestrator.update_task(
        created.task_id, TaskState.COMPLETED, result={"answer": "hi there"}
    )
    task = await client.orchestrator.get_task(created.task_id)
    assert task.payload == {"session_id": "s-1", "message": "hello"}
    assert task.result == {"answer": "hi there"}
    assert [h.to_status for h in task.history] == [
        "pending",
        "assigned",
        "in_progress",
        "completed",
    ]
    with pytest.raises(PeerRejected) as illegal:
        await client.orchestrator.update_task(created.task_id, TaskState.IN_PROGRESS)
    assert illegal.value.message == (
        f"task {created.task_id} is completed and cannot move to in progress"
    )
    with pytest.raises(PeerRejected) as too_late:
        await client.orchestrator.cancel_task(created.task_id)
    assert too_late.value.message == (
        f"task {created.task_id} is completed and can no longer be cancelled"
    )


async def test_cancel_missing_and_foreign_tasks(make: Any) -> None:
    owner, stranger = make(), make()
    created = await owner.orchestrator.create_task(
        NewTask(
            task_type="verify",
            title="to cancel",
            required_capability="nobody_has_this",
        )
    )
    with pytest.raises(PeerRejected) as forbidden:
        await stranger.orchestrator.cancel_task(created.task_id)
    assert "only the droplet that created" in forbidden.value.message
    with pytest.raises(PeerRejected) as not_assignee:
        await stranger.orchestrator.update_task(created.task_id, TaskState.IN_PROGRESS)
    assert not_assignee.value.status_code == 403
    cancelled = await owner.orchestrator.cancel_task(created.task_id)
    assert cancelled.status is TaskState.CANCELLED and cancelled.cancelled_at is not None
    with pytest.raises(PeerNotFound) as missing:
        await owner.orchestrator.get_task(999999)
    assert missing.value.message == "task 999999 does not exist"
    with pytest.raises(PeerNotFound):
        await owner.orchestrator.cancel_task(999999)


async def test_assigned_filter_is_honoured_even_for_unknown_droplets(make: Any) -> None:
    client = make()
    # The Orchestrator drops this filter for an id it does not know and lists every task.
    assert await client.orchestrator.list_tasks(assigned_droplet_id=client.droplet_id) == []
    assert len(await client.orchestrator.list_tasks(limit=100)) > 0


class Exchanges:
    """httpx event hooks: the requests a client really sent, and optionally one GET answer held
    back (received from the peer, not yet handed to the caller) until the test releases it."""

    def __init__(self, *, hold: str | None = None) -> None:
        self.sent: list[str] = []
        self.hold = hold
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def on_request(self, request: httpx2.Request) -> None:
        self.sent.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        if self.hold is not None and f"{request.method} {request.url.path}" == self.hold:
            self.hold = None  # the first such answer only
            self.holding.set()
            await self.release.wait()

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            timeout=5.0,
            event_hooks={"request": [self.on_request], "response": [self.on_response]},
        )


async def test_concurrent_identical_reads_share_one_exchange(make: Any) -> None:
    seen = Exchanges()
    async with seen.client() as http:
        orchestrator = make(client=http).orchestrator
        first, second, other, state, same_state = await asyncio.gather(
            orchestrator.list_tasks(limit=20),
            orchestrator.list_tasks(limit=20),
            orchestrator.list_tasks(limit=21),
            orchestrator.state(),
            orchestrator.state(),
        )
        assert first == second and len(first) > 0
        assert len(other) >= len(first)
        assert state == same_state
        assert sorted(seen.sent) == [
            "GET /state?",
            "GET /tasks?limit=20&offset=0",
            "GET /tasks?limit=21&offset=0",
        ]
        # Nothing is kept once the answer is in: the same read later asks the peer again.
        await orchestrator.list_tasks(limit=20)
        assert seen.sent.count("GET /tasks?limit=20&offset=0") == 2


async def test_a_read_after_our_write_never_joins_a_read_sent_before_it(make: Any) -> None:
    seen = Exchanges(hold="GET /tasks")
    async with seen.client() as http:
        orchestrator = make(client=http).orchestrator
        # Another turn's read: its answer (from before the write) is held back in flight.
        earlier = asyncio.create_task(orchestrator.list_tasks(limit=500))
        await asyncio.wait_for(seen.holding.wait(), 5)
        created = await orchestrator.create_task(
            NewTask(task_type="verify", title="read your writes", required_capability="nobody")
        )
        later = asyncio.create_task(orchestrator.list_tasks(limit=500))
        await asyncio.sleep(0)  # `later` reaches its read (and would join, were that allowed)
        seen.release.set()
        before, after = await earlier, await later
        assert created.task_id not in [t.id for t in before]
        assert created.task_id in [t.id for t in after]
        assert seen.sent.count("GET /tasks?limit=500&offset=0") == 2


async def test_rejected_token_is_replaced_once_and_the_call_succeeds(
    make: Any, other_keys: KeyPair
) -> None:
    foreign = other_keys.token(droplet_id=12, permissions=["read", "write"])
    client = make(credentials={"token": foreign})
    assert await client.orchestrator.list_droplets()
    minted = await client.orchestrator.tokens.get()
    assert minted != foreign
    assert set(jwt.decode(minted, options={"verify_signature": False})) == {
        "droplet_id",
        "permissions",
        "iat",
        "exp",
    }


async def test_a_token_with_only_a_bad_source_is_a_clear_rejection(
    make: Any, other_keys: KeyPair
) -> None:
    foreign = other_keys.token(droplet_id=12)
    client = make(credentials={"token": foreign, "private_key_path": None})
    with pytest.raises(PeerRejected) as caught:
        await client.orchestrator.list_tasks()
    assert caught.value.message == "the Orchestrator rejected our credentials"
    assert state_of(client.orchestrator) is CircuitState.CLOSED


async def test_tokens_refresh_before_they_expire(make: Any) -> None:
    # The clock starts in the past, so every token minted here is valid for the sandbox too.
    clock = Clock(time.time() - 60)
    client = make(credentials={"lifetime": 100}, token_refresh_ratio=0.5, token_clock=clock)
    await client.register()
    first = await client.orchestrator.tokens.get()
    clock.now += 51
    await client.orchestrator.heartbeat(status="active")
    refreshed = await client.orchestrator.tokens.get()
    assert refreshed != first
    assert jwt.decode(refreshed, options={"verify_signature": False})["iat"] == int(clock.now)


async def test_an_expired_pre_issued_token_with_no_fallback_is_unavailable(
    make: Any, mesh: MeshHandle
) -> None:
    expiring = mesh.mint_token(droplet_id=12, ttl=60)
    clock = Clock(time.time())
    client = make(credentials={"token": expiring, "private_key_path": None}, token_clock=clock)
    assert await client.orchestrator.list_droplets()
    clock.now = jwt.decode(expiring, options={"verify_signature": False})["exp"]
    with pytest.raises(TokenUnavailable):
        await client.orchestrator.list_droplets()
    # Not the Orchestrator's fault: its breaker stays closed.
    assert state_of(client.orchestrator) is CircuitState.CLOSED


async def test_orchestrator_token_endpoint_source(key_dir: Path) -> None:
    handle = await asyncio.to_thread(
        start_mesh, key_dir=key_dir, seed=False, auth_secret="orch-secret"
    )
    # The secret is the only credential: the call works only if /auth/token issued the token.
    client = OrchestratorClient(
        base_url=handle.orchestrator_url,
        credentials=OrchestratorCredentials(secret="orch-secret"),
    )
    try:
        assert [d.id for d in await client.list_droplets()] == [10]
    finally:
        await client.aclose()
        await asyncio.to_thread(handle.stop)


async def test_registry_tokens_carry_aud_and_the_orchestrator_refuses_them(
    mesh: MeshHandle,
) -> None:
    registry = RegistryClient(base_url=mesh.registry_url, api_key=mesh.registry_key)
    client = OrchestratorClient(
        base_url=mesh.orchestrator_url, credentials=OrchestratorCredentials(registry=registry)
    )
    try:
        with pytest.raises(PeerRejected) as caught:
            await client.list_droplets()
        assert caught.value.message == "the Orchestrator rejected our credentials"
        assert state_of(client) is CircuitState.CLOSED
    finally:
        await client.aclose()
        await registry.aclose()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error500", "the Orchestrator failed to process the request"),
        ("garbage", "the Orchestrator answered with something unreadable"),
        ("drop", "the connection to the Orchestrator broke off"),
    ],
)
async def test_faults_never_leak_upstream_bodies(
    make: Any, mesh: MeshHandle, mode: str, message: str
) -> None:
    client = make()
    await set_fault(mesh.orchestrator_url, mode)
    with pytest.raises(PeerUnavailable) as caught:
        await client.orchestrator.list_tasks()
    assert caught.value.message == message
    assert await client.orchestrator.health() is False


async def test_circuit_opens_while_the_orchestrator_is_down_and_closes_after(
    make: Any, mesh: MeshHandle
) -> None:
    clock = Clock()
    client = make(failure_threshold=2, reset_timeout=30.0, clock=clock)
    await client.orchestrator.list_droplets()  # token minted, connection warm
    await asyncio.to_thread(mesh.stop_orchestrator)
    try:
        with pytest.raises(PeerUnavailable) as down:
            await client.orchestrator.list_droplets()
        assert down.value.message == "the Orchestrator is unreachable"
        assert state_of(client.orchestrator) is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            await client.orchestrator.create_task(NewTask(task_type="verify", title="x"))
    finally:
        await asyncio.to_thread(mesh.start_orchestrator)
    clock.now += 30.0
    assert state_of(client.orchestrator) is CircuitState.HALF_OPEN
    assert await client.orchestrator.health() is True
    assert await client.orchestrator.list_droplets()
    assert state_of(client.orchestrator) is CircuitState.CLOSED


async def test_state_and_health(make: Any) -> None:
    client = make()
    state = await client.orchestrator.state()
    assert state.droplets_total is not None and state.droplets_total >= 6
    assert state.tasks_pending is not None
    assert await client.orchestrator.health() is True


async def test_send_relays_to_a_live_droplet_and_reports_dead_ones(make: Any) -> None:
    received: list[dict[str, Any]] = []

    async def message(request: Request) -> JSONResponse:
        received.append({"headers": dict(request.headers), "body": await request.json()})
        return JSONResponse({"status": "accepted"})

    target_server = ThreadedServer(
        Starlette(routes=[Route("/message", message, methods=["POST"])]), name="fake-target"
    )
    await asyncio.to_thread(target_server.start)
    # A threshold of one: a single failure blamed on the Orchestrator would open its breaker.
    target, sender = make(), make(failure_threshold=1)
    try:
        await target.orchestrator.register(
            name="Target",
            endpoint=f"http://127.0.0.1:{target_server.port}",
            steward="tests",
            capabilities=["testing"],
        )
        receipt = await sender.orchestrator.send(target.droplet_id, "event", {"hello": 1})
        assert receipt.delivered and receipt.target_name == "Target"
        assert received[0]["body"]["payload"] == {"hello": 1}
        assert "authorization" not in received[0]["headers"]

        with pytest.raises(PeerNotFound):
            await sender.orchestrator.send(999, "event", {"hello": 1})
        with pytest.raises(PeerUnavailable) as dead:
            await sender.orchestrator.send(14, "event", {"hello": 1})
        assert dead.value.message == (
            "Visibility Deck (droplet 14) could not be reached through the Orchestrator"
        )
        assert state_of(sender.orchestrator) is CircuitState.CLOSED
    finally:
        await asyncio.to_thread(target_server.stop)


async def test_task_feed_delivers_task_created(make: Any, other_keys: KeyPair) -> None:
    client = make()
    events: list[MeshEvent] = []
    connected = asyncio.Event()
    arrived = asyncio.Event()

    async def collect(event: MeshEvent) -> None:
        events.append(event)
        arrived.set()

    stream = asyncio.create_task(
        client.orchestrator.stream_events("tasks", collect, on_connected=connected.set)
    )
    try:
        await asyncio.wait_for(connected.wait(), 5)
        created = await client.orchestrator.create_task(
            NewTask(
                task_type="verify",
                title="Verify Droplet #14",
                required_capability="nobody_has_this",
            )
        )
        async with asyncio.timeout(5):
            while not any(e.task_id == created.task_id for e in events):
                await arrived.wait()
                arrived.clear()
        event = next(e for e in events if e.task_id == created.task_id)
        assert event.kind == "task_created" and event.severity == "info"
        assert event.summary == f"task {created.task_id} (Verify Droplet #14) created"
    finally:
        stream.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stream

    refused = make(credentials={"token": other_keys.token(droplet_id=12), "private_key_path": None})
    with pytest.raises(PeerRejected):
        await refused.orchestrator.stream_events("droplets", collect)


def test_health_change_events_get_severities() -> None:
    def frame(**payload: Any) -> str:
        return json.dumps(
            {
                "udc_version": "1.0",
                "message_type": "event",
                "timestamp": "2026-11-27T16:10:22.899844",
                "payload": {"event": "droplet_health_changed", **payload},
            }
        )

    down = translate_event(
        frame(droplet_id=14, old_status="active", new_status="inactive"), channel="droplets"
    )
    broken = translate_event(
        frame(droplet_id=18, old_status="active", new_status="error"), channel="droplets"
    )
    back = translate_event(
        frame(droplet_id=14, old_status="inactive", new_status="active"), channel="droplets"
    )
    assert down is not None and broken is not None and back is not None
    assert (down.severity, down.summary) == (
        "warning",
        "Visibility Deck (droplet 14) went inactive (was active)",
    )
    assert down.at.tzinfo is UTC
    assert broken.severity == "critical"
    assert (back.severity, back.summary) == (
        "info",
        "Visibility Deck (droplet 14) recovered: now active (was inactive)",
    )
    assert translate_event(json.dumps({"payload": {"event": "ping"}}), channel="tasks") is None
    assert translate_event("not json", channel="tasks") is None


# -- authentication, on a scripted transport --------------------------------------------------


class Slept(list[float]):
    """An injected sleep that only records how long the adapter wanted to wait."""

    async def append_async(self, seconds: float) -> None:
        self.append(seconds)


class Scripted:
    """An Orchestrator on `httpx2.MockTransport`: accepts tokens signed by `keys`, else 401."""

    def __init__(self, keys: KeyPair) -> None:
        self.keys = keys
        self.seen: list[tuple[str, str, str | None]] = []
        self.slept = Slept()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        authorization = request.headers.get("authorization")
        self.seen.append((request.method, request.url.path, authorization))
        if request.url.path == "/state":
            return httpx2.Response(200, json={"payload": {"cpu_percent": 1.0}, "message_type": "x"})
        try:
            token = (authorization or "").removeprefix("Bearer ")
            jwt.decode(token, self.keys.public_pem, algorithms=["RS256"])
        except jwt.PyJWTError:
            return httpx2.Response(401, json={"detail": "Could not validate credentials"})
        created = {"task_id": 7, "status": "pending", "trace_id": "t"}
        return httpx2.Response(201, json={"message_type": "response", "payload": created})

    def client(self, **given: Any) -> OrchestratorClient:
        return OrchestratorClient(
            base_url="http://orchestrator.test",
            credentials=OrchestratorCredentials(**given),
            client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)),
            failure_threshold=1,
            sleep=self.slept.append_async,
        )


async def test_a_401_gets_one_fresh_token_and_the_post_is_sent_once_more(
    keys: KeyPair, other_keys: KeyPair, tmp_path: Path
) -> None:
    key_file = tmp_path / "orchestrator_private_key.pem"
    key_file.write_bytes(keys.private_pem)
    foreign = other_keys.token(droplet_id=12)
    orchestrator = Scripted(keys)
    client = orchestrator.client(token=foreign, private_key_path=key_file)
    created = await client.create_task(NewTask(task_type="verify", title="x"))
    assert created.task_id == 7
    posts = [auth for method, _, auth in orchestrator.seen if method == "POST"]
    assert len(posts) == 2 and posts[0] == f"Bearer {foreign}" and posts[1] != posts[0]


async def test_credentials_refused_twice_are_a_rejection_not_an_outage(
    keys: KeyPair, other_keys: KeyPair
) -> None:
    orchestrator = Scripted(keys)
    client = orchestrator.client(token=other_keys.token(droplet_id=12))
    with pytest.raises(PeerRejected) as caught:
        await client.create_task(NewTask(task_type="verify", title="x"))
    assert caught.value.message == "the Orchestrator rejected our credentials"
    assert len(orchestrator.seen) == 2
    assert state_of(client) is CircuitState.CLOSED


async def test_no_token_at_all_never_reaches_the_orchestrator_nor_opens_its_breaker(
    keys: KeyPair,
) -> None:
    orchestrator = Scripted(keys)
    client = orchestrator.client()
    assert not client.tokens.configured
    for _ in range(3):
        with pytest.raises(TokenUnavailable):
            await client.list_tasks()
    assert orchestrator.seen == []
    assert len(orchestrator.slept) == 6  # each read still tried three times (an issuer may blip)
    assert state_of(client) is CircuitState.CLOSED
    # Unauthenticated calls still go through, without any Authorization header.
    assert (await client.state()).cpu_percent == 1.0
    assert orchestrator.seen == [("GET", "/state", None)]
