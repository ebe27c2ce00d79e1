"""Adapter for the Orchestrator (droplet 10): tasks, droplet health, message routing, events.

Wire facts absorbed here (see contracts/mesh.md section 2): requests go out as UDC envelopes and
`/tasks*` and `/droplets*` answers come back wrapped in one; JSONB fields (capabilities, task
payload and result) arrive as JSON-encoded strings; timestamps are naive UTC; every 404 carries
the generic "Endpoint not found" body; the first registration of a new id answers 500 after
inserting the row; `GET /droplets/{id}` is broken (500), so it is never called (one droplet
comes from the list); the message type `heartbeat` is refused; some 500 bodies carry SQL and
are never read into errors.

Tokens (section 2): the Orchestrator reads `droplet_id` as an integer and rejects any token with
an `aud` claim, so minted tokens carry exactly {droplet_id, permissions, iat, exp}. Sources, in
order: a pre-issued token, the private key to mint one, the optional `POST /auth/token`, the
deployed Registry's token endpoint. Every call authenticates through one `httpx2.Auth` flow.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx2
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from app.domain.mesh import (
    CancelledTask,
    CreatedTask,
    Droplet,
    MeshEvent,
    NewTask,
    SentMessage,
    SystemState,
    Task,
    TaskState,
    TaskTransition,
)
from app.mesh.catalogue import display_name
from app.mesh.peer_http import PeerResponse, exchange, invalid_fields
from app.mesh.peers import PeerError, PeerNotFound, PeerRejected, PeerUnavailable
from app.mesh.registry import RegistryClient
from app.mesh.resilience import PEER_RETRY, CircuitBreaker, Clock, send
from app.mesh.shared_reads import SharedReads
from app.mesh.tokens import (
    IssuedToken,
    Issuer,
    TokenProvider,
    TokenSource,
    claimed_times,
    pre_issued,
)
from app.utils.http_transport import SharedTls, outbound_client
from app.utils.retry import RetryPolicy, Sleep
from app.utils.time import isoformat_z, parse_timestamp, utcnow

log = structlog.get_logger(__name__)

PEER = "orchestrator"
LABEL = "Orchestrator"
ORCHESTRATOR_ID = 10

EventChannel = Literal["tasks", "droplets"]
HeartbeatStatus = Literal["active", "inactive", "error"]
# The only message types the Orchestrator accepts on an envelope; "heartbeat" is a 400.
MessageType = Literal["status", "event", "command", "query", "response", "error"]


# How `/send` reports a delivery that failed at the target (500 is a connection failure).
_SEND_FAILURES = {
    500: "could not be reached through the Orchestrator",
    502: "answered the Orchestrator's delivery with an error",
    504: "did not answer the Orchestrator in time",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestratorCredentials:
    """What the deployment gave us to authenticate with; each one configured is a source."""

    token: str | None = None
    """A pre-issued token (ORCHESTRATOR_TOKEN)."""
    private_key_path: Path | None = None
    """The Orchestrator's signing key: we mint our own tokens."""
    secret: str | None = None
    """For the Orchestrator's optional `POST /auth/token`."""
    registry: RegistryClient | None = None
    """The deployed Registry's token endpoint: a last resort (its tokens carry `aud`)."""
    permissions: tuple[str, ...] = ("read", "write")
    lifetime: float = 3600.0
    """Of the tokens we mint."""


class OrchestratorRegistration(BaseModel):
    droplet_id: int
    status: str | None = None
    """"new" or "updated"."""
    heartbeat_interval_seconds: float | None = None
    next_heartbeat_deadline: datetime | None = None


# -- wire models (never leave this module) ----------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _DropletRow(_Wire):
    droplet_id: int
    name: str | None = None
    steward: str | None = None
    endpoint: str | None = None
    capabilities: str | list[Any] | None = None
    status: str | None = None
    last_heartbeat: str | None = None
    seconds_since_heartbeat: float | None = None


class _History(_Wire):
    from_status: str | None = None
    to_status: str
    changed_by: str | None = None
    reason: str | None = None
    changed_at: str | None = None


class _TaskRow(_Wire):
    id: int
    trace_id: str | None = None
    task_type: str
    title: str
    description: str | None = None
    status: TaskState
    priority: int = 5
    assigned_droplet_id: int | None = None
    assigned_droplet_name: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    payload: Any = None
    result: Any = None
    error_message: str | None = None
    state_history: list[_History] | None = None


class _Created(_Wire):
    task_id: int
    status: TaskState
    trace_id: str | None = None
    created_at: str | None = None


class _Cancelled(_Wire):
    task_id: int
    status: TaskState
    cancelled_at: str | None = None


class _Registered(_Wire):
    droplet_id: int
    status: str | None = None
    heartbeat_interval_seconds: float | None = None
    next_heartbeat_deadline: float | str | None = None


class _State(_Wire):
    cpu_percent: float | None = None
    memory_mb: float | None = None
    uptime_seconds: float | None = None
    custom_metrics: dict[str, Any] | None = None


class _Sent(_Wire):
    sent: bool = False
    target_droplet: str | None = None
    target_droplet_id: int | None = None
    message_delivered_at: str | None = None
    trace_id: str | None = None


def _unexpected(exc: Exception | None = None) -> PeerUnavailable:
    return PeerUnavailable(PEER, "the Orchestrator answered in an unexpected format")


def _decode_jsonb(value: Any) -> Any:
    """JSONB columns arrive as JSON text; anything that is not valid JSON is kept as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _capabilities(value: Any) -> list[str]:
    decoded = _decode_jsonb(value)
    if isinstance(decoded, list):
        return [str(item) for item in decoded]
    return []


def _droplet(row: _DropletRow) -> Droplet:
    return Droplet(
        id=row.droplet_id,
        name=row.name or display_name(row.droplet_id),
        status=row.status or "unknown",
        steward=row.steward,
        endpoint=row.endpoint or None,
        capabilities=_capabilities(row.capabilities),
        last_seen=parse_timestamp(row.last_heartbeat),
        seconds_since_heartbeat=row.seconds_since_heartbeat,
        sources=["orchestrator"],
    )


def _task(row: _TaskRow) -> Task:
    payload = _decode_jsonb(row.payload)
    return Task(
        id=row.id,
        task_type=row.task_type,
        title=row.title,
        status=row.status,
        priority=row.priority,
        trace_id=row.trace_id,
        description=row.description,
        assigned_droplet_id=row.assigned_droplet_id,
        assigned_droplet_name=row.assigned_droplet_name,
        created_at=parse_timestamp(row.created_at),
        completed_at=parse_timestamp(row.completed_at),
        payload=payload if isinstance(payload, dict) else None,
        result=_decode_jsonb(row.result),
        error_message=row.error_message,
        history=[
            TaskTransition(
                from_status=h.from_status,
                to_status=h.to_status,
                changed_by=h.changed_by,
                reason=h.reason,
                changed_at=parse_timestamp(h.changed_at),
            )
            for h in row.state_history or []
        ],
    )


def _unwrap(body: Any) -> Any:
    if isinstance(body, dict) and "payload" in body and "message_type" in body:
        return body["payload"]
    return body


class _BearerAuth(httpx2.Auth):
    """Adds our bearer token. A 401 means nothing was done, so on one the token is replaced
    (its source cooled down) and the request, even a POST, is sent once more."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self._tokens.get()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        await self._tokens.invalidate(token)
        token = await self._tokens.get()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            await self._tokens.invalidate(token)

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response]:
        raise RuntimeError("the Orchestrator adapter authenticates asynchronously only")


class OrchestratorClient:
    """One `httpx2.AsyncClient`, one circuit breaker and the tokens for every call to the
    Orchestrator."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: OrchestratorCredentials | None = None,
        timeout: float = 5.0,
        droplet_id: int = 12,
        client: httpx2.AsyncClient | None = None,
        tls: ssl.SSLContext | SharedTls | None = None,
        retry_policy: RetryPolicy | None = None,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        token_clock: Clock = time.time,
        token_refresh_ratio: float = 0.8,
        ws_open_timeout: float = 5.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials or OrchestratorCredentials()
        self._droplet_id = droplet_id
        self._token_clock = token_clock
        self._private_key: bytes | None = None
        self.tokens = TokenProvider(
            peer=PEER,
            label=LABEL,
            sources=self._token_sources(),
            refresh_ratio=token_refresh_ratio,
            clock=token_clock,
        )
        self._auth = _BearerAuth(self.tokens)
        self._owns_client = client is None
        self._client = client or outbound_client(
            timeout=timeout, verify=tls if tls is not None else True
        )
        self._retry_policy = retry_policy or PEER_RETRY
        self._reads: SharedReads[PeerResponse] = SharedReads()
        self._sleep = sleep
        self._ws_open_timeout = ws_open_timeout
        self.breaker = CircuitBreaker(
            peer=PEER,
            label=LABEL,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- tokens -------------------------------------------------------------------------------

    def _token_sources(self) -> list[tuple[TokenSource, Issuer]]:
        given = self._credentials
        sources: list[tuple[TokenSource, Issuer]] = []
        if given.token:
            sources.append((TokenSource.STATIC, pre_issued(given.token)))
        if given.private_key_path is not None:
            sources.append((TokenSource.PRIVATE_KEY, self._mint))
        if given.secret:
            sources.append((TokenSource.ORCHESTRATOR, self._issue))
        if given.registry is not None:
            registry = given.registry
            sources.append((TokenSource.REGISTRY, lambda: registry.issue_token(self._droplet_id)))
        return sources

    async def _mint(self) -> IssuedToken:
        if self._private_key is None:
            path = self._credentials.private_key_path
            assert path is not None
            self._private_key = await asyncio.to_thread(path.read_bytes)
        issued_at = int(self._token_clock())
        expires_at = issued_at + int(self._credentials.lifetime)
        claims = {
            "droplet_id": self._droplet_id,
            "permissions": list(self._credentials.permissions),
            "iat": issued_at,
            "exp": expires_at,
        }
        import jwt  # imported on the first signature (see app.channels.jwt)

        token = jwt.encode(claims, self._private_key, algorithm="RS256")
        return IssuedToken(token, float(issued_at), float(expires_at))

    async def _issue(self) -> IssuedToken:
        """The optional `POST /auth/token {droplet_id, secret_key}`. Outside the breaker: a
        missing token endpoint says nothing about the Orchestrator's health."""
        response = await exchange(
            self._client,
            "POST",
            self._base_url + "/auth/token",
            peer=PEER,
            label=LABEL,
            json_body={"droplet_id": self._droplet_id, "secret_key": self._credentials.secret},
        )
        body = response.body
        if response.status_code == 404:
            raise PeerUnavailable(PEER, "the Orchestrator does not issue tokens", status_code=404)
        if response.status_code != 200 or not isinstance(body, dict):
            raise PeerUnavailable(
                PEER, "the Orchestrator refused to issue a token", status_code=response.status_code
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise _unexpected()
        issued_at, expires_at = claimed_times(token)
        expires_in = body.get("expires_in")
        if expires_at is None and isinstance(expires_in, int | float) and expires_in > 0:
            expires_at = self._token_clock() + float(expires_in)
        return IssuedToken(token, issued_at, expires_at)

    # -- plumbing -----------------------------------------------------------------------------

    def _envelope(self, message_type: MessageType, payload: Any, trace_id: str) -> dict[str, Any]:
        return {
            "udc_version": "1.0",
            "trace_id": trace_id,
            "source": f"droplet-{self._droplet_id}",
            "target": f"droplet-{ORCHESTRATOR_ID}",
            "message_type": message_type,
            "timestamp": isoformat_z(),
            "payload": payload,
        }

    async def _call(
        self,
        method: str,
        path: str,
        *,
        trace_id: str | None = None,
        message_type: MessageType | None = None,
        payload: Any = None,
        raw_body: Any = None,
        params: Mapping[str, str | int | float] | None = None,
        idempotent: bool = False,
        authed: bool = True,
        passthrough: tuple[int, ...] = (),
    ) -> PeerResponse:
        trace = trace_id or str(uuid.uuid4())
        body = self._envelope(message_type, payload, trace) if message_type else raw_body

        async def attempt() -> PeerResponse:
            return await self.breaker.call(
                lambda: exchange(
                    self._client,
                    method,
                    self._base_url + path,
                    peer=PEER,
                    label=LABEL,
                    headers={"X-Trace-Id": trace},
                    params=params,
                    json_body=body,
                    passthrough=passthrough,
                    auth=self._auth if authed else None,
                )
            )

        async def answer() -> PeerResponse:
            response = await send(
                attempt, idempotent=idempotent, policy=self._retry_policy, sleep=self._sleep
            )
            if response.status_code == 401:
                # The auth flow already tried a fresh token: our credentials are the problem.
                raise PeerRejected(
                    PEER, "the Orchestrator rejected our credentials", status_code=401
                )
            return PeerResponse(status_code=response.status_code, body=_unwrap(response.body))

        if method == "GET" and body is None:
            # Concurrent identical reads share one exchange (the answer is the peer's, the
            # trace id the first asker's); see app.mesh.shared_reads.
            key = (path, tuple(sorted(params.items())) if params else (), authed)
            return await self._reads.read(key, answer)
        try:
            return await answer()
        finally:
            # Whether it landed or not (a timeout may hide a write the peer made), reads from
            # now on ask the peer again rather than join one sent before this write.
            self._reads.wrote()

    @staticmethod
    def _refusal(response: PeerResponse, *, what: str, not_found: str | None = None) -> PeerError:
        status = response.status_code
        if status == 404 and not_found:
            return PeerNotFound(PEER, not_found, status_code=404)
        if status == 403:
            return PeerRejected(
                PEER, f"the Orchestrator does not allow us to {what}", status_code=403
            )
        if status == 422:
            fields = invalid_fields(response.body)
            suffix = f" (invalid: {', '.join(fields)})" if fields else ""
            return PeerRejected(
                PEER, f"the Orchestrator rejected the request to {what}{suffix}", status_code=422
            )
        return PeerRejected(PEER, f"the Orchestrator refused to {what}", status_code=status)

    @staticmethod
    def _payload(response: PeerResponse) -> dict[str, Any]:
        if not isinstance(response.body, dict):
            raise _unexpected()
        return response.body

    # -- droplets -----------------------------------------------------------------------------

    async def register(
        self,
        *,
        name: str,
        endpoint: str,
        steward: str,
        capabilities: list[str],
        trace_id: str | None = None,
    ) -> OrchestratorRegistration:
        # Capabilities are always sent: re-registering without them wipes them.
        payload = {
            "droplet_id": self._droplet_id,
            "name": name,
            "endpoint": endpoint,
            "steward": steward,
            "capabilities": list(capabilities),
        }
        try:
            response = await self._call(
                "POST",
                "/droplets/register",
                trace_id=trace_id,
                message_type="command",
                payload=payload,
            )
        except PeerUnavailable as exc:
            if exc.status_code != 500:
                raise
            # Known bug: a new id's row is inserted, then the answer is a 500. Again -> 201.
            log.info("orchestrator_first_registration_quirk", droplet_id=self._droplet_id)
            response = await self._call(
                "POST",
                "/droplets/register",
                trace_id=trace_id,
                message_type="command",
                payload=payload,
            )
        if response.status_code not in (200, 201):
            raise self._refusal(response, what=f"register droplet {self._droplet_id}")
        try:
            wire = _Registered.model_validate(self._payload(response))
        except ValidationError as exc:
            raise _unexpected(exc) from exc
        return OrchestratorRegistration(
            droplet_id=wire.droplet_id,
            status=wire.status,
            heartbeat_interval_seconds=wire.heartbeat_interval_seconds,
            next_heartbeat_deadline=parse_timestamp(wire.next_heartbeat_deadline),
        )

    async def heartbeat(
        self,
        *,
        status: HeartbeatStatus = "active",
        metrics: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> datetime | None:
        """Returns the next deadline. `PeerNotFound` means "register again"."""
        response = await self._call(
            "POST",
            f"/droplets/{self._droplet_id}/heartbeat",
            trace_id=trace_id,
            message_type="status",
            payload={"status": status, "metrics": dict(metrics or {})},
            idempotent=True,
        )
        if response.status_code != 200:
            raise self._refusal(
                response,
                what="accept our heartbeat",
                not_found=f"droplet {self._droplet_id} is not registered with the Orchestrator",
            )
        deadline = self._payload(response).get("next_heartbeat_deadline")
        return parse_timestamp(deadline) if isinstance(deadline, int | float | str) else None

    async def list_droplets(
        self,
        status: str | None = None,
        capability: str | None = None,
        *,
        trace_id: str | None = None,
    ) -> list[Droplet]:
        params: dict[str, str | int | float] = {}
        if status:
            params["status"] = status
        if capability:
            params["capability"] = capability
        response = await self._call(
            "GET", "/droplets", trace_id=trace_id, params=params, idempotent=True
        )
        if response.status_code != 200:
            raise self._refusal(response, what="list droplets")
        rows = self._payload(response).get("droplets")
        if not isinstance(rows, list):
            raise _unexpected()
        droplets: list[Droplet] = []
        for raw in rows:
            try:
                droplets.append(_droplet(_DropletRow.model_validate(raw)))
            except ValidationError:
                log.warning("orchestrator_droplet_row_unreadable")
        return droplets

    # -- tasks --------------------------------------------------------------------------------

    async def create_task(self, task: NewTask, *, trace_id: str | None = None) -> CreatedTask:
        payload = task.model_dump(exclude_none=True)
        # Never retried: a lost answer to a POST may still have created the task.
        response = await self._call(
            "POST", "/tasks", trace_id=trace_id, message_type="command", payload=payload
        )
        if response.status_code not in (200, 201):
            raise self._refusal(response, what="create the task")
        try:
            wire = _Created.model_validate(self._payload(response))
        except ValidationError as exc:
            raise _unexpected(exc) from exc
        return CreatedTask(
            task_id=wire.task_id,
            status=wire.status,
            trace_id=wire.trace_id,
            created_at=parse_timestamp(wire.created_at),
        )

    async def list_tasks(
        self,
        *,
        status: TaskState | str | None = None,
        task_type: str | None = None,
        assigned_droplet_id: int | None = None,
        priority_min: int | None = None,
        priority_max: int | None = None,
        limit: int = 50,
        offset: int = 0,
        trace_id: str | None = None,
    ) -> list[Task]:
        params: dict[str, str | int | float] = {
            "limit": max(1, min(500, limit)),
            "offset": max(0, offset),
        }
        for key, value in (
            ("status", status),
            ("task_type", task_type),
            ("assigned_droplet_id", assigned_droplet_id),
            ("priority_min", priority_min),
            ("priority_max", priority_max),
        ):
            if value is not None:
                params[key] = str(value) if isinstance(value, str) else value
        response = await self._call(
            "GET", "/tasks", trace_id=trace_id, params=params, idempotent=True
        )
        if response.status_code != 200:
            raise self._refusal(response, what="list tasks")
        rows = self._payload(response).get("tasks")
        if not isinstance(rows, list):
            raise _unexpected()
        tasks: list[Task] = []
        for raw in rows:
            try:
                tasks.append(_task(_TaskRow.model_validate(raw)))
            except ValidationError:
                log.warning("orchestrator_task_row_unreadable")
        if assigned_droplet_id is not None:
            # For an id it does not know, the Orchestrator drops this filter and lists every task.
            tasks = [t for t in tasks if t.assigned_droplet_id == assigned_droplet_id]
        return tasks

    async def get_task(self, task_id: int, *, trace_id: str | None = None) -> Task:
        response = await self._call("GET", f"/tasks/{task_id}", trace_id=trace_id, idempotent=True)
        if response.status_code != 200:
            raise self._refusal(
                response, what=f"show task {task_id}", not_found=f"task {task_id} does not exist"
            )
        raw = self._payload(response).get("task")
        try:
            return _task(_TaskRow.model_validate(raw))
        except ValidationError as exc:
            raise _unexpected(exc) from exc

    async def update_task(
        self,
        task_id: int,
        status: TaskState,
        result: Mapping[str, Any] | None = None,
        error_message: str | None = None,
        *,
        trace_id: str | None = None,
    ) -> TaskState:
        payload: dict[str, Any] = {"status": TaskState(status).value}
        if result is not None:
            payload["result"] = dict(result)
        if error_message is not None:
            payload["error_message"] = error_message
        response = await self._call(
            "PATCH", f"/tasks/{task_id}", trace_id=trace_id, message_type="command", payload=payload
        )
        if response.status_code == 400:
            current = await self._current_status(task_id)
            where = f"is {current.value.replace('_', ' ')}" if current else "is in another state"
            raise PeerRejected(
                PEER,
                f"task {task_id} {where} and cannot move to "
                f"{TaskState(status).value.replace('_', ' ')}",
                status_code=400,
            )
        if response.status_code == 403:
            raise PeerRejected(
                PEER,
                f"task {task_id} is not assigned to droplet {self._droplet_id}",
                status_code=403,
            )
        if response.status_code != 200:
            raise self._refusal(
                response, what=f"update task {task_id}", not_found=f"task {task_id} does not exist"
            )
        new_status = self._payload(response).get("status", payload["status"])
        try:
            return TaskState(new_status)
        except ValueError as exc:
            raise _unexpected(exc) from exc

    async def cancel_task(self, task_id: int, *, trace_id: str | None = None) -> CancelledTask:
        response = await self._call("DELETE", f"/tasks/{task_id}", trace_id=trace_id)
        if response.status_code == 400:
            current = await self._current_status(task_id)
            if current is not None:
                message = (
                    f"task {task_id} is {current.value.replace('_', ' ')} and can no "
                    "longer be cancelled"
                )
            else:
                message = f"task {task_id} can no longer be cancelled"
            raise PeerRejected(PEER, message, status_code=400)
        if response.status_code == 403:
            raise PeerRejected(
                PEER,
                f"only the droplet that created task {task_id} (or an admin) may cancel it",
                status_code=403,
            )
        if response.status_code != 200:
            raise self._refusal(
                response, what=f"cancel task {task_id}", not_found=f"task {task_id} does not exist"
            )
        try:
            wire = _Cancelled.model_validate(self._payload(response))
        except ValidationError as exc:
            raise _unexpected(exc) from exc
        return CancelledTask(
            task_id=wire.task_id,
            status=wire.status,
            cancelled_at=parse_timestamp(wire.cancelled_at),
        )

    async def _current_status(self, task_id: int) -> TaskState | None:
        """Best effort, only to word a refusal; any failure just makes the message vaguer."""
        try:
            return (await self.get_task(task_id)).status
        except PeerError:
            return None

    # -- messaging and system -----------------------------------------------------------------

    async def send(
        self,
        target_droplet_id: int,
        message_type: MessageType,
        payload: Mapping[str, Any],
        *,
        trace_id: str | None = None,
    ) -> SentMessage:
        """Relay `payload` to another droplet; the Orchestrator wraps it in an envelope."""
        target = display_name(target_droplet_id)
        response = await self._call(
            "POST",
            "/send",
            trace_id=trace_id,
            raw_body=dict(payload),
            params={"target_droplet_id": target_droplet_id, "message_type": message_type},
            passthrough=tuple(_SEND_FAILURES),
        )
        if response.status_code in _SEND_FAILURES:
            # The Orchestrator answered, so it is the target that failed: keep the breaker out.
            raise PeerUnavailable(
                PEER,
                f"{target} {_SEND_FAILURES[response.status_code]}",
                status_code=response.status_code,
            )
        if response.status_code != 200:
            raise self._refusal(
                response,
                what=f"send a message to {target}",
                not_found=f"{target} is not registered with the Orchestrator",
            )
        try:
            wire = _Sent.model_validate(self._payload(response))
        except ValidationError as exc:
            raise _unexpected(exc) from exc
        return SentMessage(
            target_droplet_id=wire.target_droplet_id or target_droplet_id,
            delivered=wire.sent,
            target_name=wire.target_droplet,
            trace_id=wire.trace_id,
            delivered_at=parse_timestamp(wire.message_delivered_at),
        )

    async def state(self, *, trace_id: str | None = None) -> SystemState:
        response = await self._call(
            "GET", "/state", trace_id=trace_id, idempotent=True, authed=False
        )
        if response.status_code != 200:
            raise self._refusal(response, what="report its state")
        try:
            wire = _State.model_validate(self._payload(response))
        except ValidationError as exc:
            raise _unexpected(exc) from exc
        custom = dict(wire.custom_metrics or {})

        def count(key: str) -> int | None:
            value = custom.pop(key, None)
            return int(value) if isinstance(value, int | float) else None

        return SystemState(
            tasks_active=count("tasks_active"),
            tasks_pending=count("tasks_pending"),
            droplets_active=count("droplets_active"),
            droplets_total=count("droplets_total"),
            cpu_percent=wire.cpu_percent,
            memory_mb=wire.memory_mb,
            uptime_seconds=wire.uptime_seconds,
            extra=custom,
        )

    async def health(self, *, trace_id: str | None = None) -> bool:
        """True when the Orchestrator says it is active; never raises and bypasses the breaker
        so it can tell when the peer is back."""
        try:
            response = await exchange(
                self._client,
                "GET",
                self._base_url + "/health",
                peer=PEER,
                label=LABEL,
                headers={"X-Trace-Id": trace_id or str(uuid.uuid4())},
            )
        except PeerUnavailable:
            return False
        return (
            response.status_code == 200
            and isinstance(response.body, dict)
            and response.body.get("status") == "active"
        )

    # -- event feed ---------------------------------------------------------------------------

    async def stream_events(
        self,
        channel: EventChannel,
        on_event: Callable[[MeshEvent], Awaitable[None]],
        *,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """Follow `WS /ws/<channel>` until the connection ends; reconnecting is the caller's
        business. Raises `PeerUnavailable` when the feed cannot be reached or drops,
        `PeerRejected` when it refuses our token (which is then invalidated)."""
        token = await self.tokens.get()
        scheme = "wss" if self._base_url.startswith("https") else "ws"
        url = (
            f"{scheme}{self._base_url.removeprefix('https').removeprefix('http')}"
            f"/ws/{channel}?token={quote(token, safe='')}"
        )
        try:
            async with ws_connect(
                url,
                open_timeout=self._ws_open_timeout,
                ping_interval=20,
                ping_timeout=20,
                max_size=2**20,
            ) as websocket:
                log.info("event_feed_connected", channel=channel)
                if on_connected is not None:
                    on_connected()
                async for raw in websocket:
                    event = translate_event(raw, channel=channel)
                    if event is not None:
                        await on_event(event)
                code = websocket.close_code
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                await self.tokens.invalidate(token)
                raise PeerRejected(
                    PEER,
                    "the Orchestrator's event feed refused our credentials",
                    status_code=status,
                ) from exc
            raise PeerUnavailable(
                PEER, "the Orchestrator's event feed is unavailable", status_code=status
            ) from exc
        except ConnectionClosed as exc:
            raise PeerUnavailable(PEER, "the Orchestrator's event feed dropped") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise PeerUnavailable(PEER, "the Orchestrator's event feed is unreachable") from exc
        if code == 1008:
            await self.tokens.invalidate(token)
            raise PeerRejected(PEER, "the Orchestrator's event feed refused our credentials")


# -- event translation ------------------------------------------------------------------------

_UNHEALTHY_SEVERITY: dict[str, Literal["warning", "critical"]] = {
    "inactive": "warning",
    "error": "critical",
}


def translate_event(raw: str | bytes, *, channel: str) -> MeshEvent | None:
    """One frame of the Orchestrator's event feed as a `MeshEvent`; None for pings and noise."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.warning("event_feed_unreadable_frame", channel=channel)
        return None
    if not isinstance(message, dict):
        return None
    payload = _dict(message.get("payload")) or message
    kind = payload.get("event") or payload.get("type")
    if not isinstance(kind, str) or kind == "ping":
        return None
    at = parse_timestamp(message.get("timestamp")) or utcnow()
    data = {k: v for k, v in payload.items() if k != "event"}
    droplet_id = _int(payload.get("droplet_id"))
    droplet = _dict(payload.get("droplet"))
    task = _dict(payload.get("task"))
    if droplet_id is None:
        droplet_id = _int(droplet.get("droplet_id", droplet.get("id")))
    task_id = _int(payload.get("task_id", task.get("id")))
    name = payload.get("droplet_name") or droplet.get("name")
    who = display_name(droplet_id, name if isinstance(name, str) else None) if droplet_id else ""

    if kind == "droplet_health_changed" and droplet_id is not None:
        old = str(payload.get("old_status") or "unknown")
        new = str(payload.get("new_status") or "unknown")
        if new in _UNHEALTHY_SEVERITY:
            return MeshEvent(
                kind=kind,
                severity=_UNHEALTHY_SEVERITY[new],
                summary=f"{who} went {new} (was {old})",
                at=at,
                droplet_id=droplet_id,
                data=data,
            )
        summary = (
            f"{who} recovered: now {new} (was {old})"
            if old in _UNHEALTHY_SEVERITY
            else f"{who} is now {new} (was {old})"
        )
        return MeshEvent(
            kind=kind, severity="info", summary=summary, at=at, droplet_id=droplet_id, data=data
        )
    if kind == "droplet_heartbeat_missed" and droplet_id is not None:
        return MeshEvent(
            kind=kind,
            severity="warning",
            summary=f"{who} missed its heartbeat",
            at=at,
            droplet_id=droplet_id,
            data=data,
        )
    if kind == "droplet_registered" and droplet_id is not None:
        return MeshEvent(
            kind=kind,
            summary=f"{who} registered with the Orchestrator",
            at=at,
            droplet_id=droplet_id,
            data=data,
        )
    if kind.startswith("task_"):
        verb = kind.removeprefix("task_").replace("_", " ")
        title = task.get("title") or payload.get("title")
        label = f"task {task_id}" if task_id is not None else "a task"
        if isinstance(title, str) and title:
            label += f" ({title})"
        return MeshEvent(
            kind=kind,
            severity="warning" if kind == "task_failed" else "info",
            summary=f"{label} {verb}",
            at=at,
            task_id=task_id,
            droplet_id=droplet_id,
            data=data,
        )
    return MeshEvent(
        kind=kind,
        summary=f"Orchestrator event: {kind.replace('_', ' ')}",
        at=at,
        droplet_id=droplet_id,
        task_id=task_id,
        data=data,
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
