"""A contract-faithful stand-in for the mesh Registry (droplet 1).

Reproduces what `shared/contracts/mesh.md` §1 and the transcript show of the public Registry:

- `X-Registry-Key` on `/registry/*` and `/dashboard`, else 401 `{"detail":"unauthorized"}`;
- `POST /registry/register`: flat body, `id` or `fqdn` (id wins), 201 `{"id": ...}`; every field
  not sent is overwritten with null (`cost_hour` with 0.0); 400 `{"detail":"id or fqdn required"}`;
- `POST /registry/heartbeat {id,cpu,mem,disk}`: percentages clamped to 0-100, missing ones become
  0.0; 200 `{"status":"ok"}`; 404 `{"detail":"unknown droplet"}`;
- `GET /registry/droplets` (list of rows, registration order) and `GET /dashboard`;
- rows are `healthy` for `stale_after` seconds (180 by default) after `last_seen`, then `down`;
- open `/health`, `/capabilities`, `/state`, `/dependencies`, `/version`, `/metrics`.

The Registry's own HS256 `/message` and `/send` are not reproduced.

Deployed variant (only when `jwks_private_key_pem` is given): `POST /auth/token?droplet_id=12` with
the registry key answers `{"token": <RS256 JWT>, ...}` with `iss`, `sub`, `aud`, `iat`, `exp`,
`role`, `scope`; `GET /.well-known/jwks.json` answers `{"public_key": "<PEM>"}` (not a real JWKS).

Sandbox-only endpoints (no real Registry has them): `/_sandbox/fault` (see `sandbox.faults`) and
`POST /_sandbox/droplets/{id}/stop-heartbeats` / `start-heartbeats` for the seeded rows'
internal heartbeats (`id` as in the row, e.g. `droplet-16`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import psutil
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from sandbox.faults import FaultMiddleware, FaultState, fault_router
from sandbox.keys import load_private_key, public_pem_from_private
from sandbox.seed import SEED_DROPLETS, STALE_DROPLET_ID

log = logging.getLogger("sandbox.registry")

REGISTER_FIELDS = ("name", "fqdn", "ip", "role", "env", "version")
TOKEN_ISSUER = "registry.fullpotential.ai"
TOKEN_AUDIENCE = "fullpotential.droplets"
TOKEN_SCOPE = ["registry:heartbeat", "registry:register"]


@dataclass
class RegistryState:
    registry_key: str
    stale_after: float
    token_ttl: float
    jwks_private_key_pem: bytes | None
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    seeded: list[str] = field(default_factory=list)
    stopped_heartbeats: set[str] = field(default_factory=set)
    boot: float = field(default_factory=time.time)

    def register(self, body: dict[str, Any]) -> Any:
        droplet_id = body.get("id") or body.get("fqdn")
        if not droplet_id:
            raise HTTPException(status_code=400, detail="id or fqdn required")
        key = str(droplet_id)
        row = self.rows.get(key, {"id": key, "cpu": None, "mem": None, "disk": None})
        row.update({name: body.get(name) for name in REGISTER_FIELDS})
        row["cost_hour"] = _as_float(body.get("cost_hour") or 0.0)
        self.rows[key] = {
            name: row.get(name)
            for name in ("id", *REGISTER_FIELDS, "cost_hour", "cpu", "mem", "disk")
        }
        self.last_seen[key] = time.time()
        return droplet_id

    def heartbeat(self, body: dict[str, Any]) -> bool:
        if "id" not in body or str(body["id"]) not in self.rows:
            return False
        key = str(body["id"])
        row = self.rows[key]
        for name in ("cpu", "mem", "disk"):
            row[name] = min(max(_as_float(body.get(name) or 0), 0.0), 100.0)
        self.last_seen[key] = time.time()
        return True

    def listing(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for key, row in self.rows.items():
            seen = self.last_seen[key]
            status = "healthy" if now - seen < self.stale_after else "down"
            out.append({**row, "last_seen": int(seen), "status": status})
        return out

    def dashboard(self) -> dict[str, Any]:
        rows = self.listing()
        healthy = sum(1 for r in rows if r["status"] == "healthy")
        return {
            "summary": {
                "total": len(rows),
                "healthy": healthy,
                "down": len(rows) - healthy,
                "cost_hour_total": round(sum(float(r["cost_hour"] or 0.0) for r in rows), 6),
            },
            "droplets": rows,
        }

    def seed(self) -> None:
        for i, d in enumerate(SEED_DROPLETS):
            self.register(
                {
                    "id": d.registry_id,
                    "name": d.name.lower().replace(" ", "-"),
                    "fqdn": d.fqdn,
                    "ip": f"10.0.0.{d.droplet_id}",
                    "role": d.role,
                    "env": "dev",
                    "version": d.version,
                    "cost_hour": d.cost_hour,
                }
            )
            self.heartbeat(
                {"id": d.registry_id, "cpu": 5 + 7 * i, "mem": 30 + 4 * i, "disk": 40 + i}
            )
            self.seeded.append(d.registry_id)
        self.stopped_heartbeats.add(f"droplet-{STALE_DROPLET_ID}")

    def seed_heartbeats(self) -> None:
        for key in self.seeded:
            if key not in self.stopped_heartbeats and key in self.rows:
                row = self.rows[key]
                self.heartbeat(
                    {"id": key, "cpu": row["cpu"], "mem": row["mem"], "disk": row["disk"]}
                )


class _Unparseable(Exception):
    """A heartbeat percentage that is not a number: the real Registry crashes (plain 500)."""


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise _Unparseable(str(exc)) from exc


def _state(request: Request) -> RegistryState:
    state: RegistryState = request.app.state.registry
    return state


def _require_key(request: Request) -> None:
    given = request.headers.get("x-registry-key", "")
    if not hmac.compare_digest(given.encode(), _state(request).registry_key.encode()):
        raise HTTPException(status_code=401, detail="unauthorized")


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # Not observed on the real Registry; a plain 400 keeps clients honest.
        raise HTTPException(status_code=400, detail="JSON object body required")
    return body


def create_registry_app(
    *,
    registry_key: str,
    jwks_private_key_pem: bytes | None = None,
    stale_after: float = 180.0,
    seed: bool = False,
    seed_heartbeat_interval: float | None = None,
    token_ttl: float = 86400.0,
) -> FastAPI:
    """Build a Registry stand-in; all state lives on `app.state.registry` (per app instance).

    `jwks_private_key_pem` turns on the deployed variant (`/auth/token`, `/.well-known/jwks.json`).
    Seeded rows heartbeat every `seed_heartbeat_interval` seconds (default `stale_after / 3`).
    """
    state = RegistryState(
        registry_key=registry_key,
        stale_after=stale_after,
        token_ttl=token_ttl,
        jwks_private_key_pem=jwks_private_key_pem,
    )
    if seed:
        state.seed()
    interval = seed_heartbeat_interval or max(stale_after / 3, 0.05)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_heartbeat_loop(state, interval)) if state.seeded else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="Registry (sandbox)", version="sandbox", lifespan=lifespan)
    app.state.registry = state
    app.state.faults = FaultState()
    app.add_middleware(FaultMiddleware, faults=app.state.faults)

    @app.exception_handler(_Unparseable)
    async def unparseable(request: Request, exc: _Unparseable) -> PlainTextResponse:
        return PlainTextResponse("Internal Server Error", status_code=500)

    keyed = [Depends(_require_key)]

    @app.post("/registry/register", status_code=201, dependencies=keyed)
    async def register(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        return {"id": _state(request).register(body)}

    @app.post("/registry/heartbeat", dependencies=keyed)
    async def heartbeat(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        if not _state(request).heartbeat(body):
            raise HTTPException(status_code=404, detail="unknown droplet")
        return {"status": "ok"}

    @app.get("/registry/droplets", dependencies=keyed)
    async def droplets(request: Request) -> list[dict[str, Any]]:
        return _state(request).listing()

    @app.get("/dashboard", dependencies=keyed)
    async def dashboard(request: Request) -> dict[str, Any]:
        return _state(request).dashboard()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/capabilities")
    async def capabilities() -> dict[str, Any]:
        return {
            "udc_version": "1.0",
            "features": ["registry", "airtable_sync", "orchestrator_forward"],
            "endpoints": [
                "/health",
                "/capabilities",
                "/state",
                "/dependencies",
                "/message",
                "/send",
                "/reload-config",
                "/shutdown",
                "/emergency-stop",
                "/metrics",
                "/logs",
                "/events",
                "/version",
                "/proof",
            ],
        }

    @app.get("/state")
    async def get_state(request: Request) -> dict[str, Any]:
        return {
            "cpu": psutil.cpu_percent(interval=None),
            "mem": psutil.virtual_memory().percent,
            "uptime_sec": int(time.time() - _state(request).boot),
        }

    @app.get("/dependencies")
    async def dependencies(request: Request) -> dict[str, Any]:
        return {"connected": [row["fqdn"] for row in _state(request).rows.values()]}

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return {"build": "local", "commit": "", "time": ""}

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        uptime = int(time.time() - _state(request).boot)
        text = (
            "# TYPE droplet_cpu_percent gauge\n"
            f"droplet_cpu_percent {psutil.cpu_percent(interval=None)}\n"
            "# TYPE droplet_mem_percent gauge\n"
            f"droplet_mem_percent {psutil.virtual_memory().percent}\n"
            "# TYPE droplet_uptime_seconds gauge\n"
            f"droplet_uptime_seconds {uptime}\n"
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    if jwks_private_key_pem is not None:
        public_pem = public_pem_from_private(jwks_private_key_pem).decode()

        @app.post("/auth/token", dependencies=keyed)
        async def token(droplet_id: str, request: Request) -> dict[str, Any]:
            st = _state(request)
            now = int(time.time())
            claims = {
                "iss": TOKEN_ISSUER,
                "sub": droplet_id,
                "aud": TOKEN_AUDIENCE,
                "iat": now,
                "exp": now + int(st.token_ttl),
                "role": "droplet",
                "scope": TOKEN_SCOPE,
            }
            encoded = jwt.encode(claims, load_private_key(jwks_private_key_pem), algorithm="RS256")
            return {"token": encoded, "token_type": "bearer", "expires_in": int(st.token_ttl)}

        @app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return {"public_key": public_pem}

    app.include_router(fault_router())

    @app.post("/_sandbox/droplets/{droplet_id}/stop-heartbeats", tags=["sandbox-only"])
    async def stop_heartbeats(droplet_id: str, request: Request) -> JSONResponse:
        return _toggle_heartbeats(_state(request), droplet_id, stop=True)

    @app.post("/_sandbox/droplets/{droplet_id}/start-heartbeats", tags=["sandbox-only"])
    async def start_heartbeats(droplet_id: str, request: Request) -> JSONResponse:
        return _toggle_heartbeats(_state(request), droplet_id, stop=False)

    return app


def _toggle_heartbeats(state: RegistryState, droplet_id: str, *, stop: bool) -> JSONResponse:
    if droplet_id not in state.seeded:
        return JSONResponse({"detail": f"{droplet_id} is not a seeded row"}, status_code=404)
    if stop:
        state.stopped_heartbeats.add(droplet_id)
    else:
        state.stopped_heartbeats.discard(droplet_id)
    return JSONResponse({"id": droplet_id, "heartbeats": "stopped" if stop else "running"})


async def _heartbeat_loop(state: RegistryState, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            state.seed_heartbeats()
        except Exception:
            log.exception("seeded heartbeat failed")
