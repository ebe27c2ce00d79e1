"""Typed dependencies: who is calling, and the services a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.errors import ApiError
from app.models.udc import ErrorCode
from app.services.runtime import Runtime
from app.utils.jwt import Principal, TokenInvalid, verify_token

_CHALLENGE = 'Bearer realm="droplet-12"'


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _unauthorized(message: str, *, error: str = "invalid_token") -> ApiError:
    return ApiError(
        401,
        message,
        code=ErrorCode.UNAUTHORIZED,
        headers={"WWW-Authenticate": f'{_CHALLENGE}, error="{error}"'},
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when absent."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        raise _unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate(runtime: Runtime, token: str | None) -> Principal:
    if token is None:
        raise ApiError(
            401,
            "Authentication required: send 'Authorization: Bearer <token>'",
            code=ErrorCode.UNAUTHORIZED,
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    pem = runtime.public_keys.pem
    if pem is None:
        raise _unauthorized("No verification key is configured on this droplet")
    try:
        return verify_token(
            token,
            public_key_pem=pem,
            issuer=runtime.settings.jwt_issuer,
            audience=runtime.settings.jwt_audience,
        )
    except TokenInvalid as exc:
        raise _unauthorized(str(exc)) from exc


def require_principal(request: Request, runtime: RuntimeDep) -> Principal:
    return authenticate(runtime, bearer_token(request.headers.get("authorization")))


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]

AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid bearer token (standard error body)"},
}
