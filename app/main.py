"""App factory and lifespan: builds every component once, starts and stops the background work."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import ValidationError

from app import __version__
from app.api.errors import ERROR_RESPONSES, install_error_handlers
from app.api.middleware import RequestMiddleware
from app.api.routes import chat, mesh, sessions, udc, web, ws
from app.config import ConfigError, Settings
from app.services.container import build_runtime, start_runtime, stop_runtime
from app.services.runtime import Runtime
from app.utils.logging import configure_logging

log = structlog.get_logger("app.main")

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


def _lifespan(runtime: Runtime) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settings = runtime.settings
        for feature in settings.disabled_features():
            log.info("feature_disabled", feature=feature)
        await start_runtime(runtime)
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
            await stop_runtime(runtime)
            log.info("service_stopped")

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check_runnable()
    _configure_logging(settings)
    runtime = build_runtime(settings)

    app = FastAPI(
        title="Chat Orchestrator",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(runtime),
        debug=False,
        responses=ERROR_RESPONSES,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for router in (udc.router, mesh.router, chat.router, sessions.router, ws.router):
        app.include_router(router)
    web.mount(app)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials="*" not in settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Trace-Id"],
        expose_headers=["X-Trace-Id", "Retry-After"],
    )
    app.add_middleware(
        RequestMiddleware, metrics=runtime.metrics, max_body_bytes=settings.max_body_bytes
    )
    return app


def _build_or_exit() -> FastAPI:
    """Build the app, turning a configuration problem into one clear line and exit code 2."""
    try:
        return create_app()
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc.variable} {exc.reason}\n")
        raise SystemExit(2) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first.get("loc") else "settings"
        sys.stderr.write(f"configuration error: {variable} {first['msg']}\n")
        raise SystemExit(2) from None


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` resolves `app` lazily, so importing this module (tests, tools)
    # never builds an app or reads the environment.
    if name == "app":
        return _build_or_exit()
    raise AttributeError(name)


def main() -> None:
    application = _build_or_exit()
    settings: Settings = application.state.runtime.settings
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
    )


if __name__ == "__main__":
    main()
