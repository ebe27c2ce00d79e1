"""The channels' wiring: the gate and its rate limits."""

from __future__ import annotations

from app.channels.gate import Gate
from app.channels.rate_limit import RateLimiter, build_rate_limiter
from app.config import Settings
from app.mesh.keys import PublicKeySource
from app.wiring.mesh import redis_url


def build_gate(settings: Settings, *, public_keys: PublicKeySource) -> Gate:
    # Limits are shared through the event bus's Redis when there is one, so N replicas
    # enforce one limit per identity rather than N.
    shared = redis_url(settings)
    return Gate(
        settings=settings,
        public_keys=public_keys,
        turn_limiter=_limiter(settings.chat_rate_limit_per_minute, shared, "turn"),
        mesh_limiter=_limiter(settings.mesh_rate_limit_per_minute, shared, "mesh"),
    )


def _limiter(per_minute: int, redis: str | None, name: str) -> RateLimiter | None:
    if per_minute <= 0:
        return None
    return build_rate_limiter(per_minute=per_minute, redis_url=redis, prefix=f"droplet12:rl:{name}")
