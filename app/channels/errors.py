"""Every error leaves in the mesh's one shape; nothing internal leaks into `message`."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.conversation.service import ActionNotRecorded, SessionAccessDenied
from app.domain.udc import ErrorCode, ErrorDetail, ErrorResponse
from app.store.engine import unavailable
from app.store.sessions import SessionQuotaExceeded

log = structlog.get_logger(__name__)

STORE_UNAVAILABLE = "The session store is unavailable; try again shortly"
"""What a caller is told when the database cannot be reached (app.store.engine.unavailable)."""


def store_failure(exc: BaseException) -> tuple[str, dict[str, Any]] | None:
    """What a caller is told (a message and its details) when the store could not take the
    turn, whichever channel it came by; None for any other error. A write that ran before the
    store failed is named: it happened, though the history will not show it (its proposal was
    claimed before it ran, so another "yes" does not run it again: app/store/claims.py)."""
    if isinstance(exc, ActionNotRecorded):
        ran = ", ".join(exc.tools)
        message = (
            f"Carried out ({ran}), but the session store is unavailable, so this turn was not "
            "recorded (another yes will not run it again); check the result before repeating it"
        )
        return message, {"carried_out": exc.tools}
    if unavailable(exc):
        return STORE_UNAVAILABLE, {}
    return None


_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_REQUEST,
    409: ErrorCode.INVALID_REQUEST,
    413: ErrorCode.INVALID_REQUEST,
    415: ErrorCode.INVALID_REQUEST,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.RATE_LIMITED,
    502: ErrorCode.DEPENDENCY_UNAVAILABLE,
    503: ErrorCode.DEPENDENCY_UNAVAILABLE,
    504: ErrorCode.DEPENDENCY_UNAVAILABLE,
}


class ApiError(Exception):
    """Raised by routes and dependencies for an expected failure."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code or code_for_status(status_code)
        self.details = details or {}
        self.headers = headers


def code_for_status(status_code: int) -> ErrorCode:
    if status_code in _STATUS_CODES:
        return _STATUS_CODES[status_code]
    return ErrorCode.INTERNAL_ERROR if status_code >= 500 else ErrorCode.INVALID_REQUEST


def error_body(
    code: ErrorCode, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return ErrorResponse(
        error=ErrorDetail(code=code, message=message, details=details or {})
    ).model_dump(mode="json")


def error_response(
    status_code: int,
    message: str,
    *,
    code: ErrorCode | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code or code_for_status(status_code), message, details),
        status_code=status_code,
        headers=headers,
    )


_DEFAULT_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            # FastAPI puts the character offset where a field name would be ("12: JSON decode
            # error"); say what it is.
            where = [part for part in err.get("loc", ()) if part != "body"]
            reason = err.get("ctx", {}).get("error", "")
            at = f" at character {where[0]}" if where else ""
            problems.append(
                {"field": "body", "problem": f"not valid JSON{at}: {reason}".rstrip(": ")}
            )
            continue
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        problems.append({"field": ".".join(loc) or "body", "problem": str(err.get("msg", ""))})
    return {"errors": problems}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.message, code=exc.code, details=exc.details, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details["errors"][0] if details["errors"] else {"field": "body", "problem": ""}
        message = f"Invalid request: {first['field']}: {first['problem']}".rstrip(": ")
        return error_response(422, message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path}"
        elif isinstance(exc.detail, str) and exc.detail:
            message = exc.detail
        else:
            message = _DEFAULT_MESSAGES.get(exc.status_code, "Request failed")
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(SessionAccessDenied)
    async def _not_yours(_request: Request, exc: SessionAccessDenied) -> JSONResponse:
        # The same answer as for a session that does not exist: ids of others are not confirmed.
        return error_response(
            404,
            f"No session {exc.args[0]!r}",
            code=ErrorCode.NOT_FOUND,
            details={"session_id": exc.args[0]},
        )

    @app.exception_handler(SessionQuotaExceeded)
    async def _quota(_request: Request, exc: SessionQuotaExceeded) -> JSONResponse:
        return error_response(
            429,
            f"Session limit reached ({exc.limit} per identity); delete old sessions first",
            code=ErrorCode.RATE_LIMITED,
            details={"limit": exc.limit},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        failure = store_failure(exc)
        if failure is not None:
            # The database is down or unreachable: nothing of the turn was stored.
            log.warning("store_unavailable", error_type=type(exc.__cause__ or exc).__name__)
            message, details = failure
            return error_response(503, message, details=details)
        log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "Internal error; the trace id in X-Trace-Id identifies it")


# Documented on every operation: whatever goes wrong, the body is the standard error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Malformed request (standard error body)"),
        (401, "Missing or invalid bearer token"),
        (403, "Not allowed for this identity"),
        (404, "Not found"),
        (413, "Request body too large"),
        (422, "Invalid request (standard error body, with the fields in details.errors)"),
        (429, "Rate limited; Retry-After says when to try again"),
        (500, "Internal error (no internals in the message)"),
        (502, "A mesh peer failed"),
        (503, "A dependency is unavailable"),
    )
}
