"""Bearer tokens for a peer: which configured source to use, and when to get a fresh one.

The sources belong to the peer adapters, which alone know their wire formats (the Orchestrator
adapter mints tokens and calls its own `POST /auth/token`, the Registry adapter calls the
deployed Registry's). This module keeps the current token, refreshes it at `refresh_ratio` of
its lifetime, one refresh at a time, and moves on to the next source when a peer rejects one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog

from app.mesh.peers import PeerError, PeerUnavailable
from app.utils.imports import import_off_loop
from app.utils.time import isoformat_z, parse_timestamp

log = structlog.get_logger(__name__)

DEFERRED_IMPORTS = ("jwt",)
"""Imported by the first token, off the loop (app.ops.deferred_imports warms it at start)."""


class TokenSource(StrEnum):
    STATIC = "static"
    PRIVATE_KEY = "private_key"
    ORCHESTRATOR = "orchestrator_auth"
    REGISTRY = "registry_auth"


class TokenUnavailable(PeerUnavailable):
    """No configured source could produce a usable token for the peer. Our configuration's or
    a token issuer's problem, never evidence that the peer itself is down. The request that
    needed the token was not sent (or was refused with a 401, which does nothing), so the peer
    cannot have acted on it."""

    def __init__(self, peer: str, message: str) -> None:
        super().__init__(peer, message, reached=False)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    issued_at: float | None = None
    """Epoch seconds; None: now."""
    expires_at: float | None = None
    """Epoch seconds; None: never refreshed (a pre-issued token without `exp`)."""


Issuer = Callable[[], Awaitable[IssuedToken]]
"""One source: raises `PeerError` (or `OSError`, `ValueError`, a JWT error) when it cannot."""


def _jwt_error() -> type[Exception]:
    """PyJWT's base error; jwt is imported only when a token is read (see app.channels.jwt)."""
    import jwt

    return jwt.PyJWTError


def claimed_times(token: str) -> tuple[float | None, float | None]:
    """(iat, exp) read without verification: only to schedule refreshes, never to trust."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None, None
    iat, exp = claims.get("iat"), claims.get("exp")
    return (
        float(iat) if isinstance(iat, int | float) else None,
        float(exp) if isinstance(exp, int | float) else None,
    )


def pre_issued(token: str) -> Issuer:
    """A token handed to us by the deployment; its own claims say how long it lives."""

    async def issue() -> IssuedToken:
        issued_at, expires_at = claimed_times(token)
        return IssuedToken(token, issued_at, expires_at)

    return issue


@dataclass(frozen=True, slots=True)
class _Current:
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
    """Hands out a valid token from the first source that has one. A token a peer rejected
    (`invalidate`) cools its source down, so the next source is tried first for a while."""

    def __init__(
        self,
        *,
        peer: str,
        label: str,
        sources: Sequence[tuple[TokenSource, Issuer]],
        refresh_ratio: float = 0.8,
        rejection_cooldown: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 < refresh_ratio <= 1.0:
            raise ValueError("refresh_ratio must be in (0, 1]")
        self._peer = peer
        self._label = label
        self._sources = list(sources)
        self._refresh_ratio = refresh_ratio
        self._rejection_cooldown = rejection_cooldown
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: _Current | None = None
        self._rejected_at: dict[TokenSource, float] = {}

    @property
    def configured(self) -> bool:
        """False when no source is configured at all: a state of the deployment, not a fault."""
        return bool(self._sources)

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
                self._current = await self._acquire()
            except TokenUnavailable:
                if current is not None and not current.expired(now):
                    # Refresh failed early; the old token still works until it expires.
                    log.warning(
                        "token_refresh_deferred", peer=self._peer, source=current.source.value
                    )
                    return current.token
                raise
            return self._current.token

    async def invalidate(self, token: str) -> None:
        """A peer answered 401 to `token`: forget it and cool its source down."""
        async with self._lock:
            current = self._current
            if current is None or current.token != token:
                return  # already replaced by a concurrent caller
            self._rejected_at[current.source] = self._clock()
            self._current = None
            log.warning("token_rejected_by_peer", peer=self._peer, source=current.source.value)

    async def _acquire(self) -> _Current:
        if not self._sources:
            raise TokenUnavailable(
                self._peer, f"no credentials for the {self._label} are configured"
            )
        # The first token imports PyJWT (~60 ms) off the loop; every later one finds it.
        await import_off_loop(*DEFERRED_IMPORTS)
        now = self._clock()
        fresh = [
            (source, issue)
            for source, issue in self._sources
            if now - self._rejected_at.get(source, -1e18) >= self._rejection_cooldown
        ]
        # Sources a peer recently rejected are a last resort, tried only after the others.
        ordered = fresh + [entry for entry in self._sources if entry not in fresh]
        for source, issue in ordered:
            try:
                issued = await issue()
            except (PeerError, OSError, ValueError, _jwt_error()) as exc:
                reason = exc.message if isinstance(exc, PeerError) else type(exc).__name__
                log.warning(
                    "token_source_failed", peer=self._peer, source=source.value, reason=reason
                )
                continue
            now = self._clock()
            if issued.expires_at is not None and now >= issued.expires_at:
                log.warning("token_source_expired", peer=self._peer, source=source.value)
                continue
            log.info(
                "token_acquired",
                peer=self._peer,
                source=source.value,
                expires_at=_iso(issued.expires_at),
            )
            return _Current(
                issued.token,
                source,
                issued.issued_at if issued.issued_at is not None else now,
                issued.expires_at,
            )
        raise TokenUnavailable(self._peer, f"no usable credentials for the {self._label}")


def _iso(epoch: float | None) -> str | None:
    moment = parse_timestamp(epoch)
    return isoformat_z(moment) if moment else None
