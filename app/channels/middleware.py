"""One pure-ASGI middleware for every HTTP request: trace id, body limit, headers, log, metrics.

Pure ASGI (not BaseHTTPMiddleware) because it sits on the hot path of every turn.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.channels.errors import error_body
from app.domain.udc import ErrorCode
from app.ops.metrics import Metrics

log = structlog.get_logger("app.http")

_TRACE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_QUIET_PATHS = frozenset({"/health", "/metrics"})


class _BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope.setdefault("state", {})["trace_id"] = self._trace_id(scope)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        trace_id = self._trace_id(scope)
        scope.setdefault("state", {})["trace_id"] = trace_id
        https = scope.get("scheme") == "https" or _header(scope, b"x-forwarded-proto") == "https"
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-trace-id", trace_id.encode()))
                headers.extend(_SECURITY_HEADERS)
                if https:
                    headers.append(_HSTS)
                message["headers"] = headers
            await send(message)

        declared = _header(scope, b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _BodyTooLarge
            await self.app(scope, self._limited(receive), send_wrapper)
        except _BodyTooLarge:
            if response_started:
                raise
            await self._reject_too_large(send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                method=scope["method"], route=route_path, status=status, seconds=elapsed
            )
            if scope["path"] not in _QUIET_PATHS or status >= 400:
                log.info(
                    "http_request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    trace_id=trace_id,
                )

    @staticmethod
    def _trace_id(scope: Scope) -> str:
        given = _header(scope, b"x-trace-id")
        if given and _TRACE_ID.match(given):
            return given
        return str(uuid.uuid4())

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises HTTPException from body reading, so the error handler
                    # answers in the standard shape; any other exception would become a 400.
                    raise HTTPException(413, f"Request body too large (limit {limit} bytes)")
            return message

        return wrapped

    async def _reject_too_large(self, send: Send) -> None:
        body = json.dumps(
            error_body(
                ErrorCode.INVALID_REQUEST,
                f"Request body too large (limit {self.max_body_bytes} bytes)",
                {"limit_bytes": self.max_body_bytes},
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
