"""The one gate every channel passes: who is calling, what it may do, and the turn it may start.

REST chat, `/api/process`, `/message`, `/send`, `/heartbeat`, every WebSocket frame and the
tasks the Orchestrator assigns all turn their request into a `Caller` and a `Turn` here. Nothing
downstream trusts a route's flag: permissions travel with the caller and are checked where a
tool runs; sessions are keyed by their owner's namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal

from app.channels.errors import ApiError
from app.channels.jwt import TokenInvalid, key_id, loaded, verify_token
from app.channels.rate_limit import RateLimiter
from app.config import Settings
from app.conversation.service import Turn
from app.domain.identity import SESSION_ID_RULE, Caller, Identity, Permission, session_key

# Re-exported: routes check session ids where they read them, with the gate's own rule.
from app.domain.identity import valid_session_id as valid_session_id
from app.domain.udc import ErrorCode
from app.mesh.keys import PublicKeySource
from app.tools.base import Channel

_CHALLENGE = 'Bearer realm="droplet-12"'

DEVELOPER = frozenset({"read", "write"})
"""What a tokenless caller may do while CHAT_AUTH=none (development only)."""

Bucket = Literal["turn", "mesh"]


def unauthorized(message: str, *, error: str | None = "invalid_token") -> ApiError:
    challenge = f'{_CHALLENGE}, error="{error}"' if error else _CHALLENGE
    return ApiError(
        401, message, code=ErrorCode.UNAUTHORIZED, headers={"WWW-Authenticate": challenge}
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, code=ErrorCode.FORBIDDEN)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when absent."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        raise unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _networks(values: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


class Gate:
    def __init__(
        self,
        *,
        settings: Settings,
        public_keys: PublicKeySource,
        turn_limiter: RateLimiter | None,
        mesh_limiter: RateLimiter | None,
    ) -> None:
        self._settings = settings
        self._keys = public_keys
        self._turn_limiter = turn_limiter
        self._mesh_limiter = mesh_limiter
        self._allowlist = _networks(settings.inbound_allowlist)

    async def aclose(self) -> None:
        for limiter in (self._turn_limiter, self._mesh_limiter):
            if limiter is not None:
                await limiter.aclose()

    # ---- who is calling --------------------------------------------------------------------

    async def verify(self, token: str | None, *, address: str | None = None) -> Caller:
        """A verified caller, or the standard 401."""
        if token is None:
            raise unauthorized(
                "Authentication required: send 'Authorization: Bearer <token>'", error=None
            )
        pem = self._keys.pem
        if pem is None:
            if self._keys.refreshable:
                # The publisher was unreachable so far: look again (in the background).
                self._keys.request_refresh()
                raise unauthorized("The verification key is not available yet; retry shortly")
            raise unauthorized("No verification key is configured on this droplet")
        await loaded()
        kid = key_id(token)
        try:
            caller = verify_token(
                token,
                public_key_pem=pem,
                issuer=self._settings.jwt_issuer,
                audience=self._settings.jwt_audience,
                max_lifetime_s=self._settings.jwt_max_lifetime_s,
            )
        except TokenInvalid as exc:
            if exc.bad_signature:
                # Perhaps signed by a key newer than ours: the key source looks again if so.
                self._keys.signature_failed(kid)
            raise unauthorized(str(exc)) from exc
        self._keys.verified(kid)
        return Caller(
            caller.identity, caller.permissions, expires_at=caller.expires_at, address=address
        )

    async def api_caller(self, *, authorization: str | None, address: str | None) -> Caller:
        """The UDC endpoints: always a verified token."""
        return await self.verify(bearer_token(authorization), address=address)

    async def chat_caller(
        self, *, authorization: str | None, query_token: str | None, address: str | None
    ) -> Caller:
        """A chat channel's caller: a verified token; without one, the developer when
        CHAT_AUTH=none (a token, if sent, is still verified and then counts)."""
        token = bearer_token(authorization) if authorization else (query_token or None)
        if token is not None or self._settings.effective_chat_auth == "jwt":
            return await self.verify(token, address=address)
        return Caller(
            Identity("anonymous", "developer"), DEVELOPER, authenticated=False, address=address
        )

    async def inbound_caller(
        self, *, authorization: str | None, address: str | None, source: str
    ) -> Caller:
        """A mesh message's caller: a verified token, or (INBOUND_MESSAGE_AUTH permitting) an
        allow-listed network, which may read but never change anything."""
        token = bearer_token(authorization)
        if token is not None:
            return await self.verify(token, address=address)
        if self._settings.inbound_message_auth == "jwt_or_allowlist" and self.allowlisted(address):
            return Caller(
                Identity("inbound", f"{address}/{source[:64]}"),
                frozenset({"read"}),
                authenticated=False,
                address=address,
            )
        return await self.verify(None)

    def allowlisted(self, address: str | None) -> bool:
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._allowlist)

    # ---- what it may do --------------------------------------------------------------------

    @staticmethod
    def require(caller: Caller, permission: Permission, *, to: str) -> None:
        if not caller.can(permission):
            raise forbidden(f"{to} needs the '{permission}' permission")

    def require_admin(self, caller: Caller, *, to: str) -> None:
        """Admin operations: the `admin` permission; without chat auth, an operator network."""
        if caller.authenticated:
            self.require(caller, "admin", to=to)
            return
        if caller.identity.kind != "anonymous" or not self.allowlisted(caller.address):
            raise forbidden(
                f"{to} is only allowed from an operator network (INBOUND_ALLOWLIST) "
                "or with an admin token"
            )

    async def throttle(self, caller: Caller, bucket: Bucket) -> None:
        """The standard 429 when `caller` is over its budget for `bucket`."""
        limiter = self._turn_limiter if bucket == "turn" else self._mesh_limiter
        if limiter is None:
            return
        decision = await limiter.hit(f"{bucket}:{caller.rate_key}")
        if not decision.allowed:
            per_minute = (
                self._settings.chat_rate_limit_per_minute
                if bucket == "turn"
                else self._settings.mesh_rate_limit_per_minute
            )
            raise ApiError(
                429,
                f"Too many requests; try again in {decision.retry_after_s} s",
                code=ErrorCode.RATE_LIMITED,
                details={"retry_after_s": decision.retry_after_s, "limit_per_minute": per_minute},
                headers={"Retry-After": str(decision.retry_after_s)},
            )

    # ---- the turn it may start -------------------------------------------------------------

    def turn(
        self,
        caller: Caller,
        *,
        channel: str,
        text: str,
        trace_id: str,
        session_id: str | None,
        source: Channel = "chat",
        origin: str | None = None,
        proposal_id: str | None = None,
        route_back: str | None = None,
    ) -> Turn:
        """The only way a turn is made. A session id names a session in the caller's own
        namespace, so another identity's session can never be reached or squatted."""
        self.require(caller, "read", to="Talking to the Chat Orchestrator")
        if session_id is not None and not valid_session_id(session_id):
            raise ApiError(422, SESSION_ID_RULE, details={"field": "session_id"})
        return Turn(
            text=text,
            trace_id=trace_id,
            caller=caller,
            session_key=None if session_id is None else session_key(caller.identity, session_id),
            source=source,
            channel=channel,
            origin=origin,
            proposal_id=proposal_id,
            route_back=route_back,
        )
