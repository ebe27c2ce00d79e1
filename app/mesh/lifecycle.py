"""Droplet 12's life in the mesh: registration, heartbeats, assigned tasks, the event feed.

Each peer is handled separately because they do not sync: being registered with one says
nothing about the other, and either may be down while the other works. Everything runs in
background loops started by `start()` and awaited by `stop()`; nothing here runs at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import random
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import structlog
from pydantic import BaseModel
from tenacity import RetryCallState

from app.domain.mesh import MeshEvent, Task, TaskState
from app.mesh.catalogue import display_name
from app.mesh.orchestrator import EventChannel, OrchestratorClient
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.mesh.registry import RegistryClient
from app.ops.host_metrics import HostMetrics, HostSample
from app.utils.retry import RetryPolicy, Sleep, any_failure, restart_backoff, retrying
from app.utils.time import utcnow

log = structlog.get_logger(__name__)

PeerName = Literal["registry", "orchestrator"]
TaskRunner = Callable[[Task], Awaitable[str]]
EventSink = Callable[[MeshEvent], Awaitable[None]]

_EVENT_SOURCE = "chat_orchestrator"
_REPORT_ATTEMPTS = 3
_REPORT_BACKOFF = (0.5, 5.0)
_SHUTDOWN_REPORT_TIMEOUT = 2.0


class ClaimedStore(Protocol):
    """Ids of tasks this droplet has claimed, kept across restarts so none is run twice."""

    async def seen(self, task_id: int) -> bool: ...

    async def mark(self, task_id: int) -> None: ...


class InMemoryClaimedStore:
    """Bounded, process-local `ClaimedStore` (tests, or when no database is wired in)."""

    def __init__(self, *, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    async def seen(self, task_id: int) -> bool:
        return task_id in self._ids

    async def mark(self, task_id: int) -> None:
        self._ids[task_id] = None
        self._ids.move_to_end(task_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class PeerStatus(BaseModel):
    configured: bool = True
    """False: the deployment gave us no way to talk to this peer; nothing is attempted."""
    reachable: bool = False
    registered: bool = False
    last_ok: datetime | None = None
    last_error: str | None = None
    """A safe message, never an upstream body."""
    event_feed: bool | None = None
    """Orchestrator only: whether both event channels are connected."""


def task_text(task: Task) -> str | None:
    """What an assigned task asks us to answer: `payload.message`, else `payload.text`."""
    payload = task.payload or {}
    for key in ("message", "text"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DropletProfile:
    """Who this droplet says it is to the Registry and the Orchestrator."""

    droplet_id: int = 12
    name: str
    steward: str
    endpoint: str
    capabilities: tuple[str, ...]
    version: str
    env: str
    role: str = "chat_orchestrator"
    fqdn: str | None = None
    """None: the endpoint's host name."""
    ip: str | None = None
    """None: resolved from the endpoint's host when first needed."""
    cost_hour: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleTiming:
    """How often each loop runs and how long it backs off (seconds)."""

    heartbeat_interval: float = 60.0
    heartbeat_jitter: float | None = None
    """None: a tenth of the interval, at most 5 s, so replicas restarted together spread out."""
    poll_interval: float = 5.0
    watch_interval: float = 30.0
    heartbeat_miss_after: float = 90.0
    registration_backoff: tuple[float, float] = (1.0, 60.0)
    feed_backoff: tuple[float, float] = (1.0, 30.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDuty:
    """Answering tasks the Orchestrator assigns to this droplet (absent: no task polling)."""

    runner: TaskRunner
    timeout: float = 120.0
    max_concurrent: int = 4
    claimed: ClaimedStore | None = None
    """None: an in-memory record, which a restart forgets."""


class Lifecycle:
    def __init__(
        self,
        *,
        registry: RegistryClient | None,
        orchestrator: OrchestratorClient | None,
        profile: DropletProfile,
        timing: LifecycleTiming | None = None,
        tasks: TaskDuty | None = None,
        event_feed: bool = True,
        event_sink: EventSink | None = None,
        host_metrics: HostMetrics | None = None,
        extra_metrics: Callable[[], Mapping[str, float]] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        timing = timing or LifecycleTiming()
        self._registry = registry
        self._orchestrator = orchestrator
        self._droplet_id = profile.droplet_id
        self._name = profile.name
        self._steward = profile.steward
        self._endpoint = profile.endpoint
        self._capabilities = list(profile.capabilities)
        self._version = profile.version
        self._env = profile.env
        self._role = profile.role
        self._fqdn = (
            profile.fqdn or urlparse(profile.endpoint).hostname or f"drop{profile.droplet_id}.local"
        )
        self._ip = profile.ip
        self._cost_hour = profile.cost_hour
        self._heartbeat_interval = timing.heartbeat_interval
        self._heartbeat_jitter = (
            min(5.0, timing.heartbeat_interval * 0.1)
            if timing.heartbeat_jitter is None
            else timing.heartbeat_jitter
        )
        self._poll_interval = timing.poll_interval
        self._watch_interval = timing.watch_interval
        self._miss_after = timing.heartbeat_miss_after
        self._registration_retry = _until_it_works(*timing.registration_backoff)
        self._feed_retry = _until_it_works(*timing.feed_backoff)
        self._event_feed_enabled = event_feed
        self._task_runner = tasks.runner if tasks is not None else None
        self._task_timeout = tasks.timeout if tasks is not None else 120.0
        self._task_slots = asyncio.Semaphore(tasks.max_concurrent if tasks is not None else 1)
        claimed = tasks.claimed if tasks is not None else None
        self._claimed: ClaimedStore = claimed or InMemoryClaimedStore()
        self._event_sink = event_sink
        self._host_metrics = host_metrics
        self._extra_metrics = extra_metrics
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

        self._peers: dict[PeerName, PeerStatus] = {}
        self._unconfigured: dict[PeerName, PeerStatus] = {}
        self._reachable_known: dict[PeerName, bool] = {}
        self._needs_registration: dict[PeerName, asyncio.Event] = {}
        self._any_registered = asyncio.Event()
        # Set once a peer's first registration attempt has ended, however it ended: the first
        # heartbeat round waits for all of them (see _heartbeat_loop).
        self._first_attempt_over: dict[PeerName, asyncio.Event] = {}
        # When each peer last took a heartbeat (the clock's reading), for heartbeat_once.
        self._beaten_at: dict[PeerName, float] = {}
        if orchestrator is not None and not orchestrator.tokens.configured:
            # Without credentials there is nothing to register, beat or poll with, and no
            # point retrying until the configuration changes: a state, not a failure.
            self._unconfigured["orchestrator"] = PeerStatus(
                configured=False, last_error="no credentials for the Orchestrator are configured"
            )
            self._orchestrator = orchestrator = None
        for peer, client in (("registry", registry), ("orchestrator", orchestrator)):
            if client is not None:
                self._peers[peer] = PeerStatus()  # type: ignore[index]
        self._feed_connected: dict[EventChannel, bool] = {"tasks": False, "droplets": False}
        self._loops: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._in_flight: set[int] = set()
        self._flagged_missing: set[int] = set()

    # -- public -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every loop once; calling it again while running does nothing."""
        if self._loops:
            return
        if self._host_metrics is None:
            self._host_metrics = await asyncio.to_thread(HostMetrics)
        for peer in self._peers:
            event = asyncio.Event()
            event.set()
            self._needs_registration[peer] = event
            self._first_attempt_over[peer] = asyncio.Event()
            self._spawn(self._registration_loop(peer), f"register-{peer}")
        if self._peers:
            self._spawn(self._heartbeat_loop(), "heartbeat")
        if self._orchestrator is not None:
            if self._task_runner is not None:
                self._spawn(self._poll_loop(), "task-poll")
            if self._event_feed_enabled:
                channels: tuple[EventChannel, ...] = ("tasks", "droplets")
                for channel in channels:
                    self._spawn(self._feed_loop(channel), f"feed-{channel}")
            if self._watch_interval > 0:
                self._spawn(self._watch_loop(), "heartbeat-watch")
        log.info(
            "lifecycle_started",
            droplet_id=self._droplet_id,
            peers=sorted(self._peers),
            not_configured=sorted(self._unconfigured),
        )

    async def stop(self) -> None:
        """Stop every loop, wind down running tasks, then tell the Orchestrator we are
        inactive. The peer clients stay open: their owner closes them."""
        loops, self._loops = self._loops, []
        handlers = list(self._handlers)
        for task in (*loops, *handlers):
            task.cancel()
        await asyncio.gather(*loops, *handlers, return_exceptions=True)
        self._feed_connected = {"tasks": False, "droplets": False}
        orchestrator = self._peers.get("orchestrator")
        if self._orchestrator is not None and orchestrator is not None and orchestrator.registered:
            try:
                async with asyncio.timeout(_SHUTDOWN_REPORT_TIMEOUT):
                    await self._orchestrator.heartbeat(
                        status="inactive", metrics=await self._orchestrator_metrics()
                    )
                log.info("final_heartbeat_sent", status="inactive")
            except (PeerError, TimeoutError) as exc:
                log.warning("final_heartbeat_failed", reason=_reason(exc))
        if loops:
            log.info("lifecycle_stopped", droplet_id=self._droplet_id)

    def status(self) -> dict[str, PeerStatus]:
        """Per-peer snapshot for /health and /dependencies; cheap, no I/O."""
        snapshot: dict[str, PeerStatus] = {
            peer: state.model_copy() for peer, state in (self._peers | self._unconfigured).items()
        }
        if "orchestrator" in snapshot and self._event_feed_enabled:
            snapshot["orchestrator"].event_feed = all(self._feed_connected.values())
        return snapshot

    async def heartbeat_once(self) -> dict[str, bool]:
        """One heartbeat round to every peer we are registered with: peer -> delivered.

        A peer that took a heartbeat less than a quarter of an interval ago (the one right after
        its registration) counts as beaten and is not beaten again: two beats a moment apart
        tell the peer nothing. Skipping one puts at most 1.25 intervals between two beats."""
        registered = [p for p, s in self._peers.items() if s.registered]
        fresh_after = self._clock() - self._heartbeat_interval / 4
        peers = [p for p in registered if self._beaten_at.get(p, -math.inf) <= fresh_after]
        results: list[Literal["ok", "failed", "unknown"]] = []
        if peers:
            sample = await self._sample()
            results = await asyncio.gather(*(self._heartbeat_peer(p, sample) for p in peers))
        outcome: dict[str, bool] = dict.fromkeys(registered, True)
        outcome.update((peer, result == "ok") for peer, result in zip(peers, results, strict=True))
        unregistered = sorted(p for p in self._peers if p not in outcome)
        log.info(
            "heartbeat_sent",
            ok=sorted(p for p, v in outcome.items() if v),
            failed=sorted(p for p, v in outcome.items() if not v),
            unregistered=unregistered,
        )
        return outcome | dict.fromkeys(unregistered, False)

    # -- loops --------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._loops.append(asyncio.create_task(coro, name=f"lifecycle-{name}"))

    async def _registration_loop(self, peer: PeerName) -> None:
        needed = self._needs_registration[peer]
        while True:
            await needed.wait()
            needed.clear()
            async for attempt in retrying(
                self._registration_retry, retry=any_failure, sleep=self._sleep
            ):
                with attempt:
                    try:
                        await self._register_and_beat(peer)
                    finally:
                        self._first_attempt_over[peer].set()

    async def _register_and_beat(self, peer: PeerName) -> None:
        """One registration attempt; raises (so the loop backs off) when it did not hold."""
        try:
            await self._register(peer)
        except PeerError as exc:
            await self._record(peer, exc)
            log.warning(f"{peer}_registration_failed", reason=exc.message)
            raise
        except Exception as exc:
            log.exception(f"{peer}_registration_failed", reason=type(exc).__name__)
            raise
        self._peers[peer].registered = True
        self._any_registered.set()
        await self._record(peer, None)
        log.info(f"{peer}_registration_success", droplet_id=self._droplet_id)
        # Tell the peer our figures now rather than a full interval later. A peer that forgets us
        # at once fails this attempt, so registering again backs off instead of spinning.
        try:
            beat = await self._heartbeat_peer(peer, await self._sample(), re_register=False)
        except Exception as exc:
            log.exception("heartbeat_round_failed", reason=type(exc).__name__)
            return
        if beat == "unknown":
            raise PeerNotFound(peer, "the peer forgot us right after registering")

    async def _register(self, peer: PeerName) -> None:
        if peer == "registry":
            assert self._registry is not None
            await self._registry.register(
                droplet_id=self._droplet_id,
                name=self._name,
                fqdn=self._fqdn,
                ip=await self._our_ip(),
                role=self._role,
                env=self._env,
                version=self._version,
                cost_hour=self._cost_hour,
            )
        else:
            assert self._orchestrator is not None
            await self._orchestrator.register(
                name=self._name,
                endpoint=self._endpoint,
                steward=self._steward,
                capabilities=self._capabilities,
            )

    async def _heartbeat_loop(self) -> None:
        # Each peer is beaten as soon as it has registered (_register_and_beat), so the mesh
        # sees droplet 12 alive at once. The first round, whose `heartbeat_sent` line is the one
        # an operator greps for, waits until every peer's first registration attempt is over, so
        # it does not list the slower peer as unregistered a moment before that peer's
        # registration_success line; a peer beaten a moment before is not beaten again (see
        # heartbeat_once). A peer whose attempt failed is listed as unregistered; none holds the
        # round past one interval.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._heartbeat_interval):
                await self._any_registered.wait()
                for over in self._first_attempt_over.values():
                    await over.wait()
        while True:
            try:
                await self.heartbeat_once()
            except Exception as exc:
                log.exception("heartbeat_round_failed", reason=type(exc).__name__)
            await self._sleep(
                self._heartbeat_interval + self._rng.uniform(0.0, self._heartbeat_jitter)
            )

    async def _heartbeat_peer(
        self, peer: PeerName, sample: HostSample, *, re_register: bool = True
    ) -> Literal["ok", "failed", "unknown"]:
        """One heartbeat to `peer`. "unknown": the peer no longer knows us; unless the caller
        is registering right now, that starts a new registration."""
        try:
            if peer == "registry":
                assert self._registry is not None
                await self._registry.heartbeat(
                    droplet_id=self._droplet_id,
                    cpu=sample.cpu_percent,
                    mem=sample.mem_percent,
                    disk=sample.disk_percent,
                )
            else:
                assert self._orchestrator is not None
                await self._orchestrator.heartbeat(
                    status="active", metrics=self._orchestrator_figures(sample)
                )
        except PeerNotFound as exc:
            await self._record(peer, exc)
            log.warning("heartbeat_unknown_droplet", peer=peer)
            self._peers[peer].registered = False
            if re_register:
                self._needs_registration[peer].set()
            return "unknown"
        except PeerError as exc:
            await self._record(peer, exc)
            log.warning("heartbeat_failed", peer=peer, reason=exc.message)
            return "failed"
        self._beaten_at[peer] = self._clock()
        await self._record(peer, None)
        return "ok"

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self._poll_once()
            except PeerError as exc:
                await self._record("orchestrator", exc)
                log.info("task_poll_failed", reason=exc.message)
            except Exception as exc:
                log.exception("task_poll_crashed", reason=type(exc).__name__)
            await self._sleep(self._poll_interval)

    async def _poll_once(self) -> None:
        assert self._orchestrator is not None
        if not self._peers["orchestrator"].registered:
            return  # nothing can be assigned to a droplet the Orchestrator does not know
        tasks = await self._orchestrator.list_tasks(
            assigned_droplet_id=self._droplet_id,
            status=TaskState.ASSIGNED,
            limit=50,
        )
        await self._record("orchestrator", None)
        for task in sorted(tasks, key=lambda t: (t.priority, t.id)):
            if task.id in self._in_flight or task.assigned_droplet_id != self._droplet_id:
                continue
            if self._task_slots.locked():
                break  # the rest waits for the next poll
            seen = await self._claimed.seen(task.id)
            await self._task_slots.acquire()
            self._in_flight.add(task.id)
            work = self._refuse_task(task.id) if seen else self._handle_task(task.id)
            handler = asyncio.create_task(work, name=f"lifecycle-task-{task.id}")
            self._handlers.add(handler)
            handler.add_done_callback(self._handler_done(task.id))

    def _handler_done(self, task_id: int) -> Callable[[asyncio.Task[None]], None]:
        def done(handler: asyncio.Task[None]) -> None:
            self._handlers.discard(handler)
            self._in_flight.discard(task_id)
            self._task_slots.release()

        return done

    async def _refuse_task(self, task_id: int) -> None:
        """A task we claimed before (then crashed, or lost the answer) came back: fail it
        rather than run it twice or leave it stuck in `assigned`."""
        assert self._orchestrator is not None
        log.warning("task_already_claimed", task_id=task_id)
        try:
            await self._orchestrator.update_task(task_id, TaskState.IN_PROGRESS)
        except PeerError as exc:
            log.info("task_claim_lost", task_id=task_id, reason=exc.message)
            return
        await self._report(
            task_id,
            TaskState.FAILED,
            error_message=(
                f"droplet {self._droplet_id} already took this task once (before a restart or a "
                "lost update) and never runs a task twice"
            ),
        )

    async def _handle_task(self, task_id: int) -> None:
        assert self._orchestrator is not None and self._task_runner is not None
        try:
            task = await self._orchestrator.get_task(task_id)
        except PeerError as exc:
            log.info("task_fetch_failed", task_id=task_id, reason=exc.message)
            return
        if task.status is not TaskState.ASSIGNED or task.assigned_droplet_id != self._droplet_id:
            return
        try:
            # The in_progress transition is the claim: only the assignee may make it, once.
            await self._orchestrator.update_task(task_id, TaskState.IN_PROGRESS)
        except (PeerRejected, PeerNotFound) as exc:
            log.info("task_claim_lost", task_id=task_id, reason=exc.message)
            return
        except PeerUnavailable as exc:
            log.info("task_claim_failed", task_id=task_id, reason=exc.message)
            return
        await self._claimed.mark(task_id)
        log.info("task_claimed", task_id=task_id, task_type=task.task_type)

        text = task_text(task)
        if text is None:
            await self._report(
                task_id,
                TaskState.FAILED,
                error_message=(
                    "the task payload has no 'message' or 'text' "
                    "for the Chat Orchestrator to answer"
                ),
            )
            return
        try:
            async with asyncio.timeout(self._task_timeout):
                answer = await self._task_runner(task)
        except TimeoutError:
            await self._report(
                task_id,
                TaskState.FAILED,
                error_message=(
                    f"the Chat Orchestrator did not answer within {self._task_timeout:g} s"
                ),
            )
        except asyncio.CancelledError:
            with contextlib.suppress(PeerError, TimeoutError):
                async with asyncio.timeout(_SHUTDOWN_REPORT_TIMEOUT):
                    await self._report(
                        task_id,
                        TaskState.FAILED,
                        error_message=("the Chat Orchestrator shut down before answering"),
                        attempts=1,
                    )
            raise
        except PeerError as exc:
            await self._report(
                task_id, TaskState.FAILED, error_message=f"could not answer: {exc.message}"
            )
        except Exception as exc:
            log.exception("task_runner_failed", task_id=task_id, reason=type(exc).__name__)
            await self._report(
                task_id,
                TaskState.FAILED,
                error_message=("the Chat Orchestrator failed while answering this task"),
            )
        else:
            await self._report(task_id, TaskState.COMPLETED, result={"answer": answer})

    async def _report(
        self,
        task_id: int,
        status: TaskState,
        *,
        result: Mapping[str, Any] | None = None,
        error_message: str | None = None,
        attempts: int = _REPORT_ATTEMPTS,
    ) -> None:
        assert self._orchestrator is not None
        orchestrator = self._orchestrator
        base, cap = _REPORT_BACKOFF
        policy = RetryPolicy(attempts=attempts, base_delay=base, max_delay=cap, min_delay=base / 2)
        try:
            async for attempt in retrying(policy, retry=_unanswered, sleep=self._sleep):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    try:
                        await orchestrator.update_task(
                            task_id, status, result=result, error_message=error_message
                        )
                    except PeerRejected:
                        # After a lost answer the first PATCH may have landed; a repeat is then
                        # illegal, which means the report is in.
                        if number == 1:
                            raise
                    except PeerError as exc:
                        log.warning(
                            "task_report_failed",
                            task_id=task_id,
                            status=status.value,
                            attempt=number,
                            reason=exc.message,
                        )
                        raise
        except PeerRejected as exc:
            log.warning(
                "task_report_rejected", task_id=task_id, status=status.value, reason=exc.message
            )
            return
        except PeerError:
            return  # logged above, attempt by attempt
        log.info(f"task_{status.value}", task_id=task_id)

    async def _feed_loop(self, channel: EventChannel) -> None:
        async for attempt in retrying(self._feed_retry, retry=any_failure, sleep=self._sleep):
            with attempt:
                await self._follow_feed(channel, attempt.retry_state)

    async def _follow_feed(self, channel: EventChannel, retry_state: RetryCallState) -> None:
        """One connection to the feed, followed until it ends. Always raises, so the loop waits
        before connecting again: a feed that drops at once must not make us spin."""
        assert self._orchestrator is not None

        def connected() -> None:
            self._feed_connected[channel] = True
            # Getting through ends an outage: the next one starts with short waits again.
            restart_backoff(retry_state)

        try:
            await self._orchestrator.stream_events(
                channel, self._on_feed_event, on_connected=connected
            )
            log.info("event_feed_closed", channel=channel)
        except PeerError as exc:
            log.info("event_feed_lost", channel=channel, reason=exc.message)
        except Exception as exc:
            log.exception("event_feed_crashed", channel=channel, reason=type(exc).__name__)
        finally:
            self._feed_connected[channel] = False
        raise _FeedEnded(channel)

    async def _on_feed_event(self, event: MeshEvent) -> None:
        await self._emit(event)

    async def _watch_loop(self) -> None:
        """Heartbeat misses we see ourselves: the Orchestrator marks a droplet inactive only
        when its sweep runs, so a silent droplet can look active for a while."""
        assert self._orchestrator is not None
        while True:
            await self._sleep(self._watch_interval)
            try:
                droplets = await self._orchestrator.list_droplets()
            except PeerError as exc:
                await self._record("orchestrator", exc)
                continue
            except Exception as exc:
                log.exception("heartbeat_watch_crashed", reason=type(exc).__name__)
                continue
            await self._record("orchestrator", None)
            silent = set()
            for droplet in droplets:
                since = droplet.seconds_since_heartbeat
                if droplet.status == "active" and since is not None and since > self._miss_after:
                    silent.add(droplet.id)
                    if droplet.id not in self._flagged_missing:
                        await self._emit(
                            MeshEvent(
                                kind="heartbeat_missed",
                                severity="warning",
                                summary=(
                                    f"{display_name(droplet.id, droplet.name)} has sent no "
                                    f"heartbeat for {int(since)} s but is still marked active"
                                ),
                                at=utcnow(),
                                source=_EVENT_SOURCE,
                                droplet_id=droplet.id,
                                data={"seconds_since_heartbeat": since},
                            )
                        )
            self._flagged_missing = silent

    # -- helpers ------------------------------------------------------------------------------

    async def _emit(self, event: MeshEvent) -> None:
        log.info(
            "mesh_event",
            kind=event.kind,
            severity=event.severity,
            droplet_id=event.droplet_id,
            task_id=event.task_id,
        )
        if self._event_sink is None:
            return
        try:
            await self._event_sink(event)
        except Exception as exc:
            log.exception("event_sink_failed", kind=event.kind, reason=type(exc).__name__)

    async def _record(self, peer: PeerName, error: PeerError | None) -> None:
        """Track reachability; a change becomes an event ("the Orchestrator is unreachable")."""
        state = self._peers.get(peer)
        if state is None:
            return
        reachable = not isinstance(error, PeerUnavailable)
        if error is None:
            state.last_ok = utcnow()
        else:
            state.last_error = error.message
        if reachable and error is None:
            state.last_error = None
        previous = self._reachable_known.get(peer)
        state.reachable = reachable
        self._reachable_known[peer] = reachable
        label = "Registry" if peer == "registry" else "Orchestrator"
        if not reachable and previous is not False:
            await self._emit(
                MeshEvent(
                    kind="peer_unreachable",
                    severity="critical",
                    summary=(
                        f"the {label} is unreachable: {error.message if error else ''}".rstrip()
                    ),
                    at=utcnow(),
                    source=_EVENT_SOURCE,
                    droplet_id=1 if peer == "registry" else 10,
                )
            )
        elif reachable and previous is False:
            await self._emit(
                MeshEvent(
                    kind="peer_recovered",
                    severity="info",
                    summary=f"the {label} is reachable again",
                    at=utcnow(),
                    source=_EVENT_SOURCE,
                    droplet_id=1 if peer == "registry" else 10,
                )
            )

    async def _sample(self) -> HostSample:
        if self._host_metrics is None:
            self._host_metrics = await asyncio.to_thread(HostMetrics)
        return await asyncio.to_thread(self._host_metrics.sample)

    def _orchestrator_figures(self, sample: HostSample) -> dict[str, float]:
        figures = {
            "cpu_percent": sample.cpu_percent,
            "memory_mb": sample.process_memory_mb,
            "memory_percent": sample.mem_percent,
            "disk_percent": sample.disk_percent,
            "uptime_seconds": sample.uptime_seconds,
        }
        if self._extra_metrics is not None:
            try:
                figures.update(self._extra_metrics())
            except Exception as exc:
                log.exception("extra_metrics_failed", reason=type(exc).__name__)
        return figures

    async def _orchestrator_metrics(self) -> dict[str, float]:
        return self._orchestrator_figures(await self._sample())

    async def _our_ip(self) -> str:
        if self._ip:
            return self._ip
        host = urlparse(self._endpoint).hostname or "127.0.0.1"
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=socket.AF_INET)
            self._ip = str(infos[0][4][0])
        except (OSError, IndexError):
            return "127.0.0.1"
        return self._ip


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, PeerError) else type(exc).__name__


class _FeedEnded(Exception):
    """A connection to the event feed ended (it was logged); the feed loop connects again."""


def _until_it_works(base: float, cap: float) -> RetryPolicy:
    # Never below half the base: a loop retrying at full jitter's zero would spin.
    return RetryPolicy(attempts=None, base_delay=base, max_delay=cap, min_delay=base / 2)


def _unanswered(failure: Exception) -> bool:
    """A report worth repeating: the Orchestrator did not answer (a "no" stays a no)."""
    return isinstance(failure, PeerError) and not isinstance(failure, PeerRejected)
