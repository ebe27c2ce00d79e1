"""Bearer tokens for calls to the Orchestrator (droplet 10).

The public Orchestrator has no reachable token endpoint, so a deployment hands us one of:
a pre-issued token, the private key to mint our own, the Orchestrator's optional
`POST /auth/token`, or (deployed registry only) the Registry's `POST /auth/token`. They are tried
in that order. The Orchestrator reads `droplet_id` as an integer and rejects any token carrying
an `aud` claim, so minted tokens have exactly {droplet_id, permissions, iat, exp}.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import jwt
import structlog

from app.mesh.peer_http import exchange
from app.mesh.peers import PeerError, PeerUnavailable
from app.mesh.registry import RegistryClient
from app.utils.time import isoformat_z, parse_timestamp

log = structlog.get_logger(__name__)

PEER = "orchestrator"


class TokenSource(StrEnum):
    STATIC = "static"
    PRIVATE_KEY = "private_key"
    ORCHESTRATOR = "orchestrator_auth"
    REGISTRY = "registry_auth"


class TokenUnavailable(PeerUnavailable):
    """No configured source could produce a usable token for the Orchestrator."""


@dataclass(frozen=True, slots=True)
class _Issued:
    token: str
    source: TokenSource
    issued_at: float
    expires_at: float | None

    def due(self, now: float, refresh_ratio: float) -> bool:
        if self.expires_at is None:
            return False
        lifetime = max(0.0, self.expires_at - self.issued_at)
        return now >= self.issued_at + lifetime * refresh_ratio

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class TokenProvider:
    """Hands out a valid token, refreshing at `refresh_ratio` of its lifetime, one refresh at
    a time. A token a peer rejected (`invalidate`) sends us to the next source."""

    def __init__(
        self,
        *,
        droplet_id: int = 12,
        static_token: str | None = None,
        private_key_path: Path | None = None,
        orchestrator_url: str | None = None,
        orchestrator_secret: str | None = None,
        registry: RegistryClient | None = None,
        permissions: Sequence[str] = ("read", "write"),
        lifetime: float = 3600.0,
        refresh_ratio: float = 0.8,
        rejection_cooldown: float = 300.0,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 < refresh_ratio <= 1.0:
            raise ValueError("refresh_ratio must be in (0, 1]")
        self._droplet_id = droplet_id
        self._static_token = static_token or None
        self._private_key_path = private_key_path
        self._orchestrator_url = orchestrator_url.rstrip("/") if orchestrator_url else None
        self._orchestrator_secret = orchestrator_secret or None
        self._registry = registry
        self._permissions = list(permissions)
        self._lifetime = lifetime
        self._refresh_ratio = refresh_ratio
        self._rejection_cooldown = rejection_cooldown
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: _Issued | None = None
        self._private_key: bytes | None = None
        self._rejected_at: dict[TokenSource, float] = {}
        self._last_error: str | None = None

    @property
    def droplet_id(self) -> int:
        return self._droplet_id

    def configured_sources(self) -> list[TokenSource]:
        sources: list[TokenSource] = []
        if self._static_token:
            sources.append(TokenSource.STATIC)
        if self._private_key_path is not None:
            sources.append(TokenSource.PRIVATE_KEY)
        if self._orchestrator_url and self._orchestrator_secret:
            sources.append(TokenSource.ORCHESTRATOR)
        if self._registry is not None:
            sources.append(TokenSource.REGISTRY)
        return sources

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def get(self) -> str:
        current = self._current
        now = self._clock()
        if current is not None and not current.due(now, self._refresh_ratio):
            return current.token
        async with self._lock:
            current = self._current
            now = self._clock()
            if current is not None and not current.due(now, self._refresh_ratio):
                return current.token
            try:
                issued = await self._acquire()
            except TokenUnavailable:
                if current is not None and not current.expired(now):
                    # Refresh failed early; the old token still works until it expires.
                    log.warning("token_refresh_deferred", source=current.source.value)
                    return current.token
                raise
            self._current = issued
            return issued.token

    async def invalidate(self, token: str) -> None:
        """A peer answered 401 to `token`: forget it and cool its source down."""
        async with self._lock:
            current = self._current
            if current is None or current.token != token:
                return  # already replaced by a concurrent caller
            self._rejected_at[current.source] = self._clock()
            self._current = None
            log.warning("token_rejected_by_peer", source=current.source.value)

    def describe(self) -> dict[str, Any]:
        """For /dependencies: which source is in use and until when; never the token itself."""
        current = self._current
        return {
            "source": current.source.value if current else None,
            "configured_sources": [s.value for s in self.configured_sources()],
            "expires_at": _iso(current.expires_at) if current else None,
            "refresh_at": (
                _iso(
                    current.issued_at
                    + (current.expires_at - current.issued_at) * self._refresh_ratio
                )
                if current and current.expires_at is not None
                else None
            ),
            "last_error": self._last_error,
        }

    # -- acquisition ---------------------------------------------------------------------------

    async def _acquire(self) -> _Issued:
        sources = self.configured_sources()
        if not sources:
            self._last_error = "no credentials for the Orchestrator are configured"
            raise TokenUnavailable(PEER, self._last_error)
        now = self._clock()
        fresh = [
            s for s in sources if now - self._rejected_at.get(s, -1e18) >= self._rejection_cooldown
        ]
        # Sources a peer recently rejected are a last resort, tried only after the others.
        ordered = fresh + [s for s in sources if s not in fresh]
        errors: list[str] = []
        for source in ordered:
            try:
                issued = await self._from(source)
            except (PeerError, OSError, ValueError, jwt.PyJWTError) as exc:
                message = exc.message if isinstance(exc, PeerError) else type(exc).__name__
                errors.append(f"{source.value}: {message}")
                log.warning("token_source_failed", source=source.value, reason=message)
                continue
            if issued is None:
                continue
            self._last_error = None
            log.info(
                "token_acquired",
                source=source.value,
                expires_at=_iso(issued.expires_at) if issued.expires_at else None,
            )
            return issued
        self._last_error = "; ".join(errors) or "no usable credentials for the Orchestrator"
        raise TokenUnavailable(PEER, "no usable credentials for the Orchestrator")

    async def _from(self, source: TokenSource) -> _Issued | None:
        match source:
            case TokenSource.STATIC:
                return self._static()
            case TokenSource.PRIVATE_KEY:
                return await self._mint()
            case TokenSource.ORCHESTRATOR:
                return await self._orchestrator_token()
            case TokenSource.REGISTRY:
                return await self._registry_token()

    def _static(self) -> _Issued | None:
        assert self._static_token is not None
        now = self._clock()
        issued_at, expires_at = _claimed_times(self._static_token)
        if expires_at is not None and now >= expires_at:
            log.warning("static_credential_expired")
            return None
        return _Issued(
            self._static_token,
            TokenSource.STATIC,
            issued_at if issued_at is not None else now,
            expires_at,
        )

    async def _mint(self) -> _Issued:
        if self._private_key is None:
            assert self._private_key_path is not None
            self._private_key = await asyncio.to_thread(self._private_key_path.read_bytes)
        now = self._clock()
        issued_at = int(now)
        expires_at = issued_at + int(self._lifetime)
        claims = {
            "droplet_id": self._droplet_id,
            "permissions": self._permissions,
            "iat": issued_at,
            "exp": expires_at,
        }
        token = jwt.encode(claims, self._private_key, algorithm="RS256")
        return _Issued(token, TokenSource.PRIVATE_KEY, float(issued_at), float(expires_at))

    async def _orchestrator_token(self) -> _Issued:
        assert self._orchestrator_url is not None
        response = await exchange(
            self._client,
            "POST",
            self._orchestrator_url + "/auth/token",
            peer=PEER,
            label="Orchestrator",
            json_body={"droplet_id": self._droplet_id, "secret_key": self._orchestrator_secret},
        )
        body = response.body
        if response.status_code == 404:
            raise PeerUnavailable(PEER, "the Orchestrator does not issue tokens", status_code=404)
        if response.status_code != 200 or not isinstance(body, dict):
            raise PeerUnavailable(
                PEER, "the Orchestrator refused to issue a token", status_code=response.status_code
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise PeerUnavailable(PEER, "the Orchestrator answered in an unexpected format")
        now = self._clock()
        issued_at, expires_at = _claimed_times(token)
        if expires_at is None:
            expires_in = body.get("expires_in")
            if isinstance(expires_in, int | float) and expires_in > 0:
                expires_at = now + float(expires_in)
        return _Issued(
            token, TokenSource.ORCHESTRATOR, issued_at if issued_at is not None else now, expires_at
        )

    async def _registry_token(self) -> _Issued:
        assert self._registry is not None
        token, expires = await self._registry.fetch_token(self._droplet_id)
        issued_at, _ = _claimed_times(token)
        return _Issued(
            token,
            TokenSource.REGISTRY,
            issued_at if issued_at is not None else self._clock(),
            expires.timestamp(),
        )


def _claimed_times(token: str) -> tuple[float | None, float | None]:
    """(iat, exp) read without verification: only to schedule refreshes, never to trust."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None, None
    iat, exp = claims.get("iat"), claims.get("exp")
    return (
        float(iat) if isinstance(iat, int | float) else None,
        float(exp) if isinstance(exp, int | float) else None,
    )


def _iso(epoch: float | None) -> str | None:
    moment = parse_timestamp(epoch)
    return isoformat_z(moment) if moment else None
