"""A contract-faithful stand-in for the mesh Orchestrator (droplet 10).

Reproduces the wire behaviour in `shared/contracts/mesh.md` §2 and the transcript, including the
quirks an adapter must absorb (see "Quirks" below). All state is in memory on
`app.state.orchestrator`, one per app instance.

Auth: `Authorization: Bearer <RS256 JWT>` verified with `public_key_pem`; claims read are
`droplet_id` (an int; "12" fails identity checks), `permissions` and `exp` (checked when present,
as the real one does). A token carrying `aud` is rejected. 401 `{"detail":"Not authenticated"}`
without a token, `{"detail":"Could not validate credentials"}` for a bad one.

Bodies of POST /tasks, PATCH /tasks/{id}, POST /droplets/register and POST /droplets/{id}/heartbeat
may be bare or a UDC envelope (recognised by `udc_version` + `payload`; only `message_type` is
checked, `heartbeat` is a 400). Answers of /tasks* and /droplets* are wrapped in the response
envelope (target = the envelope's source or "client"). Every 404 reads
`{"error":true,"message":"Endpoint not found: <path>","type":"NotFound"}`.

Quirks (on by default; `quirks=False` gives a clean peer):
- the first `POST /droplets/register` of a new id stores the droplet, then answers 500 with
  `{"detail":"Failed to register droplet: ..."}`; registering again answers 201 `status:"updated"`;
- `GET /droplets/{id}` always answers 500 (SQL error text in the detail);
- `GET /tasks?assigned_droplet_id=N` for an N that is not registered drops the filter and lists
  every task (found in the real route code; not in mesh.md).
Not gated by `quirks`, because they are simply how the peer works: re-registering without
`capabilities` wipes them; a heartbeat status other than active|inactive|error is a 500; a token
with `droplet_id` 1 may heartbeat for any droplet; `/message` command `cancel_task` cancels an
`in_progress` task too and records no history; tasks created through `/message` have no history.

Background work: every `router_interval` s pending tasks go to an active droplet that has the
`required_capability` (any active droplet when none is required), fewest active tasks first, then
lowest droplet id; never to the Orchestrator itself and never to a droplet whose endpoint is empty
(the seeded ones). A droplet without a heartbeat for `inactive_after` s turns `inactive`
(`droplet_health_changed` on /ws/droplets) and its assigned/in_progress tasks go back to pending
and are routed again at once. WebSockets get `task_created`, `droplet_health_changed` and a
`ping` every `ws_ping_interval` s.

Sandbox-only endpoints (no real Orchestrator has them), all under `/_sandbox/`:
- `POST /_sandbox/fault` (see `sandbox.faults`);
- `POST /_sandbox/droplets/{id}/stop-heartbeats` and `.../start-heartbeats`: pause or resume the
  internal heartbeats of a seeded droplet (or of droplet 10 itself);
- `POST /_sandbox/tick`: run the internal heartbeats, the health check and the router once,
  now (answers `{"inactive": [droplet ids], "routed": [task ids]}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import httpx2
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from sandbox.faults import FaultMiddleware, FaultState, fault_router
from sandbox.keys import load_private_key
from sandbox.orchestrator_state import (
    ACTIVE_WORK,
    DETAILS_QUIRK_DETAIL,
    ENVELOPE_MESSAGE_TYPES,
    HEARTBEAT_EVERY,
    REGISTER_QUIRK_DETAIL,
    SELF_NAME,
    SELF_PUBLIC_ENDPOINT,
    SELF_SOURCE,
    SELF_STEWARD,
    TERMINAL,
    TOKEN_LIFETIME,
    DropletHeartbeat,
    DropletRegister,
    DropletRow,
    MessageType,
    OrchestratorState,
    TaskCreate,
    TaskUpdate,
    TokenRequest,
    TransitionError,
    UDCMessage,
    seed_orchestrator,
)
from sandbox.seed import ORCHESTRATOR_CAPABILITIES, ORCHESTRATOR_ID
from sandbox.wire import aware_now_iso, envelope, iso, jsonb_text, utcnow

log = logging.getLogger("sandbox.orchestrator")

# ---------------------------------------------------------------------------------------------
# Request plumbing
# ---------------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)
_bearer = HTTPBearer()
_optional_bearer = HTTPBearer(auto_error=False)


@dataclass
class Udc:
    """What an incoming envelope said about itself (empty for bare bodies and GETs)."""

    trace_id: Any = None
    source: Any = None

    def wrap(self, payload: dict[str, Any]) -> dict[str, Any]:
        return envelope(payload, target=self.source or "client", trace_id=self.trace_id or None)


def _state(request: Request | WebSocket) -> OrchestratorState:
    state: OrchestratorState = request.app.state.orchestrator
    return state


def _verify(state: OrchestratorState, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(token, state.public_key, algorithms=["RS256"])
    except jwt.PyJWTError as exc:
        raise HTTPException(
            status_code=401,
            detail="Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
    return claims


async def _token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials, Depends(_bearer)]
) -> dict[str, Any]:
    return _verify(_state(request), credentials.credentials)


async def _optional_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
) -> dict[str, Any] | None:
    if credentials is None:
        return None
    try:
        return _verify(_state(request), credentials.credentials)
    except HTTPException:
        return None


Token = Annotated[dict[str, Any], Depends(_token)]
OptionalToken = Annotated[dict[str, Any] | None, Depends(_optional_token)]


def _envelope_error(data: dict[str, Any]) -> str | None:
    message_type = data.get("message_type")
    if message_type not in ENVELOPE_MESSAGE_TYPES:
        allowed = ", ".join(ENVELOPE_MESSAGE_TYPES)
        return f"Invalid message_type: {message_type}. Must be one of: {allowed}"
    return None


async def _parse_body(request: Request) -> tuple[Any, Udc]:
    """Bare body or UDC envelope -> (payload, what the envelope said)."""
    body = await request.body()
    if not body:
        raise HTTPException(status_code=400, detail="Empty request body")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise HTTPException(status_code=400, detail="Invalid JSON") from exc
    except Exception as exc:
        raise HTTPException(status_code=500, detail=f"Failed to process request: {exc}") from exc
    try:
        if "udc_version" in data and "payload" in data:
            error = _envelope_error(data)
            if error is not None:
                raise HTTPException(status_code=400, detail=f"Invalid UDC envelope: {error}")
            return data.get("payload", {}), Udc(data.get("trace_id"), data.get("source"))
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=500, detail=f"Failed to process request: {exc}") from exc
    return data, Udc()


def _validate(model: type[M], payload: Any) -> M:
    if not isinstance(payload, dict):
        raise TypeError(f"argument after ** must be a mapping, not {type(payload).__name__}")
    try:
        return model(**payload)
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=json.loads(exc.json())) from exc


@contextmanager
def _fails_as(prefix: str) -> Iterator[None]:
    """Unexpected errors become 500 `{"detail": "<prefix>: <error>"}`, as in the real routes."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=500, detail=f"{prefix}: {exc}") from exc


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="Not Found")


# ---------------------------------------------------------------------------------------------
# App
# ---------------------------------------------------------------------------------------------


def create_orchestrator_app(
    *,
    public_key_pem: bytes,
    quirks: bool = True,
    router_interval: float = 10.0,
    inactive_after: float = 90.0,
    auth_secret: str | None = None,
    private_key_pem: bytes | None = None,
    seed: bool = False,
    ws_ping_interval: float = 30.0,
    health_check_interval: float | None = None,
    keepalive_interval: float | None = None,
    endpoint: str = "http://127.0.0.1:8010",
    send_timeout: float = 10.0,
) -> FastAPI:
    """Build an Orchestrator stand-in.

    `public_key_pem` verifies bearer tokens. `auth_secret` mounts `POST /auth/token` (it needs
    `private_key_pem` to sign). `endpoint` is what `/health` reports. The health check runs every
    `health_check_interval` s (default `inactive_after / 3`, at most 10 s); internal heartbeats of
    seeded droplets and of droplet 10 itself every `keepalive_interval` s (default
    `inactive_after / 3`). `send_timeout` bounds `/send` deliveries (504 past it).
    """
    if auth_secret is not None and private_key_pem is None:
        raise ValueError("auth_secret needs private_key_pem to sign the tokens /auth/token returns")
    state = OrchestratorState(
        public_key=load_pem_public_key(public_key_pem),
        private_key_pem=private_key_pem,
        quirks=quirks,
        router_interval=router_interval,
        inactive_after=inactive_after,
        health_check_interval=health_check_interval or min(inactive_after / 3, 10.0),
        keepalive_interval=keepalive_interval or inactive_after / 3,
        ws_ping_interval=ws_ping_interval,
        auth_secret=auth_secret,
        endpoint=endpoint,
        send_timeout=send_timeout,
    )
    state.register(
        DropletRegister(
            droplet_id=ORCHESTRATOR_ID,
            name=SELF_NAME,
            steward=SELF_STEWARD,
            endpoint=SELF_PUBLIC_ENDPOINT,
            capabilities=list(ORCHESTRATOR_CAPABILITIES),
        )
    )
    state.kept_alive.add(ORCHESTRATOR_ID)
    if seed:
        seed_orchestrator(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.http = httpx2.AsyncClient(timeout=state.send_timeout)
        await state.keepalive()
        loops = [
            _every(state.router_interval, "router", state.route_pending),
            _every(state.health_check_interval, "health check", state.run_health_check),
            _every(state.keepalive_interval, "keepalive", state.keepalive),
            _every(state.ws_ping_interval, "ws ping", lambda: _ping(state)),
        ]
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await state.http.aclose()
            state.http = None

    app = FastAPI(title="Orchestrator (sandbox)", version="2.0.0", lifespan=lifespan)
    app.state.orchestrator = state
    app.state.faults = FaultState()
    app.add_middleware(FaultMiddleware, faults=app.state.faults)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=404,
            content={
                "error": True,
                "message": f"Endpoint not found: {request.url.path}",
                "type": "NotFound",
            },
        )

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=500,
            content={"error": True, "message": str(exc), "type": type(exc).__name__},
        )

    _mount_udc(app)
    _mount_droplets(app)
    _mount_tasks(app)
    _mount_messaging(app)
    _mount_websockets(app)
    if auth_secret is not None:
        _mount_auth(app)
    app.include_router(fault_router())
    _mount_sandbox(app)
    return app


async def _every(interval: float, name: str, job: Any) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            result = job()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("%s failed", name)


async def _ping(state: OrchestratorState) -> None:
    message = envelope(
        {"event": "ping"}, target="broadcast", message_type="event", source=SELF_SOURCE
    )
    await state.broadcast(state.task_sockets, message)
    await state.broadcast(state.droplet_sockets, message)


def _mount_udc(app: FastAPI) -> None:
    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        return {
            "id": ORCHESTRATOR_ID,
            "name": SELF_NAME,
            "steward": SELF_STEWARD,
            "status": "active",
            "endpoint": _state(request).endpoint,
            "updated_at": utcnow().isoformat(),
            "message": "All systems operational",
        }

    @app.get("/capabilities")
    async def capabilities() -> dict[str, Any]:
        return {
            "version": "2.0.0",
            "features": [
                *ORCHESTRATOR_CAPABILITIES,
                "real_time_updates",
                "task_recovery",
                "state_machine_management",
                "priority_queuing",
                "automatic_retry",
            ],
            "dependencies": ["registry"],
            "udc_version": "1.0",
        }

    @app.get("/state")
    async def get_state(request: Request) -> dict[str, Any]:
        st = _state(request)
        statuses = [t.status for t in st.tasks.values()]
        return {
            "cpu_percent": st.process.cpu_percent(interval=None),
            "memory_mb": int(st.process.memory_info().rss / 1024 / 1024),
            "uptime_seconds": int(time.time() - st.boot),
            "custom_metrics": {
                "tasks_active": sum(1 for s in statuses if s in ACTIVE_WORK),
                "tasks_pending": statuses.count("pending"),
                "droplets_active": sum(1 for d in st.droplets.values() if d.status == "active"),
                "droplets_total": len(st.droplets),
                "num_threads": threading.active_count(),
            },
        }

    @app.get("/dependencies")
    async def dependencies() -> dict[str, Any]:
        return {
            "required": [],
            "optional": [
                {"id": 5, "name": "Dashboard", "status": "unknown", "last_check": None},
                {"id": 8, "name": "Verifier", "status": "unknown", "last_check": None},
            ],
            "missing": ["Registry v2 (#3)"],
        }

    @app.get("/metrics/summary")
    async def metrics_summary(request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        tasks = list(st.tasks.values())
        durations = [
            (t.completed_at - t.created_at).total_seconds()
            for t in tasks
            if t.status == "completed" and t.completed_at is not None
        ]
        failed = sum(1 for t in tasks if t.status == "failed")
        finished = len(durations) + failed
        droplet_statuses = [d.status for d in st.droplets.values()]
        return Udc().wrap(
            {
                "tasks": {
                    "total_created": len(tasks),
                    "completed": len(durations),
                    "failed": failed,
                    "pending": sum(1 for t in tasks if t.status == "pending"),
                    "in_progress": sum(1 for t in tasks if t.status == "in_progress"),
                    "average_completion_seconds": (
                        round(sum(durations) / len(durations), 2) if durations else 0.0
                    ),
                    "success_rate_percent": (
                        round(len(durations) / finished * 100, 2) if finished else 0.0
                    ),
                },
                "droplets": {
                    "total_registered": len(droplet_statuses),
                    "active": droplet_statuses.count("active"),
                    "inactive": droplet_statuses.count("inactive"),
                    "error": droplet_statuses.count("error"),
                },
                "system": {
                    "uptime_seconds": int(time.time() - st.boot),
                    "cpu_percent": st.process.cpu_percent(interval=None),
                    "memory_mb": round(st.process.memory_info().rss / 1024 / 1024, 2),
                    "requests_per_minute": 0,
                },
            }
        )


def _mount_droplets(app: FastAPI) -> None:
    @app.post("/droplets/register", status_code=201)
    async def register(request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        with _fails_as("Failed to register droplet"):
            payload, udc = await _parse_body(request)
            reg = _validate(DropletRegister, payload)
            result = st.register(reg)
            if result["status"] == "new" and st.quirks:
                raise TypeError(REGISTER_QUIRK_DETAIL)
            return udc.wrap(
                {
                    **result,
                    "heartbeat_interval_seconds": HEARTBEAT_EVERY,
                    "next_heartbeat_deadline": time.time() + HEARTBEAT_EVERY,
                }
            )

    @app.post("/droplets/{droplet_id}/heartbeat")
    async def heartbeat(droplet_id: int, request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        with _fails_as("Failed to process heartbeat"):
            payload, udc = await _parse_body(request)
            beat = _validate(DropletHeartbeat, payload)
            caller = token.get("droplet_id")
            # The real route lets droplet 1 (the Registry) heartbeat for anyone.
            if droplet_id != caller and caller not in (1, "droplet-1"):
                raise HTTPException(
                    status_code=403,
                    detail=f"Droplet {caller} cannot send heartbeat for droplet {droplet_id}",
                )
            try:
                previous = st.heartbeat(droplet_id, beat.status)
            except ValueError as exc:
                raise _not_found() from exc
            if previous == "inactive" and beat.status == "active":
                await st.health_changed(droplet_id, "inactive", "active")
            return udc.wrap(
                {"received": True, "next_heartbeat_deadline": time.time() + HEARTBEAT_EVERY}
            )

    @app.get("/droplets")
    async def list_droplets(
        request: Request,
        token: Token,
        status: str | None = None,
        capability: str | None = None,
    ) -> dict[str, Any]:
        st = _state(request)
        rows = sorted(st.droplets.values(), key=lambda d: d.droplet_id)
        if status:
            rows = [d for d in rows if d.status == status]
        if capability:
            rows = [d for d in rows if capability in d.capabilities]
        return Udc().wrap(
            {
                "droplets": [st.droplet_public(d) for d in rows],
                "total": len(rows),
                "filters": {"status": status, "capability": capability},
            }
        )

    @app.get("/droplets/{droplet_id}")
    async def droplet_details(droplet_id: int, request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        if st.quirks:
            raise HTTPException(
                status_code=500,
                detail=f"Failed to fetch droplet details: {DETAILS_QUIRK_DETAIL}",
            )
        row = st.droplets.get(droplet_id)
        if row is None:
            raise _not_found()
        return Udc().wrap({"droplet": st.droplet_details(row)})

    @app.get("/droplets/{droplet_id}/capabilities")
    async def droplet_capabilities(
        droplet_id: int, request: Request, token: Token
    ) -> dict[str, Any]:
        row = _state(request).droplets.get(droplet_id)
        if row is None:
            raise _not_found()
        return Udc().wrap(
            {
                "droplet_id": droplet_id,
                "name": row.name,
                "capabilities": jsonb_text(row.capabilities),
            }
        )


def _mount_tasks(app: FastAPI) -> None:
    @app.post("/tasks", status_code=201)
    async def create_task(request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        with _fails_as("Failed to create task"):
            payload, udc = await _parse_body(request)
            spec = _validate(TaskCreate, payload)
            caller = f"droplet_{token.get('droplet_id')}"
            task = st.create_task(spec, created_by=spec.created_by or caller, history_by=caller)
            event = {
                "event": "task_created",
                "task": {
                    "id": task.id,
                    "trace_id": task.trace_id,
                    "task_type": task.task_type,
                    "title": task.title,
                    "priority": task.priority,
                    "status": task.status,
                    "created_at": iso(task.created_at),
                },
            }
            await st.broadcast(
                st.task_sockets,
                envelope(
                    event,
                    target="broadcast",
                    message_type="event",
                    trace_id=udc.trace_id or task.trace_id,
                    source=SELF_SOURCE,
                ),
            )
            return udc.wrap(
                {
                    "task_id": task.id,
                    "trace_id": task.trace_id,
                    "status": task.status,
                    "created_at": iso(task.created_at),
                    "estimated_assignment_seconds": 10,
                }
            )

    @app.get("/tasks")
    async def list_tasks(
        request: Request,
        token: Token,
        status: str | None = None,
        task_type: str | None = None,
        priority_min: Annotated[int | None, Query(ge=1, le=10)] = None,
        priority_max: Annotated[int | None, Query(ge=1, le=10)] = None,
        assigned_droplet_id: int | None = None,
        limit: Annotated[int | None, Query(ge=1, le=500)] = 50,
        offset: Annotated[int | None, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        st = _state(request)
        limit, offset = limit or 50, offset or 0
        rows = list(st.tasks.values())
        if status:
            rows = [t for t in rows if t.status == status]
        if task_type:
            rows = [t for t in rows if t.task_type == task_type]
        if priority_min:
            rows = [t for t in rows if t.priority >= priority_min]
        if priority_max:
            rows = [t for t in rows if t.priority <= priority_max]
        if assigned_droplet_id:
            droplet = st.droplets.get(assigned_droplet_id)
            if droplet is not None:
                rows = [t for t in rows if t.assigned_pk == droplet.pk]
            elif not st.quirks:
                rows = []
        rows.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        rows.sort(key=lambda t: t.priority)
        return Udc().wrap(
            {
                "tasks": [st.task_summary(t) for t in rows[offset : offset + limit]],
                "total": len(rows),
                "limit": limit,
                "offset": offset,
            }
        )

    @app.get("/tasks/{task_id}")
    async def get_task(task_id: int, request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        task = st.tasks.get(task_id)
        if task is None:
            raise _not_found()
        return Udc().wrap({"task": st.task_detail(task)})

    @app.patch("/tasks/{task_id}")
    async def update_task(task_id: int, request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        with _fails_as("Failed to update task"):
            payload, udc = await _parse_body(request)
            update = _validate(TaskUpdate, payload)
            task = st.tasks.get(task_id)
            if task is None:
                raise _not_found()
            assignee = st.by_pk(task.assigned_pk)
            caller = token.get("droplet_id")
            if (assignee.droplet_id if assignee else None) != caller:
                raise HTTPException(
                    status_code=403, detail="Only assigned droplet can update task status"
                )
            try:
                st.transition(task, update.status.value, f"droplet_{caller}")
            except TransitionError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from exc
            if update.result is not None or update.error_message is not None:
                task.result = update.result or None
                task.error_message = update.error_message
            return udc.wrap(
                {"task_id": task_id, "status": update.status.value, "updated_at": aware_now_iso()}
            )

    @app.delete("/tasks/{task_id}")
    async def cancel_task(task_id: int, request: Request, token: Token) -> dict[str, Any]:
        st = _state(request)
        with _fails_as("Failed to cancel task"):
            task = st.tasks.get(task_id)
            if task is None:
                raise _not_found()
            requester = f"droplet_{token.get('droplet_id')}"
            if "admin" not in token.get("permissions", []) and task.created_by != requester:
                raise HTTPException(
                    status_code=403, detail="Only task creator or admin can cancel tasks"
                )
            if task.status in TERMINAL:
                raise HTTPException(
                    status_code=400, detail=f"Cannot cancel task in terminal state: {task.status}"
                )
            try:
                st.transition(task, "cancelled", requester, "Cancelled by user request")
            except TransitionError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from exc
            return Udc().wrap(
                {"task_id": task_id, "status": "cancelled", "cancelled_at": aware_now_iso()}
            )


def _mount_messaging(app: FastAPI) -> None:
    @app.post("/message")
    async def receive_message(
        message: UDCMessage, request: Request, token: OptionalToken
    ) -> dict[str, Any]:
        st = _state(request)
        source = str(message.source)
        trace_id = str(message.trace_id)
        if message.message_type.value not in ENVELOPE_MESSAGE_TYPES:
            error = _envelope_error({"message_type": message.message_type.value})
            return _error_envelope(f"Invalid UDC message format: {error}", source, trace_id)
        if message.target != ORCHESTRATOR_ID:
            return _error_envelope(
                f"Message target {message.target} does not match this droplet ({SELF_SOURCE})",
                source,
                trace_id,
            )
        result: Any = None
        error_text: str | None = None
        try:
            if message.message_type == MessageType.COMMAND:
                result = _command(st, message)
            elif message.message_type == MessageType.QUERY:
                result = _query(st, message)
            else:
                result = {"acknowledged": True, "message": "Message received but not processed"}
        except Exception as exc:
            error_text = str(exc)
        return envelope(
            {
                "received": True,
                "processed_at": utcnow().isoformat(),
                "result": result,
                "error": error_text,
            },
            target=source,
            trace_id=trace_id,
            source=SELF_SOURCE,
        )

    @app.post("/send")
    async def send(
        target_droplet_id: int,
        message_type: str,
        payload: dict[str, Any],
        request: Request,
        token: Token,
    ) -> dict[str, Any]:
        st = _state(request)
        target = st.droplets.get(target_droplet_id)
        if target is None:
            raise _not_found()
        trace_id = str(uuid.uuid4())
        outgoing = {
            "udc_version": "1.0",
            "trace_id": trace_id,
            "source": SELF_SOURCE,
            "target": f"droplet-{target_droplet_id}",
            "message_type": message_type,
            "timestamp": utcnow().isoformat(),
            "payload": payload,
        }
        await _deliver(st, target, outgoing, wait=st.send_timeout)
        return {
            "sent": True,
            "target_droplet": target.name,
            "target_droplet_id": target_droplet_id,
            "message_delivered_at": utcnow().isoformat(),
            "trace_id": trace_id,
        }

    @app.post("/broadcast")
    async def broadcast(
        message_type: str,
        payload: dict[str, Any],
        request: Request,
        token: Token,
        capability_filter: str | None = None,
    ) -> dict[str, Any]:
        st = _state(request)
        if "admin" not in token.get("permissions", []):
            raise HTTPException(status_code=403, detail="Admin permission required for broadcast")
        targets = [
            d
            for d in st.droplets.values()
            if d.status == "active"
            and (
                capability_filter in d.capabilities
                if capability_filter
                else d.droplet_id != ORCHESTRATOR_ID
            )
        ]
        trace_id = str(uuid.uuid4())
        results: list[dict[str, Any]] = []
        for d in targets:
            outgoing = {
                "udc_version": "1.0",
                "trace_id": trace_id,
                "source": SELF_SOURCE,
                "target": f"droplet-{d.droplet_id}",
                "message_type": message_type,
                "timestamp": utcnow().isoformat(),
                "payload": payload,
            }
            try:
                await _deliver(st, d, outgoing, wait=min(5.0, st.send_timeout))
                results.append({"droplet_id": d.droplet_id, "name": d.name, "status": "sent"})
            except HTTPException as exc:
                results.append(
                    {
                        "droplet_id": d.droplet_id,
                        "name": d.name,
                        "status": "failed",
                        "error": str(exc.detail),
                    }
                )
        sent = sum(1 for r in results if r["status"] == "sent")
        return {
            "broadcast": True,
            "total_droplets": len(targets),
            "successful": sent,
            "failed": len(results) - sent,
            "results": results,
            "trace_id": trace_id,
        }


async def _deliver(
    st: OrchestratorState, target: DropletRow, outgoing: dict[str, Any], *, wait: float
) -> None:
    """POST the envelope to `<endpoint>/message`: no Authorization header, naive timestamp."""
    client = st.http or httpx2.AsyncClient(timeout=wait)
    try:
        response = await client.post(
            f"{target.endpoint}/message",
            json=outgoing,
            headers={"Content-Type": "application/json"},
            timeout=wait,
        )
        response.raise_for_status()
    except httpx2.TimeoutException as exc:
        raise HTTPException(
            status_code=504, detail=f"Timeout sending message to {target.name}"
        ) from exc
    except httpx2.HTTPStatusError as exc:
        raise HTTPException(
            status_code=502, detail=f"Error from {target.name}: {exc.response.status_code}"
        ) from exc
    except Exception as exc:
        raise HTTPException(status_code=500, detail=f"Failed to send message: {exc}") from exc
    finally:
        if client is not st.http:
            await client.aclose()


def _error_envelope(text: str, target: str, trace_id: str | None) -> dict[str, Any]:
    payload = {
        "status": "error",
        "error": {"code": "INVALID_REQUEST", "message": text, "details": {}},
        "timestamp": aware_now_iso(),
    }
    return envelope(
        payload, target=target, message_type="error", trace_id=trace_id, source=SELF_SOURCE
    )


def _command(st: OrchestratorState, message: UDCMessage) -> dict[str, Any]:
    command = message.payload.get("command")
    if command == "create_task":
        data = message.payload.get("task_data", {}) or {}
        try:
            spec = TaskCreate(
                task_type=data.get("task_type", "custom"),
                title=data.get("title", "Task from UDC message"),
                description=data.get("description"),
                required_capability=data.get("required_capability"),
                priority=data.get("priority", 5),
                payload=data.get("payload", {}),
                created_by=f"droplet_{message.source}",
            )
            task = st.create_task(spec, created_by=spec.created_by or "", history_by=None)
        except Exception as exc:
            return {"error": f"Failed to create task: {exc}", "command": "create_task"}
        return {
            "command": "create_task",
            "task_id": task.id,
            "trace_id": task.trace_id,
            "status": task.status,
        }
    if command == "cancel_task":
        task_id = message.payload.get("task_id")
        if task_id is not None and not isinstance(task_id, int):
            return {
                "error": f"Failed to cancel task: invalid input for query argument $1: {task_id!r}",
                "command": "cancel_task",
            }
        target = st.tasks.get(task_id) if task_id is not None else None
        if target is not None and target.status not in TERMINAL:
            target.status, target.completed_at = "cancelled", utcnow()
        return {"command": "cancel_task", "task_id": task_id, "status": "cancelled"}
    return {
        "error": f"Unknown command: {command}",
        "supported_commands": ["create_task", "cancel_task"],
    }


def _query(st: OrchestratorState, message: UDCMessage) -> dict[str, Any]:
    query = message.payload.get("query")
    if query == "task_status":
        task_id = message.payload.get("task_id")
        if task_id is not None and not isinstance(task_id, int):
            raise ValueError(f"invalid input for query argument $1: {task_id!r}")
        task = st.tasks.get(task_id) if task_id is not None else None
        if task is None:
            return {"error": f"Task {task_id} not found"}
        return {
            "query": "task_status",
            "task": {
                "id": task.id,
                "trace_id": task.trace_id,
                "status": task.status,
                "created_at": iso(task.created_at),
                "completed_at": iso(task.completed_at),
            },
        }
    if query == "droplet_list":
        return {
            "query": "droplet_list",
            "droplets": [
                {"id": d.droplet_id, "name": d.name, "status": d.status}
                for d in sorted(st.droplets.values(), key=lambda d: d.pk)
                if d.status == "active"
            ],
        }
    if query == "system_status":
        connections = len(st.task_sockets) + len(st.droplet_sockets)
        return {
            "query": "system_status",
            "system": {
                "healthy": True,
                "database_connected": True,
                "websocket_connections": connections,
            },
        }
    return {
        "error": f"Unknown query: {query}",
        "supported_queries": ["task_status", "droplet_list", "system_status"],
    }


def _mount_websockets(app: FastAPI) -> None:
    async def channel(websocket: WebSocket, token: str | None, sockets_name: str) -> None:
        st = _state(websocket)
        try:
            if token is None:
                raise HTTPException(status_code=401, detail="Not authenticated")
            _verify(st, token)
        except HTTPException as exc:
            await websocket.close(code=1008, reason=f"Authentication failed: {exc.detail}")
            return
        sockets: set[WebSocket] = getattr(st, sockets_name)
        await websocket.accept()
        sockets.add(websocket)
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sockets.discard(websocket)

    @app.websocket("/ws/tasks")
    async def ws_tasks(websocket: WebSocket, token: str | None = None) -> None:
        await channel(websocket, token, "task_sockets")

    @app.websocket("/ws/droplets")
    async def ws_droplets(websocket: WebSocket, token: str | None = None) -> None:
        await channel(websocket, token, "droplet_sockets")


def _mount_auth(app: FastAPI) -> None:
    @app.post("/auth/token")
    async def issue_token(body: TokenRequest, request: Request) -> dict[str, Any]:
        st = _state(request)
        secret = st.auth_secret or ""
        if not secret or body.secret_key != secret:
            raise HTTPException(status_code=401, detail="Invalid secret key")
        if body.droplet_id <= 0:
            raise HTTPException(status_code=400, detail="Invalid droplet_id")
        assert st.private_key_pem is not None
        now = int(time.time())
        claims = {
            "droplet_id": body.droplet_id,
            "permissions": ["read", "write"],
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        }
        encoded = jwt.encode(claims, load_private_key(st.private_key_pem), algorithm="RS256")
        return {"access_token": encoded, "token_type": "bearer", "expires_in": TOKEN_LIFETIME}


def _mount_sandbox(app: FastAPI) -> None:
    def toggle(request: Request, droplet_id: int, *, stop: bool) -> JSONResponse:
        st = _state(request)
        if droplet_id not in st.kept_alive:
            return JSONResponse(
                {"detail": f"droplet {droplet_id} is not kept alive by the sandbox"},
                status_code=404,
            )
        if stop:
            st.stopped_heartbeats.add(droplet_id)
        else:
            st.stopped_heartbeats.discard(droplet_id)
        return JSONResponse(
            {"droplet_id": droplet_id, "heartbeats": "stopped" if stop else "running"}
        )

    @app.post("/_sandbox/droplets/{droplet_id}/stop-heartbeats", tags=["sandbox-only"])
    async def stop_heartbeats(droplet_id: int, request: Request) -> JSONResponse:
        return toggle(request, droplet_id, stop=True)

    @app.post("/_sandbox/droplets/{droplet_id}/start-heartbeats", tags=["sandbox-only"])
    async def start_heartbeats(droplet_id: int, request: Request) -> JSONResponse:
        return toggle(request, droplet_id, stop=False)

    @app.post("/_sandbox/tick", tags=["sandbox-only"])
    async def tick(request: Request) -> dict[str, Any]:
        st = _state(request)
        await st.keepalive()
        inactive = await st.run_health_check()
        return {"inactive": inactive, "routed": st.route_pending()}
