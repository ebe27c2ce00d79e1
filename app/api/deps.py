"""Typed dependencies: who is calling, and the services a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.errors import ApiError
from app.models.udc import ErrorCode
from app.services.runtime import Runtime
from app.utils.jwt import Principal, TokenInvalid, verify_token

_CHALLENGE = 'Bearer realm="droplet-12"'


# Dependencies are `async def` so FastAPI runs them on the loop: a plain `def` would cost a
# thread-pool hop per dependency per request on the hot path.
async def get_runtime(request: Request) -> Runtime:
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


async def require_principal(request: Request, runtime: RuntimeDep) -> Principal:
    return authenticate(runtime, bearer_token(request.headers.get("authorization")))


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]

AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid bearer token (standard error body)"},
}


ANONYMOUS = Principal(
    subject="anonymous", permissions=frozenset({"read", "write"}), authenticated=False
)


def chat_principal_from(runtime: Runtime, authorization: str | None, query_token: str | None
                        ) -> Principal:
    """The caller of a chat channel: verified with CHAT_AUTH=jwt, anonymous with `none`."""
    if runtime.settings.effective_chat_auth == "none":
        return ANONYMOUS
    token = bearer_token(authorization) if authorization else (query_token or None)
    return authenticate(runtime, token)


async def require_chat_principal(request: Request, runtime: RuntimeDep) -> Principal:
    return chat_principal_from(runtime, request.headers.get("authorization"), None)


ChatPrincipal = Annotated[Principal, Depends(require_chat_principal)]


def client_in_allowlist(runtime: Runtime, host: str | None) -> bool:
    import ipaddress

    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for network in runtime.settings.inbound_allowlist:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


async def require_admin(
    request: Request, runtime: RuntimeDep, principal: ChatPrincipal
) -> Principal:
    """Admin operations: the `admin` permission with CHAT_AUTH=jwt; an operator network without."""
    if principal.authenticated:
        if not principal.can("admin"):
            raise ApiError(403, "This operation needs the 'admin' permission",
                           code=ErrorCode.FORBIDDEN)
        return principal
    host = request.client.host if request.client else None
    if not client_in_allowlist(runtime, host):
        raise ApiError(
            403,
            "Listing or clearing all sessions is only allowed from an operator network "
            "(INBOUND_ALLOWLIST) or with an admin token (CHAT_AUTH=jwt)",
            code=ErrorCode.FORBIDDEN,
        )
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def rate_limit_key(principal: Principal, host: str | None) -> str:
    return f"id:{principal.subject}" if principal.authenticated else f"ip:{host or 'unknown'}"


async def check_rate(runtime: Runtime, key: str) -> None:
    """Raise the standard 429 when `key` is over its chat-turn budget."""
    if runtime.rate_limiter is None:
        return
    decision = await runtime.rate_limiter.hit(key)
    if not decision.allowed:
        raise ApiError(
            429,
            f"Too many chat turns; try again in {decision.retry_after_s} s",
            code=ErrorCode.RATE_LIMITED,
            details={"retry_after_s": decision.retry_after_s,
                     "limit_per_minute": runtime.settings.chat_rate_limit_per_minute},
            headers={"Retry-After": str(decision.retry_after_s)},
        )


async def enforce_chat_rate(request: Request, runtime: RuntimeDep,
                            principal: ChatPrincipal) -> Principal:
    host = request.client.host if request.client else None
    await check_rate(runtime, rate_limit_key(principal, host))
    return principal


RateLimitedPrincipal = Annotated[Principal, Depends(enforce_chat_rate)]
