"""Typed dependencies: who is calling (through the gate), and the services a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.channels.gate import Gate
from app.domain.identity import Caller
from app.runtime import Runtime


# Dependencies are `async def` so FastAPI runs them on the loop: a plain `def` would cost a
# thread-pool hop per dependency per request on the hot path.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


GateDep = Annotated[Gate, Depends(get_gate)]


def client_address(request: Request) -> str | None:
    """The client's address, after trusted-proxy resolution (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else None


async def require_caller(request: Request, gate: GateDep) -> Caller:
    """A verified token (the UDC endpoints)."""
    return gate.api_caller(
        authorization=request.headers.get("authorization"), address=client_address(request)
    )


CurrentCaller = Annotated[Caller, Depends(require_caller)]

AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid bearer token (standard error body)"},
    403: {"description": "The token lacks the permission (standard error body)"},
}


async def require_chat_caller(request: Request, gate: GateDep) -> Caller:
    """A chat channel's caller: a token with CHAT_AUTH=jwt, the developer with `none`."""
    return gate.chat_caller(
        authorization=request.headers.get("authorization"),
        query_token=None,
        address=client_address(request),
    )


ChatCaller = Annotated[Caller, Depends(require_chat_caller)]


async def throttled_chat_caller(caller: ChatCaller, gate: GateDep) -> Caller:
    await gate.throttle(caller, "turn")
    return caller


ThrottledChatCaller = Annotated[Caller, Depends(throttled_chat_caller)]


async def require_admin(caller: ChatCaller, gate: GateDep) -> Caller:
    gate.require_admin(caller, to="This operation")
    return caller


AdminCaller = Annotated[Caller, Depends(require_admin)]


async def operator_caller(request: Request, runtime: RuntimeDep, gate: GateDep) -> None:
    """/metrics and /ws/connections: public, or (OPERATOR_ENDPOINTS=admin) an admin token."""
    if runtime.settings.effective_operator_endpoints == "public":
        return
    caller = gate.api_caller(
        authorization=request.headers.get("authorization"), address=client_address(request)
    )
    gate.require(caller, "admin", to="This operator endpoint")


OperatorAccess = Depends(operator_caller)
