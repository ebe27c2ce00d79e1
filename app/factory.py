"""The app factory: `create_app(settings)` builds every component once (app.wiring), mounts the
routes and middleware, and returns the app; its lifespan starts and stops the background work.

Importing this module reads no environment and builds nothing; `app.main` is the entry point.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__
from app.channels.deps import GateDep
from app.channels.errors import ERROR_RESPONSES, install_error_handlers
from app.channels.http_limits import guarded_protocol
from app.channels.middleware import RequestMiddleware
from app.channels.routes import chat, mesh, sessions, udc, web, ws
from app.channels.ws_protocol import LeanWebSocketProtocol
from app.config import Settings
from app.ops import deferred_imports
from app.ops.gc_freeze import GcFreezer
from app.utils.logging import configure_logging
from app.wiring import components as wiring

log = structlog.get_logger("app.main")  # the name operators already filter on

GC_FREEZE_INTERVAL_S = 300.0
"""How often what accumulated since is moved out of the collector's way (see app.ops.gc_freeze)."""
GC_FREEZE_BURST = 500
"""That many more WebSockets since the last freeze are frozen at once, not at the interval."""

DESCRIPTION = (
    "Droplet 12 of the mesh: operate the Registry and the Orchestrator in natural language. "
    "Every error answers in the standard UDC error shape."
)


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.droplet_secret,
        settings.registry_api_key,
        settings.orchestrator_token,
        settings.gemini_api_key,
        settings.llm_api_key,
    ]
    return [v.get_secret_value() for v in values if v is not None]


def _configure_logging(settings: Settings) -> None:
    json_lines = settings.log_format == "json" or (
        settings.log_format == "auto" and not settings.is_development
    )
    configure_logging(level=settings.log_level, json_lines=json_lines, secrets=_secrets(settings))


def _lifespan(
    components: wiring.Components,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settings = components.settings
        for feature in settings.disabled_features():
            log.info("feature_disabled", feature=feature)
        await wiring.start(components)
        freezer = GcFreezer(
            interval_s=GC_FREEZE_INTERVAL_S,
            population=components.hub.count,
            burst=GC_FREEZE_BURST,
        )
        refreeze = asyncio.create_task(freezer.run(), name="gc-freeze")
        # What only requests need, imported now on a worker thread rather than by the first
        # request on the loop (app.ops.deferred_imports).
        warming = asyncio.create_task(deferred_imports.warm(), name="deferred-imports")
        log.info(
            "service_started",
            droplet_id=settings.droplet_id,
            port=settings.port,
            environment=settings.environment.value,
            chat_auth=settings.effective_chat_auth,
            version=__version__,
        )
        try:
            yield
        finally:
            refreeze.cancel()
            warming.cancel()
            await wiring.stop(components)
            log.info("service_stopped")

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check_runnable()
    _configure_logging(settings)
    components = wiring.build(settings)
    docs = settings.effective_api_docs

    app = FastAPI(
        title="Chat Orchestrator",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(components),
        debug=False,
        responses=ERROR_RESPONSES,
        docs_url="/docs" if docs == "public" else None,
        redoc_url="/redoc" if docs == "public" else None,
        openapi_url="/openapi.json" if docs == "public" else None,
    )
    # Read by the providers in app.channels.deps, one service each.
    app.state.components = components
    install_error_handlers(app)
    for router in (udc.router, mesh.router, chat.router, sessions.router, ws.router):
        app.include_router(router)
    if docs == "admin":
        _admin_openapi(app)
    web.mount(app)

    # Innermost: POST /api/chat answered without FastAPI's per-request machinery, inside CORS
    # and the request middleware like every route (chat.ChatEndpoint says why and how).
    app.add_middleware(
        chat.ChatPath,
        endpoint=chat.ChatEndpoint(
            gate=components.gate,
            turns=components.conversation,
            handlers=app.exception_handlers,
            route=_route(chat.router, "/api/chat", "POST"),
        ),
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials="*" not in settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Trace-Id"],
        expose_headers=["X-Trace-Id", "Retry-After"],
    )
    app.add_middleware(
        RequestMiddleware, metrics=components.metrics, max_body_bytes=settings.max_body_bytes
    )
    app.add_middleware(
        ws.SocketPath,
        path="/ws",
        endpoint=ws.ChatSocket(
            settings=settings,
            gate=components.gate,
            hub=components.hub,
            turns=components.conversation,
            metrics=components.metrics,
            summarizer=components.summarizer,
        ),
    )
    # Outermost: the client address every policy sees is the proxy's only when the proxy is
    # not trusted (FORWARDED_ALLOW_IPS), whoever started the server.
    app.add_middleware(
        ProxyHeadersMiddleware,
        trusted_hosts=settings.forwarded_allow_ips or [],
    )
    return app


def _route(router: APIRouter, path: str, method: str) -> APIRoute:
    return next(
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    )


def _admin_openapi(app: FastAPI) -> None:
    """API_DOCS=admin: the OpenAPI document for admin tokens only (no browsable pages)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(_admin_only)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())


async def _admin_only(request: Request, gate: GateDep) -> None:
    caller = await gate.api_caller(
        authorization=request.headers.get("authorization"),
        address=request.client.host if request.client else None,
    )
    gate.require(caller, "admin", to="The API description")


def server_config(application: FastAPI, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The shipped server: header size and time bounded, proxies trusted only as configured."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "proxy_headers": False,  # the app's own ProxyHeadersMiddleware does it
        "http": guarded_protocol(
            max_head_bytes=settings.max_header_bytes, head_timeout_s=settings.header_timeout_s
        ),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "ws": LeanWebSocketProtocol,
        "ws_per_message_deflate": False,
        "ws_max_size": 64 * 1024,
    }
    options.update(overrides)
    return uvicorn.Config(application, **options)
